//! Hardening (issue 14): hostile registries, hostile files and input, real-world layouts.
//!
//! What no real registry does (going silent, endless pages, huge bodies) is played by the
//! [`HostileRegistry`] TEST DOUBLE; what the real registry 2.8 can show is shown on it. No test
//! here measures time: a stall is shown by the exit code and message and by the requests the
//! double saw, a cap by how many bytes the double managed to send.

use std::process::Output;

use serde_json::json;

use crate::support::fault_proxy::{FaultProxy, Faults};
use crate::support::hostile_registry::{HostileRegistry, Reply, Req, not_found, serve_image};
use crate::support::{self, GeneratedImage, ImageSpec, Registry, generate, run_code};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A small single-platform image (one config, a base and one layer).
fn small_image() -> GeneratedImage {
    generate(&ImageSpec {
        platforms: vec!["linux/amd64"],
        layers_per_platform: 1,
        layer_size: 64 * 1024,
        base_size: 128 * 1024,
        attestations: false,
        single: true,
        ..ImageSpec::default()
    })
}

const MIB: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Hostile registries: pagination

/// A `tags/list` whose `Link` always names one more page.
fn endless_tags(req: &Req) -> Reply {
    if req.path() == "/v2/" {
        return Reply::json(200, json!({}));
    }
    if req.path() != "/v2/app/tags/list" {
        return not_found();
    }
    let n: u64 = req
        .query()
        .split('&')
        .find_map(|p| p.strip_prefix("last=t"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        + 1;
    Reply::json(200, json!({"name": "app", "tags": [format!("t{n}")]})).with_header(
        "Link",
        &format!("</v2/app/tags/list?n=1&last=t{n}>; rel=\"next\""),
    )
}

#[test]
fn an_endless_tags_list_stops_at_the_page_limit() {
    let hostile = HostileRegistry::start(endless_tags);
    let out = run_code(
        &mut support::mirror_cmd("inventory", &[&format!("docker://{}/app", hostile.addr())]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("tags list goes on past 1000 pages"), "{err}");
    assert_eq!(hostile.requests_to("/tags/list").len(), 1000);
}

#[test]
fn a_tags_list_that_links_back_to_a_page_it_sent_is_refused() {
    let hostile = HostileRegistry::start(|req| {
        if req.path() == "/v2/app/tags/list" {
            // Page 2 links back to page 1.
            let next = if req.query().contains("last=a") {
                "/v2/app/tags/list?n=1000"
            } else {
                "/v2/app/tags/list?n=1000&last=a"
            };
            return Reply::json(200, json!({"name": "app", "tags": ["a"]}))
                .with_header("Link", &format!("<{next}>; rel=\"next\""));
        }
        endless_tags(req)
    });
    let out = run_code(
        &mut support::mirror_cmd("inventory", &[&format!("docker://{}/app", hostile.addr())]),
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("tags list links back to a page it already sent"),
        "{err}"
    );
    assert_eq!(hostile.requests_to("/tags/list").len(), 2);
}

#[test]
fn an_endless_referrers_list_stops_at_the_page_limit() {
    let img = small_image();
    let served = img.clone();
    let hostile = HostileRegistry::start(move |req| {
        if let Some(r) = serve_image(&served, "app", "v1", req) {
            return r;
        }
        if let Some(rest) = req.path().strip_prefix("/v2/app/referrers/") {
            let page: u64 = req
                .query()
                .strip_prefix("page=")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            return Reply::bytes(
                "application/vnd.oci.image.index.v1+json",
                serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": []
                }))
                .unwrap(),
            )
            .with_header(
                "Link",
                &format!("</v2/app/referrers/{rest}?page={}>; rel=\"next\"", page + 1),
            );
        }
        not_found()
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", dir.path().join("out").display());
    let out = run_code(
        &mut support::mirror_cmd("copy", &["--no-signatures", &hostile.url("app:v1"), &dest]),
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("referrers list goes on past 1000 pages"),
        "{err}"
    );
    let pages = hostile
        .log()
        .iter()
        .filter(|s| {
            s.target
                .starts_with(&format!("/v2/app/referrers/{}", img.index_digest))
        })
        .count();
    assert_eq!(pages, 1000);
}

// ---------------------------------------------------------------------------------------------
// Hostile registries: silence

#[test]
fn a_registry_that_never_answers_times_out_with_retries_and_names_the_request() {
    let hostile = HostileRegistry::start(|req| {
        if req.path() == "/v2/" {
            return Reply::json(200, json!({}));
        }
        Reply::Silence
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", dir.path().join("out").display());
    let out = run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--timeout",
                "1s",
                "--retry-times",
                "2",
                &hostile.url("app:v1"),
                &dest,
            ],
        ),
        1,
    );
    let err = stderr(&out);
    assert!(
        // The first request for the source is a HEAD of its tag (a no-op costs HEADs).
        err.contains(&format!(
            "HEAD http://{}/v2/app/manifests/v1: no answer for 1s (timeout)",
            hostile.addr()
        )),
        "{err}"
    );
    // The first try and two retries.
    assert_eq!(hostile.requests_to("/manifests/v1").len(), 3);
}

#[test]
fn a_manifest_body_that_stops_halfway_times_out() {
    let hostile = HostileRegistry::start(|req| {
        if req.path() == "/v2/" {
            return Reply::json(200, json!({}));
        }
        Reply::StallBody {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/vnd.oci.image.manifest.v1+json".into(),
            )],
            content_length: 1000,
            first: b"{\"schemaVersion\":".to_vec(),
        }
    });
    let out = run_code(
        &mut support::mirror_cmd(
            "inspect",
            &[
                "--timeout",
                "1",
                "--retry-times",
                "0",
                &hostile.url("app:v1"),
            ],
        ),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("no data for 1s (timeout)"), "{err}");
    assert!(err.contains("/v2/app/manifests/v1"), "{err}");
}

