//! The `sync` config file: any text gives a config or a usage error with file and line, never a
//! panic (line numbers are looked up in the text for every error).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match mirror::config::parse(text, std::path::Path::new("fuzz.yaml")) {
        Ok(config) => {
            for job in &config.images {
                let _ = format!("{job:?}");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
