//! `oci:` layouts and `oci-archive:` tarballs: the air-gap round trip, checked with skopeo and umoci.

use std::path::Path;

use serde_json::Value;

use crate::support::{
    self, GeneratedImage, ImageSpec, Registry, generate, mirror, run_code, skopeo, umoci,
};

const TWO: &str = "linux/amd64,linux/arm64";

fn copy(args: &[&str]) -> std::process::Command {
    support::mirror_cmd("copy", args)
}

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn source(spec: ImageSpec) -> (Registry, GeneratedImage) {
    let src = Registry::start();
    let img = generate(&spec);
    skopeo::push_image(&img, &src, "app:v1");
    (src, img)
}

#[test]
fn sparse_copy_into_a_layout_keeps_the_index_digest() {
    let (src, img) = source(ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &oci(&layout, "v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["outcome"], "pushed");
    assert_eq!(
        skopeo::inspect_raw(&oci(&layout, "v1"), false),
        img.index,
        "skopeo reads the original index"
    );
    let kept = img.digests_for(&["linux/amd64", "linux/arm64"], true);
    let mut kept_blobs = Vec::new();
    for d in &kept {
        let bytes = std::fs::read(blob_path(&layout, d)).unwrap();
        assert_eq!(support::digest_of(&bytes), *d);
        for b in &img.entry(d).unwrap().blobs {
            let bytes =
                std::fs::read(blob_path(&layout, b)).unwrap_or_else(|e| panic!("blob {b}: {e}"));
            assert_eq!(support::digest_of(&bytes), *b, "blob verifies");
            kept_blobs.push(b.clone());
        }
    }
    for e in img.entries.iter().filter(|e| !kept.contains(&e.digest)) {
        assert!(
            !blob_path(&layout, &e.digest).exists(),
            "dropped {} copied",
            e.digest
        );
        for b in e.blobs.iter().filter(|b| !kept_blobs.contains(b)) {
            assert!(
                !blob_path(&layout, b).exists(),
                "blob {b} of dropped entry copied"
            );
        }
    }
    // Retagging replaces the name instead of adding a second one.
    run_code(
        &mut copy(&["--platform", TWO, &src.url("app:v1"), &oci(&layout, "v1")]),
        0,
    );
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(umoci::tags(&layout), vec!["v1"]);
}

#[test]
fn registry_to_layout_to_registry_round_trip() {
    let (src, img) = source(ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("disk");
    run_code(
        &mut copy(&[
            "--all-platforms",
            &src.url("app:v1"),
            &oci(&layout, "app-v1"),
        ]),
        0,
    );
    let far = Registry::start();
    let out = run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &oci(&layout, "app-v1"),
            &far.url("mirror/app:v1"),
        ]),
        0,
    );
    assert_eq!(
        support::json(&out)["index"]["pushedDigest"],
        img.index_digest.as_str()
    );
    assert_eq!(
        far.client().manifest_bytes("mirror/app", "v1").unwrap(),
        img.index
    );
    // skopeo can take it from there.
    let again = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:copy", again.path().display());
    skopeo::skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &far.url("mirror/app:v1"),
        &dest,
    ]);
    assert_eq!(skopeo::inspect_raw(&dest, false), img.index);
}

#[test]
fn two_images_in_one_layout_share_their_base_layer() {
    let src = Registry::start();
    let a = generate(&ImageSpec {
        seed: 1,
        ..ImageSpec::default()
    });
    let b = generate(&ImageSpec {
        seed: 2,
        ..ImageSpec::default()
    });
    skopeo::push_image(&a, &src, "a:v1");
    skopeo::push_image(&b, &src, "b:v1");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("shared");
    run_code(
        &mut copy(&[
            "--platform",
            "linux/amd64",
            &src.url("a:v1"),
            &oci(&layout, "a:v1"),
        ]),
        0,
    );
    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/amd64",
            "--format",
            "json",
            &src.url("b:v1"),
            &oci(&layout, "b:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(
        r["blobs"]["presentCount"], 1,
        "the shared base is already there"
    );
    let base = a
        .platform_entry("linux/amd64")
        .blobs
        .iter()
        .find(|d| b.platform_entry("linux/amd64").blobs.contains(d))
        .expect("a shared blob");
    assert_eq!(r["blobs"]["presentBytes"], a.blobs[base].len() as u64);
    assert_eq!(umoci::tags(&layout), vec!["a:v1", "b:v1"]);
    assert_eq!(skopeo::inspect_raw(&oci(&layout, "a:v1"), false), a.index);
    assert_eq!(skopeo::inspect_raw(&oci(&layout, "b:v1"), false), b.index);
}