#[test]
fn a_blob_download_that_goes_silent_is_resumed_then_fails_naming_the_blob() {
    let img = small_image();
    let layer = img.entries[0].blobs.last().unwrap().clone();
    let served = img.clone();
    let stalled = layer.clone();
    let hostile = HostileRegistry::start(move |req| {
        if req.method == "GET" && req.path().ends_with(&format!("/blobs/{stalled}")) {
            let bytes = &served.blobs[&stalled];
            return Reply::StallBody {
                status: 200,
                headers: vec![],
                content_length: bytes.len() as u64,
                first: bytes[..bytes.len() / 2].to_vec(),
            };
        }
        serve_image(&served, "app", "v1", req).unwrap_or_else(not_found)
    });
    let dir = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", dir.path().join("out").display());
    let out = run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--timeout",
                "1",
                "--retry-times",
                "1",
                "--no-referrers",
                "--no-signatures",
                &hostile.url("app:v1"),
                &dest,
            ],
        ),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("timeout"), "{err}");
    assert!(err.contains(&layer), "{err}");
    // The stalled download was resumed (a second GET) before giving up.
    assert!(hostile.requests_to(&format!("/blobs/{layer}")).len() >= 2);
}

#[test]
fn a_registry_that_never_answers_an_upload_times_out_naming_the_put() {
    let hostile = HostileRegistry::start(|req| match (req.method.as_str(), req.path()) {
        ("GET", "/v2/") => Reply::json(200, json!({})),
        ("POST", "/v2/app/blobs/uploads/") => {
            Reply::status(202).with_header("Location", "/v2/app/blobs/uploads/u1")
        }
        // The whole body arrives; no answer ever comes.
        ("PUT", "/v2/app/blobs/uploads/u1") => Reply::Silence,
        ("DELETE", _) => Reply::status(204),
        _ => not_found(),
    });
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_image().write_layout(&src, "v1");
    let out = run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--timeout",
                "1",
                "--retry-times",
                "1",
                "--jobs",
                "1",
                &format!("oci:{}:v1", src.display()),
                &hostile.url("app:v1"),
            ],
        ),
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "PUT http://{}/v2/app/blobs/uploads/u1: no answer for 1s (timeout)",
            hostile.addr()
        )),
        "{err}"
    );
    assert!(hostile.requests_to("/v2/app/blobs/uploads/u1").len() >= 2);
}

