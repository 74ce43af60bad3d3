//! The `oci:` transport: an OCI image layout directory (image-spec `image-layout.md`).
//!
//! This module owns everything that touches a layout on disk: `oci-layout`, `index.json` and
//! `blobs/<alg>/<hex>`. Reading verifies what it hands out (manifests against their digest and the
//! size `index.json` gives); writing is atomic so that an interrupted copy never leaves a half-written
//! file under a final name: every file is written to a temporary name in the same directory, fsynced,
//! and only then renamed into place (and the directory fsynced), so a reader sees the old file or the
//! complete new one, never a prefix. A blob is committed only when its stream ended without error and
//! hashed to its digest; `index.json` (which is what names an image) is rewritten last, the same way,
//! and its updates are serialized within the process.
//!
//! Nothing is created before the first write, so a dry run into a new layout leaves no trace. Asking
//! whether something is present (`head_manifest`, `has_blob`) in a layout that does not exist yet
//! (a missing or empty directory) answers "absent"; reading content from it is an error that says the
//! layout does not exist.
//!
//! The archive transport ([`super::archive`]) stages its writes in a [`LayoutTransport`] and shares
//! the `index.json` and stream helpers defined here.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{BlobStream, PushAs, Result, SparseSupport, Transport, TransportError};
use crate::oci::{
    ANNOTATION_REF_NAME, ContentError, Descriptor, Digest, MAX_MANIFEST_BYTES, ManifestError,
    RawManifest,
};
use crate::reference::Target;

pub(crate) const OCI_LAYOUT_FILE: &str = "oci-layout";
pub(crate) const INDEX_FILE: &str = "index.json";
const BLOBS_DIR: &str = "blobs";
/// What a new layout's `oci-layout` says.
pub(crate) const NEW_OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// A new layout's `index.json`.
pub(crate) const NEW_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// Blobs are read in chunks of this size.
pub(crate) const CHUNK: usize = 256 * 1024;
/// `oci-layout` is one tiny JSON object; anything much larger is not one.
pub(crate) const MAX_OCI_LAYOUT_BYTES: u64 = 64 * 1024;
/// `index.json` lists every image of a layout, so it may be much larger than a manifest, but not this.
pub(crate) const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// An OCI image layout directory.
pub struct LayoutTransport {
    root: PathBuf,
    /// Set once the layout exists on disk (created or checked by the first write).
    ready: tokio::sync::OnceCell<()>,
    /// Serializes read-modify-write cycles of `index.json`.
    index_lock: tokio::sync::Mutex<()>,
}

