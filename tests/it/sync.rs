//! `mirror sync --config`: the nightly job, against real registries.

use std::path::Path;

use serde_json::Value;

use crate::support::{
    self, ImageSpec, Registry, SparseRegistry, generate, mirror, run_code, skopeo,
};

fn sync(config: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = mirror();
    c.args(["sync", "--config", config.to_str().unwrap()])
        .args(extra);
    c
}

struct World {
    src: Registry,
    dst: SparseRegistry,
    layout: tempfile::TempDir,
    config: std::path::PathBuf,
}

/// Three sources: one image to a registry, a regex+latest repository into a shared layout, and an
/// image that lacks a requested platform (a warning with skip-missing-platforms).
fn world() -> World {
    let src = Registry::start();
    let app = generate(&ImageSpec {
        seed: 1,
        ..ImageSpec::default()
    });
    skopeo::push_image(&app, &src, "team/app:v1");
    for (i, tag) in ["v1.8.0", "v1.9.0", "v1.10.0", "v2.0.0"].iter().enumerate() {
        let img = generate(&ImageSpec {
            seed: 10 + i as u64,
            platforms: vec!["linux/amd64", "linux/arm64"],
            ..ImageSpec::default()
        });
        skopeo::push_image(&img, &src, &format!("tools/exporter:{tag}"));
    }
    let amd64_only = generate(&ImageSpec {
        seed: 30,
        platforms: vec!["linux/amd64", "linux/s390x"],
        ..ImageSpec::default()
    });
    skopeo::push_image(&amd64_only, &src, "legacy/db:5");
    let dst = SparseRegistry::start();
    let layout = tempfile::tempdir().unwrap();
    let config = layout.path().join("sync.yaml");
    let text = format!(
        r#"version: 1
defaults:
  platforms: [linux/amd64, linux/arm64]
  skip-missing-platforms: true
images:
  - source: docker://{src}/team/app
    destination: docker://{dst}/mirror/app
    tags: ["v1"]
  - source: docker://{src}/tools/exporter
    destination: oci:{layout}
    tags: {{ regex: '^v1\.[0-9]+\.[0-9]+$', latest: 2 }}
    platforms: [linux/amd64]
  - source: docker://{src}/legacy/db
    destination: docker://{dst}/mirror/db
    tags: ["5"]
"#,
        src = src.addr(),
        dst = dst.addr(),
        layout = layout.path().join("disk").display()
    );
    std::fs::write(&config, text).unwrap();
    World {
        src,
        dst,
        layout,
        config,
    }
}

#[test]
fn a_nightly_sync_then_a_no_op_rerun_then_a_moved_tag() {
    let w = world();
    let out = run_code(&mut sync(&w.config, &["--format", "json"]), 0);
    let r = support::json(&out);
    assert_eq!(r["version"], 1);
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len(), 4, "app:v1, exporter v1.10.0 and v1.9.0, db:5");
    assert_eq!(r["summary"]["copied"], 4);
    assert_eq!(r["summary"]["failed"], 0);
    let names: Vec<&str> = images
        .iter()
        .map(|i| i["destination"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(":tools/exporter:v1.10.0")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.ends_with(":tools/exporter:v1.9.0")),
        "{names:?}"
    );
    let db = images
        .iter()
        .find(|i| i["source"].as_str().unwrap().ends_with("legacy/db:5"))
        .unwrap();
    assert!(
        db["warnings"][0].as_str().unwrap().contains("linux/arm64"),
        "{db}"
    );
    // The layout holds both exporter tags under REPO:TAG names, and skopeo reads them.
    let disk = w.layout.path().join("disk");
    let tags = support::umoci::tags(&disk);
    assert_eq!(
        tags,
        vec!["tools/exporter:v1.10.0", "tools/exporter:v1.9.0"]
    );
    let raw = skopeo::inspect_raw(
        &format!("oci:{}:tools/exporter:v1.9.0", disk.display()),
        false,
    );
    assert_eq!(
        raw,
        w.src
            .client()
            .manifest_bytes("tools/exporter", "v1.9.0")
            .unwrap()
    );

    // Nothing changed: every image is up to date, no blob moves, only HEAD/GET requests.
    w.dst.clear_requests();
    let before = support::tree_hash(&disk);
    let out = run_code(&mut sync(&w.config, &["--format", "json"]), 0);
    let r = support::json(&out);
    assert_eq!(r["summary"]["upToDate"], 4, "{}", r["summary"]);
    for i in r["images"].as_array().unwrap() {
        assert_eq!(i["index"]["outcome"], "upToDate");
        assert_eq!(i["blobs"]["transferredBytes"], 0);
    }
    assert!(
        w.dst
            .requests()
            .iter()
            .all(|(m, _)| m == "HEAD" || m == "GET"),
        "{:?}",
        w.dst.requests()
    );
    assert!(
        w.dst.requests().iter().all(|(_, p)| !p.contains("/blobs/")),
        "no blob traffic: {:?}",
        w.dst.requests()
    );
    assert_eq!(support::tree_hash(&disk), before);

    // The source tag moves: that image is copied again.
    let newer = generate(&ImageSpec {
        seed: 99,
        ..ImageSpec::default()
    });
    skopeo::push_image(&newer, &w.src, "team/app:v1");
    let out = run_code(&mut sync(&w.config, &["--format", "json"]), 0);
    let r = support::json(&out);
    assert_eq!(r["summary"]["copied"], 1);
    assert_eq!(r["summary"]["upToDate"], 3);
    assert_eq!(w.dst.manifest("mirror/app", "v1").unwrap().1, newer.index);
}

