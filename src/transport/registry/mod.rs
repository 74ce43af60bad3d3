//! The registry transport: the OCI Distribution API v2 over HTTP(S), with auth and TLS.
//!
//! This is a thin layer over `reqwest` (the HTTP client `oci-client` is built on) rather than over
//! `oci-client` itself. `oci-client` was the first choice, but the copy engine needs things its API
//! does not give: the registry's structured error body on a refused manifest push (the sparse-index
//! fallback reads `MANIFEST_BLOB_UNKNOWN` and its `detail` digests), response headers
//! (`Docker-Content-Digest`, `Retry-After`, `X-Sparse-Manifest-Support`, `Link`), blob uploads that
//! stream from another registry with a known length and no whole-blob buffer, retries with backoff on
//! every request, and one bearer token carrying several repository scopes (for cross-repository mounts).
//!
//! Shape: one [`RegistryClient`] per registry host (HTTP connection pool, TLS material, resolved
//! scheme, credentials, token cache), shared by the [`RegistryRepo`] values that implement
//! [`Transport`] for one repository each. Upload protocol: `POST …/blobs/uploads/` then a single
//! `PUT <location>?digest=` with the streamed body (registry 2.8 discards a body sent with the POST,
//! see REGISTRY-FACTS.md), sent once, and the session cancelled (`DELETE`) when it fails or is
//! dropped mid-flight (`UploadSession`). A blob download cut off midway resumes with a `Range`
//! request, or restarts and skips what was already delivered (`BlobDownload`), so the upload it
//! feeds never sees a byte twice.
//!
//! Auth, the way docker and skopeo do it, so that every registry that works with them works here:
//! - `GET /v2/` (unauthenticated) learns the challenge. No challenge: nothing is ever sent, so a
//!   registry that did not ask never sees a credential. Credentials are looked up ([`credentials`])
//!   only once a registry asks, so a credential helper runs only when needed.
//! - `Basic`: the user and password on every request to the registry host.
//! - `Bearer realm=…,service=…`: a token from the realm for exactly the scopes a request needs:
//!   `repository:R:pull` at a source, `repository:R:pull,push` at a destination, and for a
//!   cross-repository mount both the destination's and `repository:FROM:pull` in one token. A user
//!   and password go to the realm as basic auth (`GET`); an identity token (`identitytoken`, or a
//!   refresh token the token server handed back) is exchanged with the OAuth2 `POST`
//!   (`grant_type=refresh_token`), falling back to `GET` where the server has no `POST`. Tokens are
//!   cached per scope set until shortly before `expires_in` (at least 60 s, as docker assumes), and
//!   one token fetch runs at a time so concurrent first requests share it.
//! - A 401 mid-run (a token revoked or expired early) drops that token and fetches a new one once;
//!   a second 401 for the same request is an authentication error that says what to do.
//! - Credentials never go to another host: the `Authorization` header is attached only to requests
//!   for the registry's own scheme, host and port, and reqwest's redirect policy (kept at its
//!   default) strips it when a redirect leaves that origin (blob GETs redirected to object storage).
//!   Credentials go to a token realm only over https, on a loopback host, or with TLS verification
//!   turned off by the user.
//! - Secrets never appear in messages: errors name where a credential came from, never its value;
//!   URLs are redacted (`redact`); the header values are marked sensitive; the `Debug` of
//!   [`RegistryOptions`] hides the password.
//!
//! TLS: verified by default against the system roots plus the CAs (`*.crt`) of the registry's
//! certificate directory, which also holds a client certificate (`NAME.cert` + `NAME.key`): the
//! `--src-cert-dir`/`--dest-cert-dir` directory when given (alone, as in skopeo), else
//! `/etc/containers/certs.d/HOST[:PORT]/` and `/etc/docker/certs.d/HOST[:PORT]/` (roots
//! overridable with `MIRROR_CERTS_D`, for tests). The scheme rule is in `RegistryClient::base`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::sync::{Mutex, OnceCell};

pub mod credentials;

use super::{
    BlobStream, Fix, Hint, PushAs, RegistryErrorItem, Result, Side, SparseSupport, Transport,
    TransportError,
};
use crate::oci::{
    ContentError, Descriptor, Digest, MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES, RawManifest,
};
use crate::reference::{Target, is_loopback_host};
use credentials::{Credential, Found};

/// The environment variable that replaces the certs.d roots (a `:`-separated list). For tests,
/// which cannot write `/etc`.
pub const CERTS_D_ENV: &str = "MIRROR_CERTS_D";

/// Where docker and podman keep per-registry certificates, `ROOT/HOST[:PORT]/`.
pub const DEFAULT_CERTS_D: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// How to reach one registry.
#[derive(Clone)]
pub struct RegistryOptions {
    /// `(user, password)` given on the command line: basic auth or the token endpoint.
    /// `None`: look in the auth files ([`credentials::lookup`]).
    pub credentials: Option<(String, String)>,
    /// The only auth file read (else `$REGISTRY_AUTH_FILE`, else the defaults).
    pub authfile: Option<PathBuf>,
    /// Verify TLS certificates; `false` also allows plain http to any host.
    pub tls_verify: bool,
    /// A directory of CAs and a client certificate, read instead of certs.d.
    pub cert_dir: Option<PathBuf>,
    /// The certs.d roots; `None`: `$MIRROR_CERTS_D`, else [`DEFAULT_CERTS_D`].
    pub certs_d: Option<Vec<PathBuf>>,
    /// Retries of a failed request (connection error, 408, 429, 5xx).
    pub retry_times: u32,
    /// Which side of the command this registry is: the hints of errors carry it, so that the
    /// command line can name its own flags for that side.
    pub side: Side,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            credentials: None,
            authfile: None,
            tls_verify: true,
            cert_dir: None,
            certs_d: None,
            retry_times: 3,
            side: Side::Either,
        }
    }
}

impl std::fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|(u, _)| format!("{u}:<redacted>")),
            )
            .field("authfile", &self.authfile)
            .field("tls_verify", &self.tls_verify)
            .field("cert_dir", &self.cert_dir)
            .field("certs_d", &self.certs_d)
            .field("retry_times", &self.retry_times)
            .field("side", &self.side)
            .finish()
    }
}

impl RegistryOptions {
    fn hint(&self, fix: Fix) -> Option<Hint> {
        Some(Hint {
            side: self.side,
            fix,
        })
    }

    /// Where the CA or client certificate of `registry` would be read: the certificate directory
    /// given, else `ROOT/REGISTRY/` under each certs.d root.
    fn cert_dirs_for(&self, registry: &str) -> Vec<PathBuf> {
        match &self.cert_dir {
            Some(d) => vec![d.clone()],
            None => self
                .certs_d_roots()
                .iter()
                .map(|r| r.join(registry))
                .collect(),
        }
    }

    fn certs_d_roots(&self) -> Vec<PathBuf> {
        if let Some(r) = &self.certs_d {
            return r.clone();
        }
        match std::env::var_os(CERTS_D_ENV) {
            Some(v) => std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
            None => DEFAULT_CERTS_D.iter().map(PathBuf::from).collect(),
        }
    }
}

