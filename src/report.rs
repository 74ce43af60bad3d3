//! The versioned JSON report (DESIGN.md, Report) and the readable text summary. Both are written to
//! a `Write`; the terminal is the CLI's business.

use std::io::{self, Write};

use serde::Serialize;

use crate::error::ExitCode;
use crate::oci::{self, Digest};
use crate::plan::{Plan, RootKind, Totals};
use crate::transport::{RegistryErrorItem, SparseSupport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Pushed,
    Rejected,
    Completed,
    Stripped,
    UpToDate,
    Planned,
    Single,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexReport {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub outcome: Outcome,
    /// What the destination tag points at after the copy (the source digest unless stripped).
    pub pushed_digest: Option<Digest>,
    pub tag: Option<String>,
    /// Whether the destination announced sparse-index support before the push.
    pub sparse_support: SparseSupport,
    /// Entries dropped by selection (the index is pushed sparse when non-zero).
    pub dropped_entries: usize,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryReport {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub platform: Option<String>,
    pub decision: &'static str,
    pub reason: String,
    /// The index that lists this entry (differs from the root for nested indexes).
    pub parent: Digest,
    /// For an attestation entry: the entry it attests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attests: Option<Digest>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerReport {
    pub digest: Digest,
    pub subject: Digest,
    pub artifact_type: Option<String>,
    /// `referrer` (OCI 1.1, names its subject) or `signature` (a cosign-style tag).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `copy` or `skip`.
    pub decision: &'static str,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub status: u16,
    pub errors: Vec<RegistryErrorItem>,
    /// Bytes (blobs and manifests) `--on-sparse-reject complete` would add.
    pub complete_extra_bytes: u64,
    /// Entries `complete` would add.
    pub complete_extra_entries: usize,
    /// `false` when the source lacks the dropped entries (a sparse layout), so `complete` cannot work.
    pub complete_possible: bool,
    /// The digest of the index `--on-sparse-reject strip` would push (or pushed).
    pub stripped_digest: Digest,
    /// The policy that ended it: `report` (stopped, exit 3), `complete`, `required` or `strip`.
    pub policy: String,
    /// Earlier policies of the list that could not finish, and why.
    pub attempts: Vec<Attempt>,
    /// With `required`: the entries added at the registry's demand.
    pub required: Vec<RequiredEntry>,
    /// Their manifest and blob bytes (compare `completeExtraBytes`).
    pub required_extra_bytes: u64,
}

/// A sparse-rejection policy that was tried and could not finish.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub policy: String,
    pub result: String,
    pub reason: String,
}

/// An entry copied because the destination demanded it (`--on-sparse-reject required`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequiredEntry {
    pub digest: Digest,
    pub platform: Option<String>,
    pub reason: String,
    /// The manifest and the blobs it lists.
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobReport {
    #[serde(flatten)]
    pub totals: Totals,
    /// Blobs made present by a cross-repository mount (neither present before nor transferred).
    pub mounted_count: u64,
    pub mounted_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub index: IndexReport,
    pub entries: Vec<EntryReport>,
    pub blobs: BlobReport,
    pub referrers: Vec<ReferrerReport>,
    pub rejection: Option<Rejection>,
    pub warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// In a dry run: every manifest and blob with its size and whether the destination has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanDetail>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanDetail {
    /// Blob totals by platform (a blob shared by several platforms counts for each).
    pub per_platform: std::collections::BTreeMap<String, Totals>,
    pub manifests: Vec<crate::plan::PlannedManifest>,
    pub blobs: Vec<crate::plan::PlannedBlob>,
    pub manifest_bytes_to_push: u64,
}

impl Report {
    /// The report of a plan, before or after execution.
    pub fn from_plan(plan: &Plan, outcome: Outcome, dry_run: bool) -> Report {
        let pushed_digest = match outcome {
            Outcome::UpToDate => Some(plan.stripped.as_ref().unwrap_or(&plan.root.digest).clone()),
            Outcome::Pushed | Outcome::Completed | Outcome::Single => {
                Some(plan.root.digest.clone())
            }
            _ => None,
        };
        Report {
            version: 1,
            source: plan.source.clone(),
            destination: plan.destination.clone(),
            dry_run,
            index: IndexReport {
                digest: plan.root.digest.clone(),
                media_type: plan.root.media_type.clone(),
                size: plan.root.size,
                outcome,
                pushed_digest,
                tag: plan.tag.clone(),
                sparse_support: plan.sparse_support,
                dropped_entries: plan.dropped().count(),
            },
            entries: plan
                .entries
                .iter()
                .map(|e| EntryReport {
                    digest: e.digest.clone(),
                    media_type: e.media_type.clone(),
                    size: e.size,
                    platform: e.platform.clone(),
                    decision: if e.keep { "keep" } else { "drop" },
                    reason: e.reason.clone(),
                    parent: e.parent.clone(),
                    attests: e.attests.clone(),
                })
                .collect(),
            blobs: BlobReport {
                totals: plan.blob_totals(),
                mounted_count: 0,
                mounted_bytes: 0,
            },
            referrers: plan
                .referrers
                .iter()
                .map(|r| ReferrerReport {
                    digest: r.digest.clone(),
                    subject: r.subject.clone(),
                    artifact_type: r.artifact_type.clone(),
                    kind: match r.kind {
                        crate::referrers::ReferrerKind::Referrer => "referrer",
                        crate::referrers::ReferrerKind::Signature { .. } => "signature",
                    },
                    tag: match &r.kind {
                        crate::referrers::ReferrerKind::Signature { tag } => Some(tag.clone()),
                        crate::referrers::ReferrerKind::Referrer => None,
                    },
                    decision: if r.copy { "copy" } else { "skip" },
                    reason: r.reason.clone(),
                })
                .collect(),
            rejection: None,
            warnings: plan.warnings.clone(),
            error: None,
            plan: dry_run.then(|| PlanDetail {
                per_platform: plan.per_platform(),
                manifests: plan.manifests.clone(),
                blobs: plan.blobs.clone(),
                manifest_bytes_to_push: plan.manifest_bytes_to_push(),
            }),
        }
    }

    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    /// The readable summary.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let verb = match self.index.outcome {
            Outcome::Planned => "plan",
            Outcome::UpToDate => "up to date",
            Outcome::Rejected => "sparse index refused",
            _ => "copied",
        };
        writeln!(out, "{verb}: {} -> {}", self.source, self.destination)?;
        let kind = if oci::is_index_media_type(&self.index.media_type) {
            "index"
        } else {
            "manifest"
        };
        let kept = self.entries.iter().filter(|e| e.decision == "keep").count();
        let what = match self.index.outcome {
            Outcome::Pushed if self.index.dropped_entries > 0 => format!(
                "pushed sparse, digest kept ({kept} of {} entries)",
                self.entries.len()
            ),
            Outcome::Pushed => "pushed, digest kept".to_string(),
            Outcome::Single => "pushed, digest kept".to_string(),
            Outcome::Completed => {
                "pushed complete after the sparse index was refused, digest kept".to_string()
            }
            Outcome::Stripped => format!(
                "refused sparse; pushed a stripped index {} instead (the original digest is not kept)",
                self.index
                    .pushed_digest
                    .as_ref()
                    .map(|d| d.to_string())
                    .unwrap_or_default()
            ),
            Outcome::UpToDate => match &self.index.pushed_digest {
                Some(d) if *d != self.index.digest => format!(
                    "already at the destination as the stripped index {d}, which names it as its original"
                ),
                _ => "already at the destination".to_string(),
            },
            Outcome::Planned if self.index.dropped_entries > 0 => {
                format!(
                    "would push sparse ({kept} of {} entries); {}",
                    self.entries.len(),
                    sparse_note(self.index.sparse_support)
                )
            }
            Outcome::Planned => "would push as is".to_string(),
            Outcome::Rejected => "not pushed: the destination refused the sparse index".to_string(),
        };
        writeln!(out, "  {kind} {}: {what}", self.index.digest)?;
        if !self.entries.is_empty() {
            let width = self
                .entries
                .iter()
                .map(|e| entry_label(e).len())
                .max()
                .unwrap_or(1);
            for e in &self.entries {
                writeln!(
                    out,
                    "  {} {:width$}  {}  {}",
                    e.decision,
                    entry_label(e),
                    e.digest.short(),
                    e.reason,
                )?;
            }
        }
        let t = &self.blobs.totals;
        let moved = if self.dry_run {
            "to transfer"
        } else {
            "transferred"
        };
        write!(
            out,
            "  blobs: {} ({}), {} already present ({}), {} {moved} ({})",
            t.count,
            human_bytes(t.bytes),
            t.present_count,
            human_bytes(t.present_bytes),
            t.transferred_count,
            human_bytes(t.transferred_bytes),
        )?;
        if self.blobs.mounted_count > 0 {
            write!(
                out,
                ", {} mounted ({})",
                self.blobs.mounted_count,
                human_bytes(self.blobs.mounted_bytes)
            )?;
        }
        writeln!(out)?;
        if let Some(plan) = &self.plan {
            writeln!(out, "  by platform (a shared blob counts for each):")?;
            let width = plan.per_platform.keys().map(String::len).max().unwrap_or(0);
            for (who, t) in &plan.per_platform {
                writeln!(
                    out,
                    "    {who:width$}  {:>10} in {} blobs, {:>10} to transfer",
                    human_bytes(t.bytes),
                    t.count,
                    human_bytes(t.transferred_bytes)
                )?;
            }
            writeln!(out, "  manifests:")?;
            for m in &plan.manifests {
                writeln!(
                    out,
                    "    {} {:>10}  {}  {}",
                    if m.present { "present " } else { "to push " },
                    human_bytes(m.size),
                    m.digest.short(),
                    m.platform.as_deref().unwrap_or(&m.media_type)
                )?;
            }
            writeln!(out, "  blobs:")?;
            for b in &plan.blobs {
                writeln!(
                    out,
                    "    {} {:>10}  {}  {}",
                    if b.present { "present " } else { "transfer" },
                    human_bytes(b.size),
                    b.digest.short(),
                    b.used_by.join(", ")
                )?;
            }
        }
        for r in &self.referrers {
            writeln!(
                out,
                "  {} {} {}  {}  {}",
                r.decision,
                r.kind,
                r.digest.short(),
                r.artifact_type
                    .as_deref()
                    .or(r.tag.as_deref())
                    .unwrap_or("-"),
                r.reason
            )?;
        }
        if let Some(r) = &self.rejection {
            // One line per error code: how many, and the first digests it names.
            let mut by_code: Vec<(&str, Vec<&str>)> = Vec::new();
            for e in &r.errors {
                match by_code.iter_mut().find(|(c, _)| *c == e.code) {
                    Some((_, d)) => d.push(&e.detail),
                    None => by_code.push((&e.code, vec![&e.detail])),
                }
            }
            writeln!(out, "  the registry answered HTTP {}:", r.status)?;
            for (code, details) in by_code {
                let named: Vec<String> = details
                    .iter()
                    .filter(|d| !d.is_empty())
                    .map(|d| {
                        d.parse::<Digest>()
                            .map(|x| x.short())
                            .unwrap_or_else(|_| d.to_string())
                    })
                    .collect();
                let shown = named.iter().take(4).cloned().collect::<Vec<_>>().join(", ");
                let more = if named.len() > 4 {
                    format!(", and {} more", named.len() - 4)
                } else {
                    String::new()
                };
                if named.is_empty() {
                    writeln!(out, "    {code}")?;
                } else {
                    writeln!(
                        out,
                        "    {code} for {} entries left out on purpose ({shown}{more})",
                        named.len()
                    )?;
                }
            }
            for t in &r.attempts {
                writeln!(
                    out,
                    "  --on-sparse-reject {} could not finish: {}",
                    t.policy, t.reason
                )?;
            }
            match r.policy.as_str() {
                "report" => self.write_ways_forward(out, r, kept, named_count(r))?,
                "required" => {
                    writeln!(
                        out,
                        "  --on-sparse-reject required: copied the {} entries the registry demanded (+{}; complete would have added {}), then the original index {}",
                        r.required.len(),
                        human_bytes(r.required_extra_bytes),
                        human_bytes(r.complete_extra_bytes),
                        self.index.digest.short()
                    )?;
                    for e in &r.required {
                        writeln!(
                            out,
                            "    {:<16} {}  {}",
                            e.platform.as_deref().unwrap_or("-"),
                            e.digest.short(),
                            human_bytes(e.bytes)
                        )?;
                    }
                }
                "complete" => writeln!(
                    out,
                    "  --on-sparse-reject complete: copied the {} dropped entries too, then the original index {}",
                    r.complete_extra_entries,
                    self.index.digest.short()
                )?,
                policy => writeln!(
                    out,
                    "  --on-sparse-reject {policy}: the new index names its original {}, whose bytes are stored beside it (mirror verify checks the two)",
                    self.index.digest.short()
                )?,
            }
        }
        for w in &self.warnings {
            writeln!(out, "  warning: {w}")?;
        }
        if let Some(e) = &self.error {
            writeln!(out, "  error: {e}")?;
        }
        Ok(())
    }
}

