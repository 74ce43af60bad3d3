//! The OCI / Docker data model: digests, descriptors, image manifests, indexes and media types, plus
//! a stream adapter that verifies a digest while bytes flow through it.
//!
//! Nothing here does I/O. Manifests are always kept as the exact bytes a source served
//! ([`RawManifest`]); the parsed views ([`Index`], [`ImageManifest`]) are only for reading, never for
//! re-serializing what is pushed. The one place that writes a new index is [`strip_index`], used by
//! `--on-sparse-reject strip`, which edits the JSON tree of the original (key order kept).

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::platform::Platform;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest media type `mirror` can move; sent as `Accept` on every manifest request (a 2.x
/// registry answers 404 for an OCI manifest whose type the request does not accept).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// Manifests larger than this are refused (the limit registries and containerd use).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// The annotation buildkit puts on attestation entries of an index, and the one naming what they attest.
pub const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";
pub const ANNOTATION_REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// On an index that `--on-sparse-reject strip` rewrote: the digest of the original index.
pub const ANNOTATION_STRIPPED_FROM: &str = "dev.mirror.stripped-from";
/// The artifact type of the manifest that stores a stripped index's original bytes (its one
/// layer) and names the stripped index as its `subject`.
pub const ARTIFACT_STRIPPED_ORIGINAL: &str = "application/vnd.dev.mirror.stripped-original.v1+json";
/// The OCI empty descriptor's media type and content (image-spec, "Guidance for an empty
/// descriptor").
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_JSON: &[u8] = b"{}";

/// Whether `c` would be a control character or reorder text on a terminal.
fn hidden_on_a_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Whole lines of output fit for a terminal: as [`escape_for_terminal`], but the line breaks and
/// tabs of the text's own layout are kept and backslashes are left alone.
pub fn escape_controls_in_text(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = |c: char| c != '\n' && c != '\t' && hidden_on_a_terminal(c);
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Text read from a file or a peer (a ref name, a tag, an annotation), fit for a terminal:
/// control characters (C0, DEL, C1: escape sequences, carriage returns, bells) are written as
/// `\u{1b}` escapes, and so are the bidirectional overrides that reorder what is shown, and a
/// backslash as `\\` so an escape cannot be faked; the rest is kept.
pub fn escape_for_terminal(text: &str) -> std::borrow::Cow<'_, str> {
    let hidden = hidden_on_a_terminal;
    if !text.chars().any(|c| hidden(c) || c == '\\') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if hidden(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

pub fn is_index_media_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_manifest_media_type(media_type: &str) -> bool {
    MANIFEST_MEDIA_TYPES.contains(&media_type)
}

/// A content digest, `algorithm:hex`. Only sha256 and sha512 are accepted, with lowercase hex of the
/// right length, so a digest is always safe to use as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: {problem}")]
pub struct DigestError {
    pub input: String,
    pub problem: &'static str,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or("")
    }

    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or("")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `sha256:abcdef…` shortened to `sha256:abcdef012345` for people.
    pub fn short(&self) -> String {
        let hex = self.hex();
        format!("{}:{}", self.algorithm(), &hex[..hex.len().min(12)])
    }

    /// A hasher that checks bytes against this digest.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            expected: self.clone(),
            hasher: Hasher::new(self.algorithm()),
        }
    }

    /// Does `bytes` hash to this digest?
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let mut v = self.verifier();
        v.update(bytes);
        v.finish().is_ok()
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |problem| DigestError {
            input: s.to_string(),
            problem,
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| err("expected algorithm:hex, e.g. sha256:<64 hex digits>"))?;
        let want = match alg {
            "sha256" => 64,
            "sha512" => 128,
            _ => {
                return Err(err(
                    "unsupported algorithm (sha256 and sha512 are supported)",
                ));
            }
        };
        if hex.len() != want
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err(
                "the hex part must be lowercase hex of the algorithm's length",
            ));
        }
        Ok(Digest(s.to_string()))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

