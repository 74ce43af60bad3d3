//! skopeo (the real tool) as an independent reader/writer.
//!
//! `skopeo copy --all --preserve-digests` from an OCI layout (or, for Docker media types, from
//! skopeo's `dir:` format) keeps every manifest and the index byte-for-byte (checked by the
//! self-tests), so pushing a generated image through skopeo gives the registry exactly
//! [`GeneratedImage::index`].

use super::imagegen::GeneratedImage;
use super::registry::Registry;
use super::{command_line, require_tool};
use std::path::Path;
use std::process::{Command, Output};

/// Runs `skopeo --insecure-policy ARGS…` and panics (with stdout/stderr) unless it exits 0.
pub fn skopeo(args: &[&str]) -> Output {
    let out = skopeo_status(args);
    assert!(
        out.status.success(),
        "skopeo {} failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `skopeo --insecure-policy ARGS…` and returns its output whatever the status.
pub fn skopeo_status(args: &[&str]) -> Output {
    require_tool("skopeo", "skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy").args(args);
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", command_line(&cmd)))
}

/// `skopeo copy --all --preserve-digests --dest-tls-verify=false oci:DIR:TAG DEST`.
pub fn push_layout(layout_dir: &Path, tag: &str, dest_docker_ref: &str) {
    push_layout_with_creds(layout_dir, tag, dest_docker_ref, None);
}

/// [`push_layout`] with `--dest-creds USER:PASS`.
pub fn push_layout_with_creds(
    layout_dir: &Path,
    tag: &str,
    dest_docker_ref: &str,
    creds: Option<&str>,
) {
    let src = format!("oci:{}:{tag}", layout_dir.display());
    let mut args = vec![
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
    ];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src.as_str(), dest_docker_ref]);
    skopeo(&args);
}

/// Pushes `img` with `skopeo copy --all --preserve-digests` to `reg` as `repo_tag`
/// (`"repo:tag"`), with the registry's credentials if it has any. OCI images go through a
/// temporary OCI layout (`oci:`); Docker images through skopeo's `dir:` format, since skopeo
/// 1.9's `oci:` transport ignores Docker media types in `index.json`. Either way the registry
/// then serves exactly `img.index` (checked by the self-tests).
pub fn push_image(img: &GeneratedImage, reg: &Registry, repo_tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let creds = reg.creds_arg();
    if img.spec.docker {
        img.write_skopeo_dir(dir.path());
        let src = format!("dir:{}", dir.path().display());
        let dest = reg.url(repo_tag);
        let mut args = vec![
            "copy",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ];
        if let Some(c) = creds.as_deref() {
            args.extend(["--dest-creds", c]);
        }
        args.extend([src.as_str(), dest.as_str()]);
        skopeo(&args);
    } else {
        img.write_layout(dir.path(), "push");
        push_layout_with_creds(dir.path(), "push", &reg.url(repo_tag), creds.as_deref());
    }
}

/// `skopeo inspect --raw REF` (REF with its transport, e.g. `docker://…`, `oci:DIR:TAG`):
/// the exact manifest bytes. `tls_verify_false` adds `--tls-verify=false` (docker:// only).
pub fn inspect_raw(reference: &str, tls_verify_false: bool) -> Vec<u8> {
    inspect_raw_with_creds(reference, tls_verify_false, None)
}

/// [`inspect_raw`] with `--creds USER:PASS`.
pub fn inspect_raw_with_creds(
    reference: &str,
    tls_verify_false: bool,
    creds: Option<&str>,
) -> Vec<u8> {
    let mut args = vec!["inspect", "--raw"];
    if tls_verify_false && reference.starts_with("docker://") {
        args.push("--tls-verify=false");
    }
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(reference);
    skopeo(&args).stdout
}
