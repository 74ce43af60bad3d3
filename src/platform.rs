//! Platforms: the `platform` object of index entries, the `os/arch[/variant][:os.version]` requests
//! of `--platform`, normalization of architecture aliases, and matching.
//!
//! Equality and compatibility are kept apart (as go-containerregistry and regclient do): a request
//! *matches* an entry by the rules of DESIGN.md (Selection, rule 1), which is looser than equality:
//! `linux/arm64` matches every arm64 variant, and `os.version` is ignored unless the request names one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The `platform` object of an OCI descriptor or image config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

impl Platform {
    /// buildkit marks attestation entries `unknown/unknown`; such an entry has no real platform.
    pub fn is_real(&self) -> bool {
        !(self.os.is_empty()
            || self.architecture.is_empty()
            || self.os == "unknown" && self.architecture == "unknown")
    }

    /// `(arch, variant)` after normalization.
    pub fn normalized(&self) -> (String, Option<String>) {
        normalize_arch(&self.architecture, self.variant.as_deref())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = self.variant.as_deref().filter(|v| !v.is_empty()) {
            write!(f, "/{v}")?;
        }
        if let Some(v) = self.os_version.as_deref().filter(|v| !v.is_empty()) {
            write!(f, ":{v}")?;
        }
        Ok(())
    }
}

/// Normalize an architecture and variant: aliases to Go names, and the implied default variants
/// (`arm64` is `arm64/v8`, `arm` is `arm/v7`).
pub fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .filter(|v| !v.is_empty())
        .map(|v| v.to_ascii_lowercase());
    let (arch, variant) = match arch.as_str() {
        "aarch64" | "arm64" => ("arm64".to_string(), variant.or(Some("v8".into()))),
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant),
        "i386" | "386" => ("386".to_string(), variant),
        "armhf" => ("arm".to_string(), Some("v7".into())),
        "armel" => ("arm".to_string(), Some("v6".into())),
        "arm" => ("arm".to_string(), variant.or(Some("v7".into()))),
        _ => (arch, variant),
    };
    (arch, variant)
}

/// One `--platform` request: `os/arch[/variant][:os.version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub arch: String,
    /// `None`: any variant of `arch`.
    pub variant: Option<String>,
    /// `None`: any os.version; otherwise a prefix of it.
    pub os_version: Option<String>,
    original: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid platform {input:?}: {problem} (expected os/arch[/variant], e.g. linux/amd64 or linux/arm/v7)"
)]
pub struct PlatformError {
    pub input: String,
    pub problem: String,
}

impl FromStr for PlatformSpec {
    type Err = PlatformError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| PlatformError {
            input: input.to_string(),
            problem: problem.to_string(),
        };
        let s = input.trim();
        let (path, os_version) = match s.split_once(':') {
            Some((p, v)) if !v.is_empty() => (p, Some(v.to_string())),
            Some(_) => return Err(err("empty os.version after ':'")),
            None => (s, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(err("it needs two or three parts separated by '/'"));
        }
        for p in &parts {
            if p.is_empty() {
                return Err(err("a part is empty"));
            }
            if !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            {
                return Err(err(&format!(
                    "{p:?} has characters other than letters, digits, '_', '-', '.'"
                )));
            }
        }
        let os = parts[0].to_ascii_lowercase();
        // An explicit variant is kept; an absent one means "any variant", except where the alias itself
        // names one (armhf, armel).
        let raw_arch = parts[1];
        let explicit = parts.get(2).copied();
        let (arch, implied) = normalize_arch(raw_arch, explicit);
        let variant = match (explicit, raw_arch.to_ascii_lowercase().as_str()) {
            (Some(_), _) => implied,
            (None, "armhf" | "armel") => implied,
            (None, _) => None,
        };
        Ok(PlatformSpec {
            os,
            arch,
            variant,
            os_version,
            original: s.to_string(),
        })
    }
}

