//! The registry transport: the OCI Distribution API v2 over HTTP(S).
//!
//! This is a thin layer over `reqwest` (the HTTP client `oci-client` is built on) rather than over
//! `oci-client` itself. `oci-client` was the first choice, but the copy engine needs things its API
//! does not give: the registry's structured error body on a refused manifest push (the sparse-index
//! fallback reads `MANIFEST_BLOB_UNKNOWN` and its `detail` digests), response headers
//! (`Docker-Content-Digest`, `Retry-After`, `X-Sparse-Manifest-Support`, `Link`), blob uploads that
//! stream from another registry with a known length and no whole-blob buffer, retries with backoff on
//! every request, and one bearer token carrying several repository scopes (for cross-repository mounts).
//!
//! Shape: one [`RegistryClient`] per registry host (HTTP connection pool, resolved scheme, token
//! cache), shared by the [`RegistryRepo`] values that implement [`Transport`] for one repository each.
//! Upload protocol: `POST …/blobs/uploads/` then a single `PUT <location>?digest=` with the streamed body
//! (registry 2.8 discards a body sent with the POST, see REGISTRY-FACTS.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::sync::{Mutex, OnceCell};

use super::{
    BlobStream, PushAs, RegistryErrorItem, Result, SparseSupport, Transport, TransportError,
};
use crate::oci::{
    ContentError, Descriptor, Digest, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, RawManifest,
};
use crate::reference::{Target, is_loopback_host};

/// How to reach one registry.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `(user, password)` for basic auth or the token endpoint.
    pub credentials: Option<(String, String)>,
    pub tls_verify: bool,
    /// Retries of a failed request (connection error, 408, 429, 5xx).
    pub retry_times: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: None,
            tls_verify: true,
            retry_times: 3,
        }
    }
}

/// A connection to one registry host, shared by every repository used on it.
pub struct RegistryClient {
    http: reqwest::Client,
    /// As the user wrote it (`docker.io`, `127.0.0.1:5000`).
    registry: String,
    /// Where requests go (`registry-1.docker.io` for Docker Hub).
    api_host: String,
    options: RegistryOptions,
    base: OnceCell<Base>,
    /// Bearer tokens by scope set.
    tokens: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Clone)]
struct Base {
    url: Url,
    sparse: SparseSupport,
    challenge: Option<Challenge>,
}

