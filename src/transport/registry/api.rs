//! The distribution API of one repository: [`RegistryRepo`], the registry's [`Transport`].
//!
//! Each method builds its requests and reads the answers; sending (auth, pacing, retries,
//! errors) is `Session::send`'s. Manifests are read with an `Accept` listing every type handled
//! (registry 2.8 answers 404 to an OCI manifest without it) and verified against their digest;
//! tags and referrers follow `Link` pagination (2.8 ignores `n` and sends all tags at once).

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::Access;
use super::download::BlobDownload;
use super::error::{header_str, redact, registry_error, status_error};
use super::request::{Request, caps, read_capped};
use super::session::Session;
use super::upload::{UploadSession, cancel_upload, upload_location};
use crate::oci::{
    ContentError, Descriptor, Digest, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, ManifestError,
    RawManifest,
};
use crate::reference::Target;
use crate::transport::{
    BlobState, BlobStream, PushAs, Result, SparseSupport, Transport, TransportError, chain,
};

/// One repository of a registry.
pub struct RegistryRepo {
    session: Arc<Session>,
    repository: String,
    /// The repository and the token scope it needs (`pull`, or `pull,push` at a destination).
    access: Access,
}

impl RegistryRepo {
    pub fn new(session: Arc<Session>, repository: &str, push: bool) -> RegistryRepo {
        let actions = if push { "pull,push" } else { "pull" };
        RegistryRepo {
            access: Access {
                repository: repository.to_string(),
                scopes: vec![format!("repository:{repository}:{actions}")],
            },
            session,
            repository: repository.to_string(),
        }
    }

    async fn url(&self, tail: &str) -> Result<Url> {
        self.session
            .url(&format!("/v2/{}/{tail}", self.repository))
            .await
    }

    /// A request for this repository, authorized with its scope.
    fn request(&self, method: Method, url: &Url) -> Request {
        Request::new(method, url.clone()).access(&self.access)
    }

    async fn send(&self, request: Request) -> Result<Response> {
        self.session.send(request).await
    }

    /// `docker://host/repo:tag` or `docker://host/repo@sha256:…`, for messages.
    fn manifest_location(&self, target: &Target) -> String {
        match target {
            Target::Tag(t) => format!("{}:{t}", self.location()),
            Target::Digest(d) => format!("{}@{d}", self.location()),
        }
    }
}

/// `Accept` for manifests: every type handled.
fn accept_manifests() -> HeaderValue {
    HeaderValue::from_str(&MANIFEST_MEDIA_TYPES.join(", ")).expect("media types are header text")
}