#[test]
fn archive_round_trip_keeps_the_digest() {
    let (src, img) = source(ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let tar = tmp.path().join("bundle.tar");
    let archive = format!("oci-archive:{}:v1", tar.display());
    run_code(
        &mut copy(&["--platform", TWO, &src.url("app:v1"), &archive]),
        0,
    );
    assert!(tar.is_file());
    assert_eq!(
        skopeo::inspect_raw(&archive, false),
        img.index,
        "skopeo reads the archive"
    );
    let far = support::SparseRegistry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &archive,
            &far.url("app:v1"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(r["index"]["pushedDigest"], img.index_digest.as_str());
    assert_eq!(far.manifest("app", "v1").unwrap().1, img.index);
}

#[test]
fn umoci_unpacks_a_single_platform_written_by_mirror() {
    let (src, img) = source(ImageSpec::default());
    let amd64 = img.platform_entry("linux/amd64").digest.clone();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("one");
    run_code(
        &mut copy(&[&src.url(&format!("app@{amd64}")), &oci(&layout, "amd64")]),
        0,
    );
    let unpacked = umoci::unpack(&layout, "amd64");
    let rootfs = umoci::bundle_dir(&unpacked).join("rootfs");
    assert!(
        std::fs::read_dir(&rootfs).unwrap().count() > 0,
        "the layers were unpacked"
    );
}

#[test]
fn a_layout_written_by_skopeo_is_read() {
    let (src, img) = source(ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let by_skopeo = format!("oci:{}:s", tmp.path().join("sk").display());
    skopeo::skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &src.url("app:v1"),
        &by_skopeo,
    ]);
    let far = support::SparseRegistry::start();
    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/arm64",
            "--format",
            "json",
            &by_skopeo,
            &far.url("app:v1"),
        ]),
        0,
    );
    assert_eq!(
        support::json(&out)["index"]["pushedDigest"],
        img.index_digest.as_str()
    );
}

#[test]
fn sparse_layout_to_registry_2_offers_strip_only() {
    let (src, img) = source(ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("sparse");
    run_code(
        &mut copy(&[
            "--platform",
            "linux/amd64",
            &src.url("app:v1"),
            &oci(&layout, "v1"),
        ]),
        0,
    );
    let far = Registry::start();
    // Copying the layout as it is (every platform it lists) fails naming what it lacks.
    let out = run_code(&mut copy(&[&oci(&layout, "v1"), &far.url("app:v1")]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not have it"), "{err}");
    // The platform it has goes in, the registry refuses the sparse index, `complete` is impossible.
    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/amd64",
            "--format",
            "json",
            &oci(&layout, "v1"),
            &far.url("app:v1"),
        ]),
        3,
    );
    let r = support::json(&out);
    assert_eq!(r["rejection"]["completePossible"], false);
    assert_eq!(r["index"]["digest"], img.index_digest.as_str());
    let out = run_code(
        &mut copy(&[
            "--platform",
            "linux/amd64",
            &oci(&layout, "v1"),
            &far.url("app:v1"),
        ]),
        3,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("complete  not possible"), "{text}");
    assert!(text.contains("--on-sparse-reject strip"), "{text}");
    run_code(
        &mut copy(&[
            "--platform",
            "linux/amd64",
            "--on-sparse-reject",
            "strip",
            &oci(&layout, "v1"),
            &far.url("app:v1"),
        ]),
        0,
    );
    assert!(far.client().manifest_bytes("app", "v1").is_some());
}

const FIXTURE_LAYOUTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/real-world/layouts"
);

