//! Reference strength: what follows a copied manifest without being part of it (DESIGN.md,
//! Selection rule 5).
//!
//! - OCI 1.1 referrers (signatures, SBOMs, attestations with a `subject`): found through the
//!   referrers API, or, where a registry has none (registry 2.x answers 404), through the
//!   `sha256-<hex>` tag schema: an index tagged with the subject's digest listing its referrers.
//! - cosign-style tags: `sha256-<hex>.sig`, `.att`, `.sbom` next to the signed manifest.
//!
//! These are *weak* references: their absence is normal and silent, but one that exists and
//! cannot be copied is an error. Referrers of a dropped platform are listed as skipped; referrers of
//! referrers are followed (to a small depth, each digest once). Discovery reads the source only,
//! from the source's tags list (listed once per repository per run, [`RunMemo`]) instead of probing
//! every possible tag, and asks a registry without the referrers API only once per run.
//!
//! At a destination without the referrers API (registry 2.x, an OCI layout) the copy maintains the
//! `sha256-<hex>` fallback index there, merging with what is already listed and never dropping an
//! entry, so a later copy out of that destination finds the referrers again.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::Error;
use crate::oci::{self, Descriptor, Digest, Manifest, RawManifest};
use crate::reference::Target;
use crate::transport::{RunMemo, Transport};

/// Which weak references to follow.
#[derive(Debug, Clone)]
pub struct ReferrerOptions {
    /// OCI 1.1 referrers (`--referrers`).
    pub referrers: bool,
    /// cosign `.sig`/`.att`/`.sbom` tags (`--signatures`).
    pub signatures: bool,
    /// Only referrers of these artifact types (`--referrers-type`, repeatable); empty: all.
    pub types: Vec<String>,
}

impl Default for ReferrerOptions {
    fn default() -> Self {
        ReferrerOptions {
            referrers: true,
            signatures: true,
            types: vec![],
        }
    }
}

impl ReferrerOptions {
    pub fn none() -> ReferrerOptions {
        ReferrerOptions {
            referrers: false,
            signatures: false,
            types: vec![],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ReferrerKind {
    /// An OCI 1.1 referrer (it names its subject).
    Referrer,
    /// A cosign-style tag next to the subject.
    Signature { tag: String },
}

/// One referrer or signature found for a manifest of the plan.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedReferrer {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub subject: Digest,
    pub artifact_type: Option<String>,
    #[serde(flatten)]
    pub kind: ReferrerKind,
    pub copy: bool,
    pub reason: String,
    /// Already at the destination (by digest).
    pub present: bool,
    /// Depth: 1 for a referrer of a copied manifest, 2 for a referrer of that referrer, …
    pub depth: usize,
    #[serde(skip)]
    pub raw: Option<RawManifest>,
    /// For a referrer that is an index: its child manifests, pushed before it.
    #[serde(skip)]
    pub children: Vec<RawManifest>,
    #[serde(skip)]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl PlannedReferrer {
    /// The descriptor that lists this referrer in a referrers index.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: self.annotations.clone(),
            artifact_type: self.artifact_type.clone(),
            urls: None,
        }
    }
}

/// A manifest whose referrers are looked for: its digest, whether it is copied, and a label.
pub struct Subject {
    pub digest: Digest,
    pub copied: bool,
    pub label: String,
}

/// The tag the referrers tag schema (and cosign) uses for a digest: `sha256-<hex>`.
pub fn digest_tag(d: &Digest) -> String {
    format!("{}-{}", d.algorithm(), d.hex())
}

const MAX_DEPTH: usize = 4;
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// What [`discover`] found.
#[derive(Default)]
pub struct Discovered {
    pub found: Vec<PlannedReferrer>,
    /// The image manifests (with who uses them) whose blobs the copy needs.
    pub images: Vec<(oci::ImageManifest, String)>,
    /// Subjects whose referrers were read from the source's `sha256-<hex>` tag index, every one
    /// of them copied: that index's digest (see [`merged_tag_index`]).
    pub tag_sources: BTreeMap<Digest, Digest>,
}

