//! The command-line front end: parse, resolve settings, run one engine operation, render the
//! report, and turn the result into an exit code (DESIGN.md, Exit codes) in one place.

pub mod args;
mod render;
mod settings;

use std::io::Write;
use std::sync::Arc;

use clap::{CommandFactory, Parser};

use crate::error::Error;
use crate::report::{Outcome, Report};
use args::{Cli, Command, CopyArgs, FormatArg};

/// Run the program; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mirror", &mut std::io::stdout());
            0
        }
        Command::Copy(args) => run_copy(&args, false),
        Command::Plan(args) => run_copy(&args, true),
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
    let events = Arc::new(render::PlainLines {
        quiet: args.quiet,
        verbose: args.verbose,
    });
    let result = runtime().block_on(async {
        tokio::select! {
            r = crate::ops::copy_image(&cmd.source, &cmd.destination, &cmd.settings, events) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    });
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

fn emit(report: &Report, args: &CopyArgs) -> Result<(), Error> {
    if let Some(path) = &args.report {
        let mut buf = Vec::new();
        report.write_json(&mut buf).expect("writing to memory");
        std::fs::write(path, buf).map_err(|e| {
            Error::Failed(format!(
                "cannot write the report to {}: {e}",
                path.display()
            ))
        })?;
    }
    let mut out = std::io::stdout().lock();
    let r = match args.format {
        FormatArg::Json => report.write_json(&mut out),
        FormatArg::Text if args.quiet => Ok(()),
        FormatArg::Text => report.write_text(&mut out),
    };
    match r.and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::Failed(format!("cannot write the report: {e}"))),
    }
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
