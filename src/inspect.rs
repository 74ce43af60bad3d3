//! `mirror inspect`: what an image looks like at one location, read only.
//!
//! [`plan`](crate::plan) answers "what would a copy move"; this answers "what is here", which is a
//! different question for a mirror: an index pushed sparse lists children that are absent on
//! purpose, and scanners, pullers and people need to see that state ("sparse: 2 of 5 platforms
//! present") rather than an error. So absence is data here, never a failure: [`inspect`] reads the
//! root manifest, every child by digest (recursing into nested indexes), sums the blobs each
//! present image manifest lists, places attestation entries under the entry they attest
//! (`vnd.docker.reference.digest`), and finds signature and referrer tags (`sha256-<hex>` and
//! `sha256-<hex>.sig|.att|.sbom`) of the root and every child by listing tags once.
//!
//! The result, an [`Inspection`], is plain data written as a text tree or JSON to a `Write`
//! ([`Inspection::write_text`], [`Inspection::write_json`]), like the copy report.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use futures::StreamExt;
use serde::Serialize;

use crate::error::Error;
use crate::oci::{self, Descriptor, Digest, Manifest, RawManifest};
use crate::platform::Platform;
use crate::reference::Target;
use crate::report::human_bytes;
use crate::select::{self, EntryKind};
use crate::transport::Transport;
use crate::walk;

#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// Concurrent manifest reads.
    pub jobs: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions { jobs: 8 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RootKind {
    Index,
    Manifest,
}

/// What an index entry is (DESIGN.md, Selection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeKind {
    /// An image for a real platform.
    Platform,
    /// A buildkit attestation manifest bound to another entry.
    Attestation,
    /// No platform (or `unknown/unknown`) and attests nothing.
    Unbound,
    /// A nested index.
    Index,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobSum {
    pub count: u64,
    pub bytes: u64,
}

/// A tag that belongs to a manifest by the cosign / referrers tag schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TagInfo {
    pub tag: String,
    /// `signature` (`.sig`), `attestation` (`.att`), `sbom` (`.sbom`), `referrers` (the bare
    /// `sha256-<hex>` fallback index of the OCI referrers tag schema) or `other`.
    pub kind: &'static str,
    /// What the tag points at (absent when it could not be resolved).
    pub digest: Option<Digest>,
    /// For a `referrers` tag: the manifests its index lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ReferrerInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerInfo {
    pub digest: Digest,
    pub media_type: String,
    pub artifact_type: Option<String>,
}

/// One index entry as it is at this location.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub digest: Digest,
    pub media_type: String,
    /// The manifest's size, as the index lists it.
    pub size: u64,
    pub platform: Option<String>,
    pub kind: NodeKind,
    /// Whether the manifest is at this location (a sparse index lists absent ones).
    pub present: bool,
    /// For a present image manifest: its config and layers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobSum>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// For an attestation: the entry it attests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attests: Option<Digest>,
    /// Attestation entries bound to this one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<Node>,
    /// For a present nested index: its entries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<Node>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<TagInfo>,
    /// OCI 1.1 referrers, where the location has the referrers API.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<ReferrerInfo>,
    /// The manifest is here but could not be read as what the index says it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Counts over the whole tree (nested indexes included; the children of an absent nested index
/// are unknown and not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub platforms: usize,
    pub platforms_present: usize,
    pub attestations: usize,
    pub attestations_present: usize,
    pub unbound: usize,
    pub unbound_present: usize,
    pub indexes: usize,
    pub indexes_present: usize,
}

impl Summary {
    fn count(&mut self, n: &Node) {
        let (all, present) = match n.kind {
            NodeKind::Platform => (&mut self.platforms, &mut self.platforms_present),
            NodeKind::Attestation => (&mut self.attestations, &mut self.attestations_present),
            NodeKind::Unbound => (&mut self.unbound, &mut self.unbound_present),
            NodeKind::Index => (&mut self.indexes, &mut self.indexes_present),
        };
        *all += 1;
        if n.present {
            *present += 1;
        }
        for c in n.attestations.iter().chain(&n.entries) {
            self.count(c);
        }
    }

