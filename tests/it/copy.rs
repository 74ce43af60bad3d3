//! `mirror copy` between registries: the real registry 2.8 (which refuses sparse indexes) and the
//! sparse-accepting test double.

use serde_json::Value;

use crate::support::{
    self, GeneratedImage, ImageSpec, Registry, SparseRegistry, generate, run_code, skopeo,
};

const TWO: &str = "linux/amd64,linux/arm64";

fn copy(args: &[&str]) -> std::process::Command {
    support::mirror_cmd("copy", args)
}

/// Digests of the two kept platforms and their attestations.
fn kept(img: &GeneratedImage) -> Vec<String> {
    img.digests_for(&["linux/amd64", "linux/arm64"], true)
}

fn dropped(img: &GeneratedImage) -> Vec<String> {
    let k = kept(img);
    img.all_digests()
        .into_iter()
        .filter(|d| !k.contains(d))
        .collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn source_with_image(spec: ImageSpec) -> (Registry, GeneratedImage) {
    let src = Registry::start();
    let img = generate(&spec);
    skopeo::push_image(&img, &src, "app:v1");
    (src, img)
}

#[test]
fn sparse_copy_to_registry_2_is_refused_then_completed() {
    let (src, img) = source_with_image(ImageSpec::default());
    let dst = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        3,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "rejected");
    assert_eq!(r["index"]["digest"], img.index_digest.as_str());
    let rejection = &r["rejection"];
    assert_eq!(rejection["status"], 400);
    let errors = rejection["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    let dropped = dropped(&img);
    for e in errors {
        assert_eq!(e["code"], "MANIFEST_BLOB_UNKNOWN");
        assert!(
            dropped.contains(&e["detail"].as_str().unwrap().to_string()),
            "{e}"
        );
    }
    // Kept children and their blobs are there by digest; nothing of the dropped ones; no tag.
    let kept = kept(&img);
    for d in &kept {
        assert!(dst.client().has_manifest("app", d), "kept {d} missing");
        for b in &img.entry(d).unwrap().blobs {
            assert!(
                dst.client().has_blob("app", b),
                "blob {b} of kept {d} missing"
            );
        }
    }
    let kept_blobs: Vec<&String> = kept
        .iter()
        .flat_map(|d| &img.entry(d).unwrap().blobs)
        .collect();
    for d in &dropped {
        assert!(
            !dst.client().has_manifest("app", d),
            "dropped {d} was copied"
        );
        for b in &img.entry(d).unwrap().blobs {
            if !kept_blobs.contains(&b) {
                assert!(
                    !dst.client().has_blob("app", b),
                    "blob {b} of dropped {d} was copied"
                );
            }
        }
    }
    assert!(
        dst.client().manifest_bytes("app", "v1").is_none(),
        "the tag must not be set"
    );
    // The cost of `complete` is the dropped entries' own blobs and manifests.
    let all = img.all_digests();
    let extra = img.unique_blob_bytes(&refs(&all)) - img.unique_blob_bytes(&refs(&kept))
        + dropped
            .iter()
            .map(|d| img.entry(d).unwrap().size)
            .sum::<u64>();
    assert_eq!(rejection["completeExtraBytes"], extra);
    assert_eq!(rejection["completePossible"], true);
    assert!(
        rejection["strippedDigest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    // The transferred bytes are the kept blobs, the shared base once.
    assert_eq!(
        r["blobs"]["transferredBytes"],
        img.unique_blob_bytes(&refs(&kept))
    );

    // The text report explains both ways forward.
    let out = run_code(
        &mut copy(&["--platform", TWO, &src.url("app:v1"), &dst.url("app:v1")]),
        3,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("MANIFEST_BLOB_UNKNOWN"), "{text}");
    assert!(text.contains("--on-sparse-reject complete"), "{text}");
    assert!(text.contains("--on-sparse-reject strip"), "{text}");

    // `complete` copies the rest and pushes the original bytes.
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--on-sparse-reject",
            "complete",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "completed");
    assert_eq!(r["index"]["pushedDigest"], img.index_digest.as_str());
    assert_eq!(dst.client().manifest_bytes("app", "v1").unwrap(), img.index);
    assert_eq!(skopeo::inspect_raw(&dst.url("app:v1"), true), img.index);
}

#[test]
fn strip_pushes_an_index_of_exactly_the_kept_entries() {
    let (src, img) = source_with_image(ImageSpec::default());
    let dst = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--on-sparse-reject",
            "strip",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "stripped");
    assert_eq!(r["index"]["digest"], img.index_digest.as_str());
    let pushed = r["index"]["pushedDigest"].as_str().unwrap();
    assert_ne!(pushed, img.index_digest);
    let bytes = dst.client().manifest_bytes("app", "v1").expect("tag set");
    assert_eq!(support::digest_of(&bytes), pushed);
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    let listed: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["digest"].as_str().unwrap().to_string())
        .collect();
    let kept = kept(&img);
    let in_source_order: Vec<String> = img
        .all_digests()
        .into_iter()
        .filter(|d| kept.contains(d))
        .collect();
    assert_eq!(
        listed, in_source_order,
        "the kept entries, in the source's order"
    );
    // The stripped digest a `report` run predicts is the one `strip` pushes.
    let dst2 = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &dst2.url("app:v1"),
        ]),
        3,
    );
    assert_eq!(support::json(&out)["rejection"]["strippedDigest"], pushed);
}

