//! Authorization: what a registry's challenge asks for, and the `Authorization` value that answers
//! it (basic auth, or a bearer token from the realm), cached per session.
//!
//! The rules (which credentials go where, token scopes, the one refresh on a 401) are in the
//! module doc of `registry`. Token requests go through `Session::send` like every request, as
//! requests without the registry's own authorization.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode, Url};

use super::credentials::{self, Credential, Found};
use super::error::redact;
use super::request::{Request, caps, json};
use super::session::Session;
use crate::reference::is_loopback_host;
use crate::transport::{Fix, Result, TransportError};

/// What a registry asks for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Whose authorization a request carries: the repository (whose credentials are used) and the
/// token scopes it needs (`repository:R:pull`, …).
#[derive(Debug, Clone)]
pub(super) struct Access {
    pub repository: String,
    pub scopes: Vec<String>,
}

/// A session's authorization state.
#[derive(Default)]
pub(super) struct AuthState {
    /// A challenge learned from a 401 after a ping that asked for nothing.
    learned: std::sync::Mutex<Option<Challenge>>,
    /// Credentials by repository (auth files may hold per-namespace logins).
    creds: tokio::sync::Mutex<HashMap<String, Arc<Creds>>>,
    /// `Authorization` values: bearer tokens by scope set, basic auth by repository.
    tokens: std::sync::Mutex<HashMap<String, Cached>>,
    /// One token fetch at a time: concurrent first requests wait for one token.
    fetching: tokio::sync::Mutex<()>,
}

/// The credentials for one repository, resolved once.
struct Creds {
    found: Option<Found>,
    /// A refresh token the token server returned (OAuth2): used instead of the password after.
    refresh: std::sync::Mutex<Option<String>>,
}

#[derive(Clone)]
struct Cached {
    value: HeaderValue,
    /// `None`: does not expire (basic auth).
    expires: Option<Instant>,
}

/// What the token endpoint answers (distribution token spec, OAuth2 token response).
#[derive(serde::Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

impl Session {
    /// The `Authorization` value for a request, fetching a token when none is cached; `None`
    /// when the registry asked for nothing.
    pub(super) async fn authorization(&self, access: &Access) -> Result<Option<HeaderValue>> {
        let Some(challenge) = self.challenge().await? else {
            return Ok(None);
        };
        let key = cache_key(&challenge, access);
        if let Some(v) = self.cached(&key) {
            return Ok(Some(v));
        }
        let _one_at_a_time = self.auth.fetching.lock().await;
        if let Some(v) = self.cached(&key) {
            return Ok(Some(v));
        }
        let fresh = self.fetch(&challenge, access).await?;
        let value = fresh.value.clone();
        self.auth.tokens.lock().expect("lock").insert(key, fresh);
        Ok(Some(value))
    }

    /// After a 401: remember the challenge and drop the value that was refused, unless another
    /// request already replaced it, so the next [`Self::authorization`] fetches a new one.
    pub(super) async fn forget(
        &self,
        access: &Access,
        challenge: Challenge,
        sent: Option<&HeaderValue>,
    ) {
        let _one_at_a_time = self.auth.fetching.lock().await;
        let key = cache_key(&challenge, access);
        *self.auth.learned.lock().expect("lock") = Some(challenge);
        let mut tokens = self.auth.tokens.lock().expect("lock");
        let replaced = tokens.get(&key).is_some_and(|c| Some(&c.value) != sent);
        if !replaced {
            tokens.remove(&key);
        }
    }

    /// A request refused twice: the credentials (or their absence) are the problem.
    pub(super) async fn auth_failed(&self, access: &Access) -> TransportError {
        let found = match self.creds_for(&access.repository).await {
            Ok(c) => c.found.as_ref().map(|f| f.source.clone()),
            Err(e) => return e,
        };
        let wanted = match access.scopes.first().and_then(|s| s.rsplit(':').next()) {
            Some(actions) if actions.contains("push") => "push to",
            _ => "pull from",
        };
        match found {
            Some(source) => self.auth_error(format!(
                "the registry refused the credentials from {source} (HTTP 401): check the user name and password and that the user may {wanted} {}, or log in again with `docker login {}`",
                access.repository, self.registry
            )),
            None => self.needs_credentials("the registry requires authentication (HTTP 401)"),
        }
    }

    /// The challenge in force: one learned from a later 401, else the ping's.
    async fn challenge(&self) -> Result<Option<Challenge>> {
        if let Some(c) = self.auth.learned.lock().expect("lock").clone() {
            return Ok(Some(c));
        }
        Ok(self.base().await?.challenge.clone())
    }

    fn cached(&self, key: &str) -> Option<HeaderValue> {
        let tokens = self.auth.tokens.lock().expect("lock");
        let c = tokens.get(key)?;
        match c.expires {
            Some(t) if Instant::now() >= t => None,
            _ => Some(c.value.clone()),
        }
    }