    /// Some listed entry is absent.
    pub fn is_sparse(&self) -> bool {
        self.platforms_present < self.platforms
            || self.attestations_present < self.attestations
            || self.unbound_present < self.unbound
            || self.indexes_present < self.indexes
    }

    /// `sparse: 2 of 5 platforms present, 2 of 5 attestations`.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        for (present, all, what) in [
            (self.platforms_present, self.platforms, "platforms"),
            (self.attestations_present, self.attestations, "attestations"),
            (self.unbound_present, self.unbound, "other entries"),
            (self.indexes_present, self.indexes, "nested indexes"),
        ] {
            if all > 0 {
                parts.push(format!("{present} of {all} {what}"));
            }
        }
        if parts.is_empty() {
            return "empty: the index lists nothing".into();
        }
        parts[0].push_str(" present");
        let state = if self.is_sparse() {
            "sparse"
        } else {
            "complete"
        };
        format!("{state}: {}", parts.join(", "))
    }
}

/// What `mirror inspect` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    pub version: u32,
    /// The location and what was asked for: `docker://host/repo:tag`, `oci:/path:tag`.
    pub reference: String,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub kind: RootKind,
    /// A single manifest's platform, from its config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// A single manifest that is not an image (a signature, an SBOM, a Helm chart): what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Some entry of the index (at any depth) is absent here.
    pub sparse: bool,
    pub summary: Summary,
    /// Every blob of the image manifests present here, shared blobs counted once.
    pub blobs: BlobSum,
    pub entries: Vec<Node>,
    /// Signature and referrer tags of the root.
    pub tags: Vec<TagInfo>,
    /// OCI 1.1 referrers of the root, where the location has the referrers API.
    pub referrers: Vec<ReferrerInfo>,
    pub warnings: Vec<String>,
}

/// Inspect `target` at `src`. Absent children are reported, not raised; a missing `target` is an
/// error that names the tags there are.
pub async fn inspect(
    src: &dyn Transport,
    target: &Target,
    opts: &InspectOptions,
) -> Result<Inspection, Error> {
    let location = src.location();
    let reference = walk::reference(&location, target);
    tracing::debug!(%reference, "reading the root manifest");
    let root = src
        .get_manifest(target)
        .await
        .map_err(|e| Error::transport(format!("reading {reference}"), e))?;
    let mut warnings = Vec::new();
    let tags = match src.list_tags().await {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::debug!(error = %e, "listing tags failed");
            warnings.push(format!(
                "cannot list the tags of {location} ({e}): signature and referrer tags are not shown"
            ));
            None
        }
    };
    let Some(root) = root else {
        return Err(walk::not_found(&reference, target, tags.as_deref()));
    };
    let parsed = root
        .parse()
        .map_err(|e| Error::invalid(reference.clone(), e.to_string()))?;
    let walker = Walker {
        src,
        jobs: opts.jobs.max(1),
        tags: tags.unwrap_or_default(),
    };
    let mut blob_set = BTreeMap::new();
    let mut inspection = Inspection {
        version: 1,
        reference: reference.clone(),
        digest: root.digest.clone(),
        media_type: root.media_type.clone(),
        size: root.size(),
        kind: RootKind::Index,
        platform: None,
        artifact_type: None,
        sparse: false,
        summary: Summary::default(),
        blobs: BlobSum::default(),
        entries: vec![],
        tags: walker.tags_of(&root.digest).await,
        referrers: walker.api_referrers(&root.digest).await,
        warnings,
    };
    match parsed {
        Manifest::Index(index) => {
            let tree =
                walk::read_entries(src, &index, 1, walker.jobs, walk::Read::Everything).await?;
            inspection.entries = walker.nodes(&tree, &mut blob_set).await;
            let mut summary = Summary::default();
            for n in &inspection.entries {
                summary.count(n);
            }
            inspection.summary = summary;
            inspection.sparse = summary.is_sparse();
        }
        Manifest::Image(m) => {
            inspection.kind = RootKind::Manifest;
            for b in m.blobs() {
                blob_set.insert(b.digest.clone(), b.size);
            }
            if IMAGE_CONFIGS.contains(&m.config.media_type.as_str()) && m.artifact_type.is_none() {
                match config_platform(src, &m.config).await {
                    Ok(p) => inspection.platform = p,
                    Err(w) => inspection.warnings.push(w),
                }
            } else {
                inspection.artifact_type = Some(m.effective_artifact_type().to_string());
            }
        }
    }
    inspection.blobs = BlobSum {
        count: blob_set.len() as u64,
        bytes: blob_set.values().sum(),
    };
    Ok(inspection)
}

