//! The committed `completions/` and `man/` are what the current CLI generates, and every command's
//! `--help` shows examples.

use std::path::{Path, PathBuf};

use crate::support::{self, mirror, run_ok};

const REGENERATE: &str = "cargo run -- generate-docs .";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(mirror().arg("generate-docs").arg(tmp.path()));
    let mut problems = Vec::new();
    for dir in ["completions", "man"] {
        let fresh = tmp.path().join(dir);
        let committed = root().join(dir);
        let want = support::list_files(&fresh);
        let have = if committed.exists() {
            support::list_files(&committed)
        } else {
            vec![]
        };
        for f in &want {
            match std::fs::read(committed.join(f)) {
                Err(_) => problems.push(format!("{dir}/{f} is missing")),
                Ok(bytes) if bytes != std::fs::read(fresh.join(f)).unwrap() => {
                    problems.push(format!("{dir}/{f} differs"))
                }
                Ok(_) => {}
            }
        }
        for f in have.iter().filter(|f| !want.contains(f)) {
            problems.push(format!("{dir}/{f} is no longer generated"));
        }
    }
    assert!(
        problems.is_empty(),
        "completions/ and man/ are out of date with the CLI ({}): run `{REGENERATE}` and commit the result",
        problems.join("; ")
    );
    for page in [
        "mirror.1",
        "mirror-copy.1",
        "mirror-plan.1",
        "mirror-inspect.1",
        "mirror-completions.1",
    ] {
        assert!(root().join("man").join(page).exists(), "man/{page}");
    }
    for script in [
        "mirror.bash",
        "_mirror",
        "mirror.fish",
        "mirror.elv",
        "_mirror.ps1",
    ] {
        assert!(
            root().join("completions").join(script).exists(),
            "completions/{script}"
        );
    }
}

#[test]
fn the_hidden_docs_command_is_not_documented() {
    for f in support::list_files(&root().join("completions"))
        .iter()
        .map(|f| root().join("completions").join(f))
        .chain(
            support::list_files(&root().join("man"))
                .iter()
                .map(|f| root().join("man").join(f)),
        )
    {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(!text.contains("generate-docs"), "{}", f.display());
    }
}

#[test]
fn every_command_has_examples_in_its_help() {
    let cmd = mirror::cli::docs::public_command();
    let mut names: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    names.push(String::new());
    for name in names {
        let mut c = mirror();
        if !name.is_empty() {
            c.arg(&name);
        }
        let out = run_ok(c.arg("--help"));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Examples:\n  "),
            "`mirror {name} --help` shows examples:\n{help}"
        );
    }
}