enum Hasher {
    Sha256(Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    fn new(algorithm: &str) -> Hasher {
        match algorithm {
            "sha512" => Hasher::Sha512(sha2::Sha512::new()),
            _ => Hasher::Sha256(Sha256::new()),
        }
    }
}

/// Incremental digest check.
pub struct Verifier {
    expected: Digest,
    hasher: Hasher,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("digest mismatch: expected {expected}, the content hashes to {actual}")]
pub struct DigestMismatch {
    pub expected: Digest,
    pub actual: Digest,
}

impl Verifier {
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Result<(), DigestMismatch> {
        let hex = match self.hasher {
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        };
        let actual = Digest(format!("{}:{}", self.expected.algorithm(), hex));
        if actual == self.expected {
            Ok(())
        } else {
            Err(DigestMismatch {
                expected: self.expected,
                actual,
            })
        }
    }
}

/// Errors a [`VerifyingStream`] yields in place of bad content.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ContentError {
    #[error(transparent)]
    Digest(#[from] DigestMismatch),
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}{more}", more = if *.more { " or more" } else { "" })]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
        more: bool,
    },
}

/// Wraps a byte stream and checks it against a descriptor's digest and size.
///
/// The check happens *before* the last chunk is passed on: when the expected size is reached the
/// digest is finished, and on a mismatch the stream yields an error instead of that chunk. A consumer
/// that uploads the stream therefore never sends the complete body of bad content.
pub struct VerifyingStream<S> {
    inner: S,
    digest: Digest,
    verifier: Option<Verifier>,
    expected: u64,
    seen: u64,
}

impl<S> VerifyingStream<S> {
    pub fn new(inner: S, digest: &Digest, expected: u64) -> Self {
        VerifyingStream {
            inner,
            digest: digest.clone(),
            verifier: Some(digest.verifier()),
            expected,
            seen: 0,
        }
    }
}

impl<S, E> Stream for VerifyingStream<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: From<ContentError>,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.verifier.is_none() {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => {
                this.verifier = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                if this.seen > this.expected {
                    this.verifier = None;
                    return Poll::Ready(Some(Err(ContentError::Size {
                        digest: this.digest.clone(),
                        expected: this.expected,
                        actual: this.seen,
                        more: true,
                    }
                    .into())));
                }
                let v = this.verifier.as_mut().expect("checked above");
                v.update(&chunk);
                if this.seen == this.expected {
                    let v = this.verifier.take().expect("checked above");
                    if let Err(e) = v.finish() {
                        return Poll::Ready(Some(Err(ContentError::Digest(e).into())));
                    }
                    // Verified: hand out this last chunk; the next poll ends the stream.
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                this.verifier = None;
                if this.seen == 0 && this.expected == 0 {
                    // An empty blob: its digest is checked here.
                    let mut v = this.digest.verifier();
                    v.update(&[]);
                    return match v.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(ContentError::Digest(e).into()))),
                    };
                }
                Poll::Ready(Some(Err(ContentError::Size {
                    digest: this.digest.clone(),
                    expected: this.expected,
                    actual: this.seen,
                    more: false,
                }
                .into())))
            }
        }
    }
}

/// A content descriptor (OCI image-spec `descriptor.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Descriptor {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    /// The digest this entry attests, when it is a buildkit attestation entry.
    pub fn attests(&self) -> Option<Digest> {
        if self.annotation(ANNOTATION_REFERENCE_TYPE) != Some("attestation-manifest") {
            return None;
        }
        self.annotation(ANNOTATION_REFERENCE_DIGEST)?.parse().ok()
    }

    pub fn is_index(&self) -> bool {
        is_index_media_type(&self.media_type)
    }
}

/// An OCI image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OCI image manifest or Docker schema2 manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    #[serde(default)]
    pub subject: Option<Descriptor>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl ImageManifest {
    /// The config and every layer, in manifest order.
    pub fn blobs(&self) -> impl Iterator<Item = &Descriptor> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }

    /// The artifact type as OCI 1.1 defines it: `artifactType`, else the config media type.
    pub fn effective_artifact_type(&self) -> &str {
        self.artifact_type
            .as_deref()
            .unwrap_or(&self.config.media_type)
    }
}

#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // parsed once per manifest, never stored in bulk
pub enum Manifest {
    Index(Index),
    Image(ImageManifest),
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is {size} bytes, more than the {MAX_MANIFEST_BYTES}-byte limit")]
    TooLarge { size: usize },
    #[error("manifest is not valid JSON: {0}")]
    Json(String),
    #[error("manifest is not an image manifest or index: {0}")]
    Shape(String),
    #[error(
        "Docker schema 1 manifests are not supported (deprecated since 2017); re-push the image with a current tool"
    )]
    Schema1,
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    config: Option<serde::de::IgnoredAny>,
}