#[async_trait]
impl Transport for RegistryRepo {
    fn location(&self) -> String {
        format!("docker://{}/{}", self.session.registry, self.repository)
    }

    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
        let url = self.url(&format!("manifests/{target}")).await?;
        let request = self
            .request(Method::GET, &url)
            .header(ACCEPT, accept_manifests());
        let resp = self.send(request).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(registry_error(&Method::GET, &url, resp).await);
        }
        let location = self.manifest_location(target);
        if let Some(len) =
            header_str(resp.headers(), "content-length").and_then(|v| v.trim().parse::<u64>().ok())
            && len > MAX_MANIFEST_BYTES as u64
        {
            return Err(TransportError::Manifest {
                location,
                source: ManifestError::TooLarge { size: len as usize },
            });
        }
        let media_type = header_str(resp.headers(), CONTENT_TYPE.as_str())
            .map(|m| m.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let claimed = header_str(resp.headers(), "docker-content-digest")
            .and_then(|d| d.parse::<Digest>().ok());
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| TransportError::Http {
                method: "GET".into(),
                url: redact(&url),
                message: chain(&e),
            })?;
            body.extend_from_slice(&chunk);
            if body.len() > MAX_MANIFEST_BYTES {
                return Err(TransportError::Manifest {
                    location,
                    source: ManifestError::TooLarge { size: body.len() },
                });
            }
        }
        let raw = RawManifest::new(body.into(), &media_type);
        check_served_media_type(&media_type, &raw, &location)?;
        let expected = match target {
            Target::Digest(d) => Some(d.clone()),
            Target::Tag(_) => claimed.filter(|c| c.algorithm() == "sha256"),
        };
        if let Some(expected) = expected
            && expected != raw.digest
        {
            return Err(ContentError::Digest(crate::oci::DigestMismatch {
                expected,
                actual: raw.digest,
            })
            .into());
        }
        Ok(Some(raw))
    }

    async fn head_manifest(&self, target: &Target) -> Result<Option<Digest>> {
        let url = self.url(&format!("manifests/{target}")).await?;
        let request = self
            .request(Method::HEAD, &url)
            .header(ACCEPT, accept_manifests());
        let resp = self.send(request).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                if let Some(d) =
                    header_str(resp.headers(), "docker-content-digest").and_then(|d| d.parse().ok())
                {
                    return Ok(Some(d));
                }
                // No digest header: fall back to the body (this answer's place given back first).
                drop(resp);
                Ok(self.get_manifest(target).await?.map(|m| m.digest))
            }
            s => Err(status_error(&Method::HEAD, &url, s.as_u16())),
        }
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        Ok(self.blob_state(digest).await? != BlobState::Absent)
    }

    async fn blob_state(&self, digest: &Digest) -> Result<BlobState> {
        let url = self.url(&format!("blobs/{digest}")).await?;
        let resp = self.send(self.request(Method::HEAD, &url)).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(BlobState::Absent),
            s if s.is_success() => Ok(BlobState::Present {
                size: resp
                    .headers()
                    .get(reqwest::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok()),
            }),
            s => Err(status_error(&Method::HEAD, &url, s.as_u16())),
        }
    }

    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let url = self.url(&format!("blobs/{}", desc.digest)).await?;
        let resp = self.send(self.request(Method::GET, &url)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(TransportError::NotFound {
                what: format!("blob {}", desc.digest),
                location: self.location(),
            });
        }
        if !resp.status().is_success() {
            return Err(registry_error(&Method::GET, &url, resp).await);
        }
        Ok(BlobDownload::new(
            self.session.clone(),
            self.access.clone(),
            url,
            desc.size,
            resp,
        )
        .into_stream())
    }

    async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()> {
        let start = self.url("blobs/uploads/").await?;
        let request = self
            .request(Method::POST, &start)
            .header(CONTENT_LENGTH, HeaderValue::from(0u64));
        let resp = self.send(request).await?;
        if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::CREATED {
            return Err(registry_error(&Method::POST, &start, resp).await);
        }
        let session = UploadSession::open(
            self.session.clone(),
            self.access.clone(),
            upload_location(&start, resp.headers())?,
        );
        let mut location = session.url().clone();
        location
            .query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());

        // The body can be read only once, so this request is sent once (`Request::stream`); the
        // copy engine retries the whole blob with a fresh source stream, after this session is
        // cancelled.
        let request = self
            .request(Method::PUT, &location)
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            )
            .header(CONTENT_LENGTH, HeaderValue::from(desc.size))
            .upload(body);
        let resp = match self.send(request).await {
            Ok(r) => r,
            Err(e) => {
                session.cancel().await;
                return Err(e);
            }
        };
        if resp.status() != StatusCode::CREATED {
            let err = registry_error(&Method::PUT, &location, resp).await;
            session.cancel().await;
            return Err(err);
        }
        session.close();
        Ok(())
    }

    async fn mount_blob(&self, desc: &Descriptor, from: &dyn Transport) -> Result<bool> {
        let Some((registry, from_repo)) = from.registry_repository() else {
            return Ok(false);
        };
        if registry != self.session.registry || from_repo == self.repository {
            return Ok(false);
        }
        let mut url = self.url("blobs/uploads/").await?;
        url.query_pairs_mut()
            .append_pair("mount", desc.digest.as_str())
            .append_pair("from", &from_repo);
        // One token for both repositories.
        let mut access = self.access.clone();
        access.scopes.push(format!("repository:{from_repo}:pull"));
        let request = Request::new(Method::POST, url.clone())
            .access(&access)
            .header(CONTENT_LENGTH, HeaderValue::from(0u64));
        let resp = self.send(request).await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // Not mounted; an upload session was opened instead. Close it.
                let location = upload_location(&url, resp.headers());
                drop(resp);
                if let Ok(loc) = location {
                    cancel_upload(&self.session, &self.access, &loc).await;
                }
                Ok(false)
            }
            _ => Ok(false),
        }
    }

    async fn put_manifest(&self, manifest: &RawManifest, push_as: &PushAs) -> Result<()> {
        let reference = match push_as {
            PushAs::Root { tag: Some(tag) } => tag.clone(),
            _ => manifest.digest.to_string(),
        };
        let url = self.url(&format!("manifests/{reference}")).await?;
        let media_type = HeaderValue::from_str(&manifest.media_type).map_err(|_| {
            TransportError::protocol(
                format!("{}@{}", self.location(), manifest.digest),
                format!(
                    "the media type {:?} cannot be sent in a header",
                    manifest.media_type
                ),
            )
        })?;
        let request = self
            .request(Method::PUT, &url)
            .header(CONTENT_TYPE, media_type)
            .body(manifest.bytes.clone());
        let resp = self.send(request).await?;
        if !resp.status().is_success() {
            return Err(registry_error(&Method::PUT, &url, resp).await);
        }
        Ok(())
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut url = self.url("tags/list?n=1000").await?;
        let mut pages = Pages::new(self.location(), "tags list");
        loop {
            pages.visit(&url)?;
            let resp = self.send(self.request(Method::GET, &url)).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(TransportError::NotFound {
                    what: format!("repository {}", self.repository),
                    location: self.location(),
                });
            }
            if !resp.status().is_success() {
                return Err(registry_error(&Method::GET, &url, resp).await);
            }
            let next = next_page(&url, resp.headers())?;
            let bytes = read_capped(resp, pages.page_cap(caps::TAGS_PAGE)).await?;
            pages.add(bytes.len());
            let page: TagList = parse_page(&url, &bytes)?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn referrers(&self, subject: &Digest) -> Result<Option<Vec<Descriptor>>> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            manifests: Vec<Descriptor>,
        }
        let mut url = self.url(&format!("referrers/{subject}")).await?;
        let mut out = Vec::new();
        let mut pages = Pages::new(self.location(), "referrers list");
        loop {
            pages.visit(&url)?;
            let request = self
                .request(Method::GET, &url)
                .header(ACCEPT, HeaderValue::from_static(crate::oci::OCI_INDEX));
            let resp = self.send(request).await?;
            match resp.status() {
                // No referrers API (registry 2.x answers a plain-text 404): use the tag schema.
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::BAD_REQUEST => return Ok(None),
                s if s.is_success() => {}
                _ => return Err(registry_error(&Method::GET, &url, resp).await),
            }
            let next = next_page(&url, resp.headers())?;
            let bytes = read_capped(resp, pages.page_cap(caps::REFERRERS_PAGE)).await?;
            pages.add(bytes.len());
            let page: List = parse_page(&url, &bytes)?;
            out.extend(page.manifests);
            match next {
                Some(n) => url = n,
                None => return Ok(Some(out)),
            }
        }
    }

    async fn sparse_support(&self) -> SparseSupport {
        self.session.sparse_support().await
    }

    fn registry_repository(&self) -> Option<(String, String)> {
        Some((self.session.registry.clone(), self.repository.clone()))
    }
}

