//! Detectors. Each judges one decoded form of a value and reports through a [`Sink`],
//! which keeps the strongest hit per class.

pub(crate) mod cmdi;
pub(crate) mod misc;
pub(crate) mod protocol;
mod session;
pub(crate) mod sqli;
pub(crate) mod ssrf;
pub(crate) mod traversal;
pub(crate) mod xss;

use std::borrow::Cow;

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
    /// Features of the form being judged ([`Feat::ALL`] when not computed): a detector
    /// may skip a search for a character the form does not hold.
    pub feat: Feat,
    /// Dictionaries with a word in the form being judged ([`Words::ALL`] when not scanned).
    pub words: Words,
}

impl Sink<'_> {
    pub(crate) fn new(origin: Origin, header: Option<&str>) -> Sink<'_> {
        Sink {
            hits: Vec::new(),
            origin,
            header,
            feat: Feat::ALL,
            words: Words::ALL,
        }
    }

    /// Records a hit, keeping only the strongest per class.
    pub(crate) fn hit(&mut self, class: Class, detector: &'static str, score: u32, snippet: &str) {
        if score == 0 {
            return;
        }
        let hit = || Hit {
            class,
            detector,
            score,
            snippet: snippet.chars().take(200).collect(),
        };
        match self.hits.iter_mut().find(|h| h.class == class) {
            Some(h) if score > h.score => *h = hit(),
            Some(_) => {}
            None => self.hits.push(hit()),
        }
    }

    pub(crate) fn into_hits(self) -> Vec<Hit> {
        self.hits
    }
}

/// The strongest (score, rule) a detector has found in one value so far; of equal
/// scores the first rule found is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Strongest(u32, &'static str);

impl Strongest {
    pub(crate) const NONE: Strongest = Strongest(0, "");

    pub(crate) fn consider(&mut self, (score, rule): (u32, &'static str)) {
        if score > self.0 {
            *self = Strongest(score, rule);
        }
    }

    /// Reports the strongest rule as one hit of `class`, if any rule fired.
    pub(crate) fn report(self, class: Class, text: &str, sink: &mut Sink<'_>) {
        if self.0 > 0 {
            sink.hit(class, self.1, self.0, text);
        }
    }
}

/// Runs every applicable detector over every decoded form of `value`.
pub(crate) fn judge(value: &Value<'_>) -> Vec<Hit> {
    let mut sink = Sink::new(value.origin, value.header);
    if let Some(bytes) = value.raw_bytes {
        misc::deserialization_bytes(bytes, &mut sink);
    }
    for (i, v) in value.variants.iter().enumerate() {
        let feat = (i == 0).then_some(value.variants.first_feat());
        judge_memo(v, value.origin, &mut sink, feat);
    }
    sink.into_hits()
}

/// Judgements that need more than one value: a parameter's name with its value
/// (remote file inclusion), a name with the request's Referer and Host (session
/// fixation). It is shown every value in request order, as the engine extracts them.
/// Whether it has anything to say of a value from a `User-Agent`, `Authorization` or
/// `Cookie` field must not depend on the rest of the request: the memo of quiet fields
/// (`extract.rs`) skips such values when they were quiet before.
pub(crate) struct RequestPass<'r> {
    req: &'r crate::Request<'r>,
    /// Where the request was followed from, read the first time a name needs it.
    site: Option<session::Referer>,
    /// Location of the value just before this one when it was a parameter named like an
    /// include location; empty otherwise.
    include_name: String,
}

impl<'r> RequestPass<'r> {
    pub(crate) fn new(req: &'r crate::Request<'r>) -> Self {
        RequestPass {
            req,
            site: None,
            include_name: String::new(),
        }
    }

    /// Whether nothing is pending for the values to come: the last value judged named no
    /// include location.
    pub(crate) fn idle(&self) -> bool {
        self.include_name.is_empty()
    }

    /// Hits of `value` that depend on the values around it, into `out`.
    pub(crate) fn judge(&mut self, value: &Value<'_>, out: &mut Vec<Hit>) {
        if matches!(value.origin, Origin::ParamName | Origin::JsonKey) && plain_name(value) {
            // No session name, no include location: nothing for this name, and a name is
            // no value an include location could have named before it.
            self.include_name.clear();
            return;
        }
        out.extend(session::judge(self.req, &mut self.site, value));
        if !self.include_name.is_empty() {
            out.extend(traversal::remote_include(&self.include_name, value));
        }
        self.include_name.clear();
        if traversal::names_include_location(value) {
            self.include_name.push_str(value.location);
        }
    }
}

/// Longest name [`plain_name`] remembers.
const NAMES_MAX_LEN: usize = 64;
/// Sets of the per-thread memo of [`plain_name`] (a power of two), each of `NAMES_WAYS`
/// entries.
const NAMES_SETS: usize = 256;
const NAMES_WAYS: usize = 2;