/// The first column of an entry line: its platform, or what it is when it has none.
/// How many entries a refusal names by digest.
fn named_count(r: &Rejection) -> usize {
    r.errors.iter().filter(|e| !e.detail.is_empty()).count()
}

impl Report {
    /// After `report`: where things are, and what each policy would cost.
    fn write_ways_forward(
        &self,
        out: &mut dyn Write,
        r: &Rejection,
        kept: usize,
        named: usize,
    ) -> io::Result<()> {
        writeln!(
            out,
            "  the {kept} kept entries are at the destination by digest; the index and the tag were not pushed"
        )?;
        writeln!(out, "  ways forward:")?;
        if r.complete_possible {
            writeln!(
                out,
                "    --on-sparse-reject complete  copy the {} dropped entries too: +{}, digest {} kept",
                r.complete_extra_entries,
                human_bytes(r.complete_extra_bytes),
                self.index.digest.short()
            )?;
            writeln!(
                out,
                "    --on-sparse-reject required  copy only the entries the registry names ({named} now, the same as complete when it names every one), digest kept"
            )?;
        } else {
            writeln!(
                out,
                "    --on-sparse-reject complete  not possible: the source does not have the dropped entries"
            )?;
        }
        writeln!(
            out,
            "    --on-sparse-reject strip     push a new index with only the kept entries: digest {}; the original's bytes are stored beside it and `mirror verify` ties the two, but tools that check signatures over {} must be pointed at the original",
            r.stripped_digest,
            self.index.digest.short()
        )
    }
}

