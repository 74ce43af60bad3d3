//! `HostileRegistry`: a TEST DOUBLE of a registry that misbehaves on purpose, for what no real
//! registry does: it goes silent (before the answer's head, or halfway through a body), links
//! `tags/list` or referrers pages forever or back to a page it already sent, and sends bodies
//! (tag lists, token answers, error bodies) far larger than any real one.
//!
//! Each test scripts it with a handler: `Fn(&Req) -> Reply` decides what every request gets;
//! [`serve_image`] answers the usual manifest and blob requests of a generated image, so a
//! handler only scripts the misbehaviour. It is NOT a registry: plain HTTP/1.1 on 127.0.0.1, one
//! thread per connection, no auth unless a handler fakes it. It records every request and how
//! many body bytes each answer really got out (what the client read, plus the kernel's buffers),
//! so a test can show that `mirror` stopped reading instead of timing it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::GeneratedImage;

/// One request as the double read it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
}

impl Req {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a request gets.
pub enum Reply {
    /// A whole answer.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Nothing at all: the connection stays open and silent (until the client gives up).
    Silence,
    /// The head (with this `Content-Length`) and the first bytes of the body, then silence.
    StallBody {
        status: u16,
        headers: Vec<(String, String)>,
        content_length: u64,
        first: Vec<u8>,
    },
    /// `prefix`, then `item` repeated until `total` bytes are out (or the client stops
    /// reading), then `suffix`; no `Content-Length` (the body ends when the connection closes).
    Huge {
        status: u16,
        headers: Vec<(String, String)>,
        prefix: Vec<u8>,
        item: Vec<u8>,
        suffix: Vec<u8>,
        total: u64,
    },
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: vec![],
            body: vec![],
        }
    }
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap(),
        }
    }
    /// A 200 with these bytes and content type.
    pub fn bytes(content_type: &str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
        }
    }
    /// Add a header (to `Full` and `StallBody` answers).
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        match &mut self {
            Reply::Full { headers, .. }
            | Reply::StallBody { headers, .. }
            | Reply::Huge { headers, .. } => headers.push((name.into(), value.into())),
            Reply::Silence => {}
        }
        self
    }
}

/// One answered request: what was asked, and how many body bytes got out.
#[derive(Clone, Debug)]
pub struct Served {
    pub method: String,
    pub target: String,
    pub body_bytes: u64,
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

pub struct HostileRegistry {
    addr: String,
    log: Arc<Mutex<Vec<Served>>>,
    stop: Arc<AtomicBool>,
}

impl HostileRegistry {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> HostileRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (l, s) = (log.clone(), stop.clone());
        std::thread::Builder::new()
            .name("hostile-registry".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (h, l, s) = (handler.clone(), l.clone(), s.clone());
                    std::thread::spawn(move || serve_connection(conn, &*h, &l, &s));
                }
            })
            .unwrap();
        HostileRegistry { addr, log, stop }
    }

    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// `docker://127.0.0.1:PORT/REPO:TAG`.
    pub fn url(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }

    /// Every request answered so far, in order.
    pub fn log(&self) -> Vec<Served> {
        self.log.lock().unwrap().clone()
    }

    /// The requests whose path (without query) ends with `suffix`.
    pub fn requests_to(&self, suffix: &str) -> Vec<Served> {
        self.log()
            .into_iter()
            .filter(|s| s.target.split('?').next().unwrap_or("").ends_with(suffix))
            .collect()
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve_connection(
    conn: TcpStream,
    handler: &Handler,
    log: &Mutex<Vec<Served>>,
    stop: &AtomicBool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        // A TLS handshake (https is tried first on loopback): not HTTP, close.
        match reader.fill_buf() {
            Ok(b) if !b.is_empty() && b[0].is_ascii_uppercase() => {}
            _ => return,
        }
        let Some(req) = read_request(&mut reader) else {
            return;
        };
        // Logged on arrival, so a test sees it even while the answer is still silent.
        let at = {
            let mut l = log.lock().unwrap();
            l.push(Served {
                method: req.method.clone(),
                target: req.target.clone(),
                body_bytes: 0,
            });
            l.len() - 1
        };
        let reply = handler(&req);
        let mut sent = 0u64;
        let keep = write_reply(&mut conn, reply, &mut sent, stop);
        log.lock().unwrap()[at].body_bytes = sent;
        if !keep {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Req> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let req = Req {
        method,
        target,
        headers,
    };
    // Read (and drop) a request body.
    if let Some(n) = req
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::io::copy(&mut reader.by_ref().take(n), &mut std::io::sink()).ok()?;
    } else if req
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = u64::from_str_radix(size.trim(), 16).ok()?;
            std::io::copy(&mut reader.by_ref().take(n + 2), &mut std::io::sink()).ok()?;
            if n == 0 {
                break;
            }
        }
    }
    Some(req)
}

