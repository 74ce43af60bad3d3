//! One OCI image layout directory on disk (image-spec `image-layout.md`): `oci-layout`, `index.json`
//! and `blobs/<alg>/<hex>`.
//!
//! [`Store`] is everything both layout transports do to such a directory: `oci:` is a thin
//! [`Transport`](crate::transport::Transport) over one, and `oci-archive:` stages its writes in one.
//! Reading verifies what it hands out (manifests against their digest and the size `index.json`
//! gives) and caps how much it reads of a file that should be small. Writing is atomic: see the
//! module doc of [`super`]. `index.json` updates are serialized within the process; between
//! processes, `mirror sync` holds [`SYNC_LOCK_FILE`].
//!
//! Two private parts keep this file about the layout itself: `index` (the `index.json` document:
//! parsing, lookups, the edits made to it) and `files` (atomic files, range reads, capped reads,
//! which the archive uses for its tar files too).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use crate::oci::{
    ContentError, Descriptor, Digest, MAX_MANIFEST_BYTES, ManifestError, RawManifest,
};
use crate::reference::Target;
use crate::transport::{BlobStream, OmittedBlob, PushAs, Result, TransportError};

mod files;
mod index;

pub(super) use files::{AtomicFile, blocking, is_absent, range_stream, read_at, read_capped};
use files::{TempGuard, read_exact_at, sync_dir, temp_name, write_atomic, write_stream};
pub(super) use index::{IndexFile, omitted_from_index};

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
    /// Serializes read-modify-write cycles of `index.json` within this store (across stores and
    /// processes: a lock on the directory, [`with_layout_locked`]).
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
        blocking(self.root.display(), move || {
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
        blocking(self.root.display(), move || {
            check_layout(&root, &location, true)?;
            match target {
                Target::Tag(name) => {
                    let index = read_index(&root, &location)?;
                    let Some(entry) = index.tagged(&name)? else {
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
        blocking(self.root.display(), move || match target {
            Target::Tag(name) => {
                if !check_layout(&root, &location, false)? {
                    return Ok(None);
                }
                let index = read_index(&root, &location)?;
                let Some(entry) = index.tagged(&name)? else {
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
        blocking(self.root.display(), move || {
            match read_manifest_file(&path, &location)? {
                None => Ok(None),
                Some(bytes) => {
                    manifest_from_bytes(bytes, &digest, entry.as_ref(), &location).map(Some)
                }
            }
        })
        .await
    }

    pub(super) async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_len(digest).await?.is_some())
    }

    /// The size of a blob's file, `None` when it is not there.
    pub(super) async fn blob_len(&self, digest: &Digest) -> Result<Option<u64>> {
        let path = self.blob_path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(m.is_file().then_some(m.len())),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(TransportError::io(path.display(), e)),
        }
    }

    /// Stream a blob's bytes (unverified: the copy engine verifies what it reads).
    pub(super) async fn open_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let path = self.blob_path(&desc.digest);
        let label = path.display().to_string();
        let opened = blocking(self.root.display(), move || match fs::File::open(&path) {
            Ok(file) => {
                let len = file
                    .metadata()
                    .map_err(|e| TransportError::io(path.display(), e))?;
                Ok(Some((file, len.len())))
            }
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(TransportError::io(path.display(), e)),
        })
        .await?;
        let Some((file, len)) = opened else {
            return Err(TransportError::NotFound {
                what: format!("blob {}", desc.digest),
                location: self.location(),
            });
        };
        Ok(range_stream(Arc::new(file), 0, len, label))
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
        blocking(self.root.display(), move || {
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
            blocking(self.root.display(), move || {
                fs::create_dir_all(&dir).map_err(|e| TransportError::io(dir.display(), e))?;
                write_atomic(&dir, &hex, &bytes)
            })
            .await?;
        }
        match push_as {
            PushAs::Child => Ok(()),
            PushAs::Root { tag } => {
                let manifest = manifest.clone();
                let tag = tag.clone();
                self.edit_index(move |doc, label, location| {
                    index::add_root(doc, &manifest, tag.as_deref(), label, location)
                })
                .await
            }
        }
    }

    /// Make sure the layout exists on disk: create the directory, `oci-layout` and `index.json` when
    /// missing, and check them when present (a broken layout is never written into).
    async fn ensure_ready(&self) -> Result<()> {
        self.ready
            .get_or_try_init(|| {
                let root = self.root.clone();
                let location = self.location();
                blocking(self.root.display(), move || init_layout(&root, &location))
            })
            .await
            .map(|_| ())
    }

    /// Rewrite `index.json` with `edit` applied (given the document, its label and the location),
    /// atomically and one edit at a time. A broken `index.json` is reported, not rewritten.
    async fn edit_index(
        &self,
        edit: impl FnOnce(&mut Value, &str, &str) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let _serialized = self.index_lock.lock().await;
        let root = self.root.clone();
        let location = self.location();
        blocking(self.root.display(), move || {
            with_layout_locked(&root.clone(), move || {
                let label = index_label(&root);
                let bytes = read_index_bytes(&root, &location)?;
                IndexFile::parse(&bytes, &label, &location)?;
                let mut doc: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    layout_err(&location, format!("{label} is not valid JSON: {e}"))
                })?;
                edit(&mut doc, &label, &location)?;
                let out = serde_json::to_vec(&doc)
                    .map_err(|e| layout_err(&location, format!("cannot serialize {label}: {e}")))?;
                write_atomic(&root, INDEX_FILE, &out)
            })
        })
        .await
    }

    /// The blobs recorded as left out of this layout (an incremental bundle).
    pub(super) async fn read_omitted(&self) -> Result<Vec<OmittedBlob>> {
        let root = self.root.clone();
        let location = self.location();
        blocking(self.root.display(), move || {
            if !file_exists(&root.join(INDEX_FILE))? {
                return Ok(vec![]);
            }
            let bytes = read_index_bytes(&root, &location)?;
            omitted_from_index(&bytes, &index_label(&root), &location)
        })
        .await
    }

    /// Merge `blobs` into the left-out list in `index.json` (atomically, like every index update).
    pub(super) async fn write_omitted(&self, blobs: &[OmittedBlob]) -> Result<()> {
        self.ensure_ready().await?;
        let blobs = blobs.to_vec();
        self.edit_index(move |doc, label, location| index::add_omitted(doc, blobs, label, location))
            .await
    }

    /// Create the layout with these `oci-layout` and `index.json` (an archive's, so that writes can
    /// be staged on top of what it holds). Blocking; `root` is new.
    pub(super) fn create_with(&self, oci_layout: &[u8], index_json: &[u8]) -> Result<()> {
        fs::create_dir_all(&self.root).map_err(|e| TransportError::io(self.root.display(), e))?;
        // Always a complete layout, so that a read right after this sees one.
        write_atomic(&self.root, OCI_LAYOUT_FILE, oci_layout)?;
        write_atomic(&self.root, INDEX_FILE, index_json)?;
        let blobs = self.root.join(BLOBS_DIR);
        fs::create_dir_all(&blobs).map_err(|e| TransportError::io(blobs.display(), e))
    }

    /// `oci-layout` and `index.json` as they are now, in that order (the order of an archive).
    /// Blocking; the layout must exist.
    pub(super) fn layout_files(&self) -> Result<[(&'static str, Vec<u8>); 2]> {
        let location = self.location();
        let oci_layout = self.root.join(OCI_LAYOUT_FILE);
        let label = oci_layout.display().to_string();
        let oci_layout = read_small(&oci_layout, MAX_OCI_LAYOUT_BYTES, &label, &location)?
            .ok_or_else(|| layout_err(&location, format!("{label} is missing")))?;
        let index = read_index_bytes(&self.root, &location)?;
        Ok([(OCI_LAYOUT_FILE, oci_layout), (INDEX_FILE, index)])
    }

    /// Every committed blob and its file (temporary files are not blobs). Blocking.
    pub(super) fn blob_files(&self) -> Result<Vec<(Digest, PathBuf)>> {
        let blobs_dir = self.root.join(BLOBS_DIR);
        let algs = match fs::read_dir(&blobs_dir) {
            Ok(algs) => algs,
            Err(e) if is_absent(&e) => return Ok(vec![]),
            Err(e) => return Err(TransportError::io(blobs_dir.display(), e)),
        };
        let mut blobs = Vec::new();
        for alg in algs {
            let alg = alg.map_err(|e| TransportError::io(blobs_dir.display(), e))?;
            let alg_dir = alg.path();
            if !alg_dir.is_dir() {
                continue;
            }
            let alg_name = alg.file_name().to_string_lossy().into_owned();
            let io_err = |e| TransportError::io(alg_dir.display(), e);
            for f in fs::read_dir(&alg_dir).map_err(io_err)? {
                let f = f.map_err(io_err)?;
                let name = f.file_name().to_string_lossy().into_owned();
                // Temporary files start with '.'; anything that is not a digest is not a blob.
                if let Ok(d) = format!("{alg_name}:{name}").parse::<Digest>() {
                    blobs.push((d, f.path()));
                }
            }
        }
        Ok(blobs)
    }
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
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(TransportError::io(path.display(), e)),
    };
    let label = path.display().to_string();
    let len = file
        .metadata()
        .map_err(|e| TransportError::io(&label, e))?
        .len();
    read_manifest_at(&file, 0, len, &format!("{location} ({label})"), &label).map(Some)
}

/// The `size` bytes of a manifest at `offset` of `file` (`label` names it in I/O errors), refused
/// unread when larger than a manifest may be (`location` names it then).
pub(super) fn read_manifest_at(
    file: &fs::File,
    offset: u64,
    size: u64,
    location: &str,
    label: &str,
) -> Result<Bytes> {
    if size > MAX_MANIFEST_BYTES as u64 {
        return Err(TransportError::Manifest {
            location: location.to_string(),
            source: ManifestError::TooLarge {
                size: usize::try_from(size).unwrap_or(usize::MAX),
            },
        });
    }
    let mut buf = vec![0u8; size as usize];
    read_exact_at(file, &mut buf, offset).map_err(|e| TransportError::io(label, e))?;
    Ok(Bytes::from(buf))
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
    // A writer creating the layout holds the directory's lock until `oci-layout` and
    // `index.json` are both there (`with_layout_locked`): wait for it, so that a layout is never
    // seen half made.
    let _settled = fs::File::open(root).and_then(|dir| dir.lock_shared().map(|()| dir));
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
    IndexFile::parse(
        &read_index_bytes(root, location)?,
        &index_label(root),
        location,
    )
}

/// `index.json`'s bytes; absent: an error (the layout is incomplete).
fn read_index_bytes(root: &Path, location: &str) -> Result<Vec<u8>> {
    let label = index_label(root);
    read_small(&root.join(INDEX_FILE), MAX_INDEX_BYTES, &label, location)?
        .ok_or_else(|| missing_index(root, location))
}

/// Read a small file whole, `None` when it is absent; larger than `limit`: an error.
fn read_small(path: &Path, limit: u64, label: &str, location: &str) -> Result<Option<Vec<u8>>> {
    match fs::File::open(path) {
        Ok(file) => read_capped(file, limit, label, location).map(Some),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(TransportError::io(path.display(), e)),
    }
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

/// Create the layout on first write, or check the one that is there.
fn init_layout(root: &Path, location: &str) -> Result<()> {
    fs::create_dir_all(root).map_err(|e| TransportError::io(root.display(), e))?;
    with_layout_locked(root, || init_unlocked(root, location))
}

/// Run `f` holding an exclusive `flock` on the layout directory itself, so that every writer of
/// one layout (several images of a `sync` in flight, each with its own [`Store`], or another
/// process) creates it and edits its `index.json` one at a time and loses no entry. The
/// directory, not a file in it, is locked: `index.json` is replaced by a rename, and the layout
/// gets no file of ours.
fn with_layout_locked<T>(root: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let dir = fs::File::open(root).map_err(|e| TransportError::io(root.display(), e))?;
    dir.lock()
        .map_err(|e| TransportError::io(root.display(), e))?;
    f()
}

fn init_unlocked(root: &Path, location: &str) -> Result<()> {
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

#[cfg(test)]
mod tests;
