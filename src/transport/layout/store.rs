//! One OCI image layout directory on disk (image-spec `image-layout.md`): `oci-layout`, `index.json`
//! and `blobs/<alg>/<hex>`.
//!
//! [`Store`] is everything both layout transports do to such a directory: `oci:` is a thin
//! [`Transport`](crate::transport::Transport) over one, and `oci-archive:` stages its writes in one.
//! Reading verifies what it hands out (manifests against their digest and the size `index.json`
//! gives) and caps how much it reads of a file that should be small. Writing is atomic: see the
//! module doc of [`super`]. `index.json` updates are serialized within the process; between
//! processes, `mirror sync` holds [`SYNC_LOCK_FILE`].

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::oci::{
    ANNOTATION_REF_NAME, ContentError, Descriptor, Digest, MAX_MANIFEST_BYTES, ManifestError,
    RawManifest,
};
use crate::reference::Target;
use crate::transport::{
    ANNOTATION_OMITTED_BLOBS, BlobStream, OmittedBlob, PushAs, Result, TransportError,
};

pub(super) const OCI_LAYOUT_FILE: &str = "oci-layout";
pub(super) const INDEX_FILE: &str = "index.json";
const BLOBS_DIR: &str = "blobs";
/// What a new layout's `oci-layout` says.
pub(super) const NEW_OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// A new layout's `index.json`.
pub(super) const NEW_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
/// Blobs are read in chunks of this size.
pub(super) const CHUNK: usize = 256 * 1024;
/// `oci-layout` is one tiny JSON object; anything much larger is not one.
pub(super) const MAX_OCI_LAYOUT_BYTES: u64 = 64 * 1024;
/// `index.json` lists every image of a layout, so it may be much larger than a manifest, but not this.
pub(super) const MAX_INDEX_BYTES: u64 = 64 * 1024 * 1024;

/// The lock file `mirror sync` holds in a layout it writes (see `crate::sync`).
pub const SYNC_LOCK_FILE: &str = ".mirror-sync.lock";

/// An OCI image layout directory. Nothing is created before the first write.
pub(super) struct Store {
    root: PathBuf,
    /// Set once the layout exists on disk (created or checked by the first write).
    ready: tokio::sync::OnceCell<()>,
    /// Serializes read-modify-write cycles of `index.json`.
    index_lock: tokio::sync::Mutex<()>,
}

