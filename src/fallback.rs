//! What to do when a destination refuses a sparse index (DESIGN.md, Sparse rejection fallback).
//!
//! A refusal is a *sparse rejection* when the registry's errors are the spec codes for missing
//! references and name only entries that selection left out ([`is_sparse_rejection`]); anything
//! else is a plain failure. Then the `--on-sparse-reject` policies are tried in order:
//! - `report`: stop; the kept children stay by digest; the report prices the other ways.
//! - `complete`: copy the dropped entries too and push the original index (digest kept).
//! - `required`: copy only what the registry names, push the original again, and repeat while it
//!   names new entries (at most [`MAX_ROUNDS`]); a registry with a rule (distribution v3
//!   `platforms: list`, Quay) demands only its platforms; registry 2.8 names every missing child,
//!   so there it equals `complete`. The digest is kept.
//! - `strip`: push an index of the kept entries (a new digest) that can be checked against the
//!   original: see [`strip_tree`] and [`push_strip_evidence`].
//!
//! A policy that cannot finish because the source lacks what it needs (the source is itself
//! sparse) or because the registry refuses again hands over to the next one; the report lists
//! every attempt and which policy ended it.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::copy::{self, Events, Executed, RootResult};
use crate::error::{Advice, Error};
use crate::oci::{self, Descriptor, Digest, RawManifest};
use crate::plan::{self, Plan, PlanOptions};
use crate::reference::Target;
use crate::referrers;
use crate::report::{Attempt, Outcome, Rejection, Report, RequiredEntry};
use crate::select::Selection;
use crate::transport::{PushAs, RegistryErrorItem, Transport};

/// How many times `required` pushes the index again before it gives up.
pub const MAX_ROUNDS: usize = 8;

/// One policy of `--on-sparse-reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSparseReject {
    Report,
    Complete,
    Required,
    Strip,
}

impl OnSparseReject {
    pub fn name(self) -> &'static str {
        match self {
            OnSparseReject::Report => "report",
            OnSparseReject::Complete => "complete",
            OnSparseReject::Required => "required",
            OnSparseReject::Strip => "strip",
        }
    }
}

impl FromStr for OnSparseReject {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "report" => OnSparseReject::Report,
            "complete" => OnSparseReject::Complete,
            "required" => OnSparseReject::Required,
            "strip" => OnSparseReject::Strip,
            other => {
                return Err(format!(
                    "unknown policy {other:?}: expected report, complete, required or strip"
                ));
            }
        })
    }
}

/// The policies to try, in order (`required,strip`). Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies(Vec<OnSparseReject>);

impl Policies {
    pub fn new(list: Vec<OnSparseReject>) -> Policies {
        if list.is_empty() {
            Policies::default()
        } else {
            Policies(list)
        }
    }

    pub fn one(p: OnSparseReject) -> Policies {
        Policies(vec![p])
    }

    pub fn iter(&self) -> impl Iterator<Item = OnSparseReject> + '_ {
        self.0.iter().copied()
    }
}

impl Default for Policies {
    fn default() -> Self {
        Policies(vec![OnSparseReject::Report])
    }
}

impl FromStr for Policies {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split(',')
            .map(str::parse)
            .collect::<Result<Vec<_>, _>>()
            .map(Policies::new)
    }
}

