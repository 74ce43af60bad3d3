//! `mirror inspect REF` and `mirror verify REF`: resolve the arguments, open the one location
//! read-only, call [`crate::inspect::inspect`] or [`crate::verify::verify`], and write the result
//! to stdout (STYLE habit 3: a thin wrapper around one engine function each).

use futures::future::BoxFuture;

use crate::error::Error;
use crate::inspect::{InspectOptions, Inspection};
use crate::reference::{ImageRef, Target};
use crate::transport::{Opener as _, Transport};
use crate::verify::{Verification, VerifyOptions};

use super::args::{FormatArg, InspectArgs, ReadFlags, VerifyArgs};

/// Read what `args.reference` names; errors are ready for [`super::fail`].
pub fn run(args: &InspectArgs) -> Result<Inspection, Error> {
    let opts = InspectOptions {
        jobs: args.read.jobs as usize,
    };
    read_one(&args.reference, &args.read, |t, target| {
        Box::pin(async move { crate::inspect::inspect(t, &target, &opts).await })
    })
}

/// Check what `args.reference` names.
pub fn run_verify(args: &VerifyArgs) -> Result<Verification, Error> {
    let opts = VerifyOptions {
        deep: args.deep,
        jobs: args.read.jobs as usize,
    };
    read_one(&args.reference, &args.read, |t, target| {
        Box::pin(async move { crate::verify::verify(t, &target, &opts).await })
    })
}

/// Open `reference` read-only and run `f` on it, stopping at Ctrl-C.
fn read_one<T>(
    reference: &str,
    flags: &ReadFlags,
    f: impl for<'a> FnOnce(&'a dyn Transport, Target) -> BoxFuture<'a, Result<T, Error>>,
) -> Result<T, Error> {
    let reference: ImageRef = reference
        .parse()
        .map_err(|e: crate::reference::ReferenceError| Error::Usage(e.to_string()))?;
    let options = super::settings::one_registry(flags)?;
    super::runtime().block_on(async {
        let locations = crate::transport::Locations::new();
        let opened = locations
            .open(&reference, false, &options)
            .map_err(|e| Error::transport(format!("opening {reference}"), e))?;
        // The layout's own message names the location and what to do.
        let target = opened
            .resolve_target()
            .map_err(|e| Error::transport(format!("reading {reference}"), e))?;
        tokio::select! {
            r = f(opened.transport.as_ref(), target) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    })
}

/// Write the inspection in the chosen format.
pub fn write(
    inspection: &Inspection,
    format: FormatArg,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        FormatArg::Text => super::render::write_terminal_text(out, |o| inspection.write_text(o)),
        FormatArg::Json => inspection.write_json(out),
    }
}
