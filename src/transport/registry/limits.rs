//! Per-host limits, applied in the one send: how many requests may be in flight to a registry host
//! (`max-requests`), how many may start per second (`requests-per-second`), and the pause its own
//! rate-limit headers ask for (`ratelimit-remaining`).
//!
//! One [`Limiter`] per API host for the whole run, shared by every session on that host (a host
//! that is both a source and a destination has two sessions, one limiter), so a `sync` of many
//! images in flight at once stays within what the registry's operator asked for. This is the
//! shape of regclient's `reqConcurrent` / `reqPerSec`: a semaphore and a rate limiter in front of
//! every request.
//!
//! - **In flight** means until the answer's body is read or dropped, not until its headers
//!   arrive: a blob download holds its permit while it streams ([`hold`] wraps the body). A
//!   retried request takes a permit per attempt. An upload whose body is fed by a download from
//!   the same host (a copy within one registry where a mount was not possible) would wait on its
//!   own download, so at a host this run also reads from, a streamed upload takes a free permit
//!   if there is one and otherwise goes without (said in the README).
//! - **Requests per second** is a token bucket with a burst of one second's worth, written here
//!   as a few lines of GCRA arithmetic ([`Bucket::reserve`]): `governor` would do the same with a
//!   dependency tree and a clock abstraction this one use does not need, and a reservation (each
//!   caller learns its own start time at once) keeps waiters in arrival order without a loop.
//! - The `/v2/` ping and token fetches (requests with no repository access) take no place: they
//!   are few, a token server is often another host, and a request that waits for a token must
//!   not wait on a place its own download holds.
//! - **Pacing** from the registry's headers (see `request::pace_for`) is kept here too, so it is
//!   per host for the run and every image in flight slows down together.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Requests in flight to one host when the user sets nothing: enough for `--jobs 8` times a few
/// images in flight, low enough that a run never opens hundreds of connections to one registry.
pub const DEFAULT_MAX_REQUESTS: usize = 32;

/// The limits of one registry host. `None`: the default (`max_requests`), or no limit
/// (`requests_per_second`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HostLimits {
    pub max_requests: Option<usize>,
    pub requests_per_second: Option<f64>,
}

/// The limits of a run: per host (`host[:port]`, as the user writes it or as the API host), and
/// what applies elsewhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// For hosts not listed (`--max-requests`; its `max_requests` `None`: [`DEFAULT_MAX_REQUESTS`]).
    pub default: HostLimits,
    pub hosts: HashMap<String, HostLimits>,
}

impl Limits {
    /// What applies to a registry written as `registry` whose API is at `api_host`.
    fn for_host(&self, registry: &str, api_host: &str) -> HostLimits {
        let listed = self
            .hosts
            .get(registry)
            .or_else(|| self.hosts.get(api_host));
        HostLimits {
            max_requests: listed
                .and_then(|l| l.max_requests)
                .or(self.default.max_requests),
            requests_per_second: listed
                .and_then(|l| l.requests_per_second)
                .or(self.default.requests_per_second),
        }
    }
}

/// The run's limiters, one per API host, made on first use.
#[derive(Default)]
pub(super) struct Limiters {
    limits: Limits,
    by_host: Mutex<HashMap<String, Arc<Limiter>>>,
}

impl Limiters {
    pub fn new(limits: Limits) -> Limiters {
        Limiters {
            limits,
            by_host: Mutex::default(),
        }
    }

    /// The limiter of `api_host`; `reads`: the session asking will read from it (a source).
    pub fn get(&self, registry: &str, api_host: &str, reads: bool) -> Arc<Limiter> {
        let limiter = self
            .by_host
            .lock()
            .expect("lock")
            .entry(api_host.to_string())
            .or_insert_with(|| Arc::new(Limiter::new(self.limits.for_host(registry, api_host))))
            .clone();
        if reads {
            limiter.read_from.store(true, Ordering::Relaxed);
        }
        limiter
    }
}

/// The limits of one host, shared by its sessions.
pub(super) struct Limiter {
    requests: Arc<Semaphore>,
    bucket: Option<Bucket>,
    /// Some session of this run reads from the host (see the module doc on uploads).
    read_from: AtomicBool,
    /// The pause between requests while the registry reports a nearly used-up quota.
    pub pace: Mutex<Duration>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter::new(HostLimits::default())
    }
}

impl Limiter {
    fn new(limits: HostLimits) -> Limiter {
        let max_requests = limits
            .max_requests
            .unwrap_or(DEFAULT_MAX_REQUESTS)
            .clamp(1, Semaphore::MAX_PERMITS);
        Limiter {
            requests: Arc::new(Semaphore::new(max_requests)),
            bucket: limits
                .requests_per_second
                .filter(|r| *r > 0.0)
                .map(Bucket::new),
            read_from: AtomicBool::new(false),
            pace: Mutex::new(Duration::ZERO),
        }
    }

