//! The store's rules, on the real-world fixture layouts: verification, refusing broken layouts,
//! retagging, atomic blob writes and concurrent index updates.

use std::fs;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use super::*;
use crate::oci::{ANNOTATION_REF_NAME, OCI_INDEX};
use crate::transport::layout::testing::{
    blob_desc, chunks, copy_fixture, digest, manifest, names_in,
};

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
    let store = Store::new(&root);
    for target in [Target::Tag("latest".into()), Target::Digest(d.clone())] {
        let err = store.manifest(&target).await.unwrap_err();
        assert!(
            matches!(err, TransportError::Content(ContentError::Digest(_))),
            "{err}"
        );
    }
    // A size that disagrees with index.json is caught too.
    bytes.push(b'\n');
    fs::write(&path, &bytes).unwrap();
    let err = store
        .manifest(&Target::Tag("latest".into()))
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
    let store = Store::new(&root);
    let err = store.manifest(&Target::Tag("v1".into())).await.unwrap_err();
    let TransportError::Layout { message, .. } = &err else {
        panic!("{err}");
    };
    let expect = format!(
        "{}/oci-layout is missing: not an OCI image layout",
        root.display()
    );
    assert!(message.contains(&expect), "{message}");
    // Not empty and not a layout: HEAD is an error too, and nothing is written into it.
    assert!(store.resolve(&Target::Tag("v1".into())).await.is_err());

    fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    fs::write(root.join("index.json"), b"{not json").unwrap();
    let err = store
        .manifest(&Target::Tag("v1".into()))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("{}/index.json is not valid JSON", root.display())),
        "{err}"
    );
    let m = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
    assert!(
        store
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
    let err = store.index().await.unwrap_err().to_string();
    assert!(err.contains("index.json is missing"), "{err}");

    // A directory with other files in it is not turned into a store.
    let other = tmp.path().join("home");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"hi").unwrap();
    let store = Store::new(&other);
    let err = store
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
    let store = Store::new(&root);
    for r in [
        store.resolve(&Target::Tag("v1".into())).await.map(|_| ()),
        store.manifest(&Target::Tag("v1".into())).await.map(|_| ()),
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
    let store = Store::new(&root);
    let a = manifest(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"n":"a"}}"#,
    );
    let b = manifest(
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{"n":"b"}}"#,
    );
    for m in [&a, &b, &b] {
        store
            .put_manifest(
                m,
                &PushAs::Root {
                    tag: Some("v1".into()),
                },
            )
            .await
            .unwrap();
    }
    let index = store.index().await.unwrap();
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
        store.resolve(&Target::Tag("v1".into())).await.unwrap(),
        Some(b.digest.clone())
    );
    // Top-level fields are kept as they were (this index.json has no mediaType).
    let doc: Value = serde_json::from_slice(&fs::read(root.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        doc.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["schemaVersion", "manifests"]
    );
}

#[tokio::test]
async fn failed_streams_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layout");
    let store = Store::new(&root);
    let data = b"hello blob".to_vec();
    let desc = blob_desc(&data);
    let broken: BlobStream = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"hello")),
        Err(TransportError::Http {
            method: "GET".into(),
            url: "https://registry.example/v2/library/x/blobs/sha256:00".into(),
            message: "connection reset".into(),
        }),
    ])
    .boxed();
    let err = store.put_blob(&desc, broken).await.unwrap_err();
    assert!(err.to_string().contains("connection reset"), "{err}");
    assert!(!store.has_blob(&desc.digest).await.unwrap());
    assert!(names_in(&root.join("blobs/sha256")).is_empty());

    // Wrong bytes, short bytes and long bytes are refused without committing anything.
    for parts in [
        vec![b"hello blub".to_vec()],
        vec![b"hello".to_vec()],
        vec![b"hello blob!".to_vec()],
    ] {
        let err = store.put_blob(&desc, chunks(parts)).await.unwrap_err();
        assert!(matches!(err, TransportError::Content(_)), "{err}");
    }
    assert!(names_in(&root.join("blobs/sha256")).is_empty());
    // A manifest whose bytes do not match its digest is refused.
    let mut m = manifest(r#"{"schemaVersion":2,"manifests":[]}"#);
    m.digest = Digest::sha256(b"something else");
    assert!(matches!(
        store.put_manifest(&m, &PushAs::Child).await,
        Err(TransportError::Content(ContentError::Digest(_)))
    ));
    assert!(names_in(&root.join("blobs/sha256")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Store::new(tmp.path().join("layout")));
    let mut tasks = Vec::new();
    for i in 0..16u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let data = format!("blob number {i}").into_bytes();
            let desc = blob_desc(&data);
            store.put_blob(&desc, chunks(vec![data])).await.unwrap();
            let m = manifest(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"annotations":{{"i":"{i}"}}}}"#
            ));
            store
                .put_manifest(&m, &PushAs::Root { tag: Some(format!("t{i}")) })
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut tags = store.index().await.unwrap().ref_names();
    tags.sort();
    let mut expect: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
    expect.sort();
    assert_eq!(tags, expect);
    assert_eq!(names_in(&store.root().join("blobs/sha256")).len(), 32);
}

/// Several images of a `sync` in flight write one layout, each through its own store: every one
/// of them is listed in the end (the directory lock), and creating the layout races with nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_with_their_own_stores_lose_no_index_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layout");
    let mut tasks = Vec::new();
    for i in 0..24u32 {
        let root = root.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::new(&root);
            let m = manifest(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[],"annotations":{{"i":"{i}"}}}}"#
            ));
            store
                .put_manifest(&m, &PushAs::Root { tag: Some(format!("repo{i}:v1")) })
                .await
                .unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let tags = Store::new(&root).index().await.unwrap().ref_names();
    assert_eq!(tags.len(), 24, "{tags:?}");
}
