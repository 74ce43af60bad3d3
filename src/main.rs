fn main() {
    let code = mirror::cli::main();
    if std::env::var_os("MIRROR_PEAK_RSS").is_some_and(|v| v == "1") {
        report_peak_rss();
    }
    std::process::exit(code);
}

/// `MIRROR_PEAK_RSS=1`: print `peak rss: N KiB` (the kernel's high-water mark of resident memory,
/// `VmHWM` in `/proc/self/status`) to stderr at exit, so tests and benchmarks can check that blob
/// copies stream in bounded memory without an outside tool. Where `/proc` has no such line (not
/// Linux) it says so instead.
fn report_peak_rss() {
    let hwm = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().strip_suffix("kB"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        });
    match hwm {
        Some(kib) => eprintln!("peak rss: {kib} KiB"),
        None => eprintln!("peak rss: unknown (no VmHWM in /proc/self/status)"),
    }
}