impl LayoutTransport {
    /// A layout at `path`. Nothing is read or created here.
    pub fn new(path: impl Into<PathBuf>) -> LayoutTransport {
        LayoutTransport {
            root: path.into(),
            ready: tokio::sync::OnceCell::new(),
            index_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// What to read when the user named no image (`oci:PATH`): the only entry of `index.json`, by
    /// digest. With none or several, an error listing what there is.
    pub fn default_target(&self) -> Result<Target> {
        let location = self.location();
        check_layout(&self.root, &location, true)?;
        let index = read_index(&self.root, &location)?;
        index.default_target(&index_label(&self.root), &location, &location)
    }

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// The parsed `index.json` (the layout must exist).
    pub(crate) fn index_file_blocking(&self) -> Result<IndexFile> {
        let location = self.location();
        check_layout(&self.root, &location, true)?;
        read_index(&self.root, &location)
    }

    /// The parsed `index.json`, read off the runtime's threads (the layout must exist).
    pub(crate) async fn index_file(&self) -> Result<IndexFile> {
        let root = self.root.clone();
        let location = self.location();
        blocking(move || {
            check_layout(&root, &location, true)?;
            read_index(&root, &location)
        })
        .await
    }

    /// The manifest stored as blob `digest`, verified against it (and against `entry`, the
    /// `index.json` descriptor it was found by, if any). `None` when the blob file is absent.
    pub(crate) async fn read_manifest_blob(
        &self,
        digest: &Digest,
        entry: Option<&Descriptor>,
    ) -> Result<Option<RawManifest>> {
        let path = self.blob_path(digest);
        let digest = digest.clone();
        let entry = entry.cloned();
        let location = self.location();
        blocking(move || match read_manifest_file(&path, &location)? {
            None => Ok(None),
            Some(bytes) => manifest_from_bytes(bytes, &digest, entry.as_ref(), &location).map(Some),
        })
        .await
    }

    /// Make sure the layout exists on disk: create the directory, `oci-layout` and `index.json` when
    /// missing, and check them when present (a broken layout is never written into).
    async fn ensure_ready(&self) -> Result<()> {
        self.ready
            .get_or_try_init(|| {
                let root = self.root.clone();
                let location = self.location();
                blocking(move || init_layout(&root, &location))
            })
            .await
            .map(|_| ())
    }

    async fn update_index(&self, manifest: &RawManifest, tag: Option<&str>) -> Result<()> {
        let _serialized = self.index_lock.lock().await;
        let root = self.root.clone();
        let location = self.location();
        let entry = index_entry(manifest, tag);
        let digest = manifest.digest.to_string();
        let tag = tag.map(str::to_string);
        blocking(move || {
            let label = index_label(&root);
            let bytes = read_small(&root.join(INDEX_FILE), MAX_INDEX_BYTES, &label, &location)?
                .ok_or_else(|| missing_index(&root, &location))?;
            // Validate the whole file first: a broken index.json is reported, not rewritten.
            IndexFile::parse(&bytes, &label, &location)?;
            let mut doc: Value = serde_json::from_slice(&bytes)
                .map_err(|e| layout_err(&location, format!("{label} is not valid JSON: {e}")))?;
            let manifests = doc
                .get_mut("manifests")
                .and_then(Value::as_array_mut)
                .ok_or_else(|| layout_err(&location, format!("{label} has no `manifests` list")))?;
            match &tag {
                Some(tag) => {
                    manifests.retain(|e| entry_ref_name(e) != Some(tag.as_str()));
                    manifests.push(entry);
                }
                None => {
                    if !manifests
                        .iter()
                        .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
                    {
                        manifests.push(entry);
                    }
                }
            }
            let out = serde_json::to_vec(&doc)
                .map_err(|e| layout_err(&location, format!("cannot serialize {label}: {e}")))?;
            write_atomic(&root, INDEX_FILE, &out)
        })
        .await
    }
}

impl LayoutTransport {
    /// The blobs recorded as left out of this layout (an incremental bundle).
    pub(crate) async fn read_omitted(&self) -> Result<Vec<super::OmittedBlob>> {
        let root = self.root.clone();
        let location = self.location();
        blocking(move || {
            if !file_exists(&root.join(INDEX_FILE))? {
                return Ok(vec![]);
            }
            let label = index_label(&root);
            let bytes = read_small(&root.join(INDEX_FILE), MAX_INDEX_BYTES, &label, &location)?
                .ok_or_else(|| missing_index(&root, &location))?;
            omitted_from_index(&bytes, &label, &location)
        })
        .await
    }

    /// Merge `blobs` into the left-out list in `index.json` (atomically, like every index update).
    pub(crate) async fn write_omitted(&self, blobs: &[super::OmittedBlob]) -> Result<()> {
        self.ensure_ready().await?;
        let _serialized = self.index_lock.lock().await;
        let root = self.root.clone();
        let location = self.location();
        let blobs = blobs.to_vec();
        blocking(move || {
            let label = index_label(&root);
            let bytes = read_small(&root.join(INDEX_FILE), MAX_INDEX_BYTES, &label, &location)?
                .ok_or_else(|| missing_index(&root, &location))?;
            let mut all: std::collections::BTreeSet<super::OmittedBlob> =
                omitted_from_index(&bytes, &label, &location)?
                    .into_iter()
                    .collect();
            all.extend(blobs);
            let mut doc: Value = serde_json::from_slice(&bytes)
                .map_err(|e| layout_err(&location, format!("{label} is not valid JSON: {e}")))?;
            let list = serde_json::to_string(&all.into_iter().collect::<Vec<_>>())
                .map_err(|e| layout_err(&location, e.to_string()))?;
            let obj = doc
                .as_object_mut()
                .ok_or_else(|| layout_err(&location, format!("{label} is not a JSON object")))?;
            let annotations = obj
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(a) = annotations.as_object_mut() {
                a.insert(super::ANNOTATION_OMITTED_BLOBS.into(), Value::String(list));
            }
            let out = serde_json::to_vec(&doc)
                .map_err(|e| layout_err(&location, format!("cannot serialize {label}: {e}")))?;
            write_atomic(&root, INDEX_FILE, &out)
        })
        .await
    }
}

/// The left-out blobs an `index.json` records.
pub(crate) fn omitted_from_index(
    bytes: &[u8],
    label: &str,
    location: &str,
) -> Result<Vec<super::OmittedBlob>> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| layout_err(location, format!("{label} is not valid JSON: {e}")))?;
    let Some(list) = doc
        .get("annotations")
        .and_then(|a| a.get(super::ANNOTATION_OMITTED_BLOBS))
        .and_then(Value::as_str)
    else {
        return Ok(vec![]);
    };
    serde_json::from_str(list).map_err(|e| {
        layout_err(
            location,
            format!(
                "{label}: the annotation {} is not a list of blobs: {e}",
                super::ANNOTATION_OMITTED_BLOBS
            ),
        )
    })
}

#[async_trait]
impl Transport for LayoutTransport {
    fn default_target(&self) -> Result<Option<Target>> {
        LayoutTransport::default_target(self).map(Some)
    }

    fn location(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    async fn omitted_blobs(&self) -> Result<Vec<super::OmittedBlob>> {
        self.read_omitted().await
    }

    async fn record_omitted(&self, blobs: &[super::OmittedBlob]) -> Result<bool> {
        self.write_omitted(blobs).await.map(|_| true)
    }

    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
        let root = self.root.clone();
        let location = self.location();
        let target = target.clone();
        blocking(move || {
            check_layout(&root, &location, true)?;
            match target {
                Target::Tag(name) => {
                    let index = read_index(&root, &location)?;
                    let Some(entry) = index.tagged(&name) else {
                        return Ok(None);
                    };
                    let path = blob_path(&root, &entry.digest);
                    let bytes = read_manifest_file(&path, &location)?.ok_or_else(|| {
                        missing_tagged_blob(&root, &location, &name, &entry.digest)
                    })?;
                    manifest_from_bytes(bytes, &entry.digest, Some(entry), &location).map(Some)
                }
                Target::Digest(digest) => {
                    match read_manifest_file(&blob_path(&root, &digest), &location)? {
                        None => Ok(None),
                        Some(bytes) => {
                            manifest_from_bytes(bytes, &digest, None, &location).map(Some)
                        }
                    }
                }
            }
        })
        .await
    }

