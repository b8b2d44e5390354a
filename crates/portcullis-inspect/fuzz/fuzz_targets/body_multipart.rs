//! Multipart bodies through the engine: parts split on the boundary, part headers
//! (`Content-Disposition` name and filename, `Content-Type`, quoted-printable and base64
//! `Content-Transfer-Encoding`), file contents, JSON and XML parts; the shared inspection
//! invariants. The first line of the input, up to 70 bytes, is the boundary.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (boundary, body) = match data.iter().position(|&b| b == b'\n') {
        Some(p) if p <= 70 => (&data[..p], &data[p + 1..]),
        _ => (&b"XX"[..], data),
    };
    let mut ct = b"multipart/form-data; boundary=".to_vec();
    ct.extend_from_slice(boundary);
    portcullis_inspect_fuzz::check_body(&ct, body);
});