impl Manifest {
    /// Parse manifest bytes. `hint` is the media type the server or descriptor gave (may be empty);
    /// the document's own `mediaType` wins, then the hint, then its shape.
    pub fn parse(bytes: &[u8], hint: &str) -> Result<Manifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { size: bytes.len() });
        }
        let probe: Probe =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))?;
        if probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1);
        }
        let media_type = probe
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| Some(hint.to_string()).filter(|h| is_manifest_media_type(h)));
        let is_index = match media_type.as_deref() {
            Some(m) if is_index_media_type(m) => true,
            Some(OCI_MANIFEST) | Some(DOCKER_MANIFEST) => false,
            Some(DOCKER_SCHEMA1) | Some(DOCKER_SCHEMA1_SIGNED) => {
                return Err(ManifestError::Schema1);
            }
            Some(other) if probe.manifests.is_none() && probe.config.is_none() => {
                return Err(ManifestError::MediaType(other.to_string()));
            }
            _ => match (probe.manifests.is_some(), probe.config.is_some()) {
                (true, false) => true,
                (false, true) => false,
                _ => {
                    return Err(ManifestError::Shape(
                        "it has neither `manifests` nor `config` (or both)".into(),
                    ));
                }
            },
        };
        if is_index {
            serde_json::from_slice(bytes)
                .map(Manifest::Index)
                .map_err(|e| ManifestError::Shape(e.to_string()))
        } else {
            serde_json::from_slice(bytes)
                .map(Manifest::Image)
                .map_err(|e| ManifestError::Shape(e.to_string()))
        }
    }

    pub fn subject(&self) -> Option<&Descriptor> {
        match self {
            Manifest::Index(i) => i.subject.as_ref(),
            Manifest::Image(m) => m.subject.as_ref(),
        }
    }

    pub fn artifact_type(&self) -> Option<&str> {
        match self {
            Manifest::Index(i) => i.artifact_type.as_deref(),
            Manifest::Image(m) => Some(m.effective_artifact_type()),
        }
    }
}

/// A manifest exactly as a source served it.
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: Digest,
}

impl RawManifest {
    /// Wrap bytes, computing their digest. The media type is the one the document declares
    /// (`mediaType`), as it is pushed with that type; else `media_type` (what it was served or
    /// listed as) when that is a manifest type; else what its shape implies.
    pub fn new(bytes: Bytes, media_type: &str) -> RawManifest {
        let digest = Digest::sha256(&bytes);
        let media_type = match declared_media_type(&bytes) {
            Some(declared) if is_manifest_media_type(&declared) => declared,
            _ if is_manifest_media_type(media_type) => media_type.to_string(),
            _ => sniff_media_type(&bytes).unwrap_or_else(|| media_type.to_string()),
        };
        RawManifest {
            bytes,
            media_type,
            digest,
        }
    }

    pub fn parse(&self) -> Result<Manifest, ManifestError> {
        Manifest::parse(&self.bytes, &self.media_type)
    }

    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size(),
            platform: None,
            annotations: None,
            artifact_type: None,
            urls: None,
        }
    }
}

/// The media type a manifest document declares in its own `mediaType` field, if any.
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    probe.media_type.filter(|m| !m.is_empty())
}

/// The media type a manifest document names, or implies by its shape.
pub fn sniff_media_type(bytes: &[u8]) -> Option<String> {
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    if let Some(m) = probe.media_type.filter(|m| !m.is_empty()) {
        return Some(m);
    }
    match (probe.manifests.is_some(), probe.config.is_some()) {
        (true, false) => Some(OCI_INDEX.to_string()),
        (false, true) => Some(OCI_MANIFEST.to_string()),
        _ => None,
    }
}

