//! The `oci:` transport: an OCI image layout directory, read and written through its [`Store`].
//!
//! Asking whether something is present (`head_manifest`, `has_blob`) in a layout that does not exist
//! yet (a missing or empty directory) answers "absent", so a dry run into a new layout leaves no
//! trace; reading content from it is an error that says the layout does not exist.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::store::Store;
use crate::oci::{Descriptor, Digest, RawManifest};
use crate::reference::Target;
use crate::transport::{
    BlobState, BlobStream, OmittedBlob, PushAs, Result, SparseSupport, Transport,
};

/// An OCI image layout directory.
pub struct LayoutTransport {
    store: Store,
}

impl LayoutTransport {
    /// A layout at `path`. Nothing is read or created here.
    pub fn new(path: impl Into<PathBuf>) -> LayoutTransport {
        LayoutTransport {
            store: Store::new(path),
        }
    }

    pub fn path(&self) -> &Path {
        self.store.root()
    }

    /// What to read when the user named no image (`oci:PATH`): the only entry of `index.json`, by
    /// digest. With none or several, an error listing what there is.
    pub fn default_target(&self) -> Result<Target> {
        self.store.default_target()
    }
}

#[async_trait]
impl Transport for LayoutTransport {
    fn default_target(&self) -> Result<Option<Target>> {
        LayoutTransport::default_target(self).map(Some)
    }

    fn location(&self) -> String {
        self.store.location()
    }

    async fn omitted_blobs(&self) -> Result<Vec<OmittedBlob>> {
        self.store.read_omitted().await
    }

    async fn record_omitted(&self, blobs: &[OmittedBlob]) -> Result<bool> {
        self.store.write_omitted(blobs).await.map(|_| true)
    }

    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
        self.store.manifest(target).await
    }

    async fn head_manifest(&self, target: &Target) -> Result<Option<Digest>> {
        self.store.resolve(target).await
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        self.store.has_blob(digest).await
    }

    async fn blob_state(&self, digest: &Digest) -> Result<BlobState> {
        Ok(match self.store.blob_len(digest).await? {
            Some(size) => BlobState::Present { size: Some(size) },
            None => BlobState::Absent,
        })
    }

    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        self.store.open_blob(desc).await
    }

    async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()> {
        self.store.put_blob(desc, body).await
    }

    async fn put_manifest(&self, manifest: &RawManifest, push_as: &PushAs) -> Result<()> {
        self.store.put_manifest(manifest, push_as).await
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        Ok(self.store.index().await?.ref_names())
    }

    async fn sparse_support(&self) -> SparseSupport {
        SparseSupport::Yes
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use bytes::Bytes;
    use futures::StreamExt;
    use serde_json::Value;

    use super::*;
    use crate::oci::{ANNOTATION_REF_NAME, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
    use crate::transport::TransportError;
    use crate::transport::layout::store::{CHUNK, NEW_OCI_LAYOUT};
    use crate::transport::layout::testing::{
        blob_desc, chunks, digest, fixture, manifest, names_in, read_all,
    };

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
        let index = layout.store.index().await.unwrap();
        assert_eq!(index.entries.len(), 2);
        assert_eq!(index.entries[1].annotations, None);
        // A child is stored by digest only.
        let child = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
        layout.put_manifest(&child, &PushAs::Child).await.unwrap();
        assert_eq!(layout.store.index().await.unwrap().entries.len(), 2);
        let c = layout
            .get_manifest(&Target::Digest(child.digest.clone()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.media_type, OCI_INDEX);
    }
}
