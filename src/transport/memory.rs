//! An in-memory registry: images in maps, with switches for the behaviours of real registries.
//!
//! A **test double**, for the engine's unit tests and benchmarks; the command line never opens
//! one. It follows `shared/REGISTRY-FACTS.md` where that matters to the engine:
//! - every repository has its own manifests, tags and blobs; a manifest push is checked against
//!   *that* repository, and refused with HTTP 400 and one `MANIFEST_BLOB_UNKNOWN` error (detail:
//!   the digest) per missing child or blob, as registry 2.8 does ([`SparseRule::Refuse`]);
//!   distribution v3's `platforms: none` and `platforms: list` are [`SparseRule::Accept`] and
//!   [`SparseRule::Require`];
//! - no referrers API unless [`Behaviour::referrers_api`] (registry 2.8 answers 404, so clients
//!   use the `sha256-<hex>` tag schema);
//! - a blob mount from another repository of the same registry works when that repository has it.
//!
//! Faults: [`Behaviour`] fails a number of blob uploads (retryable 503s), serves corrupt blob
//! bytes, or holds blob downloads until released (to interrupt a copy mid-flight). Every call is
//! recorded in order ([`MemoryRegistry::log`]), so tests can check what was asked and when.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::registry::RegistryOptions;
use super::{
    BlobState, BlobStream, Opened, Opener, PushAs, RegistryErrorItem, Result, SparseSupport,
    Transport, TransportError,
};
use crate::oci::{self, Descriptor, Digest, Manifest, RawManifest};
use crate::platform::Platform;
use crate::reference::{ImageRef, Target};

/// What a registry does with an index whose children are not all present.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SparseRule {
    /// Refuse, naming every missing child (registry 2.8, distribution v3 `platforms: all`).
    #[default]
    Refuse,
    /// Accept and keep the bytes (distribution v3 `platforms: none`, Quay with sparse indexes).
    Accept,
    /// Only entries for these platforms must be present (distribution v3 `platforms: list`).
    Require(Vec<Platform>),
}

/// Switches for the behaviours of real registries and for faults.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub sparse: SparseRule,
    /// Answer `sparse_support` with `Yes` (as Quay's `X-Sparse-Manifest-Support` header does).
    pub announce_sparse: bool,
    /// Serve the OCI 1.1 referrers API.
    pub referrers_api: bool,
    /// Refuse cross-repository mounts.
    pub no_mount: bool,
    /// Fail this many blob uploads with a retryable HTTP 503 before accepting one.
    pub fail_blob_puts: usize,
    /// Serve these blobs with their last byte flipped.
    pub corrupt_blobs: BTreeSet<Digest>,
    /// Blob downloads wait until [`MemoryRegistry::release`] is called.
    pub hold_blob_gets: bool,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    GetManifest(String, String),
    HeadManifest(String, String),
    PutManifest {
        repo: String,
        digest: Digest,
        tag: Option<String>,
    },
    HasBlob(String, Digest),
    GetBlob(String, Digest),
    PutBlob(String, Digest),
    MountBlob(String, Digest),
    ListTags(String),
    Referrers(String, Digest),
}

#[derive(Debug, Default, Clone)]
struct Repo {
    manifests: BTreeMap<Digest, RawManifest>,
    tags: BTreeMap<String, Digest>,
    blobs: BTreeMap<Digest, Bytes>,
}

#[derive(Debug, Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    log: Vec<Call>,
    behaviour: Behaviour,
}

/// One registry host's repositories, shared by the [`MemoryRepo`]s opened on it.
#[derive(Clone)]
pub struct MemoryRegistry {
    host: String,
    state: Arc<Mutex<State>>,
    released: Arc<tokio::sync::Notify>,
}

impl MemoryRegistry {
    pub fn new(host: &str) -> MemoryRegistry {
        MemoryRegistry {
            host: host.to_string(),
            state: Arc::default(),
            released: Arc::new(tokio::sync::Notify::new()),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Change the switches.
    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state().behaviour);
    }

    /// A repository of this registry as a transport.
    pub fn repo(&self, name: &str) -> MemoryRepo {
        MemoryRepo {
            registry: self.clone(),
            name: name.to_string(),
        }
    }

