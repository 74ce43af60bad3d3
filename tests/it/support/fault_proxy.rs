//! A fault-injecting HTTP/1.1 reverse proxy: a TEST DOUBLE put in front of a real registry
//! ([`super::Registry`]) to show what `mirror` does when the network or the registry misbehaves.
//!
//! No installable registry cuts a blob download in half, answers 503 to every third manifest
//! request or lies about a digest on demand, so this proxy does, deterministically, on loopback
//! only: it listens on a free `127.0.0.1` port, forwards every request to an upstream that must
//! itself be on `127.0.0.1`, and applies the [`Faults`] in force (changeable while it runs, see
//! [`FaultProxy::set_faults`]). Everything else passes through byte for byte, and every request
//! is logged ([`FaultProxy::seen`]) with the status the client got and the fault applied, so a
//! test can assert that the fault really happened and what the client did next (a `Range`
//! request, a `DELETE` of an upload session).
//!
//! Shape: plain std threads, one per connection (at most [`MAX_CONNECTIONS`] at a time), one
//! request per connection (answers carry `Connection: close`, so clients never reuse one), socket
//! timeouts of 30 s, and `Host` kept as the client sent it, so the registry's upload `Location`
//! URLs point back at the proxy. A TLS ClientHello is dropped, so `mirror` falls back to plain
//! http as it does for any loopback registry. Dropping the proxy stops accepting connections.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// Which blob downloads get cut off after half of their body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cut {
    #[default]
    Never,
    /// The first download of each blob (by digest); later ones (a resumption) pass.
    OncePerBlob,
    /// The first N blob downloads, whatever the blob (resumptions count too).
    FirstN(usize),
}

/// How to rewrite a `200` answer to a manifest `GET`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rewrite {
    /// The first half of the body, which is not JSON; no `Docker-Content-Digest`.
    InvalidJson,
    /// The same body with another `Content-Type`.
    ContentType(&'static str),
    /// The body padded with spaces (still valid JSON) to 5 MiB, with a `Content-Length`.
    Huge,
    /// The same, sent chunked (no `Content-Length`): only counting the bytes catches it.
    HugeChunked,
    /// The same body with a `Docker-Content-Digest` of other bytes.
    WrongDigest,
}

/// The faults in force. `Default`: none (a transparent proxy).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Cut blob `GET` answers (200 or 206) after half of their body: the client gets the full
    /// `Content-Length` in the head, half the bytes, then the connection closes.
    pub cut_blobs: Cut,
    /// Drop `Range` from blob `GET`s, so the registry answers 200 with the whole blob, like a
    /// registry without range support.
    pub ignore_range: bool,
    /// Answer 503 (without asking upstream) to every k-th manifest request (any method): the
    /// k-th, 2k-th, …
    pub manifest_503_every: Option<usize>,
    /// Answer 429 with `Retry-After: 1` to the first request after the `/v2/` ping, once.
    pub once_429: bool,
    /// Send blob `GET` bodies at this many bytes per second at most (all connections together).
    pub throttle_blob_bytes_per_sec: Option<u64>,
    /// Rewrite every 200 answer to a manifest `GET`.
    pub manifest_rewrite: Option<Rewrite>,
    /// Cut the first N blob upload `PUT`s after half of their body: upstream gets half the body
    /// and a closed connection, the client a reset and no answer.
    pub cut_uploads: usize,
}

/// One request as the proxy handled it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: String,
    /// The client's `Range` header, if any.
    pub range: Option<String>,
    /// The status the client got (0: none, the connection was cut before an answer).
    pub status: u16,
    /// Body bytes the client got.
    pub body_bytes: u64,
    /// The fault applied, if any: `cut`, `503`, `429`, `rewrite`, `cut-upload`, `range-dropped`.
    pub fault: Option<&'static str>,
    /// How the exchange broke off, if it did (the client went away, …).
    pub error: Option<String>,
}

impl Seen {
    /// A blob download (`GET …/blobs/<digest>`).
    pub fn is_blob_get(&self) -> bool {
        self.method == "GET" && blob_digest(&self.path).is_some()
    }
    /// The blob digest of a `…/blobs/<digest>` path.
    pub fn blob(&self) -> Option<&str> {
        blob_digest(&self.path)
    }
}

