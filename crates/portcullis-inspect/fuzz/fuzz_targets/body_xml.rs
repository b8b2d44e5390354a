//! XML bodies through the engine: the tolerant scanner (text, attributes, names, CDATA,
//! comments, processing instructions, DOCTYPE with internal subsets, the `encoding`
//! label); the shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_inspect_fuzz::check_body(b"application/xml", data);
});
