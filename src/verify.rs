//! `mirror verify`: does an image hold where it is?
//!
//! A mirror holds three kinds of image, and each has its own meaning of "intact":
//! - **complete**: every entry of the index is there;
//! - **sparse** by design: some entries are absent (a sparse index keeps the original digest and
//!   lists platforms this site does not mirror); the absent ones are listed, not faulted;
//! - **stripped**: an index `--on-sparse-reject strip` rewrote. It names its original
//!   ([`oci::ANNOTATION_STRIPPED_FROM`]); the original bytes are stored beside it, listed by an
//!   artifact whose subject is the stripped index. Then the stored bytes must hash to the
//!   recorded digest, every entry of the stripped index must appear in the original byte for
//!   byte, and a cosign signature tag for the original digest, when there is one, must name that
//!   digest in its payload.
//!
//! For every entry that is there, every manifest and blob it references must be there with the
//! size its descriptor says (`--deep` reads every blob and checks its digest). Each problem is
//! named; none is an error of the command itself. Cryptographic checks of signatures are left to
//! cosign and notation: this checks that the signed digest and the mirrored bytes belong together.

use std::collections::BTreeSet;
use std::io::{self, Write};

use futures::StreamExt;
use serde::Serialize;

use crate::error::Error;
use crate::oci::{self, Descriptor, Digest, Manifest, RawManifest, VerifyingStream};
use crate::reference::Target;
use crate::referrers;
use crate::transport::{BlobState, Transport};
use crate::walk;

#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Read every blob and check its digest.
    pub deep: bool,
    /// Concurrent manifest reads.
    pub jobs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum State {
    /// A single manifest, or an index with every entry present.
    Complete,
    /// An index with entries absent on purpose.
    Sparse,
    /// An index rewritten by `strip`, checked against its original.
    Stripped,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    pub version: u32,
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub state: State,
    /// Entries present and checked.
    pub checked: usize,
    /// Entries absent by design (a sparse index): `platform digest`.
    pub absent: Vec<String>,
    /// Blobs checked (each once).
    pub blobs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripped: Option<StrippedCheck>,
    /// Everything that does not hold; empty when the image is intact.
    pub problems: Vec<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrippedCheck {
    pub original: Digest,
    /// The artifact holding the original bytes.
    pub evidence: Option<Digest>,
    /// A cosign signature tag of the original digest.
    pub signature_tag: Option<String>,
}

impl Verification {
    pub fn holds(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let state = match self.state {
            State::Complete => "complete",
            State::Sparse => "sparse",
            State::Stripped => "stripped",
        };
        writeln!(out, "{}", self.reference)?;
        writeln!(out, "  digest {} ({state})", self.digest)?;
        writeln!(
            out,
            "  checked {} entries and {} blobs{}",
            self.checked,
            self.blobs,
            if self.absent.is_empty() {
                String::new()
            } else {
                format!("; {} absent by design", self.absent.len())
            }
        )?;
        for a in &self.absent {
            writeln!(out, "  absent   {a}")?;
        }
        if let Some(s) = &self.stripped {
            writeln!(out, "  stripped from {}", s.original)?;
            if let Some(e) = &s.evidence {
                writeln!(out, "  original bytes in artifact {e}")?;
            }
            if let Some(t) = &s.signature_tag {
                writeln!(out, "  signature tag {t}")?;
            }
        }
        for w in &self.warnings {
            writeln!(out, "  warning: {w}")?;
        }
        for p in &self.problems {
            writeln!(out, "  problem: {p}")?;
        }
        if self.holds() {
            writeln!(out, "holds")
        } else {
            writeln!(out, "does not hold: {} problems", self.problems.len())
        }
    }
}

/// Check the image `target` names at `src`.
pub async fn verify(
    src: &dyn Transport,
    target: &Target,
    opts: &VerifyOptions,
) -> Result<Verification, Error> {
    let reference = walk::reference(&src.location(), target);
    let Some(root) = src
        .get_manifest(target)
        .await
        .map_err(|e| Error::transport(format!("reading {reference}"), e))?
    else {
        let tags = src.list_tags().await.ok();
        return Err(walk::not_found(&reference, target, tags.as_deref()));
    };
    let mut v = Verification {
        version: 1,
        reference: reference.clone(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        state: State::Complete,
        checked: 0,
        absent: vec![],
        blobs: 0,
        stripped: None,
        problems: vec![],
        warnings: vec![],
    };
    let mut seen = BTreeSet::new();
    match root
        .parse()
        .map_err(|e| Error::invalid(reference.clone(), e.to_string()))?
    {
        Manifest::Image(m) => {
            v.checked = 1;
            check_blobs(src, &m, "the image", opts, &mut seen, &mut v.problems).await?;
        }
        Manifest::Index(index) => {
            let tree = walk::read_entries(src, &index, 1, opts.jobs.max(1), walk::Read::Everything)
                .await?;
            check_entries(src, &tree, opts, &mut seen, &mut v).await?;
            if !v.absent.is_empty() {
                v.state = State::Sparse;
            }
            let doc: serde_json::Value = serde_json::from_slice(&root.bytes).unwrap_or_default();
            if let Some(original) = doc["annotations"][oci::ANNOTATION_STRIPPED_FROM].as_str() {
                v.state = State::Stripped;
                check_stripped(src, &root, original, &mut v).await?;
            }
        }
    }
    v.blobs = seen.len();
    Ok(v)
}

fn check_entries<'a>(
    src: &'a dyn Transport,
    entries: &'a [walk::Entry],
    opts: &'a VerifyOptions,
    seen: &'a mut BTreeSet<Digest>,
    v: &'a mut Verification,
) -> futures::future::BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        for e in entries {
            let d = &e.descriptor;
            let name = describe(d);
            let Some(raw) = &e.raw else {
                v.absent.push(name);
                continue;
            };
            v.checked += 1;
            if let Some(problem) = e.problem() {
                v.problems.push(format!("{name}: {problem}"));
                continue;
            }
            if let Some((_, inner)) = &e.nested {
                check_entries(src, inner, opts, seen, v).await?;
            } else if let Ok(Manifest::Image(m)) = raw.parse() {
                check_blobs(src, &m, &name, opts, seen, &mut v.problems).await?;
            }
        }
        Ok(())
    })
}