struct Shared {
    upstream: String,
    faults: Mutex<Faults>,
    log: Mutex<Vec<Seen>>,
    manifest_requests: AtomicUsize,
    blob_gets_cut: AtomicUsize,
    uploads_cut: AtomicUsize,
    cut_digests: Mutex<HashSet<String>>,
    sent_429: AtomicBool,
    /// The throttle: when the next blob byte may go.
    next_send: Mutex<Instant>,
    active: AtomicUsize,
    /// Requests between their head arriving and the head of their answer going out, and the
    /// most there ever were at once (see [`FaultProxy::max_in_flight`]).
    in_flight: Arc<AtomicUsize>,
    max_in_flight: AtomicUsize,
    stop: AtomicBool,
}

/// The proxy; see the module doc. Stops accepting on drop.
pub struct FaultProxy {
    addr: String,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy for `upstream` (`127.0.0.1:PORT`) with `faults` in force.
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        assert!(
            upstream.starts_with("127.0.0.1:"),
            "the fault proxy forwards to loopback only, not {upstream}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            faults: Mutex::new(faults),
            log: Mutex::new(Vec::new()),
            manifest_requests: AtomicUsize::new(0),
            blob_gets_cut: AtomicUsize::new(0),
            uploads_cut: AtomicUsize::new(0),
            cut_digests: Mutex::new(HashSet::new()),
            sent_429: AtomicBool::new(false),
            next_send: Mutex::new(Instant::now()),
            active: AtomicUsize::new(0),
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fault-proxy-accept".into())
            .spawn(move || accept_loop(listener, s))
            .expect("spawn the fault proxy");
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// `docker://127.0.0.1:PORT/<repo_and_tag>` through the proxy.
    pub fn url(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }

    /// Replace the faults in force and reset the counters (every k-th, first N, once).
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
        self.shared.manifest_requests.store(0, Ordering::SeqCst);
        self.shared.blob_gets_cut.store(0, Ordering::SeqCst);
        self.shared.uploads_cut.store(0, Ordering::SeqCst);
        self.shared.cut_digests.lock().unwrap().clear();
        self.shared.sent_429.store(false, Ordering::SeqCst);
    }

