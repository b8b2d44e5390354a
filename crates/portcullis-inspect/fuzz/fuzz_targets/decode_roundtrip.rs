//! Encode arbitrary text with each scheme the engine undoes, then decode: the decoder
//! must give the text back. A decoder that loses or invents characters lets an
//! encoded attack through or flags what was never sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing as f;
use std::fmt::Write;

fn b64(data: &[u8], url_safe: bool) -> String {
    let abc: &[u8; 64] = if url_safe {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let v = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for k in 0..=chunk.len() {
            out.push(char::from(abc[(v >> (18 - 6 * k) & 63) as usize]));
        }
    }
    if !url_safe {
        while !out.len().is_multiple_of(4) {
            out.push('=');
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Percent: every byte escaped.
    let mut pct = String::new();
    for &b in rest {
        let _ = write!(pct, "%{b:02X}");
    }
    assert_eq!(f::percent_decode(pct.as_bytes(), mode & 1 == 1), rest);
    // Base64, standard and URL-safe.
    assert_eq!(
        f::base64_decode(&b64(rest, mode & 2 == 2)).as_deref(),
        Some(rest)
    );
    let Ok(s) = std::str::from_utf8(rest) else {
        return;
    };
    // HTML: numeric references, decimal or hex, with or without `;`... (`;` is needed
    // when a digit follows, as in browsers).
    let mut html = String::new();
    for c in s.chars() {
        if mode & 4 == 4 {
            let _ = write!(html, "&#x{:x};", u32::from(c));
        } else {
            let _ = write!(html, "&#{};", u32::from(c));
        }
    }
    assert_eq!(f::html_entities(&html), s);
    // JavaScript: `\u{X}` for every character.
    let mut js = String::new();
    for c in s.chars() {
        let _ = write!(js, "\\u{{{:x}}}", u32::from(c));
    }
    assert_eq!(f::js_unescape(&js), s);
    // Text with no escape marker is left alone by every layer.
    if !s.contains(['%', '&', '\\', '+']) {
        assert_eq!(f::normalize(s, true), s);
    }
});
