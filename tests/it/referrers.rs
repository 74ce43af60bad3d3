//! Reference strength: referrers (SBOMs, signatures) and cosign tags follow exactly what is copied.
//! Registry 2.8 has no referrers API, so it covers the `sha256-<hex>` tag schema end to end; the
//! test double covers the referrers API.

use serde_json::{Value, json};

use crate::support::{
    self, Client, GeneratedImage, ImageSpec, Registry, SparseRegistry, generate, run_code, skopeo,
};

const TWO: &str = "linux/amd64,linux/arm64";
const SBOM: &str = "application/spdx+json";
const EMPTY: &str = "application/vnd.oci.empty.v1+json";

fn copy(args: &[&str]) -> std::process::Command {
    support::mirror_cmd("copy", args)
}

pub(crate) fn tag_of(digest: &str) -> String {
    digest.replace(':', "-")
}

/// An SBOM artifact whose subject is `subject` (an entry of `img`); returns its digest and descriptor.
pub(crate) fn push_sbom(
    client: &Client,
    repo: &str,
    subject: (&str, &str, u64),
    label: &str,
) -> (String, Value) {
    let config = client.upload_blob(repo, b"{}");
    let body = format!("{{\"spdxVersion\":\"SPDX-2.3\",\"name\":\"{label}\"}}");
    let layer = client.upload_blob(repo, body.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_MANIFEST,
        "artifactType": SBOM,
        "config": { "mediaType": EMPTY, "digest": config, "size": 2 },
        "layers": [ { "mediaType": SBOM, "digest": layer, "size": body.len() } ],
        "subject": { "mediaType": subject.1, "digest": subject.0, "size": subject.2 },
        "annotations": { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" }
    });
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = support::digest_of(&bytes);
    let (status, _, _) = client.put_manifest(repo, &digest, support::MT_OCI_MANIFEST, &bytes);
    assert_eq!(status, 201);
    let descriptor = json!({ "mediaType": support::MT_OCI_MANIFEST, "digest": digest, "size": bytes.len(), "artifactType": SBOM });
    (digest, descriptor)
}

/// The referrers tag-schema index for `subject`, listing `descriptors`.
pub(crate) fn push_tag_index(client: &Client, repo: &str, subject: &str, descriptors: Vec<Value>) {
    let index =
        json!({ "schemaVersion": 2, "mediaType": support::MT_OCI_INDEX, "manifests": descriptors });
    let bytes = serde_json::to_vec(&index).unwrap();
    let (status, _, _) = client.put_manifest(repo, &tag_of(subject), support::MT_OCI_INDEX, &bytes);
    assert_eq!(status, 201);
}

