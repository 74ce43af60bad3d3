//! `mirror`: sparse, digest-preserving mirroring of container images.
//!
//! The pipeline, one module a stage:
//!
//! ```text
//! reference ─▶ transport::open ─▶ plan (reads source, HEADs destination; uses select, platform)
//!                                   │
//!                                   ▼
//!                                 copy::execute (blobs → child manifests → nested indexes → root+tag)
//!                                   │  refused sparse index?  ops: report | complete | strip
//!                                   ▼
//!                                 report (JSON / text)
//! ```
//!
//! - [`reference`]: parsing `docker://`, bare, `oci:`, `oci-archive:` references.
//! - [`platform`], [`select`]: platform matching and the keep/drop decision for every index entry.
//! - [`oci`]: digests, descriptors, manifests, media types, a digest-verifying stream.
//! - [`transport`]: one trait for a place images live: a registry repository, an OCI layout, an archive.
//! - [`plan`]: the [`plan::Plan`], plain data; `--dry-run` prints it, `copy` executes it.
//! - [`referrers`]: OCI 1.1 referrers and cosign tags that follow what they describe.
//! - [`copy`]: executing a plan with bounded concurrency, dedup and verification, emitting events.
//! - [`inspect`]: an image as it is at one location (entries, sizes, what is absent, referrers).
//! - [`ops`]: one function per command, including the sparse-rejection fallback.
//! - [`report`]: the versioned JSON report and the text summary.
//! - [`config`], [`sync`]: the sync config file, validated into jobs, and running them.
//! - [`bundle`]: incremental air-gap bundles (`--state`) and `inventory`.
//! - [`cli`]: clap arguments, settings resolution, rendering, exit codes.

pub mod bundle;
pub mod cli;
pub mod config;
pub mod copy;
pub mod error;
pub mod inspect;
pub mod oci;
pub mod ops;
pub mod plan;
pub mod platform;
pub mod reference;
pub mod referrers;
pub mod report;
pub mod select;
pub mod sync;
pub mod transport;
pub mod walk;

#[cfg(test)]
mod testkit;
