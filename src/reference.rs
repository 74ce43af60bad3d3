//! Image references: `docker://HOST/REPO[:TAG|@DIGEST]`, bare docker-style names with docker.io
//! normalization (as skopeo and docker do), `oci:PATH[:TAG]` and `oci-archive:PATH[:TAG]`.
//!
//! Pure parsing: no I/O. Every error names the part of the reference that is wrong.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::oci::Digest;

pub const DOCKER_HUB: &str = "docker.io";

/// Where an image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    Registry(RegistryRef),
    Layout(LayoutRef),
    Archive(LayoutRef),
}

/// A manifest inside a repository: by tag or by digest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Tag(String),
    Digest(Digest),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Tag(t) => f.write_str(t),
            Target::Digest(d) => write!(f, "{d}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// `host[:port]` as written (docker.io for Docker Hub).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// What to fetch: the digest when given, else the tag (default `latest`).
    pub fn target(&self) -> Target {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Target::Digest(d.clone()),
            (None, Some(t)) => Target::Tag(t.clone()),
            (None, None) => Target::Tag("latest".into()),
        }
    }

    /// The host requests go to (Docker Hub's API host for docker.io).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// An OCI layout directory (or archive) and the image in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutRef {
    pub path: PathBuf,
    /// `org.opencontainers.image.ref.name` in `index.json`, or a digest.
    pub target: Option<Target>,
}

impl ImageRef {
    pub fn is_registry(&self) -> bool {
        matches!(self, ImageRef::Registry(_))
    }

    /// The tag (or name) this reference points at, if any.
    pub fn tag(&self) -> Option<&str> {
        match self {
            ImageRef::Registry(r) => r.tag.as_deref(),
            ImageRef::Layout(l) | ImageRef::Archive(l) => match &l.target {
                Some(Target::Tag(t)) => Some(t),
                _ => None,
            },
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(r) => write!(f, "{r}"),
            ImageRef::Layout(l) | ImageRef::Archive(l) => {
                let scheme = if matches!(self, ImageRef::Layout(_)) {
                    "oci"
                } else {
                    "oci-archive"
                };
                write!(f, "{scheme}:{}", l.path.display())?;
                match &l.target {
                    Some(Target::Tag(t)) => write!(f, ":{t}"),
                    Some(Target::Digest(d)) => write!(f, "@{d}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid reference {input:?}: {problem}")]
pub struct ReferenceError {
    pub input: String,
    pub problem: String,
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |problem: String| ReferenceError {
            input: input.to_string(),
            problem,
        };
        if input.trim().is_empty() {
            return Err(err("it is empty".into()));
        }
        if let Some(redacted) = redact_userinfo(input) {
            return Err(ReferenceError {
                input: redacted,
                problem: "credentials do not belong in a reference (they would show in process lists, shell history and logs): give them with --src-creds/--dest-creds (--creds for inspect and verify) or in an auth file (--authfile, or `docker login`)".into(),
            });
        }
        if let Some(rest) = input.strip_prefix("docker://") {
            return parse_registry(rest).map(ImageRef::Registry).map_err(err);
        }
        if let Some(rest) = input.strip_prefix("oci:") {
            return parse_layout(rest).map(ImageRef::Layout).map_err(err);
        }
        if let Some(rest) = input.strip_prefix("oci-archive:") {
            return parse_layout(rest).map(ImageRef::Archive).map_err(err);
        }
        if let Some((scheme, _)) = input.split_once("://") {
            return Err(err(format!(
                "unknown transport {scheme:?}:// (use docker://, oci: or oci-archive:)"
            )));
        }
        if let Some((scheme, _)) = input.split_once(':')
            && [
                "docker-archive",
                "docker-daemon",
                "dir",
                "containers-storage",
            ]
            .contains(&scheme)
        {
            return Err(err(format!(
                "transport {scheme:?} is not supported (use docker://, oci: or oci-archive:)"
            )));
        }
        parse_registry(input).map(ImageRef::Registry).map_err(err)
    }
}

/// A registry reference with user info (`docker://user:pass@host/repo`, `user@host/repo`), with
/// the password replaced by `***`; `None` for every other reference. Only the host part (before
/// the first `/`) is looked at: `repo@sha256:…` is a digest, and so is `name@sha256:…`.
fn redact_userinfo(input: &str) -> Option<String> {
    if input.starts_with("oci:") || input.starts_with("oci-archive:") {
        return None;
    }
    let (scheme, rest) = match input.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), input),
    };
    let (host, path) = rest.split_once('/')?;
    let (userinfo, host) = host.rsplit_once('@')?;
    let user = userinfo.split(':').next().unwrap_or("");
    let shown = if userinfo.contains(':') {
        format!("{user}:***")
    } else {
        user.to_string()
    };
    Some(format!("{scheme}{shown}@{host}/{path}"))
}