/// A cosign-style signature manifest tagged `sha256-<hex>.sig` next to `subject`.
pub(crate) fn push_cosign_sig(client: &Client, repo: &str, subject: &str) -> String {
    let config = client.upload_blob(repo, b"{}");
    let payload = format!(
        "{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{subject}\"}},\"type\":\"cosign container image signature\"}}}}"
    );
    let layer = client.upload_blob(repo, payload.as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_MANIFEST,
        "config": { "mediaType": support::MT_OCI_CONFIG, "digest": config, "size": 2 },
        "layers": [ { "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer, "size": payload.len(),
                      "annotations": { "dev.cosignproject.cosign/signature": "MEUCIQ==" } } ]
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

struct Signed {
    img: GeneratedImage,
    /// SBOM digest per platform.
    sboms: Vec<(String, String)>,
    index_sig: String,
}

/// An image with a per-platform SBOM (through the tag schema when `tag_schema`) and a cosign
/// signature on the index.
fn signed_image(
    client: &Client,
    repo: &str,
    push: &dyn Fn(&GeneratedImage),
    tag_schema: bool,
) -> Signed {
    let img = generate(&ImageSpec::default());
    push(&img);
    let mut sboms = Vec::new();
    for p in [
        "linux/amd64",
        "linux/arm64",
        "linux/arm/v7",
        "linux/ppc64le",
        "linux/s390x",
    ] {
        let e = img.platform_entry(p);
        let (digest, descriptor) = push_sbom(client, repo, (&e.digest, &e.media_type, e.size), p);
        if tag_schema {
            push_tag_index(client, repo, &e.digest, vec![descriptor]);
        }
        sboms.push((p.to_string(), digest));
    }
    let index_sig = push_cosign_sig(client, repo, &img.index_digest);
    Signed {
        img,
        sboms,
        index_sig,
    }
}

fn kept_sboms(s: &Signed) -> Vec<&String> {
    s.sboms
        .iter()
        .filter(|(p, _)| p == "linux/amd64" || p == "linux/arm64")
        .map(|(_, d)| d)
        .collect()
}

#[test]
fn two_of_five_brings_exactly_the_kept_platforms_referrers_and_the_index_signature() {
    let src = Registry::start();
    let s = signed_image(
        src.client(),
        "app",
        &|img| skopeo::push_image(img, &src, "app:v1"),
        true,
    );
    let dst = SparseRegistry::start();
    let r = support::json(&run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    ));
    for (p, d) in &s.sboms {
        let kept = p == "linux/amd64" || p == "linux/arm64";
        assert_eq!(dst.manifest("app", d).is_some(), kept, "SBOM of {p}");
    }
    let (_, sig) = dst
        .manifest("app", &format!("{}.sig", tag_of(&s.img.index_digest)))
        .expect("the index signature tag");
    assert_eq!(support::digest_of(&sig), s.index_sig);
    let referrers = r["referrers"].as_array().unwrap();
    let copied: Vec<&Value> = referrers
        .iter()
        .filter(|x| x["decision"] == "copy")
        .collect();
    let skipped: Vec<&Value> = referrers
        .iter()
        .filter(|x| x["decision"] == "skip")
        .collect();
    assert_eq!(copied.len(), 3, "2 SBOMs and the signature: {referrers:?}");
    assert_eq!(
        skipped.len(),
        3,
        "the dropped platforms' SBOMs: {referrers:?}"
    );
    for x in &skipped {
        assert_eq!(x["artifactType"], SBOM);
        assert!(x["reason"].as_str().unwrap().contains("not copied"), "{x}");
    }
    assert!(
        copied
            .iter()
            .any(|x| x["kind"] == "signature" && x["subject"] == s.img.index_digest.as_str())
    );
    // The SBOMs' own blobs came along.
    for d in kept_sboms(&s) {
        let (_, bytes) = dst.manifest("app", d).unwrap();
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(dst.has_blob("app", m["layers"][0]["digest"].as_str().unwrap()));
    }
}

#[test]
fn no_referrers_no_signatures_no_attestations_brings_none_and_all_brings_every_attestation() {
    let src = Registry::start();
    let s = signed_image(
        src.client(),
        "app",
        &|img| skopeo::push_image(img, &src, "app:v1"),
        true,
    );
    let dst = SparseRegistry::start();
    let r = support::json(&run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--no-referrers",
            "--no-signatures",
            "--attestations",
            "none",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    ));
    assert!(r["referrers"].as_array().unwrap().is_empty());
    for (_, d) in &s.sboms {
        assert!(dst.manifest("app", d).is_none());
    }
    assert!(
        dst.manifest("app", &format!("{}.sig", tag_of(&s.img.index_digest)))
            .is_none()
    );
    for e in s.img.entries.iter().filter(|e| e.is_attestation()) {
        assert!(
            dst.manifest("app", &e.digest).is_none(),
            "attestation {} copied",
            e.digest
        );
    }
    let dst = SparseRegistry::start();
    run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--attestations",
            "all",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    );
    for e in s.img.entries.iter().filter(|e| e.is_attestation()) {
        assert!(
            dst.manifest("app", &e.digest).is_some(),
            "attestation {} missing",
            e.digest
        );
    }
}