fn describe(d: &Descriptor) -> String {
    let what = match (&d.platform, d.attests()) {
        (_, Some(of)) => format!("attestation of {}", of.short()),
        (Some(p), None) if p.is_real() => p.to_string(),
        _ => "entry".to_string(),
    };
    format!("{what} {}", d.digest)
}

/// Every blob of `m` there, with its descriptor's size (and, `deep`, its digest).
async fn check_blobs(
    src: &dyn Transport,
    m: &oci::ImageManifest,
    name: &str,
    opts: &VerifyOptions,
    seen: &mut BTreeSet<Digest>,
    problems: &mut Vec<String>,
) -> Result<(), Error> {
    for b in m.blobs() {
        if b.urls.is_some() || !seen.insert(b.digest.clone()) {
            // Foreign layers live elsewhere; a shared blob is checked once.
            continue;
        }
        let state = src.blob_state(&b.digest).await.map_err(|e| {
            Error::transport(
                format!("checking blob {} at {}", b.digest, src.location()),
                e,
            )
        })?;
        match state {
            BlobState::Absent => {
                problems.push(format!("{name}: blob {} is missing", b.digest));
                continue;
            }
            BlobState::Present { size: Some(size) } if size != b.size => {
                problems.push(format!(
                    "{name}: blob {} has {size} bytes, its descriptor says {}",
                    b.digest, b.size
                ));
                continue;
            }
            BlobState::Present { .. } => {}
        }
        if opts.deep
            && let Err(e) = read_verified(src, b).await
        {
            problems.push(format!("{name}: blob {}: {e}", b.digest));
        }
    }
    Ok(())
}

/// Read a blob through the digest-verifying stream; the error says what did not match.
async fn read_verified(src: &dyn Transport, b: &Descriptor) -> Result<u64, String> {
    let stream = src.get_blob(b).await.map_err(|e| e.to_string())?;
    let mut verified = VerifyingStream::new(stream, &b.digest, b.size);
    let mut n = 0;
    while let Some(chunk) = verified.next().await {
        n += chunk.map_err(|e| e.to_string())?.len() as u64;
    }
    Ok(n)
}