    /// Wait until one more request may go out: a permit (held by the returned value), the rate
    /// limit's slot, and the registry's pause. `streamed_upload`: the body is a one-shot stream
    /// (see the module doc).
    pub async fn admit(&self, streamed_upload: bool) -> Option<OwnedSemaphorePermit> {
        let permit = if streamed_upload && self.read_from.load(Ordering::Relaxed) {
            self.requests.clone().try_acquire_owned().ok()
        } else {
            Some(
                self.requests
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            )
        };
        if let Some(bucket) = &self.bucket {
            tokio::time::sleep_until(bucket.reserve(Instant::now())).await;
        }
        let pause = *self.pace.lock().expect("lock");
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        permit
    }

    /// Places free now (for tests).
    #[cfg(test)]
    fn free(&self) -> usize {
        self.requests.available_permits()
    }
}

/// A token bucket as GCRA: a rate and a burst of one second's worth (at least one request).
struct Bucket {
    interval: Duration,
    burst: u32,
    /// The theoretical arrival time of the next request.
    tat: Mutex<Option<Instant>>,
}

impl Bucket {
    fn new(per_second: f64) -> Bucket {
        Bucket {
            interval: Duration::from_secs_f64(1.0 / per_second),
            burst: (per_second.floor() as u32).max(1),
            tat: Mutex::new(None),
        }
    }

    /// When a request arriving at `now` may start; the slot is taken.
    fn reserve(&self, now: Instant) -> Instant {
        let mut tat = self.tat.lock().expect("lock");
        let t = tat.map_or(now, |t| t.max(now));
        *tat = Some(t + self.interval);
        // Up to `burst` requests may run ahead of the steady rate.
        let ahead = self.interval * (self.burst - 1);
        t.checked_sub(ahead).map_or(now, |start| start.max(now))
    }
}

/// `resp`, whose body now holds `permit` until it is read to the end or dropped.
pub(super) fn hold(resp: reqwest::Response, permit: OwnedSemaphorePermit) -> reqwest::Response {
    use reqwest::ResponseBuilderExt as _;
    let url = resp.url().clone();
    let (mut parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
    // The conversion loses the URL; put it back where reqwest looks for it.
    let (with_url, ()) = http::Response::builder()
        .url(url)
        .body(())
        .expect("an empty response builds")
        .into_parts();
    parts.extensions.extend(with_url.extensions);
    let body = reqwest::Body::wrap(Held {
        body,
        permit: Some(permit),
    });
    reqwest::Response::from(http::Response::from_parts(parts, body))
}

/// A body that releases its request permit when it ends (or is dropped).
struct Held {
    body: reqwest::Body,
    permit: Option<OwnedSemaphorePermit>,
}

impl http_body::Body for Held {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_lets_a_second_s_burst_through_then_keeps_the_rate() {
        let b = Bucket::new(4.0);
        let t0 = Instant::now();
        let starts: Vec<Duration> = (0..10).map(|_| b.reserve(t0) - t0).collect();
        let ms: Vec<u128> = starts.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [0, 0, 0, 0, 250, 500, 750, 1000, 1250, 1500]);
        // After a quiet while the burst is back.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(b.reserve(later), later);
        // Below one request a second: one at a time.
        let slow = Bucket::new(0.5);
        assert_eq!(slow.reserve(t0), t0);
        assert_eq!(slow.reserve(t0) - t0, Duration::from_secs(2));
    }

    #[test]
    fn a_listed_host_overrides_the_default_by_either_name() {
        let limits = Limits {
            default: HostLimits {
                max_requests: Some(8),
                requests_per_second: None,
            },
            hosts: [(
                "docker.io".to_string(),
                HostLimits {
                    max_requests: None,
                    requests_per_second: Some(10.0),
                },
            )]
            .into(),
        };
        let hub = limits.for_host("docker.io", "registry-1.docker.io");
        assert_eq!(hub.max_requests, Some(8));
        assert_eq!(hub.requests_per_second, Some(10.0));
        assert_eq!(
            limits.for_host("quay.io", "quay.io").requests_per_second,
            None
        );
        let limiters = Limiters::new(limits);
        let a = limiters.get("docker.io", "registry-1.docker.io", false);
        let b = limiters.get("registry-1.docker.io", "registry-1.docker.io", true);
        assert!(Arc::ptr_eq(&a, &b), "one limiter per API host");
        assert_eq!(a.free(), 8);
    }

    #[tokio::test]
    async fn a_permit_is_held_until_the_body_is_read() {
        let limiter = Limiter::new(HostLimits {
            max_requests: Some(2),
            requests_per_second: None,
        });
        let permit = limiter.admit(false).await.unwrap();
        assert_eq!(limiter.free(), 1);
        let resp = hold(
            reqwest::Response::from(http::Response::new(reqwest::Body::from("body bytes"))),
            permit,
        );
        assert_eq!(resp.content_length(), Some(10), "the size survives");
        assert_eq!(limiter.free(), 1, "still held with the headers");
        assert_eq!(resp.bytes().await.unwrap(), "body bytes");
        assert_eq!(limiter.free(), 2, "released once read");
        // A streamed upload at a host nobody reads from waits like any request; at a host this
        // run reads from, it goes without a permit rather than wait on its own download.
        let _a = limiter.admit(false).await.unwrap();
        let _b = limiter.admit(false).await.unwrap();
        limiter.read_from.store(true, Ordering::Relaxed);
        assert!(limiter.admit(true).await.is_none());
    }
}
