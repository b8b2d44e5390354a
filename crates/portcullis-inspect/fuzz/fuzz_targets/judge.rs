//! Every detector over one decoded form, as the engine runs them (the byte-class gates,
//! the word-only path): no panic, and the per-thread memo gives exactly the verdict a
//! fresh judgement gives, the first time and the second.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing::{self as f, HEADERS};

fuzz_target!(|data: &[u8]| {
    let [origin, header, rest @ ..] = data else {
        return;
    };
    let text = portcullis_inspect_fuzz::text(rest);
    let header = HEADERS[usize::from(*header) % HEADERS.len()];
    let fresh = f::judge(&text, *origin, header, false);
    portcullis_inspect_fuzz::check_hits(&fresh, &[]);
    assert_eq!(
        f::judge(&text, *origin, header, true),
        fresh,
        "memo, first time"
    );
    assert_eq!(
        f::judge(&text, *origin, header, true),
        fresh,
        "memo, second time"
    );
});