fn entry_label(e: &EntryReport) -> &str {
    match (&e.attests, e.platform.as_deref()) {
        (Some(_), _) => "attestation",
        (None, Some(p)) => p,
        (None, None) => "-",
    }
}

fn sparse_note(s: SparseSupport) -> &'static str {
    match s {
        SparseSupport::Yes => "the destination accepts sparse indexes",
        SparseSupport::No => "the destination says it refuses sparse indexes",
        SparseSupport::Unknown => {
            "whether the destination accepts sparse indexes is known only when tried"
        }
    }
}

/// `1.5 MiB`, `312 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// Whether a plan of this kind reports `single` rather than `pushed`.
pub fn pushed_outcome(kind: RootKind) -> Outcome {
    match kind {
        RootKind::Index => Outcome::Pushed,
        RootKind::Single => Outcome::Single,
    }
}

impl Outcome {
    /// A `copy` ending with this outcome exits with: 3 for a refused sparse index, else 0.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Rejected => ExitCode::Partial,
            _ => ExitCode::Ok,
        }
    }
}

// `sync`: one report per (image, tag), in config order, and a summary.

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ImageResult {
    Done(Box<Report>),
    Failed(FailedImage),
}

/// The report of an image that failed before or while copying.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedImage {
    pub version: u32,
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub error: String,
    /// The exit code a `copy` of this image alone would have had.
    pub exit_code: i32,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub up_to_date: u64,
    pub copied: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Dry run: images that would be copied.
    pub planned: u64,
    /// Pairs left to other shards.
    pub other_shards: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub version: u32,
    pub images: Vec<ImageResult>,
    pub summary: Summary,
}

