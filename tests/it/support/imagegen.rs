//! Deterministic synthetic container images: the same spec gives the same bytes on every run.
//!
//! Layers are real uncompressed tar archives (one file of pseudo-random content each) built
//! with fixed mtime/uid/gid/mode; configs are valid image configs whose `rootfs.diff_ids` are
//! the layer digests. Indexes are 2-space pretty JSON like buildx writes.

use super::{digest_of, sha256_hex};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MT_INTOTO: &str = "application/vnd.in-toto+json";
pub const SPDX_PREDICATE: &str = "https://spdx.dev/Document";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Fixed timestamps so bytes never change.
const MTIME: u64 = 1_700_000_000;
const CREATED: &str = "2023-11-14T22:13:20Z";

/// What to generate. `Default`: 5 platforms (linux/amd64, linux/arm64, linux/arm/v7,
/// linux/ppc64le, linux/s390x), 2 layers of 64 KiB each, a 128 KiB base shared by all,
/// buildx-style attestations, OCI media types, seed 0.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    /// `os/arch[/variant][:os.version]`, e.g. `linux/arm/v7`, `windows/amd64:10.0.20348.2113`.
    pub platforms: Vec<&'static str>,
    /// Layers of each platform on top of the base (distinct per platform and seed).
    pub layers_per_platform: usize,
    /// Bytes of the file in each platform layer.
    pub layer_size: usize,
    /// Bytes of the file in the base layer shared by every platform (0: no base layer).
    pub base_size: usize,
    /// The base layer depends only on `(base_seed, base_size)`, not on `seed`: two images with
    /// different `seed`s and the same base share that blob.
    pub base_seed: u64,
    /// buildx-style attestation manifests, one per platform (ignored with `docker`/`single`).
    pub attestations: bool,
    /// Docker manifest list + schema2 media types instead of OCI.
    pub docker: bool,
    /// One image manifest (the first platform), no index: `index` holds the manifest bytes.
    pub single: bool,
    /// Varies every platform layer and config, so two different images can be made.
    pub seed: u64,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            platforms: vec![
                "linux/amd64",
                "linux/arm64",
                "linux/arm/v7",
                "linux/ppc64le",
                "linux/s390x",
            ],
            layers_per_platform: 2,
            layer_size: 64 * 1024,
            base_size: 128 * 1024,
            base_seed: 0,
            attestations: true,
            docker: false,
            single: false,
            seed: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A platform image manifest.
    Platform,
    /// An attestation manifest bound to the entry with digest `of`.
    Attestation { of: String },
}

/// One manifest of the image (an index entry, or the manifest itself for a single image).
#[derive(Clone, Debug)]
pub struct Entry {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// `os/arch[/variant]` as listed in the index; `unknown/unknown` for attestations.
    pub platform: Option<String>,
    pub kind: EntryKind,
    /// The exact manifest bytes.
    pub manifest: Vec<u8>,
    /// Digests of the config and then the layers, in manifest order.
    pub blobs: Vec<String>,
}

impl Entry {
    pub fn config_digest(&self) -> &str {
        &self.blobs[0]
    }
    pub fn is_attestation(&self) -> bool {
        matches!(self.kind, EntryKind::Attestation { .. })
    }
}

#[derive(Clone, Debug)]
pub struct GeneratedImage {
    pub spec: ImageSpec,
    /// The exact index bytes (the manifest bytes for a `single` image).
    pub index: Vec<u8>,
    pub index_digest: String,
    pub index_media_type: String,
    /// Platform entries in spec order, then (OCI only) their attestations in the same order.
    pub entries: Vec<Entry>,
    /// Every config and layer blob by digest (manifests are in `entries`, not here).
    pub blobs: BTreeMap<String, Vec<u8>>,
}

/// SplitMix64: tiny, fast, and stable forever (unlike library RNGs across versions).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn seed_from(label: &str) -> u64 {
    let h = sha256_hex(label.as_bytes());
    u64::from_str_radix(&h[..16], 16).unwrap()
}