/// Rewrite an index to list only the entries whose digests `keep` accepts, replacing the descriptors
/// named in `replace` (digest → new digest and size, for nested indexes that were stripped too).
/// Key order and every other field are kept; the output is compact JSON.
pub fn strip_index(
    original: &[u8],
    keep: &dyn Fn(&Digest) -> bool,
    replace: &BTreeMap<Digest, (Digest, u64)>,
    stripped_from: &Digest,
) -> Result<Bytes, ManifestError> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(original).map_err(|e| ManifestError::Json(e.to_string()))?;
    let manifests = doc
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or_else(|| ManifestError::Shape("an index without `manifests`".into()))?;
    manifests.retain(|entry| {
        entry
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse::<Digest>().ok())
            .is_some_and(|d| keep(&d))
    });
    for entry in manifests.iter_mut() {
        let Some(old) = entry
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| d.parse::<Digest>().ok())
        else {
            continue;
        };
        if let Some((digest, size)) = replace.get(&old) {
            entry["digest"] = serde_json::Value::String(digest.to_string());
            entry["size"] = serde_json::Value::from(*size);
        }
    }
    let object = doc
        .as_object_mut()
        .ok_or_else(|| ManifestError::Shape("an index that is not a JSON object".into()))?;
    let annotations = object
        .entry("annotations")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(
            ANNOTATION_STRIPPED_FROM.into(),
            serde_json::Value::String(stripped_from.to_string()),
        );
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| ManifestError::Json(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn digest_parsing_rejects_traversal_and_bad_hex() {
        assert!("sha256:../../etc/passwd".parse::<Digest>().is_err());
        assert!("sha256:ABCDEF".parse::<Digest>().is_err());
        assert!("md5:00".parse::<Digest>().is_err());
        let d = Digest::sha256(b"hello");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(d.matches(b"hello"));
        assert!(!d.matches(b"hellO"));
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, ContentError>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn verifying_stream_withholds_last_chunk_on_mismatch() {
        let good = Digest::sha256(b"abcdef");
        let out: Vec<_> = VerifyingStream::new(chunks(&[b"abc", b"def"]), &good, 6)
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.is_ok()));

        let out: Vec<_> = VerifyingStream::new(chunks(&[b"abc", b"deX"]), &good, 6)
            .collect()
            .await;
        assert_eq!(out.len(), 2);
        assert!(out[0].is_ok());
        assert!(matches!(out[1], Err(ContentError::Digest(_))));

        let out: Vec<_> = VerifyingStream::new(chunks(&[b"abc"]), &good, 6)
            .collect()
            .await;
        assert!(matches!(
            out.last(),
            Some(Err(ContentError::Size { more: false, .. }))
        ));

        let out: Vec<_> = VerifyingStream::new(chunks(&[b"abcdefg"]), &good, 6)
            .collect()
            .await;
        assert!(matches!(
            out.last(),
            Some(Err(ContentError::Size { more: true, .. }))
        ));
    }

    #[test]
    fn parse_refuses_oversized_and_invalid() {
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            Manifest::parse(&big, ""),
            Err(ManifestError::TooLarge { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"{not json", ""),
            Err(ManifestError::Json(_))
        ));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, ""),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            Manifest::parse(br#"{"schemaVersion":2}"#, ""),
            Err(ManifestError::Shape(_))
        ));
    }

    #[test]
    fn strip_keeps_key_order_and_other_fields() {
        let a = Digest::sha256(b"a");
        let b = Digest::sha256(b"b");
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{a}","size":1}},{{"mediaType":"{OCI_MANIFEST}","digest":"{b}","size":1}}],"annotations":{{"x":"y"}}}}"#
        );
        let from = Digest::sha256(doc.as_bytes());
        let out = strip_index(doc.as_bytes(), &|d| *d == a, &BTreeMap::new(), &from).unwrap();
        let expect = format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{a}","size":1}}],"annotations":{{"x":"y","{ANNOTATION_STRIPPED_FROM}":"{from}"}}}}"#
        );
        assert_eq!(std::str::from_utf8(&out).unwrap(), expect);
    }

    #[test]
    fn names_from_files_are_escaped_for_terminals() {
        assert_eq!(escape_for_terminal("v1.2-alpine"), "v1.2-alpine");
        assert_eq!(escape_for_terminal("bäh:ü"), "bäh:ü");
        assert_eq!(
            escape_for_terminal("v1\u{1b}[2J\r\n\u{7}\u{9b}x"),
            "v1\\u{1b}[2J\\u{d}\\u{a}\\u{7}\\u{9b}x"
        );
        assert_eq!(escape_for_terminal("a\\u{1b}"), "a\\\\u{1b}");
        assert_eq!(
            escape_controls_in_text("tag v1\u{1b}]0;pwned\u{7}\n\tnext \\d\n"),
            "tag v1\\u{1b}]0;pwned\\u{7}\n\tnext \\d\n"
        );
    }
}
