//! The `sync` config file (DESIGN.md, `sync` config), parsed strictly and validated into jobs.
//!
//! Unknown keys are refused by serde (`deny_unknown_fields`), whose messages carry the line and
//! column. Values that parse but do not make sense (a bad platform, reference or regex) are
//! validated here, and the error names the file, the line the value is on, and the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::Error;
use crate::fallback::Policies;
use crate::oci::Digest;
use crate::platform::{self, PlatformSpec};
use crate::reference::{ImageRef, Target};
use crate::select::{Attestations, Selection, Unbound};
use crate::transport::registry::HostLimits;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    defaults: Options,
    images: Vec<ImageEntry>,
    /// Per-registry limits, keyed by `host[:port]`.
    #[serde(default)]
    registries: std::collections::BTreeMap<String, RegistryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RegistryEntry {
    max_requests: Option<usize>,
    requests_per_second: Option<f64>,
}

/// The copy options a config can set, as defaults or per image.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Options {
    platforms: Option<Vec<String>>,
    all_platforms: Option<bool>,
    attestations: Option<Attestations>,
    unbound: Option<Unbound>,
    referrers: Option<bool>,
    signatures: Option<bool>,
    referrers_type: Option<Vec<String>>,
    skip_missing_platforms: Option<bool>,
    on_sparse_reject: Option<Policies>,
}

