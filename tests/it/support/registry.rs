//! The real CNCF registry (`docker-registry serve CONFIG`, distribution 2.8.x) as a child
//! process on a free 127.0.0.1 port with temporary filesystem storage; killed on drop.

use super::http::{Client, header, try_request};
use super::require_tool;
use std::net::TcpListener;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How to configure a [`Registry`] beyond the defaults (plain http, no auth).
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Basic auth with one bcrypt user (`htpasswd -Bbn USER PASS`).
    pub htpasswd: Option<(String, String)>,
    /// TLS: `(certificate, key)` PEM files. The std HTTP helpers cannot talk to it then.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Raw YAML flow mapping for the `auth:` section, e.g.
    /// `{ token: { realm: "http://127.0.0.1:P/token", service: test, issuer: test-issuer, rootcertbundle: "/x/cert.pem" } }`.
    /// Conflicts with `htpasswd`.
    pub auth_yaml: Option<String>,
    /// Credentials clients use when `auth_yaml` configures the auth (token auth): what
    /// [`Registry::creds`] and so `skopeo::push_image` use. With `htpasswd`, those are used.
    pub client_creds: Option<(String, String)>,
    /// With `tls`: require a client certificate signed by this CA (`http.tls.clientcas`).
    pub tls_client_ca: Option<PathBuf>,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

pub struct Registry {
    child: Child,
    dir: TempDir,
    data: PathBuf,
    addr: String,
    client: Client,
    creds: Option<(String, String)>,
    tls: bool,
}

fn yaml_str(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).unwrap()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

impl Registry {
    /// Plain http, no auth.
    pub fn start() -> Registry {
        Registry::start_with(RegistryOptions::default())
    }

    /// Basic auth (htpasswd, bcrypt) with one user. The [`Client`] helpers (via deref) send
    /// these credentials; [`super::http::request`] with [`Registry::addr`] does not.
    pub fn start_with_htpasswd(user: &str, pass: &str) -> Registry {
        Registry::start_with(RegistryOptions {
            htpasswd: Some((user.to_string(), pass.to_string())),
            ..Default::default()
        })
    }

    pub fn start_with(opts: RegistryOptions) -> Registry {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::Builder::new()
            .prefix("mirror-it-registry-")
            .tempdir()
            .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let mut auth = opts.auth_yaml.clone();
        if let Some((user, pass)) = &opts.htpasswd {
            assert!(auth.is_none(), "htpasswd and auth_yaml conflict");
            require_tool("htpasswd", "apache2-utils");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("run htpasswd");
            assert!(
                out.status.success(),
                "htpasswd failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            auth = Some(format!(
                "{{ htpasswd: {{ realm: mirror-test, path: {} }} }}",
                yaml_str(&file)
            ));
        }
        let mut last_log = String::new();
        for _attempt in 0..8 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            // Identifies this process's answers: another registry that grabbed the same port
            // in a race must not be taken for ours.
            let instance = format!(
                "{}-{}-{port}",
                std::process::id(),
                INSTANCE.fetch_add(1, Ordering::Relaxed)
            );
            let mut config = format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
                 maintenance:\n    uploadpurging:\n      enabled: false\n\
                 http:\n  addr: {addr}\n  secret: mirror-test-secret\n  \
                 headers:\n    X-Mirror-Test-Instance: [\"{instance}\"]\n",
                yaml_str(&data)
            );
            if let Some((cert, key)) = &opts.tls {
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    yaml_str(cert),
                    yaml_str(key)
                ));
                if let Some(ca) = &opts.tls_client_ca {
                    config.push_str(&format!("    clientcas:\n      - {}\n", yaml_str(ca)));
                }
            }
            if let Some(a) = &auth {
                config.push_str(&format!("auth: {a}\n"));
            }
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, &config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = std::fs::File::create(&log_path).unwrap();
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("REGISTRY_") {
                    cmd.env_remove(k);
                }
            }
            let mut child = cmd.spawn().expect("spawn docker-registry");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    if last_log.contains("address already in use") {
                        break; // another port
                    }
                    panic!("docker-registry exited with {status}:\n{last_log}\nconfig:\n{config}");
                }
                // Our answer means it is serving (200, or 401 with auth); with TLS a plain
                // request gets a bare 400 from Go's TLS server, without our header.
                let ours = match try_request(&addr, "GET", "/v2/", &[], &[]) {
                    Ok((_, hs, _)) => {
                        opts.tls.is_some()
                            || header(&hs, "x-mirror-test-instance") == Some(instance.as_str())
                    }
                    Err(_) => false,
                };
                if ours {
                    let client = match &opts.htpasswd {
                        Some((u, p)) => Client::with_basic_auth(&addr, u, p),
                        None => Client::new(&addr),
                    };
                    return Registry {
                        child,
                        dir,
                        data,
                        addr,
                        client,
                        creds: opts.htpasswd.clone().or(opts.client_creds.clone()),
                        tls: opts.tls.is_some(),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("docker-registry did not answer GET /v2/ within 10 s:\n{log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("docker-registry could not get a free port:\n{last_log}");
    }

    /// `127.0.0.1:PORT`
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// `docker://127.0.0.1:PORT/<repo_and_tag>` (pass `repo:tag` or `repo@sha256:…`).
    pub fn url(&self, repo_and_tag: &str) -> String {
        format!("docker://{}/{repo_and_tag}", self.addr)
    }

    /// The registry's storage root (`rootdirectory`).
    pub fn storage_dir(&self) -> &Path {
        &self.data
    }

    /// The temporary directory holding config, log, htpasswd and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the registry logged so far (level warn).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The htpasswd user, if any.
    pub fn creds(&self) -> Option<(&str, &str)> {
        self.creds.as_ref().map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// `USER:PASS` for `--dest-creds` / `--src-creds`, if any.
    pub fn creds_arg(&self) -> Option<String> {
        self.creds.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The HTTP helper (also reachable through deref: `reg.has_blob(…)`).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl Deref for Registry {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