impl fmt::Display for PlatformSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl PlatformSpec {
    /// Does this request select an entry with platform `p`? (DESIGN.md, Selection, rule 1.)
    pub fn matches(&self, p: &Platform) -> bool {
        if !p.is_real() || !p.os.eq_ignore_ascii_case(&self.os) {
            return false;
        }
        let (arch, variant) = p.normalized();
        if arch != self.arch {
            return false;
        }
        if let Some(want) = &self.variant
            && variant.as_deref() != Some(want.as_str())
        {
            return false;
        }
        match &self.os_version {
            None => true,
            Some(prefix) => p
                .os_version
                .as_deref()
                .is_some_and(|v| v.starts_with(prefix.as_str())),
        }
    }
}

/// Parse a list of `--platform` values, each of which may be comma-separated.
pub fn parse_list<S: AsRef<str>>(values: &[S]) -> Result<Vec<PlatformSpec>, PlatformError> {
    let mut out = Vec::new();
    for v in values {
        for part in v
            .as_ref()
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let spec: PlatformSpec = part.parse()?;
            if !out.contains(&spec) {
                out.push(spec);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: variant.map(Into::into),
            ..Default::default()
        }
    }

    fn spec(s: &str) -> PlatformSpec {
        s.parse().unwrap()
    }

    #[test]
    fn os_arch_matches_every_variant() {
        assert!(spec("linux/arm").matches(&p("linux", "arm", Some("v5"))));
        assert!(spec("linux/arm").matches(&p("linux", "arm", Some("v7"))));
        assert!(spec("linux/arm64").matches(&p("linux", "arm64", None)));
        assert!(spec("linux/arm64").matches(&p("linux", "arm64", Some("v8"))));
        assert!(!spec("linux/arm64").matches(&p("linux", "arm", Some("v7"))));
        assert!(!spec("linux/amd64").matches(&p("windows", "amd64", None)));
    }

    #[test]
    fn variant_request_matches_that_variant_and_the_implied_default() {
        assert!(spec("linux/arm/v7").matches(&p("linux", "arm", None)));
        assert!(spec("linux/arm/v7").matches(&p("linux", "arm", Some("v7"))));
        assert!(!spec("linux/arm/v7").matches(&p("linux", "arm", Some("v6"))));
        assert!(spec("linux/arm64/v8").matches(&p("linux", "arm64", None)));
        assert!(!spec("linux/amd64/v3").matches(&p("linux", "amd64", None)));
    }

    #[test]
    fn aliases_normalize_on_both_sides() {
        assert!(spec("linux/aarch64").matches(&p("linux", "arm64", Some("v8"))));
        assert!(spec("linux/arm64").matches(&p("linux", "aarch64", None)));
        assert!(spec("linux/x86_64").matches(&p("linux", "amd64", None)));
        assert!(spec("linux/x86-64").matches(&p("linux", "amd64", None)));
        assert!(spec("linux/amd64").matches(&p("linux", "x86_64", None)));
        assert!(spec("linux/i386").matches(&p("linux", "386", None)));
        assert!(spec("linux/armhf").matches(&p("linux", "arm", Some("v7"))));
        assert!(!spec("linux/armhf").matches(&p("linux", "arm", Some("v6"))));
        assert!(spec("linux/armel").matches(&p("linux", "arm", Some("v6"))));
    }

    #[test]
    fn os_version_is_a_prefix_match_only_when_asked() {
        let mut w = p("windows", "amd64", None);
        w.os_version = Some("10.0.20348.1249".into());
        assert!(spec("windows/amd64").matches(&w));
        assert!(spec("windows/amd64:10.0.20348").matches(&w));
        assert!(!spec("windows/amd64:10.0.17763").matches(&w));
    }

    #[test]
    fn unknown_platform_is_never_matched() {
        assert!(!spec("unknown/unknown").matches(&p("unknown", "unknown", None)));
    }

    #[test]
    fn bad_specs_name_the_problem() {
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
            "linux/amd64:",
        ] {
            let e = bad.parse::<PlatformSpec>().unwrap_err();
            assert_eq!(e.input, bad.trim());
        }
        let list = parse_list(&["linux/amd64,linux/arm64", "linux/amd64"]).unwrap();
        assert_eq!(list.len(), 2);
    }
}