#[test]
fn all_platforms_keeps_the_digest_and_a_rerun_moves_nothing() {
    let (src, img) = source_with_image(ImageSpec::default());
    let dst = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("mirror/app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "pushed");
    assert_eq!(r["index"]["pushedDigest"], img.index_digest.as_str());
    assert_eq!(
        skopeo::inspect_raw(&dst.url("mirror/app:v1"), true),
        img.index
    );
    let all = img.all_digests();
    assert_eq!(
        r["blobs"]["transferredBytes"],
        img.unique_blob_bytes(&refs(&all))
    );
    assert_eq!(
        r["blobs"]["transferredCount"],
        img.unique_blob_count(&refs(&all)) as u64
    );

    let out = run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("mirror/app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "upToDate");
    assert_eq!(r["blobs"]["transferredBytes"], 0);
    assert_eq!(r["blobs"]["transferredCount"], 0);
}

#[test]
fn sparse_push_succeeds_where_the_destination_accepts_it() {
    let (src, img) = source_with_image(ImageSpec::default());
    let dst = SparseRegistry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "pushed");
    assert_eq!(r["index"]["pushedDigest"], img.index_digest.as_str());
    assert!(r["rejection"].is_null());
    let (_, bytes) = dst.manifest("app", "v1").expect("tag set");
    assert_eq!(bytes, img.index, "the original index, byte for byte");
    let kept = kept(&img);
    for d in &kept {
        assert!(dst.manifest("app", d).is_some(), "kept {d}");
    }
    for d in dropped(&img) {
        assert!(dst.manifest("app", &d).is_none(), "dropped {d} was copied");
    }
    // Shared base counted once.
    assert_eq!(
        r["blobs"]["transferredBytes"],
        img.unique_blob_bytes(&refs(&kept))
    );
    assert_eq!(
        r["blobs"]["transferredCount"],
        img.unique_blob_count(&refs(&kept)) as u64
    );
    let decisions: Vec<&str> = r["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions.iter().filter(|d| **d == "keep").count(), 4);
    assert_eq!(decisions.iter().filter(|d| **d == "drop").count(), 6);

    // A rerun moves nothing.
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "upToDate");
    assert_eq!(r["blobs"]["transferredBytes"], 0);
}

#[test]
fn docker_manifest_list_keeps_its_digest() {
    let (src, img) = source_with_image(ImageSpec {
        docker: true,
        attestations: false,
        ..ImageSpec::default()
    });
    assert_eq!(img.index_media_type, support::MT_DOCKER_LIST);
    let dst = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    assert_eq!(
        support::json(&out)["index"]["pushedDigest"],
        img.index_digest.as_str()
    );
    assert_eq!(dst.client().manifest_bytes("app", "v1").unwrap(), img.index);
    let (media_type, _) = dst.client().get_manifest("app", "v1").unwrap();
    assert_eq!(media_type, support::MT_DOCKER_LIST);
}

#[test]
fn single_manifest_by_digest_keeps_its_digest() {
    let img = generate(&ImageSpec {
        single: true,
        platforms: vec!["linux/arm64"],
        ..ImageSpec::default()
    });
    let src = Registry::start();
    skopeo::push_image(&img, &src, "one:v1");
    let dst = Registry::start();
    let by_digest = src.url(&format!("one@{}", img.index_digest));
    let out = run_code(
        &mut copy(&["--format", "json", &by_digest, &dst.url("one:v1")]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "single");
    assert_eq!(dst.client().manifest_bytes("one", "v1").unwrap(), img.index);
    // --platform must match the image's own platform.
    let out = run_code(
        &mut copy(&["--platform", "linux/amd64", &by_digest, &dst.url("one:v2")]),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("linux/arm64"), "{err}");
    assert!(dst.client().manifest_bytes("one", "v2").is_none());
    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/arm64",
            "--format",
            "json",
            &by_digest,
            &dst.url("one:v1"),
        ]),
        0,
    );
    assert_eq!(support::json(&out)["index"]["outcome"], "upToDate");
}

#[test]
fn bad_input_is_a_clear_error_and_writes_nothing() {
    let (src, _img) = source_with_image(ImageSpec::default());
    let dst = Registry::start();
    let before = support::tree_hash(dst.storage_dir());

    let out = run_code(&mut copy(&["docker://Bad/Name:x", &dst.url("app:v1")]), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid reference") && err.contains("Bad"),
        "{err}"
    );

    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid platform \"linux\""), "{err}");

    let out = run_code(&mut copy(&[&src.url("app:nope"), &dst.url("app:v1")]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope not found") && err.contains("v1"),
        "names the tags that exist: {err}"
    );

    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/riscv64,linux/amd64",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("linux/riscv64") && err.contains("linux/s390x"),
        "names what exists: {err}"
    );

    assert_eq!(
        support::tree_hash(dst.storage_dir()),
        before,
        "nothing was written"
    );

    // --skip-missing-platforms turns it into a warning.
    let sparse = SparseRegistry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/riscv64,linux/amd64",
            "--skip-missing-platforms",
            "--format",
            "json",
            &src.url("app:v1"),
            &sparse.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert!(
        r["warnings"][0].as_str().unwrap().contains("linux/riscv64"),
        "{r}"
    );
}

#[test]
fn broken_manifests_are_errors_not_panics() {
    let src = SparseRegistry::start();
    let dst = SparseRegistry::start();
    src.insert_manifest("bad", Some("json"), support::MT_OCI_INDEX, b"{not json");
    let big = format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"manifests\":[],\"x\":\"{}\"}}",
        support::MT_OCI_INDEX,
        "a".repeat(4 * 1024 * 1024 + 10)
    );
    src.insert_manifest("bad", Some("big"), support::MT_OCI_INDEX, big.as_bytes());
    for (tag, word) in [("json", "not valid JSON"), ("big", "limit")] {
        let out = run_code(
            &mut copy(&[&src.url(&format!("bad:{tag}")), &dst.url("bad:x")]),
            1,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(word), "{tag}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    assert!(dst.manifest("bad", "x").is_none());
}
