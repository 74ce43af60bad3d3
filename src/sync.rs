//! `mirror sync`: every (image, tag) pair of a config, copied with the same engine as `copy`,
//! several at once (`--parallel-images`), reported together in config order.
//!
//! Tags are resolved first (a `{regex, latest}` entry lists the source repository's tags), then
//! the pairs are partitioned by `--shard K/N` with a stable hash, so N workers split one config
//! without talking to each other. An image whose destination tag already has the source digest and
//! every selected child is `upToDate` after a few HEAD requests (see [`crate::plan::plan`]).
//! OCI layout and archive destinations are locked for the whole run, so two syncs never write one
//! layout at once.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;

use sha2::{Digest as _, Sha256};

use crate::config::{Config, ImageJob, Tags, newest_first};
use crate::copy::{Events, ExecOptions};
use crate::error::Error;
use crate::ops::{self, CopySettings};
use crate::plan::PlanOptions;
use crate::reference::{ImageRef, Target};
use crate::report::{FailedImage, ImageResult, Outcome, Report, Summary, SyncReport};
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
    /// (image, tag) pairs in flight at once (`--parallel-images`).
    pub parallel_images: usize,
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

/// What a sync tells its progress display, beside the copy engine's [`Events`] (which it receives
/// per image through [`SyncProgress::event`]). Every method has a default that does nothing.
pub trait SyncProgress: Send + Sync {
    /// The (image, tag) pairs this run copies, once the tags are resolved.
    fn total(&self, _pairs: usize) {}
    /// Pair `id` (its position in the report) starts.
    fn started(&self, _id: usize, _source: &str) {}
    /// An engine event of pair `id`.
    fn event(&self, _id: usize, _event: &crate::copy::Event<'_>) {}
    /// Pair `id` ended: `outcome` is the report's word (`pushed`, `upToDate`, …, or `failed`).
    fn finished(&self, _id: usize, _source: &str, _outcome: &str) {}
}

/// No progress display.
pub struct NoProgress;
impl SyncProgress for NoProgress {}

/// The engine's events of one pair: to the run's sink and to the progress display.
struct PairEvents {
    id: usize,
    inner: Arc<dyn Events>,
    progress: Arc<dyn SyncProgress>,
}

impl Events for PairEvents {
    fn event(&self, event: crate::copy::Event<'_>) {
        self.progress.event(self.id, &event);
        self.inner.event(event);
    }
}

/// Run a whole config (see [`sync_with`]), without a progress display.
pub async fn sync(
    opener: &dyn crate::transport::Opener,
    config: &Config,
    settings: &SyncSettings,
    events: Arc<dyn Events>,
) -> Result<SyncReport, Error> {
    sync_with(opener, config, settings, events, Arc::new(NoProgress)).await
}

/// One position of the report.
enum Slot<'a> {
    /// A job whose tags could not be resolved.
    Unresolved(FailedImage),
    /// A pair to copy.
    Pair {
        job: &'a ImageJob,
        src: ImageRef,
        dst: ImageRef,
    },
}

