//! Operations: one function per command, tying the pipeline together.
//!
//! `copy_image`: open the two locations → [`plan`](crate::plan::plan) → (dry run: report the plan) →
//! [`execute`](crate::copy::execute) → when the destination refuses the sparse index, apply
//! `--on-sparse-reject` (report the alternatives and their cost, complete, or strip) → [`Report`].

use std::sync::Arc;

use crate::copy::{self, Events, ExecOptions, RootResult};
use crate::error::Error;
use crate::fallback;
use crate::oci::Digest;
use crate::plan::{self, Plan, PlanOptions};
use crate::reference::{ImageRef, Target};
use crate::report::{BlobReport, Outcome, Report, pushed_outcome};
use crate::transport::registry::RegistryOptions;
use crate::transport::{OmittedBlob, Opener};

pub use crate::fallback::{OnSparseReject, Policies};

/// Everything `copy` needs, resolved from flags (or a sync config); no clap types.
#[derive(Debug, Clone)]
pub struct CopySettings {
    pub plan: PlanOptions,
    pub exec: ExecOptions,
    pub on_sparse_reject: Policies,
    pub dry_run: bool,
    /// `--state FILE`: an incremental bundle (see [`crate::bundle`]).
    pub state: Option<std::path::PathBuf>,
    pub source: RegistryOptions,
    pub destination: RegistryOptions,
}

/// The tag the destination gets, and a digest it must have when the reference names one.
fn destination_tag(reference: &ImageRef) -> (Option<String>, Option<Digest>) {
    match reference {
        ImageRef::Registry(r) => (r.tag.clone(), r.digest.clone()),
        ImageRef::Layout(l) | ImageRef::Archive(l) => match &l.target {
            Some(Target::Tag(t)) => (Some(t.clone()), None),
            Some(Target::Digest(d)) => (None, Some(d.clone())),
            None => (None, None),
        },
    }
}

/// Copy (or, with `dry_run`, plan) one image.
pub async fn copy_image(
    opener: &dyn Opener,
    src_ref: &ImageRef,
    dst_ref: &ImageRef,
    settings: &CopySettings,
    events: Arc<dyn Events>,
) -> Result<Report, Error> {
    let src = opener
        .open(src_ref, false, &settings.source)
        .map_err(|e| Error::transport(format!("opening {src_ref}"), e))?;
    let dst = opener
        .open(dst_ref, true, &settings.destination)
        .map_err(|e| Error::transport(format!("opening {dst_ref}"), e))?;
    let target = src
        .resolve_target()
        .map_err(|e| Error::transport(format!("reading {src_ref}"), e))?;
    let (tag, want_digest) = destination_tag(dst_ref);
    let src_t = src.transport.as_ref();
    let dst_t = dst.transport.as_ref();

    // Reach both registries at once (scheme probe, `/v2/` ping) instead of one after the other.
    let _ = tokio::join!(src_t.sparse_support(), dst_t.sparse_support());
    let mut plan_opts = settings.plan.clone();
    if let Some(state) = &settings.state {
        if dst_ref.is_registry() {
            return Err(Error::Usage(format!(
                "--state makes an incremental bundle, so the destination must be oci:PATH or oci-archive:PATH, not {dst_ref}"
            )));
        }
        plan_opts.delivered = Some(Arc::new(crate::bundle::read_state(state)?.blob_map()));
    }
    let plan = plan::plan(src_t, &target, dst_t, tag.clone(), &plan_opts).await?;
    if let Some(want) = want_digest
        && want != plan.root.digest
    {
        return Err(Error::Usage(format!(
            "the destination {dst_ref} names digest {want}, but the source is {}: drop the digest from the destination",
            plan.root.digest
        )));
    }
    if settings.dry_run {
        return Ok(named(
            Report::from_plan(&plan, Outcome::Planned, true),
            src_ref,
            dst_ref,
        ));
    }
    let omitted: Vec<OmittedBlob> = plan
        .blobs
        .iter()
        .filter(|b| b.omitted)
        .map(|b| OmittedBlob {
            digest: b.digest.clone(),
            size: b.size,
        })
        .collect();
    if !omitted.is_empty() {
        dst_t.record_omitted(&omitted).await.map_err(|e| {
            Error::transport(
                format!("recording the blobs left out of {}", dst_t.location()),
                e,
            )
        })?;
    }
    let (result, done) =
        copy::execute(&plan, src_t, dst_t, &settings.exec, events.as_ref()).await?;
    let (mut report, counted, done) = match result {
        RootResult::Pushed => (
            Report::from_plan(&plan, pushed_outcome(plan.kind), false),
            plan.clone(),
            done,
        ),
        RootResult::UpToDate => (
            Report::from_plan(&plan, Outcome::UpToDate, false),
            plan.clone(),
            done,
        ),
        RootResult::Refused {
            digest,
            status,
            errors,
        } => {
            let cx = fallback::Context {
                src: src_t,
                dst: dst_t,
                target: &target,
                plan_options: &plan_opts,
                exec: &settings.exec,
                events: events.as_ref(),
            };
            let f = fallback::on_refusal(
                &cx,
                &settings.on_sparse_reject,
                &plan,
                &done,
                digest,
                status,
                errors,
            )
            .await?;
            (f.report, f.counted, f.done)
        }
    };
    fill_blobs(&mut report.blobs, &counted, &done);
    if let Some(state) = &settings.state
        && report.index.outcome != Outcome::Rejected
    {
        // The bundle now delivers every blob of the plan (those left out were delivered before).
        crate::bundle::add_to_state(
            state,
            plan.blobs.iter().map(|b| OmittedBlob {
                digest: b.digest.clone(),
                size: b.size,
            }),
        )?;
    }
    Ok(named(report, src_ref, dst_ref))
}

