//! The copy engine: executes a [`Plan`].
//!
//! Order (DESIGN.md, Copy order and integrity): every missing blob, all at once up to `jobs`, each
//! moved once however many platforms share it (a cross-repository mount first, else a stream from
//! source to destination, verified against its digest on the way); then child manifests by digest;
//! then nested indexes from the deepest up; then the root, whose push by tag is the last write. So an
//! interrupted or failed run never leaves the tag on incomplete content, and a rerun skips what is there.
//!
//! Failures: every request already retries connection errors, 408, 429 and 5xx (`--retry-times`,
//! in the transport), and a registry download resumes by itself after a cut. What is left to this
//! engine is a blob attempt that failed as a whole (an upload refused or cut, a download that
//! could not be resumed): the blob is tried again from the start, at most `retry_times` more
//! times, after checking whether it landed anyway. Content that does not match its digest is never
//! retried: it stops the image before anything is stored under that digest.
//!
//! The engine does not print and does not re-plan: it reports progress through [`Events`] and
//! returns what happened; the caller decides what a refused index means.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::{StreamExt, TryStreamExt};

use crate::error::Error;
use crate::oci::{RawManifest, VerifyingStream};
use crate::plan::{Plan, PlannedBlob};
use crate::transport::{PushAs, RegistryErrorItem, Transport, TransportError};

/// Progress the engine reports; the CLI renders it.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// Execution starts: this many blobs (and bytes) are missing at the destination and will move
    /// (a progress bar's total). Sent again when a fallback executes a second plan.
    PlanReady {
        total_blobs: u64,
        total_bytes: u64,
    },
    /// A blob transfer starts; `progress` counts the bytes that have passed so far (a progress bar
    /// polls it).
    BlobStarted {
        blob: &'a PlannedBlob,
        progress: Arc<AtomicU64>,
    },
    BlobDone {
        blob: &'a PlannedBlob,
        how: BlobHow,
    },
    ManifestPushed {
        digest: &'a crate::oci::Digest,
        media_type: &'a str,
        tag: Option<&'a str>,
    },
    Retrying {
        what: String,
        attempt: u32,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobHow {
    Transferred,
    Mounted,
}

pub trait Events: Send + Sync {
    fn event(&self, event: Event<'_>);
}

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub jobs: usize,
    pub retry_times: u32,
}

/// What an execution did.
#[derive(Debug, Clone, Default)]
pub struct Executed {
    pub transferred_count: u64,
    pub transferred_bytes: u64,
    pub mounted_count: u64,
}

impl Executed {
    /// Both executions together.
    pub fn add(&self, more: &Executed) -> Executed {
        Executed {
            transferred_count: self.transferred_count + more.transferred_count,
            transferred_bytes: self.transferred_bytes + more.transferred_bytes,
            mounted_count: self.mounted_count + more.mounted_count,
        }
    }
}

/// How the root (or a nested index) push ended.
#[derive(Debug, Clone)]
pub enum RootResult {
    Pushed,
    UpToDate,
    /// The destination refused an index push.
    Refused {
        digest: crate::oci::Digest,
        status: u16,
        errors: Vec<RegistryErrorItem>,
    },
}

/// Execute `plan`: blobs, child manifests, nested indexes, then the root.
pub async fn execute(
    plan: &Plan,
    src: &dyn Transport,
    dst: &dyn Transport,
    opts: &ExecOptions,
    events: &dyn Events,
) -> Result<(RootResult, Executed), Error> {
    let mut done = Executed::default();
    let (total_blobs, total_bytes) = plan
        .blobs
        .iter()
        .filter(|b| !b.present && !b.omitted)
        .fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.size));
    events.event(Event::PlanReady {
        total_blobs,
        total_bytes,
    });
    copy_blobs(
        plan.blobs.iter().filter(|b| !b.present && !b.omitted),
        src,
        dst,
        opts,
        events,
        &mut done,
    )
    .await?;
    if plan.up_to_date {
        push_referrers(plan, None, dst, opts, events).await?;
        dst.finish()
            .await
            .map_err(|e| Error::transport(format!("finishing {}", dst.location()), e))?;
        return Ok((RootResult::UpToDate, done));
    }

    let (images, indexes) = plan.push_order();
    let jobs = opts.jobs.max(1);
    let _: Vec<()> = futures::stream::iter(images.into_iter().filter(|m| !m.present).map(
        |m| async move { push_manifest(dst, raw_of(m)?, &PushAs::Child, opts, events).await },
    ))
    .buffer_unordered(jobs)
    .try_collect()
    .await?;

    for m in indexes.into_iter().filter(|m| !m.present) {
        if let Some(refused) = push_index(dst, raw_of(m)?, &PushAs::Child, opts, events).await? {
            return Ok((refused, done));
        }
    }
    let root_as = PushAs::Root {
        tag: plan.tag.clone(),
    };
    if plan.root.present && plan.tag.is_none() {
        push_referrers(plan, None, dst, opts, events).await?;
        dst.finish()
            .await
            .map_err(|e| Error::transport(format!("finishing {}", dst.location()), e))?;
        return Ok((RootResult::UpToDate, done));
    }
    if let Some(refused) = push_index(dst, raw_of(&plan.root)?, &root_as, opts, events).await? {
        return Ok((refused, done));
    }
    push_referrers(plan, None, dst, opts, events).await?;
    dst.finish()
        .await
        .map_err(|e| Error::transport(format!("finishing {}", dst.location()), e))?;
    Ok((RootResult::Pushed, done))
}