    async fn head_manifest(&self, target: &Target) -> Result<Option<Digest>> {
        let root = self.root.clone();
        let location = self.location();
        let target = target.clone();
        blocking(move || match target {
            Target::Tag(name) => {
                if !check_layout(&root, &location, false)? {
                    return Ok(None);
                }
                let index = read_index(&root, &location)?;
                let Some(entry) = index.tagged(&name) else {
                    return Ok(None);
                };
                if !file_exists(&blob_path(&root, &entry.digest))? {
                    return Err(missing_tagged_blob(&root, &location, &name, &entry.digest));
                }
                Ok(Some(entry.digest.clone()))
            }
            Target::Digest(digest) => {
                Ok(file_exists(&blob_path(&root, &digest))?.then_some(digest))
            }
        })
        .await
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(TransportError::io(path.display(), e)),
        }
    }

    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let path = self.blob_path(&desc.digest);
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if is_absent(&e) => {
                return Err(TransportError::NotFound {
                    what: format!("blob {}", desc.digest),
                    location: self.location(),
                });
            }
            Err(e) => return Err(TransportError::io(path.display(), e)),
        };
        let len = file
            .metadata()
            .await
            .map_err(|e| TransportError::io(path.display(), e))?
            .len();
        Ok(file_stream(file, len, path.display().to_string()))
    }

    async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()> {
        if self.has_blob(&desc.digest).await? {
            return Ok(());
        }
        self.ensure_ready().await?;
        let dir = self.root.join(BLOBS_DIR).join(desc.digest.algorithm());
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| TransportError::io(dir.display(), e))?;
        let tmp = dir.join(temp_name(desc.digest.hex()));
        let guard = TempGuard::new(tmp.clone());
        write_stream(&tmp, desc, body).await?;
        let target = dir.join(desc.digest.hex());
        tokio::fs::rename(&tmp, &target)
            .await
            .map_err(|e| TransportError::io(target.display(), e))?;
        guard.disarm();
        blocking(move || {
            sync_dir(&dir);
            Ok(())
        })
        .await
    }

    async fn put_manifest(&self, manifest: &RawManifest, push_as: &PushAs) -> Result<()> {
        let mut verifier = manifest.digest.verifier();
        verifier.update(&manifest.bytes);
        verifier.finish().map_err(ContentError::from)?;
        self.ensure_ready().await?;
        if !self.has_blob(&manifest.digest).await? {
            let dir = self.root.join(BLOBS_DIR).join(manifest.digest.algorithm());
            let hex = manifest.digest.hex().to_string();
            let bytes = manifest.bytes.clone();
            blocking(move || {
                fs::create_dir_all(&dir).map_err(|e| TransportError::io(dir.display(), e))?;
                write_atomic(&dir, &hex, &bytes)
            })
            .await?;
        }
        match push_as {
            PushAs::Child => Ok(()),
            PushAs::Root { tag } => self.update_index(manifest, tag.as_deref()).await,
        }
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.index_file().await?.ref_names())
    }

    async fn sparse_support(&self) -> SparseSupport {
        SparseSupport::Yes
    }
}

// ---------------------------------------------------------------------------------------------------
// index.json

/// The entries of an `index.json`, parsed and checked.
#[derive(Debug, Clone)]
pub(crate) struct IndexFile {
    pub(crate) entries: Vec<Descriptor>,
}

