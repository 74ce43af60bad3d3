//! Test support for the `mirror` integration tests.
//!
//! - [`registry::Registry`]: the real CNCF registry (`docker-registry`, 2.8.x) as a process.
//! - [`sparse_registry::SparseRegistry`]: an in-memory TEST DOUBLE registry for behaviour no
//!   installable registry has (accepting sparse indexes, the referrers API, `Link` pagination).
//! - [`imagegen`]: deterministic synthetic images (OCI or Docker, multi-platform, attestations).
//! - [`fault_proxy::FaultProxy`]: a fault-injecting HTTP proxy TEST DOUBLE in front of a real
//!   registry (cut downloads and uploads, 503s, 429s, rewritten manifests, throttling).
//! - [`hostile_registry::HostileRegistry`]: a scripted TEST DOUBLE registry that misbehaves on
//!   purpose (goes silent, endless or looping pages, huge bodies), for the hardening tests.
//! - [`http`]: a tiny blocking std-only HTTP/1.1 client and push helpers ([`http::Client`]).
//! - [`skopeo`], [`umoci`]: the real tools as independent checks.
//!
//! Tests fail loudly when a tool is missing ([`require_tool`]); they never skip.
#![allow(dead_code)]

pub mod fault_proxy;
pub mod hostile_registry;
pub mod http;
pub mod imagegen;
pub mod registry;
pub mod skopeo;
pub mod sparse_registry;
pub mod tls;
pub mod token_server;
pub mod umoci;

#[allow(unused_imports)]
pub use http::{Client, Headers, Response, header};
#[allow(unused_imports)]
pub use imagegen::{
    Entry, EntryKind, GeneratedImage, ImageSpec, MT_DOCKER_CONFIG, MT_DOCKER_LAYER, MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST, MT_INTOTO, MT_OCI_CONFIG, MT_OCI_INDEX, MT_OCI_LAYER, MT_OCI_MANIFEST,
    generate,
};
#[allow(unused_imports)]
pub use registry::{Registry, RegistryOptions};
#[allow(unused_imports)]
pub use sparse_registry::{SparseOptions, SparseRegistry};

use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Output};

/// The `mirror` binary built for this test run (no arguments added).
pub fn mirror() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirror"))
}

/// Runs `cmd` to completion and returns its output, whatever the exit status.
/// Prints the command line, status, stdout and stderr to the test's captured output, so a
/// failing assertion afterwards shows what the command said.
pub fn run(cmd: &mut Command) -> Output {
    let line = command_line(cmd);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
    eprintln!(
        "$ {line}\n-> {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Like [`run`], but panics (with stdout and stderr) unless the command exits 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "`{}` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        command_line(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Like [`run`], but panics (with stdout and stderr) unless the exit code is `code`.
pub fn run_code(cmd: &mut Command, code: i32) -> Output {
    let out = run(cmd);
    assert_eq!(
        out.status.code(),
        Some(code),
        "`{}` exited with {} (expected {code})\n--- stdout ---\n{}\n--- stderr ---\n{}",
        command_line(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `program arg arg …` for messages.
pub fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Panics unless `name` is on `PATH`: tests fail loudly, never skip.
pub fn require_tool(name: &str, debian_package: &str) {
    if which(name).is_none() {
        panic!(
            "`{name}` is not installed: apt-get install -y {debian_package} (scripts/test does this)"
        );
    }
}

/// The full path of `name` on `PATH`, if any.
pub fn which(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

/// A hash of everything under `dir`: every relative path (sorted), its kind, and the content of
/// files (symlink targets for links). Equal before and after ⇔ nothing changed.
/// A missing `dir` hashes as the empty tree marker `"missing"`.
pub fn tree_hash(dir: &Path) -> String {
    if !dir.exists() {
        return "missing".to_string();
    }
    let mut items = Vec::new();
    walk(dir, dir, &mut items);
    items.sort();
    let mut h = Sha256::new();
    for (rel, kind, content) in items {
        h.update(rel.as_bytes());
        h.update([0u8]);
        h.update(kind.as_bytes());
        h.update([0u8]);
        h.update((content.len() as u64).to_le_bytes());
        h.update(&content);
    }
    hex::encode(h.finalize())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, &'static str, Vec<u8>)>) {
    let rd = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
    for ent in rd {
        let ent = ent.unwrap();
        let p = ent.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = ent.file_type().unwrap();
        if ft.is_symlink() {
            let target = std::fs::read_link(&p).unwrap();
            out.push((
                rel,
                "link",
                target.to_string_lossy().into_owned().into_bytes(),
            ));
        } else if ft.is_dir() {
            out.push((rel, "dir", Vec::new()));
            walk(root, &p, out);
        } else {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            out.push((rel, "file", data));
        }
    }
}

/// Every file under `dir` as sorted relative paths (directories left out).
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut items = Vec::new();
    walk(dir, dir, &mut items);
    let mut v: Vec<String> = items
        .into_iter()
        .filter(|(_, k, _)| *k != "dir")
        .map(|(r, _, _)| r)
        .collect();
    v.sort();
    v
}

/// stdout of a `--format json` run, parsed; panics with the text when it is not JSON.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `mirror VERB ARGS…`.
pub fn mirror_cmd(verb: &str, args: &[&str]) -> Command {
    let mut c = mirror();
    c.arg(verb).args(args);
    c
}
