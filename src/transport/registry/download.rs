//! A blob download that survives a cut connection.
//!
//! The stream the copy engine sees goes on where it stopped, so the upload it feeds keeps flowing.
//! After a body error (or an early end) it asks again with `Range: bytes=N-`, through the one
//! request path like every request: a registry that answers 206 from N continues the body; one
//! that ignores ranges (200) sends the whole blob again and its first N bytes are dropped, so the
//! consumer never sees a byte twice; 416 ends the stream (the size check above reports it).
//! Digest and size are verified above this stream (`VerifyingStream` in `copy`) over the whole
//! blob, so a resumed body that differs is caught like any other corruption. At most
//! `retry_times` resumptions per download, [`backoff`] apart (each resumption request has its
//! own retries of 408/429/5xx, like every request).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::{HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use super::auth::Access;
use super::error::{header_str, redact, registry_error};
use super::request::{Request, backoff};
use super::session::Session;
use crate::transport::{BlobStream, Result, TransportError, chain};

pub(super) struct BlobDownload {
    session: Arc<Session>,
    access: Access,
    url: Url,
    size: u64,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    /// Bytes handed to the consumer so far.
    offset: u64,
    /// Bytes of the current body still to drop (a server that ignored the range resent them).
    skip: u64,
    resumes: u32,
    /// Why the current body ended early.
    cause: Option<TransportError>,
    done: bool,
}

impl BlobDownload {
    /// The download of `size` bytes at `url`, whose first answer is `resp`.
    pub fn new(
        session: Arc<Session>,
        access: Access,
        url: Url,
        size: u64,
        resp: Response,
    ) -> BlobDownload {
        BlobDownload {
            session,
            access,
            url,
            size,
            body: Some(resp.bytes_stream().boxed()),
            offset: 0,
            skip: 0,
            resumes: 0,
            cause: None,
            done: false,
        }
    }

    pub fn into_stream(self) -> BlobStream {
        futures::stream::unfold(self, |mut d| async move {
            let item = d.next_chunk().await?;
            Some((item, d))
        })
        .boxed()
    }

    fn http_error(&self, message: String) -> TransportError {
        TransportError::Http {
            method: "GET".into(),
            url: redact(&self.url),
            message,
        }
    }

    async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        loop {
            if self.done {
                return None;
            }
            let Some(body) = self.body.as_mut() else {
                match self.reopen().await {
                    Ok(true) => continue,
                    Ok(false) => {
                        self.done = true;
                        return None;
                    }
                    Err(e) => {
                        self.done = true;
                        return Some(Err(e));
                    }
                }
            };
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let n = self.skip.min(chunk.len() as u64);
                        self.skip -= n;
                        chunk = chunk.slice(n as usize..);
                    }
                    if chunk.is_empty() {
                        continue;
                    }
                    self.offset += chunk.len() as u64;
                    return Some(Ok(chunk));
                }
                Some(Err(e)) => {
                    self.cause = Some(self.http_error(chain(&e)));
                    self.body = None;
                }
                None if self.offset < self.size => {
                    self.cause = Some(self.http_error(format!(
                        "the body ended after {} of {} bytes",
                        self.offset, self.size
                    )));
                    self.body = None;
                }
                None => {
                    self.done = true;
                    return None;
                }
            }
        }
    }

    /// Ask for the rest. `Ok(false)`: the server has nothing past `offset` (416).
    async fn reopen(&mut self) -> Result<bool> {
        let cause = self
            .cause
            .take()
            .unwrap_or_else(|| self.http_error("the download stopped".into()));
        if self.resumes >= self.session.options.retry_times {
            return Err(cause);
        }
        tracing::debug!(
            url = %redact(&self.url),
            offset = self.offset,
            size = self.size,
            error = %cause,
            "blob download broke off; resuming"
        );
        backoff(self.resumes, None).await;
        self.resumes += 1;
        let range = HeaderValue::from_str(&format!("bytes={}-", self.offset)).expect("ASCII");
        let request = Request::new(Method::GET, self.url.clone())
            .access(&self.access)
            .header(RANGE, range);
        let resp = self.session.send(request).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = header_str(resp.headers(), "content-range").and_then(range_start);
                if start != Some(self.offset) {
                    return Err(self.http_error(format!(
                        "asked to resume at byte {}, the registry answered Content-Range {:?}",
                        self.offset,
                        header_str(resp.headers(), "content-range").unwrap_or("")
                    )));
                }
                self.skip = 0;
            }
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(false),
            s if s.is_success() => self.skip = self.offset,
            _ => return Err(registry_error(&Method::GET, &self.url, resp).await),
        }
        self.body = Some(resp.bytes_stream().boxed());
        Ok(true)
    }
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL`.
fn range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_start_of_a_content_range() {
        assert_eq!(range_start("bytes 100-199/200"), Some(100));
        assert_eq!(range_start("bytes */200"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }
}