/// The registry sessions of one run: one [`RegistryClient`] per registry host and options, shared
/// by every image of the run (a `sync` of many images), so the scheme probe, `/v2/` ping, CA store,
/// tokens and connections are set up once per registry instead of once per image. The caller
/// creates it and passes it down; there is no process-wide cache.
#[derive(Default)]
pub struct Sessions {
    clients: std::sync::Mutex<HashMap<String, Arc<RegistryClient>>>,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// The client for `registry` with these options, made on first use.
    pub fn get(
        &self,
        registry: &str,
        api_host: &str,
        options: &RegistryOptions,
    ) -> Result<Arc<RegistryClient>> {
        use sha2::Digest as _;
        // The key holds a hash of the credentials, never the credentials themselves.
        let secret = options
            .credentials
            .as_ref()
            .map(|(u, p)| hex::encode(sha2::Sha256::digest(format!("{u}\0{p}").as_bytes())))
            .unwrap_or_default();
        let key = format!(
            "{registry}|{api_host}|{secret}|{:?}|{}|{:?}|{:?}|{}|{:?}",
            options.authfile,
            options.tls_verify,
            options.cert_dir,
            options.certs_d,
            options.retry_times,
            options.side
        );
        if let Some(c) = self.clients.lock().expect("lock").get(&key) {
            return Ok(c.clone());
        }
        let client = RegistryClient::new(registry, api_host, options.clone())?;
        Ok(self
            .clients
            .lock()
            .expect("lock")
            .entry(key)
            .or_insert(client)
            .clone())
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
    /// The certificate directories that exist for this registry (for messages).
    cert_dirs: Vec<PathBuf>,
    base: OnceCell<Base>,
    /// A challenge learned from a 401 after a ping that asked for nothing.
    learned: std::sync::Mutex<Option<Challenge>>,
    /// Credentials by repository (auth files may hold per-namespace logins).
    creds: Mutex<HashMap<String, Arc<Creds>>>,
    /// `Authorization` values: bearer tokens by scope set, basic auth by repository.
    tokens: std::sync::Mutex<HashMap<String, Cached>>,
    /// One token fetch at a time: concurrent first requests wait for one token.
    fetching: Mutex<()>,
    /// The pause between requests while the registry reports a nearly used-up quota
    /// (`ratelimit-remaining`); zero otherwise.
    pace: std::sync::Mutex<Duration>,
}

#[derive(Debug, Clone)]
struct Base {
    url: Url,
    sparse: SparseSupport,
    challenge: Option<Challenge>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// The credentials for one repository, resolved once.
struct Creds {
    found: Option<Found>,
    /// A refresh token the token server returned (OAuth2): used instead of the password after.
    refresh: std::sync::Mutex<Option<String>>,
}

#[derive(Clone)]
struct Cached {
    value: HeaderValue,
    /// `None`: does not expire (basic auth).
    expires: Option<Instant>,
}

/// What the token endpoint answers (distribution token spec, OAuth2 token response).
#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl RegistryClient {
    pub fn new(
        registry: &str,
        api_host: &str,
        options: RegistryOptions,
    ) -> Result<Arc<RegistryClient>> {
        // The process-wide TLS crypto provider (ring); installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = load_tls(registry, api_host, &options)?;
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("mirror/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .tls_danger_accept_invalid_certs(!options.tls_verify);
        if !tls.roots.is_empty() {
            builder = builder.tls_certs_merge(tls.roots);
        }
        if let Some(identity) = tls.identity {
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| TransportError::Setup {
            registry: registry.to_string(),
            message: format!("cannot set up the HTTP client: {}", error_chain(&e)),
        })?;
        Ok(Arc::new(RegistryClient {
            http,
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            options,
            cert_dirs: tls.dirs,
            base: OnceCell::new(),
            learned: std::sync::Mutex::new(None),
            creds: Mutex::new(HashMap::new()),
            tokens: std::sync::Mutex::new(HashMap::new()),
            fetching: Mutex::new(()),
            pace: std::sync::Mutex::new(Duration::ZERO),
        }))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Resolve the scheme once: https, or plain http only with TLS verification off or for a
    /// loopback host (`localhost`, 127.0.0.0/8, ::1) whose server does not speak TLS. https is
    /// always tried first, and a certificate that fails verification is an error that says how
    /// to trust it, never a reason to fall back.
    async fn base(&self) -> Result<&Base> {
        self.base
            .get_or_try_init(|| async {
                let https = self.root("https")?;
                match self.ping(&https).await {
                    Ok(base) => Ok(base),
                    // The server refused the handshake (e.g. it wants a client certificate).
                    Err(e) if is_tls_alert(&e) => Err(self.tls_handshake_error(e)),
                    Err(e) if is_certificate_error(&e) => Err(self.certificate_error(e)),
                    Err(e) => {
                        let plain_allowed =
                            is_loopback_host(&self.api_host) || !self.options.tls_verify;
                        if !plain_allowed {
                            return Err(e);
                        }
                        let http = self.root("http")?;
                        match self.ping(&http).await {
                            // A TLS server answers plain http with 400 ("Client sent an HTTP
                            // request to an HTTPS server"): it does speak TLS, so the https
                            // failure (a refused handshake, a client certificate it wants) is
                            // the one to report.
                            Err(TransportError::Registry { status: 400, .. }) => {
                                Err(self.tls_handshake_error(e))
                            }
                            other => other,
                        }
                    }
                }
            })
            .await
    }

    /// `SCHEME://API_HOST/`.
    fn root(&self, scheme: &str) -> Result<Url> {
        Url::parse(&format!("{scheme}://{}/", self.api_host)).map_err(|e| TransportError::Setup {
            registry: self.registry.clone(),
            message: format!("not a valid registry host {:?}: {e}", self.api_host),
        })
    }

    /// The server speaks TLS but the handshake failed for another reason than its certificate.
    fn tls_handshake_error(&self, e: TransportError) -> TransportError {
        TransportError::Tls {
            registry: self.registry.clone(),
            message: format!("{e}: the registry refused the TLS connection"),
            hint: self.options.hint(Fix::ClientCertificate {
                dirs: self.options.cert_dirs_for(&self.registry),
            }),
        }
    }

    /// A certificate failure with what to do about it (not retried: it will not get better).
    fn certificate_error(&self, e: TransportError) -> TransportError {
        let tried = if self.cert_dirs.is_empty() {
            String::new()
        } else {
            let dirs: Vec<String> = self
                .cert_dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            format!(" (with the CAs of {})", dirs.join(", "))
        };
        TransportError::Tls {
            registry: self.registry.clone(),
            message: format!("{e}: the registry's TLS certificate did not verify{tried}"),
            hint: self.options.hint(Fix::TrustCertificate {
                dirs: self.options.cert_dirs_for(&self.registry),
            }),
        }
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
        let challenge = challenge_of(resp.headers());
        match resp.status() {
            s if s.is_success() || s == StatusCode::UNAUTHORIZED => Ok(Base {
                url: root.clone(),
                sparse,
                challenge: if s == StatusCode::UNAUTHORIZED {
                    challenge.or(Some(Challenge::Basic))
                } else {
                    None
                },
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
            .map_err(|e| TransportError::Setup {
                registry: self.registry.clone(),
                message: format!("bad request path {path:?}: {e}"),
            })
    }

    /// Send a request built by `build` (called again for each attempt) for `repository` with the
    /// token `scopes`, authenticating as the registry asks, refreshing the authorization once on a
    /// 401, and retrying connection errors, 408, 429 and 5xx with backoff. Returns the final
    /// response, whatever its status (but a second 401 is an authentication error).
    async fn send(
        &self,
        method: Method,
        url: Url,
        repository: &str,
        scopes: &[String],
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response> {
        let mut attempt = 0u32;
        let mut refreshed = false;
        let same_origin = self.is_registry_origin(&url).await?;
        loop {
            let auth = if same_origin {
                self.authorization(repository, scopes).await?
            } else {
                None
            };
            let mut req = build(self.http.request(method.clone(), url.clone()));
            if let Some(a) = &auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            let pause = *self.pace.lock().expect("lock");
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            let started = Instant::now();
            let sent = req.send().await;
            if let Ok(resp) = &sent
                && let Some(p) = pace_for(resp.headers())
            {
                let mut current = self.pace.lock().expect("lock");
                if p > *current {
                    tracing::warn!(registry = %self.registry, pause_ms = p.as_millis() as u64, "the registry's rate limit is nearly used up: pacing requests");
                }
                *current = p;
            }
            // Request-level logging (`-v`): the redacted URL only, never headers or tokens.
            match &sent {
                Ok(resp) => tracing::debug!(
                    method = %method,
                    url = %redact(&url),
                    status = resp.status().as_u16(),
                    ms = started.elapsed().as_millis() as u64,
                    attempt,
                    "request"
                ),
                Err(e) => {
                    tracing::debug!(method = %method, url = %redact(&url), attempt, error = %e, "request failed")
                }
            }
            match sent {
                Ok(resp)
                    if resp.status() == StatusCode::UNAUTHORIZED && !refreshed && same_origin =>
                {
                    refreshed = true;
                    let challenge = challenge_of(resp.headers()).unwrap_or(Challenge::Basic);
                    self.forget(repository, scopes, challenge, auth.as_ref())
                        .await;
                }
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    return Err(self.auth_failed(repository, scopes).await);
                }
                // A pull quota used up (Docker Hub's `ratelimit-remaining: 0`) does not come back
                // within any retry: say so at once instead of hammering the registry.
                Ok(resp)
                    if resp.status() == StatusCode::TOO_MANY_REQUESTS
                        && quota_exhausted(resp.headers()) =>
                {
                    return Err(TransportError::RateLimited {
                        registry: self.registry.clone(),
                        message: match header_str(resp.headers(), "ratelimit-limit") {
                            Some(limit) => format!("ratelimit-limit {limit}"),
                            None => "limit unknown".into(),
                        },
                        hint: self.options.hint(Fix::LoginForQuota),
                    });
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

    /// Is `url` on the registry's own scheme, host and port (where its credentials may go)?
    async fn is_registry_origin(&self, url: &Url) -> Result<bool> {
        let base = &self.base().await?.url;
        Ok(url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default())
    }

    /// The challenge in force: one learned from a later 401, else the ping's.
    async fn challenge(&self) -> Result<Option<Challenge>> {
        if let Some(c) = self.learned.lock().expect("lock").clone() {
            return Ok(Some(c));
        }
        Ok(self.base().await?.challenge.clone())
    }

    fn cached(&self, key: &str) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().expect("lock");
        let c = tokens.get(key)?;
        match c.expires {
            Some(t) if Instant::now() >= t => None,
            _ => Some(c.value.clone()),
        }
    }

    /// The `Authorization` value for a request, fetching a token when none is cached; `None`
    /// when the registry asked for nothing.
    async fn authorization(
        &self,
        repository: &str,
        scopes: &[String],
    ) -> Result<Option<HeaderValue>> {
        let Some(challenge) = self.challenge().await? else {
            return Ok(None);
        };
        let key = cache_key(&challenge, repository, scopes);
        if let Some(v) = self.cached(&key) {
            return Ok(Some(v));
        }
        let _one_at_a_time = self.fetching.lock().await;
        if let Some(v) = self.cached(&key) {
            return Ok(Some(v));
        }
        let fresh = self.fetch(&challenge, repository, scopes).await?;
        let value = fresh.value.clone();
        self.tokens.lock().expect("lock").insert(key, fresh);
        Ok(Some(value))
    }

    /// After a 401: remember the challenge and drop the value that was refused, unless another
    /// request already replaced it, so the next [`Self::authorization`] fetches a new one.
    async fn forget(
        &self,
        repository: &str,
        scopes: &[String],
        challenge: Challenge,
        sent: Option<&HeaderValue>,
    ) {
        let _one_at_a_time = self.fetching.lock().await;
        let key = cache_key(&challenge, repository, scopes);
        *self.learned.lock().expect("lock") = Some(challenge);
        let mut tokens = self.tokens.lock().expect("lock");
        let replaced = tokens.get(&key).is_some_and(|c| Some(&c.value) != sent);
        if !replaced {
            tokens.remove(&key);
        }
    }

    /// The credentials for `repository`: the flag's, else from the auth files (looked up once,
    /// off the executor: it may run a credential helper).
    async fn creds_for(&self, repository: &str) -> Result<Arc<Creds>> {
        let mut map = self.creds.lock().await;
        if let Some(c) = map.get(repository) {
            return Ok(c.clone());
        }
        let found = match &self.options.credentials {
            Some((user, pass)) => Some(Found {
                credential: Credential::Basic {
                    username: user.clone(),
                    password: pass.clone(),
                },
                source: "the command line".into(),
            }),
            None => {
                let registry = self.registry.clone();
                let repo = repository.to_string();
                let authfile = self.options.authfile.clone();
                tokio::task::spawn_blocking(move || {
                    credentials::lookup(&registry, &repo, authfile.as_deref())
                })
                .await
                .map_err(|e| self.auth_error(format!("the credential lookup failed: {e}")))?
                .map_err(|e| TransportError::Auth {
                    registry: self.registry.clone(),
                    message: e.0,
                    hint: None,
                })?
            }
        };
        // Repositories with the same login share it, and so the refresh token it earns.
        let c = match map.values().find(|c| c.found == found) {
            Some(same) => same.clone(),
            None => Arc::new(Creds {
                found,
                refresh: std::sync::Mutex::new(None),
            }),
        };
        map.insert(repository.to_string(), c.clone());
        Ok(c)
    }

    fn auth_error(&self, message: String) -> TransportError {
        TransportError::Auth {
            registry: self.registry.clone(),
            message,
            hint: None,
        }
    }

    /// An authentication error that credentials would fix.
    fn credentials_error(&self, message: String) -> TransportError {
        TransportError::Auth {
            registry: self.registry.clone(),
            message,
            hint: self.options.hint(Fix::Credentials {
                registry: self.registry.clone(),
            }),
        }
    }

    /// No credentials were found, and the registry wants some.
    fn needs_credentials(&self, why: &str) -> TransportError {
        self.credentials_error(format!("{why}, and no credentials were found"))
    }

    async fn auth_failed(&self, repository: &str, scopes: &[String]) -> TransportError {
        let found = match self.creds_for(repository).await {
            Ok(c) => c.found.as_ref().map(|f| f.source.clone()),
            Err(e) => return e,
        };
        let wanted = match scopes.first().and_then(|s| s.rsplit(':').next()) {
            Some(actions) if actions.contains("push") => "push to",
            _ => "pull from",
        };
        match found {
            Some(source) => self.auth_error(format!(
                "the registry refused the credentials from {source} (HTTP 401): check the user name and password and that the user may {wanted} {repository}, or log in again with `docker login {}`",
                self.registry
            )),
            None => self.needs_credentials("the registry requires authentication (HTTP 401)"),
        }
    }

    /// A new `Authorization` value for `challenge`.
    async fn fetch(
        &self,
        challenge: &Challenge,
        repository: &str,
        scopes: &[String],
    ) -> Result<Cached> {
        let creds = self.creds_for(repository).await?;
        match challenge {
            Challenge::Basic => match creds.found.as_ref().map(|f| (&f.credential, &f.source)) {
                None => Err(self.needs_credentials("the registry requires authentication")),
                Some((Credential::Basic { username, password }, source)) => Ok(Cached {
                    value: self.sensitive(&format!("Basic {}", basic(username, password)), source)?,
                    expires: None,
                }),
                Some((Credential::IdentityToken(_), source)) => Err(self.credentials_error(format!(
                    "the registry asks for a user name and password, but {source} holds an identity token"
                ))),
            },
            Challenge::Bearer { realm, service } => {
                self.fetch_token(realm, service.as_deref(), scopes, &creds)
                    .await
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: &Creds,
    ) -> Result<Cached> {
        let realm_url = Url::parse(realm).map_err(|_| {
            self.auth_error(format!(
                "the registry's token realm {:?} is not a URL",
                realm.split('?').next().unwrap_or("")
            ))
        })?;
        let (password, identity, source) = match creds.found.as_ref() {
            Some(f) => match &f.credential {
                Credential::Basic { username, password } => (
                    Some((username.as_str(), password.as_str())),
                    None,
                    Some(f.source.as_str()),
                ),
                Credential::IdentityToken(t) => (None, Some(t.clone()), Some(f.source.as_str())),
            },
            None => (None, None, None),
        };
        let refresh = creds.refresh.lock().expect("lock").clone().or(identity);
        if let Some(source) = source {
            let protected = realm_url.scheme() == "https"
                || realm_url.host_str().is_some_and(is_loopback_host)
                || !self.options.tls_verify;
            if !protected {
                return Err(TransportError::Auth {
                    registry: self.registry.clone(),
                    message: format!(
                        "the token server {} is plain http: the credentials from {source} are not sent there",
                        redact(&realm_url)
                    ),
                    hint: self.options.hint(Fix::AllowInsecure),
                });
            }
        }
        let answer = match refresh {
            Some(token) => match self.post_token(&realm_url, service, scopes, &token).await? {
                Some(a) => a,
                None => match password {
                    Some(_) => {
                        self.get_token(&realm_url, service, scopes, password, source)
                            .await?
                    }
                    None => {
                        return Err(self.auth_error(format!(
                            "the token server {} refused the identity token from {}: log in again with `docker login {}`",
                            redact(&realm_url),
                            source.unwrap_or("the auth file"),
                            self.registry
                        )));
                    }
                },
            },
            None => {
                self.get_token(&realm_url, service, scopes, password, source)
                    .await?
            }
        };
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.auth_error("the token server's answer has no token".into()))?;
        if let Some(r) = answer.refresh_token.filter(|r| !r.is_empty()) {
            *creds.refresh.lock().expect("lock") = Some(r);
        }
        let lifetime = answer
            .expires_in
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(60)
            .max(60);
        Ok(Cached {
            value: self.sensitive(&format!("Bearer {token}"), "the token server's answer")?,
            // Renew a little early, so a token does not expire between the check and the use.
            expires: Some(Instant::now() + Duration::from_secs(lifetime - lifetime / 10)),
        })
    }

    /// The OAuth2 refresh-token grant. `None`: this server has no POST endpoint, or refused the
    /// refresh token (the caller falls back to the password when it has one).
    async fn post_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
        refresh_token: &str,
    ) -> Result<Option<TokenAnswer>> {
        let mut form = Url::parse("http://form.invalid/").expect("static URL");
        {
            let mut q = form.query_pairs_mut();
            q.append_pair("grant_type", "refresh_token");
            q.append_pair("refresh_token", refresh_token);
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", &scopes.join(" "));
            q.append_pair("client_id", "mirror");
            q.append_pair("access_type", "offline");
        }
        let body = form.query().unwrap_or("").to_string();
        let resp = self
            .send_unauthenticated(Method::POST, realm, &move |r| {
                r.header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body.clone())
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(resp.json_bytes().await?)),
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::BAD_REQUEST
            | StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN => Ok(None),
            s => Err(self.auth_error(format!(
                "the token server {} answered HTTP {}",
                redact(realm),
                s.as_u16()
            ))),
        }
    }

    /// The distribution token `GET`, with basic auth when there is a password.
    async fn get_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
        password: Option<(&str, &str)>,
        source: Option<&str>,
    ) -> Result<TokenAnswer> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for scope in scopes {
                q.append_pair("scope", scope);
            }
        }
        let header = match password {
            Some((u, p)) => Some(self.sensitive(
                &format!("Basic {}", basic(u, p)),
                source.unwrap_or("the credentials"),
            )?),
            None => None,
        };
        let resp = self
            .send_unauthenticated(Method::GET, &url, &move |r| match &header {
                Some(h) => r.header(AUTHORIZATION, h.clone()),
                None => r,
            })
            .await?;
        match resp.status() {
            s if s.is_success() => resp.json_bytes().await,
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(match source {
                Some(source) => self.auth_error(format!(
                    "the token server refused the credentials from {source} (HTTP {}): check the user name and password, or log in again with `docker login {}`",
                    s.as_u16(),
                    self.registry
                )),
                None => self.needs_credentials(&format!(
                    "the registry requires authentication (its token server answered HTTP {})",
                    s.as_u16()
                )),
            }),
            s => Err(self.auth_error(format!(
                "the token server {} answered HTTP {}",
                redact(realm),
                s.as_u16()
            ))),
        }
    }

    /// A request with retries but none of the registry's authorization (token endpoints).
    async fn send_unauthenticated(
        &self,
        method: Method,
        url: &Url,
        build: &(dyn Fn(RequestBuilder) -> RequestBuilder + Send + Sync),
    ) -> Result<Response> {
        let mut attempt = 0u32;
        loop {
            match build(self.http.request(method.clone(), url.clone()))
                .send()
                .await
            {
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
                        url: redact(url),
                        message: error_chain(&e),
                    });
                }
            }
        }
    }
}

/// Which cached value a request uses: a bearer token covers exactly its scope set; basic auth is
/// per repository (whose credentials may differ).
fn cache_key(challenge: &Challenge, repository: &str, scopes: &[String]) -> String {
    match challenge {
        Challenge::Basic => format!("basic {repository}"),
        Challenge::Bearer { .. } => format!("bearer {}", scopes.join(" ")),
    }
}

impl RegistryClient {
    /// An `Authorization` value, marked sensitive (never logged). `source` names where the secret
    /// came from, for the error when it holds characters a header cannot carry.
    fn sensitive(&self, value: &str, source: &str) -> Result<HeaderValue> {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            self.auth_error(format!(
                "{source} holds characters not allowed in an HTTP header"
            ))
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// CAs and a client certificate for one registry, and the directories they came from.
struct TlsMaterial {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    dirs: Vec<PathBuf>,
}

/// Read the registry's certificate directory: the given one alone, else every
/// `CERTS_D_ROOT/HOST[:PORT]/` that exists (for the name the user wrote and the API host).
/// `*.crt`: CAs; `NAME.cert` + `NAME.key`: a client certificate (docker's layout).
fn load_tls(registry: &str, api_host: &str, options: &RegistryOptions) -> Result<TlsMaterial> {
    let unusable = |message: String| TransportError::Tls {
        registry: registry.to_string(),
        message,
        hint: options.hint(Fix::CertificateDirectory),
    };
    let dirs: Vec<PathBuf> = match &options.cert_dir {
        Some(d) => {
            if !d.is_dir() {
                return Err(unusable(format!(
                    "the certificate directory {} is not a directory",
                    d.display()
                )));
            }
            vec![d.clone()]
        }
        None => {
            let mut hosts = vec![registry];
            if api_host != registry {
                hosts.push(api_host);
            }
            options
                .certs_d_roots()
                .iter()
                .flat_map(|root| hosts.iter().map(move |h| root.join(h)))
                .filter(|d| d.is_dir())
                .collect()
        }
    };
    let mut material = TlsMaterial {
        roots: Vec::new(),
        identity: None,
        dirs: dirs.clone(),
    };
    for dir in &dirs {
        read_cert_dir(dir, &mut material, &unusable)?;
    }
    Ok(material)
}

fn read_cert_dir(
    dir: &Path,
    material: &mut TlsMaterial,
    unusable: &dyn Fn(String) -> TransportError,
) -> Result<()> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| TransportError::io(dir.display(), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let read = |p: &Path| std::fs::read(p).map_err(|e| TransportError::io(p.display(), e));
    for path in &names {
        match path.extension().and_then(|e| e.to_str()) {
            Some("crt") => {
                let certs = reqwest::Certificate::from_pem_bundle(&read(path)?)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        unusable(format!(
                            "{}: not a PEM certificate (a CA *.crt file is expected)",
                            path.display()
                        ))
                    })?;
                material.roots.extend(certs);
            }
            Some("cert") => {
                let key = path.with_extension("key");
                if !key.is_file() {
                    return Err(unusable(format!(
                        "{}: a client certificate without its key {}",
                        path.display(),
                        key.display()
                    )));
                }
                if material.identity.is_some() {
                    continue; // one client certificate per registry: the first by name
                }
                let mut pem = read(path)?;
                pem.push(b'\n');
                pem.extend(read(&key)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                    unusable(format!(
                        "{} and {}: not a PEM client certificate and its private key",
                        path.display(),
                        key.display()
                    ))
                })?;
                material.identity = Some(identity);
            }
            Some("key") => {
                let cert = path.with_extension("cert");
                if !cert.is_file() {
                    return Err(unusable(format!(
                        "{}: a client key without its certificate {}",
                        path.display(),
                        cert.display()
                    )));
                }
            }
            _ => {}
        }
    }
    Ok(())
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
        // The serde error only: the body may hold a token.
        serde_json::from_slice(&bytes).map_err(|e| {
            TransportError::protocol(
                url,
                format!(
                    "unexpected answer (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })
    }
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// The challenge of a 401: a `Bearer` one if any `WWW-Authenticate` offers it, else `Basic`.
fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .collect();
    all.iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or(all.first())
        .cloned()
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
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

/// How long to wait between requests given a registry's `ratelimit-limit` / `ratelimit-remaining`
/// headers (Docker Hub: `100;w=21600`). Plenty left: no pause. Under a tenth of the quota left:
/// spread what is left over the window, at most 2 s a request, so a nightly job slows down before
/// it runs dry instead of failing halfway. `None`: the registry reports no limits.
fn pace_for(headers: &HeaderMap) -> Option<Duration> {
    let parse = |name: &str| -> Option<(u64, Option<u64>)> {
        let v = header_str(headers, name)?;
        let mut parts = v.split(';');
        let n = parts.next()?.trim().parse().ok()?;
        let w = parts.find_map(|p| p.trim().strip_prefix("w=")?.parse().ok());
        Some((n, w))
    };
    let (remaining, window) = parse("ratelimit-remaining")?;
    let (limit, limit_window) = parse("ratelimit-limit").unwrap_or((0, None));
    if remaining == 0 || limit == 0 || remaining * 10 >= limit {
        return Some(Duration::ZERO);
    }
    let window = window.or(limit_window).unwrap_or(3600);
    Some(Duration::from_millis((window * 1000 / remaining).min(2000)))
}

/// `ratelimit-remaining: 0[;w=…]`: the registry's quota for this window is used up.
fn quota_exhausted(headers: &HeaderMap) -> bool {
    header_str(headers, "ratelimit-remaining")
        .and_then(|v| v.split(';').next())
        .and_then(|v| v.trim().parse::<u64>().ok())
        == Some(0)
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
    crate::transport::chain(e)
}

fn is_tls_alert(e: &TransportError) -> bool {
    matches!(e, TransportError::Http { message, .. } if message.contains("received fatal alert"))
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
        self.client
            .send(method, url, &self.repository, &self.scopes(), build)
            .await
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
                location: self.manifest_location(target),
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
                    location: self.manifest_location(target),
                    source: crate::oci::ManifestError::TooLarge { size: body.len() },
                });
            }
        }
        let raw = RawManifest::new(body.into(), &media_type);
        check_served_media_type(&media_type, &raw, &self.manifest_location(target))?;
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
        Ok(BlobDownload {
            client: self.client.clone(),
            repository: self.repository.clone(),
            scopes: self.scopes(),
            url,
            size: desc.size,
            body: Some(resp.bytes_stream().boxed()),
            offset: 0,
            skip: 0,
            resumes: 0,
            cause: None,
            done: false,
        }
        .into_stream())
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
        let session = UploadSession::open(self, upload_location(&start, resp.headers())?);
        let mut location = session.url().clone();
        location
            .query_pairs_mut()
            .append_pair("digest", desc.digest.as_str());

