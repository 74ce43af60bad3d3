//! Manifest and index bytes as a registry or layout serves them: parsing (under every media type
//! hint, and as a raw manifest that sniffs its type) never panics, and neither do the walks the
//! planner makes over a parsed manifest (blobs, subject, artifact type, attestation bindings) or
//! stripping an index.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::oci::{Manifest, RawManifest};

const HINTS: [&str; 7] = [
    "",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json",
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let hint = HINTS[first as usize % HINTS.len()];
    let raw = RawManifest::new(bytes::Bytes::copy_from_slice(bytes), hint);
    let _ = mirror::oci::sniff_media_type(bytes);
    for parsed in [Manifest::parse(bytes, hint), raw.parse()] {
        match parsed {
            Ok(Manifest::Image(m)) => {
                let _ = m.blobs().count();
                let _ = m.effective_artifact_type();
                let _ = Manifest::Image(m).subject().is_some();
            }
            Ok(Manifest::Index(i)) => {
                for d in &i.manifests {
                    let _ = d.attests();
                    let _ = d.is_index();
                    let _ = mirror::select::classify(d);
                }
                let keep_first = i.manifests.first().map(|d| d.digest.clone());
                let _ = mirror::oci::strip_index(
                    bytes,
                    &|d| Some(d) == keep_first.as_ref(),
                    &Default::default(),
                );
                let _ = Manifest::Index(i).artifact_type();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
