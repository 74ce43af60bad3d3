//! The session against fake registries: auth flows, redirects, and what errors say.
//!
//! The fake speaks just enough HTTP/1.1 to drive the client and records every request it saw.

use std::sync::Arc;

use futures::StreamExt;

use super::auth::basic;
use super::{RegistryOptions, RegistryRepo, Session};
use crate::oci::{Descriptor, Digest};
use crate::transport::{Fix, Hint, Side, Transport, TransportError};

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
                // A reply may set its own (lying) length.
                if !r
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                {
                    out.push_str(&format!("content-length: {}\r\n", r.body.len()));
                }
                out.push_str("\r\n");
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
    let client = Session::new(&server.addr, &server.addr, hermetic(&dir, "{}")).unwrap();
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
    let client = Session::new(&server.addr, &server.addr, hermetic(&dir, "{}")).unwrap();
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
            _ if !authorized => reply(401, &[("www-authenticate", r#"Basic realm="fake""#)], ""),
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
    let client = Session::new(&server.addr, &server.addr, options).unwrap();
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
    let client = Session::new(&server.addr, &server.addr, hermetic(&dir, "{}")).unwrap();
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
    let client = Session::new(&server.addr, &server.addr, options).unwrap();
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
    let handler: Arc<Handler> =
        Arc::new(
            |addr: &str, req: &Seen| match (req.method.as_str(), req.path()) {
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
            },
        );
    let server = fake(handler).await;
    let dir = tempfile::tempdir().unwrap();
    let auth_json = format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"refresh-1"}}}}}}"#,
        server.addr
    );
    let client = Session::new(&server.addr, &server.addr, hermetic(&dir, &auth_json)).unwrap();
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

// ---- the one request path: one retry policy for every request ----

/// A registry without auth whose blob answers come from `blob(n)` for its n-th blob request
/// (counting from 1), and whose uploads open at `/upload/1`.
fn open_registry(blob: impl Fn(usize, &Seen) -> Reply + Send + Sync + 'static) -> Arc<Handler> {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |_addr: &str, req: &Seen| match req.path() {
        "/v2/" => reply(200, &[], "{}"),
        p if p.contains("/blobs/uploads/") && req.method == "POST" => {
            reply(202, &[("location", "/upload/1?_state=s")], "")
        }
        p if p.contains("/blobs/") || p.starts_with("/upload/") => {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            blob(n, req)
        }
        _ => reply(404, &[], ""),
    })
}

/// A reply that announces `len` bytes and sends `body` before closing the connection.
fn reply_lying_length(status: u16, body: &str, len: usize) -> Reply {
    reply(status, &[("content-length", &len.to_string())], body)
}

