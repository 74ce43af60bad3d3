//! The command line, as clap sees it. These raw structs are turned into engine settings in
//! [`super::settings`]; the engine never sees clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "mirror",
    version,
    about = "Mirror container images, copying only the platforms you need and keeping the index digest",
    long_about = "Mirror container images between registries and OCI layouts. From a multi-platform image, \
copy only the platforms a site runs, then push the original index byte for byte so its digest and the \
signatures over it survive (a sparse index). When a registry refuses a sparse index, mirror says exactly \
what happened and what the alternatives cost.",
    after_help = "Examples:\n  mirror copy --platform linux/amd64,linux/arm64 docker.io/library/alpine:3.20 docker://mirror.internal:5000/library/alpine:3.20\n  mirror copy --platform linux/amd64 quay.io/prometheus/node-exporter:v1.8.0 oci:/media/airgap/layout:node-exporter-v1.8.0\n  mirror plan --platform linux/arm64 alpine:3.20 docker://127.0.0.1:5000/alpine:3.20\n\nExit codes: 0 done, 1 failure, 2 usage error, 3 sparse index refused (kept children are there by digest), 130 interrupted."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy one image: an index with its selected children, or one manifest
    #[command(after_help = COPY_EXAMPLES)]
    Copy(CopyArgs),
    /// Show what `copy` would move, without writing anything (the same as `copy --dry-run`)
    #[command(after_help = PLAN_EXAMPLES)]
    Plan(CopyArgs),
    /// Show an image where it is: platforms, sizes, absent children, attestations, signatures
    ///
    /// Reads the manifest REFERENCE names and every child it lists, by digest, and prints the index as a
    /// tree: each entry with its platform, media type and the size of its blobs, attestations under
    /// the entry they attest, nested indexes as subtrees, signature and referrer tags
    /// (sha256-<hex>, sha256-<hex>.sig|.att|.sbom) under what they belong to. Children that are
    /// not at this location are marked absent, so an index copied sparse reads
    /// "sparse: 2 of 5 platforms present". Nothing is written.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Check that an image holds where it is: complete, sparse by design, or stripped from a
    /// recorded original
    ///
    /// Every entry that is there must have every manifest and blob it references, with the size
    /// its descriptor says (--deep also reads every blob and checks its digest). Entries a sparse
    /// index lists but the location does not have are reported as absent by design. An index
    /// that `--on-sparse-reject strip` pushed is checked against its original: the stored
    /// original bytes must hash to the recorded digest, each of its entries must appear in the
    /// original byte for byte, and a cosign signature tag of the original digest must name it.
    /// Signatures themselves are for cosign and notation to verify. Exit 0 when it holds, 1 with
    /// each problem named.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Mirror every image of a config file (the nightly air-gap job)
    #[command(after_help = SYNC_EXAMPLES)]
    Sync(SyncArgs),
    /// List the blobs and manifests a registry or layout holds (the format of a --state file)
    #[command(after_help = INVENTORY_EXAMPLES)]
    Inventory(InventoryArgs),
    /// Print a shell completion script
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

const VERIFY_EXAMPLES: &str = "Examples:
  mirror verify docker://mirror.internal:5000/library/alpine:3.20
  # read every blob and check its digest too
  mirror verify --deep oci:/media/airgap/layout:alpine-3.20
  mirror verify --format json docker://127.0.0.1:5000/app:v1 | jq .problems";

const INSPECT_EXAMPLES: &str = "Examples:
  mirror inspect docker.io/library/alpine:3.20
  # what a sparse copy left out (it reads: sparse: 2 of 5 platforms present)
  mirror inspect oci:/media/airgap/layout:alpine-3.20
  # full digests, for scripts
  mirror inspect --format json mirror.internal:5000/library/alpine:3.20 | jq -r '.entries[].digest'

Absent children are reported, not errors: the exit code is 0 whether the index is complete or sparse, 1 when the reference is not there.";

const SYNC_EXAMPLES: &str = "Examples:
  mirror sync --config /etc/mirror/sync.yaml
  mirror sync --config sync.yaml --dry-run            # the plans of every image, nothing written
  mirror sync --config sync.yaml --format json --report /var/log/mirror/last.json
  mirror sync --config sync.yaml --shard $JOB_COMPLETION_INDEX/4   # one of 4 workers

Exit codes: 0 all done, 1 any image failed, 2 config error (nothing copied), 3 none failed but some sparse indexes were refused.";

const INVENTORY_EXAMPLES: &str = "Examples:
  # rebuild the state of incremental bundles from the far side (every tag of each repository)
  mirror inventory --format json docker://registry.internal/app docker://registry.internal/db > state.json
  # one tag only, or a layout
  mirror inventory docker://registry.internal/app:v2 oci:/media/airgap/layout

A registry repository without a tag or digest means all its tags; a layout without a name, all its images.";