impl IndexFile {
    /// Parse `bytes`; `label` names the file in errors (`/x/index.json`), `location` the transport.
    pub(crate) fn parse(bytes: &[u8], label: &str, location: &str) -> Result<IndexFile> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
            layout_err(location, format!("{label} is not valid JSON: {e} (restore it, or copy the images again into a new layout)"))
        })?;
        let manifests = doc.get("manifests").and_then(Value::as_array).ok_or_else(|| {
            layout_err(
                location,
                format!("{label} has no `manifests` list, so it is not an OCI image index (restore it, or copy the images again into a new layout)"),
            )
        })?;
        let entries = manifests
            .iter()
            .enumerate()
            .map(|(i, e)| {
                serde_json::from_value::<Descriptor>(e.clone()).map_err(|err| {
                    layout_err(
                        location,
                        format!("entry {} of {label} is not a valid descriptor: {err} (fix or remove that entry)", i + 1),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IndexFile { entries })
    }

    /// The entry named `name` (the last one if several are).
    pub(crate) fn tagged(&self, name: &str) -> Option<&Descriptor> {
        self.entries
            .iter()
            .rev()
            .find(|d| d.annotation(ANNOTATION_REF_NAME) == Some(name))
    }

    /// Every `org.opencontainers.image.ref.name`, once each, in file order.
    pub(crate) fn ref_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in self
            .entries
            .iter()
            .filter_map(|d| d.annotation(ANNOTATION_REF_NAME))
        {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names
    }

    /// The only entry, by digest; `reference` is how the user names this place (`oci:/x`).
    pub(crate) fn default_target(
        &self,
        label: &str,
        location: &str,
        reference: &str,
    ) -> Result<Target> {
        match self.entries.as_slice() {
            [only] => Ok(Target::Digest(only.digest.clone())),
            [] => Err(layout_err(
                location,
                format!(
                    "{label} lists no images, so there is nothing to read (copy an image into it first)"
                ),
            )),
            entries => {
                const SHOWN: usize = 10;
                let mut names: Vec<String> = entries
                    .iter()
                    .take(SHOWN)
                    .map(|d| match d.annotation(ANNOTATION_REF_NAME) {
                        Some(name) => name.to_string(),
                        None => format!("{} untagged", d.digest.short()),
                    })
                    .collect();
                if entries.len() > SHOWN {
                    names.push(format!("and {} more", entries.len() - SHOWN));
                }
                Err(layout_err(
                    location,
                    format!(
                        "{label} has {} images ({}): name one with {reference}:NAME or {reference}@DIGEST",
                        entries.len(),
                        names.join(", ")
                    ),
                ))
            }
        }
    }
}

fn entry_ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

/// The `index.json` entry for a root manifest.
fn index_entry(manifest: &RawManifest, tag: Option<&str>) -> Value {
    let mut entry = serde_json::Map::new();
    entry.insert(
        "mediaType".into(),
        Value::String(manifest.media_type.clone()),
    );
    entry.insert("digest".into(), Value::String(manifest.digest.to_string()));
    entry.insert("size".into(), Value::from(manifest.size()));
    if let Some(tag) = tag {
        let mut annotations = serde_json::Map::new();
        annotations.insert(ANNOTATION_REF_NAME.into(), Value::String(tag.to_string()));
        entry.insert("annotations".into(), Value::Object(annotations));
    }
    Value::Object(entry)
}

/// Check an `oci-layout` file: JSON with a string `imageLayoutVersion`.
pub(crate) fn validate_oci_layout(bytes: &[u8], label: &str, location: &str) -> Result<()> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
        layout_err(
            location,
            format!("{label} is not valid JSON: {e}, so this is not a usable OCI image layout"),
        )
    })?;
    if doc
        .get("imageLayoutVersion")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(layout_err(
            location,
            format!(
                "{label} has no string `imageLayoutVersion`, so this is not a usable OCI image layout"
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Manifests

/// Turn a stored manifest's bytes into a [`RawManifest`], verified against `digest` and, when it was
/// found through an `index.json` entry, that entry's size. The media type is the document's own
/// `mediaType`, else the entry's (when it is a manifest type), else what the document's shape says.
pub(crate) fn manifest_from_bytes(
    bytes: Bytes,
    digest: &Digest,
    entry: Option<&Descriptor>,
    location: &str,
) -> Result<RawManifest> {
    if bytes.len() > MAX_MANIFEST_BYTES {
        return Err(TransportError::Manifest {
            location: location.to_string(),
            source: ManifestError::TooLarge { size: bytes.len() },
        });
    }
    if let Some(entry) = entry
        && entry.size != bytes.len() as u64
    {
        return Err(ContentError::Size {
            digest: digest.clone(),
            expected: entry.size,
            actual: bytes.len() as u64,
            more: bytes.len() as u64 > entry.size,
        }
        .into());
    }
    let mut verifier = digest.verifier();
    verifier.update(&bytes);
    verifier.finish().map_err(ContentError::from)?;
    let own = own_media_type(&bytes);
    let hint = own
        .as_deref()
        .or(entry.map(|e| e.media_type.as_str()))
        .unwrap_or("");
    let mut manifest = RawManifest::new(bytes, hint);
    // `RawManifest::new` hashes with sha256; keep the digest the content was verified against.
    manifest.digest = digest.clone();
    Ok(manifest)
}

/// The document's own non-empty `mediaType` field, if it is JSON and has one.
fn own_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Own {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Own>(bytes)
        .ok()?
        .media_type
        .filter(|m| !m.is_empty())
}

/// A manifest blob's bytes, or `None` when the file is absent; larger than a manifest may be: an error.
fn read_manifest_file(path: &Path, location: &str) -> Result<Option<Bytes>> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(TransportError::io(path.display(), e)),
    };
    let len = file
        .metadata()
        .map_err(|e| TransportError::io(path.display(), e))?
        .len();
    if len > MAX_MANIFEST_BYTES as u64 {
        return Err(TransportError::Manifest {
            location: format!("{location} ({})", path.display()),
            source: ManifestError::TooLarge {
                size: usize::try_from(len).unwrap_or(usize::MAX),
            },
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut file)
        .take(MAX_MANIFEST_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TransportError::io(path.display(), e))?;
    Ok(Some(Bytes::from(bytes)))
}

// ---------------------------------------------------------------------------------------------------
// Reading and checking the layout files

fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join(BLOBS_DIR)
        .join(digest.algorithm())
        .join(digest.hex())
}

fn index_label(root: &Path) -> String {
    root.join(INDEX_FILE).display().to_string()
}

pub(crate) fn layout_err(location: &str, message: impl Into<String>) -> TransportError {
    TransportError::Layout {
        location: location.to_string(),
        message: message.into(),
    }
}

fn missing_index(root: &Path, location: &str) -> TransportError {
    layout_err(
        location,
        format!(
            "{} is missing: the layout is incomplete (restore it, or copy the images again into a new layout)",
            index_label(root)
        ),
    )
}

fn missing_tagged_blob(root: &Path, location: &str, name: &str, digest: &Digest) -> TransportError {
    layout_err(
        location,
        format!(
            "{} names {digest} as {name:?}, but {} is missing: the layout is incomplete (copy the image into it again)",
            index_label(root),
            blob_path(root, digest).display()
        ),
    )
}

/// Is the layout at `root` there? `Ok(true)`: a valid `oci-layout` is present. `Ok(false)` (only when
/// `!must_exist`): nothing there yet, the directory is missing or empty. Anything else is an error.
fn check_layout(root: &Path, location: &str, must_exist: bool) -> Result<bool> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(layout_err(
                location,
                format!(
                    "{} is not a directory: an OCI image layout is a directory (for a tar of one, use oci-archive:{})",
                    root.display(),
                    root.display()
                ),
            ));
        }
        Err(e) if is_absent(&e) => {
            if must_exist {
                return Err(layout_err(
                    location,
                    format!(
                        "{} does not exist, so there is no OCI image layout to read (check the path, or create one with `mirror copy SRC oci:{}:TAG`)",
                        root.display(),
                        root.display()
                    ),
                ));
            }
            return Ok(false);
        }
        Err(e) => return Err(TransportError::io(root.display(), e)),
    }
    let file = root.join(OCI_LAYOUT_FILE);
    let label = file.display().to_string();
    match read_small(&file, MAX_OCI_LAYOUT_BYTES, &label, location)? {
        Some(bytes) => {
            validate_oci_layout(&bytes, &label, location)?;
            Ok(true)
        }
        None if !must_exist && dir_is_empty(root)? => Ok(false),
        None => Err(layout_err(
            location,
            format!(
                "{label} is missing: not an OCI image layout (create one with `mirror copy SRC oci:{}:TAG`)",
                root.display()
            ),
        )),
    }
}