#[derive(Debug, Clone)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl RegistryClient {
    pub fn new(
        registry: &str,
        api_host: &str,
        options: RegistryOptions,
    ) -> Result<Arc<RegistryClient>> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("mirror/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .tls_danger_accept_invalid_certs(!options.tls_verify)
            .build()
            .map_err(|e| TransportError::Other(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Arc::new(RegistryClient {
            http,
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            options,
            base: OnceCell::new(),
            tokens: Mutex::new(HashMap::new()),
        }))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Resolve the scheme once: https, or plain http for a loopback host (or with TLS verification
    /// off) whose server does not speak TLS. A certificate that fails verification is an error.
    async fn base(&self) -> Result<&Base> {
        self.base
            .get_or_try_init(|| async {
                let https = Url::parse(&format!("https://{}/", self.api_host)).map_err(|e| {
                    TransportError::Other(format!("bad registry host {:?}: {e}", self.api_host))
                })?;
                match self.ping(&https).await {
                    Ok(base) => Ok(base),
                    Err(e) => {
                        let plain_allowed =
                            is_loopback_host(&self.api_host) || !self.options.tls_verify;
                        if !plain_allowed || is_certificate_error(&e) {
                            return Err(e);
                        }
                        let http = Url::parse(&format!("http://{}/", self.api_host))
                            .map_err(|e| TransportError::Other(e.to_string()))?;
                        self.ping(&http).await
                    }
                }
            })
            .await
    }

    async fn ping(&self, root: &Url) -> Result<Base> {
        let url = root.join("v2/").expect("static path");
        let mut attempt = 0;
        let resp = loop {
            match self.http.get(url.clone()).send().await {
                Ok(r) if is_retryable_status(r.status()) && attempt < self.options.retry_times => {
                    backoff(attempt, r.headers()).await;
                    attempt += 1;
                }
                Ok(r) => break r,
                Err(e)
                    if e.is_connect()
                        && attempt < self.options.retry_times
                        && root.scheme() == "http" =>
                {
                    backoff(attempt, &HeaderMap::new()).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(TransportError::Http {
                        method: "GET".into(),
                        url: redact(&url),
                        message: error_chain(&e),
                    });
                }
            }
        };
        let sparse = match resp
            .headers()
            .get("x-sparse-manifest-support")
            .and_then(|v| v.to_str().ok())
        {
            Some(v) if v.eq_ignore_ascii_case("true") => SparseSupport::Yes,
            Some(v) if v.eq_ignore_ascii_case("false") => SparseSupport::No,
            _ => SparseSupport::Unknown,
        };
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge);
        match resp.status() {
            s if s.is_success() || s == StatusCode::UNAUTHORIZED => Ok(Base {
                url: root.clone(),
                sparse,
                challenge,
            }),
            s => Err(TransportError::Registry {
                method: "GET".into(),
                url: redact(&url),
                status: s.as_u16(),
                errors: vec![],
            }),
        }
    }

    async fn url(&self, path: &str) -> Result<Url> {
        let base = self.base().await?;
        base.url
            .join(path.trim_start_matches('/'))
            .map_err(|e| TransportError::Other(format!("bad request path {path:?}: {e}")))
    }

    /// Send a request built by `build` (called again for each attempt), authenticating on a 401 and
    /// retrying connection errors, 408, 429 and 5xx with backoff. Returns the final response,
    /// whatever its status.
    async fn send(
        &self,
        method: Method,
        url: Url,
        scopes: &[String],
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response> {
        let mut attempt = 0u32;
        let mut authenticated_once = false;
        loop {
            let mut req = build(self.http.request(method.clone(), url.clone()));
            if let Some(auth) = self.auth_header(scopes).await {
                req = req.header(AUTHORIZATION, auth);
            }
            match req.send().await {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && !authenticated_once => {
                    authenticated_once = true;
                    let challenge = resp
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    self.authenticate(challenge, scopes).await?;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(self.auth_failed(&resp));
                }
                Ok(resp)
                    if is_retryable_status(resp.status()) && attempt < self.options.retry_times =>
                {
                    backoff(attempt, resp.headers()).await;
                    attempt += 1;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if attempt < self.options.retry_times && !e.is_builder() => {
                    backoff(attempt, &HeaderMap::new()).await;
                    attempt += 1;
                }
                Err(e) => {
                    return Err(TransportError::Http {
                        method: method.to_string(),
                        url: redact(&url),
                        message: error_chain(&e),
                    });
                }
            }
        }
    }

    fn auth_failed(&self, _resp: &Response) -> TransportError {
        let message = if self.options.credentials.is_some() {
            "the registry refused the credentials (HTTP 401): check the user name and password"
                .to_string()
        } else {
            "the registry requires authentication (HTTP 401): pass --src-creds/--dest-creds USER[:PASS]".to_string()
        };
        TransportError::Auth {
            registry: self.registry.clone(),
            message,
        }
    }

    async fn auth_header(&self, scopes: &[String]) -> Option<HeaderValue> {
        let key = scopes.join(" ");
        if let Some(token) = self.tokens.lock().await.get(&key) {
            return HeaderValue::from_str(token).ok();
        }
        None
    }

    async fn authenticate(&self, challenge: Option<Challenge>, scopes: &[String]) -> Result<()> {
        let key = scopes.join(" ");
        let challenge = challenge.or_else(|| self.base.get().and_then(|b| b.challenge.clone()));
        let value = match challenge {
            Some(Challenge::Basic) | None => {
                let Some((user, pass)) = &self.options.credentials else {
                    return Err(TransportError::Auth {
                        registry: self.registry.clone(),
                        message: "the registry requires authentication (HTTP 401): pass --src-creds/--dest-creds USER[:PASS]"
                            .into(),
                    });
                };
                format!("Basic {}", basic(user, pass))
            }
            Some(Challenge::Bearer { realm, service }) => {
                let mut url = Url::parse(&realm).map_err(|e| TransportError::Auth {
                    registry: self.registry.clone(),
                    message: format!("the token realm {realm:?} is not a URL: {e}"),
                })?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = &service {
                        q.append_pair("service", s);
                    }
                    for scope in scopes {
                        q.append_pair("scope", scope);
                    }
                }
                let mut req = self.http.get(url.clone());
                if let Some((user, pass)) = &self.options.credentials {
                    req = req.header(AUTHORIZATION, format!("Basic {}", basic(user, pass)));
                }
                let resp = req.send().await.map_err(|e| TransportError::Http {
                    method: "GET".into(),
                    url: redact(&url),
                    message: error_chain(&e),
                })?;
                if !resp.status().is_success() {
                    return Err(TransportError::Auth {
                        registry: self.registry.clone(),
                        message: format!(
                            "the token server answered HTTP {}: check the credentials (--src-creds/--dest-creds)",
                            resp.status().as_u16()
                        ),
                    });
                }
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = resp.json_bytes().await?;
                let token = t
                    .token
                    .or(t.access_token)
                    .ok_or_else(|| TransportError::Auth {
                        registry: self.registry.clone(),
                        message: "the token server's answer has no token".into(),
                    })?;
                format!("Bearer {token}")
            }
        };
        self.tokens.lock().await.insert(key, value);
        Ok(())
    }
}

trait JsonBytes {
    async fn json_bytes<T: serde::de::DeserializeOwned>(self) -> Result<T>;
}

impl JsonBytes for Response {
    async fn json_bytes<T: serde::de::DeserializeOwned>(self) -> Result<T> {
        let url = redact(self.url());
        let bytes = self.bytes().await.map_err(|e| TransportError::Http {
            method: "GET".into(),
            url: url.clone(),
            message: error_chain(&e),
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| TransportError::Other(format!("{url}: unexpected answer: {e}")))
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for (k, v) in parse_params(rest) {
        match k.as_str() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

/// `k="v", k2="v2"` (values may contain commas inside quotes).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((key, value));
    }
    out
}

fn is_retryable_status(s: StatusCode) -> bool {
    s == StatusCode::REQUEST_TIMEOUT || s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error()
}

/// Exponential backoff with jitter; `Retry-After` (seconds) wins, capped at 60 s.
async fn backoff(attempt: u32, headers: &HeaderMap) {
    let retry_after = headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)));
    let delay = retry_after.unwrap_or_else(|| {
        let base = 200u64.saturating_mul(1 << attempt.min(6));
        let jitter = rand::random_range(0..=base / 2);
        Duration::from_millis((base + jitter).min(10_000))
    });
    tokio::time::sleep(delay).await;
}

/// A URL fit for messages: no user info, no query (upload URLs carry state tokens).
fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

fn is_certificate_error(e: &TransportError) -> bool {
    matches!(e, TransportError::Http { message, .. } if message.to_ascii_lowercase().contains("certificate"))
}

/// Read a registry error body into its items (distribution spec error format).
async fn registry_error(method: &str, url: &Url, resp: Response) -> TransportError {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap_or_default();
    TransportError::Registry {
        method: method.to_string(),
        url: redact(url),
        status,
        errors: parse_error_body(&bytes),
    }
}

/// The `errors` of a registry's JSON error body; empty when the body is not one.
pub fn parse_error_body(bytes: &[u8]) -> Vec<RegistryErrorItem> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: serde_json::Value,
    }
    let Ok(body) = serde_json::from_slice::<Body>(bytes) else {
        return vec![];
    };
    body.errors
        .into_iter()
        .map(|i| RegistryErrorItem {
            code: i.code,
            message: i.message,
            detail: match i.detail {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
        })
        .collect()
}