#[test]
fn real_world_sparse_layouts_report_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("out");
    // hello-world: an index with the amd64 manifest present, its config and layer absent.
    let hello = format!("oci:{FIXTURE_LAYOUTS}/hello-world-containerd-export:latest");
    let out = run_code(
        mirror().args([
            "plan",
            "--platform",
            "linux/amd64",
            "--format",
            "json",
            &hello,
            &oci(&out_dir, "x"),
        ]),
        0,
    );
    let r = support::json(&out);
    assert_eq!(
        r["index"]["digest"],
        "sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af"
    );
    assert_eq!(r["entries"].as_array().unwrap().len(), 11);
    let out = run_code(
        &mut copy(&["--platform", "linux/amd64", &hello, &oci(&out_dir, "x")]),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "names the missing blob: {err}");
    assert!(!err.contains("panicked"));
    let out = run_code(
        &mut copy(&["--platform", "linux/arm64", &hello, &oci(&out_dir, "x")]),
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not have it"));

    // busybox: one manifest, no tag; the default target is its only entry.
    let out = run_code(
        mirror().args([
            "plan",
            "--format",
            "json",
            &format!("oci:{FIXTURE_LAYOUTS}/busybox-sparse-imgutil"),
            &oci(&out_dir, "x"),
        ]),
        0,
    );
    assert_eq!(
        support::json(&out)["index"]["digest"],
        "sha256:f75f3d1a317fc82c793d567de94fc8df2bece37acd5f2bd364a0d91a0d1f3dab"
    );

    // ggcr: nested indexes, four names.
    for tag in ["1", "3", "4"] {
        let r = run_code(
            mirror().args([
                "plan",
                "--format",
                "json",
                &format!("oci:{FIXTURE_LAYOUTS}/ggcr-nested-index:{tag}"),
                &oci(&out_dir, "x"),
            ]),
            0,
        );
        assert!(
            support::json(&r)["index"]["digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
    }
    let out = run_code(
        mirror().args([
            "plan",
            &format!("oci:{FIXTURE_LAYOUTS}/ggcr-nested-index"),
            &oci(&out_dir, "x"),
        ]),
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("name one"));

    // notation: an artifact with a signature.
    let out = run_code(
        mirror().args([
            "plan",
            "--format",
            "json",
            &format!("oci:{FIXTURE_LAYOUTS}/notation-signed-artifact:v1"),
            &oci(&out_dir, "x"),
        ]),
        0,
    );
    assert_eq!(
        support::json(&out)["index"]["digest"],
        "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
    );
    assert!(!out_dir.exists(), "plans create nothing");
}

#[test]
fn bad_layouts_are_errors_naming_the_file() {
    let img = generate(&ImageSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        ..ImageSpec::default()
    });
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    img.write_layout(&good, "v1");
    let dest = tmp.path().join("dest");
    let case = |name: &str, break_it: &dyn Fn(&Path), tag: &str, word: &str| {
        let dir = tmp.path().join(name);
        copy_dir(&good, &dir);
        break_it(&dir);
        let out = run_code(&mut copy(&[&oci(&dir, tag), &oci(&dest, "v1")]), 1);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(word), "{name}: {err}");
        assert!(!dest.exists(), "{name}: nothing written");
    };
    case(
        "no-layout-file",
        &|d| std::fs::remove_file(d.join("oci-layout")).unwrap(),
        "v1",
        "oci-layout",
    );
    case(
        "bad-index",
        &|d| std::fs::write(d.join("index.json"), b"{oops").unwrap(),
        "v1",
        "index.json",
    );
    case("no-such-ref", &|_| {}, "v2", "v2 not found");
    let amd64 = img.platform_entry("linux/amd64").digest.clone();
    case(
        "corrupt-manifest",
        &|d| std::fs::write(blob_path(d, &amd64), b"{}").unwrap(),
        "v1",
        "digest",
    );
    let out = run_code(
        &mut copy(&[&oci(&tmp.path().join("absent"), "v1"), &oci(&dest, "v1")]),
        1,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent"));

    // A layer whose bytes do not match: the copy fails naming the digest and nothing is tagged.
    let dir = tmp.path().join("corrupt-layer");
    copy_dir(&good, &dir);
    let layer = img
        .platform_entry("linux/arm64")
        .blobs
        .last()
        .unwrap()
        .clone();
    let mut bytes = std::fs::read(blob_path(&dir, &layer)).unwrap();
    bytes[600] ^= 0xff;
    std::fs::write(blob_path(&dir, &layer), bytes).unwrap();
    let out = run_code(&mut copy(&[&oci(&dir, "v1"), &oci(&dest, "v1")]), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert!(
        !blob_path(&dest, &layer).exists(),
        "nothing stored under the wrong digest"
    );
    if dest.join("index.json").exists() {
        let index: Value =
            serde_json::from_slice(&std::fs::read(dest.join("index.json")).unwrap()).unwrap();
        assert!(index["manifests"].as_array().unwrap().is_empty(), "no tag");
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
