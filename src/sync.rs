//! `mirror sync`: every (image, tag) pair of a config, copied one after another with the same
//! engine as `copy`, reported together.
//!
//! Tags are resolved first (a `{regex, latest}` entry lists the source repository's tags), then
//! the pairs are partitioned by `--shard K/N` with a stable hash, so N workers split one config
//! without talking to each other. An image whose destination tag already has the source digest and
//! every selected child is `upToDate` after a few HEAD requests (see [`crate::plan::plan`]).
//! OCI layout and archive destinations are locked for the whole run, so two syncs never write one
//! layout at once.

use std::collections::BTreeSet;
use std::fs::File;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::config::{Config, ImageJob, Tags, newest_first};
use crate::copy::{Events, ExecOptions};
use crate::error::Error;
use crate::ops::{self, CopySettings};
use crate::plan::PlanOptions;
use crate::reference::{ImageRef, Target};
use crate::report::{FailedImage, ImageResult, Outcome, Summary, SyncReport};
use crate::transport::registry::RegistryOptions;

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub dry_run: bool,
    pub fail_fast: bool,
    /// `--state FILE`: incremental bundles (see [`crate::bundle`]).
    pub state: Option<PathBuf>,
    /// `(K, N)`: this worker takes the pairs whose stable hash is K modulo N.
    pub shard: Option<(u32, u32)>,
    pub jobs: usize,
    pub retry_times: u32,
    pub source: RegistryOptions,
    pub destination: RegistryOptions,
}

/// The stable shard of a pair: the same on every machine and run.
pub fn shard_of(source: &str, destination: &str, n: u32) -> u32 {
    let h = Sha256::digest(format!("{source}\n{destination}").as_bytes());
    let v = u64::from_be_bytes(h[..8].try_into().expect("8 bytes"));
    (v % n as u64) as u32
}

