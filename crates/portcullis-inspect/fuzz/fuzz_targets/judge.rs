//! Every detector over one decoded form, as the engine runs them (the byte-class gates,
//! the word-only path): no panic, and the per-thread memo gives exactly the verdict a
//! fresh judgement gives, the first time and the second.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing as f;
use portcullis_inspect_fuzz::ValueInput;

fuzz_target!(|data: &[u8]| {
    let Some(v) = ValueInput::parse(data) else {
        return;
    };
    let fresh = f::judge(&v.text, v.origin, v.header, false);
    portcullis_inspect_fuzz::check_hits(&fresh, &[]);
    let memo = || f::judge(&v.text, v.origin, v.header, true);
    assert_eq!(memo(), fresh, "memo, first time");
    assert_eq!(memo(), fresh, "memo, second time");
});