thread_local! {
    /// Names (parameter names, JSON keys) of one thread with what [`plain_name`] said of
    /// them. API schemas repeat their names in every request, and the answer is a pure
    /// function of the name.
    static NAMES: std::cell::RefCell<SetAssoc<(String, bool), NAMES_SETS, NAMES_WAYS>> =
        std::cell::RefCell::new(SetAssoc::new(2));
}

/// Whether the name `value` (a parameter name or JSON key) is neither a session name nor
/// an include location: the request-level judgements then have nothing to say about it.
fn plain_name(value: &Value<'_>) -> bool {
    let name = value.variants.first();
    let judge = || !session::is_session_name(name) && !traversal::names_include_location(value);
    if name.len() > NAMES_MAX_LEN {
        return judge();
    }
    NAMES.with(|m| {
        use std::hash::Hasher;
        let mut m = m.borrow_mut();
        let mut h = m.hasher();
        h.write(name.as_bytes());
        let hash = h.finish();
        if let Some((_, plain)) = m.find(hash, |(n, _)| n == name) {
            return *plain;
        }
        let plain = judge();
        m.insert(hash, (name.to_string(), plain));
        plain
    })
}

/// Longest value whose verdict is remembered.
const MEMO_MAX_LEN: usize = 64;
/// Sets of the per-thread memo (a power of two), each of `MEMO_WAYS` entries.
const MEMO_SETS: usize = 1024;
const MEMO_WAYS: usize = 4;

/// A bounded per-thread cache of `SETS` sets (a power of two) of `WAYS` entries: an
/// entry's set is chosen by a keyed hash ([`SetAssoc::hasher`]), and a new entry takes
/// over its set's ways in turn. A lookup is one hash and at most `WAYS` comparisons
/// whatever the traffic, memory stays bounded, and values made to collide only cost the
/// misses they cause. The callers compare the whole key; the hash only picks the set.
pub(crate) struct SetAssoc<E, const SETS: usize, const WAYS: usize> {
    seed: u64,
    slots: Vec<Option<E>>,
    /// Per set, the way the next new entry takes.
    next: Vec<u8>,
}

impl<E, const SETS: usize, const WAYS: usize> SetAssoc<E, SETS, WAYS> {
    /// An empty cache (nothing is allocated until the first insert) whose hash seed is
    /// random per process and differs by `salt` between caches.
    pub(crate) fn new(salt: u64) -> Self {
        SetAssoc {
            seed: std::hash::BuildHasher::hash_one(
                &std::collections::hash_map::RandomState::new(),
                salt,
            ),
            slots: Vec::new(),
            next: Vec::new(),
        }
    }

    /// The keyed hasher whose `finish()` the other methods take.
    pub(crate) fn hasher(&self) -> WordHasher {
        WordHasher::with_seed(self.seed)
    }

    /// The first slot of the set of `hash`.
    fn first_slot(hash: u64) -> usize {
        const { assert!(SETS.is_power_of_two() && SETS > 1 && WAYS > 0 && WAYS <= 255) };
        // The high bits of a multiplicative hash depend on every input bit.
        (hash >> (64 - SETS.trailing_zeros())) as usize * WAYS
    }

    /// The entry of `hash`'s set that `matches`, if any.
    pub(crate) fn find(&self, hash: u64, matches: impl Fn(&E) -> bool) -> Option<&E> {
        let first = Self::first_slot(hash);
        self.slots
            .get(first..first + WAYS)?
            .iter()
            .flatten()
            .find(|e| matches(e))
    }

    /// Stores `entry` in `hash`'s set, in place of the oldest entry there.
    pub(crate) fn insert(&mut self, hash: u64, entry: E) {
        if self.slots.is_empty() {
            self.slots.resize_with(SETS * WAYS, || None);
            self.next.resize(SETS, 0);
        }
        let first = Self::first_slot(hash);
        let set = first / WAYS;
        let way = usize::from(self.next[set]);
        self.next[set] = ((way + 1) % WAYS) as u8;
        self.slots[first + way] = Some(entry);
    }
}

struct MemoEntry {
    origin: Origin,
    header: Option<String>,
    text: String,
    hits: Vec<Hit>,
}

/// The memo's hash of (origin, header, text).
fn memo_hash(
    m: &SetAssoc<MemoEntry, MEMO_SETS, MEMO_WAYS>,
    origin: Origin,
    header: Option<&str>,
    text: &str,
) -> u64 {
    use std::hash::Hasher;
    let mut h = m.hasher();
    h.write_u8(origin as u8);
    h.write(header.unwrap_or("").as_bytes());
    h.write_u8(0xff);
    h.write(text.as_bytes());
    h.finish()
}