/// A stripped index against its original: the stored bytes, the entries, the signature.
async fn check_stripped(
    src: &dyn Transport,
    stripped: &RawManifest,
    original: &str,
    v: &mut Verification,
) -> Result<(), Error> {
    let Ok(original) = original.parse::<Digest>() else {
        v.problems.push(format!(
            "the index names its original as {original:?}, which is not a digest"
        ));
        return Ok(());
    };
    let mut check = StrippedCheck {
        original: original.clone(),
        evidence: None,
        signature_tag: None,
    };
    let tags = src.list_tags().await.unwrap_or_default();
    match find_evidence(src, &stripped.digest, &tags).await? {
        None => v.problems.push(format!(
            "no artifact holding the original index {original} refers to this stripped index"
        )),
        Some((evidence, layer)) => {
            check.evidence = Some(evidence);
            match read_small(src, &layer).await {
                Err(e) => v
                    .problems
                    .push(format!("the original index bytes cannot be read: {e}")),
                Ok(bytes) if !original.matches(&bytes) => v.problems.push(format!(
                    "the stored original index bytes do not hash to the recorded digest {original}"
                )),
                Ok(bytes) => compare_entries(stripped, &bytes, &mut v.problems),
            }
        }
    }
    let sig = format!("{}.sig", referrers::digest_tag(&original));
    if tags.contains(&sig) {
        if let Err(p) = check_signature(src, &sig, &original).await {
            v.problems.push(p);
        }
        check.signature_tag = Some(sig);
    } else {
        v.warnings.push(format!(
            "no cosign signature tag {sig} for the original index: nothing ties a signature to it here"
        ));
    }
    v.stripped = Some(check);
    Ok(())
}

/// The evidence artifact of `stripped` (through the referrers API, else the tag schema) and the
/// descriptor of the original bytes it lists.
async fn find_evidence(
    src: &dyn Transport,
    stripped: &Digest,
    tags: &[String],
) -> Result<Option<(Digest, Descriptor)>, Error> {
    let err = |e| Error::transport(format!("finding the referrers of {stripped}"), e);
    let listed = match src.referrers(stripped).await.map_err(err)? {
        Some(list) => list,
        None => {
            let tag = referrers::digest_tag(stripped);
            if !tags.contains(&tag) {
                return Ok(None);
            }
            match src.get_manifest(&Target::Tag(tag)).await.map_err(err)? {
                Some(raw) => match raw.parse() {
                    Ok(Manifest::Index(i)) => i.manifests,
                    _ => vec![],
                },
                None => vec![],
            }
        }
    };
    for d in listed
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(oci::ARTIFACT_STRIPPED_ORIGINAL))
    {
        let raw = src
            .get_manifest(&Target::Digest(d.digest.clone()))
            .await
            .map_err(err)?;
        if let Some(Ok(Manifest::Image(m))) = raw.as_ref().map(RawManifest::parse)
            && m.subject.as_ref().map(|s| &s.digest) == Some(stripped)
            && let Some(layer) = m.layers.first()
        {
            return Ok(Some((d.digest.clone(), layer.clone())));
        }
    }
    Ok(None)
}

async fn read_small(src: &dyn Transport, layer: &Descriptor) -> Result<Vec<u8>, String> {
    if layer.size > oci::MAX_MANIFEST_BYTES as u64 {
        return Err(format!(
            "{} bytes is more than an index may have",
            layer.size
        ));
    }
    let mut stream = src.get_blob(layer).await.map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
        if bytes.len() as u64 > layer.size {
            return Err("longer than its descriptor says".into());
        }
    }
    Ok(bytes)
}

/// Every entry of the stripped index is an entry of the original, byte for byte (a nested index
/// that was stripped too is matched by what it was stripped from).
fn compare_entries(stripped: &RawManifest, original: &[u8], problems: &mut Vec<String>) {
    let entries = |bytes: &[u8]| -> Vec<serde_json::Value> {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|d| d["manifests"].as_array().cloned())
            .unwrap_or_default()
    };
    let originals = entries(original);
    if originals.is_empty() {
        problems.push("the original index lists no entries".into());
        return;
    }
    for e in entries(&stripped.bytes) {
        let nested = e["mediaType"]
            .as_str()
            .is_some_and(oci::is_index_media_type);
        let found = originals.iter().any(|o| {
            if nested {
                let strip = |v: &serde_json::Value| {
                    let mut v = v.clone();
                    if let Some(m) = v.as_object_mut() {
                        m.remove("digest");
                        m.remove("size");
                    }
                    v
                };
                strip(o) == strip(&e)
            } else {
                *o == e
            }
        });
        if !found {
            problems.push(format!(
                "the entry {} is not in the original index as it is here",
                e["digest"].as_str().unwrap_or("?")
            ));
        }
    }
}

