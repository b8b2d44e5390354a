//! The other detectors, one picked by the first byte: Log4j lookups, template
//! expressions, NoSQL operators, LDAP filters, serialized objects (text and bytes),
//! prototype pollution, CR/LF, code injection, XXE, upload names, scanner agents and the
//! protocol checks (media types, charsets, legacy cookies, hanging floats).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing::Detector;

fuzz_target!(|data: &[u8]| {
    let Some((&which, value)) = data.split_first() else {
        return;
    };
    let detector = Detector::MISC[usize::from(which) % Detector::MISC.len()];
    portcullis_inspect_fuzz::check_detector_bytes(detector, value);
});