#[test]
fn a_slow_transfer_that_keeps_moving_is_not_cut_by_the_timeout() {
    // 64 KiB/s through the proxy: the 128 KiB base layer alone takes about 2 s, twice the
    // timeout, and arrives whole, because bytes keep coming.
    let src = Registry::start();
    let img = small_image();
    src.push_image(&img, "app:v1");
    let proxy = FaultProxy::start(
        &src.addr(),
        Faults {
            throttle_blob_bytes_per_sec: Some(64 * 1024),
            ..Default::default()
        },
    );
    let dst = Registry::start();
    run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--timeout",
                "1",
                "--retry-times",
                "0",
                &proxy.url("app:v1"),
                &dst.url("app:v1"),
            ],
        ),
        0,
    );
    assert_eq!(
        dst.manifest_bytes("app", "v1").as_deref(),
        Some(&img.index[..])
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile registries: huge bodies

/// `prefix` + `item` repeated up to 300 MiB + `suffix`, as a 200 JSON answer.
fn huge_json(status: u16, prefix: &str, item: &str, suffix: &str) -> Reply {
    Reply::Huge {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        prefix: prefix.as_bytes().to_vec(),
        item: item.as_bytes().to_vec(),
        suffix: suffix.as_bytes().to_vec(),
        total: 300 * MIB,
    }
}

#[test]
fn a_300_mib_tags_list_is_refused_at_its_cap() {
    let hostile = HostileRegistry::start(|req| match req.path() {
        "/v2/" => Reply::json(200, json!({})),
        "/v2/app/tags/list" => huge_json(
            200,
            "{\"name\":\"app\",\"tags\":[\"",
            "a-tag-name\",\"",
            "z\"]}",
        ),
        _ => not_found(),
    });
    let out = run_code(
        &mut support::mirror_cmd("inventory", &[&format!("docker://{}/app", hostile.addr())]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("larger than 16 MiB"), "{err}");
    let sent = hostile.requests_to("/tags/list")[0].body_bytes;
    assert!(sent < 64 * MIB, "mirror read on: {sent} bytes went out");
}

#[test]
fn a_300_mib_token_answer_is_refused_at_its_cap() {
    let hostile = std::sync::Arc::new(std::sync::OnceLock::<String>::new());
    let addr = hostile.clone();
    let registry = HostileRegistry::start(move |req| match req.path() {
        "/v2/" | "/v2/app/manifests/v1" => Reply::json(401, json!({"errors": []})).with_header(
            "WWW-Authenticate",
            &format!(
                "Bearer realm=\"http://{}/token\",service=\"hostile\"",
                addr.get().unwrap()
            ),
        ),
        "/token" => huge_json(200, "{\"token\":\"", "abcdefghijklmnop", "\"}"),
        _ => not_found(),
    });
    hostile.set(registry.addr()).unwrap();
    let out = run_code(
        &mut support::mirror_cmd("inspect", &["--retry-times", "0", &registry.url("app:v1")]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("larger than 1 MiB"), "{err}");
    let sent: u64 = registry
        .requests_to("/token")
        .iter()
        .map(|s| s.body_bytes)
        .sum();
    assert!(sent < 64 * MIB, "mirror read on: {sent} bytes went out");
}

#[test]
fn a_300_mib_error_body_is_not_read() {
    let hostile = HostileRegistry::start(|req| match req.path() {
        "/v2/" => Reply::json(200, json!({})),
        _ => huge_json(403, "{\"errors\":[", "{\"code\":\"DENIED\"},", "{}]}"),
    });
    let out = run_code(
        &mut support::mirror_cmd("inspect", &["--retry-times", "0", &hostile.url("app:v1")]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("403"), "{err}");
    let sent = hostile.requests_to("/manifests/v1")[0].body_bytes;
    assert!(sent < 64 * MIB, "mirror read on: {sent} bytes went out");
}

// ---------------------------------------------------------------------------------------------
// Real-world layouts

/// A layout whose `index.json` has `"manifests": null`, as oras-go writes an empty layout.
fn null_manifests_layout(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        br#"{"schemaVersion":2,"manifests":null}"#,
    )
    .unwrap();
}

#[test]
fn a_layout_with_null_manifests_is_empty_as_a_source_and_usable_as_a_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("oras");
    null_manifests_layout(&layout);

    let out = run_code(
        &mut support::mirror_cmd("inspect", &[&format!("oci:{}", layout.display())]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("lists no images"), "{err}");
    assert!(!err.contains("restore it"), "{err}");

    let src = tmp.path().join("src");
    let img = small_image();
    img.write_layout(&src, "v1");
    run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                &format!("oci:{}:v1", src.display()),
                &format!("oci:{}:v1", layout.display()),
            ],
        ),
        0,
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], img.index_digest.as_str());
    assert_eq!(support::umoci::tags(&layout), vec!["v1".to_string()]);
}