thread_local! {
    /// Remembered verdicts of one thread.
    static MEMO: std::cell::RefCell<SetAssoc<MemoEntry, MEMO_SETS, MEMO_WAYS>> =
        std::cell::RefCell::new(SetAssoc::new(0));
}

/// `judge_text` with a per-thread memo for short word-only values. Parameter, cookie and
/// JSON key names, path segments and enumerated values repeat from request to request,
/// and a detector's verdict is a pure function of (text, origin, header), so the second
/// time costs one hash lookup. Hits are replayed through the sink in their original
/// order, which keeps its strongest-per-class rule exact. `feat` is `Feat::of(text)` when
/// the caller has it.
pub(crate) fn judge_memo(text: &str, origin: Origin, sink: &mut Sink<'_>, feat: Option<Feat>) {
    if text.len() > MEMO_MAX_LEN {
        judge_text_with(text, origin, sink, feat);
        return;
    }
    let f = feat.unwrap_or_else(|| Feat::of(text));
    if !f.inert() {
        judge_text_with(text, origin, sink, Some(f));
        return;
    }
    let header = sink.header;
    let replay = |hits: &[Hit], sink: &mut Sink<'_>| {
        for h in hits {
            sink.hit(h.class, h.detector, h.score, &h.snippet);
        }
    };
    let found = MEMO.with(|m| {
        let m = m.borrow();
        let hash = memo_hash(&m, origin, header, text);
        let entry = m.find(hash, |e| {
            e.text == text && e.origin == origin && e.header.as_deref() == header
        });
        entry.map(|e| replay(&e.hits, sink)).is_some()
    });
    if found {
        return;
    }
    let mut local = Sink::new(origin, header);
    judge_text_with(text, origin, &mut local, Some(f));
    let hits = local.into_hits();
    replay(&hits, sink);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        let hash = memo_hash(&m, origin, header, text);
        m.insert(
            hash,
            MemoEntry {
                origin,
                header: header.map(str::to_string),
                text: text.to_string(),
                hits,
            },
        );
    });
}

/// Byte-class features of one decoded form, computed in one pass. Each detector states
/// which features its language needs before it can say anything (an HTML tag needs `<`,
/// a lookup needs `$`, a traversal needs a separator), so a value made of words and
/// ordinary punctuation skips most detectors without being looked at twice.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Feat(u64);

impl Feat {
    pub(crate) const QUOTE: u64 = 1 << 0; // ' "
    pub(crate) const BACKTICK: u64 = 1 << 1;
    pub(crate) const LT: u64 = 1 << 2;
    pub(crate) const GT: u64 = 1 << 3;
    pub(crate) const EQ: u64 = 1 << 4;
    pub(crate) const PAREN: u64 = 1 << 5;
    pub(crate) const SEMI: u64 = 1 << 6;
    pub(crate) const PIPE: u64 = 1 << 7;
    pub(crate) const AMP: u64 = 1 << 8;
    pub(crate) const DOLLAR: u64 = 1 << 9;
    pub(crate) const BRACE: u64 = 1 << 10;
    pub(crate) const BRACKET: u64 = 1 << 11;
    pub(crate) const SLASH: u64 = 1 << 12;
    pub(crate) const BSLASH: u64 = 1 << 13;
    pub(crate) const COLON: u64 = 1 << 14;
    pub(crate) const PCT: u64 = 1 << 15;
    pub(crate) const HASH: u64 = 1 << 16;
    pub(crate) const STAR: u64 = 1 << 17;
    /// `-` that is not between two word characters (an option, `--`, arithmetic).
    pub(crate) const DASH: u64 = 1 << 18;
    pub(crate) const DOT: u64 = 1 << 19;
    /// Control characters (CR, LF, TAB, NUL, ...).
    pub(crate) const CTRL: u64 = 1 << 20;
    pub(crate) const SPACE: u64 = 1 << 21;
    pub(crate) const PLUS: u64 = 1 << 22;
    pub(crate) const AT: u64 = 1 << 23;
    pub(crate) const NONASCII: u64 = 1 << 24;
    /// `~ ! ^ ? ,` and any other ASCII punctuation not named above.
    pub(crate) const OTHER: u64 = 1 << 25;
    pub(crate) const DIGIT: u64 = 1 << 26;
    pub(crate) const ALPHA: u64 = 1 << 27;
    pub(crate) const UNDERSCORE: u64 = 1 << 28;
    /// An upper-case ASCII letter (set together with `ALPHA`).
    pub(crate) const UPPER: u64 = 1 << 29;
    /// Any `-`, in a word or not (set together with `DASH` for the latter).
    pub(crate) const HYPHEN: u64 = 1 << 30;

    /// Every feature: what a detector must assume of a form it knows nothing about.
    pub(crate) const ALL: Feat = Feat(u64::MAX);

