//! GraphQL documents through the engine, as an `application/graphql` body and as the
//! `query` member of a JSON body: comments, strings, block strings and escapes; the
//! shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_inspect_fuzz::check_body(b"application/graphql", data);
    let doc = portcullis_inspect_fuzz::text(data);
    let json = serde_json::json!({ "query": doc, "variables": { "v": doc } }).to_string();
    portcullis_inspect_fuzz::check_body(b"application/json", json.as_bytes());
});
