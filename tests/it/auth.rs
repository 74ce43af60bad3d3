//! Credentials, token auth and TLS against the real registry 2.8: htpasswd basic auth, its own
//! `auth.token` validation against the test token server, and TLS with a CA made in the test.
//!
//! Every `mirror` run here sees a private HOME, XDG dirs and certs.d ([`Sandbox`]), so the machine's
//! own logins and certificates can neither help nor break a test.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use serde_json::Value;
use tempfile::TempDir;

use crate::support::tls::TestCa;
use crate::support::token_server::{Caller, TokenServer, TokenServerOptions};
use crate::support::{
    GeneratedImage, ImageSpec, Registry, RegistryOptions, generate, mirror, run_code, skopeo,
};

const USER: &str = "mirror-user";
const PASS: &str = "Pa55-correct-horse";
const WRONG: &str = "Wr0ng-battery-staple";

fn small() -> GeneratedImage {
    generate(&ImageSpec {
        platforms: vec!["linux/amd64", "linux/arm64"],
        layers_per_platform: 1,
        layer_size: 4 * 1024,
        base_size: 8 * 1024,
        attestations: false,
        ..ImageSpec::default()
    })
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A private HOME, XDG runtime/config dirs and certs.d root for `mirror` runs.
struct Sandbox {
    dir: TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("mirror-it-auth-")
            .tempdir()
            .unwrap();
        for d in ["home", "run", "config", "certs.d", "bin", "out"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Sandbox { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `mirror copy ARGS…` that reads no login or certificate of this machine; stdin is not a
    /// terminal.
    fn copy(&self, args: &[&str]) -> Command {
        let mut c = mirror();
        c.arg("copy")
            .args(args)
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("MIRROR_CERTS_D", self.path("certs.d"))
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .stdin(Stdio::null());
        c
    }

    /// An `oci:` destination in the sandbox.
    fn layout(&self, name: &str) -> String {
        format!("oci:{}:v1", self.path("out").join(name).display())
    }

    /// Writes `json` to `rel` (creating directories) and returns its path.
    fn write(&self, rel: &str, json: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, json).unwrap();
        p
    }
}

/// A registry with htpasswd basic auth holding `small()` as `app:v1`.
fn basic_registry() -> (Registry, GeneratedImage) {
    let reg = Registry::start_with_htpasswd(USER, PASS);
    let img = small();
    skopeo::push_image(&img, &reg, "app:v1");
    (reg, img)
}

fn auths_json(key: &str, user: &str, pass: &str) -> String {
    format!(
        r#"{{"auths": {{"{key}": {{"auth": "{}"}}}}}}"#,
        b64(&format!("{user}:{pass}"))
    )
}

fn assert_copied(out: &Output, img: &GeneratedImage) {
    let r = json(out);
    assert_eq!(r["index"]["digest"], img.index_digest.as_str(), "{r:#}");
    assert_eq!(r["index"]["outcome"], "pushed", "{r:#}");
}

#[test]
fn basic_auth_without_credentials_fails_with_an_authentication_message() {
    let (reg, _) = basic_registry();
    let sb = Sandbox::new();
    let out = run_code(
        &mut sb.copy(&["--all-platforms", &reg.url("app:v1"), &sb.layout("a")]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("authentication"), "{err}");
    assert!(err.contains("--src-creds"), "{err}");
    assert!(err.contains("docker login"), "{err}");
}

#[test]
fn basic_auth_wrong_password_fails_and_is_never_printed() {
    let (reg, _) = basic_registry();
    let sb = Sandbox::new();
    let creds = format!("{USER}:{WRONG}");
    let out = run_code(
        &mut sb.copy(&[
            "--all-platforms",
            "--src-creds",
            &creds,
            "--format",
            "json",
            &reg.url("app:v1"),
            &sb.layout("a"),
        ]),
        1,
    );
    let all = all_output(&out);
    assert!(stderr(&out).contains("authentication"), "{all}");
    assert!(stderr(&out).contains("refused the credentials"), "{all}");
    assert!(!all.contains(WRONG), "the password was printed:\n{all}");
    assert!(
        !all.contains(&b64(&creds)),
        "the encoded password was printed:\n{all}"
    );
}

#[test]
fn basic_auth_with_src_and_dest_creds_copies() {
    let (src, img) = basic_registry();
    let dst = Registry::start_with_htpasswd("dest-user", "dest-pass-9");
    let sb = Sandbox::new();
    let src_creds = format!("{USER}:{PASS}");
    let out = run_code(
        &mut sb.copy(&[
            "--all-platforms",
            "-v",
            "--format",
            "json",
            "--src-creds",
            &src_creds,
            "--dest-creds",
            "dest-user:dest-pass-9",
            &src.url("app:v1"),
            &dst.url("mirror/app:v1"),
        ]),
        0,
    );
    assert_copied(&out, &img);
    // Even request-level logging (-v) shows no secret: neither password nor an Authorization value.
    assert!(
        stderr(&out).contains("request"),
        "-v logs requests: {}",
        stderr(&out)
    );
    assert!(!all_output(&out).contains(PASS));
    assert!(!all_output(&out).contains("dest-pass-9"));
    assert!(!all_output(&out).contains(&b64(&format!("{USER}:{PASS}"))));
    assert_eq!(
        dst.manifest_bytes("mirror/app", "v1").as_deref(),
        Some(&img.index[..])
    );
}

#[test]
fn creds_without_a_password_and_no_terminal_is_a_usage_error() {
    let (reg, _) = basic_registry();
    let sb = Sandbox::new();
    let out = run_code(
        &mut sb.copy(&["--src-creds", USER, &reg.url("app:v1"), &sb.layout("a")]),
        2,
    );
    let err = stderr(&out);
    assert!(
        err.contains("--src-creds") && err.contains("not a terminal"),
        "{err}"
    );
}

#[test]
fn docker_config_json_from_docker_config_is_used() {
    let (reg, img) = basic_registry();
    let sb = Sandbox::new();
    // docker writes the key as given to `docker login`; a scheme is matched too.
    sb.write(
        "docker/config.json",
        &auths_json(&format!("http://{}", reg.addr()), USER, PASS),
    );
    let out = run_code(
        sb.copy(&[
            "--all-platforms",
            "--format",
            "json",
            &reg.url("app:v1"),
            &sb.layout("a"),
        ])
        .env("DOCKER_CONFIG", sb.path("docker")),
        0,
    );
    assert_copied(&out, &img);
}

#[test]
fn authfile_is_the_only_file_read() {
    let (reg, img) = basic_registry();
    let sb = Sandbox::new();
    // A wrong login in docker's config must not be consulted when --authfile is given.
    sb.write("docker/config.json", &auths_json(&reg.addr(), USER, WRONG));
    let authfile = sb.write("auth.json", &auths_json(&reg.addr(), USER, PASS));
    let out = run_code(
        sb.copy(&[
            "--all-platforms",
            "--format",
            "json",
            "--authfile",
            authfile.to_str().unwrap(),
            &reg.url("app:v1"),
            &sb.layout("a"),
        ])
        .env("DOCKER_CONFIG", sb.path("docker")),
        0,
    );
    assert_copied(&out, &img);

    // And $REGISTRY_AUTH_FILE is the same thing from the environment.
    let out = run_code(
        sb.copy(&[
            "--all-platforms",
            "--format",
            "json",
            &reg.url("app:v1"),
            &sb.layout("b"),
        ])
        .env("DOCKER_CONFIG", sb.path("docker"))
        .env("REGISTRY_AUTH_FILE", &authfile),
        0,
    );
    assert_copied(&out, &img);

    let out = run_code(
        &mut sb.copy(&[
            "--authfile",
            "/nonexistent/auth.json",
            &reg.url("app:v1"),
            &sb.layout("c"),
        ]),
        2,
    );
    assert!(stderr(&out).contains("--authfile"), "{}", stderr(&out));
}

#[test]
fn podman_auth_json_in_xdg_runtime_dir_is_used() {
    let (reg, img) = basic_registry();
    let sb = Sandbox::new();
    sb.write(
        "run/containers/auth.json",
        &auths_json(&reg.addr(), USER, PASS),
    );
    let out = run_code(
        &mut sb.copy(&[
            "--all-platforms",
            "--format",
            "json",
            &reg.url("app:v1"),
            &sb.layout("a"),
        ]),
        0,
    );
    assert_copied(&out, &img);
}

/// Writes `docker-credential-test` into the sandbox's bin dir: it logs `ARGS SERVER` to
/// `helper.log` and answers the right login for `server`, "credentials not found" otherwise.
fn write_helper(sb: &Sandbox, server: &str) {
    let log = sb.path("helper.log");
    let script = format!(
        r#"#!/bin/sh
read -r server
echo "$* $server" >> '{log}'
if [ "$1" = get ] && [ "$server" = '{server}' ]; then
  printf '{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASS}"}}\n' "$server"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
"#,
        log = log.display()
    );
    let p = sb.path("bin/docker-credential-test");
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn with_helper_path(cmd: &mut Command, sb: &Sandbox) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![sb.path("bin")];
    dirs.extend(std::env::split_paths(&path));
    cmd.env("PATH", std::env::join_paths(dirs).unwrap())
        .env("DOCKER_CONFIG", sb.path("docker"));
}

#[test]
fn credential_helpers_on_path_are_run() {
    let (reg, img) = basic_registry();
    let sb = Sandbox::new();
    write_helper(&sb, &reg.addr());

    // credHelpers: the helper for this registry.
    sb.write(
        "docker/config.json",
        &format!(r#"{{"credHelpers": {{"{}": "test"}}}}"#, reg.addr()),
    );
    let mut cmd = sb.copy(&[
        "--all-platforms",
        "--format",
        "json",
        &reg.url("app:v1"),
        &sb.layout("a"),
    ]);
    with_helper_path(&mut cmd, &sb);
    let out = run_code(&mut cmd, 0);
    assert_copied(&out, &img);
    let log = std::fs::read_to_string(sb.path("helper.log")).unwrap();
    assert_eq!(log.trim(), format!("get {}", reg.addr()));

    // credsStore: the helper that holds every login (the auths entry is docker's placeholder).
    sb.write(
        "docker/config.json",
        &format!(
            r#"{{"auths": {{"{}": {{}}}}, "credsStore": "test"}}"#,
            reg.addr()
        ),
    );
    let mut cmd = sb.copy(&[
        "--all-platforms",
        "--format",
        "json",
        &reg.url("app:v1"),
        &sb.layout("b"),
    ]);
    with_helper_path(&mut cmd, &sb);
    let out = run_code(&mut cmd, 0);
    assert_copied(&out, &img);
    assert!(!all_output(&out).contains(PASS));
}

/// A registry with token auth against a fresh [`TokenServer`], holding `small()` as `team/app:v1`.
fn token_registry() -> (TokenServer, Registry, GeneratedImage) {
    let tokens = TokenServer::start(TokenServerOptions::default());
    let opts = tokens.options().clone();
    let reg = Registry::start_with(RegistryOptions {
        auth_yaml: Some(tokens.auth_yaml()),
        client_creds: Some((opts.user, opts.pass)),
        ..Default::default()
    });
    let img = small();
    skopeo::push_image(&img, &reg, "team/app:v1");
    tokens.clear();
    (tokens, reg, img)
}

#[test]
fn token_auth_copy_between_repositories_asks_scopes_and_mounts_blobs() {
    let (tokens, reg, img) = token_registry();
    let sb = Sandbox::new();
    let creds = tokens.creds_arg();
    let out = run_code(
        &mut sb.copy(&[
            "--all-platforms",
            "--format",
            "json",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &reg.url("team/app:v1"),
            &reg.url("mirror/app:v1"),
        ]),
        0,
    );
    let r = json(&out);
    assert_eq!(r["index"]["outcome"], "pushed", "{r:#}");
    let mounted = r["blobs"]["mountedCount"].as_u64().unwrap_or(0);
    assert!(mounted > 0, "no blob was mounted: {:#}", r["blobs"]);
    assert_eq!(r["blobs"]["transferredCount"], 0, "{:#}", r["blobs"]);

    let asked = tokens.requests();
    assert!(
        asked.iter().all(|t| t.caller != Caller::Refused),
        "{asked:#?}"
    );
    assert!(
        asked
            .iter()
            .all(|t| t.service.as_deref() == Some(crate::support::token_server::SERVICE)),
        "{asked:#?}"
    );
    // The source reads with pull only; the destination asks pull,push; a mount asks both
    // repositories in one token.
    assert!(
        asked
            .iter()
            .any(|t| t.scopes == ["repository:team/app:pull"]),
        "{asked:#?}"
    );
    assert!(
        asked
            .iter()
            .any(|t| t.scopes == ["repository:mirror/app:pull,push"]),
        "{asked:#?}"
    );
    assert!(
        asked.iter().any(|t| t.scopes
            == [
                "repository:mirror/app:pull,push",
                "repository:team/app:pull"
            ]),
        "{asked:#?}"
    );
    // Cached per scope set: a few tokens, not one per request.
    assert!(
        asked.len() <= 6,
        "{} token requests: {asked:#?}",
        asked.len()
    );

    assert_eq!(
        skopeo::inspect_raw_with_creds(&reg.url("mirror/app:v1"), true, Some(&creds)),
        img.index
    );
}

#[test]
fn token_auth_without_credentials_fails_with_an_authentication_message() {
    let (_tokens, reg, _) = token_registry();
    let sb = Sandbox::new();
    let out = run_code(
        &mut sb.copy(&["--all-platforms", &reg.url("team/app:v1"), &sb.layout("a")]),
        1,
    );
    let err = stderr(&out);
    assert!(err.contains("authentication"), "{err}");
    assert!(err.contains("--src-creds"), "{err}");
}

#[test]
fn token_auth_with_an_identity_token_uses_the_oauth2_post() {
    let (tokens, reg, img) = token_registry();
    let sb = Sandbox::new();
    let refresh = tokens.options().refresh_token.clone();
    sb.write(
        "docker/config.json",
        &format!(
            r#"{{"auths": {{"{}": {{"auth": "{}", "identitytoken": "{refresh}"}}}}}}"#,
            reg.addr(),
            b64("<token>:")
        ),
    );
    let out = run_code(
        sb.copy(&[
            "--all-platforms",
            "--format",
            "json",
            &reg.url("team/app:v1"),
            &sb.layout("a"),
        ])
        .env("DOCKER_CONFIG", sb.path("docker")),
        0,
    );
    assert_copied(&out, &img);
    assert!(!all_output(&out).contains(&refresh));
    let asked = tokens.requests();
    assert!(!asked.is_empty());
    assert!(
        asked
            .iter()
            .all(|t| t.method == "POST" && t.caller == Caller::RefreshToken),
        "{asked:#?}"
    );
    assert_eq!(asked[0].scopes, ["repository:team/app:pull"]);
}

/// A registry serving TLS with a certificate from `ca` (optionally requiring a client certificate
/// from `client_ca`), and `small()` as an OCI layout source in `sb`.
fn tls_registry(ca: &TestCa, client_ca: Option<&TestCa>) -> Registry {
    Registry::start_with(RegistryOptions {
        tls: Some(ca.server_cert()),
        tls_client_ca: client_ca.map(|c| c.ca_file()),
        ..Default::default()
    })
}

fn layout_source(sb: &Sandbox, img: &GeneratedImage) -> String {
    let dir = sb.path("src-layout");
    img.write_layout(&dir, "v1");
    format!("oci:{}:v1", dir.display())
}

#[test]
fn tls_with_an_unknown_ca_is_refused_not_downgraded() {
    let ca = TestCa::new("mirror test CA (untrusted)");
    let reg = tls_registry(&ca, None);
    let sb = Sandbox::new();
    let img = small();
    let src = layout_source(&sb, &img);
    // A loopback registry, so plain http would be allowed if the server did not speak TLS: it
    // does, and its certificate does not verify, which is an error.
    let out = run_code(&mut sb.copy(&[&src, &reg.url("app:v1")]), 1);
    let err = stderr(&out);
    assert!(err.contains("certificate"), "{err}");
    assert!(err.contains("--dest-cert-dir"), "{err}");
    assert!(err.contains("https://"), "{err}");
}

#[test]
fn tls_ca_from_dest_cert_dir_or_certs_d_is_trusted() {
    let ca = TestCa::new("mirror test CA");
    let reg = tls_registry(&ca, None);
    let sb = Sandbox::new();
    let img = small();
    let src = layout_source(&sb, &img);

    let cert_dir = sb.path("certs");
    ca.write_ca(&cert_dir, "ca.crt");
    let out = run_code(
        &mut sb.copy(&[
            "--format",
            "json",
            "--dest-cert-dir",
            cert_dir.to_str().unwrap(),
            &src,
            &reg.url("app:v1"),
        ]),
        0,
    );
    assert_copied(&out, &img);

    // certs.d/HOST:PORT/*.crt (the root is MIRROR_CERTS_D in the sandbox).
    ca.write_ca(&sb.path("certs.d").join(reg.addr()), "test-ca.crt");
    let out = run_code(
        &mut sb.copy(&["--format", "json", &src, &reg.url("again:v1")]),
        0,
    );
    assert_copied(&out, &img);
    assert_eq!(skopeo::inspect_raw(&reg.url("again:v1"), true), img.index);
}

#[test]
fn tls_client_certificate_from_cert_dir_is_presented() {
    let ca = TestCa::new("mirror test CA");
    let clients = TestCa::new("mirror test client CA");
    let reg = tls_registry(&ca, Some(&clients));
    let sb = Sandbox::new();
    let img = small();
    let src = layout_source(&sb, &img);

    let cert_dir = sb.path("certs");
    ca.write_ca(&cert_dir, "ca.crt");
    let out = run_code(
        &mut sb.copy(&[
            "--dest-cert-dir",
            cert_dir.to_str().unwrap(),
            &src,
            &reg.url("app:v1"),
        ]),
        1,
    );
    assert!(stderr(&out).contains("certificate"), "{}", stderr(&out));

    clients.write_client_cert(&cert_dir, "client");
    let out = run_code(
        &mut sb.copy(&[
            "--format",
            "json",
            "--dest-cert-dir",
            cert_dir.to_str().unwrap(),
            &src,
            &reg.url("app:v1"),
        ]),
        0,
    );
    assert_copied(&out, &img);
}