    /// Features that make a value more than words: anything but letters, digits,
    /// spaces, `_`, `.`, `,` and an in-word `-`.
    const ACTIVE: u64 = !(Feat::DIGIT
        | Feat::ALPHA
        | Feat::UPPER
        | Feat::SPACE
        | Feat::UNDERSCORE
        | Feat::DOT
        | Feat::HYPHEN);

    /// The feature of one byte; `-` is decided by its neighbours in [`Feat::of`].
    const fn of_byte(c: u8) -> u64 {
        match c {
            b'a'..=b'z' => Feat::ALPHA,
            b'A'..=b'Z' => Feat::ALPHA | Feat::UPPER,
            b'0'..=b'9' => Feat::DIGIT,
            b' ' => Feat::SPACE,
            b'_' => Feat::UNDERSCORE,
            b'.' => Feat::DOT,
            b',' => 0,
            b'\'' | b'"' => Feat::QUOTE,
            b'`' => Feat::BACKTICK,
            b'<' => Feat::LT,
            b'>' => Feat::GT,
            b'=' => Feat::EQ,
            b'(' | b')' => Feat::PAREN,
            b';' => Feat::SEMI,
            b'|' => Feat::PIPE,
            b'&' => Feat::AMP,
            b'$' => Feat::DOLLAR,
            b'{' | b'}' => Feat::BRACE,
            b'[' | b']' => Feat::BRACKET,
            b'/' => Feat::SLASH,
            b'\\' => Feat::BSLASH,
            b':' => Feat::COLON,
            b'%' => Feat::PCT,
            b'#' => Feat::HASH,
            b'*' => Feat::STAR,
            b'+' => Feat::PLUS,
            b'@' => Feat::AT,
            b'-' => Feat::DASH,
            0..=0x1f | 0x7f => Feat::CTRL,
            0x80..=0xff => Feat::NONASCII,
            _ => Feat::OTHER,
        }
    }

    pub(crate) fn of(text: &str) -> Feat {
        static TABLE: [u64; 256] = {
            let mut t = [0u64; 256];
            let mut i = 0;
            while i < 256 {
                t[i] = Feat::of_byte(i as u8);
                i += 1;
            }
            t
        };
        let b = text.as_bytes();
        let mut f = 0u64;
        for (i, &c) in b.iter().enumerate() {
            if c == b'-' {
                f |= Feat::HYPHEN;
                let word = |x: Option<&u8>| x.is_some_and(|c| c.is_ascii_alphanumeric());
                if !(i > 0 && word(b.get(i - 1)) && word(b.get(i + 1))) {
                    f |= Feat::DASH;
                }
            } else {
                f |= TABLE[usize::from(c)];
            }
        }
        Feat(f)
    }

    pub(crate) fn any(self, mask: u64) -> bool {
        self.0 & mask != 0
    }

    /// Only words, numbers, spaces and `_ . , -` (in-word).
    pub(crate) fn inert(self) -> bool {
        !self.any(Feat::ACTIVE)
    }
}

