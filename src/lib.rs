//! `mirror`: sparse, digest-preserving mirroring of container images.
//!
//! The pipeline, one module a stage (ARCHITECTURE.md has the whole map and the invariants):
//!
//! ```text
//! reference ─▶ transport::Opener ─▶ walk ─▶ select ─▶ plan ─▶ copy ─▶ ops (sparse fallback) ─▶ report ─▶ cli
//! ```
//!
//! - [`oci`], [`platform`], [`reference`](mod@reference): formats and names; no I/O.
//! - [`transport`]: one trait for a place images live (a registry repository through a per-host
//!   session, an OCI layout, an archive, and in tests an in-memory registry), typed errors with
//!   hints as data, and the `Opener` that turns references into transports for one run.
//! - [`walk`]: reading an index tree at one location; absence is data.
//! - [`select`]: the keep/drop decision and its reason for every index entry.
//! - [`referrers`]: OCI 1.1 referrers and cosign tags that follow what they describe.
//! - [`plan`]: the [`plan::Plan`], plain data; `--dry-run` prints it, `copy` executes it.
//! - [`copy`]: executing a plan with bounded concurrency, dedup and verification, emitting events.
//! - [`ops`]: one copy end to end; [`fallback`]: the sparse-rejection policies.
//! - [`config`], [`sync`]: the sync config file, validated into jobs, and running them.
//! - [`bundle`]: incremental air-gap bundles (`--state`) and `inventory`.
//! - [`inspect`]: an image as it is at one location (entries, sizes, what is absent, referrers).
//! - [`verify`]: whether an image holds where it is (complete, sparse by design, or stripped
//!   from a recorded original).
//! - [`report`]: the versioned JSON report and the text summary.
//! - [`error`]: the library's error kinds and the exit codes.
//! - [`cli`]: clap arguments, settings resolution, rendering, hints, exit codes.

pub mod bundle;
pub mod cli;
pub mod config;
pub mod copy;
pub mod error;
pub mod fallback;
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
pub mod verify;
pub mod walk;

#[cfg(test)]
mod testkit;
