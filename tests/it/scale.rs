//! Sync at scale (issue 17): many images with several in flight, a source behind a counting
//! proxy, per-host limits. The proxy is the fault proxy with no fault in force: a TEST DOUBLE
//! that forwards bytes to the real registry 2.8 and records every request head, so the tests
//! count what `mirror` asks the source. No test here looks at a clock; times are the benchmark's.

use serde_json::{Value, json};

use crate::referrers::{push_cosign_sig, push_sbom, push_tag_index, tag_of};
use crate::support::fault_proxy::{FaultProxy, Faults, Seen};
use crate::support::{
    self, Client, GeneratedImage, ImageSpec, Registry, generate, run_code, skopeo,
};

/// A small two-platform image, different for each seed.
fn small(seed: u64) -> GeneratedImage {
    generate(&ImageSpec {
        seed,
        platforms: vec!["linux/amd64", "linux/arm64"],
        layers_per_platform: 1,
        layer_size: 16 * 1024,
        base_size: 16 * 1024,
        ..ImageSpec::default()
    })
}

struct World {
    src: Registry,
    proxy: FaultProxy,
    dst: Registry,
    work: tempfile::TempDir,
    /// `(repository, tag, image)` at the source, in config order.
    images: Vec<(String, String, GeneratedImage)>,
}

impl World {
    /// `app0`…`app{n-1}` with tag `v1`, and `multi` with tags `v1` and `v2`.
    fn new(n: usize, faults: Faults) -> World {
        let src = Registry::start();
        let mut images = Vec::new();
        for i in 0..n {
            images.push((format!("app{i}"), "v1".to_string(), small(100 + i as u64)));
        }
        for (i, tag) in ["v1", "v2"].iter().enumerate() {
            images.push(("multi".into(), tag.to_string(), small(200 + i as u64)));
        }
        for (repo, tag, img) in &images {
            skopeo::push_image(img, &src, &format!("{repo}:{tag}"));
        }
        let proxy = FaultProxy::start(&src.addr(), faults);
        World {
            src,
            proxy,
            dst: Registry::start(),
            work: tempfile::tempdir().unwrap(),
            images,
        }
    }

    fn client(&self) -> Client {
        Client::new(self.src.addr())
    }