/// `len` deterministic pseudo-random bytes for `label`.
pub fn pseudo_random(label: &str, len: usize) -> Vec<u8> {
    let mut rng = SplitMix(seed_from(label));
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An uncompressed tar holding one regular file `name` with `content`, fixed metadata.
pub fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

/// The parts of `os/arch[/variant][:os.version]`.
pub struct Platform<'a> {
    pub os: &'a str,
    pub arch: &'a str,
    pub variant: Option<&'a str>,
    pub os_version: Option<&'a str>,
}

pub fn parse_platform(p: &str) -> Platform<'_> {
    let (main, os_version) = match p.split_once(':') {
        Some((m, v)) => (m, Some(v)),
        None => (p, None),
    };
    let mut parts = main.split('/');
    let os = parts.next().unwrap();
    let arch = parts
        .next()
        .unwrap_or_else(|| panic!("platform {p:?} needs os/arch"));
    let variant = parts.next();
    assert!(parts.next().is_none(), "platform {p:?} has too many parts");
    Platform {
        os,
        arch,
        variant,
        os_version,
    }
}

fn platform_json(p: &Platform) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("architecture".into(), json!(p.arch));
    m.insert("os".into(), json!(p.os));
    if let Some(v) = p.os_version {
        m.insert("os.version".into(), json!(v));
    }
    if let Some(v) = p.variant {
        m.insert("variant".into(), json!(v));
    }
    Value::Object(m)
}

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({ "mediaType": media_type, "digest": digest_of(bytes), "size": bytes.len() })
}

struct Builder {
    blobs: BTreeMap<String, Vec<u8>>,
}

impl Builder {
    fn add_blob(&mut self, bytes: Vec<u8>) -> String {
        let d = digest_of(&bytes);
        self.blobs.insert(d.clone(), bytes);
        d
    }
}