struct Walker<'a> {
    src: &'a dyn Transport,
    jobs: usize,
    tags: Vec<String>,
}

impl Walker<'_> {
    /// The nodes of an index's entries (read by [`walk::read_entries`]), attestations placed
    /// under what they attest.
    fn nodes<'b>(
        &'b self,
        entries: &'b [walk::Entry],
        blobs: &'b mut BTreeMap<Digest, u64>,
    ) -> futures::future::BoxFuture<'b, Vec<Node>> {
        Box::pin(async move {
            let mut nodes = Vec::with_capacity(entries.len());
            for e in entries {
                let d = &e.descriptor;
                let kind = match select::classify(d) {
                    EntryKind::Platform => NodeKind::Platform,
                    EntryKind::Attestation(_) => NodeKind::Attestation,
                    EntryKind::Unbound => NodeKind::Unbound,
                    EntryKind::NestedIndex => NodeKind::Index,
                };
                let mut node = Node {
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                    size: d.size,
                    platform: d
                        .platform
                        .as_ref()
                        .filter(|p| p.is_real())
                        .map(Platform::to_string),
                    kind,
                    present: e.raw.is_some(),
                    blobs: None,
                    artifact_type: d.artifact_type.clone(),
                    attests: d.attests(),
                    attestations: vec![],
                    entries: vec![],
                    tags: self.tags_of(&d.digest).await,
                    referrers: self.api_referrers(&d.digest).await,
                    problem: e.problem(),
                };
                if let Some((_, inner)) = &e.nested {
                    node.entries = self.nodes(inner, blobs).await;
                } else if let Some(Ok(Manifest::Image(m))) = e.raw.as_ref().map(RawManifest::parse)
                    && kind != NodeKind::Index
                {
                    let mut sum = BlobSum::default();
                    for b in m.blobs() {
                        sum.count += 1;
                        sum.bytes += b.size;
                        blobs.insert(b.digest.clone(), b.size);
                    }
                    node.blobs = Some(sum);
                    if node.artifact_type.is_none() {
                        node.artifact_type = m.artifact_type.clone();
                    }
                }
                nodes.push(node);
            }
            bind_attestations(nodes)
        })
    }

    /// The referrers API's answer for `digest` (empty where there is no such API; then the
    /// `sha256-<hex>` tag found by [`Walker::tags_of`] lists them).
    async fn api_referrers(&self, digest: &Digest) -> Vec<ReferrerInfo> {
        match self.src.referrers(digest).await {
            Ok(Some(list)) => list
                .into_iter()
                .map(|d| ReferrerInfo {
                    digest: d.digest,
                    media_type: d.media_type,
                    artifact_type: d.artifact_type,
                })
                .collect(),
            Ok(None) => vec![],
            Err(e) => {
                tracing::debug!(%digest, error = %e, "the referrers API failed");
                vec![]
            }
        }
    }

    /// Tags named after `digest` by the cosign and referrers tag schemas, resolved.
    async fn tags_of(&self, digest: &Digest) -> Vec<TagInfo> {
        let base = format!("{}-{}", digest.algorithm(), digest.hex());
        let mut names: Vec<&String> = self
            .tags
            .iter()
            .filter(|t| {
                t.strip_prefix(&base)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
            })
            .collect();
        names.sort();
        let mut out = Vec::new();
        for tag in names {
            let kind = match &tag[base.len()..] {
                "" => "referrers",
                ".sig" => "signature",
                ".att" => "attestation",
                ".sbom" => "sbom",
                _ => "other",
            };
            let mut info = TagInfo {
                tag: tag.clone(),
                kind,
                digest: None,
                referrers: vec![],
            };
            tracing::debug!(%tag, "resolving a signature or referrer tag");
            if kind == "referrers" {
                if let Ok(Some(raw)) = self.src.get_manifest(&Target::Tag(tag.clone())).await {
                    info.digest = Some(raw.digest.clone());
                    if let Ok(Manifest::Index(i)) = raw.parse() {
                        info.referrers = i
                            .manifests
                            .iter()
                            .map(|d| ReferrerInfo {
                                digest: d.digest.clone(),
                                media_type: d.media_type.clone(),
                                artifact_type: d.artifact_type.clone(),
                            })
                            .collect();
                    }
                }
            } else {
                info.digest = self
                    .src
                    .head_manifest(&Target::Tag(tag.clone()))
                    .await
                    .ok()
                    .flatten();
            }
            out.push(info);
        }
        out
    }
}

