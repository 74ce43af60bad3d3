//! The plan: everything one image copy will move, decided before anything is written.
//!
//! [`plan`] reads the source (the root manifest, nested indexes, the kept children) and only asks
//! the destination what it already has (HEAD requests). The resulting [`Plan`] is plain data: the
//! copy engine executes it, `plan` / `--dry-run` print it, `sync` compares it. Nothing in here
//! writes anywhere.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::error::Error;
use crate::oci::{self, Descriptor, Digest, Manifest, RawManifest};
use crate::platform::Platform;
use crate::reference::Target;
use crate::referrers::{self, PlannedReferrer, ReferrerOptions, Subject};
use crate::select::Selection;
use crate::transport::{BlobState, SparseSupport, Transport};
use crate::walk;

mod walker;
use walker::{Pending, Walker, check_missing, check_single_platform, fetch};

/// What to copy and how; resolved from the command line or a sync config.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub selection: Selection,
    pub skip_missing_platforms: bool,
    /// Concurrent requests while planning (HEADs, child manifests).
    pub jobs: usize,
    /// Referrers and signature tags to bring along.
    pub referrers: ReferrerOptions,
    /// Blobs earlier bundles delivered (`--state`): left out of this one.
    pub delivered: Option<std::sync::Arc<BTreeMap<Digest, u64>>>,
    /// What the run has learned about its sources (tags lists, registries without the referrers
    /// API): one per run, shared by every image of a `sync`.
    pub memo: std::sync::Arc<crate::transport::RunMemo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RootKind {
    /// An index (or manifest list) with its selected children.
    Index,
    /// A single image manifest.
    Single,
}

/// One manifest the copy pushes (a child image, a nested index, or the root).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedManifest {
    /// The bytes to push; `None` only in an up-to-date plan, where nothing is pushed and the child
    /// manifests were not read.
    #[serde(skip)]
    pub raw: Option<RawManifest>,
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Nesting depth: 0 for the root, 1 for its entries, …
    pub depth: usize,
    /// Already at the destination (by digest).
    pub present: bool,
}

