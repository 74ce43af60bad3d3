//! Where registry credentials come from: the command line, then the user's existing docker/podman
//! login.
//!
//! A mirroring tool that cannot read the login the user already has is not usable, so this follows
//! skopeo (containers/image) closely, with docker's `credsStore`, which containers/image lacks:
//!
//! 1. `USER[:PASS]` given on the command line ([`creds_from_flag`] parses it for the CLI, which
//!    names its flag; a missing `:PASS` is read from the terminal without echo, and is a clear
//!    usage error when there is no terminal).
//! 2. An explicit auth file (`RegistryOptions::authfile`), else `$REGISTRY_AUTH_FILE`. As in
//!    skopeo, when one is named it is the only file read.
//! 3. Otherwise, in this order, the first file with an entry for the registry wins:
//!    `$XDG_RUNTIME_DIR/containers/auth.json` (podman), `$XDG_CONFIG_HOME/containers/auth.json`
//!    (`~/.config/…`; skopeo reads it too), and `$DOCKER_CONFIG/config.json`, or
//!    `~/.docker/config.json` when `DOCKER_CONFIG` is unset (as docker and skopeo do: one or the
//!    other, not both). Home and XDG directories are found with the `dirs` crate.
//!
//! Within one file: `credHelpers[host]` (run `docker-credential-NAME get`), then `auths` (`auth`,
//! base64 `user:pass`; or `username`/`password`; or `identitytoken`, an OAuth2 refresh token), then
//! `credsStore` (the helper that holds every login; the `auths` entries are then empty
//! placeholders, which are skipped). A helper that answers "credentials not found" means no entry.
//!
//! Keys are matched as docker and containers/image do: `host[:port]`, with or without an
//! `http(s)://` scheme (a URL key's path, such as docker's `https://index.docker.io/v1/`, is
//! ignored); `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry; a key
//! without scheme but with a path (`quay.io/org`, podman's per-namespace logins) applies to that
//! namespace, and the most specific key wins.
//!
//! Hand-parsed with `serde_json` rather than the `docker_credential` crate: that crate looks keys up
//! verbatim (so `127.0.0.1:5000` misses an `http://127.0.0.1:5000` entry and `docker.io` misses
//! `https://index.docker.io/v1/`), reads a single file and cannot be pointed at an explicit auth file, has
//! no per-namespace keys, and puts a failing helper's whole output into its error text.
//!
//! Secrets never leave this module in text: [`Credential`]'s `Debug` is redacted, and errors name
//! files, keys and helpers, never values.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

/// A secret that opens a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password: basic auth, or basic auth at the token endpoint.
    Basic { username: String, password: String },
    /// An OAuth2 refresh token (`identitytoken`, or a helper answering user `<token>`): exchanged
    /// at the token endpoint with a POST.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => {
                write!(
                    f,
                    "Basic {{ username: {username:?}, password: <redacted> }}"
                )
            }
            Credential::IdentityToken(_) => write!(f, "IdentityToken(<redacted>)"),
        }
    }
}

/// A credential and where it was found (for messages: the command line, a file, a helper; never
/// the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub credential: Credential,
    pub source: String,
}

/// Why credentials could not be read. The text names files and helpers, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// `USER[:PASS]` as given to the command-line flag `flag` (which messages name: the caller's
/// words, not the transport's). Without `:PASS`, `ask` is called to read the
/// password (from the terminal without echo); it returns `None` when there is no terminal, which is
/// an error telling the user to write `USER:PASS`.
pub fn creds_from_flag(
    value: &str,
    flag: &str,
    ask: impl FnOnce(&str) -> Option<std::io::Result<String>>,
) -> Result<(String, String), AuthError> {
    let (user, pass) = match value.split_once(':') {
        Some((u, p)) => (u, Some(p.to_string())),
        None => (value, None),
    };
    if user.is_empty() {
        return Err(AuthError(format!(
            "{flag}: the user name is empty (expected USER[:PASS])"
        )));
    }
    let pass = match pass {
        Some(p) => p,
        None => match ask(user) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                return Err(AuthError(format!(
                    "{flag}: cannot read the password from the terminal: {e}"
                )));
            }
            None => {
                return Err(AuthError(format!(
                    "{flag}: no password given and stdin is not a terminal to ask for one: pass {flag} USER:PASS"
                )));
            }
        },
    };
    Ok((user.to_string(), pass))
}