/// Move each attestation under the sibling it attests; an attestation of something not in this
/// index stays where it is (its `attests` says of what).
fn bind_attestations(nodes: Vec<Node>) -> Vec<Node> {
    let listed: BTreeSet<Digest> = nodes
        .iter()
        .filter(|n| n.kind != NodeKind::Attestation)
        .map(|n| n.digest.clone())
        .collect();
    let (bound, mut rest): (Vec<Node>, Vec<Node>) = nodes.into_iter().partition(|n| {
        n.kind == NodeKind::Attestation && n.attests.as_ref().is_some_and(|a| listed.contains(a))
    });
    for a in bound {
        let of = a.attests.clone();
        if let Some(parent) = rest
            .iter_mut()
            .find(|n| Some(&n.digest) == of.as_ref() && n.kind != NodeKind::Attestation)
        {
            parent.attestations.push(a);
        }
    }
    rest
}

/// Config media types of images (anything else is an artifact, whose config names no platform).
const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// The platform a single image's config names (`None` when it names none).
async fn config_platform(
    src: &dyn Transport,
    config: &Descriptor,
) -> Result<Option<String>, String> {
    if config.size > oci::MAX_MANIFEST_BYTES as u64 {
        return Ok(None);
    }
    let cannot = |e: String| format!("cannot read the config for its platform: {e}");
    let mut stream = src
        .get_blob(config)
        .await
        .map_err(|e| cannot(e.to_string()))?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| cannot(e.to_string()))?);
        if bytes.len() as u64 > config.size {
            break;
        }
    }
    if !config.digest.matches(&bytes) {
        return Err(cannot("it does not match its digest".into()));
    }
    let platform: Platform = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok(platform.is_real().then(|| platform.to_string()))
}

/// A short name for a manifest media type (`oci index`, `docker manifest`); others as they are.
pub fn media_type_name(media_type: &str) -> &str {
    match media_type {
        oci::OCI_INDEX => "oci index",
        oci::OCI_MANIFEST => "oci manifest",
        oci::DOCKER_LIST => "docker manifest list",
        oci::DOCKER_MANIFEST => "docker manifest",
        other => other,
    }
}