    /// Let held blob downloads go on.
    pub fn release(&self) {
        self.set(|b| b.hold_blob_gets = false);
        self.released.notify_waiters();
    }

    /// Every call so far, in order.
    pub fn log(&self) -> Vec<Call> {
        self.state().log.clone()
    }

    pub fn clear_log(&self) {
        self.state().log.clear();
    }

    /// Calls that wrote something (manifest and blob pushes, mounts).
    pub fn writes(&self) -> Vec<Call> {
        self.log()
            .into_iter()
            .filter(|c| {
                matches!(
                    c,
                    Call::PutManifest { .. } | Call::PutBlob(..) | Call::MountBlob(..)
                )
            })
            .collect()
    }

    // Direct access for setting up and checking, without going through (or being logged as) a
    // transport call.

    pub fn put_blob_bytes(&self, repo: &str, bytes: Bytes) -> Digest {
        let d = Digest::sha256(&bytes);
        self.state()
            .repos
            .entry(repo.into())
            .or_default()
            .blobs
            .insert(d.clone(), bytes);
        d
    }

    /// Store a manifest unchecked (a source may be anything), tagged when `tag` is given.
    pub fn put_manifest_raw(&self, repo: &str, raw: &RawManifest, tag: Option<&str>) {
        let mut st = self.state();
        let r = st.repos.entry(repo.into()).or_default();
        r.manifests.insert(raw.digest.clone(), raw.clone());
        if let Some(t) = tag {
            r.tags.insert(t.into(), raw.digest.clone());
        }
    }

    pub fn remove_manifest(&self, repo: &str, digest: &Digest) {
        if let Some(r) = self.state().repos.get_mut(repo) {
            r.manifests.remove(digest);
        }
    }

    pub fn remove_blob(&self, repo: &str, digest: &Digest) {
        if let Some(r) = self.state().repos.get_mut(repo) {
            r.blobs.remove(digest);
        }
    }

    /// Change a stored blob's bytes in place (storage damage: the digest no longer matches).
    pub fn tamper_blob(&self, repo: &str, digest: &Digest, f: impl FnOnce(&mut Vec<u8>)) {
        if let Some(b) = self
            .state()
            .repos
            .get_mut(repo)
            .and_then(|r| r.blobs.get_mut(digest))
        {
            let mut bytes = b.to_vec();
            f(&mut bytes);
            *b = bytes.into();
        }
    }

    pub fn has_manifest(&self, repo: &str, digest: &Digest) -> bool {
        self.state()
            .repos
            .get(repo)
            .is_some_and(|r| r.manifests.contains_key(digest))
    }

    pub fn manifest(&self, repo: &str, digest: &Digest) -> Option<RawManifest> {
        self.state().repos.get(repo)?.manifests.get(digest).cloned()
    }

    pub fn has_blob_in(&self, repo: &str, digest: &Digest) -> bool {
        self.state()
            .repos
            .get(repo)
            .is_some_and(|r| r.blobs.contains_key(digest))
    }

    pub fn blob_bytes(&self, repo: &str, digest: &Digest) -> Option<Bytes> {
        self.state().repos.get(repo)?.blobs.get(digest).cloned()
    }

    pub fn tag(&self, repo: &str, tag: &str) -> Option<Digest> {
        self.state().repos.get(repo)?.tags.get(tag).cloned()
    }