/// The auth files to read, in order, as skopeo would for an explicit `authfile` and the
/// environment of this process.
pub fn auth_files(authfile: Option<&Path>) -> Vec<PathBuf> {
    if let Some(f) = authfile {
        return vec![f.to_path_buf()];
    }
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        return vec![PathBuf::from(f)];
    }
    let mut files = Vec::new();
    if let Some(run) = dirs::runtime_dir() {
        files.push(run.join("containers/auth.json"));
    }
    if let Some(cfg) = dirs::config_dir() {
        files.push(cfg.join("containers/auth.json"));
    }
    match std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        Some(d) => files.push(PathBuf::from(d).join("config.json")),
        None => {
            if let Some(home) = dirs::home_dir() {
                files.push(home.join(".docker/config.json"));
            }
        }
    }
    files
}

/// Credentials for `repository` on `registry` (as the user wrote it, `host[:port]`) from the auth
/// files of [`auth_files`], running credential helpers found on `PATH`. Blocking (reads files, may
/// run a helper): call it off the async executor.
pub fn lookup(
    registry: &str,
    repository: &str,
    authfile: Option<&Path>,
) -> Result<Option<Found>, AuthError> {
    lookup_in(
        &auth_files(authfile),
        registry,
        repository,
        &run_credential_helper,
    )
}

/// What a credential helper is asked: `Ok(None)` when it has no entry for `server`.
pub type HelperFn<'a> = dyn Fn(&str, &str) -> Result<Option<Credential>, AuthError> + 'a;

/// [`lookup`] over explicit files, with `helper(name, server)` standing for
/// `docker-credential-NAME get`. Missing files are skipped; unreadable or malformed ones are errors.
pub fn lookup_in(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
    helper: &HelperFn<'_>,
) -> Result<Option<Found>, AuthError> {
    for file in files {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(AuthError(format!(
                    "cannot read the auth file {}: {e}",
                    file.display()
                )));
            }
        };
        let config: AuthFile = serde_json::from_slice(&bytes).map_err(|e| {
            AuthError(format!(
                "the auth file {} is not valid JSON ({e}): fix it, or log in again",
                file.display()
            ))
        })?;
        if let Some(found) = config.find(registry, repository, file, helper)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The parts of a docker `config.json` / containers `auth.json` that hold credentials.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

impl AuthFile {
    fn find(
        &self,
        registry: &str,
        repository: &str,
        file: &Path,
        helper: &HelperFn<'_>,
    ) -> Result<Option<Found>, AuthError> {
        let host = canonical_host(registry);
        let server = helper_server(registry);
        if let Some((_, name)) = self
            .cred_helpers
            .iter()
            .find(|(k, _)| key_scope(k).is_some_and(|(h, p)| h == host && p.is_none()))
        {
            return run_helper(helper, name, &server, file);
        }
        // The most specific `auths` key that covers the repository.
        let best = self
            .auths
            .iter()
            .filter_map(|(k, entry)| {
                let (h, path) = key_scope(k)?;
                if h != host {
                    return None;
                }
                let specificity = match path {
                    None => 0,
                    Some(p) if repository == p || repository.starts_with(&format!("{p}/")) => {
                        p.len()
                    }
                    Some(_) => return None,
                };
                let credential = entry.credential(file, k)?;
                // Ties (`docker.io` and `https://index.docker.io/v1/`): the plain key first.
                Some((specificity, !k.contains("://"), credential, k))
            })
            .max_by(|a, b| (a.0, a.1, b.3).cmp(&(b.0, b.1, a.3)));
        if let Some((_, _, credential, key)) = best {
            let credential = credential?;
            return Ok(Some(Found {
                credential,
                source: format!("{} (key {key:?})", file.display()),
            }));
        }
        if let Some(store) = self.creds_store.as_deref().filter(|s| !s.is_empty()) {
            return run_helper(helper, store, &server, file);
        }
        Ok(None)
    }
}

impl AuthEntry {
    /// `None`: an empty placeholder (docker writes `{}` when a `credsStore` holds the secret).
    fn credential(&self, file: &Path, key: &str) -> Option<Result<Credential, AuthError>> {
        if let Some(t) = self.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Some(Ok(Credential::IdentityToken(t.to_string())));
        }
        if let Some(a) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            return Some(decode_auth(a).ok_or_else(|| {
                AuthError(format!(
                    "{}: the \"auth\" of {key:?} is not base64 of USER:PASSWORD: log in again",
                    file.display()
                ))
            }));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) if !u.is_empty() => Some(Ok(Credential::Basic {
                username: u.clone(),
                password: p.clone(),
            })),
            _ => None,
        }
    }
}

fn decode_auth(encoded: &str) -> Option<Credential> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let bytes = engine.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    if user.is_empty() {
        return None;
    }
    Some(Credential::Basic {
        username: user.to_string(),
        password: pass.to_string(),
    })
}

/// `docker.io`, `index.docker.io` and `registry-1.docker.io` are one registry.
fn canonical_host(host: &str) -> String {
    let h = host.to_ascii_lowercase();
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => h,
    }
}