impl Inspection {
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    /// The readable tree.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out, "{}", self.reference)?;
        writeln!(
            out,
            "  {} {} ({}, {})",
            match self.kind {
                RootKind::Index => "index",
                RootKind::Manifest => "manifest",
            },
            self.digest,
            media_type_name(&self.media_type),
            human_bytes(self.size)
        )?;
        match self.kind {
            RootKind::Index => {
                writeln!(out, "  {}", self.summary.line())?;
                writeln!(
                    out,
                    "  blobs: {} ({}) in the entries present here, shared blobs counted once",
                    self.blobs.count,
                    human_bytes(self.blobs.bytes)
                )?;
            }
            RootKind::Manifest => {
                match (&self.artifact_type, &self.platform) {
                    (Some(a), _) => writeln!(out, "  artifact: {a}")?,
                    (None, Some(p)) => writeln!(out, "  platform: {p}")?,
                    (None, None) => writeln!(out, "  platform: unknown")?,
                }
                writeln!(
                    out,
                    "  blobs: {} ({})",
                    self.blobs.count,
                    human_bytes(self.blobs.bytes)
                )?;
            }
        }
        let mut rows = Vec::new();
        extra_rows(
            &self.tags,
            &self.referrers,
            "  ",
            !self.entries.is_empty(),
            &mut rows,
        );
        let n = self.entries.len();
        for (i, node) in self.entries.iter().enumerate() {
            node_rows(node, "  ", i + 1 == n, false, &mut rows);
        }
        write_rows(out, &rows)?;
        for w in &self.warnings {
            writeln!(out, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// One line of the tree: the branch and label, then columns aligned across the whole tree.
struct Row {
    left: String,
    cols: Vec<String>,
}

/// `under_subject`: the node is listed under the entry it attests.
fn node_rows(node: &Node, indent: &str, last: bool, under_subject: bool, rows: &mut Vec<Row>) {
    let branch = if last { "└── " } else { "├── " };
    let label = match node.kind {
        NodeKind::Platform => node.platform.clone().unwrap_or_else(|| "platform".into()),
        NodeKind::Attestation => match &node.attests {
            Some(of) if !under_subject => format!("attestation of {}", of.short()),
            _ => "attestation".into(),
        },
        NodeKind::Unbound => node
            .platform
            .clone()
            .unwrap_or_else(|| "no platform".into()),
        NodeKind::Index => "index".into(),
    };
    let state = if !node.present {
        "absent".to_string()
    } else if let Some(p) = &node.problem {
        format!("unreadable: {p}")
    } else if let Some(b) = &node.blobs {
        format!(
            "{} in {} blob{}",
            human_bytes(b.bytes),
            b.count,
            if b.count == 1 { "" } else { "s" }
        )
    } else if node.kind == NodeKind::Index {
        format!("{} entries", node.entries.len())
    } else {
        String::new()
    };
    let mut cols = vec![
        node.digest.short(),
        media_type_name(&node.media_type).to_string(),
        state,
    ];
    if let Some(a) = node.artifact_type.as_ref().filter(|_| node.present) {
        cols.push(a.clone());
    }
    rows.push(Row {
        left: format!("{indent}{branch}{label}"),
        cols,
    });
    let child_indent = format!("{indent}{}", if last { "    " } else { "│   " });
    let more_after = !node.attestations.is_empty() || !node.entries.is_empty();
    extra_rows(&node.tags, &node.referrers, &child_indent, more_after, rows);
    let children: Vec<(&Node, bool)> = node
        .attestations
        .iter()
        .map(|a| (a, true))
        .chain(node.entries.iter().map(|e| (e, false)))
        .collect();
    let n = children.len();
    for (i, (c, under)) in children.into_iter().enumerate() {
        node_rows(c, &child_indent, i + 1 == n, under, rows);
    }
}

/// Tags and referrers of a manifest, as its first children; `more_after`: other children follow.
fn extra_rows(
    tags: &[TagInfo],
    referrers: &[ReferrerInfo],
    indent: &str,
    more_after: bool,
    rows: &mut Vec<Row>,
) {
    let n = tags.len() + referrers.len();
    let branches = |i: usize| {
        if i + 1 == n && !more_after {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        }
    };
    for (i, t) in tags.iter().enumerate() {
        let (branch, below) = branches(i);
        rows.push(tag_row(t, &format!("{indent}{branch}")));
        referrer_rows(&t.referrers, &format!("{indent}{below}"), rows);
    }
    for (i, r) in referrers.iter().enumerate() {
        let (branch, _) = branches(tags.len() + i);
        rows.push(referrer_row(r, &format!("{indent}{branch}")));
    }
}

fn tag_row(t: &TagInfo, left: &str) -> Row {
    Row {
        left: format!("{left}{}", t.kind),
        cols: vec![
            t.digest
                .as_ref()
                .map(Digest::short)
                .unwrap_or_else(|| "?".into()),
            format!("tag {}", crate::oci::escape_for_terminal(&t.tag)),
        ],
    }
}

fn referrer_rows(referrers: &[ReferrerInfo], indent: &str, rows: &mut Vec<Row>) {
    let n = referrers.len();
    for (i, r) in referrers.iter().enumerate() {
        let branch = if i + 1 == n {
            "└── "
        } else {
            "├── "
        };
        rows.push(referrer_row(r, &format!("{indent}{branch}")));
    }
}

fn referrer_row(r: &ReferrerInfo, left: &str) -> Row {
    Row {
        left: format!("{left}referrer"),
        cols: vec![
            r.digest.short(),
            media_type_name(&r.media_type).to_string(),
            r.artifact_type.clone().unwrap_or_default(),
        ],
    }
}

fn write_rows(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    let width = |s: &str| s.chars().count();
    let left_w = rows.iter().map(|r| width(&r.left)).max().unwrap_or(0);
    let ncols = rows.iter().map(|r| r.cols.len()).max().unwrap_or(0);
    // A row's last column is not padded, so it does not widen the column for the others (a
    // long tag name stays on its own line).
    let col_w: Vec<usize> = (0..ncols)
        .map(|i| {
            rows.iter()
                .filter(|r| i + 1 < r.cols.len())
                .map(|r| width(&r.cols[i]))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = r.left.clone();
        line.push_str(&" ".repeat(left_w - width(&r.left)));
        for (i, c) in r.cols.iter().enumerate() {
            line.push_str("  ");
            line.push_str(c);
            if i + 1 < r.cols.len() {
                line.push_str(&" ".repeat(col_w[i].saturating_sub(width(c))));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(digest: char, kind: NodeKind, attests: Option<char>, present: bool) -> Node {
        let d = |c: char| -> Digest {
            format!("sha256:{}", c.to_string().repeat(64))
                .parse()
                .unwrap()
        };
        Node {
            digest: d(digest),
            media_type: oci::OCI_MANIFEST.into(),
            size: 10,
            platform: (kind == NodeKind::Platform).then(|| "linux/amd64".into()),
            kind,
            present,
            blobs: present.then_some(BlobSum {
                count: 2,
                bytes: 2048,
            }),
            artifact_type: None,
            attests: attests.map(d),
            attestations: vec![],
            entries: vec![],
            tags: vec![],
            referrers: vec![],
            problem: None,
        }
    }

    #[test]
    fn attestations_go_under_what_they_attest() {
        let nodes = vec![
            node('a', NodeKind::Platform, None, true),
            node('b', NodeKind::Platform, None, false),
            node('c', NodeKind::Attestation, Some('a'), true),
            node('d', NodeKind::Attestation, Some('b'), false),
            node('e', NodeKind::Attestation, Some('f'), true),
        ];
        let tree = bind_attestations(nodes);
        assert_eq!(tree.len(), 3, "the orphan attestation stays at the top");
        assert_eq!(
            tree[0].attestations[0].digest.hex().chars().next(),
            Some('c')
        );
        assert_eq!(
            tree[1].attestations[0].digest.hex().chars().next(),
            Some('d')
        );
        assert_eq!(tree[2].kind, NodeKind::Attestation);
        let mut s = Summary::default();
        for n in &tree {
            s.count(n);
        }
        assert_eq!(
            s.line(),
            "sparse: 1 of 2 platforms present, 2 of 3 attestations"
        );
    }

    #[test]
    fn a_complete_index_says_so() {
        let mut s = Summary::default();
        s.count(&node('a', NodeKind::Platform, None, true));
        assert!(!s.is_sparse());
        assert_eq!(s.line(), "complete: 1 of 1 platforms present");
        let mut s = Summary::default();
        s.count(&node('b', NodeKind::Unbound, None, true));
        assert_eq!(s.line(), "complete: 1 of 1 other entries present");
        assert_eq!(Summary::default().line(), "empty: the index lists nothing");
    }

    #[test]
    fn schema_tags_are_recognised() {
        let hex = "a".repeat(64);
        assert!(crate::referrers::is_schema_tag(&format!("sha256-{hex}")));
        assert!(crate::referrers::is_schema_tag(&format!(
            "sha256-{hex}.sig"
        )));
        assert!(!crate::referrers::is_schema_tag("sha256-abc.sig"));
        assert!(!crate::referrers::is_schema_tag("v1"));
    }

    #[test]
    fn media_type_names() {
        assert_eq!(media_type_name(oci::DOCKER_LIST), "docker manifest list");
        assert_eq!(media_type_name("application/x"), "application/x");
    }
}