#[test]
fn registry_2_destination_gets_a_merged_fallback_tag_index() {
    let src = Registry::start();
    let s = signed_image(
        src.client(),
        "app",
        &|img| skopeo::push_image(img, &src, "app:v1"),
        true,
    );
    let dst = Registry::start();
    // The destination already lists an unrelated referrer of the amd64 manifest: it must stay.
    let amd64 = s.img.platform_entry("linux/amd64");
    let (other, other_descriptor) = push_sbom(
        dst.client(),
        "app",
        (&amd64.digest, &amd64.media_type, amd64.size),
        "already-there",
    );
    push_tag_index(dst.client(), "app", &amd64.digest, vec![other_descriptor]);
    run_code(
        &mut copy(&["--all-platforms", &src.url("app:v1"), &dst.url("app:v1")]),
        0,
    );
    let bytes = dst
        .client()
        .manifest_bytes("app", &tag_of(&amd64.digest))
        .expect("the fallback tag");
    let index: Value = serde_json::from_slice(&bytes).unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    let amd64_sbom = &s.sboms.iter().find(|(p, _)| p == "linux/amd64").unwrap().1;
    assert!(
        listed.contains(&other.as_str()),
        "kept the existing entry: {listed:?}"
    );
    assert!(
        listed.contains(&amd64_sbom.as_str()),
        "added the copied referrer: {listed:?}"
    );
    assert!(
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["artifactType"] == SBOM)
    );
    // A rerun changes nothing and moves nothing.
    let r = support::json(&run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &src.url("app:v1"),
            &dst.url("app:v1"),
        ]),
        0,
    ));
    assert_eq!(r["index"]["outcome"], "upToDate");
    assert_eq!(r["blobs"]["transferredBytes"], 0);
    assert_eq!(
        dst.client()
            .manifest_bytes("app", &tag_of(&amd64.digest))
            .unwrap(),
        bytes
    );
}

#[test]
fn referrers_api_source_into_a_layout_and_out_again() {
    let src = SparseRegistry::start();
    let s = signed_image(
        src.client(),
        "app",
        &|img| src.client().push_image(img, "app:v1"),
        false,
    );
    let tmp = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:v1", tmp.path().join("disk").display());
    let r = support::json(&run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--format",
            "json",
            &src.url("app:v1"),
            &layout,
        ]),
        0,
    ));
    assert_eq!(
        r["referrers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["decision"] == "copy")
            .count(),
        3
    );
    // The layout records them under the tag schema, so a copy out of it finds them again.
    let tags = support::umoci::tags(&tmp.path().join("disk"));
    let amd64 = &s.img.platform_entry("linux/amd64").digest;
    assert!(tags.contains(&tag_of(amd64)), "{tags:?}");
    assert!(
        tags.contains(&format!("{}.sig", tag_of(&s.img.index_digest))),
        "{tags:?}"
    );
    let far = SparseRegistry::start();
    run_code(
        &mut copy(&["--platform", TWO, &layout, &far.url("app:v1")]),
        0,
    );
    for d in kept_sboms(&s) {
        assert!(
            far.manifest("app", d).is_some(),
            "SBOM {d} made it through the layout"
        );
    }
    // Only signatures, through the artifact-type filter.
    let only = SparseRegistry::start();
    let r = support::json(&run_code(
        &mut copy(&[
            "--platform",
            TWO,
            "--referrers-type",
            "application/example.none",
            "--format",
            "json",
            &src.url("app:v1"),
            &only.url("app:v1"),
        ]),
        0,
    ));
    for d in kept_sboms(&s) {
        assert!(only.manifest("app", d).is_none());
    }
    let reasons: Vec<&str> = r["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|x| x.contains("--referrers-type")),
        "{reasons:?}"
    );
    assert!(
        only.manifest("app", &format!("{}.sig", tag_of(&s.img.index_digest)))
            .is_some(),
        "signatures still come"
    );
}