#[test]
fn dry_run_writes_nothing_and_shards_split_the_pairs() {
    let w = world();
    let disk = w.layout.path().join("disk");
    w.dst.clear_requests();
    let out = run_code(&mut sync(&w.config, &["--dry-run", "--format", "json"]), 0);
    let r = support::json(&out);
    assert_eq!(r["summary"]["planned"], 4);
    assert!(!disk.exists(), "a dry run creates no layout");
    assert!(
        w.dst
            .requests()
            .iter()
            .all(|(m, _)| m == "HEAD" || m == "GET")
    );
    assert!(w.dst.manifest("mirror/app", "v1").is_none());

    let mut seen = Vec::new();
    for k in 0..2 {
        let out = run_code(
            &mut sync(
                &w.config,
                &[
                    "--dry-run",
                    "--format",
                    "json",
                    "--shard",
                    &format!("{k}/2"),
                ],
            ),
            0,
        );
        let r = support::json(&out);
        for i in r["images"].as_array().unwrap() {
            seen.push(i["destination"].as_str().unwrap().to_string());
        }
        assert_eq!(
            r["summary"]["otherShards"].as_u64().unwrap()
                + r["summary"]["planned"].as_u64().unwrap(),
            4
        );
    }
    seen.sort();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, 4, "every pair once: {seen:?}");
    assert_eq!(seen.len(), 4, "no pair twice: {seen:?}");
}

#[test]
fn a_failure_is_reported_and_the_others_still_run() {
    let w = world();
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace(r#"tags: ["5"]"#, r#"tags: ["5", "gone"]"#);
    std::fs::write(&w.config, text).unwrap();
    let report = w.layout.path().join("report.json");
    let out = run_code(
        &mut sync(&w.config, &["--report", report.to_str().unwrap()]),
        1,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("failed") && text.contains("gone not found"),
        "{text}"
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["summary"]["failed"], 1);
    assert_eq!(r["summary"]["copied"], 4);
    let failed = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| !i["error"].is_null())
        .unwrap();
    assert!(failed["error"].as_str().unwrap().contains("gone"));
    // --fail-fast starts nothing after the first failure (it is the last pair here, so put it
    // first; one pair at a time, so that nothing else is in flight when it fails).
    let text = std::fs::read_to_string(&w.config)
        .unwrap()
        .replace(r#"tags: ["v1"]"#, r#"tags: ["gone", "v1"]"#);
    std::fs::write(&w.config, text).unwrap();
    let out = run_code(
        &mut sync(
            &w.config,
            &["--fail-fast", "--parallel-images", "1", "--format", "json"],
        ),
        1,
    );
    assert_eq!(support::json(&out)["images"].as_array().unwrap().len(), 1);
}

#[test]
fn config_errors_are_exit_2_with_line_and_key() {
    let w = world();
    let text = std::fs::read_to_string(&w.config).unwrap().replace(
        "    platforms: [linux/amd64]",
        "    platfroms: [linux/amd64]",
    );
    std::fs::write(&w.config, text).unwrap();
    let out = run_code(&mut sync(&w.config, &[]), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("platfroms") && err.contains("line 12") && err.contains("sync.yaml"),
        "{err}"
    );
    assert!(
        w.dst.manifest("mirror/app", "v1").is_none(),
        "nothing was copied"
    );
    let out = run_code(&mut sync(&w.layout.path().join("missing.yaml"), &[]), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}

#[test]
fn two_syncs_never_write_one_layout_at_once() {
    let w = world();
    let disk = w.layout.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let lock = std::fs::File::create(disk.join(".mirror-sync.lock")).unwrap();
    lock.lock().unwrap();
    let out = run_code(&mut sync(&w.config, &[]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another mirror sync"), "{err}");
    drop(lock);
    run_code(&mut sync(&w.config, &[]), 0);
}
