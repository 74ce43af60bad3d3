//! Selection: the keep/drop decision, with a reason a person can read, for every entry of an index
//! (DESIGN.md, Selection). Pure functions over parsed indexes; no transport.
//!
//! The rules, in order:
//! 1. platform entries are kept when a requested platform matches them ([`PlatformSpec::matches`]);
//! 2. attestation entries bound to another entry by `vnd.docker.reference.digest` follow it
//!    (`--attestations bound`), or are always / never kept (`all` / `none`);
//! 3. entries with no platform that attest nothing follow `--unbound keep|drop`;
//! 4. nested indexes are decided by their own children ([`Decision::Nested`] here; the planner
//!    recurses and keeps the nested index when any of its children is kept).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::oci::{Descriptor, Digest, Index};
use crate::platform::PlatformSpec;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Attestations {
    #[default]
    Bound,
    All,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unbound {
    #[default]
    Keep,
    Drop,
}

/// What to select.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// `None`: every platform.
    pub platforms: Option<Vec<PlatformSpec>>,
    pub attestations: Attestations,
    pub unbound: Unbound,
    /// Entries a destination demanded (`--on-sparse-reject required`): kept whatever the rules
    /// above say, and their bound attestations with them.
    pub demanded: BTreeSet<Digest>,
}

impl Selection {
    /// `--all-platforms`: every entry, a full copy.
    pub fn everything() -> Selection {
        Selection {
            platforms: None,
            attestations: Attestations::All,
            unbound: Unbound::Keep,
            demanded: BTreeSet::new(),
        }
    }

    /// Whether this selection keeps every entry of any index (no sparse result is possible).
    pub fn is_everything(&self) -> bool {
        self.platforms.is_none()
            && self.attestations == Attestations::All
            && self.unbound == Unbound::Keep
    }
}

/// The decision for one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep(String),
    Drop(String),
    /// A nested index: decided by its children.
    Nested,
}

impl Decision {
    pub fn is_keep(&self) -> bool {
        matches!(self, Decision::Keep(_))
    }
}

/// The kind of an index entry, as selection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Platform,
    /// Attests the entry with this digest.
    Attestation(Digest),
    Unbound,
    NestedIndex,
}

pub fn classify(d: &Descriptor) -> EntryKind {
    if d.is_index() {
        return EntryKind::NestedIndex;
    }
    if let Some(of) = d.attests() {
        return EntryKind::Attestation(of);
    }
    match &d.platform {
        Some(p) if p.is_real() => EntryKind::Platform,
        _ => EntryKind::Unbound,
    }
}

/// The result of selecting over one index.
#[derive(Debug, Clone)]
pub struct IndexSelection {
    /// One decision per entry of `index.manifests`, same order.
    pub decisions: Vec<Decision>,
    /// Indices into `Selection::platforms` of the requests that matched at least one entry here.
    pub matched: BTreeSet<usize>,
}

