//! The command-line front end: parse, resolve settings, run one engine operation, render the
//! report, and turn the result into an exit code (DESIGN.md, Exit codes) in one place.

pub mod args;
pub mod docs;
mod hint;
mod inspect;
mod render;
mod settings;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};

use crate::error::Error;
use crate::report::Report;
use args::{Cli, Command, CopyArgs, FormatArg, InspectArgs, ProgressArg, SyncArgs};

/// Run the program; returns the exit code.
pub fn main() -> i32 {
    let usage_error = |e: clap::Error| {
        let _ = e.print();
        if e.use_stderr() {
            crate::error::ExitCode::Usage.code()
        } else {
            0
        }
    };
    let matches = match docs::with_hidden().try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    if let Some((docs::GENERATE_DOCS, m)) = matches.subcommand() {
        let dir = m
            .get_one::<std::path::PathBuf>("dir")
            .expect("DIR is required");
        return match docs::generate(dir) {
            Ok(files) => {
                for f in files {
                    println!("{}", f.display());
                }
                0
            }
            Err(e) => fail(&Error::Io {
                what: "cannot write the docs under",
                path: dir.clone(),
                source: e,
            }),
        };
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    watch_signals();
    match cli.command {
        Command::Inspect(args) => run_inspect(&args),
        Command::Verify(args) => run_verify(&args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mirror", &mut std::io::stdout());
            0
        }
        Command::Copy(args) => run_copy(&args, false),
        Command::Plan(args) => run_copy(&args, true),
        Command::Sync(args) => run_sync(&args),
        Command::Inventory(args) => run_inventory(&args),
    }
}

fn runtime() -> Runtime {
    Runtime(Some(
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime"),
    ))
}

/// The command's runtime. Dropping a tokio runtime waits for its blocking threads; after a
/// signal one of them may be stuck for good in a read (a FIFO as `index.json`, a hung mount), so
/// then it is let go instead (the process is about to exit).
struct Runtime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for Runtime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &tokio::runtime::Runtime {
        self.0.as_ref().expect("a runtime until dropped")
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take()
            && SIGNALLED.load(Ordering::SeqCst)
        {
            rt.shutdown_background();
        }
    }
}

/// A SIGINT or SIGTERM arrived.
static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// The command saw the signal ([`interrupted`] resolved) and is winding down itself.
static HANDLING: AtomicBool = AtomicBool::new(false);
/// How long a command has to start winding down after a signal before the process exits 130
/// without it (it is stuck in a blocking read, or does not listen for signals).
const UNHANDLED_SIGNAL_EXIT: Duration = Duration::from_secs(1);
/// How long a command that is winding down may take before the process exits 130 anyway (the
/// partial report and the cancellation of open uploads take at most a few seconds).
const HANDLED_SIGNAL_EXIT: Duration = Duration::from_secs(15);

