//! Form bodies through the engine: `&`/`=` splitting, `+` and percent layers, entity
//! references that span the separators, `_charset_`; the shared inspection invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis_inspect_fuzz::check_body(b"application/x-www-form-urlencoded", data);
});
