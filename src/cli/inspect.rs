//! `mirror inspect REF`: resolve the arguments, open the location read-only, call
//! [`crate::inspect::inspect`], and write the tree or JSON to stdout (STYLE habit 3: a thin wrapper
//! around one engine function).

use crate::error::Error;
use crate::inspect::{InspectOptions, Inspection};
use crate::reference::ImageRef;
use crate::transport::registry::RegistryOptions;

use super::args::{FormatArg, InspectArgs};

/// Read what `args.reference` names; errors are ready for [`super::fail`].
pub fn run(args: &InspectArgs) -> Result<Inspection, Error> {
    let reference: ImageRef = args
        .reference
        .parse()
        .map_err(|e: crate::reference::ReferenceError| Error::Usage(e.to_string()))?;
    let credentials = match args.creds.as_deref() {
        None => None,
        Some(c) => {
            let (user, pass) = c.split_once(':').unwrap_or((c, ""));
            if user.is_empty() {
                return Err(Error::Usage(
                    "--creds: the user name is empty (expected USER[:PASS])".into(),
                ));
            }
            Some((user.to_string(), pass.to_string()))
        }
    };
    let options = RegistryOptions {
        credentials,
        tls_verify: args.tls_verify,
        retry_times: args.retry_times,
        ..RegistryOptions::default()
    };
    let opts = InspectOptions {
        jobs: args.jobs as usize,
    };
    super::runtime().block_on(async {
        tokio::select! {
            r = inspect_ref(&reference, &options, &opts) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    })
}

async fn inspect_ref(
    reference: &ImageRef,
    options: &RegistryOptions,
    opts: &InspectOptions,
) -> Result<Inspection, Error> {
    use crate::transport::Opener as _;
    let locations = crate::transport::Locations::new();
    let opened = locations
        .open(reference, false, options)
        .map_err(|e| Error::transport(format!("opening {reference}"), e))?;
    // The layout's own message names the location and what to do.
    let target = opened
        .resolve_target()
        .map_err(|e| Error::transport(format!("reading {reference}"), e))?;
    crate::inspect::inspect(opened.transport.as_ref(), &target, opts).await
}

/// Write the inspection in the chosen format.
pub fn write(
    inspection: &Inspection,
    format: FormatArg,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    match format {
        FormatArg::Text => inspection.write_text(out),
        FormatArg::Json => inspection.write_json(out),
    }
}
