//! Any text given as a config is either compiled or refused with errors; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match portcullis_config::Config::from_toml(text, std::path::Path::new("/nonexistent")) {
            Ok(config) => {
                let _ = config.summary();
            }
            Err(errors) => assert!(!errors.0.is_empty()),
        }
    }
});
