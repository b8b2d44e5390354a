//! `Cookie` headers through the engine: `;` and `=` splitting, quoted and
//! percent-encoded values, RFC 2109 `$Version`/`$Path` attributes, framework session
//! cookies; the shared inspection invariants. The input also goes in as a `Referer`
//! (its query parameters) and a `User-Agent` (the product-list parser).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Request, Settings};

fuzz_target!(|data: &[u8]| {
    let engine = Engine::new(Settings::default());
    for name in ["cookie", "referer", "user-agent", "authorization"] {
        let headers: [(&str, &[u8]); 1] = [(name, data)];
        let req = Request {
            method: "GET",
            path: "/fuzz",
            query: None,
            headers: &headers,
            body: b"",
        };
        portcullis_inspect_fuzz::check_inspection(&engine, &req);
    }
});