    pub fn tags(&self, repo: &str) -> Vec<String> {
        self.state()
            .repos
            .get(repo)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn blob_count(&self, repo: &str) -> usize {
        self.state().repos.get(repo).map_or(0, |r| r.blobs.len())
    }
}

/// What a manifest push lacks in `repo`, as a registry names it.
fn missing_references(repo: &Repo, raw: &RawManifest, rule: &SparseRule) -> Vec<Digest> {
    match raw.parse() {
        Ok(Manifest::Index(index)) => index
            .manifests
            .iter()
            .filter(|d| !repo.manifests.contains_key(&d.digest))
            .filter(|d| match rule {
                SparseRule::Refuse => true,
                SparseRule::Accept => false,
                SparseRule::Require(list) => d.platform.as_ref().is_some_and(|p| {
                    list.iter()
                        .any(|want| want.os == p.os && want.architecture == p.architecture)
                }),
            })
            .map(|d| d.digest.clone())
            .collect(),
        Ok(Manifest::Image(m)) => m
            .blobs()
            .filter(|d| !repo.blobs.contains_key(&d.digest))
            .map(|d| d.digest.clone())
            .collect(),
        Err(_) => vec![],
    }
}

fn refusal(url: String, missing: Vec<Digest>) -> TransportError {
    TransportError::Registry {
        method: "PUT".into(),
        url,
        status: 400,
        errors: missing
            .into_iter()
            .map(|d| RegistryErrorItem {
                code: "MANIFEST_BLOB_UNKNOWN".into(),
                message: "blob unknown to registry".into(),
                detail: d.to_string(),
            })
            .collect(),
    }
}

/// One repository of a [`MemoryRegistry`].
#[derive(Clone)]
pub struct MemoryRepo {
    registry: MemoryRegistry,
    name: String,
}

impl MemoryRepo {
    fn resolve(repo: &Repo, target: &Target) -> Option<Digest> {
        match target {
            Target::Tag(t) => repo.tags.get(t).cloned(),
            Target::Digest(d) => repo.manifests.contains_key(d).then(|| d.clone()),
        }
    }

    fn record(&self, call: Call) -> MutexGuard<'_, State> {
        let mut st = self.registry.state();
        st.log.push(call);
        st
    }
}

