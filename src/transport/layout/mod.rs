//! OCI image layouts on disk: the `oci:` and `oci-archive:` transports.
//!
//! An OCI image layout (image-spec `image-layout.md`) is a directory holding `oci-layout` (the layout
//! version), `index.json` (an image index listing the images stored there, each named by an
//! `org.opencontainers.image.ref.name` annotation or untagged) and `blobs/<alg>/<hex>` (every
//! manifest, config and layer, as a file named by its digest). An `oci-archive:` is a tar of such a
//! directory, to move images as one file.
//!
//! - `store` owns a layout directory: paths, reading with size caps and verification, atomic
//!   writes, `index.json` updates, the lock file `mirror sync` holds. Nothing else here touches a
//!   layout's files.
//! - `dir`: [`LayoutTransport`] (`oci:`), a thin [`Transport`](super::Transport) over a store.
//! - `archive`: [`ArchiveTransport`] (`oci-archive:`). Reading scans the tar headers once and
//!   streams blobs from their byte ranges, never unpacking; writing stages the new content in a
//!   store next to the archive and packs the result into a new tar renamed over the old one.
//!
//! Atomicity: an interrupted copy never leaves a half-written file under a final name. Every file is
//! written to a temporary name in the same directory, fsynced, and only then renamed into place (and
//! the directory fsynced), so a reader sees the old file or the complete new one, never a prefix. A
//! blob is committed only when its stream ended without error and hashed to its digest; `index.json`
//! (which is what names an image) is rewritten last, the same way; an archive is replaced whole.
//! Nothing is created before the first write, so a dry run into a new layout leaves no trace.

mod archive;
mod dir;
mod store;

pub use archive::ArchiveTransport;
pub use dir::LayoutTransport;
pub use store::SYNC_LOCK_FILE;

#[cfg(test)]
mod testing;