fn read_index(root: &Path, location: &str) -> Result<IndexFile> {
    let label = index_label(root);
    let bytes = read_small(&root.join(INDEX_FILE), MAX_INDEX_BYTES, &label, location)?
        .ok_or_else(|| missing_index(root, location))?;
    IndexFile::parse(&bytes, &label, location)
}

/// Read a small file whole, `None` when it is absent; larger than `limit`: an error.
pub(crate) fn read_small(
    path: &Path,
    limit: u64,
    label: &str,
    location: &str,
) -> Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(TransportError::io(path.display(), e)),
    };
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TransportError::io(path.display(), e))?;
    if bytes.len() as u64 > limit {
        return Err(layout_err(
            location,
            format!(
                "{label} is larger than {limit} bytes, far more than such a file can be (is it the right file?)"
            ),
        ));
    }
    Ok(Some(bytes))
}

/// Empty, or holding nothing but the lock file `mirror sync` keeps there.
fn dir_is_empty(dir: &Path) -> Result<bool> {
    let entries = fs::read_dir(dir).map_err(|e| TransportError::io(dir.display(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| TransportError::io(dir.display(), e))?;
        if entry.file_name() != SYNC_LOCK_FILE {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The lock file `mirror sync` holds in a layout it writes (see `crate::sync`).
pub const SYNC_LOCK_FILE: &str = ".mirror-sync.lock";

fn file_exists(path: &Path) -> Result<bool> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(TransportError::io(path.display(), e)),
    }
}

/// "Not there": the file, or a directory on its path, is missing.
pub(crate) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Create the layout on first write, or check the one that is there.
fn init_layout(root: &Path, location: &str) -> Result<()> {
    fs::create_dir_all(root).map_err(|e| TransportError::io(root.display(), e))?;
    let layout_file = root.join(OCI_LAYOUT_FILE);
    let layout_label = layout_file.display().to_string();
    let index_file = root.join(INDEX_FILE);
    let label = index_label(root);
    let index = read_small(&index_file, MAX_INDEX_BYTES, &label, location)?;
    match read_small(&layout_file, MAX_OCI_LAYOUT_BYTES, &layout_label, location)? {
        Some(bytes) => validate_oci_layout(&bytes, &layout_label, location)?,
        None => {
            if index.is_none() && !dir_is_empty(root)? {
                return Err(layout_err(
                    location,
                    format!(
                        "{} is not empty and has no {OCI_LAYOUT_FILE}, so it is not an OCI image layout and mirror will not write into it (name a new or empty directory)",
                        root.display()
                    ),
                ));
            }
            write_atomic(root, OCI_LAYOUT_FILE, NEW_OCI_LAYOUT)?;
        }
    }
    match index {
        Some(bytes) => {
            IndexFile::parse(&bytes, &label, location)?;
        }
        None => write_atomic(root, INDEX_FILE, NEW_INDEX)?,
    }
    let blobs = root.join(BLOBS_DIR);
    fs::create_dir_all(&blobs).map_err(|e| TransportError::io(blobs.display(), e))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Atomic writes and streams

/// A temporary name next to `name`: `.tmp-<name>-<random>`.
pub(crate) fn temp_name(name: &str) -> String {
    format!(".tmp-{name}-{:016x}", rand::random::<u64>())
}

/// Removes a temporary file when dropped, unless disarmed (the file was renamed into place). Also
/// covers a task that is cancelled mid-write.
pub(crate) struct TempGuard(Option<PathBuf>);

impl TempGuard {
    pub(crate) fn new(path: PathBuf) -> TempGuard {
        TempGuard(Some(path))
    }

    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            // Best effort: the file may not have been created.
            let _ = fs::remove_file(path);
        }
    }
}

/// Write `bytes` to `dir/name` atomically: a temporary file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(temp_name(name));
    let guard = TempGuard::new(tmp.clone());
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| TransportError::io(tmp.display(), e))?;
    file.write_all(bytes)
        .map_err(|e| TransportError::io(tmp.display(), e))?;
    file.sync_all()
        .map_err(|e| TransportError::io(tmp.display(), e))?;
    drop(file);
    let target = dir.join(name);
    fs::rename(&tmp, &target).map_err(|e| TransportError::io(target.display(), e))?;
    guard.disarm();
    sync_dir(dir);
    Ok(())
}

/// Make a rename in `dir` durable. Best effort: some file systems refuse to fsync a directory.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write a blob stream to `tmp`, checking it against `desc` (size and digest) on the way; the file is
/// fsynced before this returns. The caller renames it into place, or removes it on error.
async fn write_stream(tmp: &Path, desc: &Descriptor, mut body: BlobStream) -> Result<()> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .await
        .map_err(|e| TransportError::io(tmp.display(), e))?;
    let mut verifier = desc.digest.verifier();
    let mut seen: u64 = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        seen += chunk.len() as u64;
        if seen > desc.size {
            return Err(ContentError::Size {
                digest: desc.digest.clone(),
                expected: desc.size,
                actual: seen,
                more: true,
            }
            .into());
        }
        verifier.update(&chunk);
        file.write_all(&chunk)
            .await
            .map_err(|e| TransportError::io(tmp.display(), e))?;
    }
    if seen != desc.size {
        return Err(ContentError::Size {
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: seen,
            more: false,
        }
        .into());
    }
    verifier.finish().map_err(ContentError::from)?;
    file.flush()
        .await
        .map_err(|e| TransportError::io(tmp.display(), e))?;
    file.sync_all()
        .await
        .map_err(|e| TransportError::io(tmp.display(), e))?;
    Ok(())
}