fn raw_of(m: &crate::plan::PlannedManifest) -> Result<&RawManifest, Error> {
    m.raw
        .as_ref()
        .ok_or_else(|| Error::Internal(format!("the plan has no bytes for {}", m.digest)))
}

/// Push the referrers and signature tags the plan copies (those of `skip_subject` left out), after
/// their subjects; at a destination without the referrers API, merge them into its
/// `sha256-<hex>` referrers index.
pub async fn push_referrers(
    plan: &Plan,
    skip_subject: Option<&crate::oci::Digest>,
    dst: &dyn Transport,
    opts: &ExecOptions,
    events: &dyn Events,
) -> Result<(), Error> {
    use crate::referrers::{ReferrerKind, digest_tag, merged_tag_index_from};
    let mut chosen: Vec<&crate::referrers::PlannedReferrer> = plan
        .referrers
        .iter()
        .filter(|r| r.copy && Some(&r.subject) != skip_subject)
        .collect();
    // Copied manifests that are referrers themselves (an artifact copied as the image, or a
    // referrer listed in the index) belong in their subject's referrers index too.
    let own = crate::referrers::naming_a_subject(
        plan.root
            .raw
            .iter()
            .chain(plan.manifests.iter().filter_map(|m| m.raw.as_ref())),
    )
    .into_iter()
    .filter(|(subject, _)| Some(subject) != skip_subject)
    .collect::<Vec<_>>();
    if chosen.is_empty() && own.is_empty() {
        return Ok(());
    }
    chosen.sort_by_key(|r| r.depth);
    for r in &chosen {
        if r.present {
            continue;
        }
        for child in &r.children {
            push_manifest(dst, child, &PushAs::Child, opts, events).await?;
        }
        let raw = r
            .raw
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("no bytes for the referrer {}", r.digest)))?;
        let push_as = match &r.kind {
            ReferrerKind::Referrer => PushAs::Child,
            ReferrerKind::Signature { tag } => PushAs::Root {
                tag: Some(tag.clone()),
            },
        };
        push_manifest(dst, raw, &push_as, opts, events).await?;
    }
    let has_api = dst
        .referrers(&plan.root.digest)
        .await
        .map_err(|e| Error::transport(format!("asking {} for referrers", dst.location()), e))?
        .is_some();
    if has_api {
        return Ok(());
    }
    let mut by_subject: std::collections::BTreeMap<
        &crate::oci::Digest,
        Vec<crate::oci::Descriptor>,
    > = Default::default();
    for r in chosen.iter().filter(|r| r.kind == ReferrerKind::Referrer) {
        by_subject
            .entry(&r.subject)
            .or_default()
            .push(r.descriptor());
    }
    for (subject, d) in &own {
        by_subject.entry(subject).or_default().push(d.clone());
    }
    for (subject, descriptors) in by_subject {
        let tag = digest_tag(subject);
        let existing = dst
            .get_manifest(&crate::reference::Target::Tag(tag.clone()))
            .await
            .map_err(|e| {
                Error::transport(
                    format!("reading the referrers tag {tag} at {}", dst.location()),
                    e,
                )
            })?;
        let source = plan.referrer_tag_sources.get(subject);
        if let Some(index) = merged_tag_index_from(existing.as_ref(), &descriptors, source)? {
            push_manifest(dst, &index, &PushAs::Root { tag: Some(tag) }, opts, events).await?;
        }
    }
    Ok(())
}

