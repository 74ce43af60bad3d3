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
    /// Print a shell completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

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
    Report,
    Complete,
    Strip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Text,
    Json,
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
    /// A requested platform the index lacks is a warning, not an error
    #[arg(long)]
    pub skip_missing_platforms: bool,
    /// What to do when the destination refuses the sparse index
    #[arg(long, value_enum, default_value = "report")]
    pub on_sparse_reject: OnSparseRejectArg,
    /// Plan only: read the source, HEAD the destination, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Concurrent transfers
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub jobs: u32,
    /// Retries of a failed request (connection error, 408, 429, 5xx)
    #[arg(long, default_value_t = 3)]
    pub retry_times: u32,
    /// The final report on stdout
    #[arg(long, value_enum, default_value = "text")]
    pub format: FormatArg,
    /// Also write the JSON report to FILE
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Credentials for the source registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub src_creds: Option<String>,
    /// Credentials for the destination registry
    #[arg(long, value_name = "USER[:PASS]")]
    pub dest_creds: Option<String>,
    /// Verify the source registry's TLS certificate (=false allows plain http)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub src_tls_verify: bool,
    /// Verify the destination registry's TLS certificate (=false allows plain http)
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub dest_tls_verify: bool,
    /// Print errors only
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more about what happens
    #[arg(short, long)]
    pub verbose: bool,
}