fn head(status: u16, headers: &[(String, String)], length: Option<u64>) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status} Hostile\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    match length {
        _ if has_length => {}
        Some(n) => h.push_str(&format!("Content-Length: {n}\r\n")),
        None => h.push_str("Connection: close\r\n"),
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// Silence until the client goes away or the double stops.
fn silence(conn: &mut TcpStream, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 1024];
    for _ in 0..600 {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return,
        }
    }
}

/// Write `reply`; false when the connection is done.
fn write_reply(conn: &mut TcpStream, reply: Reply, sent: &mut u64, stop: &AtomicBool) -> bool {
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let ok = conn
                .write_all(&head(status, &headers, Some(body.len() as u64)))
                .is_ok()
                && conn.write_all(&body).is_ok();
            if ok {
                *sent += body.len() as u64;
            }
            ok
        }
        Reply::Silence => {
            silence(conn, stop);
            false
        }
        Reply::StallBody {
            status,
            headers,
            content_length,
            first,
        } => {
            if conn
                .write_all(&head(status, &headers, Some(content_length)))
                .is_ok()
                && conn.write_all(&first).is_ok()
            {
                *sent += first.len() as u64;
                let _ = conn.flush();
                silence(conn, stop);
            }
            false
        }
        Reply::Huge {
            status,
            headers,
            prefix,
            item,
            suffix,
            total,
        } => {
            if conn.write_all(&head(status, &headers, None)).is_err()
                || conn.write_all(&prefix).is_err()
            {
                return false;
            }
            *sent += prefix.len() as u64;
            // Write in blocks of whole items.
            let per_block = (64 * 1024 / item.len().max(1)).max(1);
            let block: Vec<u8> = item
                .iter()
                .copied()
                .cycle()
                .take(item.len() * per_block)
                .collect();
            while *sent + (block.len() as u64) < total {
                if stop.load(Ordering::SeqCst) || conn.write_all(&block).is_err() {
                    return false;
                }
                *sent += block.len() as u64;
            }
            if conn.write_all(&suffix).is_ok() {
                *sent += suffix.len() as u64;
            }
            false
        }
    }
}

/// The usual answers for `img` as `repo:tag`: the `/v2/` ping, manifests (by tag and digest;
/// `HEAD` and `GET`) and blobs. `None` for any other request.
pub fn serve_image(img: &GeneratedImage, repo: &str, tag: &str, req: &Req) -> Option<Reply> {
    let path = req.path();
    if path == "/v2/" {
        return Some(Reply::json(200, serde_json::json!({})));
    }
    let rest = path.strip_prefix(&format!("/v2/{repo}/"))?;
    let (body, media_type) = if let Some(r) = rest.strip_prefix("manifests/") {
        if r == tag || r == img.index_digest {
            (img.index.clone(), img.index_media_type.clone())
        } else {
            let e = img.entries.iter().find(|e| e.digest == r)?;
            (e.manifest.clone(), e.media_type.clone())
        }
    } else if let Some(d) = rest.strip_prefix("blobs/") {
        (img.blobs.get(d)?.clone(), "application/octet-stream".into())
    } else {
        return None;
    };
    let digest = super::digest_of(&body);
    let reply = if req.method == "HEAD" {
        Reply::Full {
            status: 200,
            headers: vec![
                ("Content-Type".into(), media_type),
                ("Docker-Content-Digest".into(), digest),
                ("Content-Length".into(), body.len().to_string()),
            ],
            body: vec![],
        }
    } else {
        Reply::bytes(&media_type, body).with_header("Docker-Content-Digest", &digest)
    };
    Some(reply)
}

/// 404 with a registry error body.
pub fn not_found() -> Reply {
    Reply::json(
        404,
        serde_json::json!({"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}),
    )
}