/// Push the manifests of a rewritten (stripped) index tree: nested ones by digest, the root last.
pub async fn push_rewritten(
    nested: &[RawManifest],
    root: &RawManifest,
    tag: Option<String>,
    dst: &dyn Transport,
    opts: &ExecOptions,
    events: &dyn Events,
) -> Result<(), Error> {
    for m in nested {
        push_manifest(dst, m, &PushAs::Child, opts, events).await?;
    }
    push_manifest(dst, root, &PushAs::Root { tag }, opts, events).await?;
    dst.finish()
        .await
        .map_err(|e| Error::transport(format!("finishing {}", dst.location()), e))
}

/// Push an index; a refusal with a spec error status is returned, not raised, so the caller can
/// apply `--on-sparse-reject`.
async fn push_index(
    dst: &dyn Transport,
    raw: &RawManifest,
    push_as: &PushAs,
    opts: &ExecOptions,
    events: &dyn Events,
) -> Result<Option<RootResult>, Error> {
    match push_manifest_inner(dst, raw, push_as, opts, events).await {
        Ok(()) => Ok(None),
        Err(TransportError::Registry { status, errors, .. })
            if crate::oci::is_index_media_type(&raw.media_type)
                && (400..500).contains(&status)
                && status != 401
                && status != 403 =>
        {
            Ok(Some(RootResult::Refused {
                digest: raw.digest.clone(),
                status,
                errors,
            }))
        }
        Err(e) => Err(Error::transport(
            format!("pushing {} to {}", raw.digest, dst.location()),
            e,
        )),
    }
}

async fn push_manifest(
    dst: &dyn Transport,
    raw: &RawManifest,
    push_as: &PushAs,
    opts: &ExecOptions,
    events: &dyn Events,
) -> Result<(), Error> {
    push_manifest_inner(dst, raw, push_as, opts, events)
        .await
        .map_err(|e| {
            Error::transport(
                format!("pushing manifest {} to {}", raw.digest, dst.location()),
                e,
            )
        })
}

async fn push_manifest_inner(
    dst: &dyn Transport,
    raw: &RawManifest,
    push_as: &PushAs,
    _opts: &ExecOptions,
    events: &dyn Events,
) -> Result<(), TransportError> {
    dst.put_manifest(raw, push_as).await?;
    let tag = match push_as {
        PushAs::Root { tag } => tag.as_deref(),
        PushAs::Child => None,
    };
    events.event(Event::ManifestPushed {
        digest: &raw.digest,
        media_type: &raw.media_type,
        tag,
    });
    Ok(())
}

async fn copy_blobs<'a>(
    blobs: impl Iterator<Item = &'a PlannedBlob>,
    src: &dyn Transport,
    dst: &dyn Transport,
    opts: &ExecOptions,
    events: &dyn Events,
    done: &mut Executed,
) -> Result<(), Error> {
    let results: Vec<(BlobHow, u64)> = futures::stream::iter(blobs.map(|b| async move {
        let how = copy_blob(b, src, dst, opts, events).await?;
        Ok::<_, Error>((how, b.size))
    }))
    .buffer_unordered(opts.jobs.max(1))
    .try_collect()
    .await?;
    for (how, size) in results {
        match how {
            BlobHow::Transferred => {
                done.transferred_count += 1;
                done.transferred_bytes += size;
            }
            BlobHow::Mounted => done.mounted_count += 1,
        }
    }
    Ok(())
}

