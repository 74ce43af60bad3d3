//! From raw arguments to engine settings (the second stage of argument handling): validation that
//! needs no I/O happens here, so a usage error (exit 2) is raised before anything is read.

use crate::copy::ExecOptions;
use crate::error::Error;
use crate::ops::{CopySettings, OnSparseReject};
use crate::plan::PlanOptions;
use crate::platform;
use crate::reference::ImageRef;
use crate::select::{Attestations, Selection, Unbound};
use crate::transport::registry::RegistryOptions;

use super::args::{AttestationsArg, CopyArgs, OnSparseRejectArg, UnboundArg};

pub struct CopyCommand {
    pub source: ImageRef,
    pub destination: ImageRef,
    pub settings: CopySettings,
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
        }
    };
    let jobs = args.jobs as usize;
    Ok(CopyCommand {
        source,
        destination,
        settings: CopySettings {
            plan: PlanOptions {
                selection,
                skip_missing_platforms: args.skip_missing_platforms,
                jobs,
            },
            exec: ExecOptions {
                jobs,
                retry_times: args.retry_times,
            },
            on_sparse_reject: match args.on_sparse_reject {
                OnSparseRejectArg::Report => OnSparseReject::Report,
                OnSparseRejectArg::Complete => OnSparseReject::Complete,
                OnSparseRejectArg::Strip => OnSparseReject::Strip,
            },
            dry_run: dry_run || args.dry_run,
            source: registry_options(
                args.src_creds.as_deref(),
                args.src_tls_verify,
                args.retry_times,
                "--src-creds",
            )?,
            destination: registry_options(
                args.dest_creds.as_deref(),
                args.dest_tls_verify,
                args.retry_times,
                "--dest-creds",
            )?,
        },
    })
}

fn registry_options(
    creds: Option<&str>,
    tls_verify: bool,
    retry_times: u32,
    flag: &str,
) -> Result<RegistryOptions, Error> {
    let credentials = match creds {
        None => None,
        Some(c) => {
            let (user, pass) = c.split_once(':').unwrap_or((c, ""));
            if user.is_empty() {
                return Err(Error::Usage(format!(
                    "{flag}: the user name is empty (expected USER[:PASS])"
                )));
            }
            Some((user.to_string(), pass.to_string()))
        }
    };
    Ok(RegistryOptions {
        credentials,
        tls_verify,
        retry_times,
    })
}