/// `text` in ASCII lower case, borrowed when it has no upper-case letter. Computed once
/// per decoded form and handed to every detector that reads case-insensitively.
fn ascii_lower(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

pub(crate) fn judge_text(text: &str, origin: Origin, sink: &mut Sink<'_>) {
    judge_text_with(text, origin, sink, None);
}

/// `judge_text` with the features of `text` when the caller has them already.
fn judge_text_with(text: &str, origin: Origin, sink: &mut Sink<'_>, feat: Option<Feat>) {
    sink.feat = Feat::ALL;
    sink.words = Words::ALL;
    let lower = &*ascii_lower(text);
    if origin == Origin::PathFull {
        if let Some(f) = feat {
            sink.feat = f;
        }
        traversal::detect(text, lower, sink);
        return;
    }
    match origin {
        Origin::XmlDoctype => {
            misc::xxe(text, lower, sink);
            return;
        }
        Origin::FileContent => {
            // Uploaded content: code and serialized objects matter, prose does not.
            misc::code_injection(text, lower, sink);
            misc::deserialization(text, lower, sink);
            misc::jndi(text, sink);
            return;
        }
        Origin::Filename => {
            traversal::detect(text, lower, sink);
            misc::dangerous_filename(text, lower, sink);
            xss::detect(text, lower, sink);
            return;
        }
        Origin::AgentProduct => {
            misc::scanner_agent(text, lower, sink);
            return;
        }
        Origin::MediaType => {
            protocol::media_type(text, lower, sink);
            return;
        }
        Origin::Charset => {
            protocol::charset(text, lower, sink);
            return;
        }
        Origin::CookieName if text.starts_with('$') => protocol::legacy_cookie(text, lower, sink),
        Origin::Header if sink.header == Some("user-agent") => {
            misc::scanner_agent(text, lower, sink)
        }
        _ => {}
    }
    let f = feat.unwrap_or_else(|| Feat::of(text));
    sink.feat = f;
    // Exponent notation: a number that can hang a back end's float parser.
    if f.any(Feat::DIGIT) && f.any(Feat::HYPHEN) && lower.contains("e-") {
        protocol::float_dos(text, sink);
    }
    if f.inert() {
        judge_words(text, lower, f, sink);
        return;
    }
    sink.words = Words::of(lower);
    // Each gate names the characters a detector's language cannot do without; the
    // detectors keep their own finer checks.
    sqli::detect(text, lower, sink);
    if f.any(
        Feat::LT
            | Feat::GT
            | Feat::EQ
            | Feat::PAREN
            | Feat::COLON
            | Feat::BACKTICK
            | Feat::AMP
            | Feat::BSLASH
            | Feat::PCT
            | Feat::BRACE
            | Feat::BRACKET
            | Feat::STAR
            | Feat::PLUS
            | Feat::OTHER
            | Feat::NONASCII,
    ) {
        xss::detect(text, lower, sink);
    }
    cmdi::detect(text, lower, sink);
    if f.any(
        Feat::SLASH
            | Feat::BSLASH
            | Feat::DOT
            | Feat::PCT
            | Feat::CTRL
            | Feat::COLON
            | Feat::NONASCII,
    ) {
        traversal::detect(text, lower, sink);
    }
    if f.any(
        Feat::COLON | Feat::DOT | Feat::SLASH | Feat::BSLASH | Feat::AT | Feat::PCT | Feat::BRACKET,
    ) || GATE_LOCAL.any_in(lower, sink.words)
    {
        ssrf::detect(text, lower, sink);
    }
    if f.any(Feat::DOLLAR) {
        misc::jndi(text, sink);
        misc::nosqli(text, sink);
    }
    if f.any(Feat::BRACE | Feat::PCT | Feat::BRACKET | Feat::PAREN | Feat::HASH) {
        misc::ssti(text, lower, sink);
    }
    if f.any(Feat::PAREN) {
        misc::ldapi(text, sink);
    }
    misc::deserialization(text, lower, sink);
    if GATE_PROTO.any_in(lower, sink.words) {
        misc::prototype_pollution(text, lower, sink);
    }
    if f.any(Feat::CTRL | Feat::SLASH | Feat::NONASCII) {
        misc::crlf(text, sink);
    }
    if f.any(
        Feat::PAREN
            | Feat::LT
            | Feat::DOLLAR
            | Feat::BACKTICK
            | Feat::BRACKET
            | Feat::BRACE
            | Feat::COLON
            | Feat::DOT
            | Feat::EQ
            | Feat::SEMI
            | Feat::AT,
    ) {
        misc::code_injection(text, lower, sink);
    }
    if f.any(Feat::LT | Feat::PCT | Feat::AMP | Feat::OTHER) {
        misc::xxe(text, lower, sink);
    }
}

/// Judges a value made only of words, numbers, spaces and `_ . , -` (in-word): no
/// quote, tag, separator, lookup or path can hide in it, so the detectors whose language
/// needs punctuation stay silent. Words still matter (`1 union select 1,2`,
/// `information_schema`, `java.lang.Runtime`, `document.cookie`, `whoami`), except in an
/// identifier that mixes digits into one token (UUIDs, SKUs, hex ids, numbers): no
/// keyword, command or class name is spelt that way.
fn judge_words(text: &str, lower: &str, f: Feat, sink: &mut Sink<'_>) {
    let id_like = !f.any(Feat::SPACE | Feat::DOT)
        && f.any(Feat::DIGIT)
        && text.len() >= 6
        && !text.starts_with('_')
        && !text.contains("__");
    if id_like {
        if text.contains("rO0")
            || text.contains("ztAA")
            || text.contains("s7QAF")
            || text
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("aced"))
        {
            misc::deserialization(text, lower, sink);
        }
        return;
    }
    sink.words = Words::of(lower);
    sqli::detect(text, lower, sink);
    xss::detect(text, lower, sink);
    cmdi::detect(text, lower, sink);
    if f.any(Feat::DOT) {
        traversal::detect(text, lower, sink);
    }
    ssrf::detect(text, lower, sink);
    misc::deserialization(text, lower, sink);
    misc::prototype_pollution(text, lower, sink);
    misc::code_injection(text, lower, sink);
}

/// The detector families as benchmarked: each name with the detector it runs.
pub(crate) const FAMILIES: [&str; 14] = [
    "sqli",
    "xss",
    "cmdi",
    "traversal",
    "ssrf",
    "jndi",
    "ssti",
    "nosqli",
    "ldapi",
    "deserialization",
    "prototype-pollution",
    "crlf",
    "code-injection",
    "xxe",
];