/// Reports name the references as the user gave them (with tag or digest).
fn named(mut report: Report, src: &ImageRef, dst: &ImageRef) -> Report {
    report.source = src.to_string();
    report.destination = dst.to_string();
    report
}

/// Blob counts after execution: `count`/`bytes` are every blob the copied image uses, `transferred*`
/// what moved now, `mounted*` what a cross-repository mount made present, `present*` the rest.
fn fill_blobs(blobs: &mut BlobReport, counted: &Plan, done: &copy::Executed) {
    let t = counted.blob_totals();
    let mut mounted_bytes = 0;
    if done.mounted_count > 0 {
        // Mounted blobs are those of the plan that were missing and not transferred.
        mounted_bytes = t.transferred_bytes.saturating_sub(done.transferred_bytes);
    }
    blobs.totals.count = t.count;
    blobs.totals.bytes = t.bytes;
    blobs.totals.transferred_count = done.transferred_count;
    blobs.totals.transferred_bytes = done.transferred_bytes;
    blobs.mounted_count = done.mounted_count;
    blobs.mounted_bytes = mounted_bytes;
    blobs.totals.omitted_count = t.omitted_count;
    blobs.totals.omitted_bytes = t.omitted_bytes;
    blobs.totals.present_count = t
        .count
        .saturating_sub(done.transferred_count + done.mounted_count + t.omitted_count);
    blobs.totals.present_bytes = t
        .bytes
        .saturating_sub(done.transferred_bytes + mounted_bytes + t.omitted_bytes);
}

#[cfg(test)]
mod tests {
    //! Whole copies and the sparse-rejection policies on in-memory registries.

    use super::*;
    use crate::fallback::{is_sparse_rejection, strip_tree};
    use crate::oci;
    use crate::testkit::{self, Recorder, SparseRule, images, reference, settings};

    use crate::testkit::FIVE;
    const KEEP: [&str; 2] = ["linux/amd64", "linux/arm64"];

    async fn copy(
        w: &testkit::World,
        platforms: &[&str],
        policy: OnSparseReject,
        tweak: impl FnOnce(&mut CopySettings),
    ) -> Result<Report, Error> {
        let mut s = settings(platforms, policy);
        tweak(&mut s);
        copy_image(
            &w.opener,
            &reference("docker://src.test/app:v1"),
            &reference("docker://dst.test/app:v1"),
            &s,
            Recorder::new(),
        )
        .await
    }

