//! JSON bodies through the engine: keys and strings with their paths, JSON inside JSON
//! strings, GraphQL in `query`, depth and value limits; the shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_inspect_fuzz::check_body(b"application/json", data);
});