#[test]
fn a_name_two_index_entries_have_is_an_ambiguity_error_not_a_pick() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("dup");
    let one = small_image();
    let two = generate(&ImageSpec {
        seed: 7,
        ..small_image().spec
    });
    one.write_layout(&layout, "v1");
    two.write_layout(&layout, "v2");
    // Rename v2 to v1: two entries, two digests, one name.
    let path = layout.join("index.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"v2\"", "\"v1\"");
    std::fs::write(&path, text).unwrap();

    let dest = tmp.path().join("out");
    let out = run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                &format!("oci:{}:v1", layout.display()),
                &format!("oci:{}:v1", dest.display()),
            ],
        ),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("\"v1\" is ambiguous: 2 entries"), "{err}");
    assert!(!dest.join("index.json").exists());
}

// ---------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn credentials_in_a_reference_or_a_sync_config_are_a_usage_error_and_never_echoed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", tmp.path().join("out").display());
    let out = run_code(
        &mut support::mirror_cmd(
            "copy",
            &["docker://robot:hunter2@127.0.0.1:1/app:v1", &dest],
        ),
        2,
    );
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("robot:***@127.0.0.1:1/app:v1"), "{all}");
    assert!(
        all.contains("--src-creds") && all.contains("auth file"),
        "{all}"
    );

    let config = tmp.path().join("sync.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nimages:\n  - source: docker://robot:hunter2@127.0.0.1:1/app\n    destination: {dest}\n    tags: [v1]\n"
        ),
    )
    .unwrap();
    let out = run_code(
        &mut support::mirror_cmd("sync", &["--config", &config.display().to_string()]),
        2,
    );
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(!all.contains("hunter2"), "{all}");
    assert!(all.contains("robot:***@"), "{all}");
}

// ---------------------------------------------------------------------------------------------
// Real-world manifests

/// A layout whose image manifest lists its layer with one byte too many.
fn layout_with_a_lying_layer_size(dir: &std::path::Path) -> (GeneratedImage, String) {
    let img = small_image();
    img.write_layout(dir, "v1");
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.index).unwrap();
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let size = manifest["layers"][1]["size"].as_u64().unwrap();
    manifest["layers"][1]["size"] = json!(size + 1);
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = support::digest_of(&bytes);
    std::fs::write(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
        &bytes,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest, "size": bytes.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}
    }]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    (img, layer)
}

