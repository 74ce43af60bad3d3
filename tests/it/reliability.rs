//! Reliability (issue 8): faults on the network and at the registry, corrupt content, bounded
//! memory, interrupts.
//!
//! The real registry 2.8 holds the images; the fault proxy TEST DOUBLE
//! ([`support::fault_proxy`]) stands between it and `mirror` to cut downloads and uploads, answer
//! 503 and 429, throttle, and rewrite manifests. Every test checks what arrived at the
//! destination (the exact index bytes, blobs by digest, the tag or its absence) and, through the
//! proxy's log, that the fault really happened and what `mirror` did about it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::fault_proxy::{Cut, FaultProxy, Faults, Rewrite, Seen};
use crate::support::{self, GeneratedImage, ImageSpec, Registry, generate, run_code};

fn copy(args: &[&str]) -> Command {
    support::mirror_cmd("copy", args)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn source_with(spec: ImageSpec) -> (Registry, GeneratedImage) {
    let src = Registry::start();
    let img = generate(&spec);
    src.push_image(&img, "app:v1");
    (src, img)
}

/// Every manifest and blob of `img` is at `dst` (repository `app`) and `app:v1` serves the exact
/// source index.
fn assert_complete_copy(dst: &Registry, img: &GeneratedImage) {
    assert_eq!(
        dst.manifest_bytes("app", "v1").as_deref(),
        Some(&img.index[..]),
        "the destination tag must serve the source index byte for byte"
    );
    for e in &img.entries {
        assert!(dst.has_manifest("app", &e.digest), "{} missing", e.digest);
    }
    for b in img.blobs.keys() {
        assert!(dst.has_blob("app", b), "blob {b} missing");
    }
}

/// Body bytes the proxy sent for each blob, over all its downloads.
fn blob_bytes_sent(seen: &[Seen]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for s in seen.iter().filter(|s| s.is_blob_get()) {
        *out.entry(s.blob().unwrap().to_string()).or_default() += s.body_bytes;
    }
    out
}

#[test]
fn cut_downloads_503s_and_a_429_are_survived_and_the_digest_is_kept() {
    let (src, img) = source_with(ImageSpec::default());
    let proxy = FaultProxy::start(
        &src.addr(),
        Faults {
            cut_blobs: Cut::OncePerBlob,
            manifest_503_every: Some(3),
            once_429: true,
            ..Default::default()
        },
    );
    let dst = Registry::start();
    let started = Instant::now();
    run_code(
        &mut copy(&[
            "--all-platforms",
            "--retry-times",
            "3",
            &proxy.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    assert_complete_copy(&dst, &img);

    let seen = proxy.seen();
    assert_eq!(proxy.faults_applied("429"), 1, "{seen:#?}");
    assert!(proxy.faults_applied("503") >= 2, "{seen:#?}");
    // Every blob download was cut once, and each went on with a Range request answered 206
    // from where it stopped: no blob was sent twice.
    assert_eq!(proxy.faults_applied("cut"), img.blobs.len(), "{seen:#?}");
    let resumed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.is_blob_get() && s.range.is_some())
        .collect();
    assert_eq!(resumed.len(), img.blobs.len(), "{seen:#?}");
    assert!(resumed.iter().all(|s| s.status == 206), "{resumed:#?}");
    let sent = blob_bytes_sent(&seen);
    for (digest, bytes) in &img.blobs {
        assert_eq!(
            sent.get(digest).copied(),
            Some(bytes.len() as u64),
            "blob {digest}: resumed, so exactly its size crosses the proxy"
        );
    }
    // The 429 asked for 1 s; the rest are short backoffs.
    assert!(started.elapsed() < Duration::from_secs(25));
}

#[test]
fn without_range_support_a_cut_download_restarts_and_still_verifies() {
    let (src, img) = source_with(ImageSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        attestations: false,
        ..Default::default()
    });
    let proxy = FaultProxy::start(
        &src.addr(),
        Faults {
            cut_blobs: Cut::OncePerBlob,
            ignore_range: true,
            ..Default::default()
        },
    );
    let dst = Registry::start();
    run_code(
        &mut copy(&["--all-platforms", &proxy.url("app:v1"), &dst.url("app:v1")]),
        0,
    );
    assert_complete_copy(&dst, &img);
    let seen = proxy.seen();
    assert_eq!(proxy.faults_applied("cut"), img.blobs.len(), "{seen:#?}");
    assert_eq!(proxy.faults_applied("range-dropped"), img.blobs.len());
    // Half, then the whole blob again (its first half dropped by mirror, not uploaded twice).
    let sent = blob_bytes_sent(&seen);
    for (digest, bytes) in &img.blobs {
        let n = bytes.len() as u64;
        assert_eq!(sent.get(digest).copied(), Some(n / 2 + n), "blob {digest}");
    }
}

#[test]
fn a_failed_upload_is_cancelled_and_retried() {
    let (src, img) = source_with(ImageSpec {
        platforms: vec!["linux/amd64"],
        attestations: false,
        ..Default::default()
    });
    let dst = Registry::start();
    let proxy = FaultProxy::start(
        &dst.addr(),
        Faults {
            cut_uploads: 2,
            ..Default::default()
        },
    );
    run_code(
        &mut copy(&[
            "--all-platforms",
            "--jobs",
            "1",
            &src.url("app:v1"),
            &proxy.url("app:v1"),
        ]),
        0,
    );
    assert_complete_copy(&dst, &img);
    let seen = proxy.seen();
    assert_eq!(proxy.faults_applied("cut-upload"), 2, "{seen:#?}");
    assert_sessions_deleted(&seen, |s| s.fault == Some("cut-upload"), 2);
}

/// The upload sessions of the `PUT`s that `which` picks (at least `at_least` of them) each got a
/// `DELETE`. Only that it was sent: registry 2.8 refuses to delete a session whose single `PUT`
/// broke off after some bytes were stored (404 `BLOB_UPLOAD_INVALID`, "upload resumed at wrong
/// offset", since its `_state` says offset 0), and only its upload purging removes it later.
fn assert_sessions_deleted(seen: &[Seen], which: impl Fn(&Seen) -> bool, at_least: usize) {
    let failed: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.method == "PUT" && s.path.contains("/blobs/uploads/") && which(s))
        .collect();
    assert!(failed.len() >= at_least, "{seen:#?}");
    for put in failed {
        assert!(
            seen.iter()
                .any(|s| s.method == "DELETE" && s.path == put.path && s.query.contains("_state=")),
            "no DELETE of the session {}: {seen:#?}",
            put.path
        );
    }
}

#[test]
fn retries_stay_bounded_by_retry_times() {
    let (src, img) = source_with(ImageSpec {
        platforms: vec!["linux/amd64"],
        attestations: false,
        ..Default::default()
    });
    // Every download is cut, however often it is tried.
    let proxy = FaultProxy::start(
        &src.addr(),
        Faults {
            cut_blobs: Cut::FirstN(usize::MAX),
            ..Default::default()
        },
    );
    let dst = Registry::start();
    let started = Instant::now();
    let out = run_code(
        &mut copy(&[
            "--all-platforms",
            "--retry-times",
            "1",
            &proxy.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("copying blob sha256:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // --retry-times 1: a download and one resumption, and the blob tried twice: at most 4 GETs.
    let mut gets: BTreeMap<String, usize> = BTreeMap::new();
    for s in proxy.seen().iter().filter(|s| s.is_blob_get()) {
        *gets.entry(s.blob().unwrap().to_string()).or_default() += 1;
    }
    assert!(!gets.is_empty());
    assert!(gets.values().all(|n| *n <= 4), "{gets:#?}");
    assert!(!dst.has_manifest("app", "v1"));
    assert!(!dst.has_manifest("app", &img.index_digest));
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// The storage file of a blob (or manifest) in a registry 2.x filesystem store.
fn storage_file(reg: &Registry, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    reg.storage_dir()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data")
}

#[test]
fn a_blob_corrupted_at_the_source_is_refused_and_nothing_is_stored() {
    let (src, img) = source_with(ImageSpec::default());
    let entry = img.platform_entry("linux/arm64");
    let layer = entry.blobs.last().unwrap().clone();
    let file = storage_file(&src, &layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b = !*b;
    }
    std::fs::write(&file, &bytes).unwrap();

    let dst = Registry::start();
    let out = run_code(
        &mut copy(&["--all-platforms", &src.url("app:v1"), &dst.url("app:v1")]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&layer), "the message names the blob: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !dst.has_blob("app", &layer),
        "stored under the wrong digest"
    );
    assert!(!dst.has_manifest("app", "v1"), "the tag was set");
    assert!(dst.tags("app").is_empty());
    assert!(!dst.has_manifest("app", &entry.digest));
}

#[test]
fn a_manifest_corrupted_at_the_source_is_refused_and_nothing_is_tagged() {
    let (src, img) = source_with(ImageSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        attestations: false,
        ..Default::default()
    });
    let entry = img.platform_entry("linux/arm64");
    // Still valid JSON of the same length: one hex digit of the config digest changed.
    let file = storage_file(&src, &entry.digest);
    let text = std::fs::read_to_string(&file).unwrap();
    let at = text.find(&entry.blobs[0]).unwrap() + "sha256:".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&file, &bytes).unwrap();

    let dst = Registry::start();
    let out = run_code(
        &mut copy(&["--all-platforms", &src.url("app:v1"), &dst.url("app:v1")]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&entry.digest), "{err}");
    assert!(!dst.has_manifest("app", "v1"));
    assert!(!dst.has_manifest("app", &entry.digest));
}

#[test]
fn manifests_that_lie_get_a_clear_error_and_never_a_panic() {
    let (src, img) = source_with(ImageSpec {
        platforms: vec!["linux/amd64"],
        attestations: false,
        ..Default::default()
    });
    let proxy = FaultProxy::start(&src.addr(), Faults::default());
    let dst = Registry::start();
    let cases = [
        (Rewrite::InvalidJson, "not valid JSON"),
        (
            // An OCI index served as a Docker image manifest.
            Rewrite::ContentType("application/vnd.docker.distribution.manifest.v2+json"),
            "the manifest says it is application/vnd.oci.image.index.v1+json",
        ),
        (Rewrite::Huge, "more than the 4194304-byte limit"),
        (Rewrite::HugeChunked, "more than the 4194304-byte limit"),
        (Rewrite::WrongDigest, "digest mismatch"),
    ];
    for (rewrite, expected) in cases {
        proxy.set_faults(Faults {
            manifest_rewrite: Some(rewrite),
            ..Default::default()
        });
        let out = run_code(
            &mut copy(&["--all-platforms", &proxy.url("app:v1"), &dst.url("app:v1")]),
            1,
        );
        let err = stderr(&out);
        assert!(err.contains(expected), "{rewrite:?}: {err}");
        assert!(err.contains("app"), "{rewrite:?}: names the image: {err}");
        assert!(!err.contains("panicked"), "{rewrite:?}: {err}");
        assert!(proxy.faults_applied("rewrite") >= 1, "{rewrite:?}");
        assert!(!dst.has_manifest("app", "v1"), "{rewrite:?}");
        assert!(!dst.has_manifest("app", &img.index_digest), "{rewrite:?}");
        proxy.clear_log();
    }
}

/// `peak rss: N KiB` from a run with `MIRROR_PEAK_RSS=1`.
fn peak_rss_kib(out: &std::process::Output) -> u64 {
    let err = stderr(out);
    err.lines()
        .find_map(|l| l.strip_prefix("peak rss: "))
        .and_then(|v| v.strip_suffix(" KiB"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no `peak rss: N KiB` line in stderr:\n{err}"))
}

/// Push `repo:v1`, a single-platform image whose one layer is `size` random bytes, without
/// holding or hashing the layer in this (debug-built) process: the bytes come from /dev/urandom
/// into a temporary file, `sha256sum` hashes it, and the upload streams from the file.
/// Returns the manifest bytes and the layer digest.
fn push_big_image(reg: &Registry, repo: &str, size: u64) -> (Vec<u8>, String) {
    support::require_tool("sha256sum", "coreutils");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("layer");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut random = std::fs::File::open("/dev/urandom").unwrap().take(size);
    std::io::copy(&mut random, &mut file).unwrap();
    drop(file);
    let out = support::run_ok(Command::new("sha256sum").arg(&path));
    let hex = String::from_utf8_lossy(&out.stdout)[..64].to_string();
    let layer = format!("sha256:{hex}");

    // POST, then one PUT whose body streams from the file.
    let (status, headers, body) = reg.http("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], &[]);
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let location =
        support::http::strip_origin(support::header(&headers, "location").unwrap()).to_string();
    let mut conn = std::net::TcpStream::connect(reg.addr()).unwrap();
    write!(
        conn,
        "PUT {location}&digest={layer} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n",
        reg.addr()
    )
    .unwrap();
    std::io::copy(&mut std::fs::File::open(&path).unwrap(), &mut conn).unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let (status, _, body) = support::http::parse_response(&answer, false).unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));

    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer] },
    }))
    .unwrap();
    let config_digest = reg.upload_blob(repo, &config);
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_MANIFEST,
        "config": { "mediaType": support::MT_OCI_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [ { "mediaType": support::MT_OCI_LAYER, "digest": layer, "size": size } ],
    }))
    .unwrap();
    let (status, _, body) = reg.put_manifest(repo, "v1", support::MT_OCI_MANIFEST, &manifest);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    (manifest, layer)
}