/// Runs one detector family over `text` as a JSON string value, without the engine's
/// gates, and returns its strongest score (0 for an unknown family).
pub(crate) fn run_family(family: &str, text: &str) -> u32 {
    let mut sink = Sink::new(Origin::JsonValue, None);
    sink.feat = Feat::of(text);
    let lower = &*ascii_lower(text);
    match family {
        "sqli" => sqli::detect(text, lower, &mut sink),
        "xss" => xss::detect(text, lower, &mut sink),
        "cmdi" => cmdi::detect(text, lower, &mut sink),
        "traversal" => traversal::detect(text, lower, &mut sink),
        "ssrf" => ssrf::detect(text, lower, &mut sink),
        "jndi" => misc::jndi(text, &mut sink),
        "ssti" => misc::ssti(text, lower, &mut sink),
        "nosqli" => misc::nosqli(text, &mut sink),
        "ldapi" => misc::ldapi(text, &mut sink),
        "deserialization" => misc::deserialization(text, lower, &mut sink),
        "prototype-pollution" => misc::prototype_pollution(text, lower, &mut sink),
        "crlf" => misc::crlf(text, &mut sink),
        "code-injection" => misc::code_injection(text, lower, &mut sink),
        "xxe" => misc::xxe(text, lower, &mut sink),
        _ => {}
    }
    sink.hits.iter().map(|h| h.score).max().unwrap_or(0)
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

/// The best score of `class` among the findings of the whole request at `paranoid`, for
/// the judgements [`judge_request`] makes across values.
#[cfg(test)]
pub(crate) fn request_score(req: &crate::Request<'_>, class: Class) -> u32 {
    crate::Engine::new(crate::Settings {
        sensitivity: crate::Sensitivity::Paranoid,
        ..crate::Settings::default()
    })
    .inspect(req)
    .findings
    .iter()
    .filter(|f| f.class == class)
    .map(|f| f.score)
    .max()
    .unwrap_or(0)
}

/// A fixed word list compiled once into an Aho-Corasick automaton, so a detector scans
/// a value once instead of once per word. Whether a value holds any word at all, which
/// is what most values are asked, runs a plain loop over the automaton's DFA: a table
/// step per byte, without the generic search's bookkeeping (a third of its cost).
pub(crate) struct Dict {
    cell: std::sync::OnceLock<Option<DictIndex>>,
    words: &'static [&'static str],
    nocase: bool,
}

struct DictIndex {
    dfa: aho_corasick::dfa::DFA,
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

    fn index(&self) -> Option<&DictIndex> {
        self.cell
            .get_or_init(|| {
                // A DFA: these dictionaries are small, and case-insensitive NFAs without
                // a prefilter cost tens of ns per byte on every value.
                let dfa = aho_corasick::dfa::DFA::builder()
                    .ascii_case_insensitive(self.nocase)
                    .prefilter(false)
                    .build(self.words)
                    .ok()?;
                Some(DictIndex { dfa })
            })
            .as_ref()
    }

