//! A tiny blocking HTTP/1.1 client on `std::net::TcpStream` (one connection per request,
//! `Connection: close`), and [`Client`]: Distribution-API helpers on top of it that work against
//! both the real [`Registry`](super::Registry) and the [`SparseRegistry`](super::SparseRegistry)
//! test double (both deref to a `Client`).
//!
//! Plain http only (a TLS registry cannot be reached with this).

use super::digest_of;
use super::imagegen::{
    GeneratedImage, MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Response headers in the order received (names as sent by the server).
pub type Headers = Vec<(String, String)>;
/// `(status, headers, body)`.
pub type Response = (u16, Headers, Vec<u8>);

/// Every manifest media type, for `Accept` (the 2.8 registry 404s OCI content otherwise).
pub const ACCEPT_ALL_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The first header named `name` (case-insensitive).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// One HTTP/1.1 request to `addr` ("127.0.0.1:PORT"); `path` includes any query.
/// Panics on connection or protocol errors (not on HTTP error statuses).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"))
}

/// Like [`request`] but returns I/O and protocol errors (used for readiness polling).
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: mirror-test-support\r\n"
    );
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if (!body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE")) && !has("content-length")
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// Parses a whole HTTP/1.1 response (status line, headers, body: Content-Length, chunked, or
/// up to EOF).
pub fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Response> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad(format!("no end of headers in {} bytes", raw.len())))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("non-UTF-8 headers"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let mut headers = Headers::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let rest = &raw[end + 4..];
    let body = if head_only || status == 204 || status == 304 || (100..200).contains(&status) {
        Vec::new()
    } else if header(&headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    {
        dechunk(rest)?
    } else if let Some(len) = header(&headers, "content-length").and_then(|l| l.parse().ok()) {
        let len: usize = len;
        if rest.len() < len {
            return Err(bad(format!("body has {} of {len} bytes", rest.len())));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk size"))?;
        let size_str = std::str::from_utf8(&data[..eol]).map_err(|_| bad("bad chunk size"))?;
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_str, 16).map_err(|_| bad("bad chunk size"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(bad("truncated chunk"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Splits `"repo/path:tag"` (or `"repo@sha256:…"`) into `(repo, reference)`.
/// Without a tag the reference is `latest`.
pub fn split_repo_ref(repo_ref: &str) -> (&str, &str) {
    if let Some((r, d)) = repo_ref.split_once('@') {
        return (r, d);
    }
    let slash = repo_ref.rfind('/').map(|i| i + 1).unwrap_or(0);
    match repo_ref[slash..].rfind(':') {
        Some(i) => (&repo_ref[..slash + i], &repo_ref[slash + i + 1..]),
        None => (repo_ref, "latest"),
    }
}

/// Distribution-API helpers against one registry address. Panics on unexpected answers, with
/// the status and body in the message.
#[derive(Clone, Debug)]
pub struct Client {
    /// "127.0.0.1:PORT"
    pub addr: String,
    /// A full `Authorization` header value sent with every request that has none.
    pub auth: Option<String>,
}

impl Client {
    pub fn new(addr: impl Into<String>) -> Client {
        Client {
            addr: addr.into(),
            auth: None,
        }
    }

    pub fn with_basic_auth(addr: impl Into<String>, user: &str, pass: &str) -> Client {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        Client {
            addr: addr.into(),
            auth: Some(format!("Basic {token}")),
        }
    }

    /// One request; adds `Authorization` (when this client has credentials and `headers` has
    /// none). For an unauthenticated request use [`request`] with the address.
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut hs: Vec<(&str, &str)> = headers.to_vec();
        if let Some(a) = &self.auth
            && !hs
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            hs.push(("Authorization", a.as_str()));
        }
        request(&self.addr, method, path, &hs, body)
    }

    /// `GET /v2/<repo>/manifests/<reference>` with `Accept` of all four manifest types:
    /// `Some((content_type, bytes))` on 200, `None` on 404, panics otherwise.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let (st, hs, body) = self.http("GET", &path, &[("Accept", ACCEPT_ALL_MANIFESTS)], &[]);
        match st {
            200 => Some((header(&hs, "content-type").unwrap_or("").to_string(), body)),
            404 => None,
            _ => panic!("GET {path}: {st} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// The exact manifest bytes served for `reference` (tag or digest), `None` on 404.
    pub fn manifest_bytes(&self, repo: &str, reference: &str) -> Option<Vec<u8>> {
        self.get_manifest(repo, reference).map(|(_, b)| b)
    }

    /// `HEAD /v2/<repo>/blobs/<digest>`: true on 200, false on 404, panics otherwise.
    pub fn has_blob(&self, repo: &str, digest: &str) -> bool {
        self.head_exists(&format!("/v2/{repo}/blobs/{digest}"))
    }

    /// `HEAD /v2/<repo>/manifests/<reference>` (with Accept): true on 200, false on 404.
    pub fn has_manifest(&self, repo: &str, reference: &str) -> bool {
        self.head_exists(&format!("/v2/{repo}/manifests/{reference}"))
    }

    fn head_exists(&self, path: &str) -> bool {
        let (st, _, _) = self.http("HEAD", path, &[("Accept", ACCEPT_ALL_MANIFESTS)], &[]);
        match st {
            200 => true,
            404 => false,
            _ => panic!("HEAD {path}: unexpected {st}"),
        }
    }

    /// Every tag of `repo`, sorted (empty when the repository is unknown).
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let path = format!("/v2/{repo}/tags/list");
        let (st, _, body) = self.http("GET", &path, &[], &[]);
        match st {
            200 => {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let mut tags: Vec<String> = v["tags"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|t| t.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                tags.sort();
                tags
            }
            404 => Vec::new(),
            _ => panic!("GET {path}: {st} {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Uploads `bytes` as a blob of `repo` (POST, then PUT `?digest=`); returns its digest.
    /// Panics unless the registry answers 201.
    pub fn upload_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = digest_of(bytes);
        let post = format!("/v2/{repo}/blobs/uploads/");
        let (st, hs, body) = self.http("POST", &post, &[], &[]);
        assert_eq!(st, 202, "POST {post}: {}", String::from_utf8_lossy(&body));
        let loc = header(&hs, "location")
            .expect("upload Location")
            .to_string();
        let loc = strip_origin(&loc);
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={digest}");
        let (st, _, body) = self.http(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(st, 201, "PUT {put}: {}", String::from_utf8_lossy(&body));
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with `Content-Type: media_type`; returns the answer
    /// as is (the caller asserts).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.http(
            "PUT",
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Content-Type", media_type)],
            bytes,
        )
    }

    /// `DELETE /v2/<repo>/manifests/<digest>`; returns the status.
    pub fn delete_manifest(&self, repo: &str, digest: &str) -> u16 {
        self.http(
            "DELETE",
            &format!("/v2/{repo}/manifests/{digest}"),
            &[],
            &[],
        )
        .0
    }

    /// Pushes the blobs and then the manifests (by digest) of the given entries of `img`
    /// (digests of [`GeneratedImage::entries`]); blobs already present are skipped.
    /// Panics on any refusal.
    pub fn push_entries(&self, img: &GeneratedImage, repo: &str, entry_digests: &[&str]) {
        for d in entry_digests {
            let e = img
                .entry(d)
                .unwrap_or_else(|| panic!("{d} is not an entry of the image"));
            for b in &e.blobs {
                if !self.has_blob(repo, b) {
                    self.upload_blob(repo, &img.blobs[b]);
                }
            }
            let (st, _, body) = self.put_manifest(repo, &e.digest, &e.media_type, &e.manifest);
            assert_eq!(
                st,
                201,
                "PUT manifest {} to {repo}: {}",
                e.digest,
                String::from_utf8_lossy(&body)
            );
        }
    }

    /// Pushes the whole image with exact bytes: every blob, every child manifest by digest, then
    /// the index (or the single manifest) by tag. `repo_tag` is `"repo:tag"`.
    pub fn push_image(&self, img: &GeneratedImage, repo_tag: &str) {
        let (repo, tag) = split_repo_ref(repo_tag);
        if !img.is_single() {
            let all: Vec<&str> = img.entries.iter().map(|e| e.digest.as_str()).collect();
            self.push_entries(img, repo, &all);
        } else {
            for b in &img.entries[0].blobs {
                if !self.has_blob(repo, b) {
                    self.upload_blob(repo, &img.blobs[b]);
                }
            }
        }
        let (st, hs, body) = self.put_manifest(repo, tag, &img.index_media_type, &img.index);
        assert_eq!(
            st,
            201,
            "PUT {repo}:{tag}: {}",
            String::from_utf8_lossy(&body)
        );
        if let Some(d) = header(&hs, "docker-content-digest") {
            assert_eq!(d, img.index_digest, "registry computed another digest");
        }
    }
}

/// `http://host:port/path?q` → `/path?q`; a relative location stays as is.
pub fn strip_origin(loc: &str) -> &str {
    if let Some(rest) = loc
        .strip_prefix("http://")
        .or_else(|| loc.strip_prefix("https://"))
    {
        rest.find('/').map(|i| &rest[i..]).unwrap_or("/")
    } else {
        loc
    }
}

/// Is `media_type` an index / manifest list?
pub fn is_index_type(media_type: &str) -> bool {
    media_type == MT_OCI_INDEX || media_type == MT_DOCKER_LIST
}

/// Is `media_type` an image manifest?
pub fn is_manifest_type(media_type: &str) -> bool {
    media_type == MT_OCI_MANIFEST || media_type == MT_DOCKER_MANIFEST
}