#[test]
fn peak_memory_stays_bounded_while_a_256_mib_layer_streams() {
    const LAYER: u64 = 256 * 1024 * 1024;
    let src = Registry::start();
    let (manifest, layer) = push_big_image(&src, "app", LAYER);
    let dst = Registry::start();
    let started = Instant::now();
    let out = run_code(
        copy(&["--format", "json", &src.url("app:v1"), &dst.url("app:v1")])
            .env("MIRROR_PEAK_RSS", "1"),
        0,
    );
    let took = started.elapsed();
    let report: Value = support::json(&out);
    assert!(report["blobs"]["transferredBytes"].as_u64().unwrap() > LAYER);
    assert_eq!(dst.manifest_bytes("app", "v1"), Some(manifest));
    assert!(dst.has_blob("app", &layer));
    let kib = peak_rss_kib(&out);
    eprintln!("copied a {LAYER}-byte layer in {took:?}, peak rss {kib} KiB");
    assert!(
        kib < 64 * 1024,
        "peak RSS {kib} KiB while copying a {LAYER}-byte layer: blobs must stream"
    );
    assert!(kib > 1024, "{kib} KiB is not a real process's peak");
}

/// Start `mirror ARGS…` in the background.
fn spawn_mirror(verb: &str, args: &[&str]) -> std::process::Child {
    support::mirror_cmd(verb, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mirror")
}

/// Wait until `ready()` (at most 20 s), then send `signal` (`-INT`, `-TERM`) to the child and
/// collect its output (at most 20 s more).
fn interrupt_when(
    child: std::process::Child,
    signal: &str,
    ready: impl Fn() -> bool,
) -> std::process::Output {
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "mirror ended ({status}) before it could be interrupted:\n{}",
                stderr(&out)
            );
        }
        assert!(Instant::now() < deadline, "the copy never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mirror did not stop within 20 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "--- interrupted with {signal}: {} ---\n{}",
        out.status,
        stderr(&out)
    );
    out
}