const COMPLETIONS_EXAMPLES: &str = "Examples:
  mirror completions bash > ~/.local/share/bash-completion/completions/mirror
  mirror completions zsh > ~/.zfunc/_mirror        # with fpath+=(~/.zfunc) before compinit
  mirror completions fish > ~/.config/fish/completions/mirror.fish
  mirror completions elvish >> ~/.config/elvish/rc.elv
  mirror completions powershell >> $PROFILE

Pre-generated scripts are in completions/ and man pages in man/ of the source tree.";

const COPY_EXAMPLES: &str = "Examples:
  # two platforms of a multi-platform image, index digest kept (sparse)
  mirror copy --platform linux/amd64,linux/arm64 docker.io/library/alpine:3.20 docker://mirror.internal:5000/library/alpine:3.20
  # everything, byte for byte
  mirror copy --all-platforms quay.io/prometheus/node-exporter:v1.8.0 docker://mirror.internal:5000/prometheus/node-exporter:v1.8.0
  # registry -> OCI layout on removable media (air gap)
  mirror copy --platform linux/amd64 alpine:3.20 oci:/media/airgap/layout:alpine-3.20
  # a registry that refuses sparse indexes: copy the rest too, keeping the digest
  mirror copy --platform linux/amd64 --on-sparse-reject complete alpine:3.20 docker://harbor.internal/library/alpine:3.20

References: docker://HOST[:PORT]/REPO[:TAG|@DIGEST], HOST/REPO:TAG, REPO:TAG (docker.io), oci:PATH[:TAG], oci-archive:PATH.tar[:TAG]";

const PLAN_EXAMPLES: &str = "Examples:
  mirror plan --platform linux/amd64,linux/arm64 alpine:3.20 docker://mirror.internal:5000/library/alpine:3.20
  mirror plan --format json --platform linux/arm64 alpine:3.20 oci:/media/airgap/layout:alpine-3.20 | jq .blobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttestationsArg {
    Bound,
    All,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnboundArg {
    Keep,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnSparseRejectArg {
    /// Stop (exit 3): the kept children stay by digest; the report prices the alternatives
    Report,
    /// Copy the dropped entries too and push the original index (digest kept)
    Complete,
    /// Copy only the entries the destination names, until it accepts the original index
    Required,
    /// Push an index of the kept entries (new digest), tied to the original for `mirror verify`
    Strip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressArg {
    /// Bars when stderr is a terminal, else one line per finished item
    Auto,
    /// Bars even when stderr is not a terminal
    Always,
    /// One line per finished item
    Never,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image reference: docker://HOST/REPO:TAG, REPO:TAG, oci:PATH[:TAG], oci-archive:PATH.tar[:TAG]
    pub reference: String,
    /// Output: a tree (text) or JSON with full digests
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    #[command(flatten)]
    pub read: ReadFlags,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Image reference: docker://HOST/REPO:TAG, REPO:TAG, oci:PATH[:TAG], oci-archive:PATH.tar[:TAG]
    pub reference: String,
    /// Also read every blob and check its digest
    #[arg(long)]
    pub deep: bool,
    /// Output: a summary (text) or JSON
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    #[command(flatten)]
    pub read: ReadFlags,
}

/// How `inspect` and `verify` read their one location: credentials and TLS for its registry,
/// concurrency, retries, the timeout, logging.
#[derive(Debug, Args)]
pub struct ReadFlags {
    /// Credentials for the registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman's auth.json and docker's config.json
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// CAs (*.crt) and a client certificate (*.cert + *.key) for the registry, instead of certs.d
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
    /// Verify the registry's TLS certificate (=false allows plain http)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// Concurrent manifest reads
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Retries of a failed request (connection error, 408, 429, 5xx)
    #[arg(long, default_value_t = 3)]
    pub retry_times: u32,
    /// A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Source image reference
    pub source: String,
    /// Destination image reference
    pub destination: String,

    /// Platforms to copy, os/arch[/variant] (repeatable, comma-separated); default: all
    #[arg(
        long = "platform",
        value_name = "LIST",
        conflicts_with = "all_platforms"
    )]
    pub platforms: Vec<String>,
    /// Copy every entry of the index (a full, non-sparse copy)
    #[arg(long)]
    pub all_platforms: bool,
    /// Index entries that attest another entry: follow it (bound), always, or never
    #[arg(long, value_enum, default_value = "bound")]
    pub attestations: AttestationsArg,
    /// Index entries with no platform that attest nothing
    #[arg(long, value_enum, default_value = "keep")]
    pub unbound: UnboundArg,
    /// Also copy the OCI 1.1 referrers (signatures, SBOMs) of every copied manifest (default)
    #[arg(long, overrides_with = "no_referrers")]
    pub referrers: bool,
    /// Do not copy referrers
    #[arg(long)]
    pub no_referrers: bool,
    /// Only referrers of this artifact type (repeatable), e.g. application/vnd.dev.sigstore.bundle.v0.3+json
    #[arg(long, value_name = "TYPE")]
    pub referrers_type: Vec<String>,
    /// Also copy cosign-style sha256-<hex>.sig/.att/.sbom tags of copied manifests (default)
    #[arg(long, overrides_with = "no_signatures")]
    pub signatures: bool,
    /// Do not copy cosign-style signature tags
    #[arg(long)]
    pub no_signatures: bool,
    /// A requested platform the index lacks is a warning, not an error
    #[arg(long)]
    pub skip_missing_platforms: bool,
    /// What to do when the destination refuses the sparse index; a list is tried in order
    /// (required,strip)
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "report",
        value_name = "POLICY"
    )]
    pub on_sparse_reject: Vec<OnSparseRejectArg>,
    /// Plan only: read the source, HEAD the destination, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Incremental bundle: leave out the blobs FILE lists (delivered by earlier bundles), then add
    /// what this bundle delivers to FILE. The destination must be oci: or oci-archive:
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Concurrent transfers
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Retries of a failed request (connection error, 408, 429, 5xx)
    #[arg(long, default_value_t = 3)]
    pub retry_times: u32,
    /// Requests in flight to one registry host, blob transfers included
    #[arg(long, value_name = "N", default_value_t = crate::transport::registry::DEFAULT_MAX_REQUESTS as u32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_requests: u32,
    /// A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// The final report on stdout
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print errors only (the report too is left out with --format text)
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log requests and decisions on stderr (MIRROR_LOG=mirror=trace for more)
    #[arg(short, long)]
    pub verbose: bool,
    /// Progress on stderr: bars on a terminal (auto), bars always, or plain lines (never)
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub progress: ProgressArg,
    #[command(flatten)]
    pub registries: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The sync config (YAML)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Plan every image: read sources, HEAD destinations, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Stop at the first image that fails (default: keep going and report every failure)
    #[arg(long)]
    pub fail_fast: bool,
    /// Incremental bundles: leave out the blobs FILE lists, then add what was delivered to FILE
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Take only this worker's share K of N of the (image, tag) pairs (stable across runs)
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Concurrent transfers within an image
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// (image, tag) pairs copied at once, sharing one connection pool per registry
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub parallel_images: u32,
    /// Retries of a failed request (connection error, 408, 429, 5xx)
    #[arg(long, default_value_t = 3)]
    pub retry_times: u32,
    /// Requests in flight to one registry host, blob transfers included, for hosts the config's
    /// `registries:` does not limit
    #[arg(long, value_name = "N", default_value_t = crate::transport::registry::DEFAULT_MAX_REQUESTS as u32, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_requests: u32,
    /// A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
    /// The final report on stdout
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Print errors only
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what happens
    #[arg(short, long)]
    pub verbose: bool,
    /// Progress on stderr: an overall bar and a line per image in flight on a terminal (auto),
    /// always, or one plain line per finished tag (never)
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub progress: ProgressArg,
    #[command(flatten)]
    pub registries: RegistryFlags,
}

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Registry repositories (all tags, or REPO:TAG), OCI layouts or archives
    #[arg(required = true, value_name = "LOCATION")]
    pub locations: Vec<String>,
    /// text: counts and sizes; json: the state-file format
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Credentials for the registries
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// Verify the registries' TLS certificates (=false allows plain http)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: bool,
    /// A request that receives no byte for this long fails (and is retried); a slow but moving transfer is never cut (60, 30s, 2m)
    #[arg(long, value_name = "DURATION", default_value = "60", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,
}