/// A basic-auth registry (`u`/`pw`) whose blob GETs answer `blob(request)`.
fn basic_registry_with_blob(blob: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Arc<Handler> {
    let expected = format!("Basic {}", basic("u", "pw"));
    Arc::new(move |_addr: &str, req: &Seen| {
        let challenge = reply(401, &[("www-authenticate", r#"Basic realm="fake""#)], "");
        match req.path() {
            "/v2/" => challenge,
            _ if req.header("authorization") != Some(expected.as_str()) => challenge,
            p if p.contains("/blobs/") => blob(req),
            _ => reply(404, &[], ""),
        }
    })
}

fn retrying(dir: &tempfile::TempDir, retry_times: u32) -> RegistryOptions {
    RegistryOptions {
        retry_times,
        ..hermetic(dir, "{}")
    }
}

#[tokio::test]
async fn server_errors_are_retried_and_other_4xx_never() {
    let server = fake(open_registry(|n, _| match n {
        1 => reply(503, &[], ""),
        2 => reply(429, &[("retry-after", "0")], ""),
        _ => reply(200, &[], ""),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(&server.addr, &server.addr, retrying(&dir, 2)).unwrap();
    let repo = RegistryRepo::new(session, "app", false);
    assert!(repo.has_blob(&digest()).await.unwrap());
    let blob_path = format!("/v2/app/blobs/{}", digest());
    assert_eq!(server.count(&blob_path), 3, "{:#?}", server.seen());

    let server = fake(open_registry(|_, _| reply(403, &[], ""))).await;
    let session = Session::new(&server.addr, &server.addr, retrying(&dir, 2)).unwrap();
    let err = RegistryRepo::new(session, "app", false)
        .has_blob(&digest())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TransportError::Registry { status: 403, .. }),
        "{err}"
    );
    assert_eq!(server.count(&blob_path), 1);
}

#[tokio::test]
async fn an_exhausted_pull_quota_is_reported_at_once_with_what_to_do() {
    let server = fake(open_registry(|_, _| {
        reply(
            429,
            &[
                ("ratelimit-limit", "100;w=21600"),
                ("ratelimit-remaining", "0;w=21600"),
            ],
            "",
        )
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(&server.addr, &server.addr, retrying(&dir, 3)).unwrap();
    let err = RegistryRepo::new(session, "app", false)
        .has_blob(&digest())
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::RateLimited { .. }), "{err}");
    assert!(err.to_string().contains("100;w=21600"), "{err}");
    assert_eq!(
        err.hint(),
        Some(&Hint {
            side: Side::Source,
            fix: Fix::LoginForQuota
        })
    );
    assert!(!err.is_retryable());
    assert_eq!(server.count(&format!("/v2/app/blobs/{}", digest())), 1);
}

#[tokio::test]
async fn an_upload_body_is_sent_once_and_its_session_cancelled() {
    let server = fake(open_registry(|_, _| reply(503, &[], ""))).await;
    let dir = tempfile::tempdir().unwrap();
    let session = Session::new(&server.addr, &server.addr, retrying(&dir, 3)).unwrap();
    let repo = RegistryRepo::new(session, "app", true);
    let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"hello"))]).boxed();
    let err = repo.put_blob(&descriptor(5), body).await.unwrap_err();
    // The copy engine retries the whole blob with a fresh stream.
    assert!(
        matches!(err, TransportError::Registry { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    let seen = server.seen();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
    assert_eq!(puts.len(), 1, "{seen:#?}");
    assert_eq!(puts[0].body, "hello");
    assert!(puts[0].target.contains("_state=s") && puts[0].target.contains("digest="));
    // The cancellation keeps the session's state, less the digest (retried like any request).
    let deletes: Vec<&Seen> = seen.iter().filter(|s| s.method == "DELETE").collect();
    assert!(!deletes.is_empty(), "{seen:#?}");
    assert_eq!(deletes[0].target, "/upload/1?_state=s");
}

#[tokio::test]
async fn a_cut_download_resumes_through_the_same_authorized_path() {
    let server = fake(basic_registry_with_blob(|req| match req.header("range") {
        // The first answer promises 10 bytes and sends 5: the body ends early.
        None => reply_lying_length(200, "hello", 10),
        Some("bytes=5-") => reply(206, &[("content-range", "bytes 5-9/10")], "world"),
        Some(other) => panic!("unexpected range {other}"),
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let options = RegistryOptions {
        credentials: Some(("u".into(), "pw".into())),
        ..retrying(&dir, 1)
    };
    let session = Session::new(&server.addr, &server.addr, options).unwrap();
    let repo = RegistryRepo::new(session, "app", false);
    let mut stream = repo.get_blob(&descriptor(10)).await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(body, b"helloworld");
    let gets: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|s| s.method == "GET" && s.path().contains("/blobs/"))
        .collect();
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(gets.iter().all(|g| g.header("authorization").is_some()));
}

#[tokio::test]
async fn an_upload_dropped_mid_flight_is_cancelled_and_the_run_waits_for_it() {
    let server = fake(open_registry(|_, _| reply(204, &[], ""))).await;
    let dir = tempfile::tempdir().unwrap();
    let sessions = super::Sessions::new();
    let session = sessions
        .get(&server.addr, &server.addr, &hermetic(&dir, "{}"))
        .unwrap();
    let url = session.url("/upload/1?_state=s").await.unwrap();
    let access = super::auth::Access {
        repository: "app".into(),
        scopes: vec!["repository:app:pull,push".into()],
    };
    drop(super::upload::UploadSession::open(session, access, url));
    sessions
        .finish_cancellations(std::time::Duration::from_secs(5))
        .await;
    let deletes: Vec<Seen> = server
        .seen()
        .into_iter()
        .filter(|s| s.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:#?}");
    assert_eq!(deletes[0].target, "/upload/1?_state=s");
}
