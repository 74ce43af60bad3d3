//! The file primitives under the store: atomic files (a temporary name, fsync, rename, fsync of the
//! directory), verified blob writes, positional range reads streamed in chunks, capped reads of
//! files that should be small, and running blocking file work off the runtime's threads. They know
//! nothing of layouts; the archive uses them for its tar files too.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncWriteExt as _;

use super::{CHUNK, layout_err};
use crate::oci::{ContentError, Descriptor};
use crate::transport::{BlobStream, Result, TransportError};

/// "Not there": the file, or a directory on its path, is missing.
pub(in crate::transport::layout) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

/// Read what should be a small file (`label` names it) whole; larger than `limit`: an error.
pub(in crate::transport::layout) fn read_capped(
    reader: impl io::Read,
    limit: u64,
    label: &str,
    location: &str,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TransportError::io(label, e))?;
    if bytes.len() as u64 > limit {
        return Err(layout_err(
            location,
            format!(
                "{label} is larger than {limit} bytes, far more than such a file can be (is it the right file?)"
            ),
        ));
    }
    Ok(bytes)
}

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
    let mut out = AtomicFile::create(dir.join(temp_name(name)), dir.join(name))?;
    let tmp = out.temp_path().display().to_string();
    out.file()
        .write_all(bytes)
        .map_err(|e| TransportError::io(tmp, e))?;
    out.commit()
}

/// A file written under a temporary name next to its target and renamed over it once complete:
/// readers see the old file or the whole new one. Removed if dropped before [`AtomicFile::commit`]
/// (an error, or a cancelled task).
pub(in crate::transport::layout) struct AtomicFile {
    file: fs::File,
    tmp: PathBuf,
    target: PathBuf,
    guard: TempGuard,
}

impl AtomicFile {
    /// Create `tmp` (which must be in the directory of `target`, so that the rename is atomic).
    pub(in crate::transport::layout) fn create(
        tmp: PathBuf,
        target: PathBuf,
    ) -> Result<AtomicFile> {
        let guard = TempGuard::new(tmp.clone());
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| TransportError::io(tmp.display(), e))?;
        Ok(AtomicFile {
            file,
            tmp,
            target,
            guard,
        })
    }

    pub(in crate::transport::layout) fn file(&mut self) -> &mut fs::File {
        &mut self.file
    }

    pub(in crate::transport::layout) fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsync the file, rename it over the target, fsync the directory.
    pub(in crate::transport::layout) fn commit(self) -> Result<()> {
        let AtomicFile {
            file,
            tmp,
            target,
            guard,
        } = self;
        file.sync_all()
            .map_err(|e| TransportError::io(tmp.display(), e))?;
        drop(file);
        fs::rename(&tmp, &target).map_err(|e| TransportError::io(target.display(), e))?;
        guard.disarm();
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        sync_dir(dir);
        Ok(())
    }
}

/// Make a rename in `dir` durable. Best effort: some file systems refuse to fsync a directory.
pub(super) fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Write a blob stream to `tmp`, checking it against `desc` (size and digest) on the way; the file is
/// fsynced before this returns. The caller renames it into place, or removes it on error.
pub(super) async fn write_stream(
    tmp: &Path,
    desc: &Descriptor,
    mut body: BlobStream,
) -> Result<()> {
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

#[cfg(unix)]
pub(in crate::transport::layout) fn read_at(
    file: &fs::File,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
pub(in crate::transport::layout) fn read_at(
    file: &fs::File,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// Fill `buf` from `offset` of `file` (positional: the handle's own position is not used).
pub(super) fn read_exact_at(
    file: &fs::File,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(file, buf, offset) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file ended before its recorded size (was it truncated?)",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Stream `size` bytes from `offset` of `file` in chunks of [`CHUNK`] (a layout's blob file, or a
/// blob's range of an archive); a file that ends early is an error.
pub(in crate::transport::layout) fn range_stream(
    file: Arc<fs::File>,
    offset: u64,
    size: u64,
    label: String,
) -> BlobStream {
    futures::stream::try_unfold(
        (file, offset, size, label),
        |(file, pos, remaining, label)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining).unwrap_or(CHUNK).min(CHUNK);
            let reader = file.clone();
            let path = label.clone();
            let buf = blocking(&label, move || {
                let mut buf = vec![0u8; want];
                read_exact_at(&reader, &mut buf, pos).map_err(|e| TransportError::io(&path, e))?;
                Ok(buf)
            })
            .await?;
            Ok(Some((
                Bytes::from(buf),
                (file, pos + want as u64, remaining - want as u64, label),
            )))
        },
    )
    .boxed()
}

/// Run blocking file work on `path` off the runtime's threads. The task failing (a panic, or the
/// runtime shutting down) is an I/O error on `path`.
pub(in crate::transport::layout) async fn blocking<T: Send + 'static>(
    path: impl std::fmt::Display,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::Io {
            path: path.to_string(),
            message: format!("a background file task failed: {e}"),
        })?
}
