//! One [`Session`] per registry host, and the run's [`Sessions`].
//!
//! A session is what every repository on a host shares: the HTTP client and its connection pool
//! (TLS material loaded once), the scheme and challenge learned from one `/v2/` ping, credentials
//! and tokens (`auth`), and the pause the registry's rate limit asks for. [`Sessions`] hands out
//! one session per host and options for a whole run (a `sync` of many images pings each registry
//! once); the caller creates it and passes it down, so nothing here outlives a run.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use tokio::sync::OnceCell;

use super::RegistryOptions;
use super::auth::{AuthState, Challenge, challenge_of};
use super::error::{header_str, status_error};
use super::limits::{Limiter, Limiters, Limits};
use super::request::{Request, Retry};
use super::tls;
use super::upload::Cancellations;
use crate::reference::is_loopback_host;
use crate::transport::{Result, SparseSupport, TransportError, chain};

/// The registry sessions of one run: one [`Session`] per registry host and options, shared by
/// every image of the run, so the scheme probe, `/v2/` ping, CA store, tokens and connections are
/// set up once per registry instead of once per image. There is no process-wide cache.
#[derive(Default)]
pub struct Sessions {
    sessions: std::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// Upload sessions being cancelled in the background, by any of these sessions.
    cancellations: Cancellations,
    /// One per API host, shared by every session on it (`limits`).
    limiters: Limiters,
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions::default()
    }

    /// Sessions whose requests keep to these per-host limits.
    pub fn with_limits(limits: Limits) -> Sessions {
        Sessions {
            limiters: Limiters::new(limits),
            ..Sessions::default()
        }
    }

    /// The session for `registry` with these options, made on first use.
    pub fn get(
        &self,
        registry: &str,
        api_host: &str,
        options: &RegistryOptions,
    ) -> Result<Arc<Session>> {
        use sha2::Digest as _;
        // The key holds a hash of the credentials, never the credentials themselves.
        let secret = options
            .credentials
            .as_ref()
            .map(|(u, p)| hex::encode(sha2::Sha256::digest(format!("{u}\0{p}").as_bytes())))
            .unwrap_or_default();
        let key = format!(
            "{registry}|{api_host}|{secret}|{:?}|{}|{:?}|{:?}|{}|{:?}|{:?}",
            options.authfile,
            options.tls_verify,
            options.cert_dir,
            options.certs_d,
            options.retry_times,
            options.side,
            options.timeout
        );
        if let Some(s) = self.sessions.lock().expect("lock").get(&key) {
            return Ok(s.clone());
        }
        let reads = options.side != crate::transport::Side::Destination;
        let session = Session::open(
            registry,
            api_host,
            options.clone(),
            self.cancellations.clone(),
            self.limiters.get(registry, api_host, reads),
        )?;
        Ok(self
            .sessions
            .lock()
            .expect("lock")
            .entry(key)
            .or_insert(session)
            .clone())
    }

    /// Wait (at most `limit`) for the upload sessions that were dropped while open to be
    /// cancelled. The CLI calls this before it exits, so an interrupted copy leaves no upload
    /// session behind where the registry can delete them.
    pub async fn finish_cancellations(&self, limit: Duration) {
        self.cancellations.finish(limit).await;
    }
}

/// A connection to one registry host, shared by every repository used on it.
pub struct Session {
    pub(super) http: reqwest::Client,
    /// As the user wrote it (`docker.io`, `127.0.0.1:5000`).
    pub(super) registry: String,
    /// Where requests go (`registry-1.docker.io` for Docker Hub).
    pub(super) api_host: String,
    pub(super) options: RegistryOptions,
    /// The certificate directories that exist for this registry (for messages).
    pub(super) cert_dirs: Vec<PathBuf>,
    /// What the `/v2/` ping learned, once.
    base: OnceCell<Base>,
    pub(super) auth: AuthState,
    /// The host's limits and pace, shared with every session on the host (`limits`).
    pub(super) limiter: Arc<Limiter>,
    /// Where a dropped upload's background cancellation is counted (the run's, via [`Sessions`]).
    pub(super) cancellations: Cancellations,
}

/// What the ping learned: where the API is, and what the registry asks and announces.
#[derive(Debug, Clone)]
pub(super) struct Base {
    pub url: Url,
    pub sparse: SparseSupport,
    pub challenge: Option<Challenge>,
}

