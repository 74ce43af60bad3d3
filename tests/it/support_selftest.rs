//! Self-tests of the test support: the harness must be right before the tests built on it.

use crate::support::http::{self, ACCEPT_ALL_MANIFESTS, header};
use crate::support::imagegen::{EntryKind, parse_platform};
use crate::support::*;
use serde_json::Value;

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn error_codes(body: &[u8]) -> Vec<(String, String)> {
    json(body)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["code"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn support_registry_starts_and_answers() {
    let reg = Registry::start();
    let (st, hs, _) = reg.http("GET", "/v2/", &[], &[]);
    assert_eq!(st, 200);
    assert_eq!(
        header(&hs, "docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert!(reg.storage_dir().is_dir());
    assert!(reg.addr().starts_with("127.0.0.1:"));
    assert_eq!(reg.url("a/b:c"), format!("docker://{}/a/b:c", reg.addr()));
    assert!(reg.tags("nothing/here").is_empty());
    assert!(!reg.has_blob("nothing/here", &digest_of(b"x")));
    assert!(reg.manifest_bytes("nothing/here", "latest").is_none());
    // Two at once get different ports.
    let other = Registry::start();
    assert_ne!(reg.addr(), other.addr());
}

#[test]
fn support_registry_with_htpasswd_requires_credentials() {
    let reg = Registry::start_with_htpasswd("alice", "s3cret");
    let (st, hs, _) = http::request(&reg.addr(), "GET", "/v2/", &[], &[]);
    assert_eq!(st, 401);
    assert!(
        header(&hs, "www-authenticate")
            .unwrap()
            .starts_with("Basic")
    );
    let bad = Client::with_basic_auth(reg.addr(), "alice", "wrong");
    assert_eq!(bad.http("GET", "/v2/", &[], &[]).0, 401);
    assert_eq!(reg.http("GET", "/v2/", &[], &[]).0, 200);
    assert_eq!(reg.creds_arg().as_deref(), Some("alice:s3cret"));
    let img = generate(&ImageSpec {
        platforms: vec!["linux/amd64"],
        single: true,
        ..Default::default()
    });
    reg.push_image(&img, "auth/img:v1");
    assert_eq!(reg.manifest_bytes("auth/img", "v1").unwrap(), img.index);
}

#[test]
fn support_generator_is_deterministic_and_digests_are_right() {
    let spec = ImageSpec::default();
    let a = generate(&spec);
    let b = generate(&spec);
    assert_eq!(a.index, b.index);
    assert_eq!(a.index_digest, b.index_digest);
    assert_eq!(a.blobs, b.blobs);
    assert_eq!(a.index_digest, digest_of(&a.index));
    assert_eq!(a.index_media_type, MT_OCI_INDEX);
    assert!(a.index.starts_with(b"{\n  \"schemaVersion\": 2,"));
    for (d, bytes) in &a.blobs {
        assert_eq!(*d, digest_of(bytes));
    }

    let index = json(&a.index);
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 10, "5 platforms + 5 attestations");
    assert_eq!(a.entries.len(), 10);
    for (desc, e) in listed.iter().zip(&a.entries) {
        assert_eq!(desc["digest"], e.digest.as_str());
        assert_eq!(desc["size"], e.size);
        assert_eq!(e.digest, digest_of(&e.manifest));
        assert_eq!(e.size as usize, e.manifest.len());
        let m = json(&e.manifest);
        let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
        for l in m["layers"].as_array().unwrap() {
            blobs.push(l["digest"].as_str().unwrap().to_string());
            assert_eq!(l["size"], a.blobs[l["digest"].as_str().unwrap()].len());
        }
        assert_eq!(blobs, e.blobs);
        match &e.kind {
            EntryKind::Platform => {
                let p = parse_platform(e.platform.as_deref().unwrap());
                assert_eq!(desc["platform"]["os"], p.os);
                assert_eq!(desc["platform"]["architecture"], p.arch);
                assert_eq!(desc["platform"]["variant"].as_str(), p.variant);
                let cfg = json(&a.blobs[e.config_digest()]);
                assert_eq!(cfg["architecture"], p.arch);
                assert_eq!(cfg["os"], p.os);
                assert_eq!(cfg["variant"].as_str(), p.variant);
                let diff_ids: Vec<&str> = cfg["rootfs"]["diff_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert_eq!(
                    diff_ids,
                    e.blobs[1..].iter().map(String::as_str).collect::<Vec<_>>()
                );
                assert_eq!(m["layers"].as_array().unwrap().len(), 3, "base + 2");
                // Layers are real tars with one file of the given size.
                for (i, l) in e.blobs[1..].iter().enumerate() {
                    let mut ar = tar::Archive::new(a.blobs[l].as_slice());
                    let files: Vec<u64> = ar
                        .entries()
                        .unwrap()
                        .map(|f| f.unwrap().header().size().unwrap())
                        .collect();
                    let want = if i == 0 {
                        spec.base_size
                    } else {
                        spec.layer_size
                    };
                    assert_eq!(files, vec![want as u64]);
                }
            }
            EntryKind::Attestation { of } => {
                assert_eq!(desc["platform"]["os"], "unknown");
                assert_eq!(desc["platform"]["architecture"], "unknown");
                assert_eq!(
                    desc["annotations"]["vnd.docker.reference.type"],
                    "attestation-manifest"
                );
                assert_eq!(
                    desc["annotations"]["vnd.docker.reference.digest"],
                    of.as_str()
                );
                assert!(a.entry(of).is_some_and(|p| p.kind == EntryKind::Platform));
                assert_eq!(m["layers"][0]["mediaType"], MT_INTOTO);
                assert_eq!(
                    m["layers"][0]["annotations"]["in-toto.io/predicate-type"],
                    "https://spdx.dev/Document"
                );
                let statement = json(&a.blobs[&e.blobs[1]]);
                assert_eq!(
                    format!(
                        "sha256:{}",
                        statement["subject"][0]["digest"]["sha256"]
                            .as_str()
                            .unwrap()
                    ),
                    *of
                );
            }
        }
    }

    // The base layer is shared; platform layers are not.
    let amd = a.platform_entry("linux/amd64");
    let arm = a.platform_entry("linux/arm/v7");
    assert_eq!(amd.blobs[1], arm.blobs[1]);
    assert_ne!(amd.blobs[2], arm.blobs[2]);
    let base = a.blobs[&amd.blobs[1]].len() as u64;
    let per_platform: u64 = amd
        .blobs
        .iter()
        .map(|d| a.blobs[d].len() as u64)
        .sum::<u64>()
        - base;
    let arm_only: u64 = arm
        .blobs
        .iter()
        .map(|d| a.blobs[d].len() as u64)
        .sum::<u64>()
        - base;
    assert_eq!(
        a.unique_blob_bytes(&[&amd.digest, &arm.digest]),
        base + per_platform + arm_only
    );
    assert_eq!(a.unique_blob_count(&[&amd.digest, &arm.digest]), 1 + 2 * 3);
    let with_att = a.digests_for(&["linux/amd64"], true);
    assert_eq!(with_att.len(), 2);
    assert_eq!(a.attestation_of(&amd.digest).unwrap().digest, with_att[1]);

    // Another seed: another image with the same base; another base_seed: another base.
    let c = generate(&ImageSpec {
        seed: 7,
        ..spec.clone()
    });
    assert_ne!(c.index_digest, a.index_digest);
    assert_eq!(c.platform_entry("linux/amd64").blobs[1], amd.blobs[1]);
    assert_ne!(c.platform_entry("linux/amd64").blobs[2], amd.blobs[2]);
    let d = generate(&ImageSpec {
        base_seed: 1,
        ..spec.clone()
    });
    assert_ne!(d.platform_entry("linux/amd64").blobs[1], amd.blobs[1]);

    // Docker: manifest list + schema2, no attestations.
    let dk = generate(&ImageSpec {
        docker: true,
        ..spec.clone()
    });
    assert_eq!(dk.index_media_type, MT_DOCKER_LIST);
    assert_eq!(json(&dk.index)["mediaType"], MT_DOCKER_LIST);
    assert_eq!(dk.entries.len(), 5);
    for e in &dk.entries {
        assert_eq!(e.media_type, MT_DOCKER_MANIFEST);
        let m = json(&e.manifest);
        assert_eq!(m["config"]["mediaType"], MT_DOCKER_CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], MT_DOCKER_LAYER);
    }

    // Single: the manifest itself.
    let single = generate(&ImageSpec {
        platforms: vec!["linux/arm64"],
        single: true,
        ..spec.clone()
    });
    assert!(single.is_single());
    assert_eq!(single.entries.len(), 1);
    assert_eq!(single.index, single.entries[0].manifest);
    assert_eq!(single.index_media_type, MT_OCI_MANIFEST);
    assert_eq!(single.index_digest, single.entries[0].digest);
}

#[test]
fn support_write_layout_and_tree_hash() {
    let img = generate(&ImageSpec::default());
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    img.write_layout(&layout, "v1");
    let before = tree_hash(&layout);
    assert_eq!(before, tree_hash(&layout));
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    assert_eq!(index["manifests"][0]["digest"], img.index_digest.as_str());
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "v1"
    );
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    assert_eq!(std::fs::read(blob(&img.index_digest)).unwrap(), img.index);
    let files = list_files(&layout);
    assert_eq!(files.len(), 2 + 1 + img.entries.len() + img.blobs.len());
    // A second image in the same layout: both named, the first untouched.
    let other = generate(&ImageSpec {
        seed: 3,
        ..Default::default()
    });
    other.write_layout(&layout, "v2");
    let index = json(&std::fs::read(layout.join("index.json")).unwrap());
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert_ne!(before, tree_hash(&layout));
    // tree_hash sees a one-byte change.
    let h = tree_hash(&layout);
    let p = blob(&img.index_digest);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&p, bytes).unwrap();
    assert_ne!(h, tree_hash(&layout));
}