/// Move one blob: mount if the destination can, else stream it, verified, with retries.
pub async fn copy_blob(
    blob: &PlannedBlob,
    src: &dyn Transport,
    dst: &dyn Transport,
    opts: &ExecOptions,
    events: &dyn Events,
) -> Result<BlobHow, Error> {
    let desc = blob.descriptor();
    let progress = Arc::new(AtomicU64::new(0));
    events.event(Event::BlobStarted {
        blob,
        progress: progress.clone(),
    });
    if dst.mount_blob(&desc, src).await.unwrap_or(false) {
        events.event(Event::BlobDone {
            blob,
            how: BlobHow::Mounted,
        });
        return Ok(BlobHow::Mounted);
    }
    let mut attempt = 0;
    loop {
        match stream_blob(blob, src, dst, &progress).await {
            Ok(()) => {
                events.event(Event::BlobDone {
                    blob,
                    how: BlobHow::Transferred,
                });
                return Ok(BlobHow::Transferred);
            }
            Err(e) if e.is_retryable() && attempt < opts.retry_times => {
                // The upload may have landed although its answer was lost.
                if dst.has_blob(&blob.digest).await.unwrap_or(false) {
                    events.event(Event::BlobDone {
                        blob,
                        how: BlobHow::Transferred,
                    });
                    return Ok(BlobHow::Transferred);
                }
                attempt += 1;
                events.event(Event::Retrying {
                    what: format!("blob {}", blob.digest.short()),
                    attempt,
                    error: e.to_string(),
                });
                tokio::time::sleep(crate::transport::backoff(attempt)).await;
            }
            Err(e) => {
                return Err(Error::transport(
                    format!(
                        "copying blob {} ({}) from {} to {}",
                        blob.digest,
                        blob.used_by.join(", "),
                        src.location(),
                        dst.location()
                    ),
                    e,
                ));
            }
        }
    }
}

/// One attempt at a blob: open the source (a registry download resumes by itself after a cut, see
/// `transport::registry`), verify it while it streams, and upload it.
async fn stream_blob(
    blob: &PlannedBlob,
    src: &dyn Transport,
    dst: &dyn Transport,
    seen: &Arc<AtomicU64>,
) -> Result<(), TransportError> {
    let desc = blob.descriptor();
    let stream = src.get_blob(&desc).await?;
    // An error raised inside the upload body (bad content, or a source that gave up) surfaces from
    // the HTTP client as an I/O error of the upload; remember it so the real cause is reported,
    // and retried or not by what it is.
    let source_error: Arc<std::sync::Mutex<Option<TransportError>>> = Arc::default();
    seen.store(0, Ordering::Relaxed);
    let verified = VerifyingStream::new(stream, &blob.digest, blob.size);
    let recorder = source_error.clone();
    let counted = seen.clone();
    let body = verified
        .map(move |r: Result<bytes::Bytes, TransportError>| match r {
            Ok(chunk) => {
                counted.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Ok(chunk)
            }
            Err(e) => {
                let forwarded = e.duplicate();
                if let Ok(mut slot) = recorder.lock() {
                    slot.get_or_insert(e);
                }
                Err(forwarded)
            }
        })
        .boxed();
    let result = dst.put_blob(&desc, body).await;
    if let Some(e) = source_error.lock().ok().and_then(|mut s| s.take()) {
        return Err(e);
    }
    result
}

#[cfg(test)]
mod tests {
    //! Executing plans on in-memory registries (`crate::testkit`): order, dedup, verification,
    //! retries, mounts, refusals and interruption, with no network.

    use super::*;
    use crate::oci::Digest;
    use crate::plan::{Plan, plan};
    use crate::reference::Target;
    use crate::testkit::{self, Call, Recorder, SparseRule, exec, images, plan_options, position};

    const THREE: [&str; 3] = ["linux/amd64", "linux/arm64", "linux/s390x"];

    async fn plan_between(w: &testkit::World, dst_repo: &str, platforms: &[&str]) -> Plan {
        plan(
            &w.src.repo("app"),
            &Target::Tag("v1".into()),
            &w.dst.repo(dst_repo),
            Some("v1".into()),
            &plan_options(platforms),
        )
        .await
        .unwrap()
    }

    async fn run(w: &testkit::World, plan: &Plan) -> Result<(RootResult, Executed), Error> {
        execute(
            plan,
            &w.src.repo("app"),
            &w.dst.repo("app"),
            &exec(),
            &*Recorder::new(),
        )
        .await
    }