        // The body can be sent only once, so this request is sent once (`send_once`); the copy
        // engine retries the whole blob with a fresh source stream, after this session is cancelled.
        let size = desc.size;
        let resp = self
            .send_once(Method::PUT, location.clone(), move |r| {
                r.header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size.to_string())
                    .body(reqwest::Body::wrap_stream(body))
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                session.cancel().await;
                return Err(e);
            }
        };
        if resp.status() != StatusCode::CREATED {
            let err = registry_error("PUT", &location, resp).await;
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
            .send(Method::POST, url.clone(), &self.repository, &scopes, &|r| {
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
                    url = url.join(&n).map_err(|e| {
                        TransportError::protocol(
                            redact(&url),
                            format!("bad Link header {n:?}: {e}"),
                        )
                    })?
                }
                None => break,
            }
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    async fn referrers(&self, subject: &Digest) -> Result<Option<Vec<Descriptor>>> {
        let mut url = self.url(&format!("referrers/{subject}")).await?;
        let mut out = Vec::new();
        loop {
            let resp = self
                .request(Method::GET, url.clone(), &|r| {
                    r.header(ACCEPT, crate::oci::OCI_INDEX)
                })
                .await?;
            match resp.status() {
                // No referrers API (registry 2.x answers a plain-text 404): use the tag schema.
                StatusCode::NOT_FOUND
                | StatusCode::METHOD_NOT_ALLOWED
                | StatusCode::BAD_REQUEST => return Ok(None),
                s if s.is_success() => {}
                _ => return Err(registry_error("GET", &url, resp).await),
            }
            let next = header_str(resp.headers(), "link").and_then(parse_next_link);
            #[derive(serde::Deserialize)]
            struct List {
                #[serde(default)]
                manifests: Vec<Descriptor>,
            }
            let page: List = resp.json_bytes().await?;
            out.extend(page.manifests);
            match next {
                Some(n) => {
                    url = url.join(&n).map_err(|e| {
                        TransportError::protocol(
                            redact(&url),
                            format!("bad Link header {n:?}: {e}"),
                        )
                    })?
                }
                None => return Ok(Some(out)),
            }
        }
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
    /// `docker://host/repo:tag` or `docker://host/repo@sha256:…`, for messages.
    fn manifest_location(&self, target: &Target) -> String {
        match target {
            Target::Tag(t) => format!("{}:{t}", self.location()),
            Target::Digest(d) => format!("{}@{d}", self.location()),
        }
    }

    async fn cancel_upload(&self, location: &Url) {
        cancel_upload_at(&self.client, &self.repository, &self.scopes(), location).await;
    }

    /// One attempt of a request whose body cannot be sent again (a streamed blob upload):
    /// authorized like every request, but neither retried nor resent after a 401 here. A 401 drops
    /// the refused authorization and is a retryable error, so the copy engine's next attempt of
    /// the blob gets a fresh token.
    async fn send_once(
        &self,
        method: Method,
        url: Url,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let client = &self.client;
        let scopes = self.scopes();
        let same_origin = client.is_registry_origin(&url).await?;
        let auth = if same_origin {
            client.authorization(&self.repository, &scopes).await?
        } else {
            None
        };
        let mut req = build(client.http.request(method.clone(), url.clone()));
        if let Some(a) = &auth {
            req = req.header(AUTHORIZATION, a.clone());
        }
        let started = Instant::now();
        let sent = req.send().await;
        match &sent {
            Ok(resp) => tracing::debug!(
                method = %method,
                url = %redact(&url),
                status = resp.status().as_u16(),
                ms = started.elapsed().as_millis() as u64,
                "request"
            ),
            Err(e) => {
                tracing::debug!(method = %method, url = %redact(&url), error = %e, "request failed")
            }
        }
        match sent {
            Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED && same_origin => {
                let challenge = challenge_of(resp.headers()).unwrap_or(Challenge::Basic);
                client
                    .forget(&self.repository, &scopes, challenge, auth.as_ref())
                    .await;
                Err(TransportError::Http {
                    method: method.to_string(),
                    url: redact(&url),
                    message: "the registry refused the authorization of the upload (HTTP 401)"
                        .into(),
                })
            }
            Ok(resp) => Ok(resp),
            Err(e) => Err(TransportError::Http {
                method: method.to_string(),
                url: redact(&url),
                message: error_chain(&e),
            }),
        }
    }
}

/// DELETE an upload session (best effort: a registry that cannot delete sessions expires them).
/// The session URL keeps its query (registry 2.x refuses a DELETE without its `_state`), less a
/// `digest` parameter added for the final PUT.
async fn cancel_upload_at(
    client: &RegistryClient,
    repository: &str,
    scopes: &[String],
    location: &Url,
) {
    let mut url = location.clone();
    let kept: Vec<(String, String)> = location
        .query_pairs()
        .filter(|(k, _)| k != "digest")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    let _ = client
        .send(Method::DELETE, url, repository, scopes, &|r| r)
        .await;
}

/// Upload sessions being cancelled in the background (see [`UploadSession`]).
static CANCELLING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Wait (at most `limit`) for the upload sessions that were dropped while open to be cancelled.
/// The CLI calls this before it exits, so an interrupted copy leaves no upload session behind
/// where the registry can delete them.
pub async fn finish_cancellations(limit: Duration) {
    let deadline = Instant::now() + limit;
    while CANCELLING.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An open blob upload session. Closed after the final PUT succeeded; cancelled (DELETE) when the
/// upload failed; and when it is dropped while still open — the copy was interrupted, or a sibling
/// transfer failed and the engine dropped this one mid-flight — the DELETE is sent from a
/// background task, counted in [`CANCELLING`] until it ends.
struct UploadSession {
    client: Arc<RegistryClient>,
    repository: String,
    scopes: Vec<String>,
    url: Url,
    open: bool,
}

impl UploadSession {
    fn open(repo: &RegistryRepo, url: Url) -> UploadSession {
        UploadSession {
            client: repo.client.clone(),
            repository: repo.repository.clone(),
            scopes: repo.scopes(),
            url,
            open: true,
        }
    }

    fn url(&self) -> &Url {
        &self.url
    }

    /// The upload is complete: nothing to cancel.
    fn close(mut self) {
        self.open = false;
    }

    async fn cancel(mut self) {
        self.open = false;
        cancel_upload_at(&self.client, &self.repository, &self.scopes, &self.url).await;
    }
}

impl Drop for UploadSession {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        /// Decrements [`CANCELLING`] however the task ends (also when the runtime drops it).
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                CANCELLING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        CANCELLING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let counted = Counted;
        let (client, repository, scopes, url) = (
            self.client.clone(),
            std::mem::take(&mut self.repository),
            std::mem::take(&mut self.scopes),
            self.url.clone(),
        );
        runtime.spawn(async move {
            let _counted = counted;
            cancel_upload_at(&client, &repository, &scopes, &url).await;
        });
    }
}

/// A blob download that survives a cut connection: the stream the copy engine sees goes on where
/// it stopped, so the upload it feeds keeps flowing. After a body error (or an early end) it asks
/// again with `Range: bytes=N-`: a registry that answers 206 from N continues the body; one that
/// ignores ranges (200) sends the whole blob again and its first N bytes are dropped, so the
/// consumer never sees a byte twice; 416 ends the stream (the size check above reports it).
/// Digest and size are verified above this stream (`VerifyingStream` in `copy`) over the whole
/// blob, so a resumed body that differs is caught like any other corruption. At most
/// `--retry-times` resumptions per download (each resumption request has its own retries of
/// 408/429/5xx, like every request).
struct BlobDownload {
    client: Arc<RegistryClient>,
    repository: String,
    scopes: Vec<String>,
    url: Url,
    size: u64,
    body: Option<futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>>,
    /// Bytes handed to the consumer so far.
    offset: u64,
    /// Bytes of the current body still to drop (a server that ignored the range resent them).
    skip: u64,
    resumes: u32,
    /// Why the current body ended early.
    cause: Option<TransportError>,
    done: bool,
}

impl BlobDownload {
    fn into_stream(self) -> BlobStream {
        futures::stream::unfold(self, |mut d| async move {
            let item = d.next_chunk().await?;
            Some((item, d))
        })
        .boxed()
    }

    fn http_error(&self, message: String) -> TransportError {
        TransportError::Http {
            method: "GET".into(),
            url: redact(&self.url),
            message,
        }
    }

    async fn next_chunk(&mut self) -> Option<Result<bytes::Bytes>> {
        loop {
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                match self.reopen().await {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let n = self.skip.min(chunk.len() as u64);
                        self.skip -= n;
                        chunk = chunk.slice(n as usize..);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.offset += chunk.len() as u64;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    self.cause = Some(self.http_error(error_chain(&e)));
                    self.body = None;
                }
                None if self.offset < self.size => {
                    self.cause = Some(self.http_error(format!(
                        "the body ended after {} of {} bytes",
                        self.offset, self.size
                    )));
                    self.body = None;
                }
                None => {
                    self.done = true;
                    return None;
                }
            }
        }
    }

    /// Ask for the rest. `Ok(false)`: the server has nothing past `offset` (416).
    async fn reopen(&mut self) -> Result<bool> {
        let cause = self
            .cause
            .take()
            .unwrap_or_else(|| self.http_error("the download stopped".into()));
        if self.resumes >= self.client.options.retry_times {
            return Err(cause);
        }
        tracing::debug!(
            url = %redact(&self.url),
            offset = self.offset,
            size = self.size,
            error = %cause,
            "blob download broke off; resuming"
        );
        backoff(self.resumes, &HeaderMap::new()).await;
        self.resumes += 1;
        let range = format!("bytes={}-", self.offset);
        let resp = self
            .client
            .send(
                Method::GET,
                self.url.clone(),
                &self.repository,
                &self.scopes,
                &move |r| r.header(reqwest::header::RANGE, range.as_str()),
            )
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = header_str(resp.headers(), "content-range").and_then(range_start);
                if start != Some(self.offset) {
                    return Err(self.http_error(format!(
                        "asked to resume at byte {}, the registry answered Content-Range {:?}",
                        self.offset,
                        header_str(resp.headers(), "content-range").unwrap_or("")
                    )));
                }
                self.skip = 0;
            }
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(false),
            s if s.is_success() => self.skip = self.offset,
            _ => return Err(registry_error("GET", &self.url, resp).await),
        }
        self.body = Some(resp.bytes_stream().boxed());
        Ok(true)
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

/// The first byte of a `Content-Range: bytes START-END/TOTAL`.
fn range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn upload_location(request_url: &Url, headers: &HeaderMap) -> Result<Url> {
    let loc = header_str(headers, "location").ok_or_else(|| {
        TransportError::protocol(redact(request_url), "the registry gave no upload Location")
    })?;
    request_url.join(loc).map_err(|e| {
        TransportError::protocol(
            redact(request_url),
            format!("bad upload Location {loc:?}: {e}"),
        )
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
    fn requests_are_paced_only_when_the_quota_runs_low() {
        let h = |limit: &'static str, remaining: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("ratelimit-limit", HeaderValue::from_static(limit));
            h.insert("ratelimit-remaining", HeaderValue::from_static(remaining));
            h
        };
        assert_eq!(pace_for(&HeaderMap::new()), None);
        assert_eq!(
            pace_for(&h("100;w=21600", "76;w=21600")),
            Some(Duration::ZERO)
        );
        assert_eq!(
            pace_for(&h("100;w=21600", "5;w=21600")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            pace_for(&h("5000;w=60", "100;w=60")),
            Some(Duration::from_millis(600))
        );
    }

    #[test]
    fn an_exhausted_pull_quota_is_recognized() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-remaining", HeaderValue::from_static("0;w=21600"));
        assert!(quota_exhausted(&h));
        h.insert(
            "ratelimit-remaining",
            HeaderValue::from_static("76;w=21600"),
        );
        assert!(!quota_exhausted(&h));
        assert!(!quota_exhausted(&HeaderMap::new()));
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

    #[test]
    fn prefers_a_bearer_challenge_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="x""#),
        );
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="http://t/token",service="s",error="insufficient_scope""#,
            ),
        );
        assert_eq!(
            challenge_of(&h),
            Some(Challenge::Bearer {
                realm: "http://t/token".into(),
                service: Some("s".into())
            })
        );
    }

    #[test]
    fn options_debug_hides_the_password() {
        let o = RegistryOptions {
            credentials: Some(("user".into(), "hunter2".into())),
            ..Default::default()
        };
        let s = format!("{o:?}");
        assert!(s.contains("user") && !s.contains("hunter2"), "{s}");
    }

    // ---- a fake registry: just enough HTTP/1.1 to drive the client ----

    /// One request as the fake server saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        /// Path and query.
        target: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn path(&self) -> &str {
            self.target.split('?').next().unwrap_or("")
        }
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> Reply {
        Reply {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    type Handler = dyn Fn(&str, &Seen) -> Reply + Send + Sync;

    struct Fake {
        addr: String,
        seen: Arc<std::sync::Mutex<Vec<Seen>>>,
    }

    impl Fake {
        fn seen(&self) -> Vec<Seen> {
            self.seen.lock().unwrap().clone()
        }
        fn count(&self, path: &str) -> usize {
            self.seen().iter().filter(|s| s.path() == path).count()
        }
    }

    /// Serves `handler(own_addr, request)` on a free 127.0.0.1 port, one request per connection.
    /// A TLS ClientHello is dropped, so the client falls back to plain http (loopback rule).
    async fn fake(handler: Arc<Handler>) -> Fake {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (a, log) = (addr.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (handler, a, log) = (handler.clone(), a.clone(), log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 || chunk[0] == 0x16 && buf.is_empty() {
                            return; // closed, or TLS: not spoken here
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_string();
                    let target = first.next().unwrap_or("").to_string();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .collect();
                    let len = headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = buf[head_end + 4..].to_vec();
                    while body.len() < len {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            break;
                        }
                        body.extend_from_slice(&chunk[..n]);
                    }
                    let seen = Seen {
                        method,
                        target,
                        headers,
                        body: String::from_utf8_lossy(&body).to_string(),
                    };
                    log.lock().unwrap().push(seen.clone());
                    let r = handler(&a, &seen);
                    let mut out = format!("HTTP/1.1 {} X\r\nconnection: close\r\n", r.status);
                    for (k, v) in &r.headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    let body = if seen.method == "HEAD" {
                        &[][..]
                    } else {
                        &r.body[..]
                    };
                    out.push_str(&format!("content-length: {}\r\n\r\n", r.body.len()));
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.write_all(body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Fake { addr, seen }
    }

    fn digest() -> Digest {
        format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
    }

    fn descriptor(size: u64) -> Descriptor {
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/octet-stream",
            "digest": digest().to_string(),
            "size": size,
        }))
        .unwrap()
    }

    /// Options that read no auth file of this machine.
    fn hermetic(dir: &tempfile::TempDir, auth_json: &str) -> RegistryOptions {
        let file = dir.path().join("auth.json");
        std::fs::write(&file, auth_json).unwrap();
        RegistryOptions {
            authfile: Some(file),
            certs_d: Some(vec![]),
            retry_times: 0,
            side: Side::Source,
            ..Default::default()
        }
    }

    fn bearer_challenge(addr: &str) -> Reply {
        let c = format!(r#"Bearer realm="http://{addr}/token",service="fake""#);
        reply(401, &[("www-authenticate", &c)], "")
    }

    /// A token registry whose token server numbers its tokens; `valid(n)` says whether token n
    /// still opens blobs.
    fn token_registry(valid: Arc<dyn Fn(usize) -> bool + Send + Sync>) -> Arc<Handler> {
        let issued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        Arc::new(move |addr: &str, req: &Seen| match req.path() {
            "/v2/" => bearer_challenge(addr),
            "/token" => {
                let n = issued.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                reply(
                    200,
                    &[],
                    &format!(r#"{{"token":"tok-{n}","expires_in":300}}"#),
                )
            }
            p if p.contains("/blobs/") => {
                let ok = req
                    .header("authorization")
                    .and_then(|a| a.strip_prefix("Bearer tok-"))
                    .and_then(|n| n.parse::<usize>().ok())
                    .is_some_and(|n| valid(n));
                if ok {
                    reply(200, &[], "")
                } else {
                    bearer_challenge(addr)
                }
            }
            _ => reply(404, &[], ""),
        })
    }

    #[tokio::test]
    async fn bearer_tokens_are_fetched_once_per_scope_set_and_reused() {
        let server = fake(token_registry(Arc::new(|_| true))).await;
        let dir = tempfile::tempdir().unwrap();
        let client = RegistryClient::new(&server.addr, &server.addr, hermetic(&dir, "{}")).unwrap();
        let src = RegistryRepo::new(client.clone(), "team/app", false);
        let dst = RegistryRepo::new(client.clone(), "mirror/app", true);
        assert!(src.has_blob(&digest()).await.unwrap());
        assert!(src.has_blob(&digest()).await.unwrap());
        assert_eq!(server.count("/token"), 1, "{:#?}", server.seen());
        assert!(dst.has_blob(&digest()).await.unwrap());
        let tokens: Vec<Seen> = server
            .seen()
            .into_iter()
            .filter(|s| s.path() == "/token")
            .collect();
        assert_eq!(tokens.len(), 2);
        assert!(
            tokens[0]
                .target
                .ends_with("scope=repository%3Ateam%2Fapp%3Apull")
        );
        assert!(tokens[0].target.contains("service=fake"));
        assert!(
            tokens[1]
                .target
                .contains("scope=repository%3Amirror%2Fapp%3Apull%2Cpush")
        );
        // A registry that asked for a token never gets anything else: no anonymous basic auth.
        assert!(tokens.iter().all(|t| t.header("authorization").is_none()));
    }

    #[tokio::test]
    async fn a_401_mid_run_refreshes_the_token_once() {
        let revoked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r = revoked.clone();
        // Tokens up to `revoked` no longer work.
        let valid = Arc::new(move |n: usize| n > r.load(std::sync::atomic::Ordering::SeqCst));
        let server = fake(token_registry(valid)).await;
        let dir = tempfile::tempdir().unwrap();
        let client = RegistryClient::new(&server.addr, &server.addr, hermetic(&dir, "{}")).unwrap();
        let repo = RegistryRepo::new(client, "app", false);
        assert!(repo.has_blob(&digest()).await.unwrap());
        revoked.store(1, std::sync::atomic::Ordering::SeqCst);
        assert!(repo.has_blob(&digest()).await.unwrap());
        assert_eq!(server.count("/token"), 2);
        // Every token refused: one refresh, then an authentication error.
        revoked.store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
        let err = repo.has_blob(&digest()).await.unwrap_err();
        assert!(matches!(err, TransportError::Auth { .. }), "{err}");
        assert_eq!(server.count("/token"), 3);
    }

    fn basic_registry(
        user: &'static str,
        pass: &'static str,
        redirect: Option<String>,
    ) -> Arc<Handler> {
        let expected = format!("Basic {}", basic(user, pass));
        Arc::new(move |_addr: &str, req: &Seen| {
            let authorized = req.header("authorization") == Some(expected.as_str());
            match req.path() {
                "/v2/" => reply(401, &[("www-authenticate", r#"Basic realm="fake""#)], ""),
                _ if !authorized => {
                    reply(401, &[("www-authenticate", r#"Basic realm="fake""#)], "")
                }
                p if p.contains("/blobs/") => match &redirect {
                    Some(to) => reply(307, &[("location", to)], ""),
                    None => reply(200, &[], "hello"),
                },
                _ => reply(404, &[], ""),
            }
        })
    }

    #[tokio::test]
    async fn credentials_never_follow_a_redirect_to_another_host() {
        let storage = fake(Arc::new(|_: &str, _: &Seen| reply(200, &[], "hello"))).await;
        let to = format!("http://{}/bucket/blob?sig=1", storage.addr);
        let server = fake(basic_registry("u", "pw", Some(to))).await;
        let dir = tempfile::tempdir().unwrap();
        let options = RegistryOptions {
            credentials: Some(("u".into(), "pw".into())),
            ..hermetic(&dir, "{}")
        };
        let client = RegistryClient::new(&server.addr, &server.addr, options).unwrap();
        let repo = RegistryRepo::new(client, "app", false);
        let mut stream = repo.get_blob(&descriptor(5)).await.unwrap();
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(body, b"hello");
        let at_registry = server.seen();
        assert!(
            at_registry
                .iter()
                .any(|s| s.path().contains("/blobs/") && s.header("authorization").is_some())
        );
        let at_storage = storage.seen();
        assert_eq!(at_storage.len(), 1, "{at_storage:#?}");
        assert_eq!(at_storage[0].header("authorization"), None);
    }

    #[tokio::test]
    async fn missing_and_wrong_credentials_are_auth_errors_that_say_what_to_do() {
        let server = fake(basic_registry("u", "right", None)).await;
        let dir = tempfile::tempdir().unwrap();
        let client = RegistryClient::new(&server.addr, &server.addr, hermetic(&dir, "{}")).unwrap();
        let err = RegistryRepo::new(client, "app", false)
            .has_blob(&digest())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TransportError::Auth { .. }), "{msg}");
        assert!(msg.contains("no credentials were found"), "{msg}");
        // What to do is data; the command line words it with its flags.
        assert_eq!(
            err.hint(),
            Some(&Hint {
                side: Side::Source,
                fix: Fix::Credentials {
                    registry: server.addr.clone()
                }
            })
        );
        assert!(!msg.contains("--"), "no flag names in the transport: {msg}");

        let options = RegistryOptions {
            credentials: Some(("u".into(), "hunter2-wrong".into())),
            ..hermetic(&dir, "{}")
        };
        let client = RegistryClient::new(&server.addr, &server.addr, options).unwrap();
        let err = RegistryRepo::new(client, "app", false)
            .has_blob(&digest())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("refused the credentials from the command line"),
            "{msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[tokio::test]
    async fn identity_tokens_use_the_oauth2_post_and_its_refresh_token() {
        let handler: Arc<Handler> = Arc::new(|addr: &str, req: &Seen| {
            match (req.method.as_str(), req.path()) {
                (_, "/v2/") => bearer_challenge(addr),
                ("POST", "/token")
                    if req.body.contains("refresh_token=refresh-1&")
                        || req.body.contains("refresh_token=refresh-2&") =>
                {
                    reply(
                        200,
                        &[],
                        r#"{"access_token":"tok","refresh_token":"refresh-2","expires_in":300}"#,
                    )
                }
                (_, "/token") => reply(401, &[], ""),
                (_, p)
                    if p.contains("/blobs/")
                        && req.header("authorization") == Some("Bearer tok") =>
                {
                    reply(200, &[], "")
                }
                _ => bearer_challenge(addr),
            }
        });
        let server = fake(handler).await;
        let dir = tempfile::tempdir().unwrap();
        let auth_json = format!(
            r#"{{"auths":{{"{}":{{"identitytoken":"refresh-1"}}}}}}"#,
            server.addr
        );
        let client =
            RegistryClient::new(&server.addr, &server.addr, hermetic(&dir, &auth_json)).unwrap();
        assert!(
            RegistryRepo::new(client.clone(), "a", false)
                .has_blob(&digest())
                .await
                .unwrap()
        );
        assert!(
            RegistryRepo::new(client, "b", true)
                .has_blob(&digest())
                .await
                .unwrap()
        );
        let posts: Vec<Seen> = server
            .seen()
            .into_iter()
            .filter(|s| s.path() == "/token")
            .collect();
        assert_eq!(posts.len(), 2, "{posts:#?}");
        assert!(posts.iter().all(|p| p.method == "POST"));
        assert!(posts[0].body.contains("grant_type=refresh_token"));
        assert!(posts[0].body.contains("scope=repository%3Aa%3Apull"));
        assert!(posts[0].body.contains("service=fake"));
        // The second exchange uses the refresh token the server handed back.
        assert!(
            posts[1].body.contains("refresh_token=refresh-2&"),
            "{}",
            posts[1].body
        );
    }

    fn test_ca() -> (String, rcgen::KeyPair, rcgen::CertificateParams) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key, params)
    }

    #[test]
    fn cert_dirs_give_cas_and_a_client_certificate_and_bad_ones_are_named() {
        let (ca_pem, ca_key, ca_params) = test_ca();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let client_key = rcgen::KeyPair::generate().unwrap();
        let client_cert = rcgen::CertificateParams::new(vec!["client".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();

        let root = tempfile::tempdir().unwrap();
        let host_dir = root.path().join("reg.example:5000");
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("ca.crt"), &ca_pem).unwrap();
        std::fs::write(host_dir.join("client.cert"), client_cert.pem()).unwrap();
        std::fs::write(host_dir.join("client.key"), client_key.serialize_pem()).unwrap();
        let options = RegistryOptions {
            certs_d: Some(vec![root.path().to_path_buf()]),
            ..Default::default()
        };
        let m = load_tls("reg.example:5000", "reg.example:5000", &options).unwrap();
        assert_eq!(m.roots.len(), 1);
        assert!(m.identity.is_some());
        assert_eq!(m.dirs, vec![host_dir.clone()]);
        assert!(
            RegistryClient::new("reg.example:5000", "reg.example:5000", options.clone()).is_ok()
        );
        // Another registry: nothing.
        let m = load_tls("other:5000", "other:5000", &options).unwrap();
        assert!(m.roots.is_empty() && m.identity.is_none());

        std::fs::remove_file(host_dir.join("client.key")).unwrap();
        let e = load_tls("reg.example:5000", "reg.example:5000", &options)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("client.cert") && e.contains("without its key"),
            "{e}"
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), "not a certificate").unwrap();
        let options = RegistryOptions {
            cert_dir: Some(dir.path().to_path_buf()),
            side: Side::Destination,
            ..Default::default()
        };
        let e = load_tls("x", "x", &options).err().unwrap().to_string();
        assert!(
            e.contains("ca.crt") && e.contains("not a PEM certificate"),
            "{e}"
        );
    }
}