    /// The credentials for `repository`: the options', else from the auth files (looked up
    /// once, off the executor: it may run a credential helper).
    async fn creds_for(&self, repository: &str) -> Result<Arc<Creds>> {
        let mut map = self.auth.creds.lock().await;
        if let Some(c) = map.get(repository) {
            return Ok(c.clone());
        }
        let found = match &self.options.credentials {
            Some((user, pass)) => Some(Found {
                credential: Credential::Basic {
                    username: user.clone(),
                    password: pass.clone(),
                },
                source: "the command line".into(),
            }),
            None => {
                let registry = self.registry.clone();
                let repo = repository.to_string();
                let authfile = self.options.authfile.clone();
                tokio::task::spawn_blocking(move || {
                    credentials::lookup(&registry, &repo, authfile.as_deref())
                })
                .await
                .map_err(|e| self.auth_error(format!("the credential lookup failed: {e}")))?
                .map_err(|e| self.auth_error(e.0))?
            }
        };
        // Repositories with the same login share it, and so the refresh token it earns.
        let c = match map.values().find(|c| c.found == found) {
            Some(same) => same.clone(),
            None => Arc::new(Creds {
                found,
                refresh: std::sync::Mutex::new(None),
            }),
        };
        map.insert(repository.to_string(), c.clone());
        Ok(c)
    }

    fn auth_error(&self, message: String) -> TransportError {
        TransportError::Auth {
            registry: self.registry.clone(),
            message,
            hint: None,
        }
    }

    /// An authentication error that credentials would fix.
    fn credentials_error(&self, message: String) -> TransportError {
        TransportError::Auth {
            registry: self.registry.clone(),
            message,
            hint: self.options.hint(Fix::Credentials {
                registry: self.registry.clone(),
            }),
        }
    }

    /// No credentials were found, and the registry wants some.
    fn needs_credentials(&self, why: &str) -> TransportError {
        self.credentials_error(format!("{why}, and no credentials were found"))
    }