    /// Every request handled so far, in the order they finished. Waits (at most 5 s) for the
    /// connections in progress to end first, so a test that asks once its client has exited sees
    /// every request that client made.
    pub fn seen(&self) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shared.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.shared.log.lock().unwrap().clone()
    }

    /// Forget the log (and the most requests seen in flight at once).
    pub fn clear_log(&self) {
        self.shared.log.lock().unwrap().clear();
        self.shared.max_in_flight.store(0, Ordering::SeqCst);
    }

    /// The most requests that were in flight at once: counted from the arrival of a request's
    /// head to the departure of its answer's head. A client holds a request's place at least that
    /// long (it sends the head after taking the place and reads the answer before giving it
    /// back), so this never exceeds what the client allows itself.
    pub fn max_in_flight(&self) -> usize {
        let _ = self.seen();
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests that got `fault`.
    pub fn faults_applied(&self, fault: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.fault == Some(fault))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        while shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.active.fetch_add(1, Ordering::SeqCst);
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("fault-proxy-conn".into())
            .spawn(move || {
                let _ = handle(&s, conn);
                s.active.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            shared.active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// `sha256:…` of a `/v2/<name>/blobs/<digest>` path (not an upload).
fn blob_digest(path: &str) -> Option<&str> {
    let (_, rest) = path.rsplit_once("/blobs/")?;
    (rest.starts_with("sha256:") && !rest.contains('/')).then_some(rest)
}

fn is_manifest_path(path: &str) -> bool {
    path.starts_with("/v2/") && path.contains("/manifests/")
}

fn is_upload_path(path: &str) -> bool {
    path.contains("/blobs/uploads/")
}

type HeaderList = Vec<(String, String)>;

fn get<'a>(headers: &'a HeaderList, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The head of a request or response: the first line and the headers.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<(String, HeaderList)>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = HeaderList::new();
    let mut total = first.len();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line)?;
        total += n;
        if n == 0 || total > 64 * 1024 {
            return Err(std::io::Error::other("truncated or oversized head"));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

fn write_head(w: &mut impl Write, first: &str, headers: &HeaderList) -> std::io::Result<()> {
    if first.starts_with("HTTP/") {
        answer_started();
    }
    let mut out = format!("{first}\r\n");
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("connection") || k.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    w.write_all(out.as_bytes())
}

#[derive(Clone, Copy, Debug)]
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilEof,
}

fn framing(headers: &HeaderList, is_response: bool) -> Framing {
    if get(headers, "transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        return Framing::Chunked;
    }
    match get(headers, "content-length").and_then(|l| l.parse().ok()) {
        Some(0) => Framing::None,
        Some(n) => Framing::Length(n),
        None if is_response => Framing::UntilEof,
        None => Framing::None,
    }
}

/// Copy a body as framed (chunked framing is copied as is); `limit`: stop after this many bytes
/// of a `Length` body. Returns the body bytes copied.
fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    framing: Framing,
    limit: Option<u64>,
    throttle: Option<(&Shared, u64)>,
) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut copy_n = |r: &mut dyn BufRead, w: &mut dyn Write, n: Option<u64>| {
        let mut done = 0u64;
        loop {
            let want = match n {
                Some(n) if done >= n => break,
                Some(n) => ((n - done) as usize).min(buf.len()),
                None => buf.len(),
            };
            let got = r.read(&mut buf[..want])?;
            if got == 0 {
                if n.is_some() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "body ended early",
                    ));
                }
                break;
            }
            if let Some((shared, rate)) = throttle {
                pace(shared, rate, got as u64);
            }
            w.write_all(&buf[..got])?;
            done += got as u64;
        }
        Ok::<u64, std::io::Error>(done)
    };
    match framing {
        Framing::None => Ok(0),
        Framing::Length(n) => copy_n(r, w, Some(limit.map_or(n, |l| l.min(n)))),
        Framing::UntilEof => copy_n(r, w, None),
        Framing::Chunked => {
            let mut total = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line)? == 0 {
                    return Err(std::io::Error::other("truncated chunked body"));
                }
                w.write_all(line.as_bytes())?;
                let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| std::io::Error::other("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        let mut t = String::new();
                        if r.read_line(&mut t)? == 0 {
                            return Ok(total);
                        }
                        w.write_all(t.as_bytes())?;
                        if t.trim().is_empty() {
                            return Ok(total);
                        }
                    }
                }
                total += copy_n(r, w, Some(size + 2))? - 2;
            }
        }
    }
}

/// Read a whole body into memory (small bodies only: manifests).
fn read_body(r: &mut impl BufRead, framing: Framing) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    copy_body(r, &mut raw, framing, None, None)?;
    if let Framing::Chunked = framing {
        let mut out = Vec::new();
        let mut rest = &raw[..];
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap_or(0);
            let size = usize::from_str_radix(
                std::str::from_utf8(&rest[..eol])
                    .unwrap_or("0")
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .unwrap_or(0);
            if size == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[eol + 2 + size + 2..];
        }
    }
    Ok(raw)
}

/// The throttle: reserve `n` bytes of the shared budget and sleep until they may go.
fn pace(shared: &Shared, rate: u64, n: u64) {
    let wait = {
        let mut next = shared.next_send.lock().unwrap();
        let now = Instant::now();
        let start = (*next).max(now);
        *next = start + Duration::from_secs_f64(n as f64 / rate.max(1) as f64);
        *next - now
    };
    std::thread::sleep(wait);
}