/// Find the referrers and signature tags of `subjects` at the source, and which of those to copy
/// the destination already has.
///
/// The source's tags list comes from the run's [`RunMemo`] (listed once per repository per run),
/// and so does the knowledge that a registry has no referrers API. Nothing is read at the source
/// that the destination already holds: a signature tag is a HEAD on each side, a referrer found
/// through the API is a HEAD at the destination, and a `sha256-<hex>` tag index is a HEAD at the
/// source compared with the source digest the destination's merged index records. The subjects of
/// one depth are looked up together, and what is read is read together (`jobs` at a time).
pub async fn discover(
    src: &dyn Transport,
    dst: &dyn Transport,
    subjects: Vec<Subject>,
    opts: &ReferrerOptions,
    memo: &RunMemo,
    jobs: usize,
) -> Result<Discovered, Error> {
    let mut out = Discovered::default();
    if !opts.referrers && !opts.signatures {
        return Ok(out);
    }
    // Weak references: a source that cannot list tags (an archive of one image, a registry that
    // refuses the call) simply has no tag-schema referrers to offer.
    let listed = memo.tags(src).await.unwrap_or_default();
    let tags: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    let mut seen: BTreeSet<Digest> = subjects.iter().map(|s| s.digest.clone()).collect();
    let mut level = subjects;
    let mut depth = 1;
    let jobs = jobs.max(1);

    while !level.is_empty() {
        let lists: Vec<(Subject, Vec<Candidate>, Option<Digest>)> =
            futures::stream::iter(level.into_iter().map(|subject| {
                let tags = &tags;
                async move {
                    let (c, tag_source) = candidates(src, dst, &subject, tags, opts, memo).await?;
                    Ok::<_, Error>((subject, c, tag_source))
                }
            }))
            .buffered(jobs)
            .try_collect()
            .await?;
        let first_new = out.found.len();
        // Who each new one refers to, for the blobs' users.
        let mut labels = Vec::new();
        for (subject, candidates, tag_source) in lists {
            let mut all_copied = true;
            for c in candidates {
                if !seen.insert(c.descriptor.digest.clone()) {
                    continue;
                }
                let r = decide(&subject, c, opts, depth);
                all_copied &= r.copy || r.kind != ReferrerKind::Referrer;
                out.found.push(r);
                labels.push(subject.label.clone());
            }
            if let Some(index) = tag_source
                && all_copied
            {
                out.tag_sources.insert(subject.digest.clone(), index);
            }
        }
        // What is copied and not at the destination yet is read, together.
        let reads: Vec<Option<Read>> =
            futures::stream::iter(out.found[first_new..].iter().map(|r| async move {
                if !r.copy || r.present {
                    return Ok(None);
                }
                if r.kind == ReferrerKind::Referrer
                    && dst
                        .head_manifest(&Target::Digest(r.digest.clone()))
                        .await
                        .map_err(|e| Error::transport(format!("checking {}", dst.location()), e))?
                        .is_some()
                {
                    return Ok(None);
                }
                read(src, r).await.map(Some)
            }))
            .buffered(jobs)
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for ((r, read), label) in out.found[first_new..].iter_mut().zip(reads).zip(labels) {
            if !r.copy {
                continue;
            }
            match read {
                Some(read) => {
                    r.media_type = read.raw.media_type.clone();
                    if r.artifact_type.is_none() {
                        r.artifact_type = read.artifact_type;
                    }
                    if r.annotations.is_none() {
                        r.annotations = read.annotations;
                    }
                    out.images.extend(
                        read.images
                            .into_iter()
                            .map(|m| (m, format!("referrer of {label}"))),
                    );
                    r.children = read.children;
                    r.raw = Some(read.raw);
                }
                // At the destination already (with its blobs): not read.
                None => r.present = true,
            }
            if depth < MAX_DEPTH {
                next.push(Subject {
                    digest: r.digest.clone(),
                    copied: true,
                    label: format!("referrer {}", r.digest.short()),
                });
            }
        }
        level = next;
        depth += 1;
    }
    Ok(out)
}

/// A referrer or signature tag found for a subject, with its bytes when they were read, and
/// whether the destination is known to have it.
struct Candidate {
    descriptor: Descriptor,
    kind: ReferrerKind,
    raw: Option<RawManifest>,
    present: bool,
}