    /// Every (word index, start offset) occurrence, overlapping, at most `limit`.
    pub(crate) fn occurrences(&self, hay: &str, limit: usize) -> Vec<(usize, usize)> {
        match self.index() {
            // The overlapping search has no prefilter; most values hold no word at all,
            // and the plain search says so at a fraction of the cost.
            Some(index) if holds_word(&index.dfa, hay.as_bytes()) => {
                use aho_corasick::automaton::Automaton;
                match index
                    .dfa
                    .try_find_overlapping_iter(aho_corasick::Input::new(hay))
                {
                    Ok(matches) => matches
                        .take(limit)
                        .map(|m| (m.pattern().as_usize(), m.start()))
                        .collect(),
                    Err(_) => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    /// [`Dict::any`] for a part of the value `words` was scanned from (or any string
    /// with `Words::ALL`).
    pub(crate) fn any_in(&self, hay: &str, words: Words) -> bool {
        words.may_hold(self) && self.any(hay)
    }

    /// [`Dict::occurrences`] for a part of the value `words` was scanned from.
    pub(crate) fn occurrences_in(
        &self,
        hay: &str,
        limit: usize,
        words: Words,
    ) -> Vec<(usize, usize)> {
        if words.may_hold(self) {
            self.occurrences(hay, limit)
        } else {
            Vec::new()
        }
    }

    /// Whether any word occurs in `hay`.
    pub(crate) fn any(&self, hay: &str) -> bool {
        self.index()
            .is_some_and(|index| holds_word(&index.dfa, hay.as_bytes()))
    }
}

/// Which of the dictionaries in [`SCANNED`] have a word in one value: the value's lower-case
/// form is scanned once for all of them, and a dictionary with no word there is not
/// scanned again ([`Words::ALL`] when nothing is known).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Words(u32);

impl Words {
    /// Every dictionary may hold a word: what a detector must assume without a scan.
    pub(crate) const ALL: Words = Words(u32::MAX);

    /// Whether `dict` may have a word in the value (it is not in [`SCANNED`], or the scan
    /// found one of its words).
    fn may_hold(self, dict: &Dict) -> bool {
        match SCANNED.iter().position(|d| std::ptr::eq(*d, dict)) {
            Some(i) => self.0 & (1 << i) != 0,
            None => true,
        }
    }

    /// Scans `lower` (a value in ASCII lower case) for the words of every dictionary in
    /// [`SCANNED`].
    pub(crate) fn of(lower: &str) -> Words {
        use aho_corasick::automaton::Automaton;
        use aho_corasick::Anchored;
        static ALL_WORDS: std::sync::OnceLock<Option<(aho_corasick::dfa::DFA, Vec<u8>)>> =
            std::sync::OnceLock::new();
        let Some((dfa, owner)) = ALL_WORDS
            .get_or_init(|| {
                let mut words = Vec::new();
                let mut owner = Vec::new();
                for (i, d) in SCANNED.iter().enumerate() {
                    for w in d.words {
                        // Every list is lower case or matched without case: the lower-case
                        // word occurs in the lower-case value whenever the word does.
                        words.push(w.to_ascii_lowercase());
                        owner.push(i as u8);
                    }
                }
                let dfa = aho_corasick::dfa::DFA::builder()
                    .prefilter(false)
                    .build(&words)
                    .ok()?;
                Some((dfa, owner))
            })
            .as_ref()
        else {
            return Words::ALL;
        };
        let Ok(mut sid) = dfa.start_state(Anchored::No) else {
            return Words::ALL;
        };
        let mut found = 0u32;
        for &b in lower.as_bytes() {
            sid = dfa.next_state(Anchored::No, sid, b);
            if dfa.is_special(sid) && dfa.is_match(sid) {
                for m in 0..dfa.match_len(sid) {
                    found |= 1 << owner[dfa.match_pattern(sid, m).as_usize()];
                }
            }
        }
        Words(found)
    }
}

/// The dictionaries [`Words::of`] scans for: those the generic path consults on most
/// values, and the words its gates look for.
static SCANNED: [&Dict; 9] = [
    &misc::DESER_DICT,
    &misc::JAVA_DICT,
    &misc::SCRIPT_DICT,
    &misc::PHP_SG_DICT,
    &cmdi::PS_DICT,
    &traversal::SENSITIVE_DICT,
    &traversal::WRAPPER_SCHEMES,
    &GATE_LOCAL,
    &GATE_PROTO,
];

/// A loopback name (`localhost`, `local`): the SSRF gate for values without URL
/// punctuation.
static GATE_LOCAL: Dict = Dict::new(&["local"], false);
/// The prototype-pollution gate.
static GATE_PROTO: Dict = Dict::new(&["proto", "constructor"], false);

/// Whether the (standard match semantics) DFA matches anywhere in `hay`.
fn holds_word(dfa: &aho_corasick::dfa::DFA, hay: &[u8]) -> bool {
    use aho_corasick::automaton::Automaton;
    use aho_corasick::Anchored;
    let Ok(mut sid) = dfa.start_state(Anchored::No) else {
        return false;
    };
    if dfa.is_match(sid) {
        return true;
    }
    for &b in hay {
        sid = dfa.next_state(Anchored::No, sid, b);
        if dfa.is_special(sid) {
            if dfa.is_match(sid) {
                return true;
            }
            if dfa.is_dead(sid) {
                return false;
            }
        }
    }
    false
}

/// A fixed word list for membership tests, hashed on first use: a lookup hashes the word
/// once instead of comparing it with every entry, and most words that are not in the
/// list are turned away by their length and first byte before any hashing.
pub(crate) struct WordSet {
    cell: std::sync::OnceLock<WordIndex>,
    words: &'static [&'static str],
}

type WordTable = std::collections::HashSet<&'static str, std::hash::BuildHasherDefault<WordHasher>>;

struct WordIndex {
    table: WordTable,
    /// Per word length up to 32: bit `b & 31` is set when a word of that length starts
    /// with byte `b`.
    starts: [u32; 33],
    longest: usize,
}

impl WordSet {
    /// A set of `words` (compared exactly, case included).
    pub(crate) const fn new(words: &'static [&'static str]) -> WordSet {
        WordSet {
            cell: std::sync::OnceLock::new(),
            words,
        }
    }

    /// Whether `word` is one of the words.
    pub(crate) fn contains(&self, word: &str) -> bool {
        let index = self.cell.get_or_init(|| {
            let mut starts = [0u32; 33];
            for w in self.words {
                if let (Some(slot), Some(&b)) = (starts.get_mut(w.len()), w.as_bytes().first()) {
                    *slot |= 1 << (b & 31);
                }
            }
            WordIndex {
                table: self.words.iter().copied().collect(),
                starts,
                longest: self.words.iter().map(|w| w.len()).max().unwrap_or(0),
            }
        });
        if word.len() > index.longest {
            return false;
        }
        match (index.starts.get(word.len()), word.as_bytes().first()) {
            (Some(bits), Some(&b)) if bits & (1 << (b & 31)) == 0 => false,
            _ => index.table.contains(word),
        }
    }
}

/// FxHash: words are short and not chosen against the table (a collision only costs a
/// comparison), so a multiply per 8 bytes beats SipHash's rounds.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl WordHasher {
    /// A hasher whose output depends on `seed` (per-thread memo keys).
    pub(crate) fn with_seed(seed: u64) -> WordHasher {
        WordHasher(seed)
    }

    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut v = [0u8; 8];
            v[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(v));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn finish(&self) -> u64 {
        self.0
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
            "customers",
            "en-GB",
            "created_at",
            "Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjE2YzNkNGQ1In0.eyJzdWIiOiI3ZjNjMmE5MC0xYjZlLTRjOGEtOWQyZi0wZTVhNmI3YzhkOTEiLCJuYW1lIjoiU2lvYmhhbiBPJ0JyaWVuIiw.Q2hhbmdlTWVDaGFuZ2VNZUNoYW5nZU1lQ2hhbmdlTWVDaGFuZ2VNZQ",
        ];
        // Detectors that read case-insensitively get the lower-case form judge_text makes.
        type Det = fn(&str, &str, &mut Sink<'_>);
        let dets: [(&str, Det); 14] = [
            ("sqli", sqli::detect),
            ("xss", xss::detect),
            ("cmdi", cmdi::detect),
            ("traversal", traversal::detect),
            ("ssrf", ssrf::detect),
            ("jndi", |t, _, s| misc::jndi(t, s)),
            ("ssti", misc::ssti),
            ("nosqli", |t, _, s| misc::nosqli(t, s)),
            ("ldapi", |t, _, s| misc::ldapi(t, s)),
            ("deser", misc::deserialization),
            ("proto", misc::prototype_pollution),
            ("crlf", |t, _, s| misc::crlf(t, s)),
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
                    d(std::hint::black_box(s), &ascii_lower(s), &mut sink);
                    std::hint::black_box(sink.hits.len());
                }
                let ns = t.elapsed().as_nanos() / n;
                line.push_str(&format!("{name}={ns} "));
            }
            let t = std::time::Instant::now();
            for _ in 0..2000 {
                let mut sink = Sink::new(Origin::ParamValue, None);
                judge_text(std::hint::black_box(s), Origin::ParamValue, &mut sink);
            }
            line.push_str(&format!("JUDGE={} ", t.elapsed().as_nanos() / 2000));
            let t = std::time::Instant::now();
            for _ in 0..2000 {
                std::hint::black_box(crate::decode::variants(std::hint::black_box(s), false));
            }
            line.push_str(&format!("variants={}", t.elapsed().as_nanos() / 2000));
            println!("{line}");
        }
    }
}