/// Decide every entry of `index`. Bound attestations follow the decision for what they attest;
/// nested indexes are left as [`Decision::Nested`] for the caller to resolve (`resolved_nested`
/// gives the caller's decisions for those, by digest, when it re-runs this after recursing).
pub fn select_index(
    index: &Index,
    sel: &Selection,
    resolved_nested: &dyn Fn(&Digest) -> Option<bool>,
) -> IndexSelection {
    let mut matched = BTreeSet::new();
    let mut decisions: Vec<Decision> = index
        .manifests
        .iter()
        .map(|d| match classify(d) {
            EntryKind::NestedIndex => match resolved_nested(&d.digest) {
                Some(true) => Decision::Keep("nested index with selected entries".into()),
                Some(false) => Decision::Drop("nested index with no selected entries".into()),
                None => Decision::Nested,
            },
            EntryKind::Platform => {
                let p = d.platform.as_ref().expect("classified as platform");
                match &sel.platforms {
                    None => Decision::Keep(format!("platform {p} (all platforms)")),
                    Some(specs) => {
                        let hits: Vec<usize> = specs
                            .iter()
                            .enumerate()
                            .filter(|(_, s)| s.matches(p))
                            .map(|(i, _)| i)
                            .collect();
                        if let Some(first) = hits.first() {
                            let why = format!("platform {p} matches --platform {}", specs[*first]);
                            matched.extend(hits);
                            Decision::Keep(why)
                        } else {
                            Decision::Drop(format!("platform {p} not requested"))
                        }
                    }
                }
            }
            // Decided in the second pass, once their subjects are.
            EntryKind::Attestation(_) => Decision::Nested,
            EntryKind::Unbound => unbound_decision(sel, "no platform"),
        })
        .collect();
    demand(index, sel, &mut decisions);

    for (i, d) in index.manifests.iter().enumerate() {
        let EntryKind::Attestation(of) = classify(d) else {
            continue;
        };
        let target = index.manifests.iter().position(|m| m.digest == of);
        decisions[i] = match (sel.attestations, target) {
            (Attestations::All, _) => Decision::Keep(format!(
                "attestation of {} (--attestations all)",
                of.short()
            )),
            (Attestations::None, _) => Decision::Drop(format!(
                "attestation of {} (--attestations none)",
                of.short()
            )),
            (Attestations::Bound, Some(t)) => match &decisions[t] {
                Decision::Keep(_) => Decision::Keep(format!(
                    "attestation of kept {}",
                    describe(&index.manifests[t])
                )),
                Decision::Drop(_) => Decision::Drop(format!(
                    "attestation of dropped {}",
                    describe(&index.manifests[t])
                )),
                Decision::Nested => Decision::Nested,
            },
            (Attestations::Bound, None) => unbound_decision(
                sel,
                &format!("attests {}, which is not in this index", of.short()),
            ),
        };
    }
    demand(index, sel, &mut decisions);
    IndexSelection { decisions, matched }
}

/// Keep the dropped entries the destination demanded.
fn demand(index: &Index, sel: &Selection, decisions: &mut [Decision]) {
    for (d, decision) in index.manifests.iter().zip(decisions.iter_mut()) {
        if sel.demanded.contains(&d.digest) && matches!(decision, Decision::Drop(_)) {
            *decision = Decision::Keep("demanded by the destination registry".into());
        }
    }
}

fn unbound_decision(sel: &Selection, what: &str) -> Decision {
    match sel.unbound {
        Unbound::Keep => Decision::Keep(format!("{what}, attests nothing (--unbound keep)")),
        Unbound::Drop => Decision::Drop(format!("{what}, attests nothing (--unbound drop)")),
    }
}

fn describe(d: &Descriptor) -> String {
    match &d.platform {
        Some(p) if p.is_real() => p.to_string(),
        _ => d.digest.short(),
    }
}

