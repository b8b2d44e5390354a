//! The Cmdi detector alone: the shell tokenizer (quoting, $IFS, command positions), cmd.exe and PowerShell. Any origin and header context; no panic, only
//! its own class, deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing::{Detector, HEADERS};

fuzz_target!(|data: &[u8]| {
    let [origin, header, rest @ ..] = data else {
        return;
    };
    let text = portcullis_inspect_fuzz::text(rest);
    let header = HEADERS[usize::from(*header) % HEADERS.len()];
    portcullis_inspect_fuzz::check_detector(Detector::Cmdi, &text, *origin, header);
});
