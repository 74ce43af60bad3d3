//! `SparseRegistry`: an in-memory TEST DOUBLE of a Distribution-API registry, for behaviour that
//! no registry installable here has:
//! - it ACCEPTS sparse indexes: an index (OCI index or Docker manifest list) whose children are
//!   missing is stored (201), like distribution 3.x with index validation off or Quay with
//!   `FEATURE_SPARSE_INDEX` (optionally announcing `X-Sparse-Manifest-Support: true`);
//! - it serves the OCI 1.1 referrers API (`GET /v2/<name>/referrers/<digest>`, `OCI-Subject`);
//! - it paginates `tags/list` with `n`/`last` and a `Link` header.
//!
//! Image manifests are still validated like 2.8 (missing config/layers → 400
//! `MANIFEST_BLOB_UNKNOWN`), and repositories are separate (a blob of repo A is not in repo B
//! unless pushed or mounted there). It ignores `Accept` (serves what is stored) and has no auth.
//! It is NOT the real registry: tests about real-registry behaviour use [`super::Registry`].
//!
//! Built on hyper 1 on its own current-thread tokio runtime thread, so sync tests can use it.

use super::http::Client;
use super::imagegen::{MT_DOCKER_LIST, MT_OCI_INDEX};
use super::{digest_of, sha256_hex};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// Behaviour switches of the test double.
#[derive(Clone, Debug)]
pub struct SparseOptions {
    /// Send `X-Sparse-Manifest-Support: true` on `GET /v2/` (as Quay does). Default false.
    pub announce_sparse: bool,
    /// Serve the referrers API; when false it answers 404 `text/plain` like 2.8. Default true.
    pub referrers_api: bool,
    /// Refuse sparse indexes after all, with HTTP 400 and one error with this code per missing
    /// child (e.g. `"BLOB_UNKNOWN"` like Nexus, `"MANIFEST_BLOB_UNKNOWN"` like 2.8). Default None.
    pub reject_sparse_with: Option<&'static str>,
    /// Distribution v3's `validation.manifests.indexes.platforms: list` with this `platformlist`
    /// (`(os, architecture)` pairs): an index is accepted when every entry whose platform is in the
    /// list is present; otherwise 400 with one `MANIFEST_BLOB_UNKNOWN` ("blob unknown to
    /// registry", detail: the digest) per absent listed entry, as measured on a real v3.0.0
    /// (REGISTRY-FACTS.md). An index with no entry for a listed platform is accepted. Default None.
    pub platform_list: Option<Vec<(&'static str, &'static str)>>,
}

impl Default for SparseOptions {
    fn default() -> Self {
        SparseOptions {
            announce_sparse: false,
            referrers_api: true,
            reject_sparse_with: None,
            platform_list: None,
        }
    }
}

#[derive(Default)]
struct Repo {
    blobs: HashMap<String, Bytes>,
    /// digest → (media type, bytes)
    manifests: HashMap<String, (String, Bytes)>,
    tags: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    repos: HashMap<String, Repo>,
    /// uuid → (repo, bytes so far)
    uploads: HashMap<String, (String, Vec<u8>)>,
    next_upload: u64,
    requests: Vec<(String, String)>,
}

type Resp = Response<Full<Bytes>>;

