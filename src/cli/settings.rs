//! From raw arguments to engine settings (the second stage of argument handling): validation that
//! needs no I/O happens here, so a usage error (exit 2) is raised before anything is read.

use std::path::{Path, PathBuf};

use crate::copy::ExecOptions;
use crate::error::Error;
use crate::ops::{CopySettings, OnSparseReject, Policies};
use crate::plan::PlanOptions;
use crate::platform;
use crate::reference::ImageRef;
use crate::select::{Attestations, Selection, Unbound};
use crate::transport::registry::RegistryOptions;
use crate::transport::registry::credentials;

use super::args::{AttestationsArg, CopyArgs, OnSparseRejectArg, UnboundArg};

pub struct CopyCommand {
    pub source: ImageRef,
    pub destination: ImageRef,
    pub settings: CopySettings,
    /// Per-host limits for the run's sessions (`--max-requests`).
    pub limits: crate::transport::registry::Limits,
}

/// `--max-requests` for every host, and the config's `registries:` where it lists one.
pub fn limits(
    max_requests: u32,
    hosts: &std::collections::HashMap<String, crate::transport::registry::HostLimits>,
) -> crate::transport::registry::Limits {
    crate::transport::registry::Limits {
        default: crate::transport::registry::HostLimits {
            max_requests: Some(max_requests as usize),
            requests_per_second: None,
        },
        hosts: hosts.clone(),
    }
}

pub fn resolve_copy(args: &CopyArgs, dry_run: bool) -> Result<CopyCommand, Error> {
    let source: ImageRef = args
        .source
        .parse()
        .map_err(|e| Error::Usage(format!("source: {e}")))?;
    let destination: ImageRef = args
        .destination
        .parse()
        .map_err(|e| Error::Usage(format!("destination: {e}")))?;
    let platforms =
        platform::parse_list(&args.platforms).map_err(|e| Error::Usage(e.to_string()))?;
    if !args.platforms.is_empty() && platforms.is_empty() {
        return Err(Error::Usage(
            "--platform is empty: name at least one os/arch".into(),
        ));
    }
    let selection = if args.all_platforms {
        Selection::everything()
    } else {
        Selection {
            platforms: (!platforms.is_empty()).then_some(platforms),
            attestations: match args.attestations {
                AttestationsArg::Bound => Attestations::Bound,
                AttestationsArg::All => Attestations::All,
                AttestationsArg::None => Attestations::None,
            },
            unbound: match args.unbound {
                UnboundArg::Keep => Unbound::Keep,
                UnboundArg::Drop => Unbound::Drop,
            },
            ..Selection::default()
        }
    };
    let jobs = args.jobs as usize;
    Ok(CopyCommand {
        limits: limits(args.max_requests, &Default::default()),
        source,
        destination,
        settings: CopySettings {
            plan: PlanOptions {
                selection,
                skip_missing_platforms: args.skip_missing_platforms,
                jobs,
                delivered: None,
                memo: crate::transport::RunMemo::new(),
                referrers: crate::referrers::ReferrerOptions {
                    referrers: !args.no_referrers,
                    signatures: !args.no_signatures,
                    types: args.referrers_type.clone(),
                },
            },
            exec: ExecOptions {
                jobs,
                retry_times: args.retry_times,
            },
            on_sparse_reject: Policies::new(
                args.on_sparse_reject
                    .iter()
                    .map(|p| match p {
                        OnSparseRejectArg::Report => OnSparseReject::Report,
                        OnSparseRejectArg::Complete => OnSparseReject::Complete,
                        OnSparseRejectArg::Required => OnSparseReject::Required,
                        OnSparseRejectArg::Strip => OnSparseReject::Strip,
                    })
                    .collect(),
            ),
            dry_run: dry_run || args.dry_run,
            state: args.state.clone(),
            source: timed(
                side(&args.registries, Side::Source, args.retry_times)?,
                args.timeout,
            ),
            destination: timed(
                side(&args.registries, Side::Destination, args.retry_times)?,
                args.timeout,
            ),
        },
    })
}

enum Side {
    Source,
    Destination,
}

/// The registry options of one side from the shared flags.
fn side(
    flags: &super::args::RegistryFlags,
    side: Side,
    retry_times: u32,
) -> Result<RegistryOptions, Error> {
    let (creds, tls_verify, dir, creds_flag, dir_flag) = match side {
        Side::Source => (
            &flags.src_creds,
            flags.src_tls_verify,
            &flags.src_cert_dir,
            "--src-creds",
            "--src-cert-dir",
        ),
        Side::Destination => (
            &flags.dest_creds,
            flags.dest_tls_verify,
            &flags.dest_cert_dir,
            "--dest-creds",
            "--dest-cert-dir",
        ),
    };
    Ok(RegistryOptions {
        authfile: authfile(flags.authfile.as_deref())?,
        cert_dir: cert_dir(dir.as_deref(), dir_flag)?,
        ..registry_options(creds.as_deref(), tls_verify, retry_times, creds_flag)?
    })
}