/// Listen for SIGINT and SIGTERM from the start, on a thread of its own, so that Ctrl-C works
/// whatever the command is doing: a command that listens ([`interrupted`]) writes its partial
/// report and exits 130; one that does not, or is stuck in a read that never returns, is ended
/// with 130 a moment later. Returns once the handlers are installed.
fn watch_signals() {
    let (ready, installed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                let _ = ready.send(());
                return;
            };
            rt.block_on(async move {
                let signal = signals();
                let _ = ready.send(());
                signal.await;
                SIGNALLED.store(true, Ordering::SeqCst);
                tokio::time::sleep(UNHANDLED_SIGNAL_EXIT).await;
                if HANDLING.load(Ordering::SeqCst) {
                    tokio::time::sleep(HANDLED_SIGNAL_EXIT).await;
                }
                let _ = writeln!(std::io::stderr().lock(), "error: interrupted");
                std::process::exit(crate::error::ExitCode::Interrupted.code());
            });
        });
    if spawned.is_ok() {
        let _ = installed.recv();
    }
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when this returns.
fn signals() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt()).ok();
        let term = signal(SignalKind::terminate()).ok();
        async move {
            let recv = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = recv(int) => {},
                _ = recv(term) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

fn run_copy(args: &CopyArgs, dry_run: bool) -> i32 {
    let cmd = match settings::resolve_copy(args, dry_run) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let output = render::OutputOptions {
        quiet: args.quiet,
        verbose: args.verbose,
        progress: match args.progress {
            ProgressArg::Auto => render::Progress::Auto,
            ProgressArg::Always => render::Progress::Always,
            ProgressArg::Never => render::Progress::Never,
        },
    };
    let renderer = render::Renderer::new(output);
    render::init_logging(&output, renderer.multi());
    renderer.status(format!(
        "planning: reading {} and checking {}",
        cmd.source, cmd.destination
    ));
    let tally = Tally::new(renderer.clone());
    let events: Arc<dyn crate::copy::Events> = tally.clone();
    let rt = runtime();
    let locations = crate::transport::Locations::with_limits(cmd.limits.clone());
    let result = rt.block_on(async {
        tokio::select! {
            r = crate::ops::copy_image(&locations, &cmd.source, &cmd.destination, &cmd.settings, events) => r,
            _ = interrupted() => Err(Error::Interrupted),
        }
    });
    settle(&rt, &locations.sessions, &result);
    // The bars go before the report (or the error) is printed.
    renderer.finish();
    match result {
        Ok(report) => {
            if let Err(e) = emit(&report, args) {
                return fail(&e);
            }
            report.index.outcome.exit_code().code()
        }
        Err(e @ Error::Interrupted) => {
            let partial = crate::report::interrupted_copy(
                &cmd.source.to_string(),
                &cmd.destination.to_string(),
                dry_run,
                &tally.progress(),
            );
            write_partial(&partial, args.report.as_deref(), args.format, &e)
        }
        Err(e) => fail(&e),
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The caller then drops the engine's future: nothing new
/// starts, and transfers in flight stop where they are. The tag is pushed last, so it was not
/// moved; a rerun skips the blobs that arrived. Never resolves when no handler can be installed.
async fn interrupted() {
    let sigint = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let sigterm = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let sigterm = std::future::pending::<()>();
    tokio::select! {
        _ = sigint => {},
        _ = sigterm => {},
    }
    SIGNALLED.store(true, Ordering::SeqCst);
    HANDLING.store(true, Ordering::SeqCst);
}

/// After the engine's future ended or was dropped: upload sessions dropped while open (an
/// interrupt, or the siblings of a failed transfer) are being cancelled in the background; give
/// them a few seconds (a second signal stops waiting) before the runtime goes away.
fn settle<T>(
    rt: &tokio::runtime::Runtime,
    sessions: &crate::transport::registry::Sessions,
    result: &Result<T, Error>,
) {
    let wait = sessions.finish_cancellations(std::time::Duration::from_secs(5));
    if matches!(result, Err(Error::Interrupted)) {
        rt.block_on(async {
            tokio::select! {
                _ = wait => {},
                _ = interrupted() => {},
            }
        });
    } else {
        rt.block_on(wait);
    }
}

/// The report of an interrupted run: JSON to `--report FILE` and, with `--format json`, stdout;
/// the error itself to stderr. Returns the exit code (130).
fn write_partial(
    partial: &serde_json::Value,
    file: Option<&std::path::Path>,
    format: FormatArg,
    e: &Error,
) -> i32 {
    let json = |out: &mut dyn Write| {
        serde_json::to_writer_pretty(&mut *out, partial).map_err(std::io::Error::other)?;
        writeln!(out)
    };
    if let Err(we) = write_report(file, format, true, &json, &|_| Ok(())) {
        let _ = fail(&we);
    }
    fail(e)
}

/// Forwards the engine's events to the renderer and counts what finished, for the partial report
/// of an interrupted run (the engine's own totals are lost with its future).
struct Tally {
    inner: Arc<dyn crate::copy::Events>,
    planned_count: std::sync::atomic::AtomicU64,
    planned_bytes: std::sync::atomic::AtomicU64,
    transferred_count: std::sync::atomic::AtomicU64,
    transferred_bytes: std::sync::atomic::AtomicU64,
    mounted_count: std::sync::atomic::AtomicU64,
    manifests_pushed: std::sync::atomic::AtomicU64,
}

impl Tally {
    fn new(inner: Arc<dyn crate::copy::Events>) -> Arc<Tally> {
        Arc::new(Tally {
            inner,
            planned_count: Default::default(),
            planned_bytes: Default::default(),
            transferred_count: Default::default(),
            transferred_bytes: Default::default(),
            mounted_count: Default::default(),
            manifests_pushed: Default::default(),
        })
    }

    /// `plannedCount`/`plannedBytes`: the blobs execution set out to move (missing at the
    /// destination); `transferred*`, `mounted*`: those that arrived before the interruption.
    fn progress(&self) -> crate::report::Progress {
        use std::sync::atomic::Ordering::Relaxed;
        crate::report::Progress {
            planned_count: self.planned_count.load(Relaxed),
            planned_bytes: self.planned_bytes.load(Relaxed),
            transferred_count: self.transferred_count.load(Relaxed),
            transferred_bytes: self.transferred_bytes.load(Relaxed),
            mounted_count: self.mounted_count.load(Relaxed),
            manifests_pushed: self.manifests_pushed.load(Relaxed),
        }
    }
}

impl crate::copy::Events for Tally {
    fn event(&self, event: crate::copy::Event<'_>) {
        use crate::copy::{BlobHow, Event};
        use std::sync::atomic::Ordering::Relaxed;
        match &event {
            Event::PlanReady {
                total_blobs,
                total_bytes,
            } => {
                self.planned_count.fetch_add(*total_blobs, Relaxed);
                self.planned_bytes.fetch_add(*total_bytes, Relaxed);
            }
            Event::BlobDone {
                blob,
                how: BlobHow::Transferred,
            } => {
                self.transferred_count.fetch_add(1, Relaxed);
                self.transferred_bytes.fetch_add(blob.size, Relaxed);
            }
            Event::BlobDone {
                how: BlobHow::Mounted,
                ..
            } => {
                self.mounted_count.fetch_add(1, Relaxed);
            }
            Event::ManifestPushed { .. } => {
                self.manifests_pushed.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        self.inner.event(event);
    }
}

fn run_inspect(args: &InspectArgs) -> i32 {
    let output = render::OutputOptions {
        quiet: false,
        verbose: args.read.verbose,
        progress: render::Progress::Never,
    };
    render::init_logging(&output, None);
    let inspection = match inspect::run(args) {
        Ok(i) => i,
        Err(e) => return fail(&e),
    };
    let mut out = std::io::stdout().lock();
    match inspect::write(&inspection, args.format, &mut out).and_then(|_| out.flush()) {
        Ok(()) => 0,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => fail(&Error::Io {
            what: "cannot write to",
            path: "stdout".into(),
            source: e,
        }),
    }
}

fn run_verify(args: &args::VerifyArgs) -> i32 {
    let output = render::OutputOptions {
        quiet: false,
        verbose: args.read.verbose,
        progress: render::Progress::Never,
    };
    render::init_logging(&output, None);
    let verification = match inspect::run_verify(args) {
        Ok(v) => v,
        Err(e) => return fail(&e),
    };
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        FormatArg::Text => render::write_terminal_text(&mut out, |o| verification.write_text(o)),
        FormatArg::Json => verification.write_json(&mut out),
    };
    match written.and_then(|_| out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            return fail(&Error::Io {
                what: "cannot write to",
                path: "stdout".into(),
                source: e,
            });
        }
    }
    let code = if verification.holds() {
        crate::error::ExitCode::Ok
    } else {
        crate::error::ExitCode::Failure
    };
    code.code()
}

fn run_sync(args: &SyncArgs) -> i32 {
    let (config, sync_settings) = match settings::resolve_sync(args) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let output = render::OutputOptions {
        quiet: args.quiet,
        verbose: args.verbose,
        progress: match args.progress {
            ProgressArg::Auto => render::Progress::Auto,
            ProgressArg::Always => render::Progress::Always,
            ProgressArg::Never => render::Progress::Never,
        },
    };
    let renderer = render::SyncRenderer::new(output);
    render::init_logging(&output, renderer.multi());
    let tally = Tally::new(renderer.clone());
    let events: Arc<dyn crate::copy::Events> = tally.clone();
    let progress: Arc<dyn crate::sync::SyncProgress> = renderer.clone();
    let rt = runtime();
    let locations = crate::transport::Locations::with_limits(settings::limits(
        args.max_requests,
        &config.registries,
    ));
    let result = rt.block_on(async {
        tokio::select! {
            r = crate::sync::sync_with(&locations, &config, &sync_settings, events, progress) => r,
            _ = interrupted() => Err(Error::Interrupted),
        }
    });
    settle(&rt, &locations.sessions, &result);
    renderer.finish();
    if let Err(e @ Error::Interrupted) = &result {
        let partial = crate::report::interrupted_sync(&tally.progress());
        return write_partial(&partial, args.report.as_deref(), args.format, e);
    }
    match result {
        Ok(report) => {
            let written = write_report(
                args.report.as_deref(),
                args.format,
                args.quiet,
                &|out| report.write_json(out),
                &|out| report.write_text(out),
            );
            match written {
                Ok(()) => report.exit_code().code(),
                Err(e) => fail(&e),
            }
        }
        Err(e) => fail(&e),
    }
}

fn run_inventory(args: &args::InventoryArgs) -> i32 {
    let (locations, options) = match settings::resolve_inventory(args) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let result = runtime().block_on(crate::bundle::inventory(
        &crate::transport::Locations::new(),
        &locations,
        &options,
    ));
    match result {
        Ok(inv) => {
            let text = |out: &mut dyn Write| {
                let bytes: u64 = inv.blobs.iter().map(|b| b.size).sum();
                writeln!(
                    out,
                    "{} blobs ({}), {} manifests in {}",
                    inv.blobs.len(),
                    crate::report::human_bytes(bytes),
                    inv.manifests.len(),
                    args.locations.join(", ")
                )
            };
            match write_report(None, args.format, false, &|out| inv.write_json(out), &text) {
                Ok(()) => 0,
                Err(e) => fail(&e),
            }
        }
        Err(e) => fail(&e),
    }
}

/// Write a report: JSON to `--report FILE` when asked, and `format` to stdout.
fn write_report(
    file: Option<&std::path::Path>,
    format: FormatArg,
    quiet: bool,
    json: &dyn Fn(&mut dyn Write) -> std::io::Result<()>,
    text: &dyn Fn(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Error> {
    if let Some(path) = file {
        let mut buf = Vec::new();
        json(&mut buf).expect("writing to memory");
        std::fs::write(path, buf).map_err(|e| Error::Io {
            what: "cannot write the report to",
            path: path.to_path_buf(),
            source: e,
        })?;
    }
    let mut out = std::io::stdout().lock();
    let r = match format {
        FormatArg::Json => json(&mut out),
        FormatArg::Text if quiet => Ok(()),
        FormatArg::Text => render::write_terminal_text(&mut out, text),
    };
    match r.and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Io {
            what: "cannot write the report to",
            path: "stdout".into(),
            source: e,
        }),
    }
}

fn emit(report: &Report, args: &CopyArgs) -> Result<(), Error> {
    write_report(
        args.report.as_deref(),
        args.format,
        args.quiet,
        &|out| report.write_json(out),
        &|out| report.write_text(out),
    )
}

fn fail(e: &Error) -> i32 {
    let mut msg = format!("error: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        // Messages often include their cause already; print each text once.
        let text = inner.to_string();
        if !msg.contains(&text) {
            msg.push_str(&format!("\n  caused by: {text}"));
        }
        src = inner.source();
    }
    // What to do about it, in this command line's flags (the engine gives it as data).
    if let Some(h) = hint::find(e) {
        msg.push_str(&format!("\n  hint: {}", hint::render(h)));
    }
    if let Some(advice) = e.advice() {
        msg.push_str(&format!("\n  hint: {}", hint::advice(advice)));
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "{}",
        crate::oci::escape_controls_in_text(&msg)
    );
    e.exit_code().code()
}
