//! Every decoder on the same input: no panic, and output bounded by the input (no
//! decoder may amplify a value the engine then judges several times over).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing as f;

fuzz_target!(|data: &[u8]| {
    let plus = data.first().is_some_and(|b| b & 1 == 1);
    // Bytes: each escape is at least as long as what it decodes to.
    assert!(f::percent_decode(data, plus).len() <= data.len());
    // An invalid byte becomes a two-byte Latin-1 character; nothing else grows.
    let text = f::bytes_to_text(data);
    assert!(text.len() <= 2 * data.len());
    if let Some(wide) = f::utf16_body(data) {
        // Two bytes make at most one BMP character (three bytes in UTF-8).
        assert!(wide.len() <= 3 * data.len() / 2 + 3);
    }
    let s = text.as_ref();
    let n = s.len();
    // On text each escape spells at most as many bytes as it takes.
    assert!(f::url_decode(s, plus).len() <= n);
    assert!(f::html_entities(s).len() <= n);
    assert!(f::js_unescape(s).len() <= n);
    assert!(f::quoted_printable(s).len() <= 2 * n);
    if let Some(u7) = f::utf7_decode(s) {
        // 16 bits per 2⅔ base64 characters, at most three UTF-8 bytes per unit.
        assert!(u7.len() <= 2 * n);
    }
    if let Some(bytes) = f::base64_decode(s) {
        assert!(bytes.len() <= n * 3 / 4);
        let _ = f::mostly_text(&bytes);
    }
    let _ = f::plausible_base64(s);
    if let Some(folded) = f::fold_lookalikes(s) {
        assert!(folded.len() <= n);
    }
    assert!(f::normalize(s, plus).len() <= n);
});