/// Credentials and TLS for one side. `flag` (`--src-creds`/`--dest-creds`) names the side in
/// messages. `USER` without `:PASS` reads the password from the terminal without echo, and is a
/// usage error when stdin is not a terminal (a script must not hang on a prompt).
fn registry_options(
    creds: Option<&str>,
    tls_verify: bool,
    retry_times: u32,
    flag: &str,
) -> Result<RegistryOptions, Error> {
    let credentials = match creds {
        None => None,
        Some(c) => Some(
            credentials::creds_from_flag(c, flag, |user| {
                use std::io::IsTerminal as _;
                std::io::stdin()
                    .is_terminal()
                    .then(|| rpassword::prompt_password(format!("password for {user} ({flag}): ")))
            })
            .map_err(|e| Error::Usage(e.0))?,
        ),
    };
    Ok(RegistryOptions {
        credentials,
        tls_verify,
        retry_times,
        side: match flag {
            f if f.starts_with("--src") => crate::transport::Side::Source,
            f if f.starts_with("--dest") => crate::transport::Side::Destination,
            _ => crate::transport::Side::Single,
        },
        ..RegistryOptions::default()
    })
}

/// The one registry of `inspect` and `verify`.
pub fn one_registry(flags: &super::args::ReadFlags) -> Result<RegistryOptions, Error> {
    let options = RegistryOptions {
        authfile: authfile(flags.authfile.as_deref())?,
        cert_dir: cert_dir(flags.cert_dir.as_deref(), "--cert-dir")?,
        ..registry_options(
            flags.creds.as_deref(),
            flags.tls_verify,
            flags.retry_times,
            "--creds",
        )?
    };
    Ok(timed(options, flags.timeout))
}

/// `--timeout`, for the transport.
pub fn timed(options: RegistryOptions, timeout: std::time::Duration) -> RegistryOptions {
    RegistryOptions { timeout, ..options }
}

/// `--authfile FILE`: it must exist (a typo must not silently mean "no credentials").
fn authfile(path: Option<&Path>) -> Result<Option<PathBuf>, Error> {
    match path {
        Some(p) if !p.is_file() => Err(Error::Usage(format!(
            "--authfile {}: no such file",
            p.display()
        ))),
        p => Ok(p.map(Path::to_path_buf)),
    }
}

/// `--src-cert-dir`/`--dest-cert-dir DIR`: it must be a directory.
fn cert_dir(path: Option<&Path>, flag: &str) -> Result<Option<PathBuf>, Error> {
    match path {
        Some(p) if !p.is_dir() => Err(Error::Usage(format!(
            "{flag} {}: not a directory",
            p.display()
        ))),
        p => Ok(p.map(Path::to_path_buf)),
    }
}

/// `sync`: the config, read and validated (exit 2 on any problem), and the run's settings.
pub fn resolve_sync(
    args: &super::args::SyncArgs,
) -> Result<(crate::config::Config, crate::sync::SyncSettings), Error> {
    let shard = match &args.shard {
        None => None,
        Some(s) => {
            let parsed = s.split_once('/').and_then(|(k, n)| {
                Some((k.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
            });
            match parsed {
                Some((k, n)) if n > 0 && k < n => Some((k, n)),
                _ => {
                    return Err(Error::Usage(format!(
                        "--shard {s:?}: expected K/N with 0 <= K < N, e.g. 0/4 (K is this worker's index)"
                    )));
                }
            }
        }
    };
    let config = crate::config::load(&args.config)?;
    Ok((
        config,
        crate::sync::SyncSettings {
            dry_run: args.dry_run,
            fail_fast: args.fail_fast,
            state: args.state.clone(),
            shard,
            jobs: args.jobs as usize,
            parallel_images: args.parallel_images as usize,
            retry_times: args.retry_times,
            source: timed(
                side(&args.registries, Side::Source, args.retry_times)?,
                args.timeout,
            ),
            destination: timed(
                side(&args.registries, Side::Destination, args.retry_times)?,
                args.timeout,
            ),
        },
    ))
}

/// `inventory`: the locations, each with whether it means all of its tags.
pub fn resolve_inventory(
    args: &super::args::InventoryArgs,
) -> Result<(Vec<(ImageRef, bool)>, RegistryOptions), Error> {
    let mut out = Vec::new();
    for l in &args.locations {
        let r = l
            .parse::<ImageRef>()
            .map_err(|e| Error::Usage(e.to_string()))?;
        let all_tags = match &r {
            ImageRef::Registry(reg) => {
                // The parser fills in `latest`; only a tag or digest the user wrote narrows it.
                let tail = l.rsplit('/').next().unwrap_or("");
                reg.digest.is_none() && !tail.contains(':')
            }
            ImageRef::Layout(x) | ImageRef::Archive(x) => x.target.is_none(),
        };
        out.push((r, all_tags));
    }
    let options = registry_options(args.creds.as_deref(), args.tls_verify, 3, "--creds")?;
    Ok((out, timed(options, args.timeout)))
}
