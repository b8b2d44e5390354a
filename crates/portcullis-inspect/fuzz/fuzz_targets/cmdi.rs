//! The Cmdi detector alone: the shell tokenizer (quoting, $IFS, command positions), cmd.exe
//! and PowerShell. Any origin and header context; no panic, only its own class,
//! deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing::Detector;

fuzz_target!(|data: &[u8]| {
    portcullis_inspect_fuzz::check_detector_bytes(Detector::Cmdi, data);
});