    fn accept_sparse(w: &testkit::World) {
        w.dst.set(|b| b.sparse = SparseRule::Accept);
    }

    #[tokio::test]
    async fn blobs_then_children_then_the_index_and_the_tag_last() {
        let w = testkit::world();
        accept_sparse(&w);
        let img = images::index(&w.src, "app", "v1", &THREE, true);
        let plan = plan_between(&w, "app", &["linux/amd64", "linux/arm64"]).await;
        let (result, _) = run(&w, &plan).await.unwrap();
        assert!(matches!(result, RootResult::Pushed));
        let writes = w.dst.writes();
        let last_blob = writes
            .iter()
            .rposition(|c| matches!(c, Call::PutBlob(..)))
            .unwrap();
        let first_manifest = position(&writes, |c| matches!(c, Call::PutManifest { .. }));
        assert!(last_blob < first_manifest, "{writes:#?}");
        let index_at = position(
            &writes,
            |c| matches!(c, Call::PutManifest { digest, .. } if *digest == img.index.digest),
        );
        assert_eq!(
            index_at,
            writes.len() - 1,
            "the index is the last write: {writes:#?}"
        );
        assert!(matches!(&writes[index_at], Call::PutManifest { tag: Some(t), .. } if t == "v1"));
        assert_eq!(w.dst.tag("app", "v1"), Some(img.index.digest.clone()));
        // Exact bytes: the destination's index is the source's.
        assert_eq!(
            w.dst.manifest("app", &img.index.digest).unwrap().bytes,
            img.index.bytes
        );
        assert!(!w.dst.has_manifest("app", &img.child("linux/s390x").digest));
    }

    #[tokio::test]
    async fn a_blob_shared_by_platforms_moves_once() {
        let w = testkit::world();
        accept_sparse(&w);
        images::index(&w.src, "app", "v1", &THREE, false);
        let plan = plan_between(&w, "app", &[]).await;
        let (_, done) = run(&w, &plan).await.unwrap();
        let puts: Vec<Digest> = w
            .dst
            .writes()
            .into_iter()
            .filter_map(|c| match c {
                Call::PutBlob(_, d) => Some(d),
                _ => None,
            })
            .collect();
        let unique: std::collections::BTreeSet<&Digest> = puts.iter().collect();
        assert_eq!(puts.len(), unique.len(), "{puts:#?}");
        assert_eq!(done.transferred_count as usize, plan.blobs.len());
        assert_eq!(done.transferred_bytes, plan.blob_totals().bytes);
    }

    #[tokio::test]
    async fn a_rerun_moves_no_blob_and_is_up_to_date() {
        let w = testkit::world();
        accept_sparse(&w);
        images::index(&w.src, "app", "v1", &THREE, false);
        run(&w, &plan_between(&w, "app", &["linux/arm64"]).await)
            .await
            .unwrap();
        w.dst.clear_log();
        let again = plan_between(&w, "app", &["linux/arm64"]).await;
        assert!(again.up_to_date);
        let (result, done) = run(&w, &again).await.unwrap();
        assert!(matches!(result, RootResult::UpToDate));
        assert_eq!(done.transferred_count, 0);
        assert!(w.dst.writes().is_empty(), "{:#?}", w.dst.writes());
    }

    #[tokio::test]
    async fn corrupt_source_bytes_stop_the_image_before_anything_is_stored_or_tagged() {
        let w = testkit::world();
        accept_sparse(&w);
        let img = images::index(&w.src, "app", "v1", &THREE[..1], false);
        let layer = img.blobs[&img.child("linux/amd64").digest][2]
            .digest
            .clone();
        w.src.set(|b| {
            b.corrupt_blobs.insert(layer.clone());
        });
        let plan = plan_between(&w, "app", &[]).await;
        let err = run(&w, &plan).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Transport {
                    source: TransportError::Content(_),
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(layer.as_str()), "{err}");
        assert!(!w.dst.has_blob_in("app", &layer));
        assert_eq!(w.dst.tag("app", "v1"), None);
        assert!(
            !w.dst
                .writes()
                .iter()
                .any(|c| matches!(c, Call::PutManifest { .. }))
        );
    }