/// Credentials and TLS for the source and destination registries (shared by copy, plan and sync).
#[derive(Debug, Args)]
#[command(next_help_heading = "Registries")]
pub struct RegistryFlags {
    /// Credentials for the source registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub src_creds: Option<String>,
    /// Credentials for the destination registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub dest_creds: Option<String>,
    /// Auth file to read credentials from instead of $REGISTRY_AUTH_FILE, podman's auth.json and docker's config.json
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// CAs (*.crt) and a client certificate (*.cert + *.key) for the source registry, instead of certs.d
    #[arg(long, value_name = "DIR")]
    pub src_cert_dir: Option<PathBuf>,
    /// CAs (*.crt) and a client certificate (*.cert + *.key) for the destination registry, instead of certs.d
    #[arg(long, value_name = "DIR")]
    pub dest_cert_dir: Option<PathBuf>,
    /// Verify the source registry's TLS certificate (=false allows plain http)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub src_tls_verify: bool,
    /// Verify the destination registry's TLS certificate (=false allows plain http)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dest_tls_verify: bool,
}

/// `--timeout`: whole seconds (`60`), or with a unit (`30s`, `2m`).
pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (number, unit) = match t.strip_suffix('s') {
        Some(n) => (n, 1),
        None => match t.strip_suffix('m') {
            Some(n) => (n, 60),
            None => (t, 1),
        },
    };
    match number.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(std::time::Duration::from_secs(n * unit)),
        _ => Err(format!(
            "{s:?} is not a timeout: expected seconds (60), or 30s, 2m (more than zero)"
        )),
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::parse_timeout;
    use std::time::Duration;

    #[test]
    fn timeouts_are_seconds_or_minutes() {
        assert_eq!(parse_timeout("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        for bad in ["0", "", "1h", "-5", "2.5s", "m"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
