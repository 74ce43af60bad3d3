//! Incremental air-gap bundles: carry across only what the far side does not have yet.
//!
//! A *state file* lists the blobs earlier bundles delivered. `copy --state FILE` (and `sync
//! --state FILE`) into an `oci:` or `oci-archive:` bundle leaves those blobs out, records in the
//! bundle which ones it left out (the `index.json` annotation
//! [`ANNOTATION_OMITTED_BLOBS`](crate::transport::ANNOTATION_OMITTED_BLOBS)), and after a
//! successful export adds every blob the bundle delivers to FILE (written atomically). Manifests
//! are always included: they are small and keep the bundle self-describing.
//!
//! On the far side a blob the bundle leaves out must already be at the destination; the planner
//! checks that before anything is written and names the blob otherwise (see [`crate::plan`]).
//!
//! [`inventory`] lists what a registry or layout holds in the same format, so a state file can be
//! rebuilt from the far side when it can be read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::oci::{Digest, Manifest};
use crate::reference::{ImageRef, Target};
use crate::transport::OmittedBlob;
use crate::transport::registry::RegistryOptions;

/// The state file and `mirror inventory` output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    pub version: u32,
    pub blobs: Vec<OmittedBlob>,
    #[serde(default)]
    pub manifests: Vec<OmittedBlob>,
}

impl Inventory {
    pub fn blob_map(&self) -> BTreeMap<Digest, u64> {
        self.blobs
            .iter()
            .map(|b| (b.digest.clone(), b.size))
            .collect()
    }

    fn normalize(&mut self) {
        self.version = 1;
        for list in [&mut self.blobs, &mut self.manifests] {
            list.sort();
            list.dedup_by(|a, b| a.digest == b.digest);
        }
    }

    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }
}

/// Read a state file; a file that does not exist yet is an empty state (the first night).
pub fn read_state(path: &Path) -> Result<Inventory, Error> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mut inv: Inventory = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Usage(format!(
                    "the state file {} is not a mirror state file: {e} (rebuild it with `mirror inventory … --format json`)",
                    path.display()
                ))
            })?;
            if inv.version != 1 {
                return Err(Error::Usage(format!(
                    "the state file {} has version {}, this mirror reads 1",
                    path.display(),
                    inv.version
                )));
            }
            inv.normalize();
            Ok(inv)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Inventory {
            version: 1,
            ..Inventory::default()
        }),
        Err(e) => Err(Error::Usage(format!(
            "cannot read the state file {}: {e}",
            path.display()
        ))),
    }
}

/// Add `delivered` to the state file, atomically (temporary file, fsync, rename).
pub fn add_to_state(
    path: &Path,
    delivered: impl IntoIterator<Item = OmittedBlob>,
) -> Result<(), Error> {
    let mut inv = read_state(path)?;
    inv.blobs.extend(delivered);
    inv.normalize();
    let mut bytes = serde_json::to_vec_pretty(&inv).expect("an inventory serializes");
    bytes.push(b'\n');
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{:016x}",
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        rand::random::<u64>()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            what: "cannot write the state file",
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// What `locations` hold: every manifest reachable from their tags (or the one named) and every
/// blob those manifests use that is present there.
pub async fn inventory(
    opener: &dyn crate::transport::Opener,
    locations: &[(ImageRef, bool)],
    options: &RegistryOptions,
) -> Result<Inventory, Error> {
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut manifests: BTreeMap<Digest, u64> = BTreeMap::new();
    for (reference, all_tags) in locations {
        let t = opener
            .open(reference, false, options)
            .map_err(|e| Error::transport(format!("opening {reference}"), e))?
            .transport;
        let err = |what: &str| {
            let what = format!("{what} {}", t.location());
            move |e| Error::transport(what, e)
        };
        let targets: Vec<Target> = if *all_tags {
            t.list_tags()
                .await
                .map_err(err("listing the tags of"))?
                .into_iter()
                .map(Target::Tag)
                .collect()
        } else {
            match reference {
                ImageRef::Registry(r) => vec![r.target()],
                ImageRef::Layout(l) | ImageRef::Archive(l) => {
                    l.target.clone().into_iter().collect()
                }
            }
        };
        let check_blobs = !reference.is_registry();
        let mut seen: BTreeSet<Digest> = BTreeSet::new();
        let mut queue: Vec<Target> = targets;
        while let Some(target) = queue.pop() {
            let Some(raw) = t.get_manifest(&target).await.map_err(err("reading"))? else {
                continue; // a sparse index's absent child, or a tag deleted meanwhile
            };
            if !seen.insert(raw.digest.clone()) {
                continue;
            }
            manifests.insert(raw.digest.clone(), raw.size());
            match raw.parse() {
                Ok(Manifest::Index(i)) => {
                    queue.extend(i.manifests.iter().map(|d| Target::Digest(d.digest.clone())));
                }
                Ok(Manifest::Image(m)) => {
                    for b in m.blobs() {
                        if check_blobs && !t.has_blob(&b.digest).await.map_err(err("checking"))? {
                            continue;
                        }
                        blobs.insert(b.digest.clone(), b.size);
                    }
                }
                Err(_) => {}
            }
        }
    }
    let mut inv = Inventory {
        version: 1,
        blobs: blobs
            .into_iter()
            .map(|(digest, size)| OmittedBlob { digest, size })
            .collect(),
        manifests: manifests
            .into_iter()
            .map(|(digest, size)| OmittedBlob { digest, size })
            .collect(),
    };
    inv.normalize();
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_round_trip_and_grow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert!(
            read_state(&path).unwrap().blobs.is_empty(),
            "no file yet: empty"
        );
        let a = OmittedBlob {
            digest: Digest::sha256(b"a"),
            size: 1,
        };
        let b = OmittedBlob {
            digest: Digest::sha256(b"b"),
            size: 2,
        };
        add_to_state(&path, [a.clone()]).unwrap();
        add_to_state(&path, [a.clone(), b.clone()]).unwrap();
        let inv = read_state(&path).unwrap();
        assert_eq!(inv.blobs.len(), 2);
        assert_eq!(inv.blob_map()[&b.digest], 2);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        std::fs::write(&path, b"{nope").unwrap();
        assert!(matches!(read_state(&path), Err(Error::Usage(m)) if m.contains("state file")));
    }
}