    #[tokio::test]
    async fn a_failed_blob_upload_is_retried_and_the_copy_succeeds() {
        let w = testkit::world();
        accept_sparse(&w);
        images::index(&w.src, "app", "v1", &THREE[..1], false);
        w.dst.set(|b| b.fail_blob_puts = 2);
        let plan = plan_between(&w, "app", &[]).await;
        let events = Recorder::new();
        let (result, _) = execute(
            &plan,
            &w.src.repo("app"),
            &w.dst.repo("app"),
            &exec(),
            &*events,
        )
        .await
        .unwrap();
        assert!(matches!(result, RootResult::Pushed));
        assert_eq!(
            events
                .lines()
                .iter()
                .filter(|l| l.starts_with("retry"))
                .count(),
            2
        );
        for b in &plan.blobs {
            assert!(w.dst.has_blob_in("app", &b.digest));
        }
    }

    #[tokio::test]
    async fn retries_stay_bounded_and_the_tag_is_not_moved() {
        let w = testkit::world();
        accept_sparse(&w);
        images::index(&w.src, "app", "v1", &THREE[..1], false);
        w.dst.set(|b| b.fail_blob_puts = 1000);
        let plan = plan_between(&w, "app", &[]).await;
        let err = run(&w, &plan).await.unwrap_err();
        assert!(err.to_string().contains("HTTP 503"), "{err}");
        let puts = w
            .dst
            .writes()
            .iter()
            .filter(|c| matches!(c, Call::PutBlob(..)))
            .count();
        // Each of the 3 blobs: one try and `retry_times` (2) more at most.
        assert!(puts <= 3 * 3, "{puts}");
        assert_eq!(w.dst.tag("app", "v1"), None);
    }

    #[tokio::test]
    async fn within_one_registry_blobs_are_mounted_not_copied() {
        let w = testkit::world();
        accept_sparse(&w);
        images::index(&w.src, "app", "v1", &THREE[..2], false);
        let src = w.src.repo("app");
        let dst = w.src.repo("mirror/app");
        let plan = plan(
            &src,
            &Target::Tag("v1".into()),
            &dst,
            Some("v1".into()),
            &plan_options(&[]),
        )
        .await
        .unwrap();
        w.src.set(|b| b.sparse = SparseRule::Accept);
        let (result, done) = execute(&plan, &src, &dst, &exec(), &*Recorder::new())
            .await
            .unwrap();
        assert!(matches!(result, RootResult::Pushed));
        assert_eq!(done.transferred_count, 0);
        assert_eq!(done.mounted_count as usize, plan.blobs.len());
        assert!(!w.src.log().iter().any(|c| matches!(c, Call::GetBlob(..))));
    }