pub struct SparseRegistry {
    addr: String,
    state: Arc<Mutex<State>>,
    client: Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SparseRegistry {
    pub fn start() -> SparseRegistry {
        SparseRegistry::start_with(SparseOptions::default())
    }

    pub fn start_with(options: SparseOptions) -> SparseRegistry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let opts = Arc::new(options);
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new()
            .name("sparse-registry".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    loop {
                        tokio::select! {
                            _ = &mut rx => break,
                            acc = listener.accept() => {
                                let Ok((stream, _)) = acc else { continue };
                                let st = st.clone();
                                let opts = opts.clone();
                                tokio::spawn(async move {
                                    let svc = service_fn(move |req| {
                                        handle(st.clone(), opts.clone(), req)
                                    });
                                    let _ = http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .unwrap();
        SparseRegistry {
            client: Client::new(&addr),
            addr,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// `docker://127.0.0.1:PORT/<repo_and_tag>`
    pub fn url(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }

    /// The HTTP helper (also reachable through deref).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every request so far as `(method, path)`; `path` includes `?query` when there was one.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// The stored manifest for a tag or digest: `(media_type, bytes)`, read from memory.
    pub fn manifest(&self, repo: &str, reference: &str) -> Option<(String, Vec<u8>)> {
        let s = self.state.lock().unwrap();
        let r = s.repos.get(repo)?;
        let digest = resolve(r, reference)?;
        r.manifests
            .get(&digest)
            .map(|(mt, b)| (mt.clone(), b.to_vec()))
    }

    /// Is the blob in `repo` (read from memory)?
    pub fn has_blob(&self, repo: &str, digest: &str) -> bool {
        let s = self.state.lock().unwrap();
        s.repos
            .get(repo)
            .is_some_and(|r| r.blobs.contains_key(digest))
    }

    /// Digests of every blob of `repo`, sorted.
    pub fn blob_digests(&self, repo: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut v: Vec<String> = s
            .repos
            .get(repo)
            .map(|r| r.blobs.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Digests of every manifest of `repo`, sorted.
    pub fn manifest_digests(&self, repo: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut v: Vec<String> = s
            .repos
            .get(repo)
            .map(|r| r.manifests.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Stores a blob directly (no HTTP, no request recorded); returns its digest.
    pub fn insert_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let d = digest_of(bytes);
        let mut s = self.state.lock().unwrap();
        s.repos
            .entry(repo.to_string())
            .or_default()
            .blobs
            .insert(d.clone(), Bytes::copy_from_slice(bytes));
        d
    }

    /// Stores a manifest directly, unvalidated (e.g. to build a sparse or broken source), under
    /// its digest and, when `tag` is given, that tag; returns its digest.
    pub fn insert_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let d = digest_of(bytes);
        let mut s = self.state.lock().unwrap();
        let r = s.repos.entry(repo.to_string()).or_default();
        r.manifests.insert(
            d.clone(),
            (media_type.to_string(), Bytes::copy_from_slice(bytes)),
        );
        if let Some(t) = tag {
            r.tags.insert(t.to_string(), d.clone());
        }
        d
    }
}

impl Deref for SparseRegistry {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for SparseRegistry {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn resolve(r: &Repo, reference: &str) -> Option<String> {
    if reference.contains(':') {
        Some(reference.to_string())
    } else {
        r.tags.get(reference).cloned()
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn respond(status: u16, headers: &[(&str, String)], body: impl Into<Bytes>) -> Resp {
    let mut b = Response::builder().status(StatusCode::from_u16(status).unwrap());
    b = b.header("Docker-Distribution-API-Version", "registry/2.0");
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    b.body(Full::new(body.into())).unwrap()
}

fn error(status: u16, errors: &[(&str, &str, String)]) -> Resp {
    let errs: Vec<Value> = errors
        .iter()
        .map(|(code, msg, detail)| json!({ "code": code, "message": msg, "detail": detail }))
        .collect();
    respond(
        status,
        &[("Content-Type", "application/json".to_string())],
        serde_json::to_vec(&json!({ "errors": errs })).unwrap(),
    )
}

async fn handle(
    state: Arc<Mutex<State>>,
    opts: Arc<SparseOptions>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(respond(400, &[], "bad body")),
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    let content_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut s = state.lock().unwrap();
    let full = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    s.requests.push((method.clone(), full));
    let q = parse_query(query.as_deref());
    Ok(route(
        &mut s,
        &opts,
        &method,
        &path,
        &q,
        content_type.as_deref(),
        body,
    ))
}

fn route(
    s: &mut State,
    opts: &SparseOptions,
    method: &str,
    path: &str,
    q: &HashMap<String, String>,
    content_type: Option<&str>,
    body: Bytes,
) -> Resp {
    if path == "/v2/" || path == "/v2" {
        let mut hs = vec![("Content-Type", "application/json".to_string())];
        if opts.announce_sparse {
            hs.push(("X-Sparse-Manifest-Support", "true".to_string()));
        }
        return respond(200, &hs, "{}");
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return not_found();
    };
    if let Some(name) = rest.strip_suffix("/tags/list") {
        if method != "GET" {
            return unsupported();
        }
        return tags_list(s, name, q);
    }
    if let Some(i) = rest.rfind("/blobs/uploads") {
        let name = &rest[..i];
        let id = rest[i + "/blobs/uploads".len()..].trim_start_matches('/');
        return uploads(s, method, name, id, q, body);
    }
    if let Some(i) = rest.rfind("/manifests/") {
        let (name, reference) = (&rest[..i], &rest[i + "/manifests/".len()..]);
        return manifests(s, opts, method, name, reference, content_type, body);
    }
    if let Some(i) = rest.rfind("/blobs/") {
        let (name, digest) = (&rest[..i], &rest[i + "/blobs/".len()..]);
        return blobs(s, method, name, digest);
    }
    if let Some(i) = rest.rfind("/referrers/") {
        let (name, digest) = (&rest[..i], &rest[i + "/referrers/".len()..]);
        if !opts.referrers_api || method != "GET" {
            return not_found();
        }
        return referrers(s, name, digest, q);
    }
    not_found()
}

fn not_found() -> Resp {
    respond(
        404,
        &[("Content-Type", "text/plain; charset=utf-8".to_string())],
        "404 page not found\n",
    )
}

fn unsupported() -> Resp {
    error(
        405,
        &[(
            "UNSUPPORTED",
            "The operation is unsupported.",
            String::new(),
        )],
    )
}

fn tags_list(s: &State, name: &str, q: &HashMap<String, String>) -> Resp {
    let Some(r) = s.repos.get(name) else {
        return error(
            404,
            &[(
                "NAME_UNKNOWN",
                "repository name not known to registry",
                name.to_string(),
            )],
        );
    };
    let mut tags: Vec<&String> = r.tags.keys().collect();
    if let Some(last) = q.get("last") {
        tags.retain(|t| t.as_str() > last.as_str());
    }
    let mut hs = vec![("Content-Type", "application/json".to_string())];
    if let Some(n) = q.get("n").and_then(|n| n.parse::<usize>().ok())
        && tags.len() > n
    {
        tags.truncate(n);
        if let Some(last) = tags.last() {
            hs.push((
                "Link",
                format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\""),
            ));
        }
    }
    respond(
        200,
        &hs,
        serde_json::to_vec(&json!({ "name": name, "tags": tags })).unwrap(),
    )
}

fn uploads(
    s: &mut State,
    method: &str,
    name: &str,
    id: &str,
    q: &HashMap<String, String>,
    body: Bytes,
) -> Resp {
    let upload_unknown = || {
        error(
            404,
            &[(
                "BLOB_UPLOAD_UNKNOWN",
                "blob upload unknown to registry",
                id.to_string(),
            )],
        )
    };
    match (method, id.is_empty()) {
        ("POST", true) => {
            if let (Some(d), Some(from)) = (q.get("mount"), q.get("from")) {
                let found = s.repos.get(from).and_then(|r| r.blobs.get(d)).cloned();
                if let Some(bytes) = found {
                    s.repos
                        .entry(name.to_string())
                        .or_default()
                        .blobs
                        .insert(d.clone(), bytes);
                    return blob_created(name, d);
                }
            }
            if let Some(d) = q.get("digest") {
                // Monolithic upload (POST with the whole body), as the spec describes.
                return finish_blob(s, name, d, body.to_vec());
            }
            s.next_upload += 1;
            let uuid = format!("upload-{:08}", s.next_upload);
            s.uploads
                .insert(uuid.clone(), (name.to_string(), body.to_vec()));
            let len = s.uploads[&uuid].1.len();
            upload_progress(202, name, &uuid, len)
        }
        ("PATCH", false) => match s.uploads.get_mut(id) {
            Some((repo, data)) if repo == name => {
                data.extend_from_slice(&body);
                let len = data.len();
                upload_progress(202, name, id, len)
            }
            _ => upload_unknown(),
        },
        ("GET", false) => match s.uploads.get(id) {
            Some((repo, data)) if repo == name => upload_progress(204, name, id, data.len()),
            _ => upload_unknown(),
        },
        ("PUT", false) => {
            let Some((repo, mut data)) = s.uploads.remove(id) else {
                return upload_unknown();
            };
            if repo != name {
                s.uploads.insert(id.to_string(), (repo, data));
                return upload_unknown();
            }
            data.extend_from_slice(&body);
            match q.get("digest") {
                Some(d) => finish_blob(s, name, d, data),
                None => error(
                    400,
                    &[(
                        "DIGEST_INVALID",
                        "provided digest did not match uploaded content",
                        String::new(),
                    )],
                ),
            }
        }
        ("DELETE", false) => match s.uploads.remove(id) {
            Some(_) => respond(204, &[], Bytes::new()),
            None => upload_unknown(),
        },
        _ => unsupported(),
    }
}

fn upload_progress(status: u16, name: &str, uuid: &str, len: usize) -> Resp {
    let range = if len == 0 {
        "0-0".to_string()
    } else {
        format!("0-{}", len - 1)
    };
    respond(
        status,
        &[
            ("Location", format!("/v2/{name}/blobs/uploads/{uuid}")),
            ("Docker-Upload-UUID", uuid.to_string()),
            ("Range", range),
        ],
        Bytes::new(),
    )
}

fn blob_created(name: &str, digest: &str) -> Resp {
    respond(
        201,
        &[
            ("Location", format!("/v2/{name}/blobs/{digest}")),
            ("Docker-Content-Digest", digest.to_string()),
        ],
        Bytes::new(),
    )
}

fn finish_blob(s: &mut State, name: &str, digest: &str, data: Vec<u8>) -> Resp {
    let actual = format!("sha256:{}", sha256_hex(&data));
    if actual != digest {
        return error(
            400,
            &[(
                "DIGEST_INVALID",
                "provided digest did not match uploaded content",
                digest.to_string(),
            )],
        );
    }
    s.repos
        .entry(name.to_string())
        .or_default()
        .blobs
        .insert(actual, Bytes::from(data));
    blob_created(name, digest)
}

fn blobs(s: &mut State, method: &str, name: &str, digest: &str) -> Resp {
    let unknown = || {
        error(
            404,
            &[(
                "BLOB_UNKNOWN",
                "blob unknown to registry",
                digest.to_string(),
            )],
        )
    };
    match method {
        "GET" | "HEAD" => match s.repos.get(name).and_then(|r| r.blobs.get(digest)) {
            Some(b) => respond(
                200,
                &[
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("Docker-Content-Digest", digest.to_string()),
                ],
                b.clone(),
            ),
            None => unknown(),
        },
        "DELETE" => match s.repos.get_mut(name).and_then(|r| r.blobs.remove(digest)) {
            Some(_) => respond(202, &[], Bytes::new()),
            None => unknown(),
        },
        _ => unsupported(),
    }
}

fn is_index(media_type: &str, v: &Value) -> bool {
    media_type == MT_OCI_INDEX || media_type == MT_DOCKER_LIST || v["manifests"].is_array()
}

fn manifests(
    s: &mut State,
    opts: &SparseOptions,
    method: &str,
    name: &str,
    reference: &str,
    content_type: Option<&str>,
    body: Bytes,
) -> Resp {
    let unknown = || {
        error(
            404,
            &[(
                "MANIFEST_UNKNOWN",
                "manifest unknown",
                reference.to_string(),
            )],
        )
    };
    match method {
        "GET" | "HEAD" => {
            let found = s.repos.get(name).and_then(|r| {
                let d = resolve(r, reference)?;
                r.manifests.get(&d).map(|m| (d, m.clone()))
            });
            match found {
                Some((d, (mt, bytes))) => respond(
                    200,
                    &[("Content-Type", mt), ("Docker-Content-Digest", d)],
                    bytes,
                ),
                None => unknown(),
            }
        }
        "PUT" => {
            let digest = digest_of(&body);
            if reference.contains(':') && reference != digest {
                return error(
                    400,
                    &[(
                        "DIGEST_INVALID",
                        "provided digest did not match uploaded content",
                        reference.to_string(),
                    )],
                );
            }
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(
                        400,
                        &[("MANIFEST_INVALID", "manifest invalid", e.to_string())],
                    );
                }
            };
            let media_type = content_type
                .map(str::to_string)
                .or_else(|| v["mediaType"].as_str().map(str::to_string))
                .unwrap_or_default();
            let repo = s.repos.entry(name.to_string()).or_default();
            if is_index(&media_type, &v) {
                let missing: Vec<String> = v["manifests"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["digest"].as_str())
                    .filter(|d| !repo.manifests.contains_key(*d))
                    .map(str::to_string)
                    .collect();
                if let Some(list) = &opts.platform_list {
                    let required: Vec<(&str, &str, String)> = v["manifests"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|m| {
                            let (os, arch) = (
                                m["platform"]["os"].as_str().unwrap_or(""),
                                m["platform"]["architecture"].as_str().unwrap_or(""),
                            );
                            list.iter().any(|(o, a)| *o == os && *a == arch)
                        })
                        .filter_map(|m| m["digest"].as_str())
                        .filter(|d| !repo.manifests.contains_key(*d))
                        .map(|d| {
                            (
                                "MANIFEST_BLOB_UNKNOWN",
                                "blob unknown to registry",
                                d.to_string(),
                            )
                        })
                        .collect();
                    if !required.is_empty() {
                        return error(400, &required);
                    }
                }
                if let (Some(code), false) = (opts.reject_sparse_with, missing.is_empty()) {
                    let errs: Vec<(&str, &str, String)> = missing
                        .into_iter()
                        .map(|d| (code, "blob unknown to registry", d))
                        .collect();
                    return error(400, &errs);
                }
            } else {
                let mut descs: Vec<&Value> = Vec::new();
                if v["config"].is_object() {
                    descs.push(&v["config"]);
                }
                descs.extend(v["layers"].as_array().into_iter().flatten());
                let missing: Vec<(&str, &str, String)> = descs
                    .into_iter()
                    .filter(|d| !d["urls"].is_array()) // foreign layers are not uploaded
                    .filter_map(|d| d["digest"].as_str())
                    .filter(|d| !repo.blobs.contains_key(*d))
                    .map(|d| {
                        (
                            "MANIFEST_BLOB_UNKNOWN",
                            "blob unknown to registry",
                            d.to_string(),
                        )
                    })
                    .collect();
                if !missing.is_empty() {
                    return error(400, &missing);
                }
            }
            repo.manifests
                .insert(digest.clone(), (media_type, body.clone()));
            if !reference.contains(':') {
                repo.tags.insert(reference.to_string(), digest.clone());
            }
            let mut hs = vec![
                ("Location", format!("/v2/{name}/manifests/{digest}")),
                ("Docker-Content-Digest", digest.clone()),
            ];
            if opts.referrers_api
                && let Some(subject) = v["subject"]["digest"].as_str()
            {
                hs.push(("OCI-Subject", subject.to_string()));
            }
            respond(201, &hs, Bytes::new())
        }
        "DELETE" => {
            let Some(repo) = s.repos.get_mut(name) else {
                return unknown();
            };
            if reference.contains(':') {
                if repo.manifests.remove(reference).is_none() {
                    return unknown();
                }
                repo.tags.retain(|_, d| d != reference);
            } else if repo.tags.remove(reference).is_none() {
                return unknown();
            }
            respond(202, &[], Bytes::new())
        }
        _ => unsupported(),
    }
}

fn referrers(s: &State, name: &str, digest: &str, q: &HashMap<String, String>) -> Resp {
    let mut found: Vec<(String, Value)> = Vec::new();
    if let Some(r) = s.repos.get(name) {
        for (d, (mt, bytes)) in &r.manifests {
            let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
                continue;
            };
            if v["subject"]["digest"].as_str() != Some(digest) {
                continue;
            }
            let artifact_type = v["artifactType"]
                .as_str()
                .or_else(|| v["config"]["mediaType"].as_str())
                .unwrap_or("")
                .to_string();
            if let Some(want) = q.get("artifactType")
                && *want != artifact_type
            {
                continue;
            }
            let mut desc = json!({
                "mediaType": mt,
                "digest": d,
                "size": bytes.len(),
                "artifactType": artifact_type,
            });
            if v["annotations"].is_object() {
                desc["annotations"] = v["annotations"].clone();
            }
            found.push((d.clone(), desc));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    let list: Vec<Value> = found.into_iter().map(|(_, d)| d).collect();
    let mut hs = vec![("Content-Type", MT_OCI_INDEX.to_string())];
    if q.contains_key("artifactType") {
        hs.push(("OCI-Filters-Applied", "artifactType".to_string()));
    }
    respond(
        200,
        &hs,
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MT_OCI_INDEX,
            "manifests": list,
        }))
        .unwrap(),
    )
}