/// A cosign signature manifest's payload names `original` (`critical.image.docker-manifest-digest`).
async fn check_signature(src: &dyn Transport, tag: &str, original: &Digest) -> Result<(), String> {
    let raw = src
        .get_manifest(&Target::Tag(tag.into()))
        .await
        .map_err(|e| format!("the signature tag {tag} cannot be read: {e}"))?
        .ok_or_else(|| format!("the signature tag {tag} is listed but not there"))?;
    let Ok(Manifest::Image(m)) = raw.parse() else {
        return Err(format!("the signature tag {tag} is not an image manifest"));
    };
    for layer in &m.layers {
        let payload = read_small(src, layer)
            .await
            .map_err(|e| format!("the signature payload {} cannot be read: {e}", layer.digest))?;
        let doc: serde_json::Value = serde_json::from_slice(&payload).unwrap_or_default();
        if doc["critical"]["image"]["docker-manifest-digest"].as_str() == Some(original.as_str()) {
            return Ok(());
        }
    }
    Err(format!(
        "no payload of the signature tag {tag} names the original digest {original}"
    ))
}

#[cfg(test)]
mod tests {
    //! Intact, sparse, stripped and damaged images on in-memory registries.

    use super::*;
    use crate::ops::{OnSparseReject, copy_image};
    use crate::testkit::{self, Recorder, SparseRule, images, reference, settings};

    const FOUR: [&str; 4] = ["linux/amd64", "linux/arm64", "linux/s390x", "linux/ppc64le"];
    const KEEP: [&str; 2] = ["linux/amd64", "linux/arm64"];

    async fn check(w: &testkit::World, deep: bool) -> Verification {
        verify(
            &w.dst.repo("app"),
            &Target::Tag("v1".into()),
            &VerifyOptions { deep, jobs: 4 },
        )
        .await
        .unwrap()
    }

    async fn mirror(w: &testkit::World, platforms: &[&str], policy: OnSparseReject) -> Digest {
        let r = copy_image(
            &w.opener,
            &reference("docker://src.test/app:v1"),
            &reference("docker://dst.test/app:v1"),
            &settings(platforms, policy),
            Recorder::new(),
        )
        .await
        .unwrap();
        r.index.pushed_digest.unwrap()
    }

