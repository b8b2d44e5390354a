//! Linear time: a request part built as `prefix unit1… middle unit2… suffix`, each unit
//! (at most 8 bytes) repeated `REPEAT` times for a small input and eight times as often
//! for a large one. A linear engine takes about eight times longer on the large input; a
//! quadratic one about 64 times. The target fails when the ratio stays above 24 on
//! re-measuring (and the large input takes over 10 ms, so timer noise on tiny inputs does
//! not count).
//!
//! `REPEAT` is divisible by every period up to 10, so both inputs end their runs in the
//! same phase: a parser that consumes a run of `"` three at a time is in the same state
//! after both, and the two inputs differ in length only, not in shape.
//!
//! A timing oracle: a report on a loaded machine is confirmed by re-running the artifact
//! (`cargo fuzz run linear <artifact>`) before it is believed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Request, Settings};
use std::time::{Duration, Instant};

/// Repetitions of each unit in the small input (the lcm of 1..=10); the large one has
/// eight times as many.
const REPEAT: usize = 2520;
/// Longest unit used; the rest of a longer one is dropped.
const MAX_UNIT: usize = 8;
const RATIO: u32 = 24;
const FLOOR: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy)]
enum Place {
    Query,
    Path,
    Json,
    JsonString,
    Xml,
    Form,
    Multipart,
    Graphql,
    Raw,
    Header,
    Cookie,
    UserAgent,
    Referer,
    Authorization,
}

const PLACES: [Place; 14] = [
    Place::Query,
    Place::Path,
    Place::Json,
    Place::JsonString,
    Place::Xml,
    Place::Form,
    Place::Multipart,
    Place::Graphql,
    Place::Raw,
    Place::Header,
    Place::Cookie,
    Place::UserAgent,
    Place::Referer,
    Place::Authorization,
];

/// The input format: one byte picking the place, then `prefix`, `unit1`, `middle`,
/// `unit2` and `suffix` separated by `0xFF` (so seeds are easy to write by hand).
struct Input<'a> {
    place: Place,
    prefix: &'a [u8],
    unit1: &'a [u8],
    middle: &'a [u8],
    unit2: &'a [u8],
    suffix: &'a [u8],
}

fn pump(input: &Input<'_>, repeat: usize) -> Vec<u8> {
    let unit = |u: &[u8]| u[..u.len().min(MAX_UNIT)].repeat(repeat);
    let mut out = input.prefix.to_vec();
    out.extend(unit(input.unit1));
    out.extend_from_slice(input.middle);
    out.extend(unit(input.unit2));
    out.extend_from_slice(input.suffix);
    out
}

fn time(engine: &Engine, place: Place, data: &[u8]) -> Duration {
    let text = portcullis_inspect_fuzz::text(data);
    let (path, query) = match place {
        Place::Path => (format!("/{text}"), None),
        Place::Query => ("/".to_string(), Some(text.as_str())),
        _ => ("/".to_string(), None),
    };
    let json_string;
    let (ct, body): (&[u8], &[u8]) = match place {
        Place::Json => (b"application/json", data),
        Place::JsonString => {
            json_string = serde_json::json!({ "v": text }).to_string();
            (b"application/json", json_string.as_bytes())
        }
        Place::Xml => (b"application/xml", data),
        Place::Form => (b"application/x-www-form-urlencoded", data),
        Place::Multipart => (b"multipart/form-data; boundary=XX", data),
        Place::Graphql => (b"application/graphql", data),
        Place::Raw => (b"text/plain", data),
        _ => (b"text/plain", b""),
    };
    let name = match place {
        Place::Cookie => "cookie",
        Place::UserAgent => "user-agent",
        Place::Referer => "referer",
        Place::Authorization => "authorization",
        _ => "x-custom",
    };
    let header_value: &[u8] = match place {
        Place::Header
        | Place::Cookie
        | Place::UserAgent
        | Place::Referer
        | Place::Authorization => data,
        _ => b"",
    };
    let headers: [(&str, &[u8]); 2] = [("content-type", ct), (name, header_value)];
    let req = Request {
        method: "POST",
        path: &path,
        query,
        headers: &headers,
        body,
    };
    let started = Instant::now();
    std::hint::black_box(engine.inspect(std::hint::black_box(&req)));
    started.elapsed()
}

fn superlinear(
    engine: &Engine,
    place: Place,
    small: &[u8],
    large: &[u8],
) -> Option<(Duration, Duration)> {
    let ts = (0..2).map(|_| time(engine, place, small)).min()?;
    let tl = time(engine, place, large);
    (tl > FLOOR && tl > ts * RATIO).then_some((ts, tl))
}

fn parse(data: &[u8]) -> Option<Input<'_>> {
    let (&place, rest) = data.split_first()?;
    let mut parts = rest.splitn(5, |&b| b == 0xFF);
    let mut next = || parts.next().unwrap_or(&[]);
    Some(Input {
        place: PLACES[usize::from(place) % PLACES.len()],
        prefix: next(),
        unit1: next(),
        middle: next(),
        unit2: next(),
        suffix: next(),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = parse(data) else {
        return;
    };
    if input.unit1.is_empty() && input.unit2.is_empty() {
        return;
    }
    // Values are judged whole, not on a 64 KiB prefix.
    let engine = Engine::new(Settings {
        max_value_len: 1 << 20,
        max_file_bytes: 1 << 20,
        ..Settings::default()
    });
    let small = pump(&input, REPEAT);
    let large = pump(&input, 8 * REPEAT);
    if superlinear(&engine, input.place, &small, &large).is_none() {
        return;
    }
    // Confirm before reporting: the machine may just have been busy.
    let confirmed: Vec<_> = (0..3)
        .map_while(|_| superlinear(&engine, input.place, &small, &large))
        .collect();
    if confirmed.len() == 3 {
        panic!(
            "superlinear: {} bytes in {:?}, {} bytes in {:?} ({:?})",
            small.len(),
            confirmed[2].0,
            large.len(),
            confirmed[2].1,
            input.place
        );
    }
});