/// A manifest served with a manifest media type must not declare another one: the copy pushes it
/// under the type it was served with, so a contradiction would store it mislabelled. (A
/// Content-Type that is no manifest type at all, e.g. `application/json` from an old registry,
/// is not an error: the document's own `mediaType` is used, as skopeo does.)
fn check_served_media_type(served: &str, raw: &RawManifest, location: &str) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Declared {
        #[serde(default, rename = "mediaType")]
        media_type: Option<serde_json::Value>,
    }
    if !crate::oci::is_manifest_media_type(served) {
        return Ok(());
    }
    let declared = serde_json::from_slice::<Declared>(&raw.bytes)
        .ok()
        .and_then(|d| d.media_type);
    match declared {
        Some(serde_json::Value::String(m)) if !m.is_empty() && m != served => {
            Err(TransportError::protocol(
                location,
                format!(
                    "the registry served the manifest as {served}, but the manifest says it is {m}: refusing to copy a mislabelled manifest"
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// The pages of one paginated list so far: a `Link` chain that repeats a page, goes on past
/// [`caps::PAGES`], or adds up to more than [`caps::LIST_TOTAL`] is refused, so a hostile or
/// broken registry cannot keep us reading forever.
struct Pages {
    location: String,
    what: &'static str,
    seen: std::collections::HashSet<String>,
    bytes: usize,
}

impl Pages {
    fn new(location: String, what: &'static str) -> Pages {
        Pages {
            location,
            what,
            seen: Default::default(),
            bytes: 0,
        }
    }

    /// Before reading `url`: refuse a page seen before, or one page too many.
    fn visit(&mut self, url: &Url) -> Result<()> {
        if !self.seen.insert(url.to_string()) {
            return Err(TransportError::protocol(
                self.location.clone(),
                format!(
                    "the registry's {} links back to a page it already sent ({}): stopped after {} pages",
                    self.what,
                    redact(url),
                    self.seen.len()
                ),
            ));
        }
        if self.seen.len() > caps::PAGES {
            return Err(TransportError::protocol(
                self.location.clone(),
                format!(
                    "the registry's {} goes on past {} pages: stopped",
                    self.what,
                    caps::PAGES
                ),
            ));
        }
        Ok(())
    }

    /// The cap of the next page: its own, or what is left of the list's.
    fn page_cap(&self, page: usize) -> usize {
        page.min(caps::LIST_TOTAL.saturating_sub(self.bytes))
    }

    fn add(&mut self, bytes: usize) {
        self.bytes += bytes;
    }
}

/// One JSON page of a list. The error names the position only.
fn parse_page<T: serde::de::DeserializeOwned>(url: &Url, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        TransportError::protocol(
            redact(url),
            format!(
                "unexpected answer (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// The next page of a paginated list: the `rel="next"` target of the `Link` header, if any.
fn next_page(url: &Url, headers: &HeaderMap) -> Result<Option<Url>> {
    let Some(next) = header_str(headers, "link").and_then(parse_next_link) else {
        return Ok(None);
    };
    url.join(&next).map(Some).map_err(|e| {
        TransportError::protocol(redact(url), format!("bad Link header {next:?}: {e}"))
    })
}

/// `<url>; rel="next"` of a `Link` header.
fn parse_next_link(link: &str) -> Option<String> {
    for part in link.split(',') {
        let (target, params) = part.split_once(';')?;
        if params.contains("rel=\"next\"") || params.contains("rel=next") {
            return Some(
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            );
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_headers() {
        assert_eq!(
            parse_next_link(r#"</v2/x/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?n=2&last=b")
        );
        assert_eq!(parse_next_link(r#"</a>; rel="prev""#), None);
    }
}