impl SyncReport {
    /// DESIGN.md: 0 all done, 1 any image failed, 3 none failed but some were sparse-rejected.
    pub fn exit_code(&self) -> ExitCode {
        if self.summary.failed > 0 {
            ExitCode::Failure
        } else if self.summary.rejected > 0 {
            ExitCode::Partial
        } else {
            ExitCode::Ok
        }
    }

    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for image in &self.images {
            match image {
                ImageResult::Done(r) => {
                    let what = match r.index.outcome {
                        Outcome::UpToDate => "up to date".to_string(),
                        Outcome::Planned => format!(
                            "would transfer {} in {} blobs",
                            human_bytes(r.blobs.totals.transferred_bytes),
                            r.blobs.totals.transferred_count
                        ),
                        Outcome::Rejected => {
                            "sparse index refused (kept children are there by digest)".to_string()
                        }
                        Outcome::Stripped => "copied, stripped index".to_string(),
                        Outcome::Completed => match &r.rejection {
                            Some(j) if j.policy == "required" => format!(
                                "copied with the {} entries the registry required",
                                j.required.len()
                            ),
                            _ => "copied complete".to_string(),
                        },
                        _ => format!("copied {}", human_bytes(r.blobs.totals.transferred_bytes)),
                    };
                    writeln!(
                        out,
                        "{:<10} {} -> {}: {what}",
                        label(r.index.outcome),
                        r.source,
                        r.destination
                    )?;
                    for w in &r.warnings {
                        writeln!(out, "           warning: {w}")?;
                    }
                }
                ImageResult::Failed(f) => {
                    writeln!(
                        out,
                        "{:<10} {} -> {}: {}",
                        "failed", f.source, f.destination, f.error
                    )?;
                }
            }
        }
        let s = &self.summary;
        write!(
            out,
            "summary: {} up to date, {} copied, {} rejected, {} failed",
            s.up_to_date, s.copied, s.rejected, s.failed
        )?;
        if s.planned > 0 {
            write!(out, ", {} planned", s.planned)?;
        }
        if s.other_shards > 0 {
            write!(out, " ({} pairs left to other shards)", s.other_shards)?;
        }
        writeln!(out)
    }
}