/// Stream the next `len` bytes of `file` in chunks of [`CHUNK`]; a file that ends early is an error.
pub(crate) fn file_stream(file: tokio::fs::File, len: u64, label: String) -> BlobStream {
    futures::stream::try_unfold(
        (file, len, label),
        |(mut file, remaining, label)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
            let mut buf = vec![0u8; want];
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| TransportError::io(&label, e))?;
            if n == 0 {
                return Err(TransportError::Io {
                    path: label,
                    message: format!("the file ended {remaining} bytes early (was it truncated?)"),
                });
            }
            buf.truncate(n);
            Ok(Some((
                Bytes::from(buf),
                (file, remaining - n as u64, label),
            )))
        },
    )
    .boxed()
}

/// Run blocking file work off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::Other(format!("a background file task failed: {e}")))?
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::oci::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};

    pub(crate) const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/real-world/layouts"
    );

    pub(crate) fn fixture(name: &str) -> PathBuf {
        Path::new(FIXTURES).join(name)
    }

    /// A writable copy of a fixture layout.
    pub(crate) fn copy_fixture(name: &str, into: &Path) -> PathBuf {
        fn copy_dir(from: &Path, to: &Path) {
            fs::create_dir_all(to).unwrap();
            for entry in fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy_dir(&entry.path(), &target);
                } else {
                    fs::copy(entry.path(), &target).unwrap();
                    let mut perms = fs::metadata(&target).unwrap().permissions();
                    #[allow(clippy::permissions_set_readonly_false)]
                    perms.set_readonly(false);
                    fs::set_permissions(&target, perms).unwrap();
                }
            }
        }
        let dst = into.join(name);
        copy_dir(&fixture(name), &dst);
        dst
    }

    pub(crate) fn digest(s: &str) -> Digest {
        s.parse().unwrap()
    }

    pub(crate) fn chunks(parts: Vec<Vec<u8>>) -> BlobStream {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
    }

    pub(crate) fn blob_desc(bytes: &[u8]) -> Descriptor {
        Descriptor {
            media_type: "application/octet-stream".into(),
            digest: Digest::sha256(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
            artifact_type: None,
            urls: None,
        }
    }

    pub(crate) async fn read_all(stream: BlobStream) -> Vec<u8> {
        let parts: Vec<Bytes> = stream.map(|r| r.unwrap()).collect().await;
        parts.concat()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    fn manifest(json: &str) -> RawManifest {
        RawManifest::new(Bytes::from(json.to_string()), "")
    }

    #[tokio::test]
    async fn reads_hello_world_by_tag() {
        let layout = LayoutTransport::new(fixture("hello-world-containerd-export"));
        let m = layout
            .get_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            m.digest,
            digest("sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af")
        );
        assert_eq!(m.media_type, DOCKER_LIST);
        assert_eq!(m.size(), 2561);
        let head = layout
            .head_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap();
        assert_eq!(head, Some(m.digest.clone()));
        let child =
            digest("sha256:f54a58bc1aac5ea1a25d796ae155dc228b3f0e11d046ae276b39c4bf2f13d8c4");
        let c = layout
            .get_manifest(&Target::Digest(child.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.media_type, DOCKER_MANIFEST);
        assert_eq!(c.digest, child);
        // An absent child (the layout is sparse) and an absent tag are `None`, not errors.
        let absent =
            digest("sha256:7b8b7289d0536a08eabdf71c20246e23f7116641db7e1d278592236ea4dcb30c");
        assert!(
            layout
                .get_manifest(&Target::Digest(absent.clone()))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            layout
                .head_manifest(&Target::Digest(absent))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            layout
                .get_manifest(&Target::Tag("nope".into()))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            layout.list_tags().await.unwrap(),
            vec!["latest".to_string()]
        );
        assert_eq!(layout.sparse_support().await, SparseSupport::Yes);
        assert_eq!(
            layout.location(),
            format!("oci:{}", fixture("hello-world-containerd-export").display())
        );
    }

    #[tokio::test]
    async fn reads_ggcr_nested_index_tags() {
        let layout = LayoutTransport::new(fixture("ggcr-nested-index"));
        let expect = [
            // index.json says OCI manifest; the document itself says Docker schema2, and wins.
            (
                "1",
                "sha256:eebff607b1628d67459b0596643fc07de70d702eccf030f0bc7bb6fc2b278650",
                DOCKER_MANIFEST,
            ),
            // index.json says `application/vnd.oci.descriptor.v1+json`, not a manifest type.
            (
                "2",
                "sha256:32589985702551b6c56033bb3334432a0a513bf9d6aceda0f67c42b003850720",
                DOCKER_MANIFEST,
            ),
            // No `mediaType` in the documents: index.json's type is used.
            (
                "3",
                "sha256:05f95b26ed10668b7183c1e2da98610e91372fa9f510046d4ce5812addad86b5",
                OCI_INDEX,
            ),
            (
                "4",
                "sha256:2b29a2b8dea3af91ea7d0154be1da0c92d55ddd098540930fc8d3db7de377fdb",
                DOCKER_LIST,
            ),
        ];
        for (tag, d, media_type) in expect {
            let m = layout
                .get_manifest(&Target::Tag(tag.into()))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(m.digest, digest(d), "tag {tag}");
            assert_eq!(m.media_type, media_type, "tag {tag}");
            assert!(m.parse().is_ok(), "tag {tag}");
        }
        assert_eq!(layout.list_tags().await.unwrap(), vec!["1", "2", "3", "4"]);
        let err = layout.default_target().unwrap_err().to_string();
        assert!(err.contains("has 4 images (1, 2, 3, 4)"), "{err}");
        assert!(err.contains(":NAME"), "{err}");
    }

    #[tokio::test]
    async fn reads_busybox_by_default_target() {
        let layout = LayoutTransport::new(fixture("busybox-sparse-imgutil"));
        let target = layout.default_target().unwrap();
        let d = digest("sha256:f75f3d1a317fc82c793d567de94fc8df2bece37acd5f2bd364a0d91a0d1f3dab");
        assert_eq!(target, Target::Digest(d.clone()));
        let m = layout.get_manifest(&target).await.unwrap().unwrap();
        assert_eq!(m.digest, d);
        assert_eq!(m.media_type, DOCKER_MANIFEST);
        assert!(layout.list_tags().await.unwrap().is_empty());
        // The config is deliberately absent from this sparse layout.
        let config =
            digest("sha256:9d5226e6ce3fb6aee2822206a5ef85f38c303d2b37bfc894b419fca2c0501269");
        assert!(!layout.has_blob(&config).await.unwrap());
        let mut desc = blob_desc(b"");
        desc.digest = config;
        assert!(matches!(
            layout.get_blob(&desc).await,
            Err(TransportError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn reads_notation_by_tag_and_digest() {
        let layout = LayoutTransport::new(fixture("notation-signed-artifact"));
        let v1 = layout
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            v1.digest,
            digest("sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9")
        );
        assert_eq!(v1.media_type, OCI_MANIFEST);
        let sig = digest("sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f");
        let m = layout
            .get_manifest(&Target::Digest(sig.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.digest, sig);
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.parse().unwrap().subject().unwrap().digest, v1.digest);
        // The blob bytes stream back unchanged.
        let bytes = read_all(layout.get_blob(&m.descriptor()).await.unwrap()).await;
        assert_eq!(bytes, m.bytes.to_vec());
        let tags = layout.list_tags().await.unwrap();
        assert_eq!(
            tags,
            vec![
                "v1",
                "sha256-b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
            ]
        );
    }

    #[tokio::test]
    async fn write_round_trip_creates_a_layout_only_on_write() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("new").join("layout");
        let layout = LayoutTransport::new(&root);
        // A dry run: HEADs of a layout that does not exist answer "absent" and create nothing.
        assert!(
            layout
                .head_manifest(&Target::Tag("v1".into()))
                .await
                .unwrap()
                .is_none()
        );
        assert!(!layout.has_blob(&Digest::sha256(b"x")).await.unwrap());
        assert!(!tmp.path().join("new").exists());
        let err = layout
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Layout { .. }));
        assert!(err.to_string().contains("does not exist"), "{err}");

        let big: Vec<u8> = (0..(3 * CHUNK + 17)).map(|i| (i % 251) as u8).collect();
        let desc = blob_desc(&big);
        let parts = big.chunks(100_000).map(<[u8]>::to_vec).collect();
        layout.put_blob(&desc, chunks(parts)).await.unwrap();
        assert!(layout.has_blob(&desc.digest).await.unwrap());
        let stream = layout.get_blob(&desc).await.unwrap();
        let pieces: Vec<Bytes> = stream.map(|r| r.unwrap()).collect().await;
        assert!(pieces.iter().all(|p| p.len() <= CHUNK));
        assert_eq!(pieces.concat(), big);

        let m = manifest(&format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/octet-stream","digest":"{}","size":{}}},"layers":[]}}"#,
            desc.digest, desc.size
        ));
        layout
            .put_manifest(
                &m,
                &PushAs::Root {
                    tag: Some("v1".into()),
                },
            )
            .await
            .unwrap();
        let back = layout
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.bytes, m.bytes);
        assert_eq!(back.media_type, OCI_MANIFEST);
        assert_eq!(fs::read(root.join("oci-layout")).unwrap(), NEW_OCI_LAYOUT);
        let index: Value =
            serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["mediaType"], OCI_INDEX);
        assert_eq!(index["manifests"][0]["digest"], m.digest.to_string());
        assert_eq!(
            index["manifests"][0]["annotations"][ANNOTATION_REF_NAME],
            "v1"
        );
        assert_eq!(
            layout.default_target().unwrap(),
            Target::Digest(m.digest.clone())
        );
        // No temporary file is left anywhere.
        assert_eq!(names_in(&root), vec!["blobs", "index.json", "oci-layout"]);
        assert_eq!(names_in(&root.join("blobs/sha256")).len(), 2);

        // An untagged root is added once.
        let other = manifest(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#,
        );
        layout
            .put_manifest(&other, &PushAs::Root { tag: None })
            .await
            .unwrap();
        layout
            .put_manifest(&other, &PushAs::Root { tag: None })
            .await
            .unwrap();
        let index = layout.index_file().await.unwrap();
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.entries[1].annotations, None);
        // A child is stored by digest only.
        let child = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
        layout.put_manifest(&child, &PushAs::Child).await.unwrap();
        assert_eq!(layout.index_file().await.unwrap().entries.len(), 2);
        let c = layout
            .get_manifest(&Target::Digest(child.digest.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.media_type, OCI_INDEX);
    }

    #[tokio::test]
    async fn corrupt_blob_is_a_content_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = copy_fixture("hello-world-containerd-export", tmp.path());
        let d = digest("sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af");
        let path = root.join("blobs/sha256").join(d.hex());
        let mut bytes = fs::read(&path).unwrap();
        let i = bytes.iter().position(|b| *b == b'5').unwrap();
        bytes[i] = b'6';
        fs::write(&path, &bytes).unwrap();
        let layout = LayoutTransport::new(&root);
        for target in [Target::Tag("latest".into()), Target::Digest(d.clone())] {
            let err = layout.get_manifest(&target).await.unwrap_err();
            assert!(
                matches!(err, TransportError::Content(ContentError::Digest(_))),
                "{err}"
            );
        }
        // A size that disagrees with index.json is caught too.
        bytes.push(b'\n');
        fs::write(&path, &bytes).unwrap();
        let err = layout
            .get_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TransportError::Content(ContentError::Size { .. })),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_or_broken_layout_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = copy_fixture("notation-signed-artifact", tmp.path());
        fs::remove_file(root.join("oci-layout")).unwrap();
        let layout = LayoutTransport::new(&root);
        let err = layout
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap_err();
        let TransportError::Layout { message, .. } = &err else {
            panic!("{err}");
        };
        let expect = format!(
            "{}/oci-layout is missing: not an OCI image layout",
            root.display()
        );
        assert!(message.contains(&expect), "{message}");
        // Not empty and not a layout: HEAD is an error too, and nothing is written into it.
        assert!(
            layout
                .head_manifest(&Target::Tag("v1".into()))
                .await
                .is_err()
        );

        fs::write(
            root.join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        fs::write(root.join("index.json"), b"{not json").unwrap();
        let err = layout
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{}/index.json is not valid JSON", root.display())),
            "{err}"
        );
        let m = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
        assert!(
            layout
                .put_manifest(
                    &m,
                    &PushAs::Root {
                        tag: Some("x".into())
                    }
                )
                .await
                .is_err()
        );
        assert_eq!(fs::read(root.join("index.json")).unwrap(), b"{not json");

        fs::remove_file(root.join("index.json")).unwrap();
        let err = layout.list_tags().await.unwrap_err().to_string();
        assert!(err.contains("index.json is missing"), "{err}");

        // A directory with other files in it is not turned into a layout.
        let other = tmp.path().join("home");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("notes.txt"), b"hi").unwrap();
        let layout = LayoutTransport::new(&other);
        let err = layout
            .put_blob(&blob_desc(b"x"), chunks(vec![b"x".to_vec()]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(names_in(&other), vec!["notes.txt"]);
    }

    #[tokio::test]
    async fn tagged_entry_with_missing_blob_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let root = copy_fixture("notation-signed-artifact", tmp.path());
        let d = "b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9";
        fs::remove_file(root.join("blobs/sha256").join(d)).unwrap();
        let layout = LayoutTransport::new(&root);
        for r in [
            layout
                .head_manifest(&Target::Tag("v1".into()))
                .await
                .map(|_| ()),
            layout
                .get_manifest(&Target::Tag("v1".into()))
                .await
                .map(|_| ()),
        ] {
            let err = r.unwrap_err().to_string();
            assert!(
                err.contains(&format!("blobs/sha256/{d} is missing")),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn retagging_replaces_and_keeps_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let root = copy_fixture("notation-signed-artifact", tmp.path());
        let layout = LayoutTransport::new(&root);
        let a = manifest(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"n":"a"}}"#,
        );
        let b = manifest(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"n":"b"}}"#,
        );
        for m in [&a, &b, &b] {
            layout
                .put_manifest(
                    m,
                    &PushAs::Root {
                        tag: Some("v1".into()),
                    },
                )
                .await
                .unwrap();
        }
        let index = layout.index_file().await.unwrap();
        let v1: Vec<_> = index
            .entries
            .iter()
            .filter(|e| e.annotation(ANNOTATION_REF_NAME) == Some("v1"))
            .collect();
        assert_eq!(v1.len(), 1);
        assert_eq!(v1[0].digest, b.digest);
        // The untagged signature entry and the referrers tag are still there, in their order.
        assert_eq!(index.entries.len(), 3);
        assert_eq!(
            index.entries[0].digest.hex(),
            "90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
        );
        assert_eq!(
            layout
                .head_manifest(&Target::Tag("v1".into()))
                .await
                .unwrap(),
            Some(b.digest.clone())
        );
        // Top-level fields are kept as they were (this index.json has no mediaType).
        let doc: Value =
            serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            doc.as_object().unwrap().keys().collect::<Vec<_>>(),
            vec!["schemaVersion", "manifests"]
        );
    }

    #[tokio::test]
    async fn failed_streams_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("layout");
        let layout = LayoutTransport::new(&root);
        let data = b"hello blob".to_vec();
        let desc = blob_desc(&data);
        let broken: BlobStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"hello")),
            Err(TransportError::Other("connection reset".into())),
        ])
        .boxed();
        let err = layout.put_blob(&desc, broken).await.unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert!(!layout.has_blob(&desc.digest).await.unwrap());
        assert!(names_in(&root.join("blobs/sha256")).is_empty());

        // Wrong bytes, short bytes and long bytes are refused without committing anything.
        for parts in [
            vec![b"hello blub".to_vec()],
            vec![b"hello".to_vec()],
            vec![b"hello blob!".to_vec()],
        ] {
            let err = layout.put_blob(&desc, chunks(parts)).await.unwrap_err();
            assert!(matches!(err, TransportError::Content(_)), "{err}");
        }
        assert!(names_in(&root.join("blobs/sha256")).is_empty());
        // A manifest whose bytes do not match its digest is refused.
        let mut m = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
        m.digest = Digest::sha256(b"something else");
        assert!(matches!(
            layout.put_manifest(&m, &PushAs::Child).await,
            Err(TransportError::Content(ContentError::Digest(_)))
        ));
        assert!(names_in(&root.join("blobs/sha256")).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = std::sync::Arc::new(LayoutTransport::new(tmp.path().join("layout")));
        let mut tasks = Vec::new();
        for i in 0..16u32 {
            let layout = layout.clone();
            tasks.push(tokio::spawn(async move {
                let data = format!("blob number {i}").into_bytes();
                let desc = blob_desc(&data);
                layout.put_blob(&desc, chunks(vec![data])).await.unwrap();
                let m = manifest(&format!(
                    r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"annotations":{{"i":"{i}"}}}}"#
                ));
                layout
                    .put_manifest(&m, &PushAs::Root { tag: Some(format!("t{i}")) })
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let mut tags = layout.list_tags().await.unwrap();
        tags.sort();
        let mut expect: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
        expect.sort();
        assert_eq!(tags, expect);
        assert_eq!(names_in(&layout.path().join("blobs/sha256")).len(), 32);
    }
}