/// Run a whole config.
pub async fn sync(
    opener: &dyn crate::transport::Opener,
    config: &Config,
    settings: &SyncSettings,
    events: Arc<dyn Events>,
) -> Result<SyncReport, Error> {
    let _locks = if settings.dry_run {
        vec![]
    } else {
        lock_destinations(config)?
    };
    let mut report = SyncReport {
        version: 1,
        images: vec![],
        summary: Summary::default(),
    };
    'jobs: for job in &config.images {
        let targets = match resolve_tags(opener, job, settings).await {
            Ok(t) => t,
            Err(e) => {
                report.summary.failed += 1;
                report.images.push(ImageResult::Failed(FailedImage {
                    version: 1,
                    source: job.source.to_string(),
                    destination: job.destination.to_string(),
                    dry_run: settings.dry_run,
                    exit_code: e.exit_code().code(),
                    error: format!("{}:{}: {e}", config.path.display(), job.line),
                }));
                if settings.fail_fast {
                    break;
                }
                continue;
            }
        };
        for target in targets {
            let src = job.source_for(&target);
            let dst = job.destination_for(&target);
            if let Some((k, n)) = settings.shard
                && shard_of(&src.to_string(), &dst.to_string(), n) != k
            {
                report.summary.other_shards += 1;
                continue;
            }
            let copy_settings = CopySettings {
                plan: PlanOptions {
                    selection: job.selection.clone(),
                    skip_missing_platforms: job.skip_missing_platforms,
                    jobs: settings.jobs,
                    delivered: None,
                    referrers: crate::referrers::ReferrerOptions {
                        referrers: job.referrers,
                        signatures: job.signatures,
                        types: job.referrer_types.clone(),
                    },
                },
                exec: ExecOptions {
                    jobs: settings.jobs,
                    retry_times: settings.retry_times,
                },
                on_sparse_reject: job.on_sparse_reject,
                dry_run: settings.dry_run,
                state: settings.state.clone(),
                source: settings.source.clone(),
                destination: settings.destination.clone(),
            };
            match ops::copy_image(opener, &src, &dst, &copy_settings, events.clone()).await {
                Ok(r) => {
                    match r.index.outcome {
                        Outcome::UpToDate => report.summary.up_to_date += 1,
                        Outcome::Rejected => report.summary.rejected += 1,
                        Outcome::Planned => report.summary.planned += 1,
                        _ => report.summary.copied += 1,
                    }
                    report.images.push(ImageResult::Done(Box::new(r)));
                }
                Err(Error::Interrupted) => return Err(Error::Interrupted),
                Err(e) => {
                    report.summary.failed += 1;
                    report.images.push(ImageResult::Failed(FailedImage {
                        version: 1,
                        source: src.to_string(),
                        destination: dst.to_string(),
                        dry_run: settings.dry_run,
                        exit_code: e.exit_code().code(),
                        error: crate::error::chain(&e),
                    }));
                    if settings.fail_fast {
                        break 'jobs;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// The tags (or digest) of one job, newest first for a filter.
async fn resolve_tags(
    opener: &dyn crate::transport::Opener,
    job: &ImageJob,
    settings: &SyncSettings,
) -> Result<Vec<Target>, Error> {
    Ok(match &job.tags {
        Tags::List(list) => list.iter().map(|t| Target::Tag(t.clone())).collect(),
        Tags::Digest(d) => vec![Target::Digest(d.clone())],
        Tags::AsGiven => vec![match &job.source {
            ImageRef::Registry(r) => r.target(),
            ImageRef::Layout(l) | ImageRef::Archive(l) => match &l.target {
                Some(t) => t.clone(),
                None => {
                    return Err(Error::Usage(format!(
                        "{}: name the image (oci:PATH:NAME) or give `tags`",
                        job.source
                    )));
                }
            },
        }],
        Tags::Filter { regex, latest } => {
            let opened = opener
                .open(&job.source, false, &settings.source)
                .map_err(|e| Error::transport(format!("opening {}", job.source), e))?;
            let mut tags: Vec<String> = opened
                .transport
                .list_tags()
                .await
                .map_err(|e| Error::transport(format!("listing the tags of {}", job.source), e))?
                .into_iter()
                .filter(|t| regex.is_match(t))
                .collect();
            newest_first(&mut tags);
            if let Some(n) = latest {
                tags.truncate(*n);
            }
            if tags.is_empty() {
                return Err(Error::NotFound(format!(
                    "no tag of {} matches the regex {}",
                    job.source,
                    regex.as_str()
                )));
            }
            tags.into_iter().map(Target::Tag).collect()
        }
    })
}

/// Lock every layout or archive destination for the run (an exclusive `flock` on a lock file).
fn lock_destinations(config: &Config) -> Result<Vec<File>, Error> {
    let mut paths = BTreeSet::new();
    for job in &config.images {
        match &job.destination {
            ImageRef::Layout(l) => {
                paths.insert(l.path.join(crate::transport::layout::SYNC_LOCK_FILE));
            }
            ImageRef::Archive(l) => {
                let mut p = l.path.clone().into_os_string();
                p.push(crate::transport::layout::SYNC_LOCK_FILE);
                paths.insert(PathBuf::from(p));
            }
            ImageRef::Registry(_) => {}
        }
    }
    let mut locks = Vec::new();
    for path in paths {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::Io {
                what: "cannot create",
                path: parent.to_path_buf(),
                source: e,
            })?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Io {
                what: "cannot open the lock file",
                path: path.clone(),
                source: e,
            })?;
        match file.try_lock() {
            Ok(()) => locks.push(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::Locked(path));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::Io {
                    what: "cannot lock",
                    path,
                    source: e,
                });
            }
        }
    }
    Ok(locks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_cover_everything() {
        let pairs: Vec<(String, String)> = (0..40)
            .map(|i| {
                (
                    format!("docker://a/img{i}:v1"),
                    format!("docker://b/img{i}:v1"),
                )
            })
            .collect();
        let mut seen = 0;
        for k in 0..3 {
            seen += pairs.iter().filter(|(s, d)| shard_of(s, d, 3) == k).count();
        }
        assert_eq!(seen, pairs.len());
        assert_eq!(shard_of("x", "y", 7), shard_of("x", "y", 7));
        assert!(
            (0..3).all(|k| pairs.iter().any(|(s, d)| shard_of(s, d, 3) == k)),
            "40 pairs reach every shard"
        );
    }
}
