//! A registry's error body (the distribution spec's `{"errors": [...]}`, or anything else a
//! server sends with an error status): reading it never panics, and the message built from it
//! neither.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::transport::TransportError;
use mirror::transport::registry::parse_error_body;

fuzz_target!(|data: &[u8]| {
    let errors = parse_error_body(data);
    let e = TransportError::Registry {
        method: "PUT".into(),
        url: "http://127.0.0.1/v2/x/manifests/y".into(),
        status: 400,
        errors,
    };
    let _ = e.to_string();
});