/// What `subject` has: its OCI 1.1 referrers (the API, else the `sha256-<hex>` tag) and its
/// cosign tags (only those in the tags list). With the digest of the source's tag index when the
/// referrers were read from it.
async fn candidates(
    src: &dyn Transport,
    dst: &dyn Transport,
    subject: &Subject,
    tags: &BTreeSet<&str>,
    opts: &ReferrerOptions,
    memo: &RunMemo,
) -> Result<(Vec<Candidate>, Option<Digest>), Error> {
    let read_err = |what: String| move |e| Error::transport(what, e);
    let mut out = Vec::new();
    let mut tag_source = None;
    if opts.referrers {
        let listed = memo
            .referrers(src, &subject.digest)
            .await
            .map_err(read_err(format!(
                "listing the referrers of {} at {}",
                subject.digest,
                src.location()
            )))?;
        let listed = match listed {
            Some(l) => l,
            None if tags.contains(digest_tag(&subject.digest).as_str()) => {
                let tag = digest_tag(&subject.digest);
                let what = || format!("reading the referrers tag {tag} at {}", src.location());
                match src
                    .head_manifest(&Target::Tag(tag.clone()))
                    .await
                    .map_err(read_err(what()))?
                {
                    None => vec![],
                    Some(index) => {
                        // The destination's merged index lists all of this source index already.
                        let merged = dst
                            .get_manifest(&Target::Tag(tag.clone()))
                            .await
                            .ok()
                            .flatten()
                            .filter(|m| recorded_source(m).as_ref() == Some(&index));
                        match merged {
                            Some(m) => index_entries(&m),
                            None => {
                                tag_source = Some(index.clone());
                                src.get_manifest(&Target::Digest(index))
                                    .await
                                    .map_err(read_err(what()))?
                                    .map(|m| index_entries(&m))
                                    .unwrap_or_default()
                            }
                        }
                    }
                }
            }
            None => vec![],
        };
        out.extend(listed.into_iter().map(|d| Candidate {
            descriptor: d,
            kind: ReferrerKind::Referrer,
            raw: None,
            present: false,
        }));
    }
    if opts.signatures {
        for suffix in COSIGN_SUFFIXES {
            let tag = format!("{}.{suffix}", digest_tag(&subject.digest));
            if !tags.contains(tag.as_str()) {
                continue;
            }
            let what = || format!("reading the signature tag {tag} at {}", src.location());
            let at = Target::Tag(tag.clone());
            let (here, there) = tokio::join!(src.head_manifest(&at), dst.head_manifest(&at));
            let Some(digest) = here.map_err(read_err(what()))? else {
                continue;
            };
            let kind = ReferrerKind::Signature { tag: tag.clone() };
            if there.ok().flatten().as_ref() == Some(&digest) {
                // The same signature under the same tag: not read.
                out.push(Candidate {
                    descriptor: Descriptor {
                        media_type: String::new(),
                        digest,
                        size: 0,
                        platform: None,
                        annotations: None,
                        artifact_type: None,
                        urls: None,
                    },
                    kind,
                    raw: None,
                    present: true,
                });
            } else if let Some(raw) = src
                .get_manifest(&Target::Digest(digest))
                .await
                .map_err(read_err(what()))?
            {
                out.push(Candidate {
                    descriptor: raw.descriptor(),
                    kind,
                    raw: Some(raw),
                    present: false,
                });
            }
        }
    }
    Ok((out, tag_source))
}

fn index_entries(raw: &RawManifest) -> Vec<Descriptor> {
    match raw.parse() {
        Ok(Manifest::Index(i)) => i.manifests,
        _ => vec![],
    }
}

/// The source tag index a destination's merged referrers index records having merged.
fn recorded_source(raw: &RawManifest) -> Option<Digest> {
    let doc: serde_json::Value = serde_json::from_slice(&raw.bytes).ok()?;
    doc["annotations"][ANNOTATION_REFERRERS_SOURCE]
        .as_str()?
        .parse()
        .ok()
}

/// On a `sha256-<hex>` referrers index that `mirror` maintains at a destination: the digest of the
/// source's own tag index whose entries it has merged (all of them, each copied).
pub const ANNOTATION_REFERRERS_SOURCE: &str = "dev.mirror.referrers-source";

