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
//! # Map
//!
//! Read in this order; each file is small enough for one sitting.
//! - `session`: [`Sessions`], the run's map of one [`Session`] (formerly `RegistryClient`: it is
//!   the state of a conversation with a host, not a client object) per registry host (HTTP
//!   connection pool, TLS material, the scheme and challenge learned by the `/v2/` ping,
//!   credentials, tokens, the count of uploads being cancelled); created by the caller and
//!   passed down, never a process-wide cache.
//! - `limits`: one limiter per API host for the run (`max-requests` in flight, held until a body
//!   is read; `requests-per-second` as a token bucket; the registry's own rate-limit pacing), used
//!   by `send` for every request.
//! - `request`: **the one path every request takes** (`Session::send`): the ping, token
//!   fetches, manifest, blob, tag and referrer calls, and the upload POST/PUT/DELETE. It attaches
//!   the authorization (refreshing a token once on a 401), paces requests while the registry's
//!   quota runs low, logs each request (`-v`), classifies the answer into a
//!   [`TransportError`](super::TransportError), and retries with one backoff policy. A timeout, a
//!   limit or a log line is added there, once.
//! - `auth`: challenges, bearer tokens (GET and OAuth2 POST), the token cache, basic auth;
//!   [`credentials`]: where a user's credentials come from (the command line, auth files, helpers).
//! - `tls`: certificate directories, CAs, the client certificate, and TLS failures with hints.
//! - `api`: [`RegistryRepo`], the [`Transport`](super::Transport) of one repository (manifests,
//!   blobs, mounts, tags with `Link` pagination, referrers) on top of `send`; `upload` and
//!   `download` hold the two stateful pieces of a blob transfer.
//! - `error`: the registry's error body, redacted URLs, header helpers.
//!
//! Upload protocol: `POST …/blobs/uploads/` then a single `PUT <location>?digest=` with the streamed
//! body (registry 2.8 discards a body sent with the POST, see REGISTRY-FACTS.md). The body can be
//! read only once, so that PUT is sent once (the copy engine retries the whole blob with a fresh
//! source stream), and the session is cancelled (`DELETE`) when it fails or is dropped mid-flight
//! (`UploadSession`; the CLI waits for those with [`Sessions::finish_cancellations`]). A blob
//! download cut off midway resumes with a `Range` request, or restarts and skips what was already
//! delivered (`BlobDownload`), so the upload it feeds never sees a byte twice.
//!
//! Timeout: a request that moves no byte for [`RegistryOptions::timeout`] (60 s by default) fails
//! and is retried like a cut connection (a blob download resumes); it is an idle timeout, never a
//! deadline on a transfer that keeps moving. Bounded reads: every body is read through one capped
//! reader (`request::read_capped`; manifests 4 MiB, tag list pages 16 MiB, referrer pages 4 MiB,
//! token answers and error bodies 1 MiB, a list 64 MiB and 1000 pages in all, a page seen twice is
//! an error).
//!
//! Retries: connection errors, 408, 429 (except an exhausted pull quota, which is reported at
//! once) and 5xx, up to `retry_times` per request, waiting `200 ms × 2^attempt` plus up to half
//! again of jitter (at most 10 s), or what `Retry-After` asks (at most 60 s). Never other 4xx, and
//! never a TLS failure: neither gets better by asking again.
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
//! Errors a person can fix carry a [`Hint`] (data: give credentials, trust a CA, …) and the
//! [`Side`] of the command; the command line words it with its own flags. Nothing here names a flag.
//!
//! TLS: verified by default against the system roots plus the CAs (`*.crt`) of the registry's
//! certificate directory, which also holds a client certificate (`NAME.cert` + `NAME.key`): the
//! directory given in [`RegistryOptions::cert_dir`] (alone, as in skopeo), else
//! `/etc/containers/certs.d/HOST[:PORT]/` and `/etc/docker/certs.d/HOST[:PORT]/` (roots
//! overridable with `MIRROR_CERTS_D`, for tests). Crypto is rustls with the ring provider (see
//! Cargo.toml). The scheme rule is in `Session::base`.

mod api;
mod auth;
pub mod credentials;
mod download;
mod error;
mod limits;
mod request;
mod session;
mod tls;
mod upload;

use std::path::PathBuf;
use std::time::Duration;

pub use api::RegistryRepo;
pub use error::parse_error_body;
pub use limits::{DEFAULT_MAX_REQUESTS, HostLimits, Limits};
pub use session::{Session, Sessions};
pub use tls::{CERTS_D_ENV, DEFAULT_CERTS_D};

use super::{Fix, Hint, Side};

/// The idle timeout of a request unless the caller sets another ([`RegistryOptions::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

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
    /// Retries of a failed request (connection error, 408, 429, 5xx, timeout).
    pub retry_times: u32,
    /// The idle timeout of a request: one that moves no byte for this long (no answer, a body
    /// that stops coming, an upload the registry stops reading) fails and is retried. A slow
    /// transfer that keeps moving is never cut.
    pub timeout: Duration,
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
            timeout: DEFAULT_TIMEOUT,
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
            .field("timeout", &self.timeout)
            .field("side", &self.side)
            .finish()
    }
}

impl RegistryOptions {
    /// What a person can do, on this side of the command.
    fn hint(&self, fix: Fix) -> Option<Hint> {
        Some(Hint {
            side: self.side,
            fix,
        })
    }
}

#[cfg(test)]
mod tests;