fn parse_layout(rest: &str) -> Result<LayoutRef, String> {
    // Like skopeo on Unix: the path ends at the first ':'; '@sha256:…' selects by digest.
    let (path, target) = if let Some((path, digest)) = rest.split_once('@') {
        let d = digest
            .parse::<Digest>()
            .map_err(|e| format!("the digest: {}", e.problem))?;
        (path, Some(Target::Digest(d)))
    } else if let Some((path, name)) = rest.split_once(':') {
        if name.is_empty() {
            return Err("the tag after ':' is empty".into());
        }
        if !valid_ref_name(name) {
            return Err(format!(
                "the tag {name:?} is not a valid image name (letters, digits and . _ - : / @ + between them)"
            ));
        }
        (path, Some(Target::Tag(name.to_string())))
    } else {
        (rest, None)
    };
    if path.is_empty() {
        return Err("the layout path is empty".into());
    }
    Ok(LayoutRef {
        path: PathBuf::from(path),
        target,
    })
}

/// The OCI image-layout grammar for `org.opencontainers.image.ref.name`.
fn valid_ref_name(name: &str) -> bool {
    let mut prev_sep = true;
    for c in name.chars() {
        let sep = matches!(c, '.' | '_' | '-' | ':' | '/' | '@' | '+');
        if sep && prev_sep || !sep && !c.is_ascii_alphanumeric() {
            return false;
        }
        prev_sep = sep;
    }
    !prev_sep
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_path_component(c: &str) -> bool {
    // [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if b.iter().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn looks_like_host(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

fn parse_registry(s: &str) -> Result<RegistryRef, String> {
    if s.is_empty() {
        return Err("the repository is empty".into());
    }
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => {
            let d = d
                .parse::<Digest>()
                .map_err(|e| format!("the digest {d:?}: {}", e.problem))?;
            (n, Some(d))
        }
        None => (s, None),
    };
    // A tag is after the last ':' that follows the last '/'.
    let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match name_tag[last_slash..].rfind(':') {
        Some(i) => {
            let tag = &name_tag[last_slash + i + 1..];
            if !valid_tag(tag) {
                return Err(format!(
                    "the tag {tag:?} is not valid (up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-')"
                ));
            }
            (&name_tag[..last_slash + i], Some(tag.to_string()))
        }
        None => (name_tag, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    let registry = if parts.len() > 1 && looks_like_host(parts[0]) {
        let host = parts.remove(0);
        validate_host(host)?;
        host.to_string()
    } else {
        DOCKER_HUB.to_string()
    };
    let registry = match registry.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => registry,
    };
    if parts.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err("the repository path has an empty component".into());
    }
    for p in &parts {
        if !valid_path_component(p) {
            return Err(format!(
                "the repository component {p:?} is not valid (lowercase letters and digits, separated by '.', '_', '__' or '-')"
            ));
        }
    }
    let mut repository = parts.join("/");
    if registry == DOCKER_HUB && parts.len() == 1 {
        repository = format!("library/{repository}");
    }
    let tag = if tag.is_none() && digest.is_none() {
        Some("latest".into())
    } else {
        tag
    };
    Ok(RegistryRef {
        registry,
        repository,
        tag,
        digest,
    })
}

fn validate_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("the IPv6 host has no closing ']'")?;
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("the host [{ip}] is not an IPv6 address"));
        }
        (None, after.strip_prefix(':'))
    } else {
        match host.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(host), None),
        }
    };
    if let Some(port) = port
        && port.parse::<u16>().map(|p| p == 0).unwrap_or(true)
    {
        return Err(format!(
            "the port {port:?} of the registry host is not a number from 1 to 65535"
        ));
    }
    if let Some(name) = name
        && (name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            || name.starts_with('-')
            || name.starts_with('.'))
    {
        return Err(format!(
            "the registry host {name:?} is not a valid host name"
        ));
    }
    Ok(())
}