/// Runs `judge_text` over `PROBE_VALUE` (a JSON string value) `PROBE_N` times, for
/// instruction counts per detector under callgrind, which machine load does not skew:
/// `PROBE_VALUE='…' valgrind --tool=callgrind --collect-atstart=no
/// --toggle-collect='*probe_loop' <unit test binary> icount_probe --ignored`, divided by
/// `PROBE_N` (1000 by default). The first call, which builds the automata, runs
/// before. `PROBE_MEMO=1` goes through the per-thread memo.
#[cfg(test)]
mod icount_probe {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn judge_n(v: &str, n: usize) {
        let memo = std::env::var_os("PROBE_MEMO").is_some();
        for _ in 0..n {
            let mut sink = Sink::new(Origin::JsonValue, None);
            if memo {
                judge_memo(std::hint::black_box(v), Origin::JsonValue, &mut sink, None);
            } else {
                judge_text(std::hint::black_box(v), Origin::JsonValue, &mut sink);
            }
            std::hint::black_box(sink.hits.len());
        }
    }

    #[inline(never)]
    fn probe_loop(v: &str, n: usize) {
        judge_n(v, n);
    }

    #[test]
    #[ignore]
    fn icount() {
        let v = std::env::var("PROBE_VALUE").unwrap_or_default();
        let n: usize = std::env::var("PROBE_N")
            .ok()
            .and_then(|x| x.parse().ok())
            .unwrap_or(1000);
        judge_n(&v, 1);
        probe_loop(&v, n);
    }
}