/// An image of 1 platform with a 64 KiB base and `layers` layers of 1 MiB, for slow copies.
fn slow_image(layers: usize) -> ImageSpec {
    ImageSpec {
        platforms: vec!["linux/amd64"],
        layers_per_platform: layers,
        layer_size: 1024 * 1024,
        base_size: 64 * 1024,
        attestations: false,
        ..Default::default()
    }
}

/// Layer blobs of `img` present at `dst` (repository `app`). Registry 2.8 may answer a HEAD of a
/// blob that is being committed with a 500; that counts as not there yet (the caller polls).
fn layers_at(dst: &Registry, img: &GeneratedImage) -> usize {
    img.blobs
        .iter()
        .filter(|(_, b)| b.len() > 512 * 1024)
        .filter(|(d, _)| {
            let (status, _, _) = dst.http("HEAD", &format!("/v2/app/blobs/{d}"), &[], &[]);
            status == 200
        })
        .count()
}

#[test]
fn an_interrupted_copy_exits_130_without_the_tag_and_a_rerun_transfers_less() {
    let (src, img) = source_with(slow_image(5));
    let total: u64 = img.blobs.values().map(|b| b.len() as u64).sum();
    let slow = Faults {
        throttle_blob_bytes_per_sec: Some(1024 * 1024),
        ..Default::default()
    };
    let src_proxy = FaultProxy::start(&src.addr(), slow.clone());
    let dst = Registry::start();
    let dst_proxy = FaultProxy::start(&dst.addr(), Faults::default());
    let work = tempfile::tempdir().unwrap();
    let report_file = work.path().join("report.json");
    let report_arg = report_file.display().to_string();
    let args = [
        "--all-platforms",
        "--jobs",
        "1",
        "--report",
        &report_arg,
        &src_proxy.url("app:v1"),
        &dst_proxy.url("app:v1"),
    ];

    // SIGINT while the second layer streams: 130, no tag, the partial report, the upload in
    // flight cancelled.
    let started = Instant::now();
    let first_layer = std::cell::Cell::new(None::<Instant>);
    let out = interrupt_when(spawn_mirror("copy", &args), "-INT", || {
        if first_layer.get().is_none() && layers_at(&dst, &img) >= 1 {
            first_layer.set(Some(Instant::now()));
        }
        first_layer
            .get()
            .is_some_and(|t| t.elapsed() > Duration::from_millis(300))
    });
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    assert!(!dst.has_manifest("app", "v1"), "the tag moved");
    assert!(dst.tags("app").is_empty());
    let partial: Value =
        serde_json::from_slice(&std::fs::read(&report_file).expect("a partial report")).unwrap();
    assert_eq!(partial["error"], "interrupted", "{partial:#}");
    assert!(partial["blobs"]["transferredCount"].as_u64().unwrap() >= 1);
    // The upload that was in flight (its PUT broke off) was cancelled.
    assert_sessions_deleted(&dst_proxy.seen(), |s| s.status == 0, 1);
    let after_first = layers_at(&dst, &img);
    assert!((1..5).contains(&after_first), "{after_first} layers");

    // SIGTERM the rerun: it skips what is there and stops the same way.
    let before = layers_at(&dst, &img);
    let out = interrupt_when(spawn_mirror("copy", &args), "-TERM", || {
        layers_at(&dst, &img) > before
    });
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(!dst.has_manifest("app", "v1"), "the tag moved");

    // Finish at full speed: only what is missing moves.
    src_proxy.set_faults(Faults::default());
    let out = run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &src_proxy.url("app:v1"),
            &dst_proxy.url("app:v1"),
        ]),
        0,
    );
    let report = support::json(&out);
    assert!(
        report["blobs"]["presentCount"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    assert!(
        report["blobs"]["transferredBytes"].as_u64().unwrap() < total,
        "{report:#}"
    );
    assert_complete_copy(&dst, &img);
    assert!(started.elapsed() < Duration::from_secs(28));
}

#[test]
fn an_interrupted_sync_exits_130_with_a_partial_report() {
    // Eight 1 MiB layers, one at a time through a 1 MiB/s proxy: after the first lands, seconds
    // are left for the signal to arrive while the sync is still copying.
    let (src, img) = source_with(slow_image(8));
    let proxy = FaultProxy::start(
        &src.addr(),
        Faults {
            throttle_blob_bytes_per_sec: Some(1024 * 1024),
            ..Default::default()
        },
    );
    let dst = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let config = work.path().join("sync.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nimages:\n  - source: {}\n    destination: {}\n    tags: [\"v1\"]\n",
            proxy.url("app"),
            dst.url("app")
        ),
    )
    .unwrap();
    let report_file = work.path().join("report.json");
    let out = interrupt_when(
        spawn_mirror(
            "sync",
            &[
                "--config",
                &config.display().to_string(),
                "--report",
                &report_file.display().to_string(),
                "--jobs",
                "1",
            ],
        ),
        "-INT",
        || layers_at(&dst, &img) >= 1,
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let partial: Value = serde_json::from_slice(&std::fs::read(&report_file).unwrap()).unwrap();
    assert_eq!(partial["error"], "interrupted", "{partial:#}");
    assert_eq!(partial["version"], 1);
    assert!(!dst.has_manifest("app", "v1"));
}
