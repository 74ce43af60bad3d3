//! Shared pieces of the engine's unit tests: two in-memory registries (`src.test`, `dst.test`,
//! see [`crate::transport::memory`]), options as the command line would resolve them, and an
//! event recorder. Nothing here touches the network or the disk.

use std::sync::{Arc, Mutex};

use crate::copy::{Event, Events, ExecOptions};
use crate::ops::{CopySettings, OnSparseReject};
use crate::plan::PlanOptions;
use crate::platform::PlatformSpec;
use crate::reference::ImageRef;
use crate::referrers::ReferrerOptions;
use crate::select::Selection;
use crate::transport::memory::{MemoryRegistries, MemoryRegistry};
use crate::transport::registry::RegistryOptions;

pub use crate::transport::memory::images;
pub use crate::transport::memory::{Call, SparseRule};

/// Five platforms, as a typical multi-platform image has.
pub const FIVE: [&str; 5] = [
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/s390x",
    "linux/ppc64le",
];

/// A source and a destination registry, and the opener that reaches them.
pub struct World {
    pub opener: MemoryRegistries,
    pub src: MemoryRegistry,
    pub dst: MemoryRegistry,
}

pub fn world() -> World {
    let opener = MemoryRegistries::new();
    World {
        src: opener.registry("src.test"),
        dst: opener.registry("dst.test"),
        opener,
    }
}

pub fn reference(s: &str) -> ImageRef {
    s.parse().expect("a test reference")
}

pub fn specs(platforms: &[&str]) -> Option<Vec<PlatformSpec>> {
    if platforms.is_empty() {
        return None;
    }
    Some(
        platforms
            .iter()
            .map(|p| p.parse().expect("a test platform"))
            .collect(),
    )
}

/// `--platform` with these (none: every platform), attestations bound, referrers followed.
pub fn plan_options(platforms: &[&str]) -> PlanOptions {
    PlanOptions {
        selection: Selection {
            platforms: specs(platforms),
            ..Selection::default()
        },
        skip_missing_platforms: false,
        jobs: 4,
        referrers: ReferrerOptions::default(),
        delivered: None,
        memo: crate::transport::RunMemo::new(),
    }
}

pub fn exec() -> ExecOptions {
    ExecOptions {
        jobs: 4,
        retry_times: 2,
    }
}

pub fn settings(platforms: &[&str], policy: OnSparseReject) -> CopySettings {
    CopySettings {
        plan: plan_options(platforms),
        exec: exec(),
        on_sparse_reject: crate::ops::Policies::one(policy),
        dry_run: false,
        state: None,
        source: RegistryOptions::default(),
        destination: RegistryOptions::default(),
    }
}

/// Records the engine's events as short lines (`blob sha256:…`, `manifest sha256:… tag v1`).
#[derive(Default)]
pub struct Recorder {
    pub lines: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }
}

impl Events for Recorder {
    fn event(&self, event: Event<'_>) {
        let line = match event {
            Event::BlobDone { blob, how } => format!("blob {} {how:?}", blob.digest),
            Event::ManifestPushed { digest, tag, .. } => match tag {
                Some(t) => format!("manifest {digest} tag {t}"),
                None => format!("manifest {digest}"),
            },
            Event::Retrying { what, .. } => format!("retry {what}"),
            Event::PlanReady { total_blobs, .. } => format!("plan {total_blobs}"),
            Event::BlobStarted { .. } => return,
        };
        self.lines.lock().expect("lock").push(line);
    }
}

/// The position of the first recorded call matching `f`, for order checks.
pub fn position(calls: &[Call], f: impl Fn(&Call) -> bool) -> usize {
    calls
        .iter()
        .position(f)
        .unwrap_or_else(|| panic!("no such call in {calls:#?}"))
}
