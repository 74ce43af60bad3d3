//! What a person and a script see: the report alone on stdout, progress on stderr (bars on a
//! terminal, plain lines elsewhere, nothing with `-q`), and `mirror inspect`.

use std::process::Output;

use serde_json::Value;

use crate::support::{
    self, GeneratedImage, ImageSpec, Registry, generate, mirror, run_code, skopeo,
};

const TWO: &str = "linux/amd64,linux/arm64";

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn source(spec: &ImageSpec) -> (Registry, GeneratedImage) {
    let src = Registry::start();
    let img = generate(spec);
    skopeo::push_image(&img, &src, "app:v1");
    (src, img)
}

fn short(digest: &str) -> &str {
    &digest[..19]
}

#[test]
fn json_on_stdout_stays_parseable_while_progress_goes_to_stderr() {
    let (src, img) = source(&ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    for (progress, bars) in [("auto", false), ("always", true), ("never", false)] {
        let dest = format!("oci:{}:v1", tmp.path().join(progress).display());
        let out = run_code(
            mirror().args([
                "copy",
                "--progress",
                progress,
                "--platform",
                TWO,
                "--format",
                "json",
                &src.url("app:v1"),
                &dest,
            ]),
            0,
        );
        let r = stdout_json(&out);
        assert_eq!(
            r["index"]["digest"],
            img.index_digest.as_str(),
            "{progress}"
        );
        assert!(
            !stdout(&out).contains('\x1b'),
            "{progress}: escape codes on stdout"
        );
        let err = stderr(&out);
        assert!(!err.is_empty(), "{progress}: progress goes to stderr");
        assert_eq!(
            err.contains('\x1b'),
            bars,
            "{progress}: bars (escape codes) on stderr only with --progress always:\n{err}"
        );
    }
    // `-v` logs go to stderr too.
    let out = inspect(&["-v", "--format", "json", &src.url("app:v1")], 0);
    assert_eq!(stdout_json(&out)["digest"], img.index_digest.as_str());
    assert!(stderr(&out).contains("DEBUG"), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\x1b'), "{}", stderr(&out));
}

#[test]
fn stderr_that_is_not_a_terminal_gets_one_plain_line_per_finished_item() {
    let (src, img) = source(&ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", tmp.path().join("l").display());
    let out = run_code(
        mirror().args(["copy", "--platform", TWO, &src.url("app:v1"), &dest]),
        0,
    );
    let err = stderr(&out);
    assert!(!err.contains('\x1b'), "no escape codes:\n{err:?}");
    assert!(!err.contains('\r'), "no carriage returns:\n{err:?}");
    let kept = img.digests_for(&["linux/amd64", "linux/arm64"], true);
    let kept: Vec<&str> = kept.iter().map(String::as_str).collect();
    let blobs = img.unique_blob_count(&kept);
    let copied: Vec<&str> = err.lines().filter(|l| l.starts_with("copied ")).collect();
    assert_eq!(copied.len(), blobs, "one line per blob:\n{err}");
    for d in &kept {
        assert!(
            err.lines()
                .any(|l| l.starts_with("pushed ") && l.contains(short(d))),
            "a line for manifest {d}:\n{err}"
        );
    }
    assert!(
        err.lines()
            .any(|l| l.starts_with("tagged ") && l.contains(short(&img.index_digest))),
        "a line for the index and its tag:\n{err}"
    );
    // The report is on stdout, not mixed into stderr.
    assert!(stdout(&out).starts_with("copied: "), "{}", stdout(&out));
    assert!(!err.contains("copied: "), "{err}");
}

#[test]
fn quiet_prints_nothing_on_success() {
    let (src, _img) = source(&ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", tmp.path().join("q").display());
    for _ in 0..2 {
        // A copy, then an up-to-date rerun: both silent.
        let out = run_code(
            mirror().args(["copy", "-q", "--platform", TWO, &src.url("app:v1"), &dest]),
            0,
        );
        assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
        assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
    }
    // Errors still are printed.
    let out = run_code(
        mirror().args(["copy", "-q", &src.url("app:nope"), &dest]),
        1,
    );
    assert!(stderr(&out).contains("nope not found"), "{}", stderr(&out));
}

/// The bars under a pseudo-terminal (util-linux `script`), as a person at a terminal gets them.
#[test]
fn progress_bars_are_drawn_on_a_terminal() {
    support::require_tool("script", "bsdutils");
    // Big enough that the bars are drawn a few times before the copy ends.
    let spec = ImageSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        layer_size: 4 * 1024 * 1024,
        base_size: 4 * 1024 * 1024,
        attestations: false,
        ..ImageSpec::default()
    };
    let (src, img) = source(&spec);
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", tmp.path().join("tty").display());
    let line = format!(
        "{} copy {} {}",
        env!("CARGO_BIN_EXE_mirror"),
        src.url("app:v1"),
        dest
    );
    let out = run_code(
        std::process::Command::new("script")
            .args(["-qfec", &line, "/dev/null"])
            .env("TERM", "xterm-256color"),
        0,
    );
    let screen = stdout(&out);
    assert!(
        screen.contains("\x1b["),
        "bars move the cursor:\n{screen:?}"
    );
    assert!(
        screen.contains(" blobs") && screen.contains("eta") && screen.contains("MiB/s"),
        "the overall bar (blobs, eta, rate) was drawn:\n{screen:?}"
    );
    assert!(
        screen.contains(&img.index_digest[7..19]),
        "finished items and the report are shown:\n{screen:?}"
    );
    assert!(
        screen.contains("copied: "),
        "the report follows:\n{screen:?}"
    );
}

fn inspect(args: &[&str], code: i32) -> Output {
    run_code(mirror().arg("inspect").args(args), code)
}

#[test]
fn inspect_shows_every_platform_and_the_attestation_bindings() {
    let (src, img) = source(&ImageSpec::default());
    let text = stdout(&inspect(&[&src.url("app:v1")], 0));
    assert!(text.contains(&img.index_digest), "{text}");
    assert!(
        text.contains("complete: 5 of 5 platforms present, 5 of 5 attestations"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    for p in &img.spec.platforms {
        let e = img.platform_entry(p);
        let at = lines
            .iter()
            .position(|l| l.contains(short(&e.digest)))
            .unwrap_or_else(|| panic!("{p} ({}) is not shown:\n{text}", e.digest));
        assert!(lines[at].contains(p), "{}", lines[at]);
        let blobs = format!(" in {} blobs", e.blobs.len());
        assert!(lines[at].contains(&blobs), "{}", lines[at]);
        // Its attestation is the next line, one level deeper.
        let a = img.attestation_of(&e.digest).unwrap();
        let next = lines[at + 1];
        assert!(
            next.contains(short(&a.digest)) && next.contains("└── attestation"),
            "the attestation of {p} is under it:\n{text}"
        );
    }

    let json = stdout_json(&inspect(&["--format", "json", &src.url("app:v1")], 0));
    assert_eq!(json["digest"], img.index_digest.as_str());
    assert_eq!(json["sparse"], false);
    assert_eq!(json["summary"]["platforms"], 5);
    let entries = json["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5, "attestations are not top-level entries");
    for (node, p) in entries.iter().zip(&img.spec.platforms) {
        let e = img.platform_entry(p);
        assert_eq!(node["platform"], *p);
        assert_eq!(node["digest"], e.digest.as_str());
        assert_eq!(node["present"], true);
        let bytes: u64 = e.blobs.iter().map(|b| img.blobs[b].len() as u64).sum();
        assert_eq!(node["blobs"]["bytes"], bytes, "{p}");
        let a = &node["attestations"][0];
        assert_eq!(
            a["digest"],
            img.attestation_of(&e.digest).unwrap().digest.as_str()
        );
        assert_eq!(a["attests"], e.digest.as_str());
        assert_eq!(a["kind"], "attestation");
    }
    let all: Vec<&str> = img.entries.iter().map(|e| e.digest.as_str()).collect();
    assert_eq!(json["blobs"]["count"], img.unique_blob_count(&all) as u64);
}

#[test]
fn inspect_of_a_sparse_copy_says_how_many_platforms_are_present() {
    let (src, img) = source(&ImageSpec::default());
    let tmp = tempfile::tempdir().unwrap();
    let dest = format!("oci:{}:v1", tmp.path().join("sparse").display());
    run_code(
        mirror().args(["copy", "--platform", TWO, &src.url("app:v1"), &dest]),
        0,
    );
    let text = stdout(&inspect(&[&dest], 0));
    assert!(
        text.contains("sparse: 2 of 5 platforms present, 2 of 5 attestations"),
        "{text}"
    );
    let s390x = img.platform_entry("linux/s390x");
    assert!(
        text.lines()
            .any(|l| l.contains(short(&s390x.digest)) && l.trim_end().ends_with("absent")),
        "{text}"
    );
    let json = stdout_json(&inspect(&["--format", "json", &dest], 0));
    assert_eq!(json["sparse"], true);
    assert_eq!(json["summary"]["platformsPresent"], 2);
    for node in json["entries"].as_array().unwrap() {
        let kept = ["linux/amd64", "linux/arm64"].contains(&node["platform"].as_str().unwrap());
        assert_eq!(node["present"], kept, "{node}");
        assert_eq!(node["attestations"][0]["present"], kept, "{node}");
    }
    // A layout without a tag: its only image, as for copy.
    let untagged = format!("oci:{}", tmp.path().join("sparse").display());
    let json = stdout_json(&inspect(&["--format", "json", &untagged], 0));
    assert_eq!(json["digest"], img.index_digest.as_str());
}

#[test]
fn inspect_shows_signature_tags_and_names_the_tags_when_one_is_missing() {
    let (src, img) = source(&ImageSpec::default());
    // A cosign-style signature of the index, and one of a child.
    let c = src.client();
    let config = c.upload_blob("app", b"{}");
    let payload = c.upload_blob("app", b"{\"critical\":{}}");
    let sig = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": payload, "size": 15}]
    })
    .to_string();
    let sig_digest = support::digest_of(sig.as_bytes());
    let amd64 = img.platform_entry("linux/amd64").digest.clone();
    let tags = [
        format!("sha256-{}.sig", &img.index_digest[7..]),
        format!("sha256-{}.sig", &amd64[7..]),
    ];
    for t in &tags {
        let (st, _, body) = c.put_manifest("app", t, support::MT_OCI_MANIFEST, sig.as_bytes());
        assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    }
    let json = stdout_json(&inspect(&["--format", "json", &src.url("app:v1")], 0));
    assert_eq!(json["tags"][0]["tag"], tags[0].as_str());
    assert_eq!(json["tags"][0]["kind"], "signature");
    assert_eq!(json["tags"][0]["digest"], sig_digest.as_str());
    let node = &json["entries"][0];
    assert_eq!(node["digest"], amd64.as_str());
    assert_eq!(node["tags"][0]["tag"], tags[1].as_str());
    let text = stdout(&inspect(&[&src.url("app:v1")], 0));
    for t in &tags {
        assert!(text.contains(t.as_str()), "{t}:\n{text}");
    }

    let out = inspect(&[&src.url("app:nope")], 1);
    let err = stderr(&out);
    assert!(
        err.contains("nope not found") && err.contains("v1"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn inspect_shows_referrers_from_the_referrers_api() {
    let reg = support::SparseRegistry::start();
    let img = generate(&ImageSpec::default());
    reg.push_image(&img, "app:v1");
    let arm64 = img.platform_entry("linux/arm64");
    let config = reg.insert_blob("app", b"{}");
    let sbom = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2}],
        "subject": {"mediaType": support::MT_OCI_MANIFEST, "digest": arm64.digest, "size": arm64.size}
    })
    .to_string();
    let sbom_digest = reg.insert_manifest("app", None, support::MT_OCI_MANIFEST, sbom.as_bytes());
    let json = stdout_json(&inspect(&["--format", "json", &reg.url("app:v1")], 0));
    let node = json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["platform"] == "linux/arm64")
        .unwrap();
    assert_eq!(
        node["referrers"][0]["digest"],
        sbom_digest.as_str(),
        "{node}"
    );
    assert_eq!(
        node["referrers"][0]["artifactType"],
        "application/spdx+json"
    );
    let text = stdout(&inspect(&[&reg.url("app:v1")], 0));
    assert!(
        text.lines().any(|l| l.contains("referrer")
            && l.contains(short(&sbom_digest))
            && l.contains("application/spdx+json")),
        "{text}"
    );
}
