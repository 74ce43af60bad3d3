//! umoci (the real tool) as an independent check that an OCI layout is valid.
//!
//! Note: `umoci unpack` resolves a tag to exactly one image manifest; a multi-platform index
//! (or one with attestations) is refused as ambiguous, so unpack single-manifest tags, or one
//! child manifest named by its own tag.

use super::{command_line, require_tool};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `umoci ARGS…` and returns its output whatever the status.
pub fn umoci_status(args: &[&str]) -> Output {
    require_tool("umoci", "umoci");
    let mut cmd = Command::new("umoci");
    cmd.args(args);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", command_line(&cmd)))
}

/// Runs `umoci ARGS…` and panics (with stdout/stderr) unless it exits 0.
pub fn umoci(args: &[&str]) -> Output {
    let out = umoci_status(args);
    assert!(
        out.status.success(),
        "umoci {} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `umoci unpack --rootless --image LAYOUT:TAG BUNDLE` into a new temporary directory; returns
/// it (the root filesystem is `bundle.path().join("rootfs")`). Panics if umoci refuses.
pub fn unpack(layout_dir: &Path, tag: &str) -> tempfile::TempDir {
    let parent = tempfile::tempdir().unwrap();
    let bundle = parent.path().join("bundle");
    let image = format!("{}:{tag}", layout_dir.display());
    umoci(&[
        "unpack",
        "--rootless",
        "--image",
        &image,
        bundle.to_str().unwrap(),
    ]);
    parent
}

/// The bundle directory inside what [`unpack`] returned.
pub fn bundle_dir(unpacked: &tempfile::TempDir) -> std::path::PathBuf {
    unpacked.path().join("bundle")
}

/// `umoci ls --layout LAYOUT`: the tags, sorted.
pub fn tags(layout_dir: &Path) -> Vec<String> {
    let out = umoci(&["ls", "--layout", layout_dir.to_str().unwrap()]);
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}