    #[tokio::test]
    async fn a_complete_copy_holds() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FOUR, true);
        mirror(&w, &[], OnSparseReject::Report).await;
        let v = check(&w, true).await;
        assert!(v.holds(), "{:?}", v.problems);
        assert_eq!(v.state, State::Complete);
        assert_eq!(v.checked, 8);
        assert!(v.absent.is_empty());
        assert!(v.blobs > 0);
    }

    #[tokio::test]
    async fn a_sparse_copy_holds_and_lists_what_is_absent_by_design() {
        let w = testkit::world();
        w.dst.set(|b| b.sparse = SparseRule::Accept);
        let img = images::index(&w.src, "app", "v1", &FOUR, false);
        mirror(&w, &KEEP, OnSparseReject::Report).await;
        let v = check(&w, false).await;
        assert!(v.holds(), "{:?}", v.problems);
        assert_eq!(v.state, State::Sparse);
        assert_eq!(v.absent.len(), 2);
        assert!(
            v.absent
                .iter()
                .any(|a| a.contains(img.child("linux/s390x").digest.as_str()))
        );
    }

    #[tokio::test]
    async fn a_missing_blob_is_named() {
        let w = testkit::world();
        w.dst.set(|b| b.sparse = SparseRule::Accept);
        let img = images::index(&w.src, "app", "v1", &FOUR, false);
        mirror(&w, &KEEP, OnSparseReject::Report).await;
        let layer = &img.blobs[&img.child("linux/arm64").digest][2].digest;
        w.dst.remove_blob("app", layer);
        let v = check(&w, false).await;
        assert!(!v.holds());
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains(layer.as_str()) && v.problems[0].contains("linux/arm64"));
    }

    #[tokio::test]
    async fn only_deep_reads_catch_damaged_bytes_of_the_right_size() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FOUR[..1], false);
        mirror(&w, &[], OnSparseReject::Report).await;
        let layer = &img.blobs[&img.child("linux/amd64").digest][1].digest;
        w.dst.tamper_blob("app", layer, |b| b[0] ^= 1);
        assert!(check(&w, false).await.holds());
        let deep = check(&w, true).await;
        assert_eq!(deep.problems.len(), 1, "{:?}", deep.problems);
        assert!(deep.problems[0].contains(layer.as_str()));
        // A truncated blob is caught by its size alone.
        w.dst.tamper_blob("app", layer, |b| b.truncate(3));
        let v = check(&w, false).await;
        assert!(
            v.problems.iter().any(|p| p.contains("has 3 bytes")),
            "{:?}",
            v.problems
        );
    }

    #[tokio::test]
    async fn a_stripped_copy_holds_against_its_original() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FOUR, true);
        mirror(&w, &KEEP, OnSparseReject::Strip).await;
        let v = check(&w, true).await;
        assert!(v.holds(), "{:?}", v.problems);
        assert_eq!(v.state, State::Stripped);
        let s = v.stripped.as_ref().unwrap();
        assert_eq!(s.original, img.index.digest);
        assert!(s.evidence.is_some());
        assert!(
            v.warnings.iter().any(|w| w.contains(".sig")),
            "{:?}",
            v.warnings
        );
    }

    #[tokio::test]
    async fn original_bytes_that_do_not_hash_to_the_recorded_digest_are_a_problem() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FOUR, false);
        mirror(&w, &KEEP, OnSparseReject::Strip).await;
        w.dst.tamper_blob("app", &img.index.digest, |b| {
            let last = b.len() - 2;
            b[last] = b' ';
        });
        let v = check(&w, false).await;
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("do not hash to the recorded digest")),
            "{:?}",
            v.problems
        );
    }

    #[tokio::test]
    async fn a_stripped_entry_that_is_not_in_the_original_is_a_problem() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FOUR, false);
        let stripped = mirror(&w, &KEEP, OnSparseReject::Strip).await;
        // Someone edits the stripped index (an entry's platform), keeping its claim and evidence.
        let raw = w.dst.manifest("app", &stripped).unwrap();
        let text = String::from_utf8(raw.bytes.to_vec()).unwrap();
        let edited = RawManifest::new(
            text.replacen("\"arm64\"", "\"riscv64\"", 1).into(),
            &raw.media_type,
        );
        let dst = w.dst.repo("app");
        crate::fallback::push_strip_evidence(&dst, &img.index, &edited)
            .await
            .unwrap();
        w.dst.put_manifest_raw("app", &edited, Some("v1"));
        let v = check(&w, false).await;
        assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
        assert!(v.problems[0].contains(img.child("linux/arm64").digest.as_str()));
    }

    #[tokio::test]
    async fn a_signature_of_the_original_must_name_it() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FOUR, false);
        let sig_tag = format!("{}.sig", referrers::digest_tag(&img.index.digest));
        let signature = |names: &Digest| {
            let payload = serde_json::json!({
                "critical": {"identity": {"docker-reference": "src.test/app"},
                             "image": {"docker-manifest-digest": names.to_string()},
                             "type": "cosign container image signature"},
            });
            let bytes = serde_json::to_vec(&payload).unwrap();
            let layer = Descriptor {
                media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
                digest: w.src.put_blob_bytes("app", bytes.clone().into()),
                size: bytes.len() as u64,
                platform: None,
                annotations: None,
                artifact_type: None,
                urls: None,
            };
            let config = Descriptor {
                media_type: oci::EMPTY_MEDIA_TYPE.into(),
                digest: w.src.put_blob_bytes("app", oci::EMPTY_JSON.into()),
                size: 2,
                ..layer.clone()
            };
            let doc = serde_json::json!({
                "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST,
                "config": config, "layers": [layer],
            });
            RawManifest::new(serde_json::to_vec(&doc).unwrap().into(), oci::OCI_MANIFEST)
        };
        let good = signature(&img.index.digest);
        w.src.put_manifest_raw("app", &good, Some(&sig_tag));
        mirror(&w, &KEEP, OnSparseReject::Strip).await;
        let v = check(&w, false).await;
        assert!(v.holds(), "{:?}", v.problems);
        assert_eq!(v.stripped.unwrap().signature_tag, Some(sig_tag.clone()));
        // A signature tag whose payload names another digest.
        let bad = signature(&Digest::sha256(b"another index"));
        let dst = w.dst.repo("app");
        for b in [&bad] {
            let Ok(Manifest::Image(m)) = b.parse() else {
                unreachable!()
            };
            for d in m.blobs() {
                w.dst
                    .put_blob_bytes("app", w.src.blob_bytes("app", &d.digest).unwrap());
            }
        }
        dst.put_manifest(&bad, &crate::transport::PushAs::Root { tag: Some(sig_tag) })
            .await
            .unwrap();
        let v = check(&w, false).await;
        assert!(
            v.problems
                .iter()
                .any(|p| p.contains("names the original digest")),
            "{:?}",
            v.problems
        );
    }
}
