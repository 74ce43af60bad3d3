//! A layout's `index.json`: parsing and checking it, finding images by name, and the edits the
//! store makes to it (adding a root, replacing the entry a name moved away from, the list of blobs a
//! bundle leaves out). Edits work on the JSON document, so fields this program does not know
//! survive a rewrite. Pure functions: the store reads and writes the file.

use serde_json::Value;

use super::layout_err;
use crate::oci::{ANNOTATION_REF_NAME, Descriptor, RawManifest};
use crate::reference::Target;
use crate::transport::{ANNOTATION_OMITTED_BLOBS, OmittedBlob, Result};

/// The entries of an `index.json`, parsed and checked.
#[derive(Debug, Clone)]
pub(in crate::transport::layout) struct IndexFile {
    pub(in crate::transport::layout) entries: Vec<Descriptor>,
    /// The file and the transport, for errors.
    label: String,
    location: String,
}

impl IndexFile {
    /// Parse `bytes`; `label` names the file in errors (`/x/index.json`), `location` the transport.
    pub(in crate::transport::layout) fn parse(
        bytes: &[u8],
        label: &str,
        location: &str,
    ) -> Result<IndexFile> {
        // The common case in one pass, straight into descriptors (an index.json may list
        // hundreds of thousands of images); anything it refuses is parsed again below, slowly,
        // to say exactly what is wrong.
        #[derive(serde::Deserialize)]
        struct Fast {
            manifests: Option<Vec<Descriptor>>,
        }
        if let Ok(Fast {
            manifests: entries, ..
        }) = serde_json::from_slice::<Fast>(bytes)
            && (entries.is_some()
                || serde_json::from_slice::<Value>(bytes)
                    .is_ok_and(|d| d.get("manifests") == Some(&Value::Null)))
        {
            return Ok(IndexFile {
                entries: entries.unwrap_or_default(),
                label: label.to_string(),
                location: location.to_string(),
            });
        }
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| {
            layout_err(location, format!("{label} is not valid JSON: {e} (restore it, or copy the images again into a new layout)"))
        })?;
        // `"manifests": null` is how oras-go writes an empty layout: no images.
        let no_entries = Vec::new();
        let manifests = match doc.get("manifests") {
            Some(Value::Null) => Some(&no_entries),
            m => m.and_then(Value::as_array),
        };
        let manifests = manifests.ok_or_else(|| {
            layout_err(
                location,
                format!("{label} has no `manifests` list, so it is not an OCI image index (restore it, or copy the images again into a new layout)"),
            )
        })?;
        let entries = manifests
            .iter()
            .enumerate()
            .map(|(i, e)| {
                serde_json::from_value::<Descriptor>(e.clone()).map_err(|err| {
                    layout_err(
                        location,
                        format!("entry {} of {label} is not a valid descriptor: {err} (fix or remove that entry)", i + 1),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IndexFile {
            entries,
            label: label.to_string(),
            location: location.to_string(),
        })
    }

    /// The entry named `name`, if any. Entries with that name and different digests are an
    /// error that says the name is ambiguous (as umoci does): picking one would be a guess.
    pub(in crate::transport::layout) fn tagged(&self, name: &str) -> Result<Option<&Descriptor>> {
        let mut named = self
            .entries
            .iter()
            .filter(|d| d.annotation(ANNOTATION_REF_NAME) == Some(name));
        let Some(first) = named.next() else {
            return Ok(None);
        };
        let others = named.filter(|d| d.digest != first.digest).count();
        if others == 0 {
            return Ok(Some(first));
        }
        Err(layout_err(
            &self.location,
            format!(
                "the name {:?} is ambiguous: {} entries of {} with different digests have it ({ANNOTATION_REF_NAME}); name the image by digest ({}@sha256:…), or remove all but one of those entries",
                crate::oci::escape_for_terminal(name),
                others + 1,
                self.label,
                self.location
            ),
        ))
    }

    /// Every `org.opencontainers.image.ref.name`, once each, in file order (linear: a layout may
    /// list hundreds of thousands of images).
    pub(in crate::transport::layout) fn ref_names(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.entries
            .iter()
            .filter_map(|d| d.annotation(ANNOTATION_REF_NAME))
            .filter(|name| seen.insert(*name))
            .map(str::to_string)
            .collect()
    }

    /// The only entry, by digest; `reference` is how the user names this place (`oci:/x`).
    pub(in crate::transport::layout) fn default_target(
        &self,
        label: &str,
        location: &str,
        reference: &str,
    ) -> Result<Target> {
        match self.entries.as_slice() {
            [only] => Ok(Target::Digest(only.digest.clone())),
            [] => Err(layout_err(
                location,
                format!(
                    "{label} lists no images, so there is nothing to read (copy an image into it first)"
                ),
            )),
            entries => {
                const SHOWN: usize = 10;
                let mut names: Vec<String> = entries
                    .iter()
                    .take(SHOWN)
                    .map(|d| match d.annotation(ANNOTATION_REF_NAME) {
                        Some(name) => name.to_string(),
                        None => format!("{} untagged", d.digest.short()),
                    })
                    .collect();
                if entries.len() > SHOWN {
                    names.push(format!("and {} more", entries.len() - SHOWN));
                }
                Err(layout_err(
                    location,
                    format!(
                        "{label} has {} images ({}): name one with {reference}:NAME or {reference}@DIGEST",
                        entries.len(),
                        names.join(", ")
                    ),
                ))
            }
        }
    }
}

/// List a root manifest in `doc`: named `tag`, replacing every entry that had that name (the rest
/// keep their order), or untagged, once per digest.
pub(super) fn add_root(
    doc: &mut Value,
    manifest: &RawManifest,
    tag: Option<&str>,
    label: &str,
    location: &str,
) -> Result<()> {
    if let Some(m) = doc.get_mut("manifests")
        && m.is_null()
    {
        *m = Value::Array(vec![]);
    }
    let manifests = doc
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| layout_err(location, format!("{label} has no `manifests` list")))?;
    let digest = manifest.digest.to_string();
    match tag {
        Some(tag) => {
            manifests.retain(|e| entry_ref_name(e) != Some(tag));
            manifests.push(index_entry(manifest, Some(tag)));
        }
        None => {
            if !manifests
                .iter()
                .any(|e| e.get("digest").and_then(Value::as_str) == Some(digest.as_str()))
            {
                manifests.push(index_entry(manifest, None));
            }
        }
    }
    Ok(())
}

fn entry_ref_name(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

/// The `index.json` entry for a root manifest.
fn index_entry(manifest: &RawManifest, tag: Option<&str>) -> Value {
    let mut entry = serde_json::Map::new();
    entry.insert(
        "mediaType".into(),
        Value::String(manifest.media_type.clone()),
    );
    entry.insert("digest".into(), Value::String(manifest.digest.to_string()));
    entry.insert("size".into(), Value::from(manifest.size()));
    if let Some(tag) = tag {
        let mut annotations = serde_json::Map::new();
        annotations.insert(ANNOTATION_REF_NAME.into(), Value::String(tag.to_string()));
        entry.insert("annotations".into(), Value::Object(annotations));
    }
    Value::Object(entry)
}

/// The left-out blobs an `index.json` records.
pub(in crate::transport::layout) fn omitted_from_index(
    bytes: &[u8],
    label: &str,
    location: &str,
) -> Result<Vec<OmittedBlob>> {
    let doc: Value = serde_json::from_slice(bytes)
        .map_err(|e| layout_err(location, format!("{label} is not valid JSON: {e}")))?;
    omitted_in(&doc, label, location)
}

fn omitted_in(doc: &Value, label: &str, location: &str) -> Result<Vec<OmittedBlob>> {
    let Some(list) = doc
        .get("annotations")
        .and_then(|a| a.get(ANNOTATION_OMITTED_BLOBS))
        .and_then(Value::as_str)
    else {
        return Ok(vec![]);
    };
    serde_json::from_str(list).map_err(|e| {
        layout_err(
            location,
            format!(
                "{label}: the annotation {ANNOTATION_OMITTED_BLOBS} is not a list of blobs: {e}"
            ),
        )
    })
}

/// Merge `blobs` into the left-out list `doc` records (sorted, each once).
pub(super) fn add_omitted(
    doc: &mut Value,
    blobs: Vec<OmittedBlob>,
    label: &str,
    location: &str,
) -> Result<()> {
    let mut all: std::collections::BTreeSet<OmittedBlob> =
        omitted_in(doc, label, location)?.into_iter().collect();
    all.extend(blobs);
    let list = serde_json::to_string(&all.into_iter().collect::<Vec<_>>())
        .map_err(|e| layout_err(location, e.to_string()))?;
    let obj = doc
        .as_object_mut()
        .ok_or_else(|| layout_err(location, format!("{label} is not a JSON object")))?;
    let annotations = obj
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(a) = annotations.as_object_mut() {
        a.insert(ANNOTATION_OMITTED_BLOBS.into(), Value::String(list));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::oci::Digest;

    #[test]
    fn edits_keep_unknown_fields_and_merge_omitted_blobs() {
        let mut doc: Value = serde_json::from_str(
            r#"{"schemaVersion":2,"x-vendor":1,"manifests":[],"annotations":{"a":"b"}}"#,
        )
        .unwrap();
        let m = RawManifest::new(
            Bytes::from_static(br#"{"schemaVersion":2,"manifests":[]}"#),
            "",
        );
        add_root(&mut doc, &m, None, "index.json", "oci:x").unwrap();
        add_root(&mut doc, &m, None, "index.json", "oci:x").unwrap();
        add_root(&mut doc, &m, Some("v1"), "index.json", "oci:x").unwrap();
        assert_eq!(doc["manifests"].as_array().unwrap().len(), 2);
        assert_eq!(doc["x-vendor"], 1);

        let blob = |s: &[u8]| OmittedBlob {
            digest: Digest::sha256(s),
            size: s.len() as u64,
        };
        add_omitted(
            &mut doc,
            vec![blob(b"b"), blob(b"a")],
            "index.json",
            "oci:x",
        )
        .unwrap();
        add_omitted(&mut doc, vec![blob(b"a")], "index.json", "oci:x").unwrap();
        let bytes = serde_json::to_vec(&doc).unwrap();
        let mut expect = vec![blob(b"a"), blob(b"b")];
        expect.sort();
        assert_eq!(
            omitted_from_index(&bytes, "index.json", "oci:x").unwrap(),
            expect
        );
        assert_eq!(doc["annotations"]["a"], "b");
    }

    fn index_with(entries: &str) -> IndexFile {
        IndexFile::parse(
            format!(r#"{{"schemaVersion":2,"manifests":{entries}}}"#).as_bytes(),
            "/x/index.json",
            "oci:/x",
        )
        .unwrap()
    }

    fn entry(digest_seed: &[u8], name: &str) -> String {
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":2,"annotations":{{"{ANNOTATION_REF_NAME}":"{name}"}}}}"#,
            Digest::sha256(digest_seed)
        )
    }

    #[test]
    fn a_null_manifests_list_is_an_empty_layout_and_can_be_written() {
        let index = index_with("null");
        assert!(index.entries.is_empty());
        let err = index
            .default_target("/x/index.json", "oci:/x", "oci:/x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lists no images"), "{err}");
        assert!(!err.contains("restore it"), "{err}");
        let mut doc: Value =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":null}"#).unwrap();
        let m = RawManifest::new(Bytes::from_static(br#"{"schemaVersion":2}"#), "");
        add_root(&mut doc, &m, Some("v1"), "index.json", "oci:x").unwrap();
        assert_eq!(doc["manifests"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_name_two_entries_have_is_ambiguous() {
        let index = index_with(&format!(
            "[{},{},{}]",
            entry(b"a", "v1"),
            entry(b"b", "v1"),
            entry(b"c", "v2")
        ));
        let err = index.tagged("v1").unwrap_err().to_string();
        assert!(
            err.contains("\"v1\" is ambiguous: 2 entries of /x/index.json"),
            "{err}"
        );
        assert_eq!(
            index.tagged("v2").unwrap().unwrap().digest,
            Digest::sha256(b"c")
        );
        assert!(index.tagged("v3").unwrap().is_none());
    }

    #[test]
    fn ref_names_of_300000_entries_are_listed_once_each_in_order() {
        let entries: Vec<String> = (0..300_000u32)
            .map(|i| entry(&i.to_le_bytes(), &format!("t{}", i % 150_000)))
            .collect();
        let index = index_with(&format!("[{}]", entries.join(",")));
        let names = index.ref_names();
        assert_eq!(names.len(), 150_000);
        assert_eq!(names[0], "t0");
        assert_eq!(names[149_999], "t149999");
    }
}
