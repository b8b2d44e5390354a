//! JSON bodies through the engine: keys and strings with their paths, JSON inside JSON
//! strings, GraphQL in `query`, depth and value limits; the shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Settings};

fuzz_target!(|data: &[u8]| {
    let engine = Engine::new(Settings::default());
    let headers: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
    let req = portcullis_inspect_fuzz::body_request(&headers, data);
    portcullis_inspect_fuzz::check_inspection(&engine, &req);
});