impl Options {
    fn or(&self, defaults: &Options) -> Options {
        Options {
            platforms: self
                .platforms
                .clone()
                .or_else(|| defaults.platforms.clone()),
            all_platforms: self.all_platforms.or(defaults.all_platforms),
            attestations: self.attestations.or(defaults.attestations),
            unbound: self.unbound.or(defaults.unbound),
            referrers: self.referrers.or(defaults.referrers),
            signatures: self.signatures.or(defaults.signatures),
            referrers_type: self
                .referrers_type
                .clone()
                .or_else(|| defaults.referrers_type.clone()),
            skip_missing_platforms: self
                .skip_missing_platforms
                .or(defaults.skip_missing_platforms),
            on_sparse_reject: self
                .on_sparse_reject
                .clone()
                .or(defaults.on_sparse_reject.clone()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ImageEntry {
    source: String,
    destination: String,
    #[serde(default)]
    tags: Option<TagsEntry>,
    #[serde(default)]
    digest: Option<String>,
    // The per-image overrides (the same keys as `defaults`; serde cannot flatten with
    // deny_unknown_fields).
    platforms: Option<Vec<String>>,
    all_platforms: Option<bool>,
    attestations: Option<Attestations>,
    unbound: Option<Unbound>,
    referrers: Option<bool>,
    signatures: Option<bool>,
    referrers_type: Option<Vec<String>>,
    skip_missing_platforms: Option<bool>,
    on_sparse_reject: Option<Policies>,
}

impl ImageEntry {
    fn options(&self) -> Options {
        Options {
            platforms: self.platforms.clone(),
            all_platforms: self.all_platforms,
            attestations: self.attestations,
            unbound: self.unbound,
            referrers: self.referrers,
            signatures: self.signatures,
            referrers_type: self.referrers_type.clone(),
            skip_missing_platforms: self.skip_missing_platforms,
            on_sparse_reject: self.on_sparse_reject.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TagsEntry {
    List(Vec<String>),
    Filter(TagFilterEntry),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagFilterEntry {
    regex: String,
    #[serde(default)]
    latest: Option<usize>,
}

/// Which tags of a source repository an image entry means.
#[derive(Debug, Clone)]
pub enum Tags {
    /// These tags.
    List(Vec<String>),
    /// Tags matching the regex (anchored as written), newest `latest` by version.
    Filter {
        regex: regex::Regex,
        latest: Option<usize>,
    },
    /// One manifest by digest.
    Digest(Digest),
    /// What the source reference itself names.
    AsGiven,
}

/// One validated image entry.
#[derive(Debug, Clone)]
pub struct ImageJob {
    /// The source repository (its tag, if any, is used only with [`Tags::AsGiven`]).
    pub source: ImageRef,
    pub destination: ImageRef,
    pub tags: Tags,
    pub selection: Selection,
    pub skip_missing_platforms: bool,
    pub on_sparse_reject: Policies,
    pub referrers: bool,
    pub signatures: bool,
    /// Only referrers of these artifact types (empty: all).
    pub referrer_types: Vec<String>,
    /// 1-based line of the entry in the file, for messages.
    pub line: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub images: Vec<ImageJob>,
    /// `registries:`: limits by `host[:port]`.
    pub registries: HashMap<String, HostLimits>,
}

/// Read and validate a config file. Every problem is a usage error (exit 2).
pub fn load(path: &Path) -> Result<Config, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read the config {}: {e}", path.display())))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
    let shown = path.display().to_string();
    let file: File =
        serde_yaml_ng::from_str(text).map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
    if file.version != 1 {
        return Err(Error::Usage(format!(
            "{shown}:{}: version {} is not supported (this mirror reads version 1)",
            line_of(text, "version", 0),
            file.version
        )));
    }
    if file.images.is_empty() {
        return Err(Error::Usage(format!(
            "{shown}: `images` is empty: list at least one image"
        )));
    }
    let mut images = Vec::new();
    let mut search_from = 0;
    for (i, entry) in file.images.iter().enumerate() {
        let entry_line = line_of(text, &entry.source, search_from);
        search_from = entry_line;
        let at = |key: &str, value: &str| {
            let line = line_of_key_value(text, key, value, entry_line.saturating_sub(1));
            format!("{shown}:{line}: images[{i}].{key}")
        };
        let options = entry.options().or(&file.defaults);
        let source: ImageRef = entry
            .source
            .parse()
            .map_err(|e| Error::Usage(format!("{}: {e}", at("source", &entry.source))))?;
        let destination: ImageRef = entry
            .destination
            .parse()
            .map_err(|e| Error::Usage(format!("{}: {e}", at("destination", &entry.destination))))?;
        let platforms: Vec<PlatformSpec> = match &options.platforms {
            None => vec![],
            Some(list) => {
                let mut out = vec![];
                for p in list {
                    out.extend(
                        platform::parse_list(&[p])
                            .map_err(|e| Error::Usage(format!("{}: {e}", at("platforms", p))))?,
                    );
                }
                out
            }
        };
        let selection = if options.all_platforms.unwrap_or(false) {
            Selection::everything()
        } else {
            Selection {
                platforms: (!platforms.is_empty()).then_some(platforms),
                attestations: options.attestations.unwrap_or_default(),
                unbound: options.unbound.unwrap_or_default(),
                ..Selection::default()
            }
        };
        let tags = match (&entry.tags, &entry.digest) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(format!(
                    "{}: give `tags` or `digest`, not both",
                    at("digest", "digest")
                )));
            }
            (None, Some(d)) => Tags::Digest(
                d.parse::<Digest>()
                    .map_err(|e| Error::Usage(format!("{}: {e}", at("digest", d))))?,
            ),
            (Some(TagsEntry::List(list)), None) => {
                if list.is_empty() {
                    return Err(Error::Usage(format!(
                        "{}: the tag list is empty",
                        at("tags", "tags")
                    )));
                }
                for t in list {
                    let probe = format!("x:{t}");
                    if probe.parse::<ImageRef>().is_err() {
                        return Err(Error::Usage(format!(
                            "{}: {t:?} is not a valid tag",
                            at("tags", t)
                        )));
                    }
                }
                Tags::List(list.clone())
            }
            (Some(TagsEntry::Filter(f)), None) => {
                let regex = regex::Regex::new(&f.regex).map_err(|e| {
                    Error::Usage(format!("{}: bad regex: {e}", at("tags.regex", &f.regex)))
                })?;
                if f.latest == Some(0) {
                    return Err(Error::Usage(format!(
                        "{}: `latest` must be at least 1",
                        at("tags.latest", "latest")
                    )));
                }
                Tags::Filter {
                    regex,
                    latest: f.latest,
                }
            }
            (None, None) => Tags::AsGiven,
        };
        if matches!(tags, Tags::List(_) | Tags::Filter { .. }) && source_names_manifest(&source) {
            return Err(Error::Usage(format!(
                "{}: the source names a tag or digest and `tags` lists more: give the repository only",
                at("source", &entry.source)
            )));
        }
        images.push(ImageJob {
            source,
            destination,
            tags,
            selection,
            skip_missing_platforms: options.skip_missing_platforms.unwrap_or(false),
            on_sparse_reject: options.on_sparse_reject.clone().unwrap_or_default(),
            referrers: options.referrers.unwrap_or(true),
            signatures: options.signatures.unwrap_or(true),
            referrer_types: options.referrers_type.clone().unwrap_or_default(),
            line: entry_line,
        });
    }
    let mut registries = HashMap::new();
    for (host, entry) in &file.registries {
        let line = line_of(text, &format!("{host}:"), line_of(text, "registries:", 0));
        let at = |key: &str| format!("{shown}:{line}: registries.{host}{key}");
        let valid_host = !host.is_empty()
            && !host.contains(['/', '@', ' '])
            && !host.contains("://")
            && host
                .split_once(':')
                .is_none_or(|(h, port)| !h.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
        if !valid_host {
            return Err(Error::Usage(format!(
                "{}: {host:?} is not a registry host: write host or host:port (e.g. registry-1.docker.io, mirror.internal:5000)",
                at("")
            )));
        }
        if entry.max_requests == Some(0) {
            return Err(Error::Usage(format!(
                "{}: must be at least 1",
                at(".max-requests")
            )));
        }
        if let Some(r) = entry.requests_per_second
            && !(r.is_finite() && r > 0.0)
        {
            return Err(Error::Usage(format!(
                "{}: {r} is not a positive number",
                at(".requests-per-second")
            )));
        }
        registries.insert(
            host.clone(),
            HostLimits {
                max_requests: entry.max_requests,
                requests_per_second: entry.requests_per_second,
            },
        );
    }
    Ok(Config {
        path: path.to_path_buf(),
        images,
        registries,
    })
}

/// Whether a reference names a manifest explicitly (a written tag or digest).
fn source_names_manifest(r: &ImageRef) -> bool {
    match r {
        // Bare registry references get `latest` by default; only a digest counts as explicit here.
        ImageRef::Registry(r) => r.digest.is_some(),
        ImageRef::Layout(l) | ImageRef::Archive(l) => l.target.is_some(),
    }
}

/// The 1-based line of the first occurrence of `needle` at or after line `from` (0-based).
fn line_of(text: &str, needle: &str, from: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .unwrap_or(from + 1)
}

/// The line where `key` is given `value` (or, failing that, the value alone), from line `from`.
fn line_of_key_value(text: &str, key: &str, value: &str, from: usize) -> usize {
    let last = key.rsplit('.').next().unwrap_or(key);
    let hit = text
        .lines()
        .enumerate()
        .skip(from)
        .find(|(_, l)| l.contains(value) && (l.contains(last) || l.trim_start().starts_with('-')))
        .map(|(i, _)| i + 1);
    hit.unwrap_or_else(|| line_of(text, last, from))
}

/// Order tags by version, newest first: numeric dot/dash components compare as numbers
/// (`v1.10.0` > `v1.9.3`); a tag with a pre-release suffix sorts before its release.
pub fn newest_first(tags: &mut [String]) {
    tags.sort_by(|a, b| version_key(b).cmp(&version_key(a)).then_with(|| b.cmp(a)));
}

fn version_key(tag: &str) -> (Vec<u64>, bool, String) {
    let t = tag.strip_prefix('v').unwrap_or(tag);
    let (main, pre) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let nums: Vec<u64> = main.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    (nums, pre.is_empty(), pre.to_string())
}

impl ImageJob {
    /// The source reference for one tag (or the digest) of this job.
    pub fn source_for(&self, tag: &Target) -> ImageRef {
        with_target(&self.source, tag)
    }

    /// The destination reference for one tag: a registry repository gets the tag; a layout or
    /// archive names the image `REPO:TAG` (the source repository path), so many images share it.
    pub fn destination_for(&self, tag: &Target) -> ImageRef {
        match (&self.destination, tag) {
            (ImageRef::Layout(_) | ImageRef::Archive(_), _) => {
                let repo = match &self.source {
                    ImageRef::Registry(r) => r.repository.clone(),
                    ImageRef::Layout(l) | ImageRef::Archive(l) => l
                        .path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "image".into()),
                };
                let name = match tag {
                    Target::Tag(t) => format!("{repo}:{t}"),
                    Target::Digest(d) => format!("{repo}@{d}").replace("@sha256:", ":sha256-"),
                };
                with_target(&self.destination, &Target::Tag(name))
            }
            (dst, t) => with_target(dst, t),
        }
    }
}

fn with_target(r: &ImageRef, t: &Target) -> ImageRef {
    match r.clone() {
        ImageRef::Registry(mut reg) => {
            match t {
                Target::Tag(tag) => {
                    reg.tag = Some(tag.clone());
                    reg.digest = None;
                }
                Target::Digest(d) => {
                    reg.tag = None;
                    reg.digest = Some(d.clone());
                }
            }
            ImageRef::Registry(reg)
        }
        ImageRef::Layout(mut l) => {
            l.target = Some(t.clone());
            ImageRef::Layout(l)
        }
        ImageRef::Archive(mut l) => {
            l.target = Some(t.clone());
            ImageRef::Archive(l)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> String {
        match parse(text, Path::new("sync.yaml")) {
            Err(Error::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    const GOOD: &str = r#"version: 1
defaults:
  platforms: [linux/amd64, linux/arm64]
  attestations: bound
  referrers: true
  signatures: true
  skip-missing-platforms: true
  on-sparse-reject: report
images:
  - source: docker://registry.example.com/library/alpine
    destination: docker://mirror.internal:5000/mirror/alpine
    tags: ["3.20", "3.19"]
  - source: quay.io/prometheus/node-exporter
    destination: oci:/media/airgap/layout
    tags: { regex: '^v1\.[0-9]+\.[0-9]+$', latest: 3 }
    platforms: [linux/amd64]
  - source: docker://registry.example.com/app
    destination: docker://mirror.internal:5000/app
    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
registries:
  registry-1.docker.io: { max-requests: 4, requests-per-second: 10 }
  mirror.internal:5000: { max-requests: 32 }
"#;

    #[test]
    fn the_design_example_parses() {
        let c = parse(GOOD, Path::new("sync.yaml")).unwrap();
        assert_eq!(c.images.len(), 3);
        assert!(matches!(&c.images[0].tags, Tags::List(l) if l.len() == 2));
        assert_eq!(c.images[0].selection.platforms.as_ref().unwrap().len(), 2);
        assert_eq!(
            c.images[1].selection.platforms.as_ref().unwrap().len(),
            1,
            "per-image override"
        );
        assert!(c.images[1].skip_missing_platforms, "from defaults");
        assert!(matches!(
            &c.images[1].tags,
            Tags::Filter {
                latest: Some(3),
                ..
            }
        ));
        assert!(matches!(&c.images[2].tags, Tags::Digest(_)));
        assert_eq!(c.images[1].line, 13);
        let t = Target::Tag("v1.8.0".into());
        assert_eq!(
            c.images[1].destination_for(&t).to_string(),
            "oci:/media/airgap/layout:prometheus/node-exporter:v1.8.0"
        );
        assert_eq!(
            c.images[0].destination_for(&t).to_string(),
            "docker://mirror.internal:5000/mirror/alpine:v1.8.0"
        );
    }

    #[test]
    fn credentials_in_a_source_are_a_usage_error_with_the_password_redacted() {
        let e = parse_err(&GOOD.replace(
            "docker://registry.example.com/app",
            "docker://robot:hunter2@registry.example.com/app",
        ));
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("robot:***@registry.example.com"), "{e}");
        assert!(e.contains("--src-creds"), "{e}");
        assert!(e.contains("images[2].source"), "{e}");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse_err(&GOOD.replace(
            "    platforms: [linux/amd64]",
            "    platfroms: [linux/amd64]",
        ));
        assert!(
            e.contains("sync.yaml") && e.contains("platfroms") && e.contains("line 16"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("[linux/amd64]", "[linux]"));
        assert!(
            e.contains("sync.yaml:16") && e.contains("platforms") && e.contains("linux"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace(r"'^v1\.[0-9]+\.[0-9]+$'", "'^v1.[0-9+$'"));
        assert!(
            e.contains("sync.yaml:15") && e.contains("tags.regex") && e.contains("regex"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("quay.io/prometheus/node-exporter", "quay.io/Prometheus"));
        assert!(e.contains("sync.yaml:13") && e.contains("source"), "{e}");
        let e = parse_err(&GOOD.replace("version: 1", "version: 2"));
        assert!(e.contains("version 2"), "{e}");
        let e = parse_err("version: 1\nimages: []\n");
        assert!(e.contains("empty"), "{e}");
        let e = parse_err(&GOOD.replace("on-sparse-reject: report", "on-sparse-reject: maybe"));
        assert!(e.contains("maybe") && e.contains("line 8"), "{e}");
    }

    #[test]
    fn registries_carry_per_host_limits_strictly() {
        let c = parse(GOOD, Path::new("sync.yaml")).unwrap();
        assert_eq!(
            c.registries["registry-1.docker.io"],
            HostLimits {
                max_requests: Some(4),
                requests_per_second: Some(10.0)
            }
        );
        assert_eq!(c.registries["mirror.internal:5000"].max_requests, Some(32));
        assert_eq!(
            c.registries["mirror.internal:5000"].requests_per_second,
            None
        );
        let e = parse_err(&GOOD.replace("{ max-requests: 32 }", "{ max-request: 32 }"));
        assert!(
            e.contains("sync.yaml") && e.contains("max-request") && e.contains("line 22"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("max-requests: 32", "max-requests: 0"));
        assert!(
            e.contains("sync.yaml:22")
                && e.contains("registries.mirror.internal:5000.max-requests"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("requests-per-second: 10", "requests-per-second: -1"));
        assert!(
            e.contains("sync.yaml:21") && e.contains("requests-per-second"),
            "{e}"
        );
        let e = parse_err(&GOOD.replace("mirror.internal:5000:", "https://mirror.internal:"));
        assert!(e.contains("not a registry host"), "{e}");
    }

    #[test]
    fn versions_sort_newest_first() {
        let mut tags: Vec<String> = ["v1.9.3", "v1.10.0", "v1.10.0-rc.1", "v1.2.0", "v1.9.10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        newest_first(&mut tags);
        assert_eq!(
            tags,
            ["v1.10.0", "v1.10.0-rc.1", "v1.9.10", "v1.9.3", "v1.2.0"]
        );
    }
}
