//! Places images live, behind one trait.
//!
//! [`Transport`] is what the planner reads and the copy engine writes: manifests as exact bytes,
//! blobs as streams, tags. A registry repository ([`registry`]) and an OCI image layout directory
//! ([`layout`]) implement it; an `oci-archive:` tarball ([`layout::ArchiveTransport`]) is a layout
//! that is packed or unpacked around it. Optional capabilities (cross-repository mount, announcing
//! sparse-index support) have defaults that say "not possible", so a transport without them simply
//! leaves them out.

mod error;
pub mod layout;
pub mod memo;
pub mod memory;
pub mod registry;

pub use error::{Fix, Hint, RegistryErrorItem, Side, TransportError, chain};
pub use memo::RunMemo;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::oci::{Descriptor, Digest, RawManifest};
use crate::reference::{ImageRef, Target};

/// Blob bytes in flight. Errors end the stream; a consumer must not commit a blob whose stream ended
/// in an error.
pub type BlobStream = BoxStream<'static, Result<Bytes, TransportError>>;

/// A blob an incremental bundle leaves out on purpose.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OmittedBlob {
    pub digest: Digest,
    pub size: u64,
}

/// The `index.json` annotation in which a bundle lists the blobs it leaves out (a JSON array of
/// `{"digest", "size"}` objects, as a string).
pub const ANNOTATION_OMITTED_BLOBS: &str = "dev.mirror.bundle.omitted-blobs";

/// The one retry backoff of the program (a request in the registry client, a whole blob in the
/// copy engine): `200 ms × 2^attempt` plus up to half again of jitter, at most 10 s.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(6));
    let jitter = rand::random_range(0..=base / 2);
    std::time::Duration::from_millis((base + jitter).min(10_000))
}

/// A blob at a location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    Absent,
    /// `size`: what the location says it holds (`None`: it cannot tell without reading).
    Present {
        size: Option<u64>,
    },
}

/// How a manifest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAs {
    /// A child (or nested index, or referrer): by digest only.
    Child,
    /// The image itself: by digest, and named `tag` when given (the tag moves last, only once this
    /// push is accepted).
    Root { tag: Option<String> },
}

/// Whether a destination is known to accept an index whose children are not all present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SparseSupport {
    /// Always (an OCI layout).
    Yes,
    /// The registry announced it does not.
    No,
    /// The registry says nothing; known only by trying.
    Unknown,
}

pub type Result<T, E = TransportError> = std::result::Result<T, E>;

#[async_trait]
pub trait Transport: Send + Sync {
    /// The location for people and reports: `docker://host/repo`, `oci:/path`.
    fn location(&self) -> String;

    /// A manifest's exact bytes, or `None` when it is absent. When `target` is a digest the bytes are
    /// verified against it; otherwise against what the server claims, if it claims anything.
    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>>;

    /// The digest `target` resolves to here, or `None` when absent, without the body where possible.
    async fn head_manifest(&self, target: &Target) -> Result<Option<Digest>>;

    async fn has_blob(&self, digest: &Digest) -> Result<bool>;

    /// Whether a blob is here and, where the location can tell without reading it, its size.
    async fn blob_state(&self, digest: &Digest) -> Result<BlobState> {
        Ok(if self.has_blob(digest).await? {
            BlobState::Present { size: None }
        } else {
            BlobState::Absent
        })
    }

    /// Open a blob for reading. The bytes are not verified here: the copy engine wraps the stream.
    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream>;

    /// Store a blob from `body`. Nothing is committed under `desc.digest` unless the whole stream
    /// arrives without error.
    async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()>;

    /// Make the blob present without moving its bytes, from another location of the same kind
    /// (a cross-repository mount). `Ok(false)`: not possible here, copy the bytes instead.
    async fn mount_blob(&self, _desc: &Descriptor, _from: &dyn Transport) -> Result<bool> {
        Ok(false)
    }

