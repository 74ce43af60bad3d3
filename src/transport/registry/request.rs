//! The one path every request takes: [`Session::send`].
//!
//! The ping, token fetches, manifest/blob/tag/referrer calls, the upload POST/PUT/DELETE and a
//! download's resumption all go through it, so a log line, a limit or a retry rule lives here once.
//! A [`Request`] is data (method, URL, headers, body, whose authorization, what may be retried), so
//! that it can be sent again; one attempt is:
//!
//! 1. authorize (`Session::authorization`): the cached `Authorization` for the request's
//!    [`Access`], fetched when missing, and only when the URL is the registry's own origin;
//! 2. transmit: wait for the host's limits (`limits`: a permit for `max-requests`, held until the
//!    answer's body is read; a `requests-per-second` slot; the pause while the registry reports
//!    its quota nearly used up), send, and log it (`-v`: method, redacted URL, status, time;
//!    never a header);
//! 3. classify (the retry policy, in one function): a 401 drops the refused authorization and
//!    tries once more with a fresh one (a second 401 is an authentication error); an exhausted
//!    pull quota is [`TransportError::RateLimited`] at once; connection errors, 408, 429 and 5xx
//!    are tried again after [`backoff`]; a TLS failure is a [`TransportError::Tls`] that says what
//!    to do. Any other answer goes back to the caller, whose status it is to read (404 is
//!    "absent" for a manifest, an error for a blob).
//!
//! The idle timeout ([`RegistryOptions::timeout`](super::RegistryOptions::timeout)) is also
//! here, once: an attempt that moves no byte for that long (no answer while nothing is being
//! uploaded, or a body that stops) fails as a [`TransportError::Http`] that names the request,
//! and is retried like a cut connection. It is not a deadline: a slow transfer that keeps moving
//! is never cut. Bodies are read through [`read_capped`], so no answer can make us hold more
//! than its cap ([`caps`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::{Access, Challenge, challenge_of};
use super::error::{header_str, redact};
use super::session::Session;
use super::tls::{self, TlsFailure};
use crate::transport::{Fix, Result, TransportError, chain};

/// One request, as data.
pub(super) struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Body,
    /// Whose authorization it carries; `None`: none of the registry's (the ping, a token server).
    access: Option<Access>,
    retry: Retry,
    /// When a byte last moved for this request (the upload body touches it).
    clock: Arc<IdleClock>,
}

enum Body {
    Empty,
    /// Bytes in memory: sent again as often as needed.
    Bytes(Bytes),
    /// A stream that can be read once; the first attempt takes it.
    Stream(Option<reqwest::Body>),
}

/// What is tried again. How long to wait in between is the same for every request: [`backoff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Retry {
    /// Connection errors, 408, 429 and 5xx, up to `retry_times` (the default).
    All,
    /// 408, 429 and 5xx only; a failed connection is final. For the https probe of a host that may
    /// also speak plain http: trying http is the better next step.
    StatusesOnly,
    /// Nothing: the body is a one-shot stream ([`Request::stream`]). The copy engine retries the
    /// whole blob with a fresh stream.
    Never,
}

impl Request {
    pub fn new(method: Method, url: Url) -> Request {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            access: None,
            retry: Retry::All,
            clock: Arc::new(IdleClock::new()),
        }
    }

    /// Authorize as the registry asks, for this repository and these token scopes.
    pub fn access(mut self, access: &Access) -> Request {
        self.access = Some(access.clone());
        self
    }

    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Request {
        self.headers.insert(name, value);
        self
    }

    pub fn body(mut self, bytes: impl Into<Bytes>) -> Request {
        self.body = Body::Bytes(bytes.into());
        self
    }

    /// A body that can be read only once: the request is sent once ([`Retry::Never`]).
    pub fn stream(mut self, body: reqwest::Body) -> Request {
        self.body = Body::Stream(Some(body));
        self.retry = Retry::Never;
        self
    }

    /// An upload body, read once ([`Request::stream`]); every chunk it yields counts as
    /// progress for the idle timeout, so a long upload that keeps moving is never cut.
    pub fn upload(self, body: crate::transport::BlobStream) -> Request {
        let clock = self.clock.clone();
        let body = body.inspect(move |_| clock.touch());
        self.stream(reqwest::Body::wrap_stream(body))
    }

    pub fn retry(mut self, retry: Retry) -> Request {
        if !matches!(self.body, Body::Stream(_)) {
            self.retry = retry;
        }
        self
    }

    /// The next attempt's request: a fresh builder with the headers and the body (a stream only
    /// the first time).
    fn build(&mut self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let builder = http
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone());
        match &mut self.body {
            Body::Empty => builder,
            Body::Bytes(b) => builder.body(b.clone()),
            Body::Stream(s) => match s.take() {
                Some(s) => builder.body(s),
                None => builder,
            },
        }
    }
}