/// One repository of a registry.
pub struct RegistryRepo {
    client: Arc<RegistryClient>,
    repository: String,
    /// The token scope this repository needs (`pull`, or `pull,push` at a destination).
    scope: String,
}

impl RegistryRepo {
    pub fn new(client: Arc<RegistryClient>, repository: &str, push: bool) -> RegistryRepo {
        let actions = if push { "pull,push" } else { "pull" };
        RegistryRepo {
            scope: format!("repository:{repository}:{actions}"),
            client,
            repository: repository.to_string(),
        }
    }

    fn scopes(&self) -> Vec<String> {
        vec![self.scope.clone()]
    }

    async fn url(&self, tail: &str) -> Result<Url> {
        self.client
            .url(&format!("/v2/{}/{tail}", self.repository))
            .await
    }

    async fn request(
        &self,
        method: Method,
        url: Url,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response> {
        self.client.send(method, url, &self.scopes(), build).await
    }

    fn accept(req: RequestBuilder) -> RequestBuilder {
        req.header(ACCEPT, MANIFEST_MEDIA_TYPES.join(", "))
    }
}

#[async_trait]
impl Transport for RegistryRepo {
    fn location(&self) -> String {
        format!("docker://{}/{}", self.client.registry, self.repository)
    }

    async fn get_manifest(&self, target: &Target) -> Result<Option<RawManifest>> {
        let url = self.url(&format!("manifests/{target}")).await?;
        let resp = self
            .request(Method::GET, url.clone(), &Self::accept)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(registry_error("GET", &url, resp).await);
        }
        if let Some(len) = resp.content_length()
            && len > MAX_MANIFEST_BYTES as u64
        {
            return Err(TransportError::Manifest {
                location: format!("{}@{target}", self.location()),
                source: crate::oci::ManifestError::TooLarge { size: len as usize },
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
                message: error_chain(&e),
            })?;
            body.extend_from_slice(&chunk);
            if body.len() > MAX_MANIFEST_BYTES {
                return Err(TransportError::Manifest {
                    location: format!("{}@{target}", self.location()),
                    source: crate::oci::ManifestError::TooLarge { size: body.len() },
                });
            }
        }
        let raw = RawManifest::new(body.into(), &media_type);
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
        let resp = self
            .request(Method::HEAD, url.clone(), &Self::accept)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                if let Some(d) =
                    header_str(resp.headers(), "docker-content-digest").and_then(|d| d.parse().ok())
                {
                    return Ok(Some(d));
                }
                // No digest header: fall back to the body.
                Ok(self.get_manifest(target).await?.map(|m| m.digest))
            }
            s => Err(TransportError::Registry {
                method: "HEAD".into(),
                url: redact(&url),
                status: s.as_u16(),
                errors: vec![],
            }),
        }
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self.url(&format!("blobs/{digest}")).await?;
        let resp = self.request(Method::HEAD, url.clone(), &|r| r).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(TransportError::Registry {
                method: "HEAD".into(),
                url: redact(&url),
                status: s.as_u16(),
                errors: vec![],
            }),
        }
    }

    async fn get_blob(&self, desc: &Descriptor) -> Result<BlobStream> {
        let url = self.url(&format!("blobs/{}", desc.digest)).await?;
        let resp = self.request(Method::GET, url.clone(), &|r| r).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(TransportError::NotFound {
                what: format!("blob {}", desc.digest),
                location: self.location(),
            });
        }
        if !resp.status().is_success() {
            return Err(registry_error("GET", &url, resp).await);
        }
        let shown = redact(&url);
        Ok(resp
            .bytes_stream()
            .map(move |r| {
                r.map_err(|e| TransportError::Http {
                    method: "GET".into(),
                    url: shown.clone(),
                    message: error_chain(&e),
                })
            })
            .boxed())
    }

    async fn put_blob(&self, desc: &Descriptor, body: BlobStream) -> Result<()> {
        let start = self.url("blobs/uploads/").await?;
        let resp = self
            .request(Method::POST, start.clone(), &|r| {
                r.header(CONTENT_LENGTH, "0")
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED && resp.status() != StatusCode::CREATED {
            return Err(registry_error("POST", &start, resp).await);
        }
        let mut location = upload_location(&start, resp.headers())?;
        location
            .query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());

        // The body can be sent only once, so this request is not retried here; the copy engine
        // retries the whole blob with a fresh source stream.
        let body = std::sync::Mutex::new(Some(reqwest::Body::wrap_stream(body)));
        let size = desc.size;
        let resp = self
            .client
            .send(Method::PUT, location.clone(), &self.scopes(), &move |r| {
                let r = r
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size.to_string());
                match body.lock().ok().and_then(|mut b| b.take()) {
                    Some(b) => r.body(b),
                    None => r.body(reqwest::Body::wrap_stream(futures::stream::once(async {
                        Err::<bytes::Bytes, _>(std::io::Error::other(
                            "the upload body was already sent",
                        ))
                    }))),
                }
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.cancel_upload(&location).await;
                return Err(e);
            }
        };
        if resp.status() != StatusCode::CREATED {
            let err = registry_error("PUT", &location, resp).await;
            self.cancel_upload(&location).await;
            return Err(err);
        }
        Ok(())
    }

    async fn mount_blob(&self, desc: &Descriptor, from: &dyn Transport) -> Result<bool> {
        let Some((registry, from_repo)) = from.registry_repository() else {
            return Ok(false);
        };
        if registry != self.client.registry || from_repo == self.repository {
            return Ok(false);
        }
        let mut url = self.url("blobs/uploads/").await?;
        url.query_pairs_mut()
            .append_pair("mount", desc.digest.as_str())
            .append_pair("from", &from_repo);
        let scopes = vec![self.scope.clone(), format!("repository:{from_repo}:pull")];
        let resp = self
            .client
            .send(Method::POST, url.clone(), &scopes, &|r| {
                r.header(CONTENT_LENGTH, "0")
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // Not mounted; an upload session was opened instead. Close it.
                if let Ok(loc) = upload_location(&url, resp.headers()) {
                    self.cancel_upload(&loc).await;
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
        let bytes = manifest.bytes.clone();
        let media_type = manifest.media_type.clone();
        let resp = self
            .request(Method::PUT, url.clone(), &move |r| {
                r.header(CONTENT_TYPE, media_type.as_str())
                    .body(bytes.clone())
            })
            .await?;
        if !resp.status().is_success() {
            return Err(registry_error("PUT", &url, resp).await);
        }
        Ok(())
    }

    async fn list_tags(&self) -> Result<Vec<String>> {
        let mut tags = Vec::new();
        let mut url = self.url("tags/list?n=1000").await?;
        loop {
            let resp = self.request(Method::GET, url.clone(), &|r| r).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(TransportError::NotFound {
                    what: format!("repository {}", self.repository),
                    location: self.location(),
                });
            }
            if !resp.status().is_success() {
                return Err(registry_error("GET", &url, resp).await);
            }
            let next = header_str(resp.headers(), "link").and_then(parse_next_link);
            #[derive(serde::Deserialize)]
            struct TagList {
                #[serde(default)]
                tags: Option<Vec<String>>,
            }
            let page: TagList = resp.json_bytes().await?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(n) => {
                    url = url
                        .join(&n)
                        .map_err(|e| TransportError::Other(format!("bad Link header {n:?}: {e}")))?
                }
                None => break,
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn sparse_support(&self) -> SparseSupport {
        match self.client.base().await {
            Ok(b) => b.sparse,
            Err(_) => SparseSupport::Unknown,
        }
    }

    fn registry_repository(&self) -> Option<(String, String)> {
        Some((self.client.registry.clone(), self.repository.clone()))
    }
}

impl RegistryRepo {
    async fn cancel_upload(&self, location: &Url) {
        let mut url = location.clone();
        url.set_query(None);
        // Best effort: a registry that cannot delete upload sessions expires them.
        let _ = self.client.http.delete(url).send().await;
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn upload_location(request_url: &Url, headers: &HeaderMap) -> Result<Url> {
    let loc = header_str(headers, "location").ok_or_else(|| {
        TransportError::Other(format!(
            "{}: the registry gave no upload Location",
            redact(request_url)
        ))
    })?;
    request_url
        .join(loc)
        .map_err(|e| TransportError::Other(format!("bad upload Location {loc:?}: {e}")))
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
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        match c {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn parses_error_bodies() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:aa"},{"code":"X","detail":{"a":1}}]}"#;
        let items = parse_error_body(body);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].code, "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(items[0].detail, "sha256:aa");
        assert_eq!(items[1].detail, r#"{"a":1}"#);
        assert!(parse_error_body(b"404 page not found").is_empty());
    }

    #[test]
    fn parses_link_headers() {
        assert_eq!(
            parse_next_link(r#"</v2/x/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/x/tags/list?n=2&last=b")
        );
        assert_eq!(parse_next_link(r#"</a>; rel="prev""#), None);
    }

    #[test]
    fn redacts_urls() {
        let u = Url::parse("https://user:secret@host/v2/x/blobs/uploads/1?_state=abc").unwrap();
        assert_eq!(redact(&u), "https://host/v2/x/blobs/uploads/1");
    }
}