/// Whether a candidate is copied, and why.
fn decide(
    subject: &Subject,
    c: Candidate,
    opts: &ReferrerOptions,
    depth: usize,
) -> PlannedReferrer {
    let Candidate {
        descriptor: d,
        kind,
        raw,
        present,
    } = c;
    let type_ok = opts.types.is_empty()
        || matches!(kind, ReferrerKind::Signature { .. })
        || d.artifact_type
            .as_ref()
            .is_some_and(|t| opts.types.contains(t));
    let (copy, reason) = match (subject.copied, type_ok) {
        (false, _) => (
            false,
            format!("its subject {} is not copied", subject.label),
        ),
        (true, false) => (
            false,
            format!(
                "artifact type {} not in --referrers-type",
                d.artifact_type.as_deref().unwrap_or("(none)")
            ),
        ),
        (true, true) => (true, format!("refers to {}", subject.label)),
    };
    PlannedReferrer {
        digest: d.digest.clone(),
        media_type: d.media_type.clone(),
        size: d.size,
        subject: subject.digest.clone(),
        artifact_type: d.artifact_type.clone(),
        kind,
        copy,
        reason,
        present,
        depth,
        raw,
        children: vec![],
        annotations: d.annotations.clone(),
    }
}

/// A copied referrer as read: its bytes, its children (an index), and the image manifests whose
/// blobs the copy needs.
struct Read {
    raw: RawManifest,
    children: Vec<RawManifest>,
    images: Vec<oci::ImageManifest>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

async fn read(src: &dyn Transport, r: &PlannedReferrer) -> Result<Read, Error> {
    let raw = match &r.raw {
        Some(raw) => raw.clone(),
        None => read_referrer(src, &r.descriptor()).await?,
    };
    let mut out = Read {
        raw: raw.clone(),
        children: vec![],
        images: vec![],
        artifact_type: None,
        annotations: None,
    };
    match raw
        .parse()
        .map_err(|e| Error::invalid(format!("{}@{}", src.location(), r.digest), e.to_string()))?
    {
        Manifest::Image(m) => {
            out.artifact_type = Some(m.effective_artifact_type().to_string());
            out.annotations = m.annotations.clone();
            out.images.push(m);
        }
        Manifest::Index(i) => {
            out.artifact_type = i.artifact_type.clone();
            for child in &i.manifests {
                if child.is_index() {
                    continue;
                }
                let c = read_referrer(src, child).await?;
                if let Ok(Manifest::Image(m)) = c.parse() {
                    out.images.push(m);
                }
                out.children.push(c);
            }
        }
    }
    Ok(out)
}

async fn read_referrer(src: &dyn Transport, d: &Descriptor) -> Result<RawManifest, Error> {
    src.get_manifest(&Target::Digest(d.digest.clone()))
        .await
        .map_err(|e| {
            Error::transport(
                format!("reading the referrer {} at {}", d.digest, src.location()),
                e,
            )
        })?
        .ok_or_else(|| {
            Error::SourceIncomplete(format!(
                "{} lists the referrer {}, but the manifest is not there",
                src.location(),
                d.digest
            ))
        })
}

/// The copied manifests (`manifests`) that name a `subject`, each as `(subject, descriptor)`: the
/// entry that lists it in its subject's referrers index (its `artifactType`, or for an image
/// manifest its config's media type, and its annotations), as the distribution spec 1.1 asks a
/// client to maintain at a registry without the referrers API.
pub fn naming_a_subject<'a>(
    manifests: impl IntoIterator<Item = &'a RawManifest>,
) -> Vec<(Digest, Descriptor)> {
    manifests
        .into_iter()
        .filter_map(|raw| {
            let parsed = raw.parse().ok()?;
            let subject = parsed.subject()?.digest.clone();
            let annotations = match &parsed {
                oci::Manifest::Index(i) => i.annotations.clone(),
                oci::Manifest::Image(m) => m.annotations.clone(),
            };
            Some((
                subject,
                Descriptor {
                    artifact_type: parsed.artifact_type().map(str::to_string),
                    annotations: annotations.filter(|a| !a.is_empty()),
                    ..raw.descriptor()
                },
            ))
        })
        .collect()
}

/// The referrers index to store under `sha256-<hex>` at a destination without the referrers API:
/// what `existing` lists, plus `new` entries it lacks. `None` when nothing is to be added.
pub fn merged_tag_index(
    existing: Option<&RawManifest>,
    new: &[Descriptor],
) -> Result<Option<RawManifest>, Error> {
    merged_tag_index_from(existing, new, None)
}