#[async_trait]
impl Transport for MemoryRepo {
    fn location(&self) -> String {
        format!("docker://{}/{}", self.registry.host, self.name)
    }

    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
        let st = self.record(Call::GetManifest(self.name.clone(), target.to_string()));
        let Some(repo) = st.repos.get(&self.name) else {
            return Ok(None);
        };
        Ok(Self::resolve(repo, target).and_then(|d| repo.manifests.get(&d).cloned()))
    }

    async fn head_manifest(&self, target: &Target) -> Result<Option<Digest>> {
        let st = self.record(Call::HeadManifest(self.name.clone(), target.to_string()));
        Ok(st
            .repos
            .get(&self.name)
            .and_then(|r| Self::resolve(r, target)))
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let st = self.record(Call::HasBlob(self.name.clone(), digest.clone()));
        Ok(st
            .repos
            .get(&self.name)
            .is_some_and(|r| r.blobs.contains_key(digest)))
    }

    async fn blob_state(&self, digest: &Digest) -> Result<BlobState> {
        let st = self.record(Call::HasBlob(self.name.clone(), digest.clone()));
        Ok(
            match st.repos.get(&self.name).and_then(|r| r.blobs.get(digest)) {
                Some(b) => BlobState::Present {
                    size: Some(b.len() as u64),
                },
                None => BlobState::Absent,
            },
        )
    }

    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let (bytes, hold, corrupt) = {
            let st = self.record(Call::GetBlob(self.name.clone(), desc.digest.clone()));
            let bytes = st
                .repos
                .get(&self.name)
                .and_then(|r| r.blobs.get(&desc.digest).cloned())
                .ok_or_else(|| TransportError::NotFound {
                    what: format!("blob {}", desc.digest),
                    location: self.location(),
                })?;
            (
                bytes,
                st.behaviour.hold_blob_gets,
                st.behaviour.corrupt_blobs.contains(&desc.digest),
            )
        };
        if hold {
            let released = self.registry.released.clone();
            let notified = released.notified();
            if self.registry.state().behaviour.hold_blob_gets {
                notified.await;
            }
        }
        let mut bytes = bytes.to_vec();
        if corrupt && let Some(last) = bytes.last_mut() {
            *last ^= 0xff;
        }
        // Several chunks, as a network stream delivers them.
        let chunks: Vec<Result<Bytes>> = bytes
            .chunks(bytes.len().div_ceil(3).max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Ok(futures::stream::iter(chunks).boxed())
    }

    async fn put_blob(&self, desc: &Descriptor, mut body: BlobStream) -> Result<()> {
        let fail = {
            let mut st = self.record(Call::PutBlob(self.name.clone(), desc.digest.clone()));
            let fail = st.behaviour.fail_blob_puts > 0;
            if fail {
                st.behaviour.fail_blob_puts -= 1;
            }
            fail
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        if fail {
            return Err(TransportError::Registry {
                method: "PUT".into(),
                url: format!("{}/blobs/uploads/…", self.location()),
                status: 503,
                errors: vec![],
            });
        }
        if !desc.digest.matches(&bytes) {
            return Err(TransportError::Registry {
                method: "PUT".into(),
                url: format!("{}/blobs/uploads/…", self.location()),
                status: 400,
                errors: vec![RegistryErrorItem {
                    code: "DIGEST_INVALID".into(),
                    message: "provided digest did not match uploaded content".into(),
                    detail: String::new(),
                }],
            });
        }
        self.registry
            .state()
            .repos
            .entry(self.name.clone())
            .or_default()
            .blobs
            .insert(desc.digest.clone(), bytes.into());
        Ok(())
    }

    async fn mount_blob(&self, desc: &Descriptor, from: &dyn Transport) -> Result<bool> {
        let Some((host, repo)) = from.registry_repository() else {
            return Ok(false);
        };
        let mut st = self.record(Call::MountBlob(self.name.clone(), desc.digest.clone()));
        if host != self.registry.host || st.behaviour.no_mount || repo == self.name {
            return Ok(false);
        }
        let Some(bytes) = st
            .repos
            .get(&repo)
            .and_then(|r| r.blobs.get(&desc.digest).cloned())
        else {
            return Ok(false);
        };
        st.repos
            .entry(self.name.clone())
            .or_default()
            .blobs
            .insert(desc.digest.clone(), bytes);
        Ok(true)
    }

    async fn put_manifest(&self, manifest: &RawManifest, push_as: &PushAs) -> Result<()> {
        let tag = match push_as {
            PushAs::Root { tag } => tag.clone(),
            PushAs::Child => None,
        };
        let mut st = self.record(Call::PutManifest {
            repo: self.name.clone(),
            digest: manifest.digest.clone(),
            tag: tag.clone(),
        });
        let rule = st.behaviour.sparse.clone();
        let repo = st.repos.entry(self.name.clone()).or_default();
        let missing = missing_references(repo, manifest, &rule);
        if !missing.is_empty() {
            return Err(refusal(
                format!("{}/manifests/{}", self.location(), manifest.digest),
                missing,
            ));
        }
        repo.manifests
            .insert(manifest.digest.clone(), manifest.clone());
        if let Some(t) = tag {
            repo.tags.insert(t, manifest.digest.clone());
        }
        Ok(())
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let st = self.record(Call::ListTags(self.name.clone()));
        Ok(st
            .repos
            .get(&self.name)
            .map(|r| r.tags.keys().cloned().collect())
            .unwrap_or_default())
    }

    async fn referrers(&self, subject: &Digest) -> Result<Option<Vec<Descriptor>>> {
        let st = self.record(Call::Referrers(self.name.clone(), subject.clone()));
        if !st.behaviour.referrers_api {
            return Ok(None);
        }
        let Some(repo) = st.repos.get(&self.name) else {
            return Ok(Some(vec![]));
        };
        Ok(Some(
            repo.manifests
                .values()
                .filter_map(|raw| {
                    let m = raw.parse().ok()?;
                    (m.subject()?.digest == *subject).then(|| Descriptor {
                        artifact_type: m.artifact_type().map(str::to_string),
                        ..raw.descriptor()
                    })
                })
                .collect(),
        ))
    }

    async fn sparse_support(&self) -> SparseSupport {
        if self.registry.state().behaviour.announce_sparse {
            SparseSupport::Yes
        } else {
            SparseSupport::Unknown
        }
    }

    fn registry_repository(&self) -> Option<(String, String)> {
        Some((self.registry.host.clone(), self.name.clone()))
    }
}

