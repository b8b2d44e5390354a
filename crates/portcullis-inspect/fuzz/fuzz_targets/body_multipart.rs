//! Multipart bodies through the engine: parts split on the boundary, part headers
//! (`Content-Disposition` name and filename, `Content-Type`, quoted-printable and base64
//! `Content-Transfer-Encoding`), file contents, JSON and XML parts; the shared inspection
//! invariants. The first line of the input, up to 70 bytes, is the boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Settings};

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(p) if p <= 70 => (&data[..p], &data[p + 1..]),
        _ => (&b"XX"[..], data),
    };
    let mut ct = b"multipart/form-data; boundary=".to_vec();
    ct.extend_from_slice(boundary);
    let engine = Engine::new(Settings::default());
    let headers: [(&str, &[u8]); 1] = [("content-type", &ct)];
    let req = portcullis_inspect_fuzz::body_request(&headers, body);
    portcullis_inspect_fuzz::check_inspection(&engine, &req);
});