impl Store {
    /// The layout at `root`. Nothing is read or created here.
    pub(super) fn new(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            ready: tokio::sync::OnceCell::new(),
            index_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The layout as an `oci:` reference, which is how errors name it.
    pub(super) fn location(&self) -> String {
        format!("oci:{}", self.root.display())
    }

    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// What to read when the user named no image: the only entry of `index.json`, by digest. With
    /// none or several, an error listing what there is.
    pub(super) fn default_target(&self) -> Result<Target> {
        let location = self.location();
        let index = self.index_blocking()?;
        index.default_target(&index_label(&self.root), &location, &location)
    }

    /// The parsed `index.json` (the layout must exist).
    pub(super) fn index_blocking(&self) -> Result<IndexFile> {
        let location = self.location();
        check_layout(&self.root, &location, true)?;
        read_index(&self.root, &location)
    }

    /// The parsed `index.json`, read off the runtime's threads (the layout must exist).
    pub(super) async fn index(&self) -> Result<IndexFile> {
        let root = self.root.clone();
        let location = self.location();
        blocking(move || {
            check_layout(&root, &location, true)?;
            read_index(&root, &location)
        })
        .await
    }

    /// The manifest `target` names, verified; `None` when the tag or the blob is absent. A tag whose
    /// blob is missing is an error (the layout is incomplete), and so is a layout that is not there.
    pub(super) async fn manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
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

    /// The digest `target` names when its manifest is present, without reading it. A layout that
    /// does not exist yet (a missing or empty directory) has nothing.
    pub(super) async fn resolve(&self, target: &Target) -> Result<Option<Digest>> {
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

    /// The manifest stored as blob `digest`, verified against it (and against `entry`, the
    /// `index.json` descriptor it was found by, if any). `None` when the blob file is absent.
    pub(super) async fn read_manifest(
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

    pub(super) async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(TransportError::io(path.display(), e)),
        }
    }

    /// Stream a blob's bytes (unverified: the copy engine verifies what it reads).
    pub(super) async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
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

    /// Store a blob: streamed to a temporary file, checked against `desc`, fsynced, renamed into
    /// place. Nothing is committed unless the whole stream arrived and hashed to its digest.
    pub(super) async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()> {
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

    /// Store a manifest (verified against its digest) as a blob and, for a root, list it in
    /// `index.json`: named `tag` (replacing what had that name), or untagged once.
    pub(super) async fn put_manifest(
        &self,
        manifest: &RawManifest,
        push_as: &PushAs,
    ) -> Result<()> {
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

    /// The blobs recorded as left out of this layout (an incremental bundle).
    pub(super) async fn read_omitted(&self) -> Result<Vec<OmittedBlob>> {
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
    pub(super) async fn write_omitted(&self, blobs: &[OmittedBlob]) -> Result<()> {
        self.ensure_ready().await?;
        let _serialized = self.index_lock.lock().await;
        let root = self.root.clone();
        let location = self.location();
        let blobs = blobs.to_vec();
        blocking(move || {
            let label = index_label(&root);
            let bytes = read_small(&root.join(INDEX_FILE), MAX_INDEX_BYTES, &label, &location)?
                .ok_or_else(|| missing_index(&root, &location))?;
            let mut all: std::collections::BTreeSet<OmittedBlob> =
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
                a.insert(ANNOTATION_OMITTED_BLOBS.into(), Value::String(list));
            }
            let out = serde_json::to_vec(&doc)
                .map_err(|e| layout_err(&location, format!("cannot serialize {label}: {e}")))?;
            write_atomic(&root, INDEX_FILE, &out)
        })
        .await
    }
}

/// The left-out blobs an `index.json` records.
pub(super) fn omitted_from_index(
    bytes: &[u8],
    label: &str,
    location: &str,
) -> Result<Vec<OmittedBlob>> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| layout_err(location, format!("{label} is not valid JSON: {e}")))?;
    let Some(list) = doc
        .get("annotations")
        .and_then(|a| a.get(ANNOTATION_OMITTED_BLOBS))
        .and_then(Value::as_str)
    else {
        return Ok(vec![]);
    };
    serde_json::from_str(list).map_err(|e| {
        layout_err(
            location,
            format!(
                "{label}: the annotation {ANNOTATION_OMITTED_BLOBS} is not a list of blobs: {e}"
            ),
        )
    })
}

// ---------------------------------------------------------------------------------------------------
// index.json

/// The entries of an `index.json`, parsed and checked.
#[derive(Debug, Clone)]
pub(super) struct IndexFile {
    pub(super) entries: Vec<Descriptor>,
}

impl IndexFile {
    /// Parse `bytes`; `label` names the file in errors (`/x/index.json`), `location` the transport.
    pub(super) fn parse(bytes: &[u8], label: &str, location: &str) -> Result<IndexFile> {
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
    pub(super) fn tagged(&self, name: &str) -> Option<&Descriptor> {
        self.entries
            .iter()
            .rev()
            .find(|d| d.annotation(ANNOTATION_REF_NAME) == Some(name))
    }

    /// Every `org.opencontainers.image.ref.name`, once each, in file order.
    pub(super) fn ref_names(&self) -> Vec<String> {
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
    pub(super) fn default_target(
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
pub(super) fn validate_oci_layout(bytes: &[u8], label: &str, location: &str) -> Result<()> {
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
pub(super) fn manifest_from_bytes(
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

pub(super) fn layout_err(location: &str, message: impl Into<String>) -> TransportError {
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
pub(super) fn read_small(
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

fn file_exists(path: &Path) -> Result<bool> {
    match fs::metadata(path) {
        Ok(m) => Ok(m.is_file()),
        Err(e) if is_absent(&e) => Ok(false),
        Err(e) => Err(TransportError::io(path.display(), e)),
    }
}

/// "Not there": the file, or a directory on its path, is missing.
pub(super) fn is_absent(e: &io::Error) -> bool {
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
pub(super) fn temp_name(name: &str) -> String {
    format!(".tmp-{name}-{:016x}", rand::random::<u64>())
}

/// Removes a temporary file when dropped, unless disarmed (the file was renamed into place). Also
/// covers a task that is cancelled mid-write.
pub(super) struct TempGuard(Option<PathBuf>);

impl TempGuard {
    pub(super) fn new(path: PathBuf) -> TempGuard {
        TempGuard(Some(path))
    }

    pub(super) fn disarm(mut self) {
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
pub(super) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
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
pub(super) fn sync_dir(dir: &Path) {
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
pub(super) fn file_stream(file: tokio::fs::File, len: u64, label: String) -> BlobStream {
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
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::Other(format!("a background file task failed: {e}")))?
}