/// Generates the image described by `spec`.
pub fn generate(spec: &ImageSpec) -> GeneratedImage {
    assert!(!spec.platforms.is_empty(), "an image needs a platform");
    let (mt_manifest, mt_config, mt_layer, mt_index) = if spec.docker {
        (
            MT_DOCKER_MANIFEST,
            MT_DOCKER_CONFIG,
            MT_DOCKER_LAYER,
            MT_DOCKER_LIST,
        )
    } else {
        (MT_OCI_MANIFEST, MT_OCI_CONFIG, MT_OCI_LAYER, MT_OCI_INDEX)
    };
    let mut b = Builder {
        blobs: BTreeMap::new(),
    };
    let base = (spec.base_size > 0).then(|| {
        let content = pseudo_random(
            &format!("base/{}/{}", spec.base_seed, spec.base_size),
            spec.base_size,
        );
        layer_tar(&format!("base-{}.bin", spec.base_seed), &content)
    });
    let platforms: Vec<&'static str> = if spec.single {
        spec.platforms[..1].to_vec()
    } else {
        spec.platforms.clone()
    };
    let mut entries = Vec::new();
    for pstr in &platforms {
        let p = parse_platform(pstr);
        let mut layers: Vec<Vec<u8>> = base.iter().cloned().collect();
        let slug = pstr.replace(['/', ':'], "-");
        for i in 0..spec.layers_per_platform {
            let content = pseudo_random(
                &format!("layer/{}/{pstr}/{i}/{}", spec.seed, spec.layer_size),
                spec.layer_size,
            );
            layers.push(layer_tar(&format!("layer-{slug}-{i}.bin"), &content));
        }
        let diff_ids: Vec<String> = layers.iter().map(|l| digest_of(l)).collect();
        let mut cfg = serde_json::Map::new();
        cfg.insert("created".into(), json!(CREATED));
        cfg.insert("architecture".into(), json!(p.arch));
        if let Some(v) = p.variant {
            cfg.insert("variant".into(), json!(v));
        }
        cfg.insert("os".into(), json!(p.os));
        if let Some(v) = p.os_version {
            cfg.insert("os.version".into(), json!(v));
        }
        cfg.insert(
            "config".into(),
            json!({
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["/bin/sh"],
                "Labels": { "org.example.mirror-test.seed": spec.seed.to_string() }
            }),
        );
        cfg.insert(
            "rootfs".into(),
            json!({ "type": "layers", "diff_ids": diff_ids }),
        );
        let history: Vec<Value> = (0..layers.len())
            .map(|i| json!({ "created": CREATED, "created_by": format!("mirror test support: layer {i}") }))
            .collect();
        cfg.insert("history".into(), Value::Array(history));
        let config = pretty(&Value::Object(cfg));
        let layer_descs: Vec<Value> = layers.iter().map(|l| descriptor(mt_layer, l)).collect();
        let manifest = pretty(&json!({
            "schemaVersion": 2,
            "mediaType": mt_manifest,
            "config": descriptor(mt_config, &config),
            "layers": layer_descs,
        }));
        let mut blobs = vec![b.add_blob(config)];
        for l in layers {
            blobs.push(b.add_blob(l));
        }
        entries.push(Entry {
            digest: digest_of(&manifest),
            media_type: mt_manifest.to_string(),
            size: manifest.len() as u64,
            platform: Some(pstr.split(':').next().unwrap().to_string()),
            kind: EntryKind::Platform,
            manifest,
            blobs,
        });
    }

    if spec.single {
        let e = &entries[0];
        return GeneratedImage {
            spec: spec.clone(),
            index: e.manifest.clone(),
            index_digest: e.digest.clone(),
            index_media_type: e.media_type.clone(),
            entries,
            blobs: b.blobs,
        };
    }

    let mut attestations = Vec::new();
    if spec.attestations && !spec.docker {
        for e in &entries {
            let platform = e.platform.as_deref().unwrap();
            let statement = pretty(&json!({
                "_type": "https://in-toto.io/Statement/v0.1",
                "predicateType": SPDX_PREDICATE,
                "subject": [{
                    "name": format!("pkg:docker/mirror-test/seed-{}?platform={}", spec.seed, platform.replace('/', "%2F")),
                    "digest": { "sha256": e.digest.trim_start_matches("sha256:") }
                }],
                "predicate": {
                    "spdxVersion": "SPDX-2.3",
                    "dataLicense": "CC0-1.0",
                    "SPDXID": "SPDXRef-DOCUMENT",
                    "name": format!("sbom-{platform}"),
                    "creationInfo": { "created": CREATED, "creators": ["Tool: mirror-test-support"] },
                    "packages": []
                }
            }));
            let config = pretty(&json!({
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": [digest_of(&statement)] }
            }));
            let mut layer = descriptor(MT_INTOTO, &statement);
            layer["annotations"] = json!({ "in-toto.io/predicate-type": SPDX_PREDICATE });
            let manifest = pretty(&json!({
                "schemaVersion": 2,
                "mediaType": MT_OCI_MANIFEST,
                "config": descriptor(MT_OCI_CONFIG, &config),
                "layers": [layer],
            }));
            let blobs = vec![b.add_blob(config), b.add_blob(statement)];
            attestations.push(Entry {
                digest: digest_of(&manifest),
                media_type: MT_OCI_MANIFEST.to_string(),
                size: manifest.len() as u64,
                platform: Some("unknown/unknown".to_string()),
                kind: EntryKind::Attestation {
                    of: e.digest.clone(),
                },
                manifest,
                blobs,
            });
        }
    }
    entries.extend(attestations);

    let descs: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut d = descriptor(&e.media_type, &e.manifest);
            match &e.kind {
                EntryKind::Platform => {
                    let p = platforms
                        .iter()
                        .find(|p| p.split(':').next() == e.platform.as_deref())
                        .unwrap();
                    d["platform"] = platform_json(&parse_platform(p));
                }
                EntryKind::Attestation { of } => {
                    d["annotations"] = json!({
                        "vnd.docker.reference.digest": of,
                        "vnd.docker.reference.type": "attestation-manifest"
                    });
                    d["platform"] = json!({ "architecture": "unknown", "os": "unknown" });
                }
            }
            d
        })
        .collect();
    let index = pretty(&json!({
        "schemaVersion": 2,
        "mediaType": mt_index,
        "manifests": descs,
    }));
    GeneratedImage {
        spec: spec.clone(),
        index_digest: digest_of(&index),
        index,
        index_media_type: mt_index.to_string(),
        entries,
        blobs: b.blobs,
    }
}

impl GeneratedImage {
    /// A single manifest (no index)?
    pub fn is_single(&self) -> bool {
        self.spec.single
    }