/// Run a whole config: resolve every job's tags (`parallel_images` at a time), then copy the
/// (image, tag) pairs of this shard with `parallel_images` in flight, all through the one
/// `opener` (one session per registry host) and one [`crate::transport::RunMemo`]. The report
/// keeps config order whatever order the pairs end in. A failure never stops the other pairs;
/// with `fail_fast` nothing new starts after one, and what is in flight finishes. Pairs into one
/// `oci-archive:` take turns (each repacks the archive); pairs into one `oci:` layout run together
/// (the layout store serializes its `index.json` edits).
pub async fn sync_with(
    opener: &dyn crate::transport::Opener,
    config: &Config,
    settings: &SyncSettings,
    events: Arc<dyn Events>,
    progress: Arc<dyn SyncProgress>,
) -> Result<SyncReport, Error> {
    let _locks = if settings.dry_run {
        vec![]
    } else {
        lock_destinations(config)?
    };
    let parallel = settings.parallel_images.max(1);
    // What the run learns about its sources once (tags lists, the referrers API) and every
    // image reuses.
    let memo = crate::transport::RunMemo::new();
    let mut report = SyncReport {
        version: 1,
        images: vec![],
        summary: Summary::default(),
    };

    // The tags of every job, resolved together, in config order.
    let resolved: Vec<Result<Vec<Target>, Error>> = futures::stream::iter(
        config
            .images
            .iter()
            .map(|job| resolve_tags(opener, job, settings, &memo)),
    )
    .buffered(parallel)
    .collect()
    .await;
    let mut slots: Vec<Slot> = Vec::new();
    for (job, targets) in config.images.iter().zip(resolved) {
        let targets = match targets {
            Ok(t) => t,
            Err(e) => {
                slots.push(Slot::Unresolved(FailedImage {
                    version: 1,
                    source: job.source.to_string(),
                    destination: job.destination.to_string(),
                    dry_run: settings.dry_run,
                    exit_code: e.exit_code().code(),
                    error: format!("{}:{}: {e}", config.path.display(), job.line),
                }));
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
            slots.push(Slot::Pair { job, src, dst });
        }
    }
    let unresolved = slots.iter().any(|s| matches!(s, Slot::Unresolved(_)));
    progress.total(
        slots
            .iter()
            .filter(|s| matches!(s, Slot::Pair { .. }))
            .count(),
    );

    // One turn at a time per archive destination.
    let mut archives: HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>> = HashMap::new();
    for slot in &slots {
        if let Slot::Pair {
            dst: ImageRef::Archive(l),
            ..
        } = slot
        {
            archives.entry(l.path.clone()).or_default();
        }
    }
    let stop = AtomicBool::new(settings.fail_fast && unresolved);
    let (stop, archives, memo) = (&stop, &archives, &memo);
    let mut ended: Vec<(usize, Option<Result<Report, Error>>)> = Vec::new();
    let mut running = futures::stream::iter(slots.iter().enumerate().filter_map(|(id, slot)| {
        let Slot::Pair { job, src, dst } = slot else {
            return None;
        };
        let events: Arc<dyn Events> = Arc::new(PairEvents {
            id,
            inner: events.clone(),
            progress: progress.clone(),
        });
        let progress = progress.clone();
        Some(async move {
            if stop.load(Ordering::SeqCst) {
                return (id, None);
            }
            let _turn = match dst {
                ImageRef::Archive(l) => Some(archives[&l.path].lock().await),
                _ => None,
            };
            if stop.load(Ordering::SeqCst) {
                return (id, None);
            }
            progress.started(id, &src.to_string());
            let copy_settings = copy_settings(job, settings, memo);
            let result = ops::copy_image(opener, src, dst, &copy_settings, events).await;
            let outcome = match &result {
                Ok(r) => outcome_word(r.index.outcome),
                Err(_) => "failed",
            };
            if result.is_err() && settings.fail_fast {
                stop.store(true, Ordering::SeqCst);
            }
            progress.finished(id, &src.to_string(), outcome);
            (id, Some(result))
        })
    }))
    .buffer_unordered(parallel);
    while let Some((id, result)) = running.next().await {
        if let Some(Err(Error::Interrupted)) = result {
            return Err(Error::Interrupted);
        }
        ended.push((id, result));
    }
    drop(running);
    let mut ended: HashMap<usize, Result<Report, Error>> = ended
        .into_iter()
        .filter_map(|(id, r)| Some((id, r?)))
        .collect();

    // The report, in config order; pairs that never started (fail-fast) are left out.
    for (id, slot) in slots.into_iter().enumerate() {
        match slot {
            Slot::Unresolved(f) => {
                report.summary.failed += 1;
                report.images.push(ImageResult::Failed(f));
            }
            Slot::Pair { src, dst, .. } => match ended.remove(&id) {
                None => {}
                Some(Ok(r)) => {
                    match r.index.outcome {
                        Outcome::UpToDate => report.summary.up_to_date += 1,
                        Outcome::Rejected => report.summary.rejected += 1,
                        Outcome::Planned => report.summary.planned += 1,
                        _ => report.summary.copied += 1,
                    }
                    report.images.push(ImageResult::Done(Box::new(r)));
                }
                Some(Err(e)) => {
                    report.summary.failed += 1;
                    report.images.push(ImageResult::Failed(FailedImage {
                        version: 1,
                        source: src.to_string(),
                        destination: dst.to_string(),
                        dry_run: settings.dry_run,
                        exit_code: e.exit_code().code(),
                        error: crate::error::chain(&e),
                    }));
                }
            },
        }
    }
    Ok(report)
}

/// The report's word for an outcome (`upToDate`, `pushed`, …).
fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::UpToDate => "upToDate",
        Outcome::Rejected => "rejected",
        Outcome::Planned => "planned",
        Outcome::Completed => "completed",
        Outcome::Stripped => "stripped",
        Outcome::Single => "single",
        Outcome::Pushed => "pushed",
    }
}