    #[tokio::test]
    async fn a_sparse_index_is_pushed_byte_for_byte_where_the_registry_accepts_it() {
        let w = testkit::world();
        w.dst.set(|b| b.sparse = SparseRule::Accept);
        let img = images::index(&w.src, "app", "v1", &FIVE, true);
        let r = copy(&w, &KEEP, OnSparseReject::Report, |_| {})
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::Pushed);
        assert_eq!(r.index.pushed_digest.as_ref(), Some(&img.index.digest));
        assert_eq!(w.dst.tag("app", "v1"), Some(img.index.digest.clone()));
        assert!(r.rejection.is_none());
        let kept: Vec<&Digest> = KEEP.iter().map(|p| &img.child(p).digest).collect();
        let attest: Vec<&Digest> = kept.iter().map(|d| &img.attestations[*d].digest).collect();
        let all: Vec<&Digest> = kept.iter().chain(&attest).copied().collect();
        assert_eq!(r.blobs.totals.transferred_bytes, img.blob_bytes(&all));
        assert_eq!(r.source, "docker://src.test/app:v1");
    }

    #[tokio::test]
    async fn report_stops_with_the_registry_errors_and_prices_both_ways_forward() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let r = copy(&w, &KEEP, OnSparseReject::Report, |_| {})
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::Rejected);
        assert_eq!(r.index.outcome.exit_code(), crate::error::ExitCode::Partial);
        let rej = r.rejection.as_ref().unwrap();
        assert_eq!(rej.status, 400);
        assert_eq!(rej.errors.len(), 3);
        assert!(rej.errors.iter().all(|e| e.code == "MANIFEST_BLOB_UNKNOWN"));
        assert!(rej.complete_possible);
        assert_eq!(rej.complete_extra_entries, 3);
        // `complete` would add the dropped children's blobs not already there and their manifests.
        let dropped: Vec<&Digest> = FIVE[2..].iter().map(|p| &img.child(p).digest).collect();
        let kept: Vec<&Digest> = KEEP.iter().map(|p| &img.child(p).digest).collect();
        let all: Vec<&Digest> = kept.iter().chain(&dropped).copied().collect();
        let manifests: u64 = FIVE[2..].iter().map(|p| img.child(p).size()).sum();
        let extra_blobs = img.blob_bytes(&all) - img.blob_bytes(&kept);
        assert_eq!(rej.complete_extra_bytes, extra_blobs + manifests);
        // And `strip` would push exactly this digest.
        let (_, stripped) = strip_tree(
            &plan::plan(
                &w.src.repo("app"),
                &Target::Tag("v1".into()),
                &w.dst.repo("app"),
                Some("v1".into()),
                &testkit::plan_options(&KEEP),
            )
            .await
            .unwrap(),
        )
        .unwrap();
        assert_eq!(rej.stripped_digest, stripped.digest);
        assert_eq!(w.dst.tag("app", "v1"), None);
        for p in KEEP {
            assert!(w.dst.has_manifest("app", &img.child(p).digest));
        }
    }

    #[tokio::test]
    async fn complete_copies_the_dropped_entries_and_keeps_the_digest() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let r = copy(&w, &KEEP, OnSparseReject::Complete, |_| {})
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::Completed);
        assert_eq!(w.dst.tag("app", "v1"), Some(img.index.digest.clone()));
        for (_, m) in &img.children {
            assert!(w.dst.has_manifest("app", &m.digest));
        }
        assert!(
            r.warnings.iter().any(|w| w.contains("3 dropped entries")),
            "{:?}",
            r.warnings
        );
    }

    #[tokio::test]
    async fn strip_pushes_an_index_of_the_kept_entries_under_the_tag() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let r = copy(&w, &KEEP, OnSparseReject::Strip, |_| {})
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::Stripped);
        let pushed = r.index.pushed_digest.clone().unwrap();
        assert_ne!(pushed, img.index.digest);
        assert_eq!(w.dst.tag("app", "v1"), Some(pushed.clone()));
        let stripped = w.dst.manifest("app", &pushed).unwrap();
        let Ok(oci::Manifest::Index(index)) = stripped.parse() else {
            panic!("not an index")
        };
        let listed: Vec<&Digest> = index.manifests.iter().map(|d| &d.digest).collect();
        let kept: Vec<&Digest> = KEEP.iter().map(|p| &img.child(p).digest).collect();
        assert_eq!(listed, kept);
        // It names its original, whose bytes are stored beside it, tied by an artifact whose
        // subject is the stripped index, listed in the referrers tag schema.
        let doc: serde_json::Value = serde_json::from_slice(&stripped.bytes).unwrap();
        assert_eq!(
            doc["annotations"][oci::ANNOTATION_STRIPPED_FROM],
            img.index.digest.to_string()
        );
        assert_eq!(
            w.dst.blob_bytes("app", &img.index.digest).unwrap(),
            img.index.bytes
        );
        let tag = crate::referrers::digest_tag(&pushed);
        let referrers = w
            .dst
            .manifest("app", &w.dst.tag("app", &tag).unwrap())
            .unwrap();
        let Ok(oci::Manifest::Index(referrers)) = referrers.parse() else {
            panic!("not an index")
        };
        let evidence = w
            .dst
            .manifest("app", &referrers.manifests[0].digest)
            .unwrap();
        let Ok(oci::Manifest::Image(evidence)) = evidence.parse() else {
            panic!("not a manifest")
        };
        assert_eq!(evidence.subject.unwrap().digest, pushed);
        assert_eq!(evidence.layers[0].digest, img.index.digest);
        let rej = r.rejection.unwrap();
        assert_eq!(
            (rej.policy.as_str(), rej.stripped_digest),
            ("strip", pushed)
        );
    }

    #[tokio::test]
    async fn a_rerun_of_a_stripped_copy_is_up_to_date_and_pushes_nothing() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let first = copy(&w, &KEEP, OnSparseReject::Strip, |_| {})
            .await
            .unwrap();
        let stripped = first.index.pushed_digest.unwrap();
        w.dst.clear_log();
        let again = copy(&w, &KEEP, OnSparseReject::Strip, |_| {})
            .await
            .unwrap();
        assert_eq!(again.index.outcome, Outcome::UpToDate);
        assert_eq!(again.index.pushed_digest, Some(stripped.clone()));
        assert_eq!(again.index.digest, img.index.digest);
        assert!(w.dst.writes().is_empty(), "{:#?}", w.dst.writes());
        // Another selection is not up to date: the stripped index lists other entries.
        let other = copy(&w, &["linux/amd64"], OnSparseReject::Strip, |_| {})
            .await
            .unwrap();
        assert_eq!(other.index.outcome, Outcome::Stripped);
        assert_ne!(other.index.pushed_digest, Some(stripped));
    }

    #[tokio::test]
    async fn required_copies_only_what_a_platform_rule_demands_and_keeps_the_digest() {
        let w = testkit::world();
        w.dst
            .set(|b| b.sparse = SparseRule::Require(vec![images::platform_of("linux/s390x")]));
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let r = copy(&w, &KEEP, OnSparseReject::Required, |_| {})
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::Completed);
        assert_eq!(w.dst.tag("app", "v1"), Some(img.index.digest.clone()));
        let s390x = img.child("linux/s390x");
        assert!(w.dst.has_manifest("app", &s390x.digest));
        for p in ["linux/arm/v7", "linux/ppc64le"] {
            assert!(
                !w.dst.has_manifest("app", &img.child(p).digest),
                "{p} was not demanded"
            );
        }
        let rej = r.rejection.unwrap();
        assert_eq!(rej.policy, "required");
        assert_eq!(rej.required.len(), 1);
        assert_eq!(rej.required[0].digest, s390x.digest);
        // Its config and own layer; the base layer came with the kept platforms already.
        let blobs = &img.blobs[&s390x.digest];
        let own_blobs = blobs[0].size + blobs[2].size;
        assert_eq!(rej.required_extra_bytes, s390x.size() + own_blobs);
        assert!(rej.required_extra_bytes < rej.complete_extra_bytes);
    }

    #[tokio::test]
    async fn required_where_every_missing_child_is_named_equals_complete() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let r = copy(&w, &KEEP, OnSparseReject::Required, |_| {})
            .await
            .unwrap();
        assert_eq!(w.dst.tag("app", "v1"), Some(img.index.digest.clone()));
        for (_, m) in &img.children {
            assert!(w.dst.has_manifest("app", &m.digest));
        }
        assert_eq!(r.rejection.unwrap().required.len(), 3);
    }

    #[tokio::test]
    async fn a_policy_list_goes_on_to_strip_when_the_source_lacks_what_required_needs() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        w.src
            .remove_manifest("app", &img.child("linux/s390x").digest);
        let r = copy(&w, &KEEP, OnSparseReject::Required, |s| {
            s.on_sparse_reject =
                Policies::new(vec![OnSparseReject::Required, OnSparseReject::Strip])
        })
        .await
        .unwrap();
        assert_eq!(r.index.outcome, Outcome::Stripped);
        let rej = r.rejection.unwrap();
        assert_eq!(rej.policy, "strip");
        assert_eq!(rej.attempts.len(), 1);
        assert_eq!(rej.attempts[0].policy, "required");
        assert!(
            rej.attempts[0]
                .reason
                .contains(img.child("linux/s390x").digest.as_str()),
            "{}",
            rej.attempts[0].reason
        );
    }

    #[tokio::test]
    async fn policies_parse_from_flags_and_config_lists() {
        let p: Policies = "required,strip".parse().unwrap();
        assert_eq!(
            p.iter().collect::<Vec<_>>(),
            [OnSparseReject::Required, OnSparseReject::Strip]
        );
        assert!(
            "required,maybe"
                .parse::<Policies>()
                .unwrap_err()
                .contains("maybe")
        );
        let y: Policies = serde_yaml_ng::from_str("[complete, strip]").unwrap();
        assert_eq!(y.iter().count(), 2);
        let one: Policies = serde_yaml_ng::from_str("strip").unwrap();
        assert_eq!(one, Policies::one(OnSparseReject::Strip));
    }

    #[tokio::test]
    async fn complete_from_a_sparse_source_fails_and_advises_strip() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        w.src
            .remove_manifest("app", &img.child("linux/s390x").digest);
        let err = copy(&w, &KEEP, OnSparseReject::Complete, |_| {})
            .await
            .unwrap_err();
        assert!(matches!(&err, Error::Fallback { .. }), "{err:?}");
        assert_eq!(err.advice(), Some(crate::error::Advice::StripPolicy));
        assert!(
            err.to_string()
                .contains(img.child("linux/s390x").digest.as_str()),
            "{err}"
        );
        assert_eq!(w.dst.tag("app", "v1"), None);
    }

    #[tokio::test]
    async fn a_rule_that_demands_a_platform_is_a_sparse_rejection_naming_only_it() {
        let w = testkit::world();
        w.dst
            .set(|b| b.sparse = SparseRule::Require(vec![images::platform_of("linux/s390x")]));
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let r = copy(&w, &KEEP, OnSparseReject::Report, |_| {})
            .await
            .unwrap();
        let rej = r.rejection.unwrap();
        let named: Vec<&str> = rej.errors.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(named, vec![img.child("linux/s390x").digest.as_str()]);
    }

    #[tokio::test]
    async fn a_refusal_naming_a_kept_child_or_another_code_is_not_a_sparse_rejection() {
        let w = testkit::world();
        let img = images::index(&w.src, "app", "v1", &FIVE, false);
        let plan = plan::plan(
            &w.src.repo("app"),
            &Target::Tag("v1".into()),
            &w.dst.repo("app"),
            Some("v1".into()),
            &testkit::plan_options(&KEEP),
        )
        .await
        .unwrap();
        let kept_item = crate::transport::RegistryErrorItem {
            code: "MANIFEST_BLOB_UNKNOWN".into(),
            message: String::new(),
            detail: img.child("linux/amd64").digest.to_string(),
        };
        assert!(!is_sparse_rejection(
            &plan,
            std::slice::from_ref(&kept_item)
        ));
        let other = crate::transport::RegistryErrorItem {
            code: "DENIED".into(),
            ..kept_item
        };
        assert!(!is_sparse_rejection(&plan, &[other]));
    }

    #[tokio::test]
    async fn a_dry_run_reports_the_plan_and_writes_nothing() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FIVE, true);
        let r = copy(&w, &KEEP, OnSparseReject::Report, |s| s.dry_run = true)
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::Planned);
        assert!(r.dry_run);
        assert!(r.blobs.totals.transferred_bytes > 0);
        assert!(w.dst.writes().is_empty());
        assert!(w.src.writes().is_empty());
    }

    #[tokio::test]
    async fn a_destination_digest_must_be_the_source_digest() {
        let w = testkit::world();
        images::index(&w.src, "app", "v1", &FIVE[..1], false);
        let other = Digest::sha256(b"something else");
        let err = copy_image(
            &w.opener,
            &reference("docker://src.test/app:v1"),
            &reference(&format!("docker://dst.test/app@{other}")),
            &settings(&[], OnSparseReject::Report),
            Recorder::new(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::Usage(m) if m.contains(other.as_str())),
            "{err}"
        );
        assert!(w.dst.writes().is_empty());
    }

    #[tokio::test]
    async fn a_second_copy_is_up_to_date_without_blob_traffic() {
        let w = testkit::world();
        w.dst.set(|b| b.sparse = SparseRule::Accept);
        images::index(&w.src, "app", "v1", &FIVE, true);
        copy(&w, &KEEP, OnSparseReject::Report, |_| {})
            .await
            .unwrap();
        w.dst.clear_log();
        w.src.clear_log();
        let r = copy(&w, &KEEP, OnSparseReject::Report, |_| {})
            .await
            .unwrap();
        assert_eq!(r.index.outcome, Outcome::UpToDate);
        assert_eq!(r.blobs.totals.transferred_count, 0);
        assert!(w.dst.writes().is_empty());
        assert!(
            !w.src
                .log()
                .iter()
                .any(|c| matches!(c, testkit::Call::GetBlob(..)))
        );
    }
}
