//! Generated documentation: shell completions (`completions/`) and man pages (`man/`), both made
//! from the clap definitions in [`super::args`] so they cannot say something the CLI does not do
//! (STYLE habit 11). `mirror generate-docs DIR` writes them under `DIR`; the integration test
//! `docs::` regenerates them into a temporary directory and fails when the committed files differ.
//!
//! Why a hidden subcommand rather than `cargo xtask`: it needs no workspace or second crate, uses
//! the very `clap::Command` the binary parses with, and the test runs the built binary as a user
//! would. It is added to the parser at run time ([`with_hidden`]) instead of to the derive, so it
//! shows up in neither the completions nor the man pages it generates.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use super::args::Cli;

pub const GENERATE_DOCS: &str = "generate-docs";

/// The shells `completions/` has a script for.
pub const SHELLS: [Shell; 5] = [
    Shell::Bash,
    Shell::Zsh,
    Shell::Fish,
    Shell::Elvish,
    Shell::PowerShell,
];

/// The CLI as users see it (what completions and man pages describe).
pub fn public_command() -> clap::Command {
    Cli::command()
}

/// The parser: the public CLI plus the hidden `generate-docs DIR`.
pub fn with_hidden() -> clap::Command {
    public_command().subcommand(
        clap::Command::new(GENERATE_DOCS)
            .hide(true)
            .about("Write completions/ and man/ under DIR (for maintainers)")
            .arg(
                clap::Arg::new("dir")
                    .value_name("DIR")
                    .required(true)
                    .value_parser(clap::value_parser!(PathBuf)),
            ),
    )
}

/// Write `DIR/completions/*` and `DIR/man/*.1`, replacing what was there; returns the files.
pub fn generate(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in SHELLS {
        let mut cmd = public_command();
        written.push(clap_complete::generate_to(
            shell,
            &mut cmd,
            "mirror",
            &completions,
        )?);
    }

    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    // A page of a subcommand that no longer exists must not linger.
    for entry in std::fs::read_dir(&man)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "1") {
            std::fs::remove_file(&path)?;
        }
    }
    let mut cmd = public_command().disable_help_subcommand(true);
    cmd.build();
    write_pages(&cmd, &man, &mut written)?;
    written.sort();
    Ok(written)
}

/// `mirror.1`, then `mirror-copy.1`, … (the display names clap gives built subcommands).
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let page = clap_mangen::Man::new(cmd.clone());
    written.push(page.generate_to(dir)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    Ok(())
}
