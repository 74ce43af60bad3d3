//! `mirror plan` / `copy --dry-run`: what a copy would move, to the byte, and nothing written.

use crate::support::{
    self, ImageSpec, Registry, SparseOptions, SparseRegistry, generate, run_code, skopeo,
};

const TWO: &str = "linux/amd64,linux/arm64";

#[test]
fn planned_bytes_equal_what_the_copy_then_moves() {
    let src = Registry::start();
    let img = generate(&ImageSpec::default());
    skopeo::push_image(&img, &src, "app:v1");
    let dst = Registry::start();
    let before = support::tree_hash(dst.storage_dir());
    let plan = support::json(&run_code(
        &mut support::mirror_cmd(
            "plan",
            &[
                "--platform",
                TWO,
                "--format",
                "json",
                &src.url("app:v1"),
                &dst.url("app:v1"),
            ],
        ),
        0,
    ));
    assert_eq!(plan["dryRun"], true);
    assert_eq!(plan["index"]["outcome"], "planned");
    assert_eq!(
        support::tree_hash(dst.storage_dir()),
        before,
        "a plan writes nothing"
    );
    let kept = img.digests_for(&["linux/amd64", "linux/arm64"], true);
    let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    assert_eq!(
        plan["blobs"]["transferredBytes"],
        img.unique_blob_bytes(&kept)
    );
    assert_eq!(plan["blobs"]["presentBytes"], 0);
    // Every manifest and blob is listed with its size and presence.
    assert_eq!(plan["plan"]["manifests"].as_array().unwrap().len(), 4);
    assert_eq!(
        plan["plan"]["blobs"].as_array().unwrap().len(),
        img.unique_blob_count(&kept)
    );
    let amd64 = &plan["plan"]["perPlatform"]["linux/amd64"];
    assert_eq!(
        amd64["bytes"],
        img.unique_blob_bytes(&[img.platform_entry("linux/amd64").digest.as_str()])
    );

    // `copy --dry-run` is the same plan.
    let dry = support::json(&run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--dry-run",
                "--platform",
                TWO,
                "--format",
                "json",
                &src.url("app:v1"),
                &dst.url("app:v1"),
            ],
        ),
        0,
    ));
    assert_eq!(dry["blobs"], plan["blobs"]);

    // The copy then moves exactly that (registry 2.8 refuses the sparse index: exit 3).
    let copied = support::json(&run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--platform",
                TWO,
                "--format",
                "json",
                &src.url("app:v1"),
                &dst.url("app:v1"),
            ],
        ),
        3,
    ));
    assert_eq!(
        copied["blobs"]["transferredBytes"],
        plan["blobs"]["transferredBytes"]
    );
    assert_eq!(
        copied["blobs"]["transferredCount"],
        plan["blobs"]["transferredCount"]
    );
}

#[test]
fn after_a_partial_copy_the_plan_counts_what_is_present() {
    let src = Registry::start();
    let img = generate(&ImageSpec::default());
    skopeo::push_image(&img, &src, "app:v1");
    let dst = SparseRegistry::start();
    run_code(
        &mut support::mirror_cmd(
            "copy",
            &[
                "--platform",
                "linux/amd64",
                &src.url("app:v1"),
                &dst.url("app:v1"),
            ],
        ),
        0,
    );
    dst.clear_requests();
    let plan = support::json(&run_code(
        &mut support::mirror_cmd(
            "plan",
            &[
                "--platform",
                TWO,
                "--format",
                "json",
                &src.url("app:v1"),
                &dst.url("app:v1"),
            ],
        ),
        0,
    ));
    let amd64 = img.digests_for(&["linux/amd64"], true);
    let both = img.digests_for(&["linux/amd64", "linux/arm64"], true);
    let amd64: Vec<&str> = amd64.iter().map(String::as_str).collect();
    let both: Vec<&str> = both.iter().map(String::as_str).collect();
    assert_eq!(plan["blobs"]["presentBytes"], img.unique_blob_bytes(&amd64));
    assert_eq!(
        plan["blobs"]["transferredBytes"],
        img.unique_blob_bytes(&both) - img.unique_blob_bytes(&amd64)
    );
    for (method, path) in dst.requests() {
        assert!(
            method == "GET" || method == "HEAD",
            "a plan sent {method} {path}"
        );
    }
    assert!(!dst.requests().is_empty(), "the plan asked the destination");
}

#[test]
fn the_plan_says_whether_the_destination_takes_sparse_indexes() {
    let src = Registry::start();
    let img = generate(&ImageSpec::default());
    skopeo::push_image(&img, &src, "app:v1");
    let quay_like = SparseRegistry::start_with(SparseOptions {
        announce_sparse: true,
        ..SparseOptions::default()
    });
    let out = run_code(
        &mut support::mirror_cmd(
            "plan",
            &[
                "--platform",
                "linux/amd64",
                &src.url("app:v1"),
                &quay_like.url("app:v1"),
            ],
        ),
        0,
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("the destination accepts sparse indexes"),
        "{text}"
    );
    assert!(text.contains("to transfer"), "{text}");
    let plain = Registry::start();
    let out = run_code(
        &mut support::mirror_cmd(
            "plan",
            &[
                "--platform",
                "linux/amd64",
                "--format",
                "json",
                &src.url("app:v1"),
                &plain.url("app:v1"),
            ],
        ),
        0,
    );
    assert_eq!(support::json(&out)["index"]["sparseSupport"], "unknown");
    let out = run_code(
        &mut support::mirror_cmd(
            "plan",
            &[
                "--platform",
                "linux/amd64",
                &src.url("app:v1"),
                &plain.url("app:v1"),
            ],
        ),
        0,
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("known only when tried"));
}

#[test]
fn a_plan_into_a_missing_layout_creates_nothing() {
    let src = Registry::start();
    let img = generate(&ImageSpec::default());
    skopeo::push_image(&img, &src, "app:v1");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("not-yet");
    let plan = support::json(&run_code(
        &mut support::mirror_cmd(
            "plan",
            &[
                "--platform",
                TWO,
                "--format",
                "json",
                &src.url("app:v1"),
                &format!("oci:{}:v1", layout.display()),
            ],
        ),
        0,
    ));
    assert_eq!(plan["index"]["sparseSupport"], "yes");
    assert!(!layout.exists());
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