    /// A new `Authorization` value for `challenge`.
    async fn fetch(&self, challenge: &Challenge, access: &Access) -> Result<Cached> {
        let creds = self.creds_for(&access.repository).await?;
        match challenge {
            Challenge::Basic => match creds.found.as_ref().map(|f| (&f.credential, &f.source)) {
                None => Err(self.needs_credentials("the registry requires authentication")),
                Some((Credential::Basic { username, password }, source)) => Ok(Cached {
                    value: self.sensitive(&format!("Basic {}", basic(username, password)), source)?,
                    expires: None,
                }),
                Some((Credential::IdentityToken(_), source)) => Err(self.credentials_error(format!(
                    "the registry asks for a user name and password, but {source} holds an identity token"
                ))),
            },
            Challenge::Bearer { realm, service } => {
                self.fetch_token(realm, service.as_deref(), &access.scopes, &creds)
                    .await
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: &Creds,
    ) -> Result<Cached> {
        let realm_url = Url::parse(realm).map_err(|_| {
            self.auth_error(format!(
                "the registry's token realm {:?} is not a URL",
                realm.split('?').next().unwrap_or("")
            ))
        })?;
        let (password, identity, source) = match creds.found.as_ref() {
            Some(f) => match &f.credential {
                Credential::Basic { username, password } => (
                    Some((username.as_str(), password.as_str())),
                    None,
                    Some(f.source.as_str()),
                ),
                Credential::IdentityToken(t) => (None, Some(t.clone()), Some(f.source.as_str())),
            },
            None => (None, None, None),
        };
        let refresh = creds.refresh.lock().expect("lock").clone().or(identity);
        if let Some(source) = source {
            let protected = realm_url.scheme() == "https"
                || realm_url.host_str().is_some_and(is_loopback_host)
                || !self.options.tls_verify;
            if !protected {
                return Err(TransportError::Auth {
                    registry: self.registry.clone(),
                    message: format!(
                        "the token server {} is plain http: the credentials from {source} are not sent there",
                        redact(&realm_url)
                    ),
                    hint: self.options.hint(Fix::AllowInsecure),
                });
            }
        }
        if let Some(source) = source {
            tracing::debug!(
                registry = %self.registry,
                token_server = realm_url.host_str().unwrap_or(""),
                "sending the credentials from {source} to the token server the registry named"
            );
        }
        let answer = match refresh {
            Some(token) => match self.post_token(&realm_url, service, scopes, &token).await? {
                Some(a) => a,
                None => match password {
                    Some(_) => {
                        self.get_token(&realm_url, service, scopes, password, source)
                            .await?
                    }
                    None => {
                        return Err(self.auth_error(format!(
                            "the token server {} refused the identity token from {}: log in again with `docker login {}`",
                            redact(&realm_url),
                            source.unwrap_or("the auth file"),
                            self.registry
                        )));
                    }
                },
            },
            None => {
                self.get_token(&realm_url, service, scopes, password, source)
                    .await?
            }
        };
        let token = answer
            .token
            .filter(|t| !t.is_empty())
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.auth_error("the token server's answer has no token".into()))?;
        if let Some(r) = answer.refresh_token.filter(|r| !r.is_empty()) {
            *creds.refresh.lock().expect("lock") = Some(r);
        }
        let lifetime = answer
            .expires_in
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
            .unwrap_or(60)
            .max(60);
        Ok(Cached {
            value: self.sensitive(&format!("Bearer {token}"), "the token server's answer")?,
            // Renew a little early, so a token does not expire between the check and the use.
            expires: Some(Instant::now() + Duration::from_secs(lifetime - lifetime / 10)),
        })
    }

    /// A token request, through the one request path (boxed: `send` may come back here to
    /// authorize a request, so the futures nest).
    async fn token_request(&self, request: Request) -> Result<reqwest::Response> {
        Box::pin(self.send(request)).await
    }

    /// The OAuth2 refresh-token grant. `None`: this server has no POST endpoint, or refused the
    /// refresh token (the caller falls back to the password when it has one).
    async fn post_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
        refresh_token: &str,
    ) -> Result<Option<TokenAnswer>> {
        let mut form = Url::parse("http://form.invalid/").expect("a constant URL");
        {
            let mut q = form.query_pairs_mut();
            q.append_pair("grant_type", "refresh_token");
            q.append_pair("refresh_token", refresh_token);
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", &scopes.join(" "));
            q.append_pair("client_id", "mirror");
            q.append_pair("access_type", "offline");
        }
        let body = form.query().unwrap_or("").to_string();
        let request = Request::new(Method::POST, realm.clone())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body);
        let resp = self.token_request(request).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(json(resp, caps::TOKEN).await?)),
            StatusCode::NOT_FOUND
            | StatusCode::METHOD_NOT_ALLOWED
            | StatusCode::BAD_REQUEST
            | StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN => Ok(None),
            s => Err(self.auth_error(format!(
                "the token server {} answered HTTP {}",
                redact(realm),
                s.as_u16()
            ))),
        }
    }

    /// The distribution token `GET`, with basic auth when there is a password.
    async fn get_token(
        &self,
        realm: &Url,
        service: Option<&str>,
        scopes: &[String],
        password: Option<(&str, &str)>,
        source: Option<&str>,
    ) -> Result<TokenAnswer> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for scope in scopes {
                q.append_pair("scope", scope);
            }
        }
        let mut request = Request::new(Method::GET, url);
        if let Some((u, p)) = password {
            let value = self.sensitive(
                &format!("Basic {}", basic(u, p)),
                source.unwrap_or("the credentials"),
            )?;
            request = request.header(AUTHORIZATION, value);
        }
        let resp = self.token_request(request).await?;
        match resp.status() {
            s if s.is_success() => json(resp, caps::TOKEN).await,
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => Err(match source {
                Some(source) => self.auth_error(format!(
                    "the token server refused the credentials from {source} (HTTP {}): check the user name and password, or log in again with `docker login {}`",
                    s.as_u16(),
                    self.registry
                )),
                None => self.needs_credentials(&format!(
                    "the registry requires authentication (its token server answered HTTP {})",
                    s.as_u16()
                )),
            }),
            s => Err(self.auth_error(format!(
                "the token server {} answered HTTP {}",
                redact(realm),
                s.as_u16()
            ))),
        }
    }

    /// An `Authorization` value, marked sensitive (never logged). `source` names where the secret
    /// came from, for the error when it holds characters a header cannot carry.
    fn sensitive(&self, value: &str, source: &str) -> Result<HeaderValue> {
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            self.auth_error(format!(
                "{source} holds characters not allowed in an HTTP header"
            ))
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// Which cached value a request uses: a bearer token covers exactly its scope set; basic auth is
/// per repository (whose credentials may differ).
fn cache_key(challenge: &Challenge, access: &Access) -> String {
    match challenge {
        Challenge::Basic => format!("basic {}", access.repository),
        Challenge::Bearer { .. } => format!("bearer {}", access.scopes.join(" ")),
    }
}

/// The value of a basic `Authorization` header, without the scheme.
pub(super) fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// The challenge of a 401: a `Bearer` one if any `WWW-Authenticate` offers it, else `Basic`.
pub(super) fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    let all: Vec<Challenge> = headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        .collect();
    all.iter()
        .find(|c| matches!(c, Challenge::Bearer { .. }))
        .or(all.first())
        .cloned()
}

pub(super) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    for (k, v) in parse_params(rest) {
        match k.as_str() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
    })
}

/// `k="v", k2="v2"` (values may contain commas inside quotes).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.push((key, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
        );
        match c {
            Some(Challenge::Bearer { realm, service }) => {
                assert_eq!(realm, "https://auth.docker.io/token");
                assert_eq!(service.as_deref(), Some("registry.docker.io"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn prefers_a_bearer_challenge_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="x""#),
        );
        h.append(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                r#"Bearer realm="http://t/token",service="s",error="insufficient_scope""#,
            ),
        );
        assert_eq!(
            challenge_of(&h),
            Some(Challenge::Bearer {
                realm: "http://t/token".into(),
                service: Some("s".into())
            })
        );
    }
}