/// What an auth-file key covers: `(canonical host, namespace path)`. A URL key
/// (`https://index.docker.io/v1/`) covers its whole host; a bare `host/ns` key covers `ns`.
fn key_scope(key: &str) -> Option<(String, Option<&str>)> {
    let key = key.trim();
    let (rest, url) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(r) => (r, true),
        None => (key, false),
    };
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    let path = (!url && !path.is_empty()).then_some(path);
    Some((canonical_host(host), path))
}

/// The server name a helper is asked for: what `docker login` stored it under.
fn helper_server(registry: &str) -> String {
    if canonical_host(registry) == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn run_helper(
    helper: &HelperFn<'_>,
    name: &str,
    server: &str,
    file: &Path,
) -> Result<Option<Found>, AuthError> {
    Ok(helper(name, server)?.map(|credential| Found {
        credential,
        source: format!(
            "docker-credential-{name} (configured in {})",
            file.display()
        ),
    }))
}

/// A helper that exited with `status`: `None` when it said it has no credentials for the server
/// (`credentials not found`), else the error. What it printed is never quoted: a helper's stdout
/// or stderr may hold the secret itself (a debug line, a half-written answer), so the error says
/// how to see the message instead.
fn helper_failure(program: &str, status: &str, stdout: &[u8], stderr: &[u8]) -> Option<AuthError> {
    let said = |b: &[u8]| String::from_utf8_lossy(b).contains("credentials not found");
    if said(stdout) || said(stderr) {
        return None;
    }
    Some(AuthError(format!(
        "the credential helper {program} failed ({status}); its output is not shown, as it may hold a secret: run `{program} get` with the registry's server name on stdin to see it"
    )))
}

/// `docker-credential-NAME get` with `server` on stdin: `{"Username": …, "Secret": …}` on stdout.
/// A user of `<token>` means the secret is an identity (refresh) token.
pub fn run_credential_helper(name: &str, server: &str) -> Result<Option<Credential>, AuthError> {
    let program = format!("docker-credential-{name}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            AuthError(if e.kind() == std::io::ErrorKind::NotFound {
                format!("the credential helper {program} is not on PATH: install it, or remove it from the auth file")
            } else {
                format!("cannot run the credential helper {program}: {e}")
            })
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe: its exit status says why.
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| AuthError(format!("the credential helper {program} failed: {e}")))?;
    if !out.status.success() {
        return match helper_failure(&program, &out.status.to_string(), &out.stdout, &out.stderr) {
            None => Ok(None),
            Some(e) => Err(e),
        };
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        #[serde(default)]
        username: String,
        #[serde(default)]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(&out.stdout).map_err(|_| {
        AuthError(format!(
            "the credential helper {program} answered something that is not its JSON"
        ))
    })?;
    if answer.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(if answer.username == "<token>" {
        Credential::IdentityToken(answer.secret)
    } else {
        Credential::Basic {
            username: answer.username,
            password: answer.secret,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn a_failing_helper_is_reported_without_quoting_what_it_printed() {
        let e = helper_failure(
            "docker-credential-leaky",
            "exit status: 1",
            b"",
            b"debug: sending {\"Secret\":\"s3cr3t-token\"}\n",
        )
        .unwrap();
        assert!(!e.0.contains("s3cr3t"), "{}", e.0);
        assert!(
            e.0.contains("docker-credential-leaky failed (exit status: 1)"),
            "{}",
            e.0
        );
        assert!(
            helper_failure(
                "x",
                "exit status: 1",
                b"credentials not found in native keychain\n",
                b""
            )
            .is_none()
        );
    }

    fn no_helper(_: &str, _: &str) -> Result<Option<Credential>, AuthError> {
        panic!("no helper expected")
    }

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, json).unwrap();
        p
    }

    fn find(files: &[PathBuf], registry: &str, repo: &str) -> Option<Credential> {
        lookup_in(files, registry, repo, &no_helper)
            .unwrap()
            .map(|f| f.credential)
    }

    #[test]
    fn flag_creds_split_at_the_first_colon_and_ask_for_a_missing_password() {
        let never = |_: &str| -> Option<std::io::Result<String>> { panic!("asked") };
        assert_eq!(
            creds_from_flag("u:p:q", "--src-creds", never).unwrap(),
            ("u".into(), "p:q".into())
        );
        assert_eq!(
            creds_from_flag("u:", "--src-creds", never).unwrap(),
            ("u".into(), String::new())
        );
        assert_eq!(
            creds_from_flag("u", "--src-creds", |user| {
                assert_eq!(user, "u");
                Some(Ok("typed".into()))
            })
            .unwrap(),
            ("u".into(), "typed".into())
        );
        let e = creds_from_flag("u", "--dest-creds", |_| None).unwrap_err();
        assert!(e.0.contains("not a terminal"), "{e}");
        assert!(e.0.contains("--dest-creds USER:PASS"), "{e}");
        assert!(creds_from_flag(":p", "--src-creds", never).is_err());
    }

    #[test]
    fn keys_match_with_or_without_scheme_and_docker_hub_aliases() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "a.json",
            &format!(
                r#"{{"auths": {{
                    "https://index.docker.io/v1/": {{"auth": "{}"}},
                    "http://127.0.0.1:5000": {{"auth": "{}"}},
                    "quay.io": {{"username": "q", "password": "qp"}},
                    "quay.io/org": {{"auth": "{}"}},
                    "ghcr.io": {{}}
                }}}}"#,
                b64("hub:hubpass"),
                b64("local:lp"),
                b64("org:op")
            ),
        );
        let files = [f];
        assert_eq!(
            find(&files, "docker.io", "library/alpine"),
            Some(basic("hub", "hubpass"))
        );
        assert_eq!(
            find(&files, "127.0.0.1:5000", "x"),
            Some(basic("local", "lp"))
        );
        assert_eq!(find(&files, "127.0.0.1:5001", "x"), None);
        assert_eq!(find(&files, "quay.io", "other/x"), Some(basic("q", "qp")));
        assert_eq!(find(&files, "quay.io", "org/x"), Some(basic("org", "op")));
        assert_eq!(find(&files, "quay.io", "organic/x"), Some(basic("q", "qp")));
        // An empty placeholder is no credential.
        assert_eq!(find(&files, "ghcr.io", "x"), None);
    }

    #[test]
    fn identity_tokens_and_the_first_file_with_an_entry_win() {
        let d = tempfile::tempdir().unwrap();
        let first = write(
            d.path(),
            "1.json",
            r#"{"auths": {"other.io": {"auth": "eDp5"}}}"#,
        );
        let second = write(
            d.path(),
            "2.json",
            &format!(
                r#"{{"auths": {{"reg.io": {{"auth": "{}", "identitytoken": "refresh-1"}}}}}}"#,
                b64("<token>:")
            ),
        );
        let third = write(
            d.path(),
            "3.json",
            &format!(r#"{{"auths": {{"reg.io": {{"auth": "{}"}}}}}}"#, b64("u:p")),
        );
        let missing = d.path().join("missing.json");
        let files = [missing, first, second.clone(), third];
        let found = lookup_in(&files, "reg.io", "r", &no_helper)
            .unwrap()
            .unwrap();
        assert_eq!(
            found.credential,
            Credential::IdentityToken("refresh-1".into())
        );
        assert!(found.source.contains(&second.display().to_string()));
        assert!(!format!("{:?}", found).contains("refresh-1"));
    }

    #[test]
    fn helpers_are_asked_for_their_registry_and_the_store_for_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let f = write(
            d.path(),
            "c.json",
            r#"{"auths": {"docker.io": {}}, "credHelpers": {"helped.io:443": "special"}, "credsStore": "desktop"}"#,
        );
        let asked = std::sync::Mutex::new(Vec::new());
        let helper = |name: &str, server: &str| {
            asked.lock().unwrap().push(format!("{name} {server}"));
            Ok(match name {
                "special" => Some(basic("s", "sp")),
                _ => None,
            })
        };
        let files = [f];
        let found = lookup_in(&files, "helped.io:443", "r", &helper)
            .unwrap()
            .unwrap();
        assert_eq!(found.credential, basic("s", "sp"));
        assert!(found.source.contains("docker-credential-special"));
        assert_eq!(lookup_in(&files, "docker.io", "r", &helper).unwrap(), None);
        assert_eq!(
            *asked.lock().unwrap(),
            [
                "special helped.io:443",
                "desktop https://index.docker.io/v1/"
            ]
        );
    }

    #[test]
    fn malformed_files_are_errors_that_name_the_file_not_the_secret() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "bad.json", r#"{"auths": {"r.io": {"auth": "#);
        let e = lookup_in(std::slice::from_ref(&f), "r.io", "x", &no_helper).unwrap_err();
        assert!(e.0.contains(&f.display().to_string()), "{e}");
        let g = write(
            d.path(),
            "nocolon.json",
            &format!(
                r#"{{"auths": {{"r.io": {{"auth": "{}"}}}}}}"#,
                b64("s3cret")
            ),
        );
        let e = lookup_in(&[g], "r.io", "x", &no_helper).unwrap_err();
        assert!(!e.0.contains("s3cret"), "{e}");
    }

    #[test]
    fn an_explicit_auth_file_is_the_only_one_read() {
        let p = Path::new("/x/auth.json");
        assert_eq!(auth_files(Some(p)), vec![p.to_path_buf()]);
    }
}
