//! The other detectors, one picked by the first byte: Log4j lookups, template
//! expressions, NoSQL operators, LDAP filters, serialized objects (text and bytes),
//! prototype pollution, CR/LF, code injection, XXE, upload names, scanner agents and the
//! protocol checks (media types, charsets, legacy cookies, hanging floats).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing::{Detector, HEADERS};

fuzz_target!(|data: &[u8]| {
    let [which, origin, header, rest @ ..] = data else {
        return;
    };
    let detector = Detector::MISC[usize::from(*which) % Detector::MISC.len()];
    let text = portcullis_inspect_fuzz::text(rest);
    let header = HEADERS[usize::from(*header) % HEADERS.len()];
    portcullis_inspect_fuzz::check_detector(detector, &text, *origin, header);
});
