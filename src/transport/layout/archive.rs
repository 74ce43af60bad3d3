//! The `oci-archive:` transport: a tar of an OCI image layout, for moving images as one file.
//!
//! This module owns reading and (re)writing such a tar. Reading never unpacks: the first read scans
//! the tar headers once, keeps `oci-layout` and `index.json` in memory and records where each
//! `blobs/<alg>/<hex>` entry's bytes are in the file; a blob is then streamed straight from that byte
//! range (through the file handle opened by the scan, so it stays valid whatever happens to the path).
//!
//! Writing never modifies the archive in place. Writes go to a staging OCI layout (a [`Store`], the
//! same one `oci:` writes through) in a temporary directory next to the archive
//! (`<archive>.partial-<random>/`, made by the first write); it starts with the archive's
//! `oci-layout` and `index.json`, and holds only the blobs that are new, while the blobs already in
//! the archive stay where they are. [`Transport::finish`] then packs the result into
//! `<archive>.tmp-<random>` (`oci-layout` and `index.json` first, then every blob in digest order,
//! new ones from the staging directory and old ones copied from their range of the old archive),
//! fsyncs it and renames it over the archive (an [`AtomicFile`]), so the archive is either the old one
//! or the complete new one. A copy that fails before `finish` leaves the archive untouched, and the staging directory is
//! removed when the transport is dropped. Reads after writes see the staged content.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs;
use std::io::{self, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;

use super::store::{
    AtomicFile, INDEX_FILE, IndexFile, MAX_INDEX_BYTES, MAX_OCI_LAYOUT_BYTES, NEW_INDEX,
    NEW_OCI_LAYOUT, OCI_LAYOUT_FILE, Store, blocking, is_absent, layout_err, manifest_from_bytes,
    omitted_from_index, range_stream, read_at, read_capped, read_manifest_at, validate_oci_layout,
};
use crate::oci::{Descriptor, Digest, RawManifest};
use crate::reference::Target;
use crate::transport::{
    BlobState, BlobStream, OmittedBlob, PushAs, Result, SparseSupport, Transport, TransportError,
};

/// An `oci-archive:` tar file.
pub struct ArchiveTransport {
    path: PathBuf,
    state: Mutex<State>,
    /// Serializes creating the staging layout and packing.
    write_lock: tokio::sync::Mutex<()>,
    /// Set when the transport is dropped: a staging layout still being created on a blocking
    /// thread then removes itself (the drop cannot wait for that thread).
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
struct State {
    /// The archive as scanned (cached; reset by `finish`).
    scan: Option<Arc<Scan>>,
    /// Where writes go, once something was written.
    staging: Option<Arc<Staging>>,
    /// Staging directories being made: listed before they are created, so that a write
    /// cancelled midway (another blob of the copy failed) still leaves none behind.
    making: Vec<PathBuf>,
}

/// What one pass over the tar headers found.
struct Scan {
    /// The archive, opened once: ranges are read through this handle.
    file: Arc<fs::File>,
    len: u64,
    modified: Option<SystemTime>,
    oci_layout: Vec<u8>,
    index_json: Vec<u8>,
    index: IndexFile,
    /// Each blob's data offset and size in the file.
    blobs: HashMap<Digest, (u64, u64)>,
}

struct Staging {
    /// The staging layout; its root is the staging directory.
    store: Store,
    /// The archive as it was when staging began (`None`: there was none); its blobs are not copied
    /// into the staging directory.
    base: Option<Arc<Scan>>,
    /// Something was written (a blob the archive lacked, or a manifest): `finish` has to repack.
    dirty: AtomicBool,
}

impl Staging {
    fn base_has(&self, digest: &Digest) -> bool {
        self.base
            .as_ref()
            .is_some_and(|b| b.blobs.contains_key(digest))
    }
}

/// How reads see the archive right now.
enum View {
    Staged(Arc<Staging>),
    Archive(Arc<Scan>),
    /// No archive, nothing staged.
    Missing,
}

impl ArchiveTransport {
    /// The archive at `path`. Nothing is read or created here.
    pub fn new(path: impl Into<PathBuf>) -> ArchiveTransport {
        ArchiveTransport {
            path: path.into(),
            state: Mutex::new(State::default()),
            write_lock: tokio::sync::Mutex::new(()),
            dropped: Arc::default(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What to read when the user named no image (`oci-archive:PATH`): the only entry of its
    /// `index.json`, by digest. With none or several, an error listing what there is.
    pub fn default_target(&self) -> Result<Target> {
        let location = self.location();
        let staging = self.state().staging.clone();
        if let Some(st) = staging {
            let index = st.store.index_blocking()?;
            return index.default_target(&self.index_label(), &location, &location);
        }
        let cached = self.state().scan.clone();
        let scan = match cached {
            Some(scan) => scan,
            None => {
                let scan =
                    Arc::new(scan_archive(&self.path, &location)?.ok_or_else(|| self.missing())?);
                self.state().scan = Some(scan.clone());
                scan
            }
        };
        scan.index
            .default_target(&self.index_label(), &location, &location)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn index_label(&self) -> String {
        format!("{INDEX_FILE} in {}", self.path.display())
    }

    fn missing(&self) -> TransportError {
        layout_err(
            &self.location(),
            format!(
                "{} does not exist, so there is no archive to read (check the path, or create one with `mirror copy SRC oci-archive:{}:TAG`)",
                self.path.display(),
                self.path.display()
            ),
        )
    }

    /// The archive's scan (cached), or `None` when there is no archive.
    async fn scanned(&self) -> Result<Option<Arc<Scan>>> {
        if let Some(scan) = self.state().scan.clone() {
            return Ok(Some(scan));
        }
        let path = self.path.clone();
        let location = self.location();
        let Some(scan) =
            blocking(self.path.display(), move || scan_archive(&path, &location)).await?
        else {
            return Ok(None);
        };
        let scan = Arc::new(scan);
        self.state().scan = Some(scan.clone());
        Ok(Some(scan))
    }

    async fn view(&self) -> Result<View> {
        if let Some(st) = self.state().staging.clone() {
            return Ok(View::Staged(st));
        }
        Ok(match self.scanned().await? {
            Some(scan) => View::Archive(scan),
            None => View::Missing,
        })
    }

    /// The staging layout, created (next to the archive, seeded with its `oci-layout` and
    /// `index.json`) by the first write.
    async fn staging(&self) -> Result<Arc<Staging>> {
        if let Some(st) = self.state().staging.clone() {
            return Ok(st);
        }
        let _serialized = self.write_lock.lock().await;
        if let Some(st) = self.state().staging.clone() {
            return Ok(st);
        }
        let base = self.scanned().await?;
        let dir = with_suffix(
            &self.path,
            &format!(".partial-{:016x}", rand::random::<u64>()),
        );
        self.state().making.push(dir.clone());
        let seed = base.clone();
        let staging_dir = dir.clone();
        let dropped = self.dropped.clone();
        let store = blocking(dir.display(), move || {
            let store = Store::new(staging_dir.clone());
            let created = match &seed {
                Some(scan) => store.create_with(&scan.oci_layout, &scan.index_json),
                None => store.create_with(NEW_OCI_LAYOUT, NEW_INDEX),
            };
            // The transport went away (a failed or interrupted copy) while this ran: whatever
            // was created after its drop cleaned up must go too.
            if dropped.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = fs::remove_dir_all(&staging_dir);
            }
            created?;
            Ok(store)
        })
        .await
        .inspect_err(|_| {
            let _ = fs::remove_dir_all(&dir);
        })?;
        let st = Arc::new(Staging {
            store,
            base,
            dirty: AtomicBool::new(false),
        });
        let mut state = self.state();
        state.making.retain(|d| *d != dir);
        state.staging = Some(st.clone());
        Ok(st)
    }

    /// A manifest blob from the staging layout or the archive, `None` when neither has it.
    async fn read_manifest(
        &self,
        staging: Option<&Staging>,
        scan: Option<&Arc<Scan>>,
        digest: &Digest,
        entry: Option<&Descriptor>,
    ) -> Result<Option<RawManifest>> {
        if let Some(st) = staging
            && let Some(m) = st.store.read_manifest(digest, entry).await?
        {
            return Ok(Some(m));
        }
        let Some(scan) = scan else {
            return Ok(None);
        };
        let Some(&(offset, size)) = scan.blobs.get(digest) else {
            return Ok(None);
        };
        let location = self.location();
        let file = scan.file.clone();
        let label = self.path.display().to_string();
        let at = location.clone();
        let bytes = blocking(self.path.display(), move || {
            read_manifest_at(&file, offset, size, &at, &label)
        })
        .await?;
        manifest_from_bytes(bytes, digest, entry, &location).map(Some)
    }

    fn missing_tagged_blob(&self, name: &str, digest: &Digest) -> TransportError {
        layout_err(
            &self.location(),
            format!(
                "{} names {digest} as {name:?}, but the archive has no blobs/{}/{}: it is incomplete (copy the image into it again)",
                self.index_label(),
                digest.algorithm(),
                digest.hex()
            ),
        )
    }
}

impl Drop for ArchiveTransport {
    fn drop(&mut self) {
        self.dropped
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(st) = state.staging.take() {
            // Best effort: a copy that did not finish leaves the archive as it was and no staging
            // directory behind.
            let _ = fs::remove_dir_all(st.store.root());
        }
        for dir in state.making.drain(..) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

#[async_trait]
impl Transport for ArchiveTransport {
    fn default_target(&self) -> Result<Option<Target>> {
        ArchiveTransport::default_target(self).map(Some)
    }

    fn location(&self) -> String {
        format!("oci-archive:{}", self.path.display())
    }

    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
        let (staging, scan, index) = match self.view().await? {
            View::Staged(st) => {
                let index = st.store.index().await?;
                let base = st.base.clone();
                (Some(st), base, index)
            }
            View::Archive(scan) => {
                let index = scan.index.clone();
                (None, Some(scan), index)
            }
            View::Missing => return Err(self.missing()),
        };
        match target {
            Target::Tag(name) => {
                let Some(entry) = index.tagged(name)? else {
                    return Ok(None);
                };
                self.read_manifest(
                    staging.as_deref(),
                    scan.as_ref(),
                    &entry.digest,
                    Some(entry),
                )
                .await?
                .ok_or_else(|| self.missing_tagged_blob(name, &entry.digest))
                .map(Some)
            }
            Target::Digest(d) => {
                self.read_manifest(staging.as_deref(), scan.as_ref(), d, None)
                    .await
            }
        }
    }

    async fn head_manifest(&self, target: &Target) -> Result<Option<Digest>> {
        match (self.view().await?, target) {
            (View::Missing, _) => Ok(None),
            (View::Archive(scan), Target::Tag(name)) => match scan.index.tagged(name)? {
                None => Ok(None),
                Some(entry) if scan.blobs.contains_key(&entry.digest) => {
                    Ok(Some(entry.digest.clone()))
                }
                Some(entry) => Err(self.missing_tagged_blob(name, &entry.digest)),
            },
            (View::Archive(scan), Target::Digest(d)) => {
                Ok(scan.blobs.contains_key(d).then(|| d.clone()))
            }
            (View::Staged(st), Target::Tag(name)) => {
                let index = st.store.index().await?;
                let Some(entry) = index.tagged(name)? else {
                    return Ok(None);
                };
                if st.base_has(&entry.digest) || st.store.has_blob(&entry.digest).await? {
                    Ok(Some(entry.digest.clone()))
                } else {
                    Err(self.missing_tagged_blob(name, &entry.digest))
                }
            }
            (View::Staged(st), Target::Digest(d)) => {
                Ok((st.base_has(d) || st.store.has_blob(d).await?).then(|| d.clone()))
            }
        }
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        match self.view().await? {
            View::Missing => Ok(false),
            View::Archive(scan) => Ok(scan.blobs.contains_key(digest)),
            View::Staged(st) => Ok(st.base_has(digest) || st.store.has_blob(digest).await?),
        }
    }

    async fn blob_state(&self, digest: &Digest) -> Result<BlobState> {
        if let View::Archive(scan) = self.view().await? {
            return Ok(match scan.blobs.get(digest) {
                Some((_, size)) => BlobState::Present { size: Some(*size) },
                None => BlobState::Absent,
            });
        }
        Ok(if self.has_blob(digest).await? {
            BlobState::Present { size: None }
        } else {
            BlobState::Absent
        })
    }

    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let scan = match self.view().await? {
            View::Missing => return Err(self.missing()),
            View::Archive(scan) => Some(scan),
            View::Staged(st) => {
                if st.store.has_blob(&desc.digest).await? {
                    return st.store.open_blob(desc).await;
                }
                st.base.clone()
            }
        };
        match scan
            .as_ref()
            .and_then(|s| s.blobs.get(&desc.digest).map(|r| (s, *r)))
        {
            Some((scan, (offset, size))) => Ok(range_stream(
                scan.file.clone(),
                offset,
                size,
                format!("{} (blob {})", self.path.display(), desc.digest),
            )),
            None => Err(TransportError::NotFound {
                what: format!("blob {}", desc.digest),
                location: self.location(),
            }),
        }
    }

    async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()> {
        let st = self.staging().await?;
        if st.base_has(&desc.digest) {
            return Ok(());
        }
        st.store.put_blob(desc, body).await?;
        st.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn put_manifest(&self, manifest: &RawManifest, push_as: &PushAs) -> Result<()> {
        let st = self.staging().await?;
        if *push_as == PushAs::Child
            && st.base_has(&manifest.digest)
            && manifest.digest.matches(&manifest.bytes)
        {
            return Ok(());
        }
        st.store.put_manifest(manifest, push_as).await?;
        st.dirty.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        match self.view().await? {
            View::Missing => Err(self.missing()),
            View::Archive(scan) => Ok(scan.index.ref_names()),
            View::Staged(st) => Ok(st.store.index().await?.ref_names()),
        }
    }

    async fn sparse_support(&self) -> SparseSupport {
        SparseSupport::Yes
    }

    async fn omitted_blobs(&self) -> Result<Vec<OmittedBlob>> {
        match self.view().await? {
            View::Missing => Ok(vec![]),
            View::Archive(scan) => {
                let location = self.location();
                omitted_from_index(&scan.index_json, "index.json", &location)
            }
            View::Staged(st) => st.store.read_omitted().await,
        }
    }

    async fn record_omitted(&self, blobs: &[OmittedBlob]) -> Result<bool> {
        let st = self.staging().await?;
        st.store.write_omitted(blobs).await?;
        st.dirty.store(true, Ordering::SeqCst);
        Ok(true)
    }

    /// Pack the staged layout (with the blobs of the archive that was there) into a new archive and
    /// rename it over the old one. When nothing new was written this leaves the archive alone.
    async fn finish(&self) -> Result<()> {
        let _serialized = self.write_lock.lock().await;
        let Some(st) = self.state().staging.clone() else {
            return Ok(());
        };
        if st.dirty.load(Ordering::SeqCst) {
            let path = self.path.clone();
            let location = self.location();
            let packing = st.clone();
            blocking(self.path.display(), move || {
                pack(&path, &packing, &location)
            })
            .await?;
            let mut state = self.state();
            state.staging = None;
            state.scan = None;
        } else {
            // Everything was in the archive already: leave it as it is.
            self.state().staging = None;
        }
        let dir = st.store.root().to_path_buf();
        // The archive is complete; a staging directory that cannot be removed is only litter.
        blocking(st.store.root().display(), move || {
            let _ = fs::remove_dir_all(&dir);
            Ok(())
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------------------
// Reading

/// `path` with `suffix` appended to its file name (`a.tar` → `a.tar.partial-…`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// An entry's name inside the layout: without `./` or `/` prefixes.
fn entry_name(raw: &[u8]) -> Option<&str> {
    let mut name = std::str::from_utf8(raw).ok()?;
    loop {
        if let Some(rest) = name.strip_prefix("./") {
            name = rest;
        } else if let Some(rest) = name.strip_prefix('/') {
            name = rest;
        } else {
            return Some(name);
        }
    }
}

/// The digest a `blobs/<alg>/<hex>` entry name stands for.
fn blob_digest(name: &str) -> Option<Digest> {
    let rest = name.strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    format!("{alg}:{hex}").parse().ok()
}

/// Scan the tar headers once. `None`: there is no file at `path`.
fn scan_archive(path: &Path, location: &str) -> Result<Option<Scan>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if is_absent(&e) => return Ok(None),
        Err(e) => return Err(TransportError::io(path.display(), e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| TransportError::io(path.display(), e))?;
    if meta.is_dir() {
        return Err(layout_err(
            location,
            format!(
                "{} is a directory: an oci-archive is a tar file (for a layout directory, use oci:{})",
                path.display(),
                path.display()
            ),
        ));
    }
    let len = meta.len();
    let file = Arc::new(file);
    let bad_tar = |e: io::Error| {
        layout_err(
            location,
            format!(
                "{} is not a readable tar archive: {e} (is it an oci-archive?)",
                path.display()
            ),
        )
    };
    let mut oci_layout = None;
    let mut index_json = None;
    let mut blobs = HashMap::new();
    // Every regular file's range by name: a hard link entry names one of them (as skopeo, which
    // unpacks the tar, reads a hard link as the file it links to).
    let mut files: HashMap<String, (u64, u64)> = HashMap::new();
    {
        let mut archive = tar::Archive::new(io::BufReader::new(SharedFile(file.clone())));
        for entry in archive.entries_with_seek().map_err(bad_tar)? {
            let entry = entry.map_err(bad_tar)?;
            let kind = entry.header().entry_type();
            let path_bytes = entry.path_bytes().into_owned();
            let Some(name) = entry_name(&path_bytes) else {
                continue;
            };
            let (offset, size) = if kind == tar::EntryType::Link {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                let target = target.as_deref().and_then(entry_name);
                match target.and_then(|t| files.get(t)) {
                    Some(range) => *range,
                    None => {
                        return Err(layout_err(
                            location,
                            format!(
                                "{} has a hard link {} to {}, which is no file before it in the archive",
                                path.display(),
                                crate::oci::escape_for_terminal(name),
                                crate::oci::escape_for_terminal(target.unwrap_or("?"))
                            ),
                        ));
                    }
                }
            } else if kind.is_file() || kind == tar::EntryType::Continuous {
                (entry.raw_file_position(), entry.size())
            } else {
                continue;
            };
            if offset.checked_add(size).is_none_or(|end| end > len) {
                return Err(layout_err(
                    location,
                    format!(
                        "{} is truncated: entry {name} ends past the end of the file (copy the archive again)",
                        path.display()
                    ),
                ));
            }
            files.insert(name.to_string(), (offset, size));
            let label = format!("{name} in {}", path.display());
            // Positional reads: the scan's own position in the file is left alone.
            let range = || {
                RangeReader {
                    file: file.clone(),
                    pos: offset,
                }
                .take(size)
            };
            match name {
                OCI_LAYOUT_FILE => {
                    oci_layout = Some(read_capped(
                        range(),
                        MAX_OCI_LAYOUT_BYTES,
                        &label,
                        location,
                    )?)
                }
                INDEX_FILE => {
                    index_json = Some(read_capped(range(), MAX_INDEX_BYTES, &label, location)?)
                }
                _ => {
                    if let Some(digest) = blob_digest(name) {
                        blobs.insert(digest, (offset, size));
                    }
                }
            }
        }
    }
    let oci_layout = oci_layout.ok_or_else(|| {
        layout_err(
            location,
            format!(
                "{} has no {OCI_LAYOUT_FILE} entry: not an oci-archive of an OCI image layout (create one with `mirror copy SRC oci-archive:{}:TAG`)",
                path.display(),
                path.display()
            ),
        )
    })?;
    validate_oci_layout(
        &oci_layout,
        &format!("{OCI_LAYOUT_FILE} in {}", path.display()),
        location,
    )?;
    let index_label = format!("{INDEX_FILE} in {}", path.display());
    let index_json = index_json.ok_or_else(|| {
        layout_err(
            location,
            format!("{} has no {INDEX_FILE} entry: the archive is incomplete (copy the images into a new archive)", path.display()),
        )
    })?;
    let index = IndexFile::parse(&index_json, &index_label, location)?;
    Ok(Some(Scan {
        file,
        len,
        modified: meta.modified().ok(),
        oci_layout,
        index_json,
        index,
        blobs,
    }))
}

/// A shared file handle as a `Read + Seek` with its own position (for the header scan).
struct SharedFile(Arc<fs::File>);

impl Read for SharedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl io::Seek for SharedFile {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        (&*self.0).seek(pos)
    }
}

// ---------------------------------------------------------------------------------------------------
// Packing

enum BlobSource {
    Staged(PathBuf),
    Archive(u64, u64),
}

/// A reader that must yield exactly `remaining` bytes (a tar entry whose data is shorter than its
/// header says would corrupt the archive).
struct Exact<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended before its recorded size",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads a byte range of the old archive through its shared handle.
struct RangeReader {
    file: Arc<fs::File>,
    pos: u64,
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_at(&self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    // Fixed metadata: the same images give the same archive bytes.
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Write the archive for `st` to a temporary file next to `archive`, fsync it and rename it over.
fn pack(archive: &Path, st: &Staging, location: &str) -> Result<()> {
    let archive_label = archive.display().to_string();
    // Someone else replacing the archive since it was read would be silently undone: refuse.
    let current = match fs::metadata(archive) {
        Ok(m) => Some(m),
        Err(e) if is_absent(&e) => None,
        Err(e) => return Err(TransportError::io(&archive_label, e)),
    };
    let changed = match (&st.base, &current) {
        (None, None) => false,
        (Some(base), Some(m)) => base.len != m.len() || base.modified != m.modified().ok(),
        _ => true,
    };
    if changed {
        return Err(layout_err(
            location,
            format!(
                "{archive_label} changed while mirror was writing to it, so it was not replaced (run the copy again)"
            ),
        ));
    }

    let mut blobs: BTreeMap<Digest, BlobSource> = BTreeMap::new();
    if let Some(base) = &st.base {
        for (d, &(offset, size)) in &base.blobs {
            blobs.insert(d.clone(), BlobSource::Archive(offset, size));
        }
    }
    for (d, path) in st.store.blob_files()? {
        blobs.insert(d, BlobSource::Staged(path));
    }

    let tmp = with_suffix(archive, &format!(".tmp-{:016x}", rand::random::<u64>()));
    let mut out = AtomicFile::create(tmp, archive.to_path_buf())?;
    let tmp_label = out.temp_path().display().to_string();
    let io_err = |e: io::Error| TransportError::io(&tmp_label, e);
    let mut builder = tar::Builder::new(BufWriter::with_capacity(1024 * 1024, out.file()));
    builder.sparse(false);

    for (name, bytes) in st.store.layout_files()? {
        let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        builder
            .append_data(&mut h, name, bytes.as_slice())
            .map_err(io_err)?;
    }
    let algs: BTreeSet<&str> = blobs.keys().map(Digest::algorithm).collect();
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    builder
        .append_data(&mut h, "blobs/", io::empty())
        .map_err(io_err)?;
    for alg in algs {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        builder
            .append_data(&mut h, format!("blobs/{alg}/"), io::empty())
            .map_err(io_err)?;
    }
    for (digest, source) in &blobs {
        let name = format!("blobs/{}/{}", digest.algorithm(), digest.hex());
        match source {
            BlobSource::Staged(path) => {
                let file =
                    fs::File::open(path).map_err(|e| TransportError::io(path.display(), e))?;
                let size = file
                    .metadata()
                    .map_err(|e| TransportError::io(path.display(), e))?
                    .len();
                let mut h = header(tar::EntryType::Regular, size, 0o644);
                let data = Exact {
                    inner: file,
                    remaining: size,
                };
                builder.append_data(&mut h, &name, data).map_err(io_err)?;
            }
            BlobSource::Archive(offset, size) => {
                let Some(base) = &st.base else {
                    continue;
                };
                let mut h = header(tar::EntryType::Regular, *size, 0o644);
                let data = Exact {
                    inner: RangeReader {
                        file: base.file.clone(),
                        pos: *offset,
                    },
                    remaining: *size,
                };
                builder.append_data(&mut h, &name, data).map_err(|e| {
                    TransportError::io(format!("{archive_label} (blob {digest})"), e)
                })?;
            }
        }
    }
    let writer = builder.into_inner().map_err(io_err)?;
    let file = writer.into_inner().map_err(|e| io_err(e.into_error()))?;
    if let Some(m) = &current {
        // Keep the old archive's permissions.
        file.set_permissions(m.permissions()).map_err(io_err)?;
    }
    out.commit()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use futures::StreamExt;

    use super::*;
    use crate::oci::ANNOTATION_REF_NAME;
    use crate::transport::layout::testing::{
        blob_desc, chunks, copy_fixture, digest, fixture, read_all,
    };

    /// Copy every blob of a layout directory and every `index.json` entry (as a root, with its name)
    /// into `dst`, the way the engine would: blobs first, roots last.
    async fn copy_layout(src_dir: &Path, dst: &dyn Transport) {
        let src = Store::new(src_dir);
        for f in fs::read_dir(src_dir.join("blobs/sha256")).unwrap() {
            let f = f.unwrap();
            let bytes = fs::read(f.path()).unwrap();
            let desc = blob_desc(&bytes);
            if !dst.has_blob(&desc.digest).await.unwrap() {
                let body = src.open_blob(&desc).await.unwrap();
                dst.put_blob(&desc, body).await.unwrap();
            }
        }
        for entry in src.index().await.unwrap().entries {
            let m = src
                .manifest(&Target::Digest(entry.digest.clone()))
                .await
                .unwrap()
                .unwrap();
            let tag = entry.annotation(ANNOTATION_REF_NAME).map(str::to_string);
            dst.put_manifest(&m, &PushAs::Root { tag }).await.unwrap();
        }
    }

    fn tar_names(path: &Path) -> Vec<String> {
        let mut archive = tar::Archive::new(fs::File::open(path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    fn dir_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A tar of `layout` where every file is stored once under `payload/` and listed at its
    /// layout path as a hard link to that copy (what `tar` makes of hard-linked files).
    fn tar_with_hard_links(layout: &Path, tar_path: &Path, dangling: bool) {
        let mut b = tar::Builder::new(fs::File::create(tar_path).unwrap());
        let mut names = vec!["oci-layout".to_string(), "index.json".to_string()];
        for f in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            names.push(format!("blobs/sha256/{name}"));
        }
        for (i, name) in names.iter().enumerate() {
            let bytes = fs::read(layout.join(name)).unwrap();
            let mut h = tar::Header::new_ustar();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("payload/{i}"), &bytes[..])
                .unwrap();
            let mut link = tar::Header::new_ustar();
            link.set_size(0);
            link.set_entry_type(tar::EntryType::Link);
            let target = if dangling && name == "index.json" {
                "payload/none".to_string()
            } else {
                format!("./payload/{i}")
            };
            b.append_link(&mut link, name, target).unwrap();
        }
        b.finish().unwrap();
    }

    #[tokio::test]
    async fn hard_links_are_read_as_the_file_they_link_to() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = fixture("notation-signed-artifact");
        let path = tmp.path().join("linked.tar");
        tar_with_hard_links(&layout, &path, false);
        let reader = ArchiveTransport::new(&path);
        let v1 = digest("sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9");
        let m = reader
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.digest, v1);
        for f in fs::read_dir(layout.join("blobs/sha256")).unwrap() {
            let bytes = fs::read(f.unwrap().path()).unwrap();
            let got = read_all(reader.get_blob(&blob_desc(&bytes)).await.unwrap()).await;
            assert_eq!(got, bytes);
        }

        let path = tmp.path().join("dangling.tar");
        tar_with_hard_links(&layout, &path, true);
        let err = ArchiveTransport::new(&path)
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("hard link index.json to payload/none, which is no file before it"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn pack_and_read_back_by_tag() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("images.tar");
        let archive = ArchiveTransport::new(&path);
        assert_eq!(
            archive.location(),
            format!("oci-archive:{}", path.display())
        );
        // A dry run against an archive that does not exist yet: absent, nothing created.
        assert!(
            archive
                .head_manifest(&Target::Tag("v1".into()))
                .await
                .unwrap()
                .is_none()
        );
        assert!(!archive.has_blob(&Digest::sha256(b"x")).await.unwrap());
        assert!(dir_names(tmp.path()).is_empty());

        copy_layout(&fixture("notation-signed-artifact"), &archive).await;
        // Before `finish`, reads see the staged content and the archive does not exist yet.
        let v1 = digest("sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9");
        assert_eq!(
            archive
                .head_manifest(&Target::Tag("v1".into()))
                .await
                .unwrap(),
            Some(v1.clone())
        );
        assert!(!path.exists());
        archive.finish().await.unwrap();
        assert_eq!(dir_names(tmp.path()), vec!["images.tar"]);

        let names = tar_names(&path);
        assert_eq!(&names[..2], &["oci-layout", "index.json"]);
        assert_eq!(names.len(), 2 + 2 + 3);
        let mut blobs = names[4..].to_vec();
        blobs.sort();
        assert_eq!(blobs, names[4..].to_vec());

        // A new reader (another process, in effect) finds everything.
        let reader = ArchiveTransport::new(&path);
        let m = reader
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.digest, v1);
        assert_eq!(m.media_type, crate::oci::OCI_MANIFEST);
        let original = fs::read(
            fixture("notation-signed-artifact")
                .join("blobs/sha256")
                .join(v1.hex()),
        )
        .unwrap();
        assert_eq!(m.bytes.to_vec(), original);
        assert_eq!(
            read_all(reader.get_blob(&m.descriptor()).await.unwrap()).await,
            original
        );
        let sig = digest("sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f");
        assert!(
            reader
                .get_manifest(&Target::Digest(sig.clone()))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            reader
                .head_manifest(&Target::Digest(sig))
                .await
                .unwrap()
                .map(|d| d.hex().len()),
            Some(64)
        );
        assert_eq!(reader.list_tags().await.unwrap().len(), 2);
        assert!(
            reader
                .get_manifest(&Target::Tag("nope".into()))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            reader
                .default_target()
                .unwrap_err()
                .to_string()
                .contains("has 3 images")
        );
        assert_eq!(reader.sparse_support().await, SparseSupport::Yes);
        let absent = blob_desc(b"absent");
        assert!(matches!(
            reader.get_blob(&absent).await,
            Err(TransportError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn reads_a_tar_made_by_another_tool() {
        // `tar -C layout -cf x.tar .` style: `./` prefixes and directory entries, blobs first.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("busybox.tar");
        let src = fixture("busybox-sparse-imgutil");
        let mut builder = tar::Builder::new(fs::File::create(&path).unwrap());
        builder
            .append_dir_all("./blobs", src.join("blobs"))
            .unwrap();
        builder
            .append_path_with_name(src.join("index.json"), "./index.json")
            .unwrap();
        builder
            .append_path_with_name(src.join("oci-layout"), "./oci-layout")
            .unwrap();
        builder.into_inner().unwrap();

        let archive = ArchiveTransport::new(&path);
        let target = archive.default_target().unwrap();
        let d = digest("sha256:f75f3d1a317fc82c793d567de94fc8df2bece37acd5f2bd364a0d91a0d1f3dab");
        assert_eq!(target, Target::Digest(d.clone()));
        let m = archive.get_manifest(&target).await.unwrap().unwrap();
        assert_eq!(m.media_type, crate::oci::DOCKER_MANIFEST);
        assert!(archive.has_blob(&d).await.unwrap());
    }

    #[tokio::test]
    async fn adding_an_image_keeps_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("airgap.tar");
        let first = ArchiveTransport::new(&path);
        copy_layout(&fixture("hello-world-containerd-export"), &first).await;
        first.finish().await.unwrap();
        drop(first);
        let before = fs::read(&path).unwrap();

        let second = ArchiveTransport::new(&path);
        copy_layout(&fixture("ggcr-nested-index"), &second).await;
        // Staged and archived content are both visible before `finish`.
        let hello =
            digest("sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af");
        assert!(second.has_blob(&hello).await.unwrap());
        assert_eq!(
            second
                .head_manifest(&Target::Tag("latest".into()))
                .await
                .unwrap(),
            Some(hello.clone())
        );
        assert!(
            second
                .get_manifest(&Target::Tag("3".into()))
                .await
                .unwrap()
                .is_some()
        );
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "the archive is untouched until finish"
        );
        // Blobs the archive already has are not staged again.
        let staged = dir_names(tmp.path())
            .into_iter()
            .find(|n| n.contains(".partial-"))
            .unwrap();
        let staged_blobs = dir_names(&tmp.path().join(staged).join("blobs/sha256"));
        assert_eq!(staged_blobs.len(), 4, "{staged_blobs:?}");
        second.finish().await.unwrap();
        assert_eq!(dir_names(tmp.path()), vec!["airgap.tar"]);

        let reader = ArchiveTransport::new(&path);
        let mut tags = reader.list_tags().await.unwrap();
        tags.sort();
        assert_eq!(tags, vec!["1", "2", "3", "4", "latest"]);
        for tag in ["latest", "1", "2", "3", "4"] {
            let m = reader
                .get_manifest(&Target::Tag(tag.into()))
                .await
                .unwrap()
                .unwrap();
            assert!(m.digest.matches(&m.bytes), "{tag}");
        }
        let m = reader
            .get_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.digest, hello);
        // 2 hello-world blobs + 4 ggcr blobs, once each.
        assert_eq!(
            tar_names(&path)
                .iter()
                .filter(|n| n.len() > 13 && n.starts_with("blobs/sha256/"))
                .count(),
            2 + 4
        );
    }

    #[tokio::test]
    async fn a_failed_copy_leaves_the_archive_and_no_staging() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.tar");
        let first = ArchiveTransport::new(&path);
        copy_layout(&fixture("busybox-sparse-imgutil"), &first).await;
        first.finish().await.unwrap();
        drop(first);
        let before = fs::read(&path).unwrap();

        let failing = ArchiveTransport::new(&path);
        let data = b"some layer".to_vec();
        failing
            .put_blob(&blob_desc(&data), chunks(vec![data.clone()]))
            .await
            .unwrap();
        let broken: BlobStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"some")),
            Err(TransportError::Http {
                method: "GET".into(),
                url: "https://registry.example/v2/library/x/blobs/sha256:00".into(),
                message: "connection reset".into(),
            }),
        ])
        .boxed();
        let other = blob_desc(b"some other layer");
        assert!(failing.put_blob(&other, broken).await.is_err());
        assert!(!failing.has_blob(&other.digest).await.unwrap());
        assert_eq!(
            dir_names(tmp.path()).len(),
            2,
            "the archive and its staging directory"
        );
        drop(failing);
        assert_eq!(dir_names(tmp.path()), vec!["a.tar"]);
        assert_eq!(fs::read(&path).unwrap(), before);

        // Copying what is there already stages nothing new, and `finish` leaves the file alone.
        let modified = fs::metadata(&path).unwrap().modified().unwrap();
        let again = ArchiveTransport::new(&path);
        let m = again
            .get_manifest(&again.default_target().unwrap())
            .await
            .unwrap()
            .unwrap();
        again.put_manifest(&m, &PushAs::Child).await.unwrap();
        again.finish().await.unwrap();
        assert_eq!(dir_names(tmp.path()), vec!["a.tar"]);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), modified);
    }

    #[tokio::test]
    async fn missing_or_bad_archives_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("nope.tar");
        let archive = ArchiveTransport::new(&path);
        let err = archive
            .get_manifest(&Target::Tag("v1".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Layout { .. }));
        let text = err.to_string();
        assert!(
            text.contains(&format!("{} does not exist", path.display())),
            "{text}"
        );
        assert!(
            archive
                .default_target()
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
        assert!(archive.list_tags().await.is_err());
        assert!(archive.finish().await.is_ok());
        assert!(dir_names(tmp.path()).is_empty());

        // A tar without oci-layout, and a file that is not a tar at all.
        let layout = copy_fixture("hello-world-containerd-export", tmp.path());
        let no_layout = tmp.path().join("no-layout.tar");
        let mut builder = tar::Builder::new(fs::File::create(&no_layout).unwrap());
        builder
            .append_path_with_name(layout.join("index.json"), "index.json")
            .unwrap();
        builder.into_inner().unwrap();
        let err = ArchiveTransport::new(&no_layout)
            .get_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("has no oci-layout entry"), "{err}");

        let not_tar = tmp.path().join("garbage.tar");
        fs::write(&not_tar, vec![b'x'; 2000]).unwrap();
        let err = ArchiveTransport::new(&not_tar)
            .get_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Layout { .. }), "{err}");

        // A corrupted blob inside an archive is a content error.
        let good = tmp.path().join("hello.tar");
        let writer = ArchiveTransport::new(&good);
        copy_layout(&layout, &writer).await;
        writer.finish().await.unwrap();
        let mut bytes = fs::read(&good).unwrap();
        // Flip one digit inside the hello-world index blob (it stays valid JSON, with other bytes).
        let needle = br#"{"manifests":[{"digest":"sha256:f"#;
        let at = bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .unwrap()
            + needle.len()
            - 1;
        bytes[at] = b'e';
        let bad = tmp.path().join("bad.tar");
        fs::write(&bad, &bytes).unwrap();
        let err = ArchiveTransport::new(&bad)
            .get_manifest(&Target::Tag("latest".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Content(_)), "{err}");
    }
}
