//! The SSRF detector and its parsers: `inet_aton`-style IPv4, IPv6, authority splitting.
//! Canonical addresses must parse to what the standard library reads; the authority is
//! a slice of its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::fuzzing::{self as f, Detector};
use std::net::{Ipv4Addr, Ipv6Addr};

fuzz_target!(|data: &[u8]| {
    let Some(input) = portcullis_inspect_fuzz::check_detector_bytes(Detector::Ssrf, data) else {
        return;
    };
    let text = input.text;

    let v4 = f::parse_ipv4(&text);
    if let Ok(std) = text.parse::<Ipv4Addr>() {
        assert_eq!(v4, Some((u32::from(std), false)), "IPv4 {text:?}");
    }
    if let (Some((addr, false)), true) = (v4, text.bytes().all(|c| c.is_ascii_digit() || c == b'.'))
    {
        // A plain spelling of digits and dots is a canonical dotted quad.
        assert_eq!(
            text.parse::<Ipv4Addr>().ok(),
            Some(Ipv4Addr::from(addr)),
            "{text:?}"
        );
    }
    if let Ok(std) = text.parse::<Ipv6Addr>() {
        assert_eq!(f::parse_ipv6(&text), Some(std.segments()), "IPv6 {text:?}");
    }
    let (host, _) = f::authority(&text);
    let start = host.as_ptr() as usize - text.as_ptr() as usize;
    assert!(start + host.len() <= text.len());
});