/// One index entry and what selection made of it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedEntry {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    pub keep: bool,
    pub reason: String,
    /// The index this entry is listed in.
    pub parent: Digest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attests: Option<Digest>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedBlob {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    pub present: bool,
    /// Left out on purpose: an earlier bundle delivered it (`--state`).
    #[serde(default)]
    pub omitted: bool,
    /// Who uses this blob: platforms (`linux/amd64`), their attestations (`linux/amd64 attestation`),
    /// or entry digests for entries without a platform.
    pub used_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl PlannedBlob {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            platform: None,
            annotations: None,
            artifact_type: None,
            urls: self.urls.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub source: String,
    pub destination: String,
    pub kind: RootKind,
    pub root: PlannedManifest,
    /// The tag the destination gets (none: by digest only).
    pub tag: Option<String>,
    /// What the destination tag points at now.
    pub destination_digest: Option<Digest>,
    pub entries: Vec<PlannedEntry>,
    /// Child manifests and nested indexes to push (in no particular order: see [`Plan::push_order`]).
    pub manifests: Vec<PlannedManifest>,
    pub blobs: Vec<PlannedBlob>,
    /// The destination tag already has the source digest and every selected child is present.
    pub up_to_date: bool,
    pub sparse_support: SparseSupport,
    pub warnings: Vec<String>,
    /// Referrers and signatures found for the manifests of the plan (copied or skipped).
    pub referrers: Vec<PlannedReferrer>,
    /// For a subject whose referrers came from the source's `sha256-<hex>` tag index (a source
    /// without the referrers API): that index's digest, recorded in the destination's merged
    /// index so that a rerun can tell with a HEAD that nothing was added.
    #[serde(skip)]
    pub referrer_tag_sources: BTreeMap<Digest, Digest>,
    /// The destination tag is on an index that `--on-sparse-reject strip` made from this source
    /// index, listing the same kept entries: its digest.
    pub stripped: Option<Digest>,
}

impl Plan {
    /// Whether some index entry is dropped (the index will be pushed sparse).
    pub fn is_sparse(&self) -> bool {
        self.entries.iter().any(|e| !e.keep)
    }

    pub fn dropped(&self) -> impl Iterator<Item = &PlannedEntry> {
        self.entries.iter().filter(|e| !e.keep)
    }

    /// Image manifests (any depth) first, then indexes from the deepest up. The root is not included.
    pub fn push_order(&self) -> (Vec<&PlannedManifest>, Vec<&PlannedManifest>) {
        let (mut indexes, images): (Vec<&PlannedManifest>, Vec<&PlannedManifest>) = self
            .manifests
            .iter()
            .partition(|m| oci::is_index_media_type(&m.media_type));
        indexes.sort_by_key(|m| std::cmp::Reverse(m.depth));
        (images, indexes)
    }

    pub fn blob_totals(&self) -> Totals {
        let mut t = Totals::default();
        self.blobs.iter().for_each(|b| t.add(b));
        t
    }

    /// Totals per user of the blobs (see [`PlannedBlob::used_by`]); a shared blob counts for each.
    pub fn per_platform(&self) -> BTreeMap<String, Totals> {
        let mut out: BTreeMap<String, Totals> = BTreeMap::new();
        for b in &self.blobs {
            for who in &b.used_by {
                out.entry(who.clone()).or_default().add(b);
            }
        }
        out
    }

    /// Manifest bytes that would be pushed (children not present, plus the root).
    pub fn manifest_bytes_to_push(&self) -> u64 {
        if self.up_to_date {
            return 0;
        }
        self.manifests
            .iter()
            .filter(|m| !m.present)
            .map(|m| m.size)
            .sum::<u64>()
            + self.root.size
    }

    /// The kept digests of every index in the plan.
    pub fn kept_digests(&self) -> BTreeSet<Digest> {
        self.entries
            .iter()
            .filter(|e| e.keep)
            .map(|e| e.digest.clone())
            .collect()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub count: u64,
    pub bytes: u64,
    pub present_count: u64,
    pub present_bytes: u64,
    pub transferred_count: u64,
    pub transferred_bytes: u64,
    /// Left out of an incremental bundle because an earlier one delivered them (`--state`).
    pub omitted_count: u64,
    pub omitted_bytes: u64,
}

impl Totals {
    /// Count one blob: present at the destination, left out of a bundle, or to transfer.
    fn add(&mut self, b: &PlannedBlob) {
        self.count += 1;
        self.bytes += b.size;
        let (count, bytes) = if b.present {
            (&mut self.present_count, &mut self.present_bytes)
        } else if b.omitted {
            (&mut self.omitted_count, &mut self.omitted_bytes)
        } else {
            (&mut self.transferred_count, &mut self.transferred_bytes)
        };
        *count += 1;
        *bytes += b.size;
    }
}

/// Build the plan for copying `target` of `src` to `dst` (named `tag` there).
pub async fn plan(
    src: &dyn Transport,
    target: &Target,
    dst: &dyn Transport,
    tag: Option<String>,
    opts: &PlanOptions,
) -> Result<Plan, Error> {
    let jobs = opts.jobs.max(1);
    let src_err = |e| Error::transport(format!("reading {}", src.location()), e);
    let dest_err = |e| Error::transport(format!("checking {}", dst.location()), e);

    // The source digest (a HEAD) and what the destination has under the tag, asked together,
    // with the source's tags list (signatures and referrers read it; once per run) beside them.
    // When the two digests agree, the index tree is read from the destination's copy: a no-op
    // costs no manifest GET at the source.
    let source_digest = async {
        match target {
            Target::Digest(d) => Ok(Some(d.clone())),
            Target::Tag(_) => src.head_manifest(target).await,
        }
    };
    let destination_now = async {
        match (&tag, target) {
            (Some(t), _) => dst.head_manifest(&Target::Tag(t.clone())).await.map(Some),
            (None, Target::Digest(d)) => dst
                .head_manifest(target)
                .await
                .map(|x| Some(x.filter(|have| have == d))),
            // Known only once the source digest is.
            (None, Target::Tag(_)) => Ok(None),
        }
    };
    let tags_list = async {
        if opts.referrers.referrers || opts.referrers.signatures {
            // Weak: a source that cannot list its tags has no tag-schema referrers.
            let _ = opts.memo.tags(src).await;
        }
    };
    let (source_digest, destination_now, ()) =
        tokio::join!(source_digest, destination_now, tags_list);
    let source_digest = source_digest.map_err(src_err)?;
    let destination_now = destination_now.map_err(dest_err)?;
    let not_found = || async {
        let tags = match target {
            Target::Tag(_) => opts.memo.tags(src).await.ok(),
            Target::Digest(_) => None,
        };
        let reference = walk::reference(&src.location(), target);
        walk::not_found(&reference, target, tags.as_ref().map(|t| t.as_slice()))
    };
    let Some(source_digest) = source_digest else {
        return Err(not_found().await);
    };
    let mut from_destination = None;
    if destination_now.as_ref() == Some(&Some(source_digest.clone())) {
        // A copy that cannot be read back (a layout mid-repair, a registry error) is read at the
        // source instead.
        from_destination = dst
            .get_manifest(&Target::Digest(source_digest.clone()))
            .await
            .ok()
            .flatten();
    }
    let reader: &dyn Transport = if from_destination.is_some() { dst } else { src };
    let root_raw = match from_destination {
        Some(raw) => raw,
        // As the reference names it (a tag moved since the HEAD is copied as it is now, and the
        // bytes are checked against what the registry claims for them).
        None => match src.get_manifest(target).await.map_err(src_err)? {
            Some(m) => m,
            None => return Err(not_found().await),
        },
    };
    let root_manifest = root_raw
        .parse()
        .map_err(|e| Error::invalid(format!("{}:{target}", src.location()), e.to_string()))?;

    let mut entries = Vec::new();
    let mut manifests = Vec::new();
    let mut warnings = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut image_manifests: Vec<(oci::ImageManifest, Option<String>)> = Vec::new();

    let kind = match &root_manifest {
        Manifest::Image(m) => {
            if let Some(specs) = &opts.selection.platforms {
                check_single_platform(reader, m, specs).await?;
            }
            image_manifests.push((m.clone(), None));
            RootKind::Single
        }
        Manifest::Index(index) => {
            let mut tree = walk::read_entries(reader, index, 1, jobs, walk::Read::Indexes).await?;
            if !complete(&tree) {
                // A nested index the destination lacks (nothing in it was kept): the source's.
                tree = walk::read_entries(src, index, 1, jobs, walk::Read::Indexes).await?;
            }
            let mut matched = BTreeSet::new();
            let mut walker = Walker {
                src,
                opts,
                entries: &mut entries,
                manifests: &mut manifests,
                matched: &mut matched,
                pending: &mut pending,
                warnings: &mut warnings,
            };
            walker.walk(&root_raw.digest, index, &tree, 1)?;
            if let Some(specs) = &opts.selection.platforms {
                check_missing(src, target, specs, &matched, &entries, opts, &mut warnings)?;
            }
            RootKind::Index
        }
    };

    let destination_digest = match destination_now {
        Some(d) => d,
        None => dst
            .head_manifest(&Target::Digest(root_raw.digest.clone()))
            .await
            .map_err(dest_err)?,
    };
    let root_present = destination_digest.as_ref() == Some(&root_raw.digest);
    let stripped = match (&destination_digest, root_present, kind) {
        (Some(d), false, RootKind::Index) => stripped_from(dst, d, &root_raw.digest, &entries)
            .await
            .map_err(dest_err)?,
        _ => None,
    };
    let sparse_support = dst.sparse_support().await;
    let root = PlannedManifest {
        digest: root_raw.digest.clone(),
        media_type: root_raw.media_type.clone(),
        size: root_raw.size(),
        raw: Some(root_raw.clone()),
        platform: None,
        depth: 0,
        present: root_present,
    };
    let finish = |manifests, blobs, up_to_date| Plan {
        source: src.location(),
        destination: dst.location(),
        kind,
        root: root.clone(),
        tag: tag.clone(),
        destination_digest: destination_digest.clone(),
        entries: entries.clone(),
        manifests,
        blobs,
        up_to_date,
        sparse_support,
        warnings: warnings.clone(),
        referrers: vec![],
        referrer_tag_sources: BTreeMap::new(),
        stripped: None,
    };

    // The kept children (unless the destination has them all: the no-op) and the referrers and
    // signatures of every entry, found together.
    let subjects = subjects_of(&root_raw.digest, &entries);
    let (children, discovered) = tokio::join!(
        read_children(
            src,
            dst,
            pending,
            &manifests,
            root_present || stripped.is_some(),
            jobs
        ),
        referrers::discover(src, dst, subjects, &opts.referrers, &opts.memo, jobs)
    );
    let fetched = match children? {
        // The no-op fast path: the destination has the root and every kept child, so the children
        // need not be read at all (HEAD requests, no GETs, no blob traffic).
        Children::AllPresent(listed) => {
            let mut blobs = if kind == RootKind::Single {
                blobs_of(&image_manifests)
            } else {
                vec![]
            };
            blobs.iter_mut().for_each(|b| b.present = true);
            let mut plan = finish(listed, blobs, true);
            plan.root.present = true;
            plan.stripped = stripped;
            add_referrers(&mut plan, discovered?, dst, jobs).await?;
            check_bundles(&mut plan, src, dst, opts).await?;
            return Ok(plan);
        }
        Children::Read(fetched) => fetched,
    };
    let mut late_warnings = Vec::new();
    for (raw, p) in fetched {
        let d = &p.descriptor;
        late_warnings.extend(walker::media_type_disagreement(src, d, &raw));
        let manifest = match raw.parse() {
            Ok(Manifest::Image(m)) => m,
            Ok(Manifest::Index(_)) => {
                return Err(Error::invalid(
                    format!("{}@{}", src.location(), d.digest),
                    format!(
                        "listed as an image manifest ({}), but it is an index",
                        d.media_type
                    ),
                ));
            }
            Err(e) => {
                return Err(Error::invalid(
                    format!("{}@{}", src.location(), d.digest),
                    e.to_string(),
                ));
            }
        };
        manifests.push(PlannedManifest {
            digest: raw.digest.clone(),
            media_type: raw.media_type.clone(),
            size: raw.size(),
            raw: Some(raw),
            platform: d.platform.as_ref().map(Platform::to_string),
            depth: p.depth,
            present: false,
        });
        image_manifests.push((manifest, Some(p.who)));
    }
    let mut blobs = blobs_of(&image_manifests);

    // What the destination has.
    let digests: Vec<Digest> = manifests.iter().map(|m| m.digest.clone()).collect();
    for (m, p) in manifests
        .iter_mut()
        .zip(head_all(dst, &digests, jobs).await.map_err(dest_err)?)
    {
        m.present = p;
    }
    let present = blobs_present(dst, &blobs, jobs).await?;
    for (b, p) in blobs.iter_mut().zip(present) {
        b.present = p;
    }
    let mut plan = finish(manifests, blobs, false);
    plan.warnings.extend(late_warnings);
    add_referrers(&mut plan, discovered?, dst, jobs).await?;
    check_bundles(&mut plan, src, dst, opts).await?;
    Ok(plan)
}

/// Incremental bundles: leave out what earlier bundles delivered (`--state`), and when reading
/// a bundle, make sure what it left out is already at the destination — before anything is written.
async fn check_bundles(
    plan: &mut Plan,
    src: &dyn Transport,
    dst: &dyn Transport,
    opts: &PlanOptions,
) -> Result<(), Error> {
    if let Some(delivered) = &opts.delivered {
        for b in plan.blobs.iter_mut().filter(|b| !b.present) {
            b.omitted = delivered.contains_key(&b.digest);
        }
    }
    if plan.blobs.iter().all(|b| b.present) {
        return Ok(());
    }
    let left_out: BTreeSet<Digest> = src
        .omitted_blobs()
        .await
        .map_err(|e| Error::transport(format!("reading {}", src.location()), e))?
        .into_iter()
        .map(|b| b.digest)
        .collect();
    let missing: Vec<&PlannedBlob> = plan
        .blobs
        .iter()
        .filter(|b| !b.present && !b.omitted && left_out.contains(&b.digest))
        .collect();
    if let Some(first) = missing.first() {
        let more = if missing.len() > 1 {
            format!(" (and {} more)", missing.len() - 1)
        } else {
            String::new()
        };
        return Err(Error::SourceIncomplete(format!(
            "blob {} ({}){more} was left out of the bundle {} because an earlier bundle carried it, but {} does not have it: import the earlier bundles first (nothing of this image was written)",
            first.digest,
            first.used_by.join(", "),
            src.location(),
            dst.location()
        )));
    }
    Ok(())
}

/// What the kept children need: nothing more when the destination has them all (`check_first`,
/// asked with HEADs), else their manifests, read at the source.
enum Children {
    /// The destination has every kept child: they are listed, present, unread.
    AllPresent(Vec<PlannedManifest>),
    Read(Vec<(RawManifest, Pending)>),
}

async fn read_children(
    src: &dyn Transport,
    dst: &dyn Transport,
    pending: Vec<Pending>,
    nested: &[PlannedManifest],
    check_first: bool,
    jobs: usize,
) -> Result<Children, Error> {
    if check_first {
        let children: Vec<Digest> = pending
            .iter()
            .map(|p| p.descriptor.digest.clone())
            .chain(nested.iter().map(|m| m.digest.clone()))
            .collect();
        let present = head_all(dst, &children, jobs)
            .await
            .map_err(|e| Error::transport(format!("checking {}", dst.location()), e))?;
        if present.iter().all(|p| *p) {
            let mut listed: Vec<PlannedManifest> = nested
                .iter()
                .cloned()
                .map(|m| PlannedManifest { present: true, ..m })
                .collect();
            listed.extend(pending.iter().map(|p| PlannedManifest {
                raw: None,
                digest: p.descriptor.digest.clone(),
                media_type: p.descriptor.media_type.clone(),
                size: p.descriptor.size,
                platform: p.descriptor.platform.as_ref().map(Platform::to_string),
                depth: p.depth,
                present: true,
            }));
            return Ok(Children::AllPresent(listed));
        }
    }
    // Every kept child manifest, all levels at once.
    let fetched = futures::stream::iter(pending.into_iter().map(|p| async move {
        let raw = fetch(src, &p.descriptor, Some(&p.who)).await?;
        Ok::<_, Error>((raw, p))
    }))
    .buffered(jobs)
    .try_collect()
    .await?;
    Ok(Children::Read(fetched))
}

/// The manifests whose referrers are looked for: the root and every entry (those of dropped
/// entries are listed as skipped).
fn subjects_of(root: &Digest, entries: &[PlannedEntry]) -> Vec<Subject> {
    let mut subjects = vec![Subject {
        digest: root.clone(),
        copied: true,
        label: "the image".into(),
    }];
    for e in entries {
        let label = match (&e.platform, &e.attests) {
            (Some(p), None) if p != "unknown/unknown" => p.clone(),
            _ => e.digest.short(),
        };
        subjects.push(Subject {
            digest: e.digest.clone(),
            copied: e.keep,
            label,
        });
    }
    subjects
}

/// Add what discovery found to the plan: the referrers (whose presence at the destination it
/// already asked) and the blobs of those to copy, with what the destination has of them.
async fn add_referrers(
    plan: &mut Plan,
    discovered: referrers::Discovered,
    dst: &dyn Transport,
    jobs: usize,
) -> Result<(), Error> {
    let referrers::Discovered {
        found,
        images,
        tag_sources,
    } = discovered;
    plan.referrer_tag_sources = tag_sources;
    if found.is_empty() {
        return Ok(());
    }
    let known: BTreeSet<Digest> = plan.blobs.iter().map(|b| b.digest.clone()).collect();
    let mut extra: Vec<PlannedBlob> = blobs_of(
        &images
            .into_iter()
            .map(|(m, who)| (m, Some(who)))
            .collect::<Vec<_>>(),
    )
    .into_iter()
    .filter(|b| !known.contains(&b.digest))
    .collect();
    let present = blobs_present(dst, &extra, jobs).await?;
    for (b, p) in extra.iter_mut().zip(present) {
        b.present = p;
    }
    plan.blobs.extend(extra);
    plan.referrers = found;
    Ok(())
}

/// Whether every nested index of a walked tree was there to read.
fn complete(tree: &[walk::Entry]) -> bool {
    tree.iter().all(|e| {
        !e.descriptor.is_index() || e.nested.as_ref().is_some_and(|(_, inner)| complete(inner))
    })
}

/// HEAD many manifests at once (blobs: [`blobs_present`], which also checks sizes).
async fn head_all(
    dst: &dyn Transport,
    digests: &[Digest],
    jobs: usize,
) -> Result<Vec<bool>, crate::transport::TransportError> {
    futures::stream::iter(digests.iter().map(|d| async move {
        dst.head_manifest(&Target::Digest(d.clone()))
            .await
            .map(|r| r.is_some())
    }))
    .buffered(jobs)
    .try_collect()
    .await
}

/// Whether the destination has each blob. A blob it holds with another size than the manifests
/// say is an error naming it: the manifest is wrong (or the destination's copy is), and an image
/// tagged on top of it could not be pulled.
async fn blobs_present(
    dst: &dyn Transport,
    blobs: &[PlannedBlob],
    jobs: usize,
) -> Result<Vec<bool>, Error> {
    futures::stream::iter(blobs.iter().map(|b| async move {
        let state = dst
            .blob_state(&b.digest)
            .await
            .map_err(|e| Error::transport(format!("checking {}", dst.location()), e))?;
        match state {
            BlobState::Absent => Ok(false),
            BlobState::Present { size: Some(n) } if n != b.size => Err(Error::invalid(
                format!("{}@{}", dst.location(), b.digest),
                format!(
                    "the blob is listed with {} bytes (by {}), but the destination holds {n} bytes under that digest: the manifest is wrong, so the image would not pull; nothing was tagged",
                    b.size,
                    b.used_by.join(", ")
                ),
            )),
            BlobState::Present { .. } => Ok(true),
        }
    }))
    .buffered(jobs)
    .try_collect()
    .await
}

/// The blobs of the kept image manifests, each once, in first-use order.
fn blobs_of(images: &[(oci::ImageManifest, Option<String>)]) -> Vec<PlannedBlob> {
    let mut blobs: BTreeMap<Digest, PlannedBlob> = BTreeMap::new();
    let mut order = Vec::new();
    for (img, who) in images {
        let who = who.clone().unwrap_or_else(|| "image".into());
        for b in img.blobs() {
            let entry = blobs.entry(b.digest.clone()).or_insert_with(|| {
                order.push(b.digest.clone());
                PlannedBlob {
                    digest: b.digest.clone(),
                    media_type: b.media_type.clone(),
                    size: b.size,
                    present: false,
                    omitted: false,
                    used_by: vec![],
                    urls: b.urls.clone(),
                }
            });
            if !entry.used_by.contains(&who) {
                entry.used_by.push(who.clone());
            }
        }
    }
    order.into_iter().filter_map(|d| blobs.remove(&d)).collect()
}

/// `Some(digest)` when `digest` at the destination is an index stripped from `original`
/// ([`oci::ANNOTATION_STRIPPED_FROM`]) that lists exactly the root entries this selection keeps.
async fn stripped_from(
    dst: &dyn Transport,
    digest: &Digest,
    original: &Digest,
    entries: &[PlannedEntry],
) -> Result<Option<Digest>, crate::transport::TransportError> {
    let Some(raw) = dst.get_manifest(&Target::Digest(digest.clone())).await? else {
        return Ok(None);
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&raw.bytes) else {
        return Ok(None);
    };
    if doc["annotations"][oci::ANNOTATION_STRIPPED_FROM].as_str() != Some(original.as_str()) {
        return Ok(None);
    }
    let listed: Option<BTreeSet<&str>> = doc["manifests"]
        .as_array()
        .map(|m| m.iter().filter_map(|d| d["digest"].as_str()).collect());
    let kept: BTreeSet<&str> = entries
        .iter()
        .filter(|e| e.keep && e.parent == *original)
        .map(|e| e.digest.as_str())
        .collect();
    Ok((listed == Some(kept)).then(|| digest.clone()))
}

#[cfg(test)]
mod tests {
    //! Planning on in-memory registries (`crate::testkit`): no network, no disk.

    use super::*;
    use crate::testkit::{self, Call, images, plan_options};

    use crate::testkit::FIVE;

    async fn plan_of(
        w: &testkit::World,
        platforms: &[&str],
        opts: impl FnOnce(&mut PlanOptions),
    ) -> Result<Plan, Error> {
        let mut o = plan_options(platforms);
        opts(&mut o);
        plan(
            &w.src.repo("app"),
            &Target::Tag("v1".into()),
            &w.dst.repo("app"),
            Some("v1".into()),
            &o,
        )
        .await
    }

    /// `app:v1` at the source: one manifest whose layer descriptor says `layer_size` bytes.
    fn manifest_listing_a_layer_as(w: &testkit::World, layer: &[u8], layer_size: u64) {
        let config = w
            .src
            .put_blob_bytes("app", bytes::Bytes::from_static(b"{}"));
        let layer_digest = w
            .src
            .put_blob_bytes("app", bytes::Bytes::copy_from_slice(layer));
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{layer_size}}}]}}"#,
            oci::OCI_MANIFEST
        );
        let raw = RawManifest::new(body.into(), oci::OCI_MANIFEST);
        w.src.put_manifest_raw("app", &raw, Some("v1"));
    }

    #[tokio::test]
    async fn a_blob_the_destination_holds_with_another_size_is_an_error_naming_it() {
        let w = testkit::world();
        let layer = b"twelve bytes";
        manifest_listing_a_layer_as(&w, layer, layer.len() as u64 + 1);
        let layer_digest = w
            .dst
            .put_blob_bytes("app", bytes::Bytes::from_static(layer));
        let err = plan_of(&w, &[], |_| {}).await.unwrap_err().to_string();
        assert!(err.contains(&layer_digest.to_string()), "{err}");
        assert!(
            err.contains("listed with 13 bytes (by image), but the destination holds 12 bytes"),
            "{err}"
        );
        // The right size is no error, and the blob counts as present.
        let w = testkit::world();
        manifest_listing_a_layer_as(&w, layer, layer.len() as u64);
        w.dst
            .put_blob_bytes("app", bytes::Bytes::from_static(layer));
        let plan = plan_of(&w, &[], |_| {}).await.unwrap();
        assert!(plan.blobs.iter().any(|b| b.present));
    }

    #[tokio::test]
    async fn a_child_is_planned_with_the_media_type_its_body_declares_and_a_warning() {
        let w = testkit::world();
        let child = images::single(&w.src, "app", "linux/amd64", "x");
        // The index lists the OCI manifest as a Docker one.
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            oci::OCI_INDEX,
            oci::DOCKER_MANIFEST,
            child.digest,
            child.size()
        );
        let raw = RawManifest::new(index.into(), oci::OCI_INDEX);
        w.src.put_manifest_raw("app", &raw, Some("v1"));
        let plan = plan_of(&w, &[], |_| {}).await.unwrap();
        let planned = plan
            .manifests
            .iter()
            .find(|m| m.digest == child.digest)
            .unwrap();
        assert_eq!(planned.media_type, oci::OCI_MANIFEST);
        assert_eq!(planned.raw.as_ref().unwrap().media_type, oci::OCI_MANIFEST);
        assert!(
            plan.warnings.iter().any(|w| w.contains(&format!(
                "is listed as {} but its body declares {}",
                oci::DOCKER_MANIFEST,
                oci::OCI_MANIFEST
            ))),
            "{:?}",
            plan.warnings
        );
    }

    #[tokio::test]
    async fn a_sparse_selection_keeps_the_requested_platforms_and_their_attestations() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, true);
        let plan = plan_of(&w, &["linux/amd64", "linux/arm64"], |_| {})
            .await
            .unwrap();
        let kept: BTreeSet<Digest> = plan.kept_digests();
        let amd = &img.child("linux/amd64").digest;
        let arm = &img.child("linux/arm64").digest;
        let want: BTreeSet<Digest> = [
            amd.clone(),
            arm.clone(),
            img.attestations[amd].digest.clone(),
            img.attestations[arm].digest.clone(),
        ]
        .into();
        assert_eq!(kept, want);
        assert!(plan.is_sparse());
        assert_eq!(plan.dropped().count(), 6);
        assert_eq!(plan.kind, RootKind::Index);
        assert_eq!(plan.root.digest, img.index.digest);
        // Every kept manifest is planned with the exact bytes the source holds.
        for m in &plan.manifests {
            assert_eq!(
                m.raw.as_ref().unwrap().bytes,
                w.src.manifest("app", &m.digest).unwrap().bytes
            );
        }
        assert_eq!(plan.manifests.len(), 4);
    }

    #[tokio::test]
    async fn a_blob_shared_by_platforms_is_planned_once_with_every_user() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE[..3], false);
        let plan = plan_of(&w, &[], |_| {}).await.unwrap();
        let digests: Vec<&Digest> = plan.blobs.iter().map(|b| &b.digest).collect();
        let unique: BTreeSet<&Digest> = digests.iter().copied().collect();
        assert_eq!(digests.len(), unique.len(), "each blob once");
        let base = &img.blobs[&img.child("linux/amd64").digest][1];
        let shared = plan.blobs.iter().find(|b| b.digest == base.digest).unwrap();
        assert_eq!(shared.used_by.len(), 3, "{:?}", shared.used_by);
        let children: Vec<&Digest> = img.children.iter().map(|(_, m)| &m.digest).collect();
        assert_eq!(plan.blob_totals().bytes, img.blob_bytes(&children));
    }

    #[tokio::test]
    async fn blobs_the_destination_has_are_marked_present_and_not_counted_to_transfer() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE[..2], false);
        let amd = img.child("linux/amd64").digest.clone();
        // The destination already holds the amd64 blobs (by digest).
        let amd_blobs: BTreeSet<Digest> =
            img.blobs[&amd].iter().map(|b| b.digest.clone()).collect();
        for d in &amd_blobs {
            w.dst
                .put_blob_bytes("app", w.src.blob_bytes("app", d).unwrap());
        }
        let plan = plan_of(&w, &[], |_| {}).await.unwrap();
        for b in &plan.blobs {
            assert_eq!(b.present, amd_blobs.contains(&b.digest), "{}", b.digest);
        }
        let t = plan.blob_totals();
        assert_eq!(t.present_count, 3);
        assert_eq!(t.transferred_count, t.count - 3);
    }

    #[tokio::test]
    async fn a_requested_platform_the_index_lacks_is_an_error_naming_what_it_has() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FIVE[..2], false);
        let err = plan_of(&w, &["linux/riscv64"], |_| {}).await.unwrap_err();
        let Error::PlatformMissing { message, advice } = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("linux/riscv64"), "{message}");
        assert!(
            message.contains("linux/amd64") && message.contains("linux/arm64"),
            "{message}"
        );
        assert_eq!(*advice, Some(crate::error::Advice::SkipMissingPlatforms));
        assert!(w.dst.writes().is_empty());
    }

    #[tokio::test]
    async fn skip_missing_platforms_turns_an_absent_platform_into_a_warning() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FIVE[..2], false);
        let plan = plan_of(&w, &["linux/amd64", "linux/riscv64"], |o| {
            o.skip_missing_platforms = true
        })
        .await
        .unwrap();
        assert_eq!(plan.kept_digests().len(), 1);
        assert!(
            plan.warnings.iter().any(|w| w.contains("linux/riscv64")),
            "{:?}",
            plan.warnings
        );
        // But not when nothing requested is there.
        let err = plan_of(&w, &["linux/riscv64"], |o| o.skip_missing_platforms = true)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PlatformMissing { advice: None, .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_kept_child_the_source_lacks_is_an_error_naming_it() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE[..2], false);
        let arm = img.child("linux/arm64").digest.clone();
        w.src.remove_manifest("app", &arm);
        let err = plan_of(&w, &[], |_| {}).await.unwrap_err();
        assert!(
            matches!(&err, Error::SourceIncomplete(m) if m.contains(arm.as_str())),
            "{err}"
        );
        // Selecting around the hole works.
        assert!(plan_of(&w, &["linux/amd64"], |_| {}).await.is_ok());
    }

    #[tokio::test]
    async fn a_missing_tag_is_not_found_and_lists_the_tags_there() {
        let w = testkit::world();
        images::index(&w.src, "app", "v2", &FIVE[..1], false);
        let err = plan_of(&w, &[], |_| {}).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotFound(m) if m.contains("v1 not found") && m.contains("v2")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn up_to_date_needs_the_tag_on_the_source_digest_and_every_kept_child() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE[..3], false);
        // The destination has the index under the tag and the two kept children.
        for p in ["linux/amd64", "linux/arm64"] {
            w.dst.put_manifest_raw("app", img.child(p), None);
        }
        w.dst.put_manifest_raw("app", &img.index, Some("v1"));
        let plan = plan_of(&w, &["linux/amd64", "linux/arm64"], |_| {})
            .await
            .unwrap();
        assert!(plan.up_to_date);
        assert_eq!(plan.destination_digest.as_ref(), Some(&img.index.digest));
        assert_eq!(plan.manifest_bytes_to_push(), 0);
        // No child manifest was read at the source for a no-op.
        let gets = w
            .src
            .log()
            .into_iter()
            .filter(|c| matches!(c, Call::GetManifest(_, t) if t.starts_with("sha256:")))
            .count();
        assert_eq!(gets, 0, "{:#?}", w.src.log());
        // One kept child missing: not up to date.
        w.dst
            .remove_manifest("app", &img.child("linux/arm64").digest);
        let plan = plan_of(&w, &["linux/amd64", "linux/arm64"], |_| {})
            .await
            .unwrap();
        assert!(!plan.up_to_date);
    }

    #[tokio::test]
    async fn a_single_platform_image_is_planned_as_is_and_checked_against_platform() {
        let w = testkit::world();
        let m = images::single(&w.src, "app", "linux/arm64", "one");
        w.src.put_manifest_raw("app", &m, Some("v1"));
        let plan = plan_of(&w, &["linux/arm64"], |_| {}).await.unwrap();
        assert_eq!(plan.kind, RootKind::Single);
        assert_eq!(plan.blobs.len(), 3);
        assert!(plan.entries.is_empty());
        let err = plan_of(&w, &["linux/amd64"], |_| {}).await.unwrap_err();
        assert!(
            matches!(&err, Error::PlatformMissing { message, .. } if message.contains("linux/arm64")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn attestations_all_and_none_override_binding() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FIVE[..3], true);
        let all = plan_of(&w, &["linux/amd64"], |o| {
            o.selection.attestations = crate::select::Attestations::All
        })
        .await
        .unwrap();
        assert_eq!(all.kept_digests().len(), 1 + 3);
        let none = plan_of(&w, &["linux/amd64"], |o| {
            o.selection.attestations = crate::select::Attestations::None
        })
        .await
        .unwrap();
        assert_eq!(none.kept_digests().len(), 1);
        assert!(none.entries.iter().all(
            |e| e.keep == (e.attests.is_none() && e.platform.as_deref() == Some("linux/amd64"))
        ));
    }

    #[tokio::test]
    async fn blobs_an_earlier_bundle_delivered_are_left_out() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE[..1], false);
        let first = img.blobs[&img.child("linux/amd64").digest][0].clone();
        let plan = plan_of(&w, &[], |o| {
            o.delivered = Some(std::sync::Arc::new(
                [(first.digest.clone(), first.size)].into(),
            ))
        })
        .await
        .unwrap();
        let t = plan.blob_totals();
        assert_eq!((t.omitted_count, t.omitted_bytes), (1, first.size));
        assert_eq!(t.transferred_count, 2);
    }

    #[tokio::test]
    async fn planning_writes_nothing_anywhere() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FIVE, true);
        plan_of(&w, &["linux/amd64"], |_| {}).await.unwrap();
        assert!(w.src.writes().is_empty());
        assert!(w.dst.writes().is_empty());
    }
}
