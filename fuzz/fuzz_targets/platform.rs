//! `--platform` values: parsing never panics; a parsed spec prints as text that parses back to
//! the same spec, and matching it against any platform never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::platform::{Platform, PlatformSpec};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = mirror::platform::parse_list(&[text]);
    if let Ok(spec) = text.parse::<PlatformSpec>() {
        let shown = spec.to_string();
        let again: PlatformSpec = shown.parse().unwrap_or_else(|e| {
            panic!("{text:?} parsed, printed as {shown:?}, which does not parse: {e}")
        });
        assert_eq!(again, spec, "{text:?} printed as {shown:?}");
        // The same text as an index entry's platform (os/arch/variant), however odd.
        let mut parts = text.splitn(3, '/');
        let p = Platform {
            os: parts.next().unwrap_or("").to_string(),
            architecture: parts.next().unwrap_or("").to_string(),
            variant: parts.next().map(str::to_string),
            ..Default::default()
        };
        let _ = spec.matches(&p);
        let _ = p.normalized();
        let _ = p.to_string();
    }
});