    /// A config copying every image through the proxy to `destination(repo)`, with `extra`
    /// appended (a `registries:` map).
    fn config(&self, destination: impl Fn(&str) -> String, extra: &str) -> std::path::PathBuf {
        let mut text = String::from("version: 1\nimages:\n");
        let mut repos: Vec<&str> = Vec::new();
        for (repo, _, _) in &self.images {
            if !repos.contains(&repo.as_str()) {
                repos.push(repo);
            }
        }
        for repo in repos {
            let tags: Vec<String> = self
                .images
                .iter()
                .filter(|(r, _, _)| r == repo)
                .map(|(_, t, _)| format!("{t:?}"))
                .collect();
            text.push_str(&format!(
                "  - source: {}\n    destination: {}\n    tags: [{}]\n",
                self.proxy.url(repo),
                destination(repo),
                tags.join(", ")
            ));
        }
        text.push_str(extra);
        let path = self.work.path().join("sync.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn to_registry(&self, extra: &str) -> std::path::PathBuf {
        let dst = self.dst.addr();
        self.config(|repo| format!("docker://{dst}/mirror/{repo}"), extra)
    }

    fn tags(&self) -> usize {
        self.images.len()
    }
}

fn sync(config: &std::path::Path, extra: &[&str]) -> std::process::Command {
    let mut c = support::mirror();
    c.args([
        "sync",
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ])
    .args(extra);
    c
}

fn is_manifest(s: &Seen) -> bool {
    s.path.contains("/manifests/")
}

fn count(seen: &[Seen], f: impl Fn(&Seen) -> bool) -> usize {
    seen.iter().filter(|s| f(s)).count()
}

/// Sign `subject` with a signature of its own (`label` makes it differ from another one).
fn push_signature(client: &Client, repo: &str, subject: &str, label: &str) -> String {
    let config = client.upload_blob(repo, b"{}");
    let payload = format!("{{\"subject\":\"{subject}\",\"label\":\"{label}\"}}");
    let layer = client.upload_blob(repo, payload.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_MANIFEST,
        "config": { "mediaType": support::MT_OCI_CONFIG, "digest": config, "size": 2 },
        "layers": [ { "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer, "size": payload.len() } ]
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let (status, _, _) = client.put_manifest(
        repo,
        &format!("{}.sig", tag_of(subject)),
        support::MT_OCI_MANIFEST,
        &bytes,
    );
    assert_eq!(status, 201);
    support::digest_of(&bytes)
}

#[test]
fn a_no_op_sync_costs_heads_at_the_source_and_no_manifest_get() {
    let w = World::new(4, Faults::default());
    let client = w.client();
    let app0 = &w.images[0].2;
    let subject = (
        app0.index_digest.as_str(),
        app0.index_media_type.as_str(),
        app0.index.len() as u64,
    );
    push_cosign_sig(&client, "app0", &app0.index_digest);
    let (_, sbom) = push_sbom(&client, "app0", subject, "sbom one");
    push_tag_index(&client, "app0", &app0.index_digest, vec![sbom]);
    let config = w.to_registry("");
    let first = support::json(&support::run_ok(&mut sync(&config, &[])));
    assert_eq!(first["summary"]["copied"], w.tags(), "{first:#}");

    w.proxy.clear_log();
    let again = support::json(&support::run_ok(&mut sync(&config, &[])));
    assert_eq!(again["summary"]["upToDate"], w.tags(), "{again:#}");
    let seen = w.proxy.seen();
    let listing: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        count(&seen, |s| is_manifest(s) && s.method == "GET"),
        0,
        "{listing:#?}"
    );
    assert_eq!(count(&seen, |s| s.path.contains("/blobs/")), 0);
    // One HEAD per tag, one per signature or referrers tag (app0's `.sig` and `sha256-…`).
    let heads = count(&seen, |s| is_manifest(s) && s.method == "HEAD");
    assert_eq!(heads, w.tags() + 2, "{listing:#?}");
    // One tags list per repository, one referrers probe for the registry, one ping.
    assert_eq!(count(&seen, |s| s.path.ends_with("/tags/list")), 5);
    assert_eq!(count(&seen, |s| s.path.contains("/referrers/")), 1);
    assert_eq!(count(&seen, |s| s.path == "/v2/"), 1, "{listing:#?}");
    // At most 2 per tag plus one per signature or referrers tag, besides the run's one ping.
    assert!(seen.len() - 1 <= 2 * w.tags() + 2, "{listing:#?}");
}

#[test]
fn a_moved_tag_a_new_signature_and_a_new_referrer_are_synced_on_rerun() {
    let w = World::new(3, Faults::default());
    let client = w.client();
    let app0 = w.images[0].2.clone();
    let subject = (
        app0.index_digest.as_str(),
        app0.index_media_type.as_str(),
        app0.index.len() as u64,
    );
    let (_, one) = push_sbom(&client, "app0", subject, "sbom one");
    push_tag_index(&client, "app0", &app0.index_digest, vec![one.clone()]);
    let config = w.to_registry("");
    support::run_ok(&mut sync(&config, &[]));

    // app1:v1 moves; app2 gets signed; app0 gets a second SBOM.
    let moved = small(999);
    skopeo::push_image(&moved, &w.src, "app1:v1");
    let app2 = &w.images[2].2;
    let sig = push_signature(&client, "app2", &app2.index_digest, "first");
    let (two_digest, two) = push_sbom(&client, "app0", subject, "sbom two");
    push_tag_index(&client, "app0", &app0.index_digest, vec![one, two]);
    let r = support::json(&support::run_ok(&mut sync(&config, &[])));
    assert_eq!(r["summary"]["failed"], 0, "{r:#}");
    let dst = Client::new(w.dst.addr());
    assert_eq!(
        dst.manifest_bytes("mirror/app1", "v1"),
        Some(moved.index.clone())
    );
    let sig_tag = format!("{}.sig", tag_of(&app2.index_digest));
    assert_eq!(
        dst.manifest_bytes("mirror/app2", &sig_tag)
            .map(|b| support::digest_of(&b)),
        Some(sig.clone())
    );
    assert!(dst.has_manifest("mirror/app0", &two_digest));

    // Re-signed: the new signature replaces the old one on the rerun.
    let resigned = push_signature(&client, "app2", &app2.index_digest, "second");
    assert_ne!(resigned, sig);
    support::run_ok(&mut sync(&config, &[]));
    assert_eq!(
        dst.manifest_bytes("mirror/app2", &sig_tag)
            .map(|b| support::digest_of(&b)),
        Some(resigned)
    );
}

#[test]
fn max_requests_bounds_the_requests_in_flight_to_a_host() {
    let w = World::new(4, Faults::default());
    let proxy = w.proxy.addr();
    let config = w.to_registry(&format!("registries:\n  {proxy}: {{ max-requests: 2 }}\n"));
    support::run_ok(&mut sync(
        &config,
        &["--parallel-images", "4", "--jobs", "8"],
    ));
    let most = w.proxy.max_in_flight();
    assert!((1..=2).contains(&most), "{most} in flight at once");

    // The same from the flag, for copy.
    w.proxy.clear_log();
    let out = w.work.path().join("one");
    support::run_ok(&mut support::mirror_cmd(
        "copy",
        &[
            "--max-requests",
            "1",
            &w.proxy.url("multi:v2"),
            &format!("oci:{}:multi", out.display()),
        ],
    ));
    assert_eq!(w.proxy.max_in_flight(), 1);
}

#[test]
fn many_images_into_one_layout_keep_every_entry_and_the_report_keeps_config_order() {
    let w = World::new(6, Faults::default());
    let layout = w.work.path().join("layout");
    let config = w.config(|_| format!("oci:{}", layout.display()), "");
    let out = support::run_ok(&mut sync(
        &config,
        &["--parallel-images", "4", "--progress", "never"],
    ));
    let report = support::json(&out);
    let sources: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    let want: Vec<String> = w
        .images
        .iter()
        .map(|(repo, tag, _)| w.proxy.url(&format!("{repo}:{tag}")))
        .collect();
    assert_eq!(sources, want);
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut names: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    names.sort();
    let mut want: Vec<String> = w
        .images
        .iter()
        .map(|(repo, tag, _)| format!("{repo}:{tag}"))
        .collect();
    want.sort();
    assert_eq!(names, want);
    // Not a terminal: one line per finished tag.
    let err = String::from_utf8_lossy(&out.stderr);
    let finished = err.lines().filter(|l| l.starts_with("pushed")).count();
    assert_eq!(finished, w.tags(), "{err}");
}

#[test]
fn fail_fast_starts_nothing_new_and_lets_the_images_in_flight_finish() {
    // Slow blob downloads keep the first image in flight while the second fails at once.
    let w = World::new(
        3,
        Faults {
            throttle_blob_bytes_per_sec: Some(64 * 1024),
            ..Faults::default()
        },
    );
    let dst = w.dst.addr();
    let text = format!(
        "version: 1\nimages:\n\
         - {{source: {}, destination: 'docker://{dst}/mirror/app0', tags: [v1]}}\n\
         - {{source: {}, destination: 'docker://{dst}/mirror/gone', tags: [gone]}}\n\
         - {{source: {}, destination: 'docker://{dst}/mirror/app1', tags: [v1]}}\n\
         - {{source: {}, destination: 'docker://{dst}/mirror/app2', tags: [v1]}}\n",
        w.proxy.url("app0"),
        w.proxy.url("app1"),
        w.proxy.url("app1"),
        w.proxy.url("app2"),
    );
    let config = w.work.path().join("sync.yaml");
    std::fs::write(&config, text).unwrap();
    let out = run_code(
        &mut sync(&config, &["--fail-fast", "--parallel-images", "2"]),
        1,
    );
    let report = support::json(&out);
    let images = report["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{report:#}");
    assert!(images[0]["error"].is_null(), "{report:#}");
    assert!(
        images[1]["error"].as_str().unwrap().contains("gone"),
        "{report:#}"
    );
    let dst = Client::new(w.dst.addr());
    assert!(dst.has_manifest("mirror/app0", "v1"), "in flight: finished");
    assert!(!dst.has_manifest("mirror/app1", "v1"), "not started");
    assert!(!dst.has_manifest("mirror/app2", "v1"), "not started");
}

#[test]
fn sync_progress_draws_an_overall_bar_and_keeps_the_report_on_stdout() {
    let w = World::new(2, Faults::default());
    let config = w.to_registry("");
    let out = support::run_ok(&mut sync(&config, &["--progress", "always"]));
    let report = support::json(&out);
    assert_eq!(report["summary"]["copied"], w.tags(), "{report:#}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains('\x1b'), "bars on stderr: {err}");
    assert!(err.contains("tags"), "the overall bar counts tags: {err}");
    for (repo, tag, _) in &w.images {
        let source = w.proxy.url(&format!("{repo}:{tag}"));
        assert!(
            err.lines()
                .any(|l| l.contains("pushed") && l.contains(&source)),
            "a line for {source}: {err}"
        );
    }
}
