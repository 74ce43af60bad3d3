//! Selection over the index tree the walk read, and reading the kept children: the part of
//! planning that decides what is kept and checks that the source can supply it.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;

use super::{PlanOptions, PlannedEntry, PlannedManifest};
use crate::error::Error;
use crate::oci::{self, Descriptor, Digest, RawManifest};
use crate::platform::{Platform, PlatformSpec};
use crate::reference::Target;
use crate::select::{self, Decision};
use crate::transport::Transport;
use crate::walk;

/// A requested platform that matches no entry is an error (or, with --skip-missing-platforms, a
/// warning, unless none matched at all).
pub(super) fn check_missing(
    src: &dyn Transport,
    target: &Target,
    specs: &[PlatformSpec],
    matched: &BTreeSet<usize>,
    entries: &[PlannedEntry],
    opts: &PlanOptions,
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let missing: Vec<&PlatformSpec> = specs
        .iter()
        .enumerate()
        .filter(|(i, _)| !matched.contains(i))
        .map(|(_, s)| s)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let available: Vec<String> = entries
        .iter()
        .filter(|e| e.attests.is_none())
        .filter_map(|e| e.platform.clone())
        .filter(|p| p != "unknown/unknown")
        .collect();
    let missing_list = missing
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let msg = format!(
        "{}:{target} has no {} entry (it has: {})",
        src.location(),
        missing_list,
        if available.is_empty() {
            "no platform entries".to_string()
        } else {
            available.join(", ")
        }
    );
    if !opts.skip_missing_platforms {
        return Err(Error::PlatformMissing {
            message: msg,
            advice: Some(crate::error::Advice::SkipMissingPlatforms),
        });
    }
    if missing.len() == specs.len() {
        return Err(Error::PlatformMissing {
            message: format!("{msg}: none of the requested platforms is there"),
            advice: None,
        });
    }
    warnings.push(msg);
    Ok(())
}

/// A kept image manifest not read yet.
pub(super) struct Pending {
    pub(super) descriptor: Descriptor,
    pub(super) who: String,
    pub(super) depth: usize,
}

pub(super) struct Walker<'a> {
    pub(super) src: &'a dyn Transport,
    pub(super) opts: &'a PlanOptions,
    pub(super) entries: &'a mut Vec<PlannedEntry>,
    /// Kept nested indexes (read during the walk).
    pub(super) manifests: &'a mut Vec<PlannedManifest>,
    pub(super) matched: &'a mut BTreeSet<usize>,
    pub(super) pending: &'a mut Vec<Pending>,
    pub(super) warnings: &'a mut Vec<String>,
}

impl Walker<'_> {
    /// Select inside `index` (listed at `depth`, its nested indexes read into `tree`), recursing
    /// into nested indexes; returns whether anything in it is kept.
    pub(super) fn walk(
        &mut self,
        index_digest: &Digest,
        index: &oci::Index,
        tree: &[walk::Entry],
        depth: usize,
    ) -> Result<bool, Error> {
        // Nested indexes first: their decision depends on their children.
        let mut nested: BTreeMap<Digest, bool> = BTreeMap::new();
        for e in tree.iter().filter(|e| e.descriptor.is_index()) {
            let d = &e.descriptor;
            if nested.contains_key(&d.digest) {
                continue;
            }
            let raw = checked(self.src, d, e.raw.clone(), None)?;
            self.warnings
                .extend(media_type_disagreement(self.src, d, &raw));
            let Some((child, inner)) = &e.nested else {
                return Err(Error::invalid(
                    format!("{}@{}", self.src.location(), d.digest),
                    e.problem().unwrap_or_else(|| "not a readable index".into()),
                ));
            };
            let manifests_before = self.manifests.len();
            let pending_before = self.pending.len();
            let kept = self.walk(&d.digest, child, inner, depth + 1)?;
            if kept {
                self.manifests.push(PlannedManifest {
                    digest: raw.digest.clone(),
                    media_type: raw.media_type.clone(),
                    size: raw.size(),
                    raw: Some(raw),
                    platform: None,
                    depth,
                    present: false,
                });
            } else {
                // Nothing inside is kept: drop what the recursion recorded as pushes, keep decisions.
                self.manifests.truncate(manifests_before);
                self.pending.truncate(pending_before);
            }
            nested.insert(d.digest.clone(), kept);
        }
        let sel = select::select_index(index, &self.opts.selection, &|d| nested.get(d).copied());
        self.matched.extend(sel.matched.iter().copied());

        let mut to_fetch = Vec::new();
        for (d, decision) in index.manifests.iter().zip(&sel.decisions) {
            let (keep, reason) = match decision {
                Decision::Keep(r) => (true, r.clone()),
                Decision::Drop(r) => (false, r.clone()),
                Decision::Nested => (false, "undecided".to_string()),
            };
            let platform = d.platform.as_ref().map(Platform::to_string);
            self.entries.push(PlannedEntry {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
                platform: platform.clone(),
                keep,
                reason,
                parent: index_digest.clone(),
                attests: d.attests(),
            });
            if keep && !d.is_index() {
                let who = match &d.attests() {
                    Some(of) => {
                        let target = index.manifests.iter().find(|m| m.digest == *of);
                        match target
                            .and_then(|t| t.platform.as_ref())
                            .filter(|p| p.is_real())
                        {
                            Some(p) => format!("{p} attestation"),
                            None => format!("attestation of {}", of.short()),
                        }
                    }
                    None => platform
                        .clone()
                        .filter(|_| d.platform.as_ref().is_some_and(Platform::is_real))
                        .unwrap_or_else(|| d.digest.short()),
                };
                to_fetch.push((d.clone(), who));
            }
        }
        for (d, who) in to_fetch {
            self.pending.push(Pending {
                descriptor: d,
                who,
                depth,
            });
        }
        Ok(sel.decisions.iter().any(Decision::is_keep))
    }
}