fn label(o: Outcome) -> &'static str {
    match o {
        Outcome::UpToDate => "upToDate",
        Outcome::Rejected => "rejected",
        Outcome::Planned => "planned",
        _ => "copied",
    }
}

/// What an interrupted run had done, counted from the engine's events (its own totals are lost
/// with its future).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub planned_count: u64,
    pub planned_bytes: u64,
    pub transferred_count: u64,
    pub transferred_bytes: u64,
    pub mounted_count: u64,
    pub manifests_pushed: u64,
}

/// The partial report of an interrupted `copy`: the report's fields, with what had moved.
pub fn interrupted_copy(
    source: &str,
    destination: &str,
    dry_run: bool,
    progress: &Progress,
) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "source": source,
        "destination": destination,
        "dryRun": dry_run,
        "index": null,
        "entries": [],
        "blobs": progress,
        "referrers": [],
        "rejection": null,
        "warnings": [],
        "error": "interrupted",
    })
}

/// The partial report of an interrupted `sync`. The images finished before the signal are at
/// their destinations; which ones is not known here, so `images` is empty and `summary` null:
/// rerun the sync to get both.
pub fn interrupted_sync(progress: &Progress) -> serde_json::Value {
    serde_json::json!({
        "version": 1,
        "images": [],
        "summary": null,
        "blobs": progress,
        "error": "interrupted",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(137 * 1024 * 1024), "137.0 MiB");
    }
}
