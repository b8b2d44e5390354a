//! GraphQL documents through the engine, as an `application/graphql` body and as the
//! `query` member of a JSON body: comments, strings, block strings and escapes; the
//! shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Settings};

fuzz_target!(|data: &[u8]| {
    let engine = Engine::new(Settings::default());
    let headers: [(&str, &[u8]); 1] = [("content-type", b"application/graphql")];
    let req = portcullis_inspect_fuzz::body_request(&headers, data);
    portcullis_inspect_fuzz::check_inspection(&engine, &req);
    let doc = portcullis_inspect_fuzz::text(data);
    let json = serde_json::json!({ "query": doc, "variables": { "v": doc } }).to_string();
    let headers: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
    let req = portcullis_inspect_fuzz::body_request(&headers, json.as_bytes());
    portcullis_inspect_fuzz::check_inspection(&engine, &req);
});