#[test]
fn support_umoci_accepts_written_layout() {
    require_tool("umoci", "umoci");
    let img = generate(&ImageSpec {
        platforms: vec!["linux/amd64"],
        single: true,
        layer_size: 10_000,
        base_size: 20_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    img.write_layout(dir.path(), "single");
    assert_eq!(umoci::tags(dir.path()), vec!["single".to_string()]);
    let unpacked = umoci::unpack(dir.path(), "single");
    let rootfs = umoci::bundle_dir(&unpacked).join("rootfs");
    let base = std::fs::read(rootfs.join("base-0.bin")).unwrap();
    assert_eq!(base.len(), 20_000);
    let l1 = std::fs::read(rootfs.join("layer-linux-amd64-1.bin")).unwrap();
    assert_eq!(l1.len(), 10_000);
    // Content is what the generator meant (deterministic pseudo-random bytes).
    assert_eq!(base, imagegen::pseudo_random("base/0/20000", 20_000));
}

#[test]
fn support_skopeo_push_keeps_exact_bytes() {
    let reg = Registry::start();
    for (repo, spec) in [
        ("oci/img", ImageSpec::default()),
        (
            "docker/img",
            ImageSpec {
                docker: true,
                platforms: vec!["linux/amd64", "linux/arm64"],
                ..Default::default()
            },
        ),
    ] {
        let img = generate(&spec);
        skopeo::push_image(&img, &reg, &format!("{repo}:v1"));
        let (mt, bytes) = reg.get_manifest(repo, "v1").unwrap();
        assert_eq!(
            bytes, img.index,
            "{repo}: registry serves other index bytes"
        );
        assert_eq!(mt, img.index_media_type);
        let (_, hs, _) = reg.http(
            "HEAD",
            &format!("/v2/{repo}/manifests/v1"),
            &[("Accept", ACCEPT_ALL_MANIFESTS)],
            &[],
        );
        assert_eq!(
            header(&hs, "docker-content-digest"),
            Some(img.index_digest.as_str())
        );
        for e in &img.entries {
            assert_eq!(reg.manifest_bytes(repo, &e.digest).unwrap(), e.manifest);
            for b in &e.blobs {
                assert!(reg.has_blob(repo, b), "{repo}: blob {b} missing");
            }
        }
        let raw = skopeo::inspect_raw(&reg.url(&format!("{repo}:v1")), true);
        assert_eq!(raw, img.index);
        assert_eq!(reg.tags(repo), vec!["v1".to_string()]);
    }
}

#[test]
fn support_http_push_keeps_exact_bytes() {
    let reg = Registry::start();
    let img = generate(&ImageSpec::default());
    reg.push_image(&img, "http/img:v1");
    assert_eq!(reg.manifest_bytes("http/img", "v1").unwrap(), img.index);
    assert_eq!(
        reg.manifest_bytes("http/img", &img.index_digest).unwrap(),
        img.index
    );
    for e in &img.entries {
        assert!(reg.has_manifest("http/img", &e.digest));
        for b in &e.blobs {
            assert!(reg.has_blob("http/img", b));
        }
    }
    // Repositories are separate in the real registry too.
    assert!(!reg.has_blob("other/repo", &img.entries[0].blobs[0]));
    let single = generate(&ImageSpec {
        platforms: vec!["linux/s390x"],
        single: true,
        ..Default::default()
    });
    reg.push_image(&single, "http/single:latest");
    assert_eq!(
        skopeo::inspect_raw(&reg.url("http/single:latest"), true),
        single.index
    );
}

#[test]
fn support_sparse_index_accepted_by_double_refused_by_real_registry() {
    let img = generate(&ImageSpec::default());
    let keep = img.digests_for(&["linux/amd64", "linux/arm64"], true);
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    let missing: Vec<String> = img
        .all_digests()
        .into_iter()
        .filter(|d| !keep.contains(&d.as_str()))
        .collect();
    assert_eq!(missing.len(), 6);

    let reg = Registry::start();
    reg.push_entries(&img, "sparse/img", &keep);
    let (st, _, body) = reg.put_manifest("sparse/img", "v1", &img.index_media_type, &img.index);
    assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
    let mut errs = error_codes(&body);
    errs.sort();
    let mut want: Vec<(String, String)> = missing
        .iter()
        .map(|d| ("MANIFEST_BLOB_UNKNOWN".to_string(), d.clone()))
        .collect();
    want.sort();
    assert_eq!(errs, want);
    assert!(reg.tags("sparse/img").is_empty());

    let sparse = SparseRegistry::start();
    sparse.push_entries(&img, "sparse/img", &keep);
    let (st, hs, body) = sparse.put_manifest("sparse/img", "v1", &img.index_media_type, &img.index);
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        header(&hs, "docker-content-digest"),
        Some(img.index_digest.as_str())
    );
    assert_eq!(
        sparse.manifest("sparse/img", "v1"),
        Some((img.index_media_type.clone(), img.index.clone()))
    );
    let (mt, bytes) = sparse
        .get_manifest("sparse/img", &img.index_digest)
        .unwrap();
    assert_eq!((mt.as_str(), bytes), (MT_OCI_INDEX, img.index.clone()));
    for d in &missing {
        assert!(!sparse.has_manifest("sparse/img", d));
    }
    assert_eq!(sparse.tags("sparse/img"), vec!["v1".to_string()]);

    // Configured to refuse (like Nexus), it lists every missing child.
    let nexus = SparseRegistry::start_with(SparseOptions {
        reject_sparse_with: Some("BLOB_UNKNOWN"),
        ..Default::default()
    });
    nexus.push_entries(&img, "n/img", &keep);
    let (st, _, body) = nexus.put_manifest("n/img", "v1", &img.index_media_type, &img.index);
    assert_eq!(st, 400);
    assert_eq!(error_codes(&body).len(), 6);
    assert!(error_codes(&body).iter().all(|(c, _)| c == "BLOB_UNKNOWN"));
    assert!(nexus.manifest("n/img", "v1").is_none());
}

#[test]
fn support_image_manifest_with_missing_blobs_is_refused_by_both() {
    let img = generate(&ImageSpec {
        platforms: vec!["linux/amd64"],
        single: true,
        ..Default::default()
    });
    let e = &img.entries[0];
    let reg = Registry::start();
    let sparse = SparseRegistry::start();
    let clients: [&Client; 2] = [&reg, &sparse];
    for c in clients {
        // Only the config present: the layers are reported missing.
        c.upload_blob("m/img", &img.blobs[e.config_digest()]);
        let (st, _, body) = c.put_manifest("m/img", "v1", &e.media_type, &e.manifest);
        assert_eq!(st, 400, "{}", String::from_utf8_lossy(&body));
        let errs = error_codes(&body);
        assert!(!errs.is_empty());
        for (code, detail) in &errs {
            assert_eq!(code, "MANIFEST_BLOB_UNKNOWN");
            assert!(e.blobs[1..].contains(detail), "{detail}");
        }
        assert!(!c.has_manifest("m/img", &e.digest));
        // With every blob, it is accepted.
        c.push_image(&img, "m/img:v1");
        assert_eq!(c.manifest_bytes("m/img", "v1").unwrap(), img.index);
    }
}

#[test]
fn support_sparse_registry_protocol() {
    let sparse = SparseRegistry::start_with(SparseOptions {
        announce_sparse: true,
        ..Default::default()
    });
    let (st, hs, _) = sparse.http("GET", "/v2/", &[], &[]);
    assert_eq!(st, 200);
    assert_eq!(header(&hs, "x-sparse-manifest-support"), Some("true"));
    let plain = SparseRegistry::start();
    let (_, hs, _) = plain.http("GET", "/v2/", &[], &[]);
    assert_eq!(header(&hs, "x-sparse-manifest-support"), None);

    // Chunked upload: POST, PATCH, PATCH, PUT with the last part.
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let digest = digest_of(&data);
    let (st, hs, _) = sparse.http("POST", "/v2/a/b/blobs/uploads/", &[], &[]);
    assert_eq!(st, 202);
    let loc = header(&hs, "location").unwrap().to_string();
    assert!(loc.starts_with("/v2/a/b/blobs/uploads/"), "{loc}");
    assert_eq!(sparse.http("PATCH", &loc, &[], &data[..4000]).0, 202);
    let (st, hs, _) = sparse.http("PATCH", &loc, &[], &data[4000..9000]);
    assert_eq!(st, 202);
    assert_eq!(header(&hs, "range"), Some("0-8999"));
    let (st, hs, _) = sparse.http("PUT", &format!("{loc}?digest={digest}"), &[], &data[9000..]);
    assert_eq!(st, 201);
    assert_eq!(header(&hs, "docker-content-digest"), Some(digest.as_str()));
    assert!(sparse.has_blob("a/b", &digest));
    let (st, hs, body) = sparse.http("HEAD", &format!("/v2/a/b/blobs/{digest}"), &[], &[]);
    assert_eq!(st, 200);
    assert_eq!(header(&hs, "content-length"), Some("10000"));
    assert!(body.is_empty());
    assert_eq!(
        sparse
            .http("GET", &format!("/v2/a/b/blobs/{digest}"), &[], &[])
            .2,
        data
    );

    // A wrong digest is refused.
    let (_, hs, _) = sparse.http("POST", "/v2/a/b/blobs/uploads/", &[], &[]);
    let loc = header(&hs, "location").unwrap().to_string();
    let (st, _, body) = sparse.http(
        "PUT",
        &format!("{loc}?digest={}", digest_of(b"other")),
        &[],
        b"data",
    );
    assert_eq!(st, 400);
    assert_eq!(error_codes(&body)[0].0, "DIGEST_INVALID");

    // Repositories are separate; mount works from a repo that has the blob only.
    assert!(!sparse.has_blob("c", &digest));
    assert!(!Client::has_blob(&sparse, "c", &digest));
    let (st, _, _) = sparse.http(
        "POST",
        &format!("/v2/c/blobs/uploads/?mount={digest}&from=nowhere"),
        &[],
        &[],
    );
    assert_eq!(st, 202);
    let (st, hs, _) = sparse.http(
        "POST",
        &format!("/v2/c/blobs/uploads/?mount={digest}&from=a/b"),
        &[],
        &[],
    );
    assert_eq!(st, 201);
    assert_eq!(
        header(&hs, "location"),
        Some(format!("/v2/c/blobs/{digest}").as_str())
    );
    assert!(Client::has_blob(&sparse, "c", &digest));

    // Requests are recorded, with the query.
    let reqs = sparse.requests();
    assert!(reqs.contains(&("PATCH".to_string(), loc_prefix(&reqs))));
    assert!(
        reqs.iter()
            .any(|(m, p)| m == "POST" && p.ends_with("&from=a/b"))
    );
    sparse.clear_requests();
    assert!(sparse.requests().is_empty());
    sparse.has_blob("c", &digest); // in-memory: not a request
    assert!(sparse.requests().is_empty());
    Client::has_blob(&sparse, "c", &digest);
    assert_eq!(
        sparse.requests(),
        vec![("HEAD".to_string(), format!("/v2/c/blobs/{digest}"))]
    );

    // Tags paginate with Link.
    let img = generate(&ImageSpec {
        platforms: vec!["linux/amd64"],
        single: true,
        layer_size: 100,
        base_size: 0,
        ..Default::default()
    });
    for t in ["t1", "t2", "t3"] {
        sparse.push_image(&img, &format!("tags/img:{t}"));
    }
    let (st, hs, body) = sparse.http("GET", "/v2/tags/img/tags/list?n=2", &[], &[]);
    assert_eq!(st, 200);
    assert_eq!(json(&body)["tags"], serde_json::json!(["t1", "t2"]));
    let link = header(&hs, "link").unwrap();
    assert_eq!(link, "</v2/tags/img/tags/list?n=2&last=t2>; rel=\"next\"");
    let (_, hs, body) = sparse.http("GET", "/v2/tags/img/tags/list?n=2&last=t2", &[], &[]);
    assert_eq!(json(&body)["tags"], serde_json::json!(["t3"]));
    assert!(header(&hs, "link").is_none());
    assert_eq!(sparse.tags("tags/img"), vec!["t1", "t2", "t3"]);

    // Referrers API.
    let subject = &img.index_digest;
    let empty = sparse.upload_blob("tags/img", b"{}");
    let referrer = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2 },
        "layers": [],
        "subject": { "mediaType": MT_OCI_MANIFEST, "digest": subject, "size": img.index.len() }
    }))
    .unwrap();
    let rd = digest_of(&referrer);
    let (st, hs, _) = sparse.put_manifest("tags/img", &rd, MT_OCI_MANIFEST, &referrer);
    assert_eq!(st, 201);
    assert_eq!(header(&hs, "oci-subject"), Some(subject.as_str()));
    let (st, hs, body) = sparse.http(
        "GET",
        &format!("/v2/tags/img/referrers/{subject}"),
        &[],
        &[],
    );
    assert_eq!(st, 200);
    assert_eq!(header(&hs, "content-type"), Some(MT_OCI_INDEX));
    let list = json(&body);
    assert_eq!(list["manifests"][0]["digest"], rd.as_str());
    assert_eq!(
        list["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    let (_, _, body) = sparse.http(
        "GET",
        &format!("/v2/tags/img/referrers/{subject}?artifactType=other"),
        &[],
        &[],
    );
    assert_eq!(json(&body)["manifests"], serde_json::json!([]));
    // The real registry has no referrers API; neither has the double when told so.
    let no_ref = SparseRegistry::start_with(SparseOptions {
        referrers_api: false,
        ..Default::default()
    });
    assert_eq!(
        no_ref
            .http("GET", &format!("/v2/x/referrers/{subject}"), &[], &[])
            .0,
        404
    );

    // Delete by digest removes the manifest and its tags.
    assert_eq!(sparse.delete_manifest("tags/img", &img.index_digest), 202);
    assert!(sparse.tags("tags/img").is_empty());
    assert!(sparse.manifest("tags/img", &img.index_digest).is_none());
}

