//! Detectors. Each judges one decoded form of a value and reports through a [`Sink`],
//! which keeps the strongest hit per class.

mod cmdi;
mod misc;
mod sqli;
mod ssrf;
mod traversal;
mod xss;

use crate::extract::{Origin, Value};
use crate::settings::Class;

/// A raw detection before exclusions and evidence rendering.
#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub class: Class,
    pub detector: &'static str,
    pub score: u32,
    pub snippet: String,
}

/// Collects hits for one value.
pub(crate) struct Sink<'a> {
    hits: Vec<Hit>,
    pub origin: Origin,
    pub header: Option<&'a str>,
}

impl Sink<'_> {
    pub(crate) fn new(origin: Origin, header: Option<&str>) -> Sink<'_> {
        Sink {
            hits: Vec::new(),
            origin,
            header,
        }
    }

    /// Records a hit, keeping only the strongest per class.
    pub(crate) fn hit(&mut self, class: Class, detector: &'static str, score: u32, snippet: &str) {
        if score == 0 {
            return;
        }
        let snippet: String = snippet.chars().take(200).collect();
        if let Some(h) = self.hits.iter_mut().find(|h| h.class == class) {
            if score > h.score {
                *h = Hit {
                    class,
                    detector,
                    score,
                    snippet,
                };
            }
            return;
        }
        self.hits.push(Hit {
            class,
            detector,
            score,
            snippet,
        });
    }

    pub(crate) fn into_hits(self) -> Vec<Hit> {
        self.hits
    }
}

/// Runs every applicable detector over every decoded form of `value`.
pub(crate) fn judge(value: &Value) -> Vec<Hit> {
    let mut sink = Sink::new(value.origin, value.header.as_deref());
    if let Some(bytes) = &value.raw_bytes {
        misc::deserialization_bytes(bytes, &mut sink);
    }
    for v in &value.variants {
        judge_text(v, value.origin, &mut sink);
    }
    sink.into_hits()
}

fn judge_text(text: &str, origin: Origin, sink: &mut Sink<'_>) {
    match origin {
        Origin::PathFull => {
            traversal::detect(text, sink);
            return;
        }
        Origin::XmlDoctype => {
            misc::xxe(text, sink);
            return;
        }
        Origin::FileContent => {
            // Uploaded content: code and serialized objects matter, prose does not.
            misc::code_injection(text, sink);
            misc::deserialization(text, sink);
            misc::jndi(text, sink);
            return;
        }
        Origin::Filename => {
            traversal::detect(text, sink);
            misc::dangerous_filename(text, sink);
            xss::detect(text, sink);
            return;
        }
        _ => {}
    }
    sqli::detect(text, sink);
    xss::detect(text, sink);
    cmdi::detect(text, sink);
    traversal::detect(text, sink);
    ssrf::detect(text, sink);
    misc::jndi(text, sink);
    misc::ssti(text, sink);
    misc::nosqli(text, sink);
    misc::ldapi(text, sink);
    misc::deserialization(text, sink);
    misc::prototype_pollution(text, sink);
    misc::crlf(text, sink);
    misc::code_injection(text, sink);
    misc::xxe(text, sink);
}

#[cfg(test)]
pub(crate) fn score_of(text: &str, origin: Origin, class: Class) -> u32 {
    let mut sink = Sink::new(origin, None);
    judge_text(text, origin, &mut sink);
    sink.hits
        .iter()
        .filter(|h| h.class == class)
        .map(|h| h.score)
        .max()
        .unwrap_or(0)
}

/// A fixed word list compiled once into an Aho-Corasick automaton, so a detector scans
/// a value once instead of once per word.
pub(crate) struct Dict {
    cell: std::sync::OnceLock<Option<aho_corasick::AhoCorasick>>,
    words: &'static [&'static str],
    nocase: bool,
}

impl Dict {
    /// A dictionary over `words`; `nocase` matches ASCII case-insensitively.
    pub(crate) const fn new(words: &'static [&'static str], nocase: bool) -> Dict {
        Dict {
            cell: std::sync::OnceLock::new(),
            words,
            nocase,
        }
    }

    /// The words, in the order given.
    pub(crate) fn words(&self) -> &'static [&'static str] {
        self.words
    }

    fn automaton(&self) -> Option<&aho_corasick::AhoCorasick> {
        self.cell
            .get_or_init(|| {
                aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(self.nocase)
                    .build(self.words)
                    .ok()
            })
            .as_ref()
    }

    /// Every (word index, start offset) occurrence, overlapping, at most `limit`.
    pub(crate) fn occurrences(&self, hay: &str, limit: usize) -> Vec<(usize, usize)> {
        match self.automaton() {
            Some(ac) => ac
                .find_overlapping_iter(hay)
                .take(limit)
                .map(|m| (m.pattern().as_usize(), m.start()))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Whether any word occurs in `hay`.
    pub(crate) fn any(&self, hay: &str) -> bool {
        self.automaton().is_some_and(|ac| ac.is_match(hay))
    }
}

#[cfg(test)]
mod cost_probe {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    #[ignore]
    fn detector_costs() {
        let samples = [
            "Please select the green ones if possible - the grey didn't match last time.",
            "Ring twice; if nobody answers, leave it with the neighbour at no. 16 (the one with the red door). Don't leave it by the bins!",
            "Loved the last order <3 Could you drop-down the delivery window to the morning? We're usually out from 1pm to 6pm, so before noon works best. Thanks a million, and select a plan for the extended warranty on the table if there's one on offer - 2 or 3 years is fine.",
            "https://track.parcels.example.com/t/IE1234567890?lang=en",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "7f3c2a90-1b6e-4c8a-9d2f-0e5a6b7c8d91",
            "O'Brien garden chairs",
        ];
        type Det = fn(&str, &mut Sink<'_>);
        let dets: [(&str, Det); 14] = [
            ("sqli", sqli::detect),
            ("xss", xss::detect),
            ("cmdi", cmdi::detect),
            ("traversal", traversal::detect),
            ("ssrf", ssrf::detect),
            ("jndi", misc::jndi),
            ("ssti", misc::ssti),
            ("nosqli", misc::nosqli),
            ("ldapi", misc::ldapi),
            ("deser", misc::deserialization),
            ("proto", misc::prototype_pollution),
            ("crlf", misc::crlf),
            ("code", misc::code_injection),
            ("xxe", misc::xxe),
        ];
        for s in samples {
            let mut line = format!("{:>4}B ", s.len());
            for (name, d) in dets {
                let n = 2000;
                let t = std::time::Instant::now();
                for _ in 0..n {
                    let mut sink = Sink::new(Origin::JsonValue, None);
                    d(std::hint::black_box(s), &mut sink);
                    std::hint::black_box(sink.hits.len());
                }
                let ns = t.elapsed().as_nanos() / n;
                line.push_str(&format!("{name}={ns} "));
            }
            let t = std::time::Instant::now();
            for _ in 0..2000 {
                std::hint::black_box(crate::decode::variants(std::hint::black_box(s), false));
            }
            line.push_str(&format!("variants={}", t.elapsed().as_nanos() / 2000));
            println!("{line}");
        }
    }
}
