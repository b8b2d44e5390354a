//! HTTP/1.1 framing (`portcullis-h1`): any bytes as a request head, a response head and a
//! chunked body. Never a panic; a head that parses is split off exactly (what follows it is
//! left alone), re-serialised with CRLF it parses to the same head; a chunked body decodes to
//! the same bytes and the same end whatever the reads it arrives in.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use portcullis_h1::chunked::Decoder;
use portcullis_h1::{parse_request, parse_response};

const MAX: usize = 8192;

fn dechunk(
    input: &[u8],
    step: usize,
) -> (
    Result<Vec<u8>, portcullis_h1::chunked::ChunkError>,
    usize,
    bool,
) {
    let mut decoder = Decoder::new(1024);
    let mut body = Vec::new();
    let mut at = 0;
    while !decoder.is_done() && at < input.len() {
        let end = (at + step).min(input.len());
        // Feed at most `step` new bytes; the decoder never needs to see a byte twice.
        let mut window = &input[at..end];
        while !window.is_empty() && !decoder.is_done() {
            match decoder.decode(window) {
                Err(err) => return (Err(err), 0, false),
                Ok(decoded) => {
                    body.extend_from_slice(&window[decoded.data.clone()]);
                    assert!(decoded.consumed <= window.len());
                    if decoded.consumed == 0 {
                        break;
                    }
                    window = &window[decoded.consumed..];
                    at += decoded.consumed;
                }
            }
        }
        if !decoder.is_done() && at < end {
            unreachable!("the decoder left input unconsumed before the end of the message");
        }
    }
    (Ok(body), at, decoder.is_done())
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, data)) = data.split_first() else {
        return;
    };

    let mut buf = BytesMut::from(data);
    if let Ok(Some(head)) = parse_request(&mut buf, MAX) {
        assert!(data.ends_with(&buf), "only the head is split off");
        let mut again = Vec::new();
        again.extend_from_slice(head.parts.method.as_str().as_bytes());
        again.push(b' ');
        again.extend_from_slice(head.parts.uri.to_string().as_bytes());
        again.extend_from_slice(if head.parts.version == http::Version::HTTP_10 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
        for (name, value) in &head.parts.headers {
            again.extend_from_slice(name.as_str().as_bytes());
            again.extend_from_slice(b": ");
            again.extend_from_slice(value.as_bytes());
            again.extend_from_slice(b"\r\n");
        }
        again.extend_from_slice(b"\r\n");
        let mut again = BytesMut::from(&again[..]);
        let reparsed = parse_request(&mut again, usize::MAX)
            .expect("a re-serialised head parses")
            .expect("complete");
        assert!(again.is_empty());
        assert_eq!(reparsed.parts.method, head.parts.method);
        assert_eq!(reparsed.parts.headers, head.parts.headers);
        assert_eq!(reparsed.framing, head.framing);
        assert_eq!(reparsed.keep_alive, head.keep_alive);
    }

    let mut buf = BytesMut::from(data);
    if let Ok(Some(_)) = parse_response(&mut buf, step & 1 == 1, MAX) {
        assert!(data.ends_with(&buf));
    }

    let whole = dechunk(data, data.len().max(1));
    let split = dechunk(data, usize::from(step % 16) + 1);
    assert_eq!(whole, split, "the same body whatever the reads");
});
