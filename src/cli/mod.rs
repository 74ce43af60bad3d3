//! The command-line front end: parse, resolve settings, run one engine operation, render the
//! report, and turn the result into an exit code (DESIGN.md, Exit codes) in one place.

pub mod args;
pub mod docs;
mod inspect;
mod render;
mod settings;

use std::io::Write;
use std::sync::Arc;

use clap::{CommandFactory, FromArgMatches};

use crate::error::Error;
use crate::report::{Outcome, Report};
use args::{Cli, Command, CopyArgs, FormatArg, InspectArgs, ProgressArg, SyncArgs};

/// Run the program; returns the exit code.
pub fn main() -> i32 {
    let usage_error = |e: clap::Error| {
        let _ = e.print();
        if e.use_stderr() { 2 } else { 0 }
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
            Err(e) => fail(&Error::Failed(format!(
                "cannot write the docs under {}: {e}",
                dir.display()
            ))),
        };
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Inspect(args) => run_inspect(&args),
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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
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
    let events: Arc<dyn crate::copy::Events> = renderer.clone();
    let result = runtime().block_on(async {
        tokio::select! {
            r = crate::ops::copy_image(&cmd.source, &cmd.destination, &cmd.settings, events) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    });
    // The bars go before the report (or the error) is printed.
    renderer.finish();
    match result {
        Ok(report) => {
            if let Err(e) = emit(&report, args) {
                return fail(&e);
            }
            match report.index.outcome {
                Outcome::Rejected => 3,
                _ => 0,
            }
        }
        Err(e) => fail(&e),
    }
}

fn run_inspect(args: &InspectArgs) -> i32 {
    let output = render::OutputOptions {
        quiet: false,
        verbose: args.verbose,
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
        Err(e) => fail(&Error::Failed(format!("cannot write to stdout: {e}"))),
    }
}

fn run_sync(args: &SyncArgs) -> i32 {
    let (config, sync_settings) = match settings::resolve_sync(args) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    let output = render::OutputOptions {
        quiet: args.quiet,
        verbose: args.verbose,
        progress: render::Progress::Never,
    };
    let renderer = render::Renderer::new(output);
    render::init_logging(&output, renderer.multi());
    let events: Arc<dyn crate::copy::Events> = renderer.clone();
    let result = runtime().block_on(async {
        tokio::select! {
            r = crate::sync::sync(&config, &sync_settings, events) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    });
    renderer.finish();
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
                Ok(()) => report.exit_code(),
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
    let result = runtime().block_on(crate::bundle::inventory(&locations, &options));
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
        std::fs::write(path, buf).map_err(|e| {
            Error::Failed(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?;
    }
    let mut out = std::io::stdout().lock();
    let r = match format {
        FormatArg::Json => json(&mut out),
        FormatArg::Text if quiet => Ok(()),
        FormatArg::Text => text(&mut out),
    };
    match r.and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Failed(format!("cannot write the report: {e}"))),
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
        msg.push_str(&format!("\n  caused by: {inner}"));
        src = inner.source();
    }
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
    e.exit_code()
}