/// The copy settings of one job.
fn copy_settings(
    job: &ImageJob,
    settings: &SyncSettings,
    memo: &Arc<crate::transport::RunMemo>,
) -> CopySettings {
    CopySettings {
        plan: PlanOptions {
            selection: job.selection.clone(),
            skip_missing_platforms: job.skip_missing_platforms,
            jobs: settings.jobs,
            delivered: None,
            memo: memo.clone(),
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
        on_sparse_reject: job.on_sparse_reject.clone(),
        dry_run: settings.dry_run,
        state: settings.state.clone(),
        source: settings.source.clone(),
        destination: settings.destination.clone(),
    }
}

/// The tags (or digest) of one job, newest first for a filter.
async fn resolve_tags(
    opener: &dyn crate::transport::Opener,
    job: &ImageJob,
    settings: &SyncSettings,
    memo: &crate::transport::RunMemo,
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
            let mut tags: Vec<String> = memo
                .tags(opened.transport.as_ref())
                .await
                .map_err(|e| Error::transport(format!("listing the tags of {}", job.source), e))?
                .iter()
                .filter(|t| regex.is_match(t))
                .cloned()
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

    // Whole syncs on in-memory registries.

    use crate::oci::{Digest, RawManifest};
    use crate::report::ImageResult;
    use crate::testkit::{self, Call, Recorder, SparseRule, images};
    use crate::transport::Opener as _;

    fn config(yaml: &str) -> Config {
        crate::config::parse(yaml, std::path::Path::new("sync.yaml")).unwrap()
    }

    fn sync_settings() -> SyncSettings {
        SyncSettings {
            dry_run: false,
            fail_fast: false,
            state: None,
            shard: None,
            jobs: 4,
            parallel_images: 3,
            retry_times: 1,
            source: RegistryOptions::default(),
            destination: RegistryOptions::default(),
        }
    }

    const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/s390x"];

    /// Three images, each with two tags, at the source; the destination accepts sparse indexes.
    fn three_images() -> (testkit::World, Config) {
        let w = testkit::world();
        w.dst.set(|b| b.sparse = SparseRule::Accept);
        for name in ["a", "b", "c"] {
            for tag in ["1.0", "1.1"] {
                images::index(&w.src, name, tag, &THREE, true);
            }
        }
        let c = config(
            "version: 1\n\
             defaults: {platforms: [linux/amd64, linux/arm64]}\n\
             images:\n\
             - {source: docker://src.test/a, destination: docker://dst.test/m/a, tags: ['1.0', '1.1']}\n\
             - {source: docker://src.test/b, destination: docker://dst.test/m/b, tags: {regex: '^1\\.', latest: 1}}\n\
             - {source: docker://src.test/c, destination: docker://dst.test/m/c, tags: ['1.0']}\n",
        );
        (w, c)
    }

    fn outcomes(r: &SyncReport) -> Vec<String> {
        r.images
            .iter()
            .map(|i| match i {
                ImageResult::Done(r) => format!("{} {:?}", r.source, r.index.outcome),
                ImageResult::Failed(f) => format!("{} failed", f.source),
            })
            .collect()
    }

    #[tokio::test]
    async fn every_image_and_tag_is_copied_and_reported_in_config_order() {
        let (w, c) = three_images();
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(
            outcomes(&r),
            [
                "docker://src.test/a:1.0 Pushed",
                "docker://src.test/a:1.1 Pushed",
                "docker://src.test/b:1.1 Pushed",
                "docker://src.test/c:1.0 Pushed",
            ]
        );
        assert_eq!((r.summary.copied, r.summary.failed), (4, 0));
        assert_eq!(r.exit_code(), crate::error::ExitCode::Ok);
        assert_eq!(w.dst.tag("m/b", "1.1"), w.src.tag("b", "1.1"));
        assert_eq!(
            w.dst.tag("m/b", "1.0"),
            None,
            "latest: 1 takes only the newest"
        );
    }

    #[tokio::test]
    async fn a_rerun_is_up_to_date_with_no_blob_traffic_and_no_writes() {
        let (w, c) = three_images();
        sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        w.src.clear_log();
        w.dst.clear_log();
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.up_to_date, 4, "{:?}", outcomes(&r));
        assert!(w.dst.writes().is_empty());
        assert!(!w.src.log().iter().any(|c| matches!(c, Call::GetBlob(..))));
    }

    #[tokio::test]
    async fn a_repository_s_tags_are_listed_once_and_the_referrers_api_asked_once_per_run() {
        let (w, c) = three_images();
        let c = Config {
            images: [
                c.images.clone(),
                config(
                    "version: 1\n\
                     images:\n\
                     - {source: docker://src.test/b, destination: docker://dst.test/m/b, tags: {regex: '^1\\.'}}\n",
                )
                .images,
            ]
            .concat(),
            ..c
        };
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.images.len(), 6, "{:?}", outcomes(&r));
        let log = w.src.log();
        for repo in ["a", "b", "c"] {
            let lists = log
                .iter()
                .filter(|c| matches!(c, Call::ListTags(r) if r == repo))
                .count();
            assert_eq!(lists, 1, "{repo}: {log:#?}");
        }
        let probes = log
            .iter()
            .filter(|c| matches!(c, Call::Referrers(..)))
            .count();
        assert_eq!(probes, 1, "src.test has no referrers API: asked once");
    }

    /// Sign `subject` in `repo` (a cosign-style `.sig`, or `.att`) with a manifest made from
    /// `seed`; returns the signature's digest.
    fn sign(w: &testkit::World, repo: &str, subject: &Digest, suffix: &str, seed: &str) -> Digest {
        let sig = images::single(&w.src, repo, "linux/amd64", seed);
        let tag = format!("{}.{suffix}", crate::referrers::digest_tag(subject));
        w.src.put_manifest_raw(repo, &sig, Some(&tag));
        sig.digest
    }

    /// Add an SBOM referrer of `subject` at a source without the referrers API: the artifact and
    /// the `sha256-<hex>` tag index listing it (with what was listed before).
    fn add_referrer(w: &testkit::World, repo: &str, subject: &RawManifest, seed: &str) -> Digest {
        let r = images::referrer(
            &w.src,
            repo,
            subject,
            &format!("application/spdx+json; {seed}"),
        );
        let tag = crate::referrers::digest_tag(&subject.digest);
        let existing = w.src.tag(repo, &tag).and_then(|d| w.src.manifest(repo, &d));
        let mut d = r.descriptor();
        d.artifact_type = Some("application/spdx+json".into());
        let index = crate::referrers::merged_tag_index(existing.as_ref(), &[d])
            .unwrap()
            .unwrap();
        w.src.put_manifest_raw(repo, &index, Some(&tag));
        r.digest
    }

    fn count(log: &[Call], f: impl Fn(&Call) -> bool) -> usize {
        log.iter().filter(|c| f(c)).count()
    }

    #[tokio::test]
    async fn a_no_op_costs_heads_at_the_source_and_no_manifest_get() {
        let (w, c) = three_images();
        let a = w
            .src
            .manifest("a", &w.src.tag("a", "1.0").unwrap())
            .unwrap();
        sign(&w, "a", &a.digest, "sig", "signature 1");
        add_referrer(&w, "a", &a, "sbom 1");
        let first = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(first.summary.copied, 4, "{:?}", outcomes(&first));
        w.src.clear_log();
        w.dst.clear_log();

        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.up_to_date, 4, "{:?}", outcomes(&r));
        let log = w.src.log();
        assert_eq!(
            count(&log, |c| matches!(c, Call::GetManifest(..))),
            0,
            "{log:#?}"
        );
        assert_eq!(count(&log, |c| matches!(c, Call::GetBlob(..))), 0);
        // Per tag one HEAD; per repository one tags list; one probe of the referrers API for the
        // registry; one HEAD per signature or referrers tag.
        let tag_heads = count(
            &log,
            |c| matches!(c, Call::HeadManifest(_, t) if !t.starts_with("sha256-")),
        );
        let schema_heads = count(
            &log,
            |c| matches!(c, Call::HeadManifest(_, t) if t.starts_with("sha256-")),
        );
        assert_eq!((tag_heads, schema_heads), (4, 2), "{log:#?}");
        assert_eq!(count(&log, |c| matches!(c, Call::ListTags(..))), 3);
        assert_eq!(count(&log, |c| matches!(c, Call::Referrers(..))), 1);
        assert!(log.len() <= 2 * 4 + 2, "{log:#?}");
        assert!(w.dst.writes().is_empty(), "{:#?}", w.dst.writes());
    }

    #[tokio::test]
    async fn a_rerun_catches_new_and_re_signed_signatures_new_referrers_and_a_moved_destination_tag()
     {
        let (w, c) = three_images();
        let a = w
            .src
            .manifest("a", &w.src.tag("a", "1.0").unwrap())
            .unwrap();
        let sig_tag = format!("{}.sig", crate::referrers::digest_tag(&a.digest));
        let att_tag = format!("{}.att", crate::referrers::digest_tag(&a.digest));
        sign(&w, "a", &a.digest, "sig", "signature 1");
        let sbom1 = add_referrer(&w, "a", &a, "sbom 1");
        sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert!(w.dst.has_manifest("m/a", &sbom1));

        // Re-signed, a new attestation, a second referrer; someone moved a destination tag.
        let resigned = sign(&w, "a", &a.digest, "sig", "signature 2");
        let att = sign(&w, "a", &a.digest, "att", "attestation 1");
        let sbom2 = add_referrer(&w, "a", &a, "sbom 2");
        let b = w.src.tag("b", "1.1").unwrap();
        let other = images::index(&w.dst, "m/b", "1.1", &THREE[..1], false);
        assert_ne!(other.index.digest, b);
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.failed, 0, "{:?}", outcomes(&r));
        assert_eq!(w.dst.tag("m/a", &sig_tag), Some(resigned));
        assert_eq!(w.dst.tag("m/a", &att_tag), Some(att));
        assert!(w.dst.has_manifest("m/a", &sbom2));
        assert_eq!(
            w.dst.tag("m/b", "1.1"),
            Some(b),
            "the destination tag is put back"
        );
        let schema = w
            .dst
            .manifest(
                "m/a",
                &w.dst
                    .tag("m/a", &crate::referrers::digest_tag(&a.digest))
                    .unwrap(),
            )
            .unwrap();
        let listed = String::from_utf8_lossy(&schema.bytes).to_string();
        assert!(
            listed.contains(sbom1.as_str()) && listed.contains(sbom2.as_str()),
            "{listed}"
        );

        // And the run after that is a no-op again.
        w.src.clear_log();
        w.dst.clear_log();
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.up_to_date, 4, "{:?}", outcomes(&r));
        assert_eq!(
            count(&w.src.log(), |c| matches!(c, Call::GetManifest(..))),
            0
        );
        assert!(w.dst.writes().is_empty(), "{:#?}", w.dst.writes());
    }

    #[tokio::test]
    async fn with_the_referrers_api_a_new_referrer_is_caught_without_reading_the_old_ones() {
        let (w, c) = three_images();
        w.src.set(|b| b.referrers_api = true);
        let a = w
            .src
            .manifest("a", &w.src.tag("a", "1.0").unwrap())
            .unwrap();
        let one = images::referrer(&w.src, "a", &a, "application/spdx+json");
        sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert!(w.dst.has_manifest("m/a", &one.digest));
        let two = images::referrer(&w.src, "a", &a, "application/vnd.example+json");
        w.src.clear_log();
        sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert!(w.dst.has_manifest("m/a", &two.digest));
        let gets: Vec<Call> = w
            .src
            .log()
            .into_iter()
            .filter(|c| matches!(c, Call::GetManifest(..)))
            .collect();
        assert_eq!(
            gets,
            [Call::GetManifest("a".into(), two.digest.to_string())],
            "only the new referrer is read"
        );
    }

    #[tokio::test]
    async fn a_moved_source_tag_is_copied_again() {
        let (w, c) = three_images();
        sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        let moved = images::index(&w.src, "c", "1.0", &THREE[..2], false);
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.copied, 1, "{:?}", outcomes(&r));
        assert_eq!(w.dst.tag("m/c", "1.0"), Some(moved.index.digest));
    }

    #[tokio::test]
    async fn one_failing_image_does_not_stop_the_others_unless_fail_fast() {
        let (w, c) = three_images();
        let gone = w.src.tag("a", "1.1").unwrap();
        w.src.remove_manifest("a", &gone);
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.failed, 1);
        assert_eq!(r.summary.copied, 3);
        assert_eq!(r.exit_code(), crate::error::ExitCode::Failure);
        let ImageResult::Failed(f) = &r.images[1] else {
            panic!("{:?}", outcomes(&r))
        };
        assert!(f.error.contains("1.1"), "{}", f.error);
        assert_eq!(f.exit_code, 1);

        let (w, c) = three_images();
        w.src.remove_manifest("a", &w.src.tag("a", "1.0").unwrap());
        let mut s = sync_settings();
        s.fail_fast = true;
        let r = sync(&w.opener, &c, &s, Recorder::new()).await.unwrap();
        assert_eq!(outcomes(&r), ["docker://src.test/a:1.0 failed"]);
        assert!(w.dst.writes().is_empty());
    }

    /// Calls `release` once `ready` holds, yielding to the sync in between.
    async fn release_when(ready: impl Fn() -> bool, release: impl FnOnce()) {
        while !ready() {
            tokio::task::yield_now().await;
        }
        release();
    }

    #[tokio::test]
    async fn fail_fast_starts_nothing_new_and_lets_what_is_in_flight_finish() {
        let (w, c) = three_images();
        // a:1.0 is in flight (its blob downloads held) when a:1.1 fails.
        w.src.set(|b| b.hold_blob_gets = true);
        w.src.remove_manifest("a", &w.src.tag("a", "1.1").unwrap());
        let mut s = sync_settings();
        s.fail_fast = true;
        s.parallel_images = 2;
        let failed = || {
            w.src
                .log()
                .contains(&Call::HeadManifest("a".into(), "1.1".into()))
        };
        let (r, ()) = tokio::join!(
            sync(&w.opener, &c, &s, Recorder::new()),
            release_when(failed, || w.src.release())
        );
        let r = r.unwrap();
        assert_eq!(
            outcomes(&r),
            [
                "docker://src.test/a:1.0 Pushed",
                "docker://src.test/a:1.1 failed"
            ]
        );
        assert_eq!(r.exit_code(), crate::error::ExitCode::Failure);
        assert_eq!(w.dst.tag("m/b", "1.1"), None, "nothing new started");
        assert_eq!(w.dst.tag("m/c", "1.0"), None);
    }

    #[tokio::test]
    async fn pairs_in_flight_end_in_any_order_and_are_reported_in_config_order() {
        let (w, c) = three_images();
        // Hold every download until the last pair has started: all four are in flight at once.
        w.src.set(|b| b.hold_blob_gets = true);
        let mut s = sync_settings();
        s.parallel_images = 4;
        let all_started = || {
            let log = w.src.log();
            ["a", "b", "c"].iter().all(|repo| {
                log.iter()
                    .any(|c| matches!(c, Call::GetBlob(r, _) if r == repo))
            })
        };
        let (r, ()) = tokio::join!(
            sync(&w.opener, &c, &s, Recorder::new()),
            release_when(all_started, || w.src.release())
        );
        let r = r.unwrap();
        assert_eq!(
            outcomes(&r),
            [
                "docker://src.test/a:1.0 Pushed",
                "docker://src.test/a:1.1 Pushed",
                "docker://src.test/b:1.1 Pushed",
                "docker://src.test/c:1.0 Pushed",
            ]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn many_images_into_one_layout_or_archive_keep_every_entry() {
        for (kind, file) in [("oci", "layout"), ("oci-archive", "bundle.tar")] {
            let w = testkit::world();
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().join(file);
            let mut yaml =
                String::from("version: 1\ndefaults: {platforms: [linux/amd64]}\nimages:\n");
            for i in 0..10 {
                images::index(&w.src, &format!("img{i}"), "v1", &THREE, true);
                yaml.push_str(&format!(
                    "- {{source: docker://src.test/img{i}, destination: '{kind}:{}', tags: [v1]}}\n",
                    path.display()
                ));
            }
            let c = config(&yaml);
            let mut s = sync_settings();
            s.parallel_images = 8;
            let r = sync(&w.opener, &c, &s, Recorder::new()).await.unwrap();
            let errors: Vec<&str> = r
                .images
                .iter()
                .filter_map(|i| match i {
                    ImageResult::Failed(f) => Some(f.error.as_str()),
                    ImageResult::Done(_) => None,
                })
                .collect();
            assert_eq!(r.summary.copied, 10, "{kind}: {errors:?}");
            let opened = w
                .opener
                .open(
                    &format!("{kind}:{}", path.display()).parse().unwrap(),
                    false,
                    &RegistryOptions::default(),
                )
                .unwrap();
            let mut names = opened.transport.list_tags().await.unwrap();
            names.sort();
            let mut want: Vec<String> = (0..10).map(|i| format!("img{i}:v1")).collect();
            want.sort();
            assert_eq!(names, want, "{kind}");
        }
    }

    #[tokio::test]
    async fn a_refused_sparse_index_makes_exit_code_3_when_nothing_failed() {
        let (w, c) = three_images();
        w.dst.set(|b| b.sparse = SparseRule::Refuse);
        let r = sync(&w.opener, &c, &sync_settings(), Recorder::new())
            .await
            .unwrap();
        assert_eq!(r.summary.rejected, 4);
        assert_eq!(r.exit_code(), crate::error::ExitCode::Partial);
    }

    #[tokio::test]
    async fn shards_split_the_pairs_between_workers() {
        let (w, c) = three_images();
        let mut total = 0;
        for k in 0..2 {
            let mut s = sync_settings();
            s.shard = Some((k, 2));
            s.dry_run = true;
            let r = sync(&w.opener, &c, &s, Recorder::new()).await.unwrap();
            assert_eq!(r.summary.planned + r.summary.other_shards, 4);
            total += r.summary.planned;
        }
        assert_eq!(total, 4);
        assert!(w.dst.writes().is_empty(), "a dry run writes nothing");
    }
}