#[test]
fn a_wrong_blob_size_is_caught_when_the_destination_already_has_the_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let (img, layer) = layout_with_a_lying_layer_size(&src);
    let dst = Registry::start();
    // The destination already holds the layer (its true bytes), as after an earlier image.
    dst.client().upload_blob("app", &img.blobs[&layer]);
    let out = run_code(
        &mut support::mirror_cmd(
            "copy",
            &[&format!("oci:{}:v1", src.display()), &dst.url("app:v1")],
        ),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains(&layer), "{err}");
    assert!(err.contains("but the destination holds"), "{err}");
    assert!(
        dst.manifest_bytes("app", "v1").is_none(),
        "nothing may be tagged"
    );
}

// ---------------------------------------------------------------------------------------------
// Archives

#[test]
fn a_failed_copy_into_an_oci_archive_leaves_no_staging_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let img = small_image();
    img.write_layout(&src, "v1");
    // One blob is gone: the copy fails while other blobs are being written.
    let layer = img.entries[0].blobs.last().unwrap();
    std::fs::remove_file(
        src.join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    for _ in 0..5 {
        run_code(
            &mut support::mirror_cmd(
                "copy",
                &[
                    "-q",
                    &format!("oci:{}:v1", src.display()),
                    &format!("oci-archive:{}:v1", out_dir.join("a.tar").display()),
                ],
            ),
            1,
        );
        assert_eq!(
            support::list_files(&out_dir),
            Vec::<String>::new(),
            "nothing may be left next to the archive"
        );
        assert_eq!(std::fs::read_dir(&out_dir).unwrap().count(), 0);
    }
}