    /// The entry with this manifest digest.
    pub fn entry(&self, digest: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.digest == digest)
    }

    /// The platform entry for `os/arch[/variant]` exactly as listed; panics when absent.
    pub fn platform_entry(&self, platform: &str) -> &Entry {
        self.entries
            .iter()
            .find(|e| e.kind == EntryKind::Platform && e.platform.as_deref() == Some(platform))
            .unwrap_or_else(|| panic!("the image has no platform {platform}"))
    }

    /// The attestation entry bound to the manifest `digest`, if any.
    pub fn attestation_of(&self, digest: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| matches!(&e.kind, EntryKind::Attestation { of } if of == digest))
    }

    /// Digests of the platform entries for `platforms` (exact names as listed), each followed
    /// by its attestation when `with_attestations`.
    pub fn digests_for(&self, platforms: &[&str], with_attestations: bool) -> Vec<String> {
        let mut v = Vec::new();
        for p in platforms {
            let e = self.platform_entry(p);
            v.push(e.digest.clone());
            if with_attestations && let Some(a) = self.attestation_of(&e.digest) {
                v.push(a.digest.clone());
            }
        }
        v
    }

    /// Every entry digest.
    pub fn all_digests(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.digest.clone()).collect()
    }

    fn unique_blobs(&self, entry_digests: &[&str]) -> BTreeSet<&str> {
        let mut set = BTreeSet::new();
        for d in entry_digests {
            let e = self
                .entry(d)
                .unwrap_or_else(|| panic!("{d} is not an entry of the image"));
            set.extend(e.blobs.iter().map(String::as_str));
        }
        set
    }

    /// The sum of the sizes of the distinct blobs (configs + layers, not manifests) referenced
    /// by these entries; a blob shared by several counts once.
    pub fn unique_blob_bytes(&self, entry_digests: &[&str]) -> u64 {
        self.unique_blobs(entry_digests)
            .iter()
            .map(|d| self.blobs[*d].len() as u64)
            .sum()
    }

    /// The number of distinct blobs (configs + layers) referenced by these entries.
    pub fn unique_blob_count(&self, entry_digests: &[&str]) -> usize {
        self.unique_blobs(entry_digests).len()
    }

    /// Writes the image in skopeo's `dir:` transport format (`version`, `manifest.json` = the
    /// index or single manifest, `<hex>.manifest.json` per child, blobs as `<hex>`), the one
    /// local format from which skopeo 1.9 copies a Docker manifest list (its `oci:` transport
    /// only finds OCI media types in `index.json`).
    pub fn write_skopeo_dir(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
        std::fs::write(dir.join("manifest.json"), &self.index).unwrap();
        if !self.is_single() {
            for e in &self.entries {
                let hex = e.digest.trim_start_matches("sha256:");
                std::fs::write(dir.join(format!("{hex}.manifest.json")), &e.manifest).unwrap();
            }
        }
        for (d, bytes) in &self.blobs {
            std::fs::write(dir.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        }
    }

    /// Writes an OCI image layout at `dir` (created if needed) holding the whole image, named
    /// `tag` (`org.opencontainers.image.ref.name`) in `index.json`. An existing layout is
    /// added to (an entry with the same name is replaced), so several images can share one.
    pub fn write_layout(&self, dir: &Path, tag: &str) {
        let blobs_dir = dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs_dir).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let write = |bytes: &[u8]| {
            let d = digest_of(bytes);
            let p = blobs_dir.join(d.trim_start_matches("sha256:"));
            if !p.exists() {
                std::fs::write(p, bytes).unwrap();
            }
        };
        for bytes in self.blobs.values() {
            write(bytes);
        }
        for e in &self.entries {
            write(&e.manifest);
        }
        write(&self.index);
        let index_path = dir.join("index.json");
        let mut index: Value = if index_path.exists() {
            serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap()
        } else {
            json!({ "schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": [] })
        };
        let manifests = index["manifests"].as_array_mut().unwrap();
        manifests.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
        let mut d = descriptor(&self.index_media_type, &self.index);
        d["annotations"] = json!({ REF_NAME: tag });
        manifests.push(d);
        std::fs::write(index_path, pretty(&index)).unwrap();
    }
}
