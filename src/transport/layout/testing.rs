//! Fixtures and small builders shared by the layout and archive tests.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::StreamExt;

use crate::oci::{Descriptor, Digest, RawManifest};
use crate::transport::BlobStream;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/real-world/layouts"
);

pub(super) fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// A writable copy of a fixture layout.
pub(super) fn copy_fixture(name: &str, into: &Path) -> PathBuf {
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

pub(super) fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

pub(super) fn chunks(parts: Vec<Vec<u8>>) -> BlobStream {
    futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p)))).boxed()
}

pub(super) fn blob_desc(bytes: &[u8]) -> Descriptor {
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

pub(super) async fn read_all(stream: BlobStream) -> Vec<u8> {
    let parts: Vec<Bytes> = stream.map(|r| r.unwrap()).collect().await;
    parts.concat()
}

pub(super) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

pub(super) fn manifest(json: &str) -> RawManifest {
    RawManifest::new(Bytes::from(json.to_string()), "")
}