/// The platforms an index offers (for "requested platform not found" messages).
pub fn available_platforms(index: &Index) -> Vec<String> {
    let mut out: Vec<String> = index
        .manifests
        .iter()
        .filter(|d| classify(d) == EntryKind::Platform)
        .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oci::{Manifest, RawManifest};
    use crate::platform::parse_list;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real-world");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn index(name: &str) -> Index {
        match Manifest::parse(&fixture(name), "").unwrap() {
            Manifest::Index(i) => i,
            other => panic!("{name} is not an index: {other:?}"),
        }
    }

    fn sel(platforms: &[&str]) -> Selection {
        Selection {
            platforms: Some(parse_list(platforms).unwrap()),
            ..Default::default()
        }
    }

    fn kept(index: &Index, s: &Selection) -> Vec<String> {
        let r = select_index(index, s, &|_| None);
        index
            .manifests
            .iter()
            .zip(r.decisions)
            .filter(|(_, d)| d.is_keep())
            .map(|(m, _)| {
                m.platform
                    .as_ref()
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into())
            })
            .collect()
    }

    /// Every real-world fixture parses, and every manifest/index in it is classified.
    #[test]
    fn every_fixture_parses() {
        let mut seen = 0;
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let m =
                Manifest::parse(&bytes, "").unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Manifest::Index(i) = &m {
                let r = select_index(i, &Selection::default(), &|_| Some(true));
                assert_eq!(r.decisions.len(), i.manifests.len());
                assert!(
                    r.decisions.iter().all(|d| d.is_keep()),
                    "{}: default keeps all",
                    path.display()
                );
            }
            seen += 1;
        }
        assert_eq!(seen, 23, "fixture count changed: update this test");
    }

    #[test]
    fn files_whose_sha_is_their_digest_hash_to_it() {
        for (name, digest) in [
            (
                "docker-manifest-list-hello-world.json",
                "faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af",
            ),
            (
                "oci-index-multi-platform-quay.json",
                "0de0e983a4980f32b1aad2d7f7f387cea2d4e9517b47f336cef27f63735911fa",
            ),
            (
                "regclient-index-v2-subject.json",
                "dfae8f425735a5e3a72e40d6609e03079995511d48157c74d54801ff4430491e",
            ),
        ] {
            let raw = RawManifest::new(fixture(name).into(), "");
            assert_eq!(raw.digest.hex(), digest, "{name}");
        }
        // The kairos attestation fixture gained a newline in capture: its first 841 bytes are the digest.
        let att = fixture("oci-attestation-manifest-buildx-kairos.json");
        assert!(!Digest::sha256(&att).hex().starts_with("77ffcabd"));
        assert!(Digest::sha256(&att[..841]).hex().starts_with("77ffcabd"));
    }

    #[test]
    fn hello_world_manifest_list() {
        let i = index("docker-manifest-list-hello-world.json");
        assert_eq!(i.manifests.len(), 11);
        assert_eq!(kept(&i, &sel(&["linux/amd64"])), vec!["linux/amd64"]);
        assert_eq!(
            kept(&i, &sel(&["linux/arm"])),
            vec!["linux/arm/v5", "linux/arm/v7"]
        );
        assert_eq!(kept(&i, &sel(&["linux/arm64"])), vec!["linux/arm64/v8"]);
        assert_eq!(kept(&i, &sel(&["linux/aarch64"])), vec!["linux/arm64/v8"]);
        assert_eq!(kept(&i, &sel(&["windows/amd64"])).len(), 2);
        assert_eq!(
            kept(&i, &sel(&["windows/amd64:10.0.20348"])),
            vec!["windows/amd64:10.0.20348.1249"]
        );
        let r = select_index(&i, &sel(&["linux/arm/v6", "linux/amd64"]), &|_| None);
        assert_eq!(
            r.matched.into_iter().collect::<Vec<_>>(),
            vec![1],
            "hello-world has no arm/v6"
        );
    }

    #[test]
    fn busybox_list_variants() {
        let i = index("docker-manifest-list-busybox-1.27.2.json");
        assert_eq!(kept(&i, &sel(&["linux/arm/v6"])), vec!["linux/arm/v6"]);
        assert_eq!(kept(&i, &sel(&["linux/armel"])), vec!["linux/arm/v6"]);
        assert_eq!(kept(&i, &sel(&["linux/arm"])).len(), 2);
        assert_eq!(
            kept(&i, &sel(&["linux/i386", "linux/x86_64"])),
            vec!["linux/amd64", "linux/386"]
        );
    }

    #[test]
    fn buildx_attestations_follow_their_platform() {
        let i = index("oci-index-buildx-attestations-kairos.json");
        assert_eq!(i.manifests.len(), 2);
        assert!(
            matches!(classify(&i.manifests[1]), EntryKind::Attestation(ref d) if *d == i.manifests[0].digest)
        );
        assert_eq!(
            kept(&i, &sel(&["linux/amd64"])),
            vec!["linux/amd64", "unknown/unknown"]
        );
        assert!(kept(&i, &sel(&["linux/arm64"])).is_empty());
        let none = Selection {
            attestations: Attestations::None,
            ..sel(&["linux/amd64"])
        };
        assert_eq!(kept(&i, &none), vec!["linux/amd64"]);
        let all = Selection {
            attestations: Attestations::All,
            ..sel(&["linux/arm64"])
        };
        assert_eq!(kept(&i, &all), vec!["unknown/unknown"]);
        let r = select_index(&i, &sel(&["linux/arm64"]), &|_| None);
        match &r.decisions[1] {
            Decision::Drop(why) => {
                assert!(why.contains("attestation of dropped linux/amd64"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_official_alpine_two_of_eight() {
        let i = index("oci-index-docker-official-alpine-with-attestations.reserialized.json");
        assert_eq!(i.manifests.len(), 16);
        let r = select_index(&i, &sel(&["linux/amd64", "linux/arm64"]), &|_| None);
        let kept: Vec<&Descriptor> = i
            .manifests
            .iter()
            .zip(&r.decisions)
            .filter(|(_, d)| d.is_keep())
            .map(|(m, _)| m)
            .collect();
        assert_eq!(kept.len(), 4, "2 platforms + their 2 attestations");
        let kept_platforms: BTreeSet<Digest> = kept
            .iter()
            .filter(|d| classify(d) == EntryKind::Platform)
            .map(|d| d.digest.clone())
            .collect();
        for d in &kept {
            if let EntryKind::Attestation(of) = classify(d) {
                assert!(kept_platforms.contains(&of));
            }
        }
        assert_eq!(available_platforms(&i).len(), 8);
        assert_eq!(kept_by_request(&i, &["linux/arm/v7"]), 1);
        assert_eq!(kept_by_request(&i, &["linux/arm"]), 2);
    }

    fn kept_by_request(i: &Index, p: &[&str]) -> usize {
        kept(
            i,
            &Selection {
                attestations: Attestations::None,
                ..sel(p)
            },
        )
        .len()
    }

    #[test]
    fn quay_and_regclient_indexes() {
        let i = index("oci-index-multi-platform-quay.json");
        assert_eq!(
            kept(&i, &sel(&["linux/arm64", "linux/s390x"])),
            vec!["linux/arm64", "linux/s390x"]
        );
        let i = index("regclient-index-v2-subject.json");
        assert_eq!(kept(&i, &sel(&["linux/arm/v7"])), vec!["linux/arm/v7"]);
        assert!(
            i.annotations
                .unwrap()
                .contains_key("org.opencontainers.image.base.name")
        );
    }

    #[test]
    fn nested_indexes_wait_for_their_children() {
        let i = index("regclient-referrers-index-containing-index.json");
        assert_eq!(classify(&i.manifests[0]), EntryKind::NestedIndex);
        let r = select_index(&i, &sel(&["linux/amd64"]), &|_| None);
        assert_eq!(r.decisions, vec![Decision::Nested]);
        let r = select_index(&i, &sel(&["linux/amd64"]), &|_| Some(false));
        assert!(!r.decisions[0].is_keep());
    }

    #[test]
    fn unbound_entries_follow_the_flag() {
        // The referrers-list fixtures are indexes of artifacts with no platform.
        let i = index("regclient-referrers-index-for-v2.json");
        assert_eq!(kept(&i, &sel(&["linux/amd64"])).len(), 2);
        let drop = Selection {
            unbound: Unbound::Drop,
            ..sel(&["linux/amd64"])
        };
        assert!(kept(&i, &drop).is_empty());
    }

    #[test]
    fn image_manifests_and_artifacts_are_classified() {
        for (name, artifact_type, has_subject) in [
            (
                "notation-signature-manifest-with-subject.json",
                "application/vnd.cncf.notary.signature",
                true,
            ),
            (
                "regclient-artifact-manifest-sbom-with-subject.json",
                "application/example.sbom",
                true,
            ),
            (
                "regclient-artifact-manifest-signature-with-subject.json",
                "application/example.signature",
                true,
            ),
            (
                "regclient-artifact-manifest-child.json",
                "application/example.child",
                false,
            ),
            (
                "cosign-signature-manifest-quay.json",
                "application/vnd.oci.image.config.v1+json",
                false,
            ),
            (
                "helm-chart-manifest-legacy-layer.synthetic.json",
                "application/vnd.cncf.helm.config.v1+json",
                false,
            ),
        ] {
            let m = Manifest::parse(&fixture(name), "").unwrap();
            assert_eq!(m.artifact_type(), Some(artifact_type), "{name}");
            assert_eq!(m.subject().is_some(), has_subject, "{name}");
        }
        let m = Manifest::parse(
            &fixture("regclient-index-with-subject-and-artifacttype.json"),
            "",
        )
        .unwrap();
        let Manifest::Index(i) = &m else {
            panic!("an index")
        };
        assert_eq!(
            i.subject.as_ref().unwrap().digest,
            i.manifests[0].digest,
            "the cycle edge case"
        );
        for name in [
            "docker-schema2-manifest-foreign-layer.synthetic.json",
            "oci-image-manifest-nondistributable-layer.synthetic.json",
            "docker-schema2-manifest-hello-world-linux-amd64.json",
            "docker-schema2-manifest-busybox-linux-amd64.json",
            "oci-image-manifest-quay-linux-arm64.json",
            "oci-attestation-manifest-buildx-kairos.json",
            "notation-subject-artifact-manifest.json",
        ] {
            let Manifest::Image(m) = Manifest::parse(&fixture(name), "").unwrap() else {
                panic!("{name}")
            };
            assert!(m.blobs().count() >= 2, "{name}");
        }
    }
}