/// [`merged_tag_index`], recording that it now holds every entry of the source's tag index
/// `source` ([`ANNOTATION_REFERRERS_SOURCE`]), so a rerun that finds the source index unchanged
/// (a HEAD) need not read it. A changed record alone is a reason to store the index again.
pub fn merged_tag_index_from(
    existing: Option<&RawManifest>,
    new: &[Descriptor],
    source: Option<&Digest>,
) -> Result<Option<RawManifest>, Error> {
    let mut doc: serde_json::Value = match existing {
        Some(raw) => serde_json::from_slice(&raw.bytes).map_err(|e| {
            Error::invalid(
                format!("the referrers index {}", raw.digest),
                format!("not valid JSON: {e}"),
            )
        })?,
        None => {
            serde_json::json!({ "schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": [] })
        }
    };
    let list = doc
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| {
            Error::invalid(
                format!(
                    "the referrers index {}",
                    existing.map(|r| r.digest.to_string()).unwrap_or_default()
                ),
                "it has no `manifests` list",
            )
        })?;
    let listed: BTreeSet<String> = list
        .iter()
        .filter_map(|d| d.get("digest").and_then(|d| d.as_str()).map(str::to_string))
        .collect();
    let mut added = false;
    for d in new {
        if listed.contains(d.digest.as_str()) {
            continue;
        }
        list.push(serde_json::to_value(d).expect("a descriptor serializes"));
        added = true;
    }
    if let Some(source) = source
        && doc["annotations"][ANNOTATION_REFERRERS_SOURCE].as_str() != Some(source.as_str())
    {
        if !doc["annotations"].is_object() {
            doc["annotations"] = serde_json::json!({});
        }
        doc["annotations"][ANNOTATION_REFERRERS_SOURCE] = source.as_str().into();
        added = true;
    }
    if !added {
        return Ok(None);
    }
    let bytes = serde_json::to_vec(&doc).expect("JSON serializes");
    Ok(Some(RawManifest::new(bytes.into(), oci::OCI_INDEX)))
}

/// A referrers tag-schema or cosign tag (`sha256-<hex>`, `sha256-<hex>.sig`, …), not an image tag.
pub fn is_schema_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|rest| {
        let hex = rest.split('.').next().unwrap_or("");
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real-world");

    fn raw(name: &str) -> RawManifest {
        RawManifest::new(
            std::fs::read(format!("{FIXTURES}/{name}")).unwrap().into(),
            "",
        )
    }

    #[test]
    fn real_referrers_indexes_list_their_artifacts() {
        for (name, subject_file, count) in [
            (
                "notation-referrers-tag-index.json",
                "notation-subject-artifact-manifest.json",
                1,
            ),
            (
                "regclient-referrers-index-for-v2.json",
                "regclient-index-v2-subject.json",
                2,
            ),
        ] {
            let index = raw(name);
            let Manifest::Index(i) = index.parse().unwrap() else {
                panic!("{name}")
            };
            assert_eq!(i.manifests.len(), count, "{name}");
            let subject = raw(subject_file).digest;
            for d in &i.manifests {
                assert!(
                    d.artifact_type.is_some(),
                    "{name}: artifactType on every descriptor"
                );
                // Each listed referrer names that subject (where the fixture has the referrer).
                let files = [
                    "notation-signature-manifest-with-subject.json",
                    "regclient-artifact-manifest-sbom-with-subject.json",
                    "regclient-artifact-manifest-signature-with-subject.json",
                ];
                for f in files {
                    let r = raw(f);
                    if r.digest == d.digest {
                        assert_eq!(r.parse().unwrap().subject().unwrap().digest, subject, "{f}");
                    }
                }
            }
        }
        assert_eq!(
            digest_tag(&raw("regclient-index-v2-subject.json").digest),
            "sha256-dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e"
        );
    }

    #[test]
    fn merging_keeps_every_existing_entry() {
        let existing = raw("regclient-referrers-index-for-v2.json");
        let sig = raw("notation-signature-manifest-with-subject.json");
        let mut d = sig.descriptor();
        d.artifact_type = Some("application/vnd.cncf.notary.signature".into());
        let merged = merged_tag_index(Some(&existing), std::slice::from_ref(&d))
            .unwrap()
            .unwrap();
        let Manifest::Index(i) = merged.parse().unwrap() else {
            panic!()
        };
        assert_eq!(i.manifests.len(), 3);
        assert_eq!(i.manifests[2].digest, d.digest);
        // Adding what is there already changes nothing.
        assert!(merged_tag_index(Some(&merged), &[d]).unwrap().is_none());
        // A referrers index whose entry is itself an index (the nested fixture) parses too.
        let nested = raw("regclient-referrers-index-containing-index.json");
        let Manifest::Index(n) = nested.parse().unwrap() else {
            panic!()
        };
        assert!(n.manifests[0].is_index());
    }
}