/// Registries by host, opened in place of real ones: `docker://HOST/REPO` references open a
/// [`MemoryRepo`] of the registry added for HOST; `oci:` layouts open as usual.
#[derive(Default, Clone)]
pub struct MemoryRegistries {
    hosts: Arc<Mutex<BTreeMap<String, MemoryRegistry>>>,
}

impl MemoryRegistries {
    pub fn new() -> MemoryRegistries {
        MemoryRegistries::default()
    }

    /// The registry for `host`, made on first use.
    pub fn registry(&self, host: &str) -> MemoryRegistry {
        self.hosts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host.to_string())
            .or_insert_with(|| MemoryRegistry::new(host))
            .clone()
    }
}

impl Opener for MemoryRegistries {
    fn open(&self, reference: &ImageRef, push: bool, options: &RegistryOptions) -> Result<Opened> {
        match reference {
            ImageRef::Registry(r) => Ok(Opened {
                transport: Box::new(self.registry(&r.registry).repo(&r.repository)),
                target: Some(r.target()),
            }),
            other => super::Locations::new().open(other, push, options),
        }
    }
}

/// Made-up images for tests: an index of platforms, each with a config and two layers (the first
/// shared by every platform, as a common base layer is), optionally with buildx attestations.
pub mod images {
    use super::*;

    /// An image stored in a [`MemoryRegistry`] repository, and what it is made of.
    #[derive(Debug, Clone)]
    pub struct Built {
        pub index: RawManifest,
        /// `(platform, manifest)` in index order.
        pub children: Vec<(String, RawManifest)>,
        /// Attestation manifests, by the digest of the child they attest.
        pub attestations: BTreeMap<Digest, RawManifest>,
        /// Every blob descriptor, by child digest (the attestations' too).
        pub blobs: BTreeMap<Digest, Vec<Descriptor>>,
    }

    impl Built {
        pub fn child(&self, platform: &str) -> &RawManifest {
            &self
                .children
                .iter()
                .find(|(p, _)| p == platform)
                .unwrap_or_else(|| panic!("no child for {platform}"))
                .1
        }

        /// The distinct blob bytes of these children (a shared blob counted once).
        pub fn blob_bytes(&self, children: &[&Digest]) -> u64 {
            let mut seen = BTreeMap::new();
            for c in children {
                for b in &self.blobs[*c] {
                    seen.insert(b.digest.clone(), b.size);
                }
            }
            seen.values().sum()
        }
    }

    /// `os/arch[/variant]` as a descriptor's platform.
    pub fn platform_of(s: &str) -> Platform {
        let mut parts = s.split('/');
        Platform {
            os: parts.next().unwrap_or_default().into(),
            architecture: parts.next().unwrap_or_default().into(),
            variant: parts.next().map(str::to_string),
            ..Platform::default()
        }
    }