/// A policy (`strip`), a comma-separated list (`required,strip`) or a YAML list.
impl<'de> Deserialize<'de> for Policies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Policies;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a policy (report, complete, required, strip) or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Policies, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Policies, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    let p: Policies = s.parse().map_err(serde::de::Error::custom)?;
                    out.extend(p.0);
                }
                Ok(Policies::new(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// What a fallback works with: the two locations, what the plan was made from, and how to copy.
pub struct Context<'a> {
    pub src: &'a dyn Transport,
    pub dst: &'a dyn Transport,
    pub target: &'a Target,
    pub plan_options: &'a PlanOptions,
    pub exec: &'a copy::ExecOptions,
    pub events: &'a dyn Events,
}

/// How a refused copy ended: the report, the plan whose blobs it counts, and what moved in all.
pub struct Finished {
    pub report: Report,
    pub counted: Plan,
    pub done: Executed,
}

const SPARSE_CODES: [&str; 3] = ["MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_INVALID"];

/// A refusal is a sparse rejection when it carries one of the spec codes for missing references and
/// every digest it names is one that selection left out.
pub fn is_sparse_rejection(plan: &Plan, errors: &[RegistryErrorItem]) -> bool {
    if !plan.is_sparse()
        || !errors
            .iter()
            .any(|e| SPARSE_CODES.contains(&e.code.as_str()))
    {
        return false;
    }
    let dropped: BTreeSet<&Digest> = plan.dropped().map(|e| &e.digest).collect();
    named(errors).iter().all(|d| dropped.contains(d))
}

/// The digests a refusal names (`detail` of each error).
fn named(errors: &[RegistryErrorItem]) -> Vec<Digest> {
    errors
        .iter()
        .filter_map(|e| e.detail.trim_matches('"').parse::<Digest>().ok())
        .collect()
}

/// Apply the policies to a refused index push.
pub async fn on_refusal(
    cx: &Context<'_>,
    policies: &Policies,
    plan: &Plan,
    done: &Executed,
    digest: Digest,
    status: u16,
    errors: Vec<RegistryErrorItem>,
) -> Result<Finished, Error> {
    if !is_sparse_rejection(plan, &errors) {
        return Err(Error::Refused {
            location: cx.dst.location(),
            digest,
            status,
            errors,
            why: ", and not because of the entries left out".into(),
        });
    }
    // What each way forward costs, measured before any of them changes the destination.
    let (mut rejection, full) = rejection(cx, plan, status, errors.clone()).await?;
    // The complete plan, while nothing has changed the destination since it was made.
    let mut full = Some(full);
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut last: Option<(OnSparseReject, Error)> = None;
    for policy in policies.iter() {
        let result = match policy {
            OnSparseReject::Report => Ok(Finished {
                report: Report::from_plan(plan, Outcome::Rejected, false),
                counted: plan.clone(),
                done: done.clone(),
            }),
            OnSparseReject::Complete => {
                let fresh = if attempts.is_empty() {
                    full.take()
                } else {
                    None
                };
                complete(cx, plan, done, fresh).await
            }
            OnSparseReject::Required => required(cx, plan, done, &errors).await,
            OnSparseReject::Strip => strip(cx, plan, done).await,
        };
        match result {
            Ok(mut finished) => {
                rejection.policy = policy.name().into();
                rejection.attempts = attempts;
                if policy == OnSparseReject::Required {
                    (rejection.required, rejection.required_extra_bytes) =
                        required_entries(plan, &finished.counted);
                }
                finished.report.rejection = Some(rejection);
                return Ok(finished);
            }
            Err(e @ (Error::SourceIncomplete(_) | Error::Refused { .. })) => {
                tracing::debug!(policy = policy.name(), error = %e, "policy could not finish");
                attempts.push(Attempt {
                    policy: policy.name().into(),
                    result: "failed".into(),
                    reason: crate::error::chain(&e),
                });
                last = Some((policy, e));
            }
            Err(e) => return Err(e),
        }
    }
    let (policy, reason) = last.expect("policies are never empty");
    Err(Error::Fallback {
        policy: if attempts.len() > 1 {
            format!("{} (and {})", policy.name(), tried(&attempts))
        } else {
            policy.name().into()
        },
        reason: Box::new(reason),
        advice: (!policies.iter().any(|p| p == OnSparseReject::Strip))
            .then_some(Advice::StripPolicy),
    })
}

fn tried(attempts: &[Attempt]) -> String {
    attempts[..attempts.len() - 1]
        .iter()
        .map(|a| a.policy.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `complete`: every entry, then the original index. `fresh`: the complete plan when it was made
/// after the refusal with nothing written since (else it is made again).
async fn complete(
    cx: &Context<'_>,
    plan: &Plan,
    done: &Executed,
    fresh: Option<Result<Plan, Error>>,
) -> Result<Finished, Error> {
    let full = match fresh {
        Some(full) => full?,
        None => plan_everything(cx, plan).await?,
    };
    let (again, more) = copy::execute(&full, cx.src, cx.dst, cx.exec, cx.events).await?;
    if let RootResult::Refused {
        digest,
        status,
        errors,
    } = again
    {
        return Err(Error::Refused {
            location: cx.dst.location(),
            digest,
            status,
            errors,
            why: " with every entry present".into(),
        });
    }
    let mut report = Report::from_plan(plan, Outcome::Completed, false);
    report.warnings.push(format!(
        "the destination refused the sparse index; the {} dropped entries were copied as well (+{} blob bytes)",
        plan.dropped().count(),
        more.transferred_bytes
    ));
    Ok(Finished {
        report,
        counted: full,
        done: done.add(&more),
    })
}

/// `required`: what the registry names, round after round, then the original index.
async fn required(
    cx: &Context<'_>,
    plan: &Plan,
    done: &Executed,
    errors: &[RegistryErrorItem],
) -> Result<Finished, Error> {
    let mut demanded: BTreeSet<Digest> = BTreeSet::new();
    let mut errors = errors.to_vec();
    let mut total = done.clone();
    for round in 1..=MAX_ROUNDS {
        let new: Vec<Digest> = named(&errors)
            .into_iter()
            .filter(|d| !demanded.contains(d))
            .collect();
        if new.is_empty() {
            return Err(Error::Refused {
                location: cx.dst.location(),
                digest: plan.root.digest.clone(),
                status: 400,
                errors,
                why: ", naming nothing that was not added already".into(),
            });
        }
        tracing::debug!(
            round,
            named = new.len(),
            "copying what the destination demands"
        );
        demanded.extend(new);
        let opts = PlanOptions {
            selection: Selection {
                demanded: demanded.clone(),
                ..cx.plan_options.selection.clone()
            },
            ..cx.plan_options.clone()
        };
        let next = plan::plan(cx.src, cx.target, cx.dst, plan.tag.clone(), &opts).await?;
        let (result, more) = copy::execute(&next, cx.src, cx.dst, cx.exec, cx.events).await?;
        total = total.add(&more);
        match result {
            RootResult::Refused {
                digest,
                status,
                errors: again,
            } => {
                if !is_sparse_rejection(&next, &again) {
                    return Err(Error::Refused {
                        location: cx.dst.location(),
                        digest,
                        status,
                        errors: again,
                        why: ", and not because of the entries left out".into(),
                    });
                }
                errors = again;
            }
            RootResult::Pushed | RootResult::UpToDate => {
                let mut report = Report::from_plan(&next, Outcome::Completed, false);
                report.warnings.push(format!(
                    "the destination refused the sparse index and demanded {} more entries; they were copied and the original index pushed",
                    required_entries(plan, &next).0.len()
                ));
                return Ok(Finished {
                    report,
                    counted: next,
                    done: total,
                });
            }
        }
    }
    Err(Error::Refused {
        location: cx.dst.location(),
        digest: plan.root.digest.clone(),
        status: 400,
        errors,
        why: format!(", still after {MAX_ROUNDS} rounds of adding what it named"),
    })
}

/// The entries `after` keeps that `before` did not, each with its manifest's bytes and those of
/// the blobs it adds (not used by `before`), and all of that together with each blob once.
fn required_entries(before: &Plan, after: &Plan) -> (Vec<RequiredEntry>, u64) {
    let kept = before.kept_digests();
    let had: BTreeSet<&Digest> = before.blobs.iter().map(|b| &b.digest).collect();
    let mut added: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut manifests = 0;
    let entries = after
        .entries
        .iter()
        .filter(|e| e.keep && !kept.contains(&e.digest))
        .map(|e| {
            let blobs: Vec<Descriptor> = after
                .manifests
                .iter()
                .find(|m| m.digest == e.digest)
                .and_then(|m| m.raw.as_ref()?.parse().ok())
                .map(|m| match m {
                    oci::Manifest::Image(i) => i.blobs().cloned().collect(),
                    oci::Manifest::Index(_) => vec![],
                })
                .unwrap_or_default();
            let own: Vec<&Descriptor> = blobs.iter().filter(|b| !had.contains(&b.digest)).collect();
            for b in &own {
                added.insert(b.digest.clone(), b.size);
            }
            manifests += e.size;
            RequiredEntry {
                digest: e.digest.clone(),
                platform: e.platform.clone(),
                reason: e.reason.clone(),
                bytes: e.size + own.iter().map(|b| b.size).sum::<u64>(),
            }
        })
        .collect();
    (entries, manifests + added.values().sum::<u64>())
}

/// `strip`: an index of the kept entries under the tag, with the evidence that ties it to the
/// original, and the original's signatures and referrers under their own names.
async fn strip(cx: &Context<'_>, plan: &Plan, done: &Executed) -> Result<Finished, Error> {
    let (nested, root) = strip_tree(plan)?;
    for m in &nested {
        push(cx, m, PushAs::Child).await?;
    }
    let original = plan
        .root
        .raw
        .as_ref()
        .ok_or_else(|| Error::Internal("the plan has no root bytes".into()))?;
    push_strip_evidence(cx.dst, original, &root).await?;
    push(
        cx,
        &root,
        PushAs::Root {
            tag: plan.tag.clone(),
        },
    )
    .await?;
    // Signatures and attestations over the original digest, under their original names.
    copy::push_referrers(plan, None, cx.dst, cx.exec, cx.events).await?;
    cx.dst
        .finish()
        .await
        .map_err(|e| Error::transport(format!("finishing {}", cx.dst.location()), e))?;
    let mut report = Report::from_plan(plan, Outcome::Stripped, false);
    report.index.pushed_digest = Some(root.digest.clone());
    report.warnings.push(format!(
        "the destination refused the sparse index; pushed a stripped index {} in place of {}: check signatures against the original digest (its bytes are stored beside the stripped index; mirror verify ties the two)",
        root.digest, plan.root.digest
    ));
    Ok(Finished {
        report,
        counted: plan.clone(),
        done: done.clone(),
    })
}

async fn push(cx: &Context<'_>, m: &RawManifest, push_as: PushAs) -> Result<(), Error> {
    cx.dst.put_manifest(m, &push_as).await.map_err(|e| {
        Error::transport(
            format!("pushing manifest {} to {}", m.digest, cx.dst.location()),
            e,
        )
    })?;
    cx.events.event(copy::Event::ManifestPushed {
        digest: &m.digest,
        media_type: &m.media_type,
        tag: match &push_as {
            PushAs::Root { tag } => tag.as_deref(),
            PushAs::Child => None,
        },
    });
    Ok(())
}

/// The stripped versions of the plan's indexes: nested ones that lose entries (deepest first) and
/// the root, each listing only kept entries, with nested descriptors pointing at stripped children,
/// and each annotated with the digest it was stripped from ([`oci::ANNOTATION_STRIPPED_FROM`]).
pub fn strip_tree(plan: &Plan) -> Result<(Vec<RawManifest>, RawManifest), Error> {
    let mut replace: BTreeMap<Digest, (Digest, u64)> = BTreeMap::new();
    let mut nested = Vec::new();
    let strip = |raw: &RawManifest,
                 replace: &BTreeMap<Digest, (Digest, u64)>|
     -> Result<Option<RawManifest>, Error> {
        let entries: Vec<_> = plan
            .entries
            .iter()
            .filter(|e| e.parent == raw.digest)
            .collect();
        let changed = entries
            .iter()
            .any(|e| !e.keep || replace.contains_key(&e.digest));
        if !changed {
            return Ok(None);
        }
        let kept: BTreeSet<&Digest> = entries
            .iter()
            .filter(|e| e.keep)
            .map(|e| &e.digest)
            .collect();
        let bytes = oci::strip_index(&raw.bytes, &|d| kept.contains(d), replace, &raw.digest)
            .map_err(|e| Error::invalid(format!("the index {}", raw.digest), e.to_string()))?;
        Ok(Some(RawManifest::new(bytes, &raw.media_type)))
    };
    let (_, indexes) = plan.push_order();
    for m in indexes {
        let Some(raw) = &m.raw else { continue };
        if let Some(new) = strip(raw, &replace)? {
            replace.insert(m.digest.clone(), (new.digest.clone(), new.size()));
            nested.push(new);
        }
    }
    let root_raw = plan
        .root
        .raw
        .clone()
        .ok_or_else(|| Error::Internal("the plan has no root bytes".into()))?;
    let root = strip(&root_raw, &replace)?.unwrap_or(root_raw);
    Ok((nested, root))
}

/// The artifact that ties a stripped index to its original: the original index bytes stored as a
/// blob under their own digest, listed as the one layer of an OCI 1.1 artifact
/// ([`oci::ARTIFACT_STRIPPED_ORIGINAL`]) whose `subject` is the stripped index.
pub fn strip_evidence(original: &RawManifest, stripped: &RawManifest) -> RawManifest {
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": oci::OCI_MANIFEST,
        "artifactType": oci::ARTIFACT_STRIPPED_ORIGINAL,
        "config": empty_config(),
        "layers": [{
            "mediaType": original.media_type,
            "digest": original.digest.to_string(),
            "size": original.size(),
        }],
        "subject": {
            "mediaType": stripped.media_type,
            "digest": stripped.digest.to_string(),
            "size": stripped.size(),
        },
        "annotations": { oci::ANNOTATION_STRIPPED_FROM: original.digest.to_string() },
    });
    RawManifest::new(
        Bytes::from(serde_json::to_vec(&doc).expect("JSON serializes")),
        oci::OCI_MANIFEST,
    )
}

fn empty_config() -> Descriptor {
    Descriptor {
        media_type: oci::EMPTY_MEDIA_TYPE.into(),
        digest: Digest::sha256(oci::EMPTY_JSON),
        size: oci::EMPTY_JSON.len() as u64,
        platform: None,
        annotations: None,
        artifact_type: None,
        urls: None,
    }
}

/// Store the original bytes and the evidence artifact at `dst`, and list the artifact as a
/// referrer of the stripped index (through the referrers API where there is one, else in the
/// `sha256-<hex>` tag-schema index).
pub async fn push_strip_evidence(
    dst: &dyn Transport,
    original: &RawManifest,
    stripped: &RawManifest,
) -> Result<RawManifest, Error> {
    let err = |what: String| move |e| Error::transport(what, e);
    for (desc, bytes) in [
        (
            Descriptor {
                media_type: original.media_type.clone(),
                ..original.descriptor()
            },
            original.bytes.clone(),
        ),
        (empty_config(), Bytes::from_static(oci::EMPTY_JSON)),
    ] {
        let there = dst.has_blob(&desc.digest).await.map_err(err(format!(
            "checking {} at {}",
            desc.digest,
            dst.location()
        )))?;
        if !there {
            let body = futures::stream::once(async move { Ok(bytes) }).boxed();
            dst.put_blob(&desc, body).await.map_err(err(format!(
                "storing blob {} at {}",
                desc.digest,
                dst.location()
            )))?;
        }
    }
    let evidence = strip_evidence(original, stripped);
    dst.put_manifest(&evidence, &PushAs::Child)
        .await
        .map_err(err(format!(
            "pushing the stripped index's evidence {} to {}",
            evidence.digest,
            dst.location()
        )))?;
    let has_api = dst
        .referrers(&stripped.digest)
        .await
        .map_err(err(format!("asking {} for referrers", dst.location())))?
        .is_some();
    if !has_api {
        let tag = referrers::digest_tag(&stripped.digest);
        let existing = dst
            .get_manifest(&Target::Tag(tag.clone()))
            .await
            .map_err(err(format!("reading {tag} at {}", dst.location())))?;
        let listed = Descriptor {
            artifact_type: Some(oci::ARTIFACT_STRIPPED_ORIGINAL.into()),
            annotations: Some(
                [(
                    oci::ANNOTATION_STRIPPED_FROM.to_string(),
                    original.digest.to_string(),
                )]
                .into(),
            ),
            ..evidence.descriptor()
        };
        if let Some(index) = referrers::merged_tag_index(existing.as_ref(), &[listed])? {
            dst.put_manifest(&index, &PushAs::Root { tag: Some(tag) })
                .await
                .map_err(err(format!(
                    "pushing the referrers index to {}",
                    dst.location()
                )))?;
        }
    }
    Ok(evidence)
}

/// The refusal, what each way forward costs, and (filled by the caller) how it ended.
async fn rejection(
    cx: &Context<'_>,
    plan: &Plan,
    status: u16,
    errors: Vec<RegistryErrorItem>,
) -> Result<(Rejection, Result<Plan, Error>), Error> {
    let (_, stripped) = strip_tree(plan)?;
    let full = plan_everything(cx, plan).await;
    let (complete_possible, complete_extra_bytes) = match &full {
        Ok(full) => (
            true,
            full.blob_totals().transferred_bytes
                + full
                    .manifests
                    .iter()
                    .filter(|m| !m.present)
                    .map(|m| m.size)
                    .sum::<u64>(),
        ),
        Err(_) => (false, 0),
    };
    let rejection = Rejection {
        status,
        errors,
        complete_extra_bytes,
        complete_extra_entries: plan.dropped().count(),
        complete_possible,
        stripped_digest: stripped.digest,
        policy: OnSparseReject::Report.name().into(),
        attempts: vec![],
        required: vec![],
        required_extra_bytes: 0,
    };
    Ok((rejection, full))
}

/// The plan of a copy of every entry of the source index.
async fn plan_everything(cx: &Context<'_>, plan: &Plan) -> Result<Plan, Error> {
    let opts = PlanOptions {
        selection: Selection::everything(),
        ..cx.plan_options.clone()
    };
    plan::plan(cx.src, cx.target, cx.dst, plan.tag.clone(), &opts).await
}