fn loc_prefix(reqs: &[(String, String)]) -> String {
    reqs.iter()
        .find(|(m, _)| m == "PATCH")
        .map(|(_, p)| p.clone())
        .unwrap()
}

#[test]
fn support_require_tool_fails_loudly() {
    let err = std::panic::catch_unwind(|| require_tool("no-such-tool-xyz", "no-such-package"))
        .unwrap_err();
    let msg = err.downcast_ref::<String>().unwrap();
    assert_eq!(
        msg,
        "`no-such-tool-xyz` is not installed: apt-get install -y no-such-package (scripts/test does this)"
    );
    require_tool("skopeo", "skopeo");
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

#[test]
fn support_http_parses_chunked_and_sized_bodies() {
    let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
    let (st, hs, body) = http::parse_response(raw, false).unwrap();
    assert_eq!((st, body.as_slice()), (200, &b"hello world"[..]));
    assert_eq!(header(&hs, "x-a"), Some("b"));
    let raw = b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabcdef";
    assert_eq!(http::parse_response(raw, false).unwrap().2, b"abc");
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n";
    assert!(http::parse_response(raw, true).unwrap().2.is_empty());
    assert!(http::parse_response(raw, false).is_err(), "short body");
    assert_eq!(http::split_repo_ref("a/b:c"), ("a/b", "c"));
    assert_eq!(http::split_repo_ref("host/a/b"), ("host/a/b", "latest"));
    assert_eq!(http::split_repo_ref("a@sha256:00"), ("a", "sha256:00"));
}