/// What an attempt's outcome calls for.
enum Verdict {
    /// An answer for the caller to read, whatever its status.
    Answer(Response),
    /// Try again after [`backoff`] (which honours the answer's `Retry-After`).
    Retry(Option<HeaderMap>),
    /// A first 401: drop the refused authorization and try once more with a fresh one.
    Reauthorize(Access, Challenge),
    /// A 401 that a fresh authorization did not cure (or one from another origin).
    Refused(Access),
    Fail(TransportError),
}

impl Session {
    /// Send `request`: authorize, transmit, classify, and act on the verdict, until there is an
    /// answer or an error (see the module doc). Returns the final answer whatever its status,
    /// except those that are errors for every caller: a 401 after a refresh (an authentication
    /// error), an exhausted pull quota, and failures to connect.
    pub(super) async fn send(&self, mut request: Request) -> Result<Response> {
        // Credentials go only to the registry's own scheme, host and port.
        let same_origin = match &request.access {
            Some(_) => self.is_registry_origin(&request.url).await?,
            None => false,
        };
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            let auth = match &request.access {
                Some(access) if same_origin => self.authorization(access).await?,
                _ => None,
            };
            request.clock.touch();
            let idle = self.options.timeout;
            let clock = request.clock.clone();
            let sent = match idle_limited(
                self.transmit(&mut request, auth.as_ref(), attempt),
                &clock,
                idle,
            )
            .await
            {
                Some(sent) => sent,
                None => {
                    let timed_out = TransportError::Http {
                        method: request.method.to_string(),
                        url: redact(&request.url),
                        message: format!("no answer for {} (timeout)", seconds(idle)),
                    };
                    tracing::debug!(method = %request.method, url = %redact(&request.url), attempt, "request timed out");
                    // Like a failed connection: tried again only where those are.
                    if request.retry != Retry::All || attempt >= self.options.retry_times {
                        return Err(timed_out);
                    }
                    backoff(attempt, None).await;
                    attempt += 1;
                    continue;
                }
            };
            match self.classify(&request, sent, attempt, same_origin && !refreshed) {
                Verdict::Answer(resp) => return Ok(with_idle_body(resp, idle)),
                Verdict::Fail(e) => return Err(e),
                Verdict::Retry(answer) => {
                    backoff(attempt, answer.as_ref()).await;
                    attempt += 1;
                }
                Verdict::Reauthorize(access, challenge) => {
                    self.forget(&access, challenge, auth.as_ref()).await;
                    if request.retry == Retry::Never {
                        // The body is spent: the caller's next attempt gets a fresh authorization.
                        return Err(TransportError::Http {
                            method: request.method.to_string(),
                            url: redact(&request.url),
                            message: "the registry refused the authorization (HTTP 401) of a request that cannot be sent again".into(),
                        });
                    }
                    refreshed = true;
                }
                Verdict::Refused(access) => return Err(self.auth_failed(&access).await),
            }
        }
    }

    /// One attempt on the wire: wait for the host's limits, send, log (`-v`: the redacted
    /// URL only, never headers or tokens), and learn the pause from the answer.
    async fn transmit(
        &self,
        request: &mut Request,
        auth: Option<&HeaderValue>,
        attempt: u32,
    ) -> reqwest::Result<Response> {
        let mut builder = request.build(&self.http);
        if let Some(a) = auth {
            builder = builder.header(AUTHORIZATION, a.clone());
        }
        // The ping and token fetches (no repository access) are not limited: they are few, a
        // token server is often another host, and a request waiting for one holds no place.
        let permit = match &request.access {
            Some(_) => {
                self.limiter
                    .admit(matches!(request.body, Body::Stream(_)))
                    .await
            }
            None => None,
        };
        let started = Instant::now();
        let sent = match (builder.send().await, permit) {
            (Ok(resp), Some(permit)) => Ok(super::limits::hold(resp, permit)),
            (sent, _) => sent,
        };
        let (method, url) = (&request.method, redact(&request.url));
        match &sent {
            Ok(resp) => {
                tracing::debug!(
                    method = %method,
                    url = %url,
                    status = resp.status().as_u16(),
                    ms = started.elapsed().as_millis() as u64,
                    attempt,
                    "request"
                );
                self.learn_pace(resp.headers());
            }
            Err(e) => {
                tracing::debug!(method = %method, url = %url, attempt, error = %e, "request failed")
            }
        }
        sent
    }

    /// The retry policy, in one place. `may_refresh`: a 401 may still be cured by a fresh
    /// authorization (the first one, at the registry's own origin).
    fn classify(
        &self,
        request: &Request,
        sent: reqwest::Result<Response>,
        attempt: u32,
        may_refresh: bool,
    ) -> Verdict {
        let retries_left = attempt < self.options.retry_times;
        let resp = match sent {
            Ok(resp) => resp,
            Err(e) => {
                // Connection trouble is worth another try; a TLS failure does not get better by
                // asking again, nor does a request that cannot be built.
                let tls = tls::failure(&e);
                if tls.is_none() && !e.is_builder() && request.retry == Retry::All && retries_left {
                    return Verdict::Retry(None);
                }
                return Verdict::Fail(self.connection_error(
                    &request.method,
                    &request.url,
                    &e,
                    tls,
                ));
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED
            && let Some(access) = &request.access
        {
            return if may_refresh {
                let challenge = challenge_of(resp.headers()).unwrap_or(Challenge::Basic);
                Verdict::Reauthorize(access.clone(), challenge)
            } else {
                Verdict::Refused(access.clone())
            };
        }
        // A pull quota used up (Docker Hub's `ratelimit-remaining: 0`) does not come back
        // within any retry: say so at once instead of hammering the registry.
        if status == StatusCode::TOO_MANY_REQUESTS && quota_exhausted(resp.headers()) {
            return Verdict::Fail(TransportError::RateLimited {
                registry: self.registry.clone(),
                message: match header_str(resp.headers(), "ratelimit-limit") {
                    Some(limit) => format!("ratelimit-limit {limit}"),
                    None => "limit unknown".into(),
                },
                hint: self.options.hint(Fix::LoginForQuota),
            });
        }
        // 408, 429 and 5xx; never another 4xx.
        if is_retryable_status(status) && request.retry != Retry::Never && retries_left {
            return Verdict::Retry(Some(resp.headers().clone()));
        }
        Verdict::Answer(resp)
    }

    /// A request that got no answer, as the error it is.
    fn connection_error(
        &self,
        method: &Method,
        url: &Url,
        e: &reqwest::Error,
        tls: Option<TlsFailure>,
    ) -> TransportError {
        if e.is_builder() {
            return TransportError::Setup {
                registry: self.registry.clone(),
                message: format!(
                    "{method} {}: cannot build the request: {}",
                    redact(url),
                    chain(e)
                ),
            };
        }
        let failed = TransportError::Http {
            method: method.to_string(),
            url: redact(url),
            message: chain(e),
        };
        match tls {
            Some(TlsFailure::Certificate) => self.certificate_failed(url, failed),
            Some(TlsFailure::Refused) => self.handshake_refused(url, failed),
            Some(TlsFailure::NotTls) | None => failed,
        }
    }

    /// Adjust the pause to the limits an answer reports.
    fn learn_pace(&self, headers: &HeaderMap) {
        if let Some(p) = pace_for(headers) {
            let mut current = self.limiter.pace.lock().expect("lock");
            if p > *current {
                tracing::warn!(registry = %self.registry, pause_ms = p.as_millis() as u64, "the registry's rate limit is nearly used up: pacing requests");
            }
            *current = p;
        }
    }
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

/// The wait before try `attempt + 1` (counting from 0): what the answer's `Retry-After` (seconds)
/// asks, capped at 60 s; else exponential with jitter, `200 ms × 2^attempt` plus up to half again,
/// at most 10 s.
pub(super) fn backoff_delay(attempt: u32, answer: Option<&HeaderMap>) -> Duration {
    let retry_after = answer
        .and_then(|h| header_str(h, "retry-after"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(60)));
    retry_after.unwrap_or_else(|| crate::transport::backoff(attempt))
}

/// Wait [`backoff_delay`].
pub(super) async fn backoff(attempt: u32, answer: Option<&HeaderMap>) {
    tokio::time::sleep(backoff_delay(attempt, answer)).await;
}

/// A JSON answer's body, read up to `cap` bytes ([`caps`]). The error names the position only:
/// the body may hold a token.
pub(super) async fn json<T: serde::de::DeserializeOwned>(resp: Response, cap: usize) -> Result<T> {
    let url = redact(resp.url());
    let bytes = read_capped(resp, cap).await?;
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

/// How much of each kind of answer is read at most: no peer decides how much memory we use.
pub(super) mod caps {
    /// A token server's answer.
    pub const TOKEN: usize = 1 << 20;
    /// A refusal's error body (one item per missing child of a large index fits).
    pub const ERROR_BODY: usize = 1 << 20;
    /// One page of a tags list (registry 2.8 sends every tag on one page).
    pub const TAGS_PAGE: usize = 16 << 20;
    /// One page of a referrers list (an OCI index, capped like a manifest).
    pub const REFERRERS_PAGE: usize = crate::oci::MAX_MANIFEST_BYTES;
    /// All pages of one list together.
    pub const LIST_TOTAL: usize = 64 << 20;
    /// Pages of one list: a `Link` chain that goes on is refused past this.
    pub const PAGES: usize = 1000;
}

/// Read a body, refusing it past `cap` bytes (by its `Content-Length` before reading, else as
/// it comes), so a hostile or broken peer cannot make us hold more. Errors name the request.
pub(super) async fn read_capped(resp: Response, cap: usize) -> Result<Bytes> {
    let url = redact(resp.url());
    let too_large = |n: u64| {
        TransportError::protocol(
            url.clone(),
            format!(
                "the answer is larger than {} (at least {n} bytes): refusing to read it",
                size_text(cap)
            ),
        )
    };
    if let Some(len) =
        header_str(resp.headers(), "content-length").and_then(|v| v.trim().parse::<u64>().ok())
        && len > cap as u64
    {
        return Err(too_large(len));
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TransportError::Http {
            method: "GET".into(),
            url: url.clone(),
            message: chain(&e),
        })?;
        if body.len() + chunk.len() > cap {
            return Err(too_large((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

/// `60s`, `1.5s` for messages.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// When a byte last moved for one request, as nanoseconds since its creation.
struct IdleClock {
    start: Instant,
    last: AtomicU64,
}

impl IdleClock {
    fn new() -> IdleClock {
        IdleClock {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = self.start.elapsed().as_nanos() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }
}

/// `fut`, or `None` once `clock` has not moved for `idle`.
async fn idle_limited<F: std::future::Future>(
    fut: F,
    clock: &IdleClock,
    idle: Duration,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let deadline = tokio::time::Instant::from_std(clock.last() + idle);
        tokio::select! {
            out = &mut fut => return Some(out),
            _ = tokio::time::sleep_until(deadline) => {
                if clock.last() + idle <= Instant::now() {
                    return None;
                }
            }
        }
    }
}

/// The answer with a body that fails once no byte has come for `idle` (each chunk resets it):
/// every reader (JSON, manifests, blob downloads, which resume after it) gets the timeout.
fn with_idle_body(resp: Response, idle: Duration) -> Response {
    use reqwest::ResponseBuilderExt as _;
    let url = resp.url().clone();
    let (status, version, headers) = (resp.status(), resp.version(), resp.headers().clone());
    let body = resp.bytes_stream();
    let timed = futures::stream::unfold((body, false), move |(mut body, done)| async move {
        if done {
            return None;
        }
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(item)) => Some((item.map_err(std::io::Error::other), (body, false))),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no data for {} (timeout)", seconds(idle)),
                )),
                (body, true),
            )),
        }
    });
    let mut builder = http::Response::builder()
        .status(status)
        .version(version)
        .url(url);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    let http = builder
        .body(reqwest::Body::wrap_stream(timed))
        .expect("parts of a valid response");
    Response::from(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(limit: &'static str, remaining: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-limit", HeaderValue::from_static(limit));
        h.insert("ratelimit-remaining", HeaderValue::from_static(remaining));
        h
    }

    #[test]
    fn requests_are_paced_only_when_the_quota_runs_low() {
        assert_eq!(pace_for(&HeaderMap::new()), None);
        assert_eq!(
            pace_for(&limits("100;w=21600", "76;w=21600")),
            Some(Duration::ZERO)
        );
        assert_eq!(
            pace_for(&limits("100;w=21600", "5;w=21600")),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            pace_for(&limits("5000;w=60", "100;w=60")),
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
    fn backoff_grows_with_jitter_and_honours_retry_after_up_to_a_minute() {
        for attempt in 0..10 {
            let d = backoff_delay(attempt, None);
            let base = Duration::from_millis(200 << attempt.min(6));
            assert!(d >= base.min(Duration::from_secs(10)), "{attempt}: {d:?}");
            assert!(
                d <= (base * 3 / 2).min(Duration::from_secs(10)),
                "{attempt}: {d:?}"
            );
        }
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(backoff_delay(0, Some(&h)), Duration::from_secs(3));
        h.insert("retry-after", HeaderValue::from_static("3600"));
        assert_eq!(backoff_delay(5, Some(&h)), Duration::from_secs(60));
        // An HTTP date is not understood: the exponential wait applies.
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert!(backoff_delay(0, Some(&h)) <= Duration::from_millis(300));
    }
}
