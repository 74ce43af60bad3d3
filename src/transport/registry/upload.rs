//! Blob upload sessions, which must not be left open.
//!
//! `POST …/blobs/uploads/` opens a session at the registry; the final `PUT` closes it. A session
//! whose upload failed is cancelled with a `DELETE`, and so is one dropped mid-flight (the copy
//! was interrupted, or a sibling transfer failed and the engine dropped this one): then the
//! `DELETE` runs in a background task, counted in the run's [`Cancellations`] so that the CLI can
//! wait for it before it exits ([`super::Sessions::finish_cancellations`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use super::auth::Access;
use super::error::{header_str, redact};
use super::request::Request;
use super::session::Session;
use crate::transport::{Result, TransportError};

/// The upload sessions of one run being cancelled in the background (see [`UploadSession`]),
/// shared by the run's sessions.
#[derive(Clone, Default)]
pub(super) struct Cancellations(Arc<AtomicUsize>);

impl Cancellations {
    /// Count one cancellation until the guard is dropped (however its task ends, also when the
    /// runtime drops it).
    fn begin(&self) -> Counted {
        self.0.fetch_add(1, Ordering::SeqCst);
        Counted(self.0.clone())
    }

    /// Wait (at most `limit`) until none is in flight.
    pub async fn finish(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.0.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An open blob upload session. Closed after the final PUT succeeded; cancelled (DELETE) when the
/// upload failed, or from a background task when it is dropped while still open.
pub(super) struct UploadSession {
    session: Arc<Session>,
    access: Access,
    url: Url,
    open: bool,
}

impl UploadSession {
    pub fn open(session: Arc<Session>, access: Access, url: Url) -> UploadSession {
        UploadSession {
            session,
            access,
            url,
            open: true,
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The upload is complete: nothing to cancel.
    pub fn close(mut self) {
        self.open = false;
    }

    pub async fn cancel(mut self) {
        self.open = false;
        cancel_upload(&self.session, &self.access, &self.url).await;
    }
}

impl Drop for UploadSession {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let counted = self.session.cancellations.begin();
        let (session, access, url) = (self.session.clone(), self.access.clone(), self.url.clone());
        runtime.spawn(async move {
            let _counted = counted;
            cancel_upload(&session, &access, &url).await;
        });
    }
}

/// DELETE an upload session (best effort: a registry that cannot delete sessions expires them).
/// The session URL keeps its query (registry 2.x refuses a DELETE without its `_state`), less a
/// `digest` parameter added for the final PUT.
pub(super) async fn cancel_upload(session: &Session, access: &Access, location: &Url) {
    let mut url = location.clone();
    let kept: Vec<(String, String)> = location
        .query_pairs()
        .filter(|(k, _)| k != "digest")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    let _ = session
        .send(Request::new(Method::DELETE, url).access(access))
        .await;
}

/// Where the upload session a `POST …/blobs/uploads/` opened lives (its `Location`).
pub(super) fn upload_location(request_url: &Url, headers: &HeaderMap) -> Result<Url> {
    let loc = header_str(headers, "location").ok_or_else(|| {
        TransportError::protocol(redact(request_url), "the registry gave no upload Location")
    })?;
    request_url.join(loc).map_err(|e| {
        TransportError::protocol(
            redact(request_url),
            format!("bad upload Location {loc:?}: {e}"),
        )
    })
}
