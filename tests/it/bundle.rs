//! Incremental air-gap bundles (`--state`): night 2 carries only what night 1 did not, the far
//! side imports it, and `inventory` rebuilds the state from the far side.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{
    self, GeneratedImage, ImageSpec, Registry, generate, mirror, run_code, skopeo,
};

fn copy(args: &[&str]) -> std::process::Command {
    support::mirror_cmd("copy", args)
}

/// v2 keeps v1's amd64 and arm64 platforms (manifests and layers) and the shared base; its other
/// platforms are new.
fn v2_from(v1: &GeneratedImage) -> GeneratedImage {
    let other = generate(&ImageSpec {
        seed: 2,
        ..ImageSpec::default()
    });
    let keep = ["linux/amd64", "linux/arm64"];
    let mut img = other.clone();
    let mut entries = Vec::new();
    for e in &other.entries {
        let from_v1 =
            matches!(&e.platform, Some(p) if keep.contains(&p.as_str()) && !e.is_attestation());
        if from_v1 {
            entries.push(v1.platform_entry(e.platform.as_deref().unwrap()).clone());
        } else if !e.is_attestation() {
            entries.push(e.clone());
        }
    }
    for e in &entries {
        for b in &e.blobs {
            let bytes = v1
                .blobs
                .get(b)
                .or_else(|| other.blobs.get(b))
                .unwrap()
                .clone();
            img.blobs.insert(b.clone(), bytes);
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": support::MT_OCI_INDEX,
        "manifests": entries.iter().map(|e| {
            let p = support::imagegen::parse_platform(e.platform.as_deref().unwrap());
            let mut platform = json!({ "architecture": p.arch, "os": p.os });
            if let Some(v) = p.variant { platform["variant"] = json!(v); }
            json!({ "mediaType": e.media_type, "digest": e.digest, "size": e.size, "platform": platform })
        }).collect::<Vec<_>>()
    });
    img.index = serde_json::to_vec_pretty(&index).unwrap();
    img.index_digest = support::digest_of(&img.index);
    img.entries = entries;
    img
}

fn all_blobs(img: &GeneratedImage) -> BTreeSet<String> {
    img.entries
        .iter()
        .flat_map(|e| e.blobs.iter().cloned())
        .collect()
}

fn bytes_of(img: &GeneratedImage, blobs: &BTreeSet<String>) -> u64 {
    blobs.iter().map(|b| img.blobs[b].len() as u64).sum()
}

#[test]
fn night_two_carries_only_what_night_one_did_not() {
    let src = Registry::start();
    let v1 = generate(&ImageSpec {
        seed: 1,
        attestations: false,
        ..ImageSpec::default()
    });
    let v2 = v2_from(&v1);
    skopeo::push_image(&v1, &src, "app:v1");
    skopeo::push_image(&v2, &src, "app:v2");
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state.json");
    let state_arg = state.to_str().unwrap();
    let far = Registry::start();

    // Night 1: everything of v1 (no state yet), then the far side imports it.
    let night1 = format!(
        "oci-archive:{}:app:v1",
        tmp.path().join("night1.tar").display()
    );
    run_code(
        &mut copy(&[
            "--all-platforms",
            "--state",
            state_arg,
            &src.url("app:v1"),
            &night1,
        ]),
        0,
    );
    run_code(
        &mut copy(&["--all-platforms", &night1, &far.url("app:v1")]),
        0,
    );
    assert_eq!(far.client().manifest_bytes("app", "v1").unwrap(), v1.index);

    // Night 2: the plan says what the bundle will carry and what the state leaves out.
    let night2 = format!(
        "oci-archive:{}:app:v2",
        tmp.path().join("night2.tar").display()
    );
    let shared: BTreeSet<String> = all_blobs(&v2)
        .intersection(&all_blobs(&v1))
        .cloned()
        .collect();
    let new: BTreeSet<String> = all_blobs(&v2)
        .difference(&all_blobs(&v1))
        .cloned()
        .collect();
    assert!(shared.len() >= 5, "the base and two platforms are shared");
    let plan = support::json(&run_code(
        &mut copy(&[
            "--dry-run",
            "--all-platforms",
            "--state",
            state_arg,
            "--format",
            "json",
            &src.url("app:v2"),
            &night2,
        ]),
        0,
    ));
    assert_eq!(plan["blobs"]["omittedBytes"], bytes_of(&v2, &shared));
    assert_eq!(plan["blobs"]["transferredBytes"], bytes_of(&v2, &new));
    assert!(
        !tmp.path().join("night2.tar").exists(),
        "a plan writes nothing"
    );
    let r = support::json(&run_code(
        &mut copy(&[
            "--all-platforms",
            "--state",
            state_arg,
            "--format",
            "json",
            &src.url("app:v2"),
            &night2,
        ]),
        0,
    ));
    assert_eq!(
        r["blobs"]["transferredBytes"],
        bytes_of(&v2, &new),
        "smaller by exactly the shared bytes"
    );
    assert_eq!(r["blobs"]["omittedCount"], shared.len() as u64);
    let size1 = std::fs::metadata(tmp.path().join("night1.tar"))
        .unwrap()
        .len();
    let size2 = std::fs::metadata(tmp.path().join("night2.tar"))
        .unwrap()
        .len();
    assert!(
        size2 < size1,
        "night 2 bundle {size2} < night 1 bundle {size1}"
    );

    // Importing night 2 into an empty registry fails, naming a missing blob, and tags nothing.
    let empty = Registry::start();
    let out = run_code(
        &mut copy(&["--all-platforms", &night2, &empty.url("app:v2")]),
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("left out of the bundle") && err.contains("earlier bundle"),
        "{err}"
    );
    assert!(
        shared.iter().any(|b| err.contains(b.as_str())),
        "names the blob: {err}"
    );
    assert!(empty.client().manifest_bytes("app", "v2").is_none());
    assert!(empty.client().tags("app").is_empty());

    // Into the far registry that has night 1: v2 arrives with its digest.
    let r = support::json(&run_code(
        &mut copy(&[
            "--all-platforms",
            "--format",
            "json",
            &night2,
            &far.url("app:v2"),
        ]),
        0,
    ));
    assert_eq!(r["index"]["pushedDigest"], v2.index_digest.as_str());
    assert_eq!(skopeo::inspect_raw(&far.url("app:v2"), true), v2.index);

    // The state now lists every blob delivered, and the far side's inventory reproduces it.
    let state_doc: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    let state_blobs: BTreeSet<String> = state_doc["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    let expected: BTreeSet<String> = all_blobs(&v1).union(&all_blobs(&v2)).cloned().collect();
    assert_eq!(state_blobs, expected);
    let inv = support::json(&run_code(
        mirror().args([
            "inventory",
            "--format",
            "json",
            &far.url("app").replace(":latest", ""),
        ]),
        0,
    ));
    let inv_blobs: BTreeSet<String> = inv["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(inv_blobs, state_blobs);
    assert!(
        inv["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["digest"] == v2.index_digest.as_str())
    );

    // --state needs a bundle destination.
    let out = run_code(
        &mut copy(&["--state", state_arg, &src.url("app:v2"), &far.url("app:v3")]),
        2,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("oci-archive"));
}