    #[tokio::test]
    async fn a_refused_sparse_index_is_returned_with_the_registry_errors_and_no_tag() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &THREE, false);
        let plan = plan_between(&w, "app", &["linux/amd64"]).await;
        let (result, _) = run(&w, &plan).await.unwrap();
        let RootResult::Refused {
            digest,
            status,
            errors,
        } = result
        else {
            panic!("{result:?}")
        };
        assert_eq!((digest, status), (img.index.digest.clone(), 400));
        let named: Vec<&str> = errors.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(named.len(), 2);
        for p in ["linux/arm64", "linux/s390x"] {
            assert!(named.contains(&img.child(p).digest.as_str()), "{named:?}");
        }
        // The kept child is there by digest; the index and the tag are not.
        assert!(w.dst.has_manifest("app", &img.child("linux/amd64").digest));
        assert!(!w.dst.has_manifest("app", &img.index.digest));
        assert_eq!(w.dst.tag("app", "v1"), None);
    }

    #[tokio::test]
    async fn an_interrupted_copy_leaves_no_tag_and_a_rerun_finishes() {
        let w = testkit::world();
        accept_sparse(&w);
        images::index(&w.src, "app", "v1", &THREE, false);
        let plan = plan_between(&w, "app", &[]).await;
        w.src.set(|b| b.hold_blob_gets = true);
        let src = w.src.repo("app");
        let dst = w.dst.repo("app");
        let events = Recorder::new();
        let opts = exec();
        let copy = execute(&plan, &src, &dst, &opts, &*events);
        // The copy waits on held downloads; the interrupt (a dropped future) comes first.
        let interrupted = tokio::time::timeout(std::time::Duration::from_millis(50), copy).await;
        assert!(interrupted.is_err(), "the copy should still be waiting");
        assert_eq!(w.dst.tag("app", "v1"), None);
        assert!(
            !w.dst
                .writes()
                .iter()
                .any(|c| matches!(c, Call::PutManifest { .. }))
        );
        w.src.release();
        let again = plan_between(&w, "app", &[]).await;
        let (result, _) = run(&w, &again).await.unwrap();
        assert!(matches!(result, RootResult::Pushed));
        assert_eq!(w.dst.tag("app", "v1"), Some(plan.root.digest.clone()));
    }

    #[tokio::test]
    async fn referrers_follow_their_subject_into_the_tag_schema_without_a_referrers_api() {
        let w = testkit::world();
        accept_sparse(&w);
        w.src.set(|b| b.referrers_api = true);
        let img = images::index(&w.src, "app", "v1", &THREE[..2], false);
        let amd = img.child("linux/amd64").clone();
        let sbom = images::referrer(&w.src, "app", &amd, "application/spdx+json");
        let arm_sbom = images::referrer(
            &w.src,
            "app",
            img.child("linux/arm64"),
            "application/spdx+json",
        );
        let plan = plan_between(&w, "app", &["linux/amd64"]).await;
        run(&w, &plan).await.unwrap();
        assert!(w.dst.has_manifest("app", &sbom.digest));
        assert!(
            !w.dst.has_manifest("app", &arm_sbom.digest),
            "the dropped platform's SBOM stays"
        );
        // The subject went first, and the tag-schema index lists the SBOM.
        let writes = w.dst.writes();
        let subject_at = position(
            &writes,
            |c| matches!(c, Call::PutManifest { digest, .. } if *digest == amd.digest),
        );
        let sbom_at = position(
            &writes,
            |c| matches!(c, Call::PutManifest { digest, .. } if *digest == sbom.digest),
        );
        assert!(subject_at < sbom_at);
        let tag = crate::referrers::digest_tag(&amd.digest);
        let listed = w
            .dst
            .manifest("app", &w.dst.tag("app", &tag).expect("a referrers tag"))
            .unwrap();
        assert!(String::from_utf8_lossy(&listed.bytes).contains(sbom.digest.as_str()));
    }

    #[tokio::test]
    async fn a_copied_artifact_is_listed_in_its_subjects_referrers_tag_without_a_referrers_api() {
        let w = testkit::world();
        let subject = images::single(&w.src, "app", "linux/amd64", "s");
        let sbom = images::referrer(&w.src, "app", &subject, "application/spdx+json");
        // The artifact itself is the image copied (by tag), not found as a referrer.
        w.src.put_manifest_raw("app", &sbom, Some("v1"));
        w.dst.put_manifest_raw("app", &subject, None);
        let mut opts = plan_options(&[]);
        opts.referrers = crate::referrers::ReferrerOptions::none();
        let plan = plan(
            &w.src.repo("app"),
            &Target::Tag("v1".into()),
            &w.dst.repo("app"),
            Some("v1".into()),
            &opts,
        )
        .await
        .unwrap();
        assert!(plan.referrers.is_empty());
        run(&w, &plan).await.unwrap();
        let tag = crate::referrers::digest_tag(&subject.digest);
        let listed = w
            .dst
            .manifest("app", &w.dst.tag("app", &tag).expect("a referrers tag"))
            .unwrap();
        let index: serde_json::Value = serde_json::from_slice(&listed.bytes).unwrap();
        assert_eq!(index["manifests"][0]["digest"], sbom.digest.as_str());
        assert_eq!(
            index["manifests"][0]["artifactType"],
            "application/spdx+json"
        );
        assert_eq!(index["manifests"][0]["size"], sbom.size());
        // A rerun adds nothing twice.
        let plan = plan_between(&w, "app", &[]).await;
        run(&w, &plan).await.unwrap();
        let again = w
            .dst
            .manifest("app", &w.dst.tag("app", &tag).unwrap())
            .unwrap();
        assert_eq!(again.digest, listed.digest);
    }
}
