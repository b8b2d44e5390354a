//! XML bodies through the engine: the tolerant scanner (text, attributes, names, CDATA,
//! comments, processing instructions, DOCTYPE with internal subsets, the `encoding`
//! label); the shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Settings};

fuzz_target!(|data: &[u8]| {
    let engine = Engine::new(Settings::default());
    let headers: [(&str, &[u8]); 1] = [("content-type", b"application/xml")];
    let req = portcullis_inspect_fuzz::body_request(&headers, data);
    portcullis_inspect_fuzz::check_inspection(&engine, &req);
});