#[test]
fn an_oci_archive_with_hard_links_is_read_like_skopeo_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let img = small_image();
    img.write_layout(&layout, "v1");
    // A hard link to a blob, archived before the blob: GNU tar stores the blob as a link to it.
    let layer = img.entries[0].blobs.last().unwrap();
    std::fs::hard_link(
        layout
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
        layout.join("aaa-first"),
    )
    .unwrap();
    let tar = tmp.path().join("linked.tar");
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&layout)
        .args(["aaa-first", "oci-layout", "index.json", "blobs"])
        .status()
        .unwrap();
    assert!(status.success());
    let listing = std::process::Command::new("tar")
        .arg("-tvf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("link to aaa-first"), "{listing}");

    let out = tmp.path().join("out");
    run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                &format!("oci-archive:{}:v1", tar.display()),
                &format!("oci:{}:v1", out.display()),
            ],
        ),
        0,
    );
    let copied = std::fs::read(
        out.join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:")),
    )
    .unwrap();
    assert_eq!(&copied, &img.blobs[layer]);
    // skopeo reads the same archive (its hard-linked blob included) as the same image.
    let raw = support::skopeo::skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:v1", tar.display()),
    ])
    .stdout;
    assert_eq!(raw, img.index);
    let by_skopeo = tmp.path().join("skopeo");
    support::skopeo::skopeo(&[
        "copy",
        &format!("oci-archive:{}:v1", tar.display()),
        &format!("oci:{}:v1", by_skopeo.display()),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Signals while a file read blocks

/// Make a FIFO at `path`.
fn mkfifo(path: &std::path::Path) {
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Whether a thread of process `pid` waits in the kernel for the other end of a FIFO
/// (`/proc/PID/task/*/wchan` is `wait_for_partner`: an `open` of a FIFO nobody writes to).
fn blocked_on_a_fifo(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        std::fs::read_to_string(t.path().join("wchan"))
            .is_ok_and(|w| w.trim() == "wait_for_partner")
    })
}

/// Start `mirror ARGS`, wait until it is blocked opening a FIFO (a read that will never return),
/// send `signal`, and return how it ended (it is killed, and the test fails, if it has not ended
/// 20 s later).
fn interrupt_blocked_read(args: &[&str], signal: &str) -> Output {
    use std::time::{Duration, Instant};
    let mut cmd = support::mirror();
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !blocked_on_a_fifo(child.id()) {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "mirror ended ({status}) before it blocked on the FIFO:\n{}",
                stderr(&out)
            );
        }
        assert!(
            Instant::now() < deadline,
            "mirror never blocked on the FIFO"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("mirror did not stop within 20 s of {signal} while a read blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    eprintln!("--- {signal}: {} ---\n{}", out.status, stderr(&out));
    out
}

#[test]
fn ctrl_c_works_while_index_json_is_a_fifo_that_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    mkfifo(&layout.join("index.json"));
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("oci:{}:v1", tmp.path().join("out").display());
    let out = interrupt_blocked_read(&["copy", &src, &dst], "-INT");
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn sigterm_works_while_a_blob_is_a_fifo_that_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let img = small_image();
    img.write_layout(&layout, "v1");
    let layer = img.entries[0].blobs.last().unwrap();
    let blob = layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    std::fs::remove_file(&blob).unwrap();
    mkfifo(&blob);
    let src = format!("oci:{}:v1", layout.display());
    let dst = format!("oci:{}:v1", tmp.path().join("out").display());
    let out = interrupt_blocked_read(&["copy", "--jobs", "1", &src, &dst], "-TERM");
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn ctrl_c_works_while_an_archive_is_a_fifo_that_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("images.tar");
    mkfifo(&fifo);
    let src = format!("oci-archive:{}:v1", fifo.display());
    let out = interrupt_blocked_read(&["inspect", &src], "-INT");
    assert_eq!(out.status.code(), Some(130));
}

#[test]
fn a_copied_artifact_with_a_subject_is_listed_in_the_referrers_tag_on_registry_2_8() {
    let src = Registry::start();
    let img = small_image();
    src.push_image(&img, "app:v1");
    // An SBOM artifact naming the image as its subject, tagged `sbom` (2.8 has no referrers API).
    let config = src.client().upload_blob("app", b"{}");
    let sbom = src
        .client()
        .upload_blob("app", b"{\"spdxVersion\":\"SPDX-2.3\"}");
    let artifact = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom, "size": 26}],
        "subject": {"mediaType": img.index_media_type, "digest": img.index_digest, "size": img.index.len()},
        "annotations": {"org.opencontainers.image.created": "2026-01-01T00:00:00Z"}
    }))
    .unwrap();
    let r = src.client().put_manifest(
        "app",
        "sbom",
        "application/vnd.oci.image.manifest.v1+json",
        &artifact,
    );
    assert_eq!(r.0, 201);
    let dst = Registry::start();
    run_code(
        &mut support::mirror_cmd("copy", &[&src.url("app:sbom"), &dst.url("app:sbom")]),
        0,
    );
    let tag = format!("sha256-{}", img.index_digest.trim_start_matches("sha256:"));
    let index: serde_json::Value =
        serde_json::from_slice(&dst.manifest_bytes("app", &tag).expect("the referrers tag"))
            .unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        support::digest_of(&artifact).as_str()
    );
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/spdx+json"
    );
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );
}

#[test]
fn control_characters_in_names_from_files_are_escaped_on_output() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let one = small_image();
    let two = generate(&ImageSpec {
        seed: 9,
        ..small_image().spec
    });
    // An escape sequence that would retitle the terminal, a bell, a carriage return.
    let evil = "v1\u{1b}]0;pwned\u{7}\rok";
    one.write_layout(&layout, evil);
    two.write_layout(&layout, "v2\u{1b}[2J");

    // Two images and no name: the error lists the names.
    let out = run_code(
        &mut support::mirror_cmd("inspect", &[&format!("oci:{}", layout.display())]),
        1,
    );
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert!(
        !all.contains('\u{1b}') && !all.contains('\u{7}') && !all.contains('\r'),
        "{all:?}"
    );
    assert!(all.contains("v1\\u{1b}]0;pwned\\u{7}\\u{d}ok"), "{all}");

    // The tree lists the tags.
    let out = run_code(
        &mut support::mirror_cmd(
            "inspect",
            &[&format!("oci:{}@{}", layout.display(), one.index_digest)],
        ),
        0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text:?}"
    );
}
