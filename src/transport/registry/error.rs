//! Reading a registry's refusals, and keeping secrets out of messages.
//!
//! A refused request becomes [`TransportError::Registry`] with the method, a redacted URL, the
//! status and the spec's error items (the copy engine reads `MANIFEST_BLOB_UNKNOWN` and its
//! digests). URLs in messages never carry user info or a query: upload URLs hold state tokens.

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, Url};

use crate::transport::{RegistryErrorItem, TransportError};

/// A URL fit for messages: no user info, no query (upload URLs carry state tokens).
pub(super) fn redact(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

/// A header's value as text, when it is text.
pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A refusal, with the items of its error body (distribution spec error format). The body is
/// read up to its cap; a larger (or unreadable) one is left unread and the refusal has no items.
pub(super) async fn registry_error(method: &Method, url: &Url, resp: Response) -> TransportError {
    let status = resp.status().as_u16();
    let bytes = super::request::read_capped(resp, super::request::caps::ERROR_BODY)
        .await
        .unwrap_or_default();
    TransportError::Registry {
        method: method.to_string(),
        url: redact(url),
        status,
        errors: parse_error_body(&bytes),
    }
}

/// A refusal without a body to read (the answer to a `HEAD`).
pub(super) fn status_error(method: &Method, url: &Url, status: u16) -> TransportError {
    TransportError::Registry {
        method: method.to_string(),
        url: redact(url),
        status,
        errors: vec![],
    }
}

/// The `errors` of a registry's JSON error body; empty when the body is not one.
pub fn parse_error_body(bytes: &[u8]) -> Vec<RegistryErrorItem> {
    #[derive(serde::Deserialize)]
    struct Body {
        #[serde(default)]
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: serde_json::Value,
    }
    let Ok(body) = serde_json::from_slice::<Body>(bytes) else {
        return vec![];
    };
    body.errors
        .into_iter()
        .map(|i| RegistryErrorItem {
            code: i.code,
            message: i.message,
            detail: match i.detail {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_bodies() {
        let body = br#"{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"sha256:aa"},{"code":"X","detail":{"a":1}}]}"#;
        let items = parse_error_body(body);
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].code, "MANIFEST_BLOB_UNKNOWN");
        assert_eq!(items[0].detail, "sha256:aa");
        assert_eq!(items[1].detail, r#"{"a":1}"#);
        assert!(parse_error_body(b"404 page not found").is_empty());
    }

    #[test]
    fn redacts_urls() {
        let u = Url::parse("https://user:secret@host/v2/x/blobs/uploads/1?_state=abc").unwrap();
        assert_eq!(redact(&u), "https://host/v2/x/blobs/uploads/1");
    }
}
