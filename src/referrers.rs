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
//! referrers are followed (to a small depth, each digest once). Discovery reads the source only and
//! lists the source's tags once per image instead of probing every possible tag.
//!
//! At a destination without the referrers API (registry 2.x, an OCI layout) the copy maintains the
//! `sha256-<hex>` fallback index there, merging with what is already listed and never dropping an
//! entry, so a later copy out of that destination finds the referrers again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use crate::error::Error;
use crate::oci::{self, Descriptor, Digest, Manifest, RawManifest};
use crate::reference::Target;
use crate::transport::Transport;

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

/// Find the referrers and signature tags of `subjects` at the source. Returns them and the
/// image manifests (with who uses them) whose blobs the copy needs.
pub async fn discover(
    src: &dyn Transport,
    subjects: Vec<Subject>,
    opts: &ReferrerOptions,
) -> Result<(Vec<PlannedReferrer>, Vec<(oci::ImageManifest, String)>), Error> {
    let mut found = Vec::new();
    let mut images = Vec::new();
    if !opts.referrers && !opts.signatures {
        return Ok((found, images));
    }
    let tags: BTreeSet<String> = match src.list_tags().await {
        Ok(t) => t.into_iter().collect(),
        // Weak references: a source that cannot list tags (an archive of one image, a registry
        // that refuses the call) simply has no tag-schema referrers to offer.
        Err(_) => BTreeSet::new(),
    };
    let mut api: Option<bool> = None;
    let mut seen: BTreeSet<Digest> = subjects.iter().map(|s| s.digest.clone()).collect();
    let mut queue: VecDeque<(Subject, usize)> = subjects.into_iter().map(|s| (s, 1)).collect();
    let read_err = |what: String| move |e| Error::transport(what, e);

    while let Some((subject, depth)) = queue.pop_front() {
        let mut candidates: Vec<(Descriptor, ReferrerKind, Option<RawManifest>)> = Vec::new();
        if opts.referrers {
            let listed = if api == Some(false) {
                None
            } else {
                let r = src
                    .referrers(&subject.digest)
                    .await
                    .map_err(read_err(format!(
                        "listing the referrers of {} at {}",
                        subject.digest,
                        src.location()
                    )))?;
                api = Some(r.is_some());
                r
            };
            let listed = match listed {
                Some(l) => l,
                None if tags.contains(&digest_tag(&subject.digest)) => {
                    let tag = digest_tag(&subject.digest);
                    match src
                        .get_manifest(&Target::Tag(tag.clone()))
                        .await
                        .map_err(read_err(format!(
                            "reading the referrers tag {tag} at {}",
                            src.location()
                        )))? {
                        Some(raw) => match raw.parse() {
                            Ok(Manifest::Index(i)) => i.manifests,
                            _ => vec![],
                        },
                        None => vec![],
                    }
                }
                None => vec![],
            };
            candidates.extend(
                listed
                    .into_iter()
                    .map(|d| (d, ReferrerKind::Referrer, None)),
            );
        }
        if opts.signatures {
            for suffix in COSIGN_SUFFIXES {
                let tag = format!("{}.{suffix}", digest_tag(&subject.digest));
                if !tags.contains(&tag) {
                    continue;
                }
                if let Some(raw) =
                    src.get_manifest(&Target::Tag(tag.clone()))
                        .await
                        .map_err(read_err(format!(
                            "reading the signature tag {tag} at {}",
                            src.location()
                        )))?
                {
                    candidates.push((raw.descriptor(), ReferrerKind::Signature { tag }, Some(raw)));
                }
            }
        }
        for (d, kind, raw) in candidates {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
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
            let mut r = PlannedReferrer {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
                subject: subject.digest.clone(),
                artifact_type: d.artifact_type.clone(),
                kind,
                copy,
                reason,
                present: false,
                depth,
                raw,
                children: vec![],
                annotations: d.annotations.clone(),
            };
            if r.copy {
                let raw = match r.raw.take() {
                    Some(raw) => raw,
                    None => read_referrer(src, &d).await?,
                };
                r.media_type = raw.media_type.clone();
                match raw.parse().map_err(|e| {
                    Error::invalid(format!("{}@{}", src.location(), d.digest), e.to_string())
                })? {
                    Manifest::Image(m) => {
                        if r.artifact_type.is_none() {
                            r.artifact_type = Some(m.effective_artifact_type().to_string());
                        }
                        if r.annotations.is_none() {
                            r.annotations = m.annotations.clone();
                        }
                        images.push((m, format!("referrer of {}", subject.label)));
                    }
                    Manifest::Index(i) => {
                        if r.artifact_type.is_none() {
                            r.artifact_type = i.artifact_type.clone();
                        }
                        for child in &i.manifests {
                            if child.is_index() {
                                continue;
                            }
                            let c = read_referrer(src, child).await?;
                            if let Ok(Manifest::Image(m)) = c.parse() {
                                images.push((m, format!("referrer of {}", subject.label)));
                            }
                            r.children.push(c);
                        }
                    }
                }
                r.raw = Some(raw);
                if depth < MAX_DEPTH {
                    queue.push_back((
                        Subject {
                            digest: d.digest.clone(),
                            copied: true,
                            label: format!("referrer {}", d.digest.short()),
                        },
                        depth + 1,
                    ));
                }
            }
            found.push(r);
        }
    }
    Ok((found, images))
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