    async fn put_manifest(&self, manifest: &RawManifest, push_as: &PushAs) -> Result<()>;

    /// Every tag (following pagination), in no particular order.
    async fn list_tags(&self) -> Result<Vec<String>>;

    /// The OCI 1.1 referrers of `subject` through the referrers API, or `None` when this location
    /// has no such API (then referrers live under the `sha256-<hex>` tag schema).
    async fn referrers(&self, _subject: &Digest) -> Result<Option<Vec<Descriptor>>> {
        Ok(None)
    }

    /// Whether sparse indexes are accepted, when the destination says so before a push.
    async fn sparse_support(&self) -> SparseSupport {
        SparseSupport::Unknown
    }

    /// `(registry host, repository)` for a registry repository; lets a sibling mount from it.
    fn registry_repository(&self) -> Option<(String, String)> {
        None
    }

    /// Blobs this location deliberately leaves out: an incremental bundle written with `--state`
    /// records the blobs an earlier bundle already carried (see `crate::bundle`).
    async fn omitted_blobs(&self) -> Result<Vec<OmittedBlob>> {
        Ok(vec![])
    }

    /// Record blobs this bundle leaves out, merged with those already recorded. `Ok(false)`: this
    /// kind of location cannot be a bundle.
    async fn record_omitted(&self, _blobs: &[OmittedBlob]) -> Result<bool> {
        Ok(false)
    }

    /// Called once every push of a copy has succeeded (an archive is packed here).
    async fn finish(&self) -> Result<()> {
        Ok(())
    }

    /// The image a reference without a tag means here (a layout holding one image), if any.
    fn default_target(&self) -> Result<Option<Target>> {
        Ok(None)
    }
}

/// An opened location and the manifest in it that the reference names.
pub struct Opened {
    pub transport: Box<dyn Transport>,
    pub target: Option<Target>,
}

impl Opened {
    /// The manifest the reference names, or the location's default image when it names none.
    pub fn resolve_target(&self) -> Result<Target> {
        if let Some(t) = &self.target {
            return Ok(t.clone());
        }
        self.transport
            .default_target()?
            .ok_or_else(|| TransportError::Layout {
                location: self.transport.location(),
                message: "no image named: add :TAG to the reference".into(),
            })
    }
}

/// Opens references as transports. One per run: it holds what is shared by every image of the
/// run (the registry sessions). The engine takes it as a parameter, so tests can open in-memory
/// locations instead.
pub trait Opener: Send + Sync {
    /// `push`: the location is a destination.
    fn open(
        &self,
        reference: &ImageRef,
        push: bool,
        options: &registry::RegistryOptions,
    ) -> Result<Opened>;
}

/// The real places: registries through one session per host, layouts and archives on disk.
#[derive(Default)]
pub struct Locations {
    pub sessions: registry::Sessions,
}

impl Locations {
    pub fn new() -> Locations {
        Locations::default()
    }

    /// Locations whose registry requests keep to these per-host limits for the whole run.
    pub fn with_limits(limits: registry::Limits) -> Locations {
        Locations {
            sessions: registry::Sessions::with_limits(limits),
        }
    }
}

impl Opener for Locations {
    fn open(
        &self,
        reference: &ImageRef,
        push: bool,
        options: &registry::RegistryOptions,
    ) -> Result<Opened> {
        Ok(match reference {
            ImageRef::Registry(r) => {
                let client = self.sessions.get(&r.registry, r.api_host(), options)?;
                Opened {
                    transport: Box::new(registry::RegistryRepo::new(client, &r.repository, push)),
                    target: Some(r.target()),
                }
            }
            ImageRef::Layout(l) => Opened {
                transport: Box::new(layout::LayoutTransport::new(&l.path)),
                target: l.target.clone(),
            },
            ImageRef::Archive(l) => Opened {
                transport: Box::new(layout::ArchiveTransport::new(&l.path)),
                target: l.target.clone(),
            },
        })
    }
}