/// Is `host` (without port) a loopback name or address?
pub fn is_loopback_host(host_port: &str) -> bool {
    let host = if let Some(rest) = host_port.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(s: &str) -> RegistryRef {
        match s.parse::<ImageRef>().unwrap() {
            ImageRef::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_hub_normalization() {
        let r = reg("alpine");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/alpine", Some("latest"))
        );
        let r = reg("prom/node-exporter:v1.8.0");
        assert_eq!(
            (r.repository.as_str(), r.tag.as_deref()),
            ("prom/node-exporter", Some("v1.8.0"))
        );
        let r = reg("docker://docker.io/alpine:3.20");
        assert_eq!(r.repository, "library/alpine");
        assert_eq!(r.api_host(), "registry-1.docker.io");
    }

    #[test]
    fn hosts_ports_and_digests() {
        let r = reg("docker://127.0.0.1:5000/team/app:v1");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "team/app")
        );
        let d = Digest::sha256(b"x");
        let r = reg(&format!("localhost:5000/app@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.target(), Target::Digest(d.clone()));
        let r = reg(&format!("quay.io/a/b:t@{d}"));
        assert_eq!(r.tag.as_deref(), Some("t"));
        assert_eq!(r.target(), Target::Digest(d));
        let r = reg("docker://[::1]:5000/app:v1");
        assert_eq!(r.registry, "[::1]:5000");
        assert!(is_loopback_host(&r.registry));
        assert!(is_loopback_host("127.0.0.1:5000"));
        assert!(!is_loopback_host("quay.io"));
    }

    #[test]
    fn layouts() {
        assert_eq!(
            "oci:/tmp/x:latest".parse::<ImageRef>().unwrap(),
            ImageRef::Layout(LayoutRef {
                path: "/tmp/x".into(),
                target: Some(Target::Tag("latest".into()))
            })
        );
        assert_eq!(
            "oci-archive:a.tar".parse::<ImageRef>().unwrap(),
            ImageRef::Archive(LayoutRef {
                path: "a.tar".into(),
                target: None
            })
        );
        let r: ImageRef = "oci:/l:library/alpine:3.20".parse().unwrap();
        assert_eq!(r.tag(), Some("library/alpine:3.20"));
    }

    #[test]
    fn malformed_references_name_the_part() {
        let cases = [
            ("docker://", "repository"),
            ("docker://Host.io/UPPER:tag", "component"),
            ("docker://host.io/app:-bad", "tag"),
            ("docker://host.io:99999/app", "port"),
            ("docker://host.io/app@sha256:xyz", "digest"),
            ("ftp://host/app", "transport"),
            ("oci:", "path"),
            ("oci:/x:", "tag"),
            ("host.io//app", "empty"),
            ("", "empty"),
        ];
        for (input, word) in cases {
            let e = input.parse::<ImageRef>().unwrap_err();
            assert!(e.problem.contains(word), "{input}: {}", e.problem);
        }
    }

    #[test]
    fn credentials_in_a_reference_are_refused_and_the_password_never_echoed() {
        for (input, shown) in [
            (
                "docker://me:s3cret@host.io/app:v1",
                "docker://me:***@host.io/app:v1",
            ),
            ("me:s3cret@host.io:5000/app", "me:***@host.io:5000/app"),
            ("me@host.io/app", "me@host.io/app"),
        ] {
            let e = input.parse::<ImageRef>().unwrap_err();
            let text = e.to_string();
            assert!(!text.contains("s3cret"), "{text}");
            assert!(text.contains(shown), "{text}");
            assert!(text.contains("--src-creds"), "{text}");
            assert!(text.contains("auth file"), "{text}");
        }
        // Digests are not user info.
        assert!(
            "alpine@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse::<ImageRef>()
                .is_ok()
        );
        assert!(
            "host.io/app@sha256:0000000000000000000000000000000000000000000000000000000000000000"
                .parse::<ImageRef>()
                .is_ok()
        );
        assert_eq!(redact_userinfo("oci:/tmp/a@b/c"), None);
    }
}
