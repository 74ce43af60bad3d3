//! The sparse-rejection policies and `mirror verify`, against the real registry 2.8 (which refuses
//! every sparse index, naming every missing child) and the sparse test double taught
//! distribution v3's `platforms: list` rule (v3 is not installable here).

use crate::support::{
    self, GeneratedImage, ImageSpec, Registry, SparseOptions, SparseRegistry, generate, run_code,
    skopeo,
};

const TWO: &str = "linux/amd64,linux/arm64";

fn copy(args: &[&str]) -> std::process::Command {
    support::mirror_cmd("copy", args)
}

fn verify(args: &[&str]) -> std::process::Command {
    support::mirror_cmd("verify", args)
}

fn source_with_image() -> (Registry, GeneratedImage) {
    let src = Registry::start();
    let img = generate(&ImageSpec::default());
    skopeo::push_image(&img, &src, "app:v1");
    (src, img)
}

#[test]
fn required_on_registry_2_copies_what_it_names_which_is_every_dropped_entry() {
    let (src, img) = source_with_image();
    let dst = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--on-sparse-reject",
            "required",
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
    let rejection = &r["rejection"];
    assert_eq!(rejection["policy"], "required");
    // Registry 2.8 names every missing child, so `required` ends where `complete` would.
    let required = rejection["required"].as_array().unwrap();
    assert_eq!(required.len(), img.all_digests().len() - 4, "{required:?}");
    assert_eq!(
        rejection["requiredExtraBytes"],
        rejection["completeExtraBytes"]
    );
    assert_eq!(
        dst.client().manifest_bytes("app", "v1").unwrap(),
        img.index,
        "the original index, byte for byte"
    );
    for d in img.all_digests() {
        assert!(dst.client().has_manifest("app", &d), "{d}");
    }
    run_code(&mut verify(&[&dst.url("app:v1")]), 0);
}

#[test]
fn required_against_a_platform_list_rule_copies_only_the_demanded_platform() {
    let (src, img) = source_with_image();
    let dst = SparseRegistry::start_with(SparseOptions {
        platform_list: Some(vec![("linux", "amd64"), ("linux", "s390x")]),
        referrers_api: false,
        ..SparseOptions::default()
    });
    // `report` first: the rule names exactly the s390x child (REGISTRY-FACTS.md, v3 `list`).
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
    let s390x = img.digests_for(&["linux/s390x"], false).remove(0);
    let errors = r["rejection"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["detail"], s390x.as_str());

    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--on-sparse-reject",
            "required",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    let rejection = &r["rejection"];
    let required = rejection["required"].as_array().unwrap();
    // The s390x platform and, as with any kept platform, its bound attestation.
    let want = img.digests_for(&["linux/s390x"], true);
    let got: Vec<&str> = required
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(got.len(), want.len(), "{got:?}");
    for d in &want {
        assert!(got.contains(&d.as_str()), "{got:?}");
    }
    assert!(
        rejection["requiredExtraBytes"].as_u64().unwrap()
            < rejection["completeExtraBytes"].as_u64().unwrap()
    );
    let (_, bytes) = dst.manifest("app", "v1").unwrap();
    assert_eq!(bytes, img.index, "the original digest is kept");
    for p in ["linux/arm/v7", "linux/ppc64le"] {
        let d = img.digests_for(&[p], false).remove(0);
        assert!(dst.manifest("app", &d).is_none(), "{p} was not demanded");
    }
}

#[test]
fn strip_on_registry_2_is_verifiable_and_a_rerun_is_up_to_date() {
    let (src, img) = source_with_image();
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
    let stripped = r["index"]["pushedDigest"].as_str().unwrap().to_string();
    assert_eq!(r["rejection"]["strippedDigest"], stripped.as_str());
    // skopeo reads the stripped index under the tag.
    let served = skopeo::inspect_raw(&format!("docker://{}/app:v1", dst.addr()), true);
    assert_eq!(support::digest_of(&served), stripped);
    // The original bytes are stored at the destination under their own digest.
    let (status, _, original) = dst.client().http(
        "GET",
        &format!("/v2/app/blobs/{}", img.index_digest),
        &[],
        &[],
    );
    assert_eq!(status, 200);
    assert_eq!(original, img.index);

    let out = run_code(&mut verify(&["--format", "json", &dst.url("app:v1")]), 0);
    let v = support::json(&out);
    assert_eq!(v["state"], "stripped");
    assert_eq!(v["stripped"]["original"], img.index_digest.as_str());
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);
    run_code(&mut verify(&["--deep", &dst.url("app:v1")]), 0);

    // A rerun with the same selection is up to date and pushes nothing.
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
    assert_eq!(r["index"]["outcome"], "upToDate");
    assert_eq!(r["index"]["pushedDigest"], stripped.as_str());

    // Damage: a blob of a kept platform deleted from the registry's storage.
    let amd64 = img.digests_for(&["linux/amd64"], false).remove(0);
    let layer = img.entry(&amd64).unwrap().blobs.last().unwrap().clone();
    let (status, _, _) = dst
        .client()
        .http("DELETE", &format!("/v2/app/blobs/{layer}"), &[], &[]);
    assert_eq!(status, 202);
    let out = run_code(&mut verify(&[&dst.url("app:v1")]), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&layer) && text.contains("missing"), "{text}");
}

#[test]
fn a_policy_list_from_a_sparse_layout_ends_with_strip_and_says_why() {
    let (src, img) = source_with_image();
    let dir = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", dir.path().join("l").display());
    run_code(
        &mut copy(&["--platform", TWO, &src.url("app:v1"), &layout]),
        0,
    );
    // The layout holds a sparse index: verify says which entries are absent by design.
    let out = run_code(&mut verify(&["--format", "json", &layout]), 0);
    let v = support::json(&out);
    assert_eq!(v["state"], "sparse");
    assert_eq!(
        v["absent"].as_array().unwrap().len(),
        img.all_digests().len() - 4
    );

    let dst = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--on-sparse-reject",
            "required,strip",
            "--format",
            "json",
            &layout,
            &dst.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "stripped");
    let attempts = r["rejection"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["policy"], "required");
    assert!(
        attempts[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not have it"),
        "{attempts:?}"
    );
    run_code(&mut verify(&[&dst.url("app:v1")]), 0);

    // Without strip in the list, the failure says what was tried and advises strip.
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--on-sparse-reject",
            "complete",
            &layout,
            &dst.url("app:v2"),
        ]),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--on-sparse-reject strip"), "{err}");

    // A blob file deleted from the layout is named by verify.
    let amd64 = img.digests_for(&["linux/amd64"], false).remove(0);
    let layer = img.entry(&amd64).unwrap().blobs.last().unwrap().clone();
    let hex = layer.trim_start_matches("sha256:");
    std::fs::remove_file(dir.path().join("l/blobs/sha256").join(hex)).unwrap();
    let out = run_code(&mut verify(&[&layout]), 1);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&layer), "{text}");
}
