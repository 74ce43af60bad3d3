//! Reading an index tree at one location: the walk that [`crate::plan`] and [`crate::inspect`]
//! share.
//!
//! [`read_entries`] reads what an index lists, recursing into nested indexes (at most
//! [`MAX_DEPTH`] deep), with the reads of one level in flight together. Absence is data here: an
//! entry whose manifest the location lacks has `raw: None`, and each caller decides what that
//! means (the planner: an error when the entry is kept; `inspect`: "absent", a sparse index).
//! Nested indexes are always read (selection inside them decides whether they are kept); image
//! manifests only when asked ([`Read::Everything`]): the planner reads only the kept ones, later.

use futures::{StreamExt, TryStreamExt};

use crate::error::Error;
use crate::oci::{Descriptor, Index, Manifest, RawManifest};
use crate::reference::Target;
use crate::transport::Transport;

/// How deep indexes may nest before the walk stops with an error.
pub const MAX_DEPTH: usize = 8;

/// What to read of each level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Nested indexes only (the planner, which selects before it reads images).
    Indexes,
    /// Every entry (`inspect`).
    Everything,
}

/// One entry of an index, as read.
#[derive(Debug, Clone)]
pub struct Entry {
    pub descriptor: Descriptor,
    /// The manifest, when it was read and is there.
    pub raw: Option<RawManifest>,
    /// For a nested index that is there and parses as one: its entries.
    pub nested: Option<(Index, Vec<Entry>)>,
}

impl Entry {
    /// A size that disagrees with the descriptor, or a manifest of the other kind than listed.
    pub fn problem(&self) -> Option<String> {
        let raw = self.raw.as_ref()?;
        if raw.size() != self.descriptor.size {
            return Some(format!(
                "the index says {} bytes, the manifest has {}",
                self.descriptor.size,
                raw.size()
            ));
        }
        match (raw.parse(), self.descriptor.is_index()) {
            (Err(e), _) => Some(e.to_string()),
            (Ok(Manifest::Index(_)), false) => Some(format!(
                "listed as an image manifest ({}), but it is an index",
                self.descriptor.media_type
            )),
            (Ok(Manifest::Image(_)), true) => {
                Some("listed as an index, but it is an image manifest".into())
            }
            _ => None,
        }
    }
}

/// Read the entries of `index`, listed at `depth` (1 for the root's entries).
pub fn read_entries<'a>(
    src: &'a dyn Transport,
    index: &'a Index,
    depth: usize,
    jobs: usize,
    read: Read,
) -> futures::future::BoxFuture<'a, Result<Vec<Entry>, Error>> {
    Box::pin(async move {
        if depth > MAX_DEPTH {
            return Err(Error::invalid(
                src.location(),
                format!("indexes nested more than {MAX_DEPTH} deep"),
            ));
        }
        let fetched: Vec<(Descriptor, Option<RawManifest>)> =
            futures::stream::iter(index.manifests.iter().cloned().map(|d| async move {
                let raw = if read == Read::Everything || d.is_index() {
                    get_child(src, &d, None).await?
                } else {
                    None
                };
                Ok::<_, Error>((d, raw))
            }))
            .buffered(jobs.max(1))
            .try_collect()
            .await?;
        let mut entries = Vec::with_capacity(fetched.len());
        for (descriptor, raw) in fetched {
            let mut nested = None;
            if descriptor.is_index()
                && let Some(Ok(Manifest::Index(child))) = raw.as_ref().map(RawManifest::parse)
            {
                let inner = read_entries(src, &child, depth + 1, jobs, read).await?;
                nested = Some((child, inner));
            }
            entries.push(Entry {
                descriptor,
                raw,
                nested,
            });
        }
        Ok(entries)
    })
}

/// A child manifest by digest (`None`: not there). `who` names it in errors (`linux/amd64`).
pub async fn get_child(
    src: &dyn Transport,
    d: &Descriptor,
    who: Option<&str>,
) -> Result<Option<RawManifest>, Error> {
    tracing::debug!(digest = %d.digest, "reading a child manifest");
    let what = who.map(|w| format!(" ({w})")).unwrap_or_default();
    src.get_manifest(&Target::Digest(d.digest.clone()))
        .await
        .map_err(|e| Error::transport(format!("reading {}@{}{what}", src.location(), d.digest), e))
}

/// `LOCATION:TAG` or `LOCATION@DIGEST`, for messages.
pub fn reference(location: &str, target: &Target) -> String {
    match target {
        Target::Tag(t) => format!("{location}:{t}"),
        Target::Digest(d) => format!("{location}@{d}"),
    }
}

/// The error for a reference that names nothing: with the tags there are (up to 10, sorted,
/// signature and referrer tags left out) when it named a tag and the tags could be listed.
pub fn not_found(reference: &str, target: &Target, tags: Option<&[String]>) -> Error {
    let mut msg = format!("{reference} not found");
    if let (Target::Tag(_), Some(tags)) = (target, tags) {
        let mut tags: Vec<&str> = tags
            .iter()
            .map(String::as_str)
            .filter(|t| !crate::referrers::is_schema_tag(t))
            .collect();
        tags.sort_unstable();
        if tags.is_empty() {
            msg.push_str(" (there are no tags)");
        } else {
            let more = if tags.len() > 10 {
                format!(", and {} more", tags.len() - 10)
            } else {
                String::new()
            };
            tags.truncate(10);
            msg.push_str(&format!(" (it has: {}{more})", tags.join(", ")));
        }
    }
    Error::NotFound(msg)
}
