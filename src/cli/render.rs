//! Rendering engine events on stderr: one plain line per finished blob or manifest.

use std::io::Write;

use crate::copy::{BlobHow, Event, Events};
use crate::report::human_bytes;

pub struct PlainLines {
    pub quiet: bool,
    pub verbose: bool,
}

impl Events for PlainLines {
    fn event(&self, event: Event<'_>) {
        if self.quiet {
            return;
        }
        let line = match event {
            Event::BlobStarted { blob, .. } if self.verbose => {
                format!(
                    "blob {} {} started",
                    blob.digest.short(),
                    human_bytes(blob.size)
                )
            }
            Event::BlobStarted { .. } => return,
            Event::BlobDone { blob, how } => format!(
                "blob {} {} {} ({})",
                blob.digest.short(),
                human_bytes(blob.size),
                match how {
                    BlobHow::Transferred => "copied",
                    BlobHow::Mounted => "mounted",
                },
                blob.used_by.join(", ")
            ),
            Event::ManifestPushed {
                digest,
                media_type,
                tag,
            } => match tag {
                Some(t) => format!("manifest {} pushed as :{t} ({media_type})", digest.short()),
                None => format!("manifest {} pushed ({media_type})", digest.short()),
            },
            Event::Retrying {
                what,
                attempt,
                error,
            } => format!("retrying {what} (attempt {attempt}): {error}"),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}