impl Session {
    /// A session of its own, outside any [`Sessions`].
    pub fn new(registry: &str, api_host: &str, options: RegistryOptions) -> Result<Arc<Session>> {
        Session::open(
            registry,
            api_host,
            options,
            Cancellations::default(),
            Arc::default(),
        )
    }

    fn open(
        registry: &str,
        api_host: &str,
        options: RegistryOptions,
        cancellations: Cancellations,
        limiter: Arc<Limiter>,
    ) -> Result<Arc<Session>> {
        // The process-wide TLS crypto provider (ring); installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = tls::load(registry, api_host, &options)?;
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
            message: format!("cannot set up the HTTP client: {}", chain(&e)),
        })?;
        Ok(Arc::new(Session {
            http,
            registry: registry.to_string(),
            api_host: api_host.to_string(),
            options,
            cert_dirs: tls.dirs,
            base: OnceCell::new(),
            auth: AuthState::default(),
            limiter,
            cancellations,
        }))
    }

    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Resolve the scheme once: https, or plain http only with TLS verification off or for a
    /// loopback host (`localhost`, 127.0.0.0/8, ::1) whose server does not speak TLS. https is
    /// always tried first, and a certificate that fails verification is an error that says how
    /// to trust it, never a reason to fall back.
    pub(super) async fn base(&self) -> Result<&Base> {
        self.base.get_or_try_init(|| self.probe()).await
    }

    async fn probe(&self) -> Result<Base> {
        let plain_allowed = is_loopback_host(&self.api_host) || !self.options.tls_verify;
        let https = self.root("https")?;
        // Where plain http may follow, a failed connection is not waited on: http is the next try.
        let retry = if plain_allowed {
            Retry::StatusesOnly
        } else {
            Retry::All
        };
        let e = match self.ping(&https, retry).await {
            Ok(base) => return Ok(base),
            // A certificate that did not verify, or a refused handshake: never a fallback.
            Err(e @ TransportError::Tls { .. }) => return Err(e),
            Err(e) if !plain_allowed => return Err(e),
            Err(e) => e,
        };
        match self.ping(&self.root("http")?, Retry::All).await {
            // A TLS server answers plain http with 400 ("Client sent an HTTP request to an HTTPS
            // server"): it does speak TLS, so the https failure (a refused handshake, a client
            // certificate it wants) is the one to report.
            Err(TransportError::Registry { status: 400, .. }) => {
                Err(self.handshake_refused(&https, e))
            }
            other => other,
        }
    }

    /// `GET /v2/` without credentials: whether the API is there, and what it asks for.
    async fn ping(&self, root: &Url, retry: Retry) -> Result<Base> {
        let url = root.join("v2/").expect("a constant path");
        let request = Request::new(Method::GET, url.clone()).retry(retry);
        // Boxed: `send` comes back here (through `base`) to authorize, so the futures nest.
        let resp = Box::pin(self.send(request)).await?;
        let sparse = match header_str(resp.headers(), "x-sparse-manifest-support") {
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
            s => Err(status_error(&Method::GET, &url, s.as_u16())),
        }
    }

    /// `SCHEME://API_HOST/`.
    fn root(&self, scheme: &str) -> Result<Url> {
        Url::parse(&format!("{scheme}://{}/", self.api_host)).map_err(|e| TransportError::Setup {
            registry: self.registry.clone(),
            message: format!("not a valid registry host {:?}: {e}", self.api_host),
        })
    }

    /// `path` on the registry's API, once its scheme is known.
    pub(super) async fn url(&self, path: &str) -> Result<Url> {
        let base = self.base().await?;
        base.url
            .join(path.trim_start_matches('/'))
            .map_err(|e| TransportError::Setup {
                registry: self.registry.clone(),
                message: format!("bad request path {path:?}: {e}"),
            })
    }

    /// Is `url` on the registry's own scheme, host and port (where its credentials may go)?
    pub(super) async fn is_registry_origin(&self, url: &Url) -> Result<bool> {
        let base = &self.base().await?.url;
        Ok(url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default())
    }

    /// Whether the registry announced sparse-index support in its ping.
    pub(super) async fn sparse_support(&self) -> SparseSupport {
        match self.base().await {
            Ok(b) => b.sparse,
            Err(_) => SparseSupport::Unknown,
        }
    }
}