fn simple_answer(
    w: &mut impl Write,
    status: u16,
    reason: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<u64> {
    let body = format!(
        r#"{{"errors":[{{"code":"UNAVAILABLE","message":"injected by the fault proxy: {status} {reason}"}}]}}"#
    );
    let mut headers: HeaderList = vec![
        ("Content-Type".into(), "application/json".into()),
        ("Content-Length".into(), body.len().to_string()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    write_head(w, &format!("HTTP/1.1 {status} {reason}"), &headers)?;
    w.write_all(body.as_bytes())?;
    w.flush()?;
    Ok(body.len() as u64)
}

fn handle(shared: &Shared, client: TcpStream) -> std::io::Result<()> {
    let timeout = Some(Duration::from_secs(30));
    client.set_read_timeout(timeout)?;
    client.set_write_timeout(timeout)?;
    client.set_nodelay(true)?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let to_client = client;
    {
        let peek = from_client.fill_buf()?;
        if peek.is_empty() || peek[0] == 0x16 {
            return Ok(()); // closed, or a TLS ClientHello: plain http only
        }
    }
    let Some((request_line, req_headers)) = read_head(&mut from_client)? else {
        return Ok(());
    };
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    ANSWER_PENDING.with(|p| *p.borrow_mut() = Some(shared.in_flight.clone()));
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let mut seen = Seen {
        method: method.clone(),
        path: path.clone(),
        query,
        range: get(&req_headers, "range").map(str::to_string),
        status: 0,
        body_bytes: 0,
        fault: None,
        error: None,
    };
    let result = forward(
        shared,
        &mut seen,
        from_client,
        to_client,
        &request_line,
        req_headers,
    );
    answer_started();
    if let Err(e) = &result {
        seen.error = Some(e.to_string());
    }
    shared.log.lock().unwrap().push(seen);
    result
}

thread_local! {
    /// The in-flight count of this connection's request, until its answer's head goes out.
    static ANSWER_PENDING: std::cell::RefCell<Option<Arc<AtomicUsize>>> =
        const { std::cell::RefCell::new(None) };
}

/// The answer's head is going out (or there will be none): the request is no longer counted.
fn answer_started() {
    if let Some(count) = ANSWER_PENDING.with(|p| p.borrow_mut().take()) {
        count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve one request (its head read) and record in `seen` what happened.
fn forward(
    shared: &Shared,
    seen: &mut Seen,
    mut from_client: BufReader<TcpStream>,
    mut to_client: TcpStream,
    request_line: &str,
    mut req_headers: HeaderList,
) -> std::io::Result<()> {
    let method = seen.method.clone();
    let path = seen.path.clone();
    let timeout = Some(Duration::from_secs(30));
    let faults = shared.faults.lock().unwrap().clone();
    let req_framing = framing(&req_headers, false);

    // Answers made here, without upstream.
    let manifest = is_manifest_path(&path);
    let n_manifest = if manifest {
        shared.manifest_requests.fetch_add(1, Ordering::SeqCst) + 1
    } else {
        0
    };
    /// `(status, reason, extra headers, fault name)` of an answer made here.
    type Injected = (
        u16,
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let injected: Option<Injected> = if manifest
        && faults
            .manifest_503_every
            .is_some_and(|k| k > 0 && n_manifest % k == 0)
    {
        Some((503, "Service Unavailable", vec![], "503"))
    } else if faults.once_429 && path != "/v2/" && !shared.sent_429.swap(true, Ordering::SeqCst) {
        Some((429, "Too Many Requests", vec![("Retry-After", "1")], "429"))
    } else {
        None
    };
    if let Some((status, reason, extra, fault)) = injected {
        copy_body(
            &mut from_client,
            &mut std::io::sink(),
            req_framing,
            None,
            None,
        )?;
        seen.body_bytes = simple_answer(&mut to_client, status, reason, &extra)?;
        seen.status = status;
        seen.fault = Some(fault);
        return Ok(());
    }

    let blob_get = method == "GET" && blob_digest(&path).is_some();
    if blob_get && faults.ignore_range && seen.range.is_some() {
        req_headers.retain(|(k, _)| !k.eq_ignore_ascii_case("range"));
        seen.fault = Some("range-dropped");
    }
    let upstream = TcpStream::connect(&shared.upstream)?;
    upstream.set_read_timeout(timeout)?;
    upstream.set_write_timeout(timeout)?;
    upstream.set_nodelay(true)?;
    let mut to_upstream = upstream.try_clone()?;
    write_head(&mut to_upstream, request_line, &req_headers)?;

    // A cut upload: half of the body upstream, then both connections closed, no answer.
    let cut_upload = method == "PUT"
        && is_upload_path(&path)
        && matches!(req_framing, Framing::Length(n) if n >= 2)
        && shared.uploads_cut.fetch_add(1, Ordering::SeqCst) < faults.cut_uploads;
    if cut_upload {
        let Framing::Length(n) = req_framing else {
            unreachable!()
        };
        copy_body(
            &mut from_client,
            &mut to_upstream,
            req_framing,
            Some(n / 2),
            None,
        )?;
        let _ = upstream.shutdown(Shutdown::Both);
        let _ = to_client.shutdown(Shutdown::Both);
        seen.fault = Some("cut-upload");
        return Ok(());
    }
    copy_body(&mut from_client, &mut to_upstream, req_framing, None, None)?;
    to_upstream.flush()?;

    let mut from_upstream = BufReader::new(upstream);
    let Some((status_line, mut resp_headers)) = read_head(&mut from_upstream)? else {
        let _ = to_client.shutdown(Shutdown::Both);
        return Ok(());
    };
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    seen.status = status;
    let resp_framing = if method == "HEAD" || status == 204 || status == 304 || status < 200 {
        Framing::None
    } else {
        framing(&resp_headers, true)
    };

    // A rewritten manifest.
    if let (true, true, 200, Some(rewrite)) =
        (manifest, method == "GET", status, faults.manifest_rewrite)
    {
        let mut body = read_body(&mut from_upstream, resp_framing)?;
        let drop_header =
            |h: &mut HeaderList, name: &str| h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        drop_header(&mut resp_headers, "content-length");
        drop_header(&mut resp_headers, "transfer-encoding");
        let mut chunked = false;
        match rewrite {
            Rewrite::InvalidJson => {
                body.truncate(body.len() / 2);
                drop_header(&mut resp_headers, "docker-content-digest");
            }
            Rewrite::ContentType(ct) => {
                drop_header(&mut resp_headers, "content-type");
                resp_headers.push(("Content-Type".into(), ct.into()));
            }
            Rewrite::Huge | Rewrite::HugeChunked => {
                body.resize(5 * 1024 * 1024, b' ');
                drop_header(&mut resp_headers, "docker-content-digest");
                chunked = rewrite == Rewrite::HugeChunked;
            }
            Rewrite::WrongDigest => {
                drop_header(&mut resp_headers, "docker-content-digest");
                resp_headers.push((
                    "Docker-Content-Digest".into(),
                    super::digest_of(b"not the manifest"),
                ));
            }
        }
        if chunked {
            resp_headers.push(("Transfer-Encoding".into(), "chunked".into()));
        } else {
            resp_headers.push(("Content-Length".into(), body.len().to_string()));
        }
        seen.body_bytes = body.len() as u64;
        seen.fault = Some("rewrite");
        write_head(&mut to_client, &status_line, &resp_headers)?;
        if chunked {
            for part in body.chunks(64 * 1024) {
                to_client.write_all(format!("{:x}\r\n", part.len()).as_bytes())?;
                to_client.write_all(part)?;
                to_client.write_all(b"\r\n")?;
            }
            to_client.write_all(b"0\r\n\r\n")?;
        } else {
            to_client.write_all(&body)?;
        }
        to_client.flush()?;
        return Ok(());
    }

    write_head(&mut to_client, &status_line, &resp_headers)?;
    let throttle = if blob_get {
        faults
            .throttle_blob_bytes_per_sec
            .map(|rate| (shared, rate))
    } else {
        None
    };
    // A cut download: the full Content-Length promised, half of it sent.
    let cut = match (blob_get, status, resp_framing) {
        (true, 200 | 206, Framing::Length(n)) if n >= 2 => match faults.cut_blobs {
            Cut::Never => None,
            Cut::OncePerBlob => {
                let digest = blob_digest(&path).unwrap_or("").to_string();
                shared
                    .cut_digests
                    .lock()
                    .unwrap()
                    .insert(digest)
                    .then_some(n / 2)
            }
            Cut::FirstN(k) => {
                (shared.blob_gets_cut.fetch_add(1, Ordering::SeqCst) < k).then_some(n / 2)
            }
        },
        _ => None,
    };
    let result = copy_body(
        &mut from_upstream,
        &mut to_client,
        resp_framing,
        cut,
        throttle,
    );
    if let Ok(n) = &result {
        seen.body_bytes = *n;
    }
    if cut.is_some() {
        let _ = to_client.flush();
        let _ = to_client.shutdown(Shutdown::Both);
        seen.fault = Some("cut");
    } else {
        let _ = to_client.flush();
    }
    result.map(|_| ())
}