    fn manifest_json(config: &Descriptor, layers: &[Descriptor], extra: &str) -> Bytes {
        let d = |x: &Descriptor| {
            format!(
                r#"{{"mediaType":"{}","digest":"{}","size":{}}}"#,
                x.media_type, x.digest, x.size
            )
        };
        let layers: Vec<String> = layers.iter().map(d).collect();
        Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{},"layers":[{}]{extra}}}"#,
            oci::OCI_MANIFEST,
            d(config),
            layers.join(",")
        ))
    }

    fn blob(reg: &MemoryRegistry, repo: &str, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let size = bytes.len() as u64;
        let digest = reg.put_blob_bytes(repo, bytes.into());
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            platform: None,
            annotations: None,
            artifact_type: None,
            urls: None,
        }
    }

    /// Store an image manifest for `platform` (`os/arch[/variant]`) with its blobs; `seed` makes
    /// the content unique per image.
    pub fn single(reg: &MemoryRegistry, repo: &str, platform: &str, seed: &str) -> RawManifest {
        let (m, _) = single_with_blobs(reg, repo, platform, seed);
        m
    }

    fn single_with_blobs(
        reg: &MemoryRegistry,
        repo: &str,
        platform: &str,
        seed: &str,
    ) -> (RawManifest, Vec<Descriptor>) {
        let p = platform_of(platform);
        let config = blob(
            reg,
            repo,
            "application/vnd.oci.image.config.v1+json",
            serde_json::to_vec(&serde_json::json!({
                "architecture": p.architecture, "os": p.os, "variant": p.variant,
                "rootfs": {"type": "layers"}, "seed": seed,
            }))
            .expect("JSON"),
        );
        let base = blob(
            reg,
            repo,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            format!("base layer of {seed}").repeat(50).into_bytes(),
        );
        let own = blob(
            reg,
            repo,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            format!("{platform} layer of {seed}")
                .repeat(100)
                .into_bytes(),
        );
        let layers = vec![base, own];
        let raw = RawManifest::new(manifest_json(&config, &layers, ""), oci::OCI_MANIFEST);
        reg.put_manifest_raw(repo, &raw, None);
        let mut blobs = vec![config];
        blobs.extend(layers);
        (raw, blobs)
    }

    /// Store an index of `platforms` (with an attestation per platform when `attest`) under `tag`.
    pub fn index(
        reg: &MemoryRegistry,
        repo: &str,
        tag: &str,
        platforms: &[&str],
        attest: bool,
    ) -> Built {
        let seed = format!("{repo}:{tag}");
        let mut children = Vec::new();
        let mut attestations = BTreeMap::new();
        let mut blobs = BTreeMap::new();
        let mut entries = Vec::new();
        for platform in platforms {
            let (m, b) = single_with_blobs(reg, repo, platform, &seed);
            let p = platform_of(platform);
            entries.push(serde_json::json!({
                "mediaType": m.media_type, "digest": m.digest.to_string(), "size": m.size(),
                "platform": p,
            }));
            blobs.insert(m.digest.clone(), b);
            if attest {
                let config = blob(reg, repo, "application/vnd.in-toto+json", b"{}".to_vec());
                let statement = blob(
                    reg,
                    repo,
                    "application/vnd.in-toto+json",
                    format!("provenance of {} {seed}", m.digest).into_bytes(),
                );
                let a = RawManifest::new(
                    manifest_json(&config, std::slice::from_ref(&statement), ""),
                    oci::OCI_MANIFEST,
                );
                reg.put_manifest_raw(repo, &a, None);
                entries.push(serde_json::json!({
                    "mediaType": a.media_type, "digest": a.digest.to_string(), "size": a.size(),
                    "platform": {"architecture": "unknown", "os": "unknown"},
                    "annotations": {
                        oci::ANNOTATION_REFERENCE_TYPE: "attestation-manifest",
                        oci::ANNOTATION_REFERENCE_DIGEST: m.digest.to_string(),
                    },
                }));
                blobs.insert(a.digest.clone(), vec![config, statement]);
                attestations.insert(m.digest.clone(), a);
            }
            children.push((platform.to_string(), m));
        }
        let doc = serde_json::json!({
            "schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": entries,
        });
        let index = RawManifest::new(
            Bytes::from(serde_json::to_vec(&doc).expect("JSON")),
            oci::OCI_INDEX,
        );
        reg.put_manifest_raw(repo, &index, Some(tag));
        Built {
            index,
            children,
            attestations,
            blobs,
        }
    }

    /// Store an artifact (an SBOM, say) whose `subject` is `subject`, untagged, as a referrer.
    pub fn referrer(
        reg: &MemoryRegistry,
        repo: &str,
        subject: &RawManifest,
        artifact_type: &str,
    ) -> RawManifest {
        let config = blob(
            reg,
            repo,
            "application/vnd.oci.empty.v1+json",
            b"{}".to_vec(),
        );
        let body = blob(
            reg,
            repo,
            "application/spdx+json",
            format!("sbom of {}", subject.digest).into_bytes(),
        );
        let extra = format!(
            r#","artifactType":"{artifact_type}","subject":{{"mediaType":"{}","digest":"{}","size":{}}}"#,
            subject.media_type,
            subject.digest,
            subject.size()
        );
        let raw = RawManifest::new(
            manifest_json(&config, std::slice::from_ref(&body), &extra),
            oci::OCI_MANIFEST,
        );
        reg.put_manifest_raw(repo, &raw, None);
        raw
    }
}