/// Fetch a child manifest by digest; its absence is an error (the source is itself sparse).
pub(super) async fn fetch(
    src: &dyn Transport,
    d: &Descriptor,
    who: Option<&str>,
) -> Result<RawManifest, Error> {
    let raw = walk::get_child(src, d, who).await?;
    checked(src, d, raw, who)
}

/// A child manifest as read: there, and of the size its descriptor says. It is pushed later with
/// the media type its own body declares ([`RawManifest::new`]); the descriptor's type is used
/// only for a body that declares none.
fn checked(
    src: &dyn Transport,
    d: &Descriptor,
    raw: Option<RawManifest>,
    who: Option<&str>,
) -> Result<RawManifest, Error> {
    let what = who.map(|w| format!(" ({w})")).unwrap_or_default();
    match raw {
        Some(mut raw) => {
            if raw.size() != d.size {
                return Err(Error::invalid(
                    format!("{}@{}{what}", src.location(), d.digest),
                    format!(
                        "the index says {} bytes, the manifest has {}",
                        d.size,
                        raw.size()
                    ),
                ));
            }
            if oci::is_manifest_media_type(&d.media_type)
                && oci::declared_media_type(&raw.bytes).is_none()
            {
                raw.media_type = d.media_type.clone();
            }
            Ok(raw)
        }
        None => Err(Error::SourceIncomplete(format!(
            "{}@{}{what} is selected but the source does not have it (the source index is itself sparse); \
             drop that platform or copy from a complete source",
            src.location(),
            d.digest
        ))),
    }
}

/// A warning when a child's descriptor and its body disagree about its media type (it is pushed
/// as its body says).
pub(super) fn media_type_disagreement(
    src: &dyn Transport,
    d: &Descriptor,
    raw: &RawManifest,
) -> Option<String> {
    let declared = oci::declared_media_type(&raw.bytes)?;
    (oci::is_manifest_media_type(&d.media_type) && declared != d.media_type).then(|| {
        format!(
            "{}@{} is listed as {} but its body declares {declared}: it is pushed as {declared}",
            src.location(),
            d.digest,
            d.media_type
        )
    })
}

/// A single-platform source with `--platform`: its config must match.
pub(super) async fn check_single_platform(
    src: &dyn Transport,
    m: &oci::ImageManifest,
    specs: &[PlatformSpec],
) -> Result<(), Error> {
    if m.config.size > oci::MAX_MANIFEST_BYTES as u64 {
        return Err(Error::invalid(
            src.location(),
            "the image config is larger than 4 MiB",
        ));
    }
    let mut stream = src.get_blob(&m.config).await.map_err(|e| {
        Error::transport(
            format!(
                "reading the config {} of {}",
                m.config.digest,
                src.location()
            ),
            e,
        )
    })?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            Error::transport(format!("reading the config of {}", src.location()), e)
        })?;
        bytes.extend_from_slice(&chunk);
        if bytes.len() as u64 > m.config.size {
            break;
        }
    }
    if !m.config.digest.matches(&bytes) {
        return Err(Error::invalid(
            src.location(),
            format!(
                "the config blob does not match its digest {}",
                m.config.digest
            ),
        ));
    }
    let platform: Platform = serde_json::from_slice(&bytes).unwrap_or_default();
    if specs.iter().any(|s| s.matches(&platform)) {
        return Ok(());
    }
    Err(Error::PlatformMissing {
        advice: None,
        message: format!(
            "{} is a single-platform image for {}, which is not among the requested platforms {}",
            src.location(),
            if platform.is_real() {
                platform.to_string()
            } else {
                "an unknown platform".into()
            },
            specs
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    })
}
