//! Image references (`docker://…`, bare names, `oci:`, `oci-archive:`): parsing never panics, and
//! a parsed reference prints as text that parses back to the same reference (reports and
//! messages print references; `sync` builds them from the config).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::reference::ImageRef;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<ImageRef>() {
        let shown = r.to_string();
        let again: ImageRef = shown.parse().unwrap_or_else(|e| {
            panic!("{text:?} parsed, printed as {shown:?}, which does not parse: {e}")
        });
        assert_eq!(again, r, "{text:?} printed as {shown:?}");
    }
});
