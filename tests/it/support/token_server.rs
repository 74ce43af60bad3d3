//! A token server for the real registry's own `auth.token` validation (distribution token auth).
//!
//! The registry is configured with `realm` (this server), `service`, `issuer` and
//! `rootcertbundle` (this server's signing certificate). This server issues JWTs signed ES256 with
//! a P-256 key made here (rcgen generates it, ring signs), carrying the signing certificate in the
//! JWT header's `x5c`: registry 2.8 takes the signing key from `x5c` and verifies that certificate
//! against `rootcertbundle` (a self-signed certificate that is itself in the bundle verifies).
//!
//! It speaks both forms clients use: `GET /token?service=…&scope=…` with basic auth (docker,
//! skopeo), and the OAuth2 `POST /token` form with `grant_type=password` or
//! `grant_type=refresh_token` (identity tokens). It grants every requested action to an
//! authenticated caller, refuses anonymous ones (401), and records every request, so tests can
//! assert which scopes were asked for in one token.

use base64::Engine as _;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

pub const SERVICE: &str = "mirror-test-registry";
pub const ISSUER: &str = "mirror-test-issuer";

#[derive(Clone, Debug)]
pub struct TokenServerOptions {
    /// The one user and password accepted.
    pub user: String,
    pub pass: String,
    /// The refresh token accepted by `POST grant_type=refresh_token` and handed out by every POST.
    pub refresh_token: String,
}

impl Default for TokenServerOptions {
    fn default() -> Self {
        TokenServerOptions {
            user: "tokenuser".into(),
            pass: "token-pass-s3cret".into(),
            refresh_token: "refresh-token-s3cret".into(),
        }
    }
}

/// How a caller identified itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Basic auth (GET) or `grant_type=password` (POST) with the right password.
    User(String),
    /// `grant_type=refresh_token` with the right refresh token.
    RefreshToken,
    /// Nothing, or something wrong: refused with 401.
    Refused,
}

/// One request the token server answered.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    pub method: String,
    pub service: Option<String>,
    /// Every `repository:NAME:ACTIONS` asked for, in order.
    pub scopes: Vec<String>,
    pub caller: Caller,
}

pub struct TokenServer {
    addr: String,
    dir: TempDir,
    log: Arc<Mutex<Vec<TokenRequest>>>,
    stop: Arc<AtomicBool>,
    opts: TokenServerOptions,
}

struct Signer {
    key: EcdsaKeyPair,
    cert_der: Vec<u8>,
}

static JTI: AtomicU64 = AtomicU64::new(0);

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenServer {
    pub fn start(opts: TokenServerOptions) -> TokenServer {
        let dir = tempfile::Builder::new()
            .prefix("mirror-it-token-")
            .tempdir()
            .unwrap();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mirror test token signer");
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.path().join("signer.pem"), cert.pem()).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signer = Arc::new(Signer {
            key: EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                &key.serialize_der(),
                &rng,
            )
            .expect("a P-256 PKCS#8 key"),
            cert_der: cert.der().to_vec(),
        });

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (log, stop, opts) = (log.clone(), stop.clone(), opts.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (log, opts, signer) = (log.clone(), opts.clone(), signer.clone());
                    std::thread::spawn(move || handle(conn, &opts, &signer, &log));
                }
            });
        }
        TokenServer {
            addr,
            dir,
            log,
            stop,
            opts,
        }
    }

    /// `http://127.0.0.1:PORT/token`
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The signing certificate (the registry's `rootcertbundle`).
    pub fn rootcertbundle(&self) -> PathBuf {
        self.dir.path().join("signer.pem")
    }

    /// The registry's `auth:` section (a YAML flow mapping) for this server.
    pub fn auth_yaml(&self) -> String {
        format!(
            "{{ token: {{ realm: {}, service: {SERVICE}, issuer: {ISSUER}, rootcertbundle: {} }} }}",
            serde_json::to_string(&self.realm()).unwrap(),
            serde_json::to_string(&self.rootcertbundle().to_string_lossy()).unwrap()
        )
    }

    /// `USER:PASS` of the accepted user.
    pub fn creds_arg(&self) -> String {
        format!("{}:{}", self.opts.user, self.opts.pass)
    }

    pub fn options(&self) -> &TokenServerOptions {
        &self.opts
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr.parse().unwrap(), Duration::from_millis(200));
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn handle(
    mut conn: TcpStream,
    opts: &TokenServerOptions,
    signer: &Signer,
    log: &Mutex<Vec<TokenRequest>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let target = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let len: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    if path != "/token" {
        respond(&mut conn, 404, "{}");
        return;
    }
    let params = if method == "POST" {
        form_pairs(&String::from_utf8_lossy(&body))
    } else {
        form_pairs(query)
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let caller = if method == "POST" {
        match param("grant_type").as_deref() {
            Some("refresh_token")
                if param("refresh_token").as_deref() == Some(&opts.refresh_token) =>
            {
                Caller::RefreshToken
            }
            Some("password")
                if param("username").as_deref() == Some(&opts.user)
                    && param("password").as_deref() == Some(&opts.pass) =>
            {
                Caller::User(opts.user.clone())
            }
            _ => Caller::Refused,
        }
    } else {
        let basic = header("authorization")
            .and_then(|a| a.strip_prefix("Basic ").map(str::to_string))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok());
        match basic.as_deref().and_then(|b| b.split_once(':')) {
            Some((u, p)) if u == opts.user && p == opts.pass => Caller::User(u.to_string()),
            _ => Caller::Refused,
        }
    };
    log.lock().unwrap().push(TokenRequest {
        method: method.clone(),
        service: param("service"),
        scopes: scopes.clone(),
        caller: caller.clone(),
    });
    let subject = match &caller {
        Caller::User(u) => u.clone(),
        Caller::RefreshToken => opts.user.clone(),
        Caller::Refused => {
            respond(
                &mut conn,
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            return;
        }
    };
    let token = sign_token(
        signer,
        &subject,
        param("service").as_deref().unwrap_or(SERVICE),
        &scopes,
    );
    let mut answer = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": 300,
    });
    if method == "POST" {
        answer["refresh_token"] = opts.refresh_token.clone().into();
    }
    respond(&mut conn, 200, &answer.to_string());
}

fn sign_token(signer: &Signer, subject: &str, audience: &str, scopes: &[String]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            // repository:NAME:ACTIONS
            let (kind, rest) = s.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            Some(serde_json::json!({
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }))
        })
        .collect();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&signer.cert_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": audience,
        "exp": now + 300,
        "nbf": now - 60,
        "iat": now,
        "jti": format!("mirror-test-{}", JTI.fetch_add(1, Ordering::Relaxed)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = signer
        .key
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .expect("ES256 signature");
    format!("{signing_input}.{}", b64url(sig.as_ref()))
}

fn respond(conn: &mut TcpStream, status: u16, body: &str) {
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "X",
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.flush();
}
