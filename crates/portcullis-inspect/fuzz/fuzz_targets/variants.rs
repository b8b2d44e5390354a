//! The decoded forms of a value: no panic, a handful of forms, none much longer than
//! the value, the value itself first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing as f;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let s = portcullis_inspect_fuzz::text(rest);
    let forms = f::variants(&s, mode & 1 == 1);
    assert_eq!(forms.first().map(String::as_str), Some(s.as_str()));
    assert!(forms.len() <= 8, "{} forms", forms.len());
    for v in &forms {
        assert!(
            v.len() <= 2 * s.len() + 16,
            "a form of {} bytes from {}",
            v.len(),
            s.len()
        );
    }
    let again = f::variants(&s, mode & 1 == 1);
    assert_eq!(forms, again);
    // Evidence: bounded, no control characters.
    let ev = f::redact(&s);
    assert!(ev.chars().count() <= portcullis_inspect_fuzz::MAX_EVIDENCE_CHARS);
    assert!(!ev.chars().any(char::is_control));
});
