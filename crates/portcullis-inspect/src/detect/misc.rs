//! Detectors for the smaller languages: JNDI lookups, template expressions, NoSQL
//! operators, LDAP filters, serialized objects, prototype pollution, CR/LF injection,
//! XML entities, interpreted-code injection (PHP, JavaScript, Python, Ruby, Java).

use super::{Dict, Feat, Sink, Strongest, WordSet, Words};
use crate::decode;
use crate::extract::Origin;
use crate::settings::Class;

// ---------------------------------------------------------------------------- JNDI

/// Evaluates Log4j lookup syntax: nested `${...}`, `${lower:x}`, `${upper:x}`,
/// `${any:-default}`, so `${${lower:j}${::-n}di:` reads as `${jndi:`. Returns the
/// protocol of the first JNDI lookup found, or `Some("")` for an unresolved one.
fn resolve_lookups(s: &str) -> (Option<String>, bool /* other lookups */) {
    let chars: Vec<char> = s.chars().take(1 << 20).collect();
    let mut stack: Vec<String> = vec![String::new()];
    let mut found: Option<String> = None;
    let mut other = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '$' && chars.get(i + 1) == Some(&'{') && stack.len() < 64 {
            stack.push(String::new());
            i += 2;
            continue;
        }
        if c == '}' && stack.len() > 1 {
            let inner = stack.pop().unwrap_or_default();
            let lower = inner.to_ascii_lowercase();
            let value = if let Some(rest) = lower.strip_prefix("jndi:") {
                if found.is_none() {
                    found = Some(rest.split(':').next().unwrap_or("").to_string());
                }
                String::new()
            } else if let Some(p) = inner.find(":-") {
                inner[p + 2..].to_string()
            } else if let Some(rest) = lower
                .strip_prefix("lower:")
                .or_else(|| lower.strip_prefix("upper:"))
            {
                rest.to_string()
            } else {
                if lower.starts_with("env:")
                    || lower.starts_with("sys:")
                    || lower.starts_with("ctx:")
                    || lower.starts_with("java:")
                    || lower.starts_with("main:")
                    || lower.starts_with("docker:")
                    || lower.starts_with("k8s:")
                    || lower.starts_with("spring:")
                    || lower.starts_with("base64:")
                    || lower.starts_with("date:")
                    || lower.starts_with("bundle:")
                    || lower.starts_with("log4j:")
                    || lower.starts_with("web:")
                    || lower.starts_with("jvmrunargs:")
                    || lower.starts_with("event:")
                    || lower.starts_with("marker:")
                    || lower.starts_with("map:")
                    || lower.starts_with("sd:")
                    || lower.starts_with("hostname")
                {
                    other = true;
                }
                // A date pattern like 'j' yields its quoted literal.
                if let Some(rest) = lower.strip_prefix("date:") {
                    rest.trim_matches('\'').to_string()
                } else {
                    String::new()
                }
            };
            if let Some(top) = stack.last_mut() {
                top.push_str(&value);
            }
            i += 1;
            continue;
        }
        if let Some(top) = stack.last_mut() {
            if top.len() < 4096 {
                top.push(c);
            }
        }
        i += 1;
    }
    // Unclosed lookups: `${jndi:ldap://x` at the end of a truncated value.
    if found.is_none() {
        for open in stack.iter().skip(1) {
            let l = open.to_ascii_lowercase();
            if let Some(rest) = l.strip_prefix("jndi:") {
                found = Some(rest.split(':').next().unwrap_or("").to_string());
            }
        }
    }
    (found, other)
}

pub(crate) fn jndi(text: &str, sink: &mut Sink) {
    if !text.contains("${") {
        return;
    }
    let (found, other) = resolve_lookups(text);
    if let Some(proto) = found {
        let score = if matches!(
            proto.as_str(),
            "ldap" | "ldaps" | "rmi" | "dns" | "iiop" | "corba" | "nds" | "nis" | "http" | "https"
        ) {
            97
        } else {
            88
        };
        sink.hit(Class::Jndi, "jndi.lookup", score, text);
    } else if other {
        sink.hit(Class::Jndi, "jndi.log4j-lookup", 62, text);
    }
}

// ---------------------------------------------------------------------------- SSTI

/// Template expression delimiters across engines (Jinja/Twig/Handlebars, EL/Freemarker,
/// ERB/JSP, Thymeleaf, Velocity, Razor).
const DELIMS: &[(&str, &str)] = &[
    ("{{", "}}"),
    ("${", "}"),
    ("#{", "}"),
    ("*{", "}"),
    ("@{", "}"),
    ("~{", "}"),
    ("<%=", "%>"),
    ("<%", "%>"),
    ("{%", "%}"),
    ("[[", "]]"),
    ("@(", ")"),
    ("[=", "]"),
];

fn template_expr_score(expr: &str) -> u32 {
    let e = expr.trim();
    let lower = e.to_ascii_lowercase();
    if e.is_empty() {
        return 0;
    }
    let dunder = [
        "__class__",
        "__mro__",
        "__subclasses__",
        "__globals__",
        "__builtins__",
        "__import__",
        "__init__",
        "__base__",
        "__bases__",
        "__dict__",
        "__getattribute__",
    ];
    if dunder.iter().any(|d| lower.contains(d)) {
        return 92;
    }
    let rce = [
        "getruntime",
        "processbuilder",
        "java.lang",
        "freemarker.template.utility",
        "?new(",
        "popen(",
        "os.system",
        "subprocess",
        "child_process",
        "require(",
        ".exec(",
        "constructor.constructor",
        "getclass()",
        ".forname(",
        "t(java",
        "new java.",
        "classloader",
        "self._templatereference",
        "request.application",
        "cycler.__init__",
        "lipsum.",
        "config.items",
        "get_flashed_messages",
        "url_for.__globals__",
        "_self.env",
        "registerundefinedfiltercallback",
        "getfilter(",
        "system(",
        "passthru(",
        "shell_exec(",
        "exec(",
        "eval(",
        "$class.inspect",
        "class.forname",
        "@java.lang",
        "#context",
        "#_memberaccess",
        "@ognl",
        "ognlcontext",
        "beans.",
    ];
    if rce.iter().any(|r| lower.contains(r)) {
        return 90;
    }
    // Arithmetic probes: 7*7, 7*'7', 1337*1337, 49/7. The whole expression must be
    // arithmetic, not a date like 2024-01-02.
    let arith = lower
        .chars()
        .all(|ch| ch.is_ascii_digit() || " *+/-%'\"().".contains(ch));
    let b = lower.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if matches!(c, b'*' | b'+' | b'/' | b'-' | b'%') && i > 0 {
            if !arith {
                break;
            }
            let left = lower[..i].trim_end().trim_end_matches(['\'', '"']);
            let right = lower[i + 1..].trim_start().trim_start_matches(['\'', '"']);
            let l_num = left
                .rsplit(|ch: char| !ch.is_ascii_digit())
                .next()
                .is_some_and(|x| !x.is_empty())
                && left.ends_with(|ch: char| ch.is_ascii_digit());
            let r_num = right.starts_with(|ch: char| ch.is_ascii_digit());
            if l_num && r_num && arith && c != b'-' {
                return 80;
            }
        }
    }
    if lower.contains("constructor") || lower.contains("prototype") {
        return 70;
    }
    if lower.starts_with("import ")
        || lower.starts_with("include ")
        || lower.contains("|attr(")
        || lower.contains("|map(")
        || lower.contains("|join") && lower.contains("request")
    {
        return 72;
    }
    0
}

pub(crate) fn ssti(text: &str, lower: &str, sink: &mut Sink) {
    if !text
        .bytes()
        .any(|c| matches!(c, b'{' | b'%' | b'[' | b'(' | b'#'))
    {
        return;
    }
    let mut best = 0;
    for (open, close) in DELIMS {
        // `contains` is vectorised; `find` is not, so it only runs where it will succeed.
        if !text.contains(open) {
            continue;
        }
        let mut from = 0;
        let mut guard = 0;
        while let Some(p) = text[from..].find(open) {
            guard += 1;
            if guard > 64 {
                break;
            }
            let start = from + p + open.len();
            let Some(q) = text[start..].find(close) else {
                // Unclosed expression: judge what is there (payloads get truncated).
                best = best.max(template_expr_score(&text[start..]).saturating_sub(15));
                break;
            };
            let expr = &text[start..start + q];
            best = best.max(template_expr_score(expr));
            from = start + q + close.len();
        }
    }
    // Velocity / Freemarker directives.
    if (lower.contains("#set(") || lower.contains("#set (")) && lower.contains('$') {
        best = best.max(70);
    }
    if lower.contains("<#assign") && lower.contains("?new") {
        best = best.max(92);
    }
    if best > 0 {
        sink.hit(Class::Ssti, "ssti.expression", best, text);
    }
}

// ---------------------------------------------------------------------------- NoSQL

const MONGO_OPS: &[&str] = &[
    "$ne",
    "$eq",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$regex",
    "$where",
    "$exists",
    "$elemmatch",
    "$or",
    "$and",
    "$nor",
    "$not",
    "$expr",
    "$function",
    "$accumulator",
    "$lookup",
    "$all",
    "$size",
    "$mod",
    "$text",
    "$jsonschema",
    "$options",
    "$comment",
    "$type",
    "$set",
    "$unset",
    "$push",
    "$rename",
    "$inc",
    "$group",
    "$match",
    "$project",
    "$unionwith",
    "$merge",
    "$out",
    "$graphlookup",
    "$search",
];

fn mongo_op_score(op: &str) -> u32 {
    let l = op.to_ascii_lowercase();
    if !MONGO_OPS.contains(&l.as_str()) {
        return 0;
    }
    match l.as_str() {
        "$where" | "$function" | "$accumulator" => 92,
        // `$type` keys are common in JSON-LD-like APIs (Bluesky); `$comment` in docs.
        "$type" | "$comment" | "$set" | "$search" | "$text" => 25,
        _ => 82,
    }
}

pub(crate) fn nosqli(text: &str, sink: &mut Sink) {
    if !text.contains('$') {
        return;
    }
    let origin = sink.origin;
    let mut best = 0;
    if origin == Origin::JsonKey || origin == Origin::CookieName || origin == Origin::XmlName {
        best = best.max(mongo_op_score(text.trim()));
    }
    // `user[$ne]=x`, `filter[$where]`, and operators inside JSON-ish strings.
    let b = text.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c != b'$' {
            continue;
        }
        let end = b[i + 1..]
            .iter()
            .position(|x| !x.is_ascii_alphabetic())
            .map_or(b.len(), |p| i + 1 + p);
        let op = &text[i..end];
        let sc = mongo_op_score(op);
        if sc == 0 {
            continue;
        }
        let before = if i > 0 { b[i - 1] } else { 0 };
        let after = b.get(end).copied().unwrap_or(0);
        let bracketed = before == b'[' && after == b']';
        let quoted_key = (before == b'"' || before == b'\'')
            && (after == b'"' || after == b'\'')
            && text[end..]
                .trim_start_matches(['"', '\''])
                .trim_start()
                .starts_with(':');
        let bare_key = (before == b'{' || before == b' ' || before == b',') && after == b':';
        if bracketed && origin.is_name() {
            best = best.max(sc.max(80));
        } else if bracketed || quoted_key || bare_key {
            best = best.max(sc.saturating_sub(5));
        }
    }
    if best > 0 {
        sink.hit(Class::Nosqli, "nosqli.operator", best, text);
    }
}

// ---------------------------------------------------------------------------- LDAP

pub(crate) fn ldapi(text: &str, sink: &mut Sink) {
    if !text.contains(')') && !text.contains('(') {
        return;
    }
    let b = text.as_bytes();
    let mut best = 0;
    for i in 0..b.len() {
        if b[i] != b')' {
            continue;
        }
        let mut j = i + 1;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if b.get(j) != Some(&b'(') {
            continue;
        }
        let rest = &text[j + 1..];
        let r = rest.trim_start();
        if r.starts_with(['&', '|', '!']) {
            best = best.max(82);
        } else {
            // `)(uid=*`, `)(objectClass=`: an attribute comparison after a close paren.
            let name_len = r
                .bytes()
                .take_while(|c| {
                    c.is_ascii_alphanumeric()
                        || *c == b'-'
                        || *c == b'_'
                        || *c == b'.'
                        || *c == b';'
                })
                .count();
            if name_len > 0 && name_len < 64 {
                let after = &r[name_len..];
                if after.starts_with('=')
                    || after.starts_with("~=")
                    || after.starts_with(">=")
                    || after.starts_with("<=")
                {
                    let near = crate::extract::truncate_str(after, 64);
                    best = best.max(
                        if near.contains('*') || r[..name_len].eq_ignore_ascii_case("objectclass") {
                            82
                        } else {
                            70
                        },
                    );
                }
            }
        }
        let before = text[..i].trim_end();
        if before.ends_with('*') && best < 70 {
            best = best.max(60);
        }
    }
    // `val)&(cn=admin`, `*)!(sn=*`, `x)|(uid=*`: a new filter operator joined on. Each
    // needs a `)` followed, across whitespace, by one of `&|!(`.
    let joined = text.match_indices(')').any(|(p, _)| {
        text[p + 1..]
            .chars()
            .find(|c| !c.is_whitespace())
            .is_some_and(|c| matches!(c, '&' | '|' | '!' | '('))
    }) && {
        let squeezed: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(4096)
            .collect();
        [")&(", ")|(", ")!(", ")(&", ")(|", ")(!"]
            .iter()
            .any(|m| squeezed.contains(m))
    };
    if joined {
        best = best.max(80);
    }
    if text.starts_with("*)(") || text.starts_with("*))") {
        best = best.max(82);
    }
    let t = text.trim();
    if (t.starts_with("(&(") || t.starts_with("(|(")) && t.ends_with(')') {
        best = best.max(55);
    }
    if best > 0 {
        sink.hit(Class::Ldapi, "ldapi.filter-break", best, text);
    }
}

// ---------------------------------------------------------------------------- Deserialization

/// Binary signatures in raw bodies: Java serialization, Python pickle, .NET BinaryFormatter.
pub(crate) fn deserialization_bytes(b: &[u8], sink: &mut Sink) {
    if b.starts_with(&[0xAC, 0xED, 0x00, 0x05]) {
        sink.hit(Class::Deserialization, "deser.java-stream", 95, "aced0005…");
    } else if b.len() > 2
        && b[0] == 0x80
        && (2..=5).contains(&b[1])
        && b.windows(2)
            .any(|w| w == b"R." || w == b"tR" || w == b"\x93\x94")
    {
        sink.hit(Class::Deserialization, "deser.python-pickle", 88, "pickle…");
    } else if b.starts_with(&[0x00, 0x01, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]) {
        sink.hit(
            Class::Deserialization,
            "deser.dotnet-binaryformatter",
            92,
            "binaryformatter…",
        );
    } else if b.starts_with(&[0x04, 0x08])
        && b.len() > 4
        && matches!(b[2], b'o' | b'I' | b'[' | b'{' | b'c' | b'u' | b'U')
    {
        sink.hit(Class::Deserialization, "deser.ruby-marshal", 75, "marshal…");
    }
}

/// Java classes that appear in gadget chains and expression payloads.
const JAVA_PACKAGES: &[&str] = &[
    "java.lang.",
    "java.io.",
    "java.net.",
    "java.util.",
    "java.beans.",
    "java.rmi.",
    "java.nio.",
    "java.security.",
    "java.sql.",
    "javax.",
    "sun.",
    "com.sun.",
    "jdk.",
    "org.apache.commons.",
    "org.apache.xalan",
    "org.apache.xbean",
    "org.apache.bcel",
    "org.apache.myfaces",
    "org.apache.tomcat",
    "org.apache.catalina",
    "org.apache.naming",
    "org.apache.struts",
    "org.apache.wicket",
    "org.apache.log4j",
    "org.apache.logging",
    "org.apache.shiro",
    "org.apache.ibatis",
    "org.apache.velocity",
    "org.apache.batik",
    "org.apache.axis",
    "org.apache",
    "org.springframework.",
    "org.codehaus.groovy",
    "com.opensymphony.",
    "ognl.",
    "bsh.",
    "groovy.",
    "org.mozilla.javascript",
    "com.mchange.",
    "org.hibernate.",
    "net.sf.json",
    "com.alibaba.fastjson",
    "com.fasterxml.",
    "org.jboss.",
    "com.caucho.",
    "org.python.",
    "clojure.",
    "com.thoughtworks.xstream",
    "org.eclipse.jetty",
    "weblogic.",
    "com.ibm.",
    "oracle.",
    "org.yaml.snakeyaml",
    "com.zaxxer.hikari",
    "org.slf4j.",
    "freemarker.",
    "org.mvel2",
    "com.rometools",
    "org.apache.openjpa",
    "org.apache.cxf",
    "org.omg.",
    "com.sun.jndi",
    "javax.naming",
];

pub(super) static JAVA_DICT: Dict = Dict::new(JAVA_PACKAGES, true);

/// `words`: the dictionaries with a word in the value `lower` is part of.
fn java_class_ref(text: &str, lower: &str, words: Words) -> u32 {
    if !text.contains('.') {
        return 0;
    }
    let mut best = 0;
    for (idx, at) in JAVA_DICT.occurrences_in(lower, 64, words) {
        let pkg = JAVA_PACKAGES[idx];
        {
            let boundary = at == 0
                || !lower.as_bytes()[at - 1].is_ascii_alphanumeric()
                    && lower.as_bytes()[at - 1] != b'.';
            if !boundary {
                continue;
            }
            // The whole class name: identifier characters and dots.
            let end = lower[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '$'))
                .map_or(lower.len(), |e| at + e);
            let name = &text[at..end];
            let segs = name.split('.').filter(|s| !s.is_empty()).count();
            if segs < 2
                || (pkg.ends_with('.') && name.len() <= pkg.len())
                    && !pkg.starts_with("org.apache")
                    && !pkg.starts_with("com.sun")
            {
                continue;
            }
            let whole = text.trim().len() == name.len();
            let code_ctx = text[end..]
                .trim_start()
                .starts_with(['(', '.', '[', '"', '\'', '>', ')', ','])
                || text[..at]
                    .trim_end()
                    .ends_with(['(', '"', '\'', '<', '=', '@', '!']);
            let has_class = name
                .split('.')
                .any(|s| s.starts_with(|c: char| c.is_ascii_uppercase()));
            let sc = if whole && (has_class || segs >= 3) {
                72
            } else if code_ctx && has_class {
                70
            } else if has_class {
                48
            } else {
                30
            };
            best = best.max(sc);
        }
    }
    best
}

/// Substrings (any case, anywhere) of the rules below that are not anchored at the start
/// of the value. Together with [`deser_prefix`] and [`php_object_marker`] they are what
/// the rules need: without any of them only the Java class-name rule can fire. Short
/// markers such as `o:`, `s:`, `gar` or `bah` are checked where the rules look for them
/// (at the start, or before a digit), not anywhere: as substrings they are in most URLs
/// and sentences.
const DESER_MARKERS: &[&str] = &[
    "ro0ab",
    "ztaa",
    "s7qaf",
    "aced0005",
    "aaeaaad",
    "y29zcnn5c3rlbq",
    "y3bvc2l4cnn5c3rlbq",
    "objectdataprovider",
    "typeconfusedelegate",
    "system.windows.data",
    "system.diagnostics.process",
    "windowsidentity",
    "textformattingrunproperties",
    "psobject",
    "system.management.automation",
    "activitysurrogateselector",
    "system.data.dataset",
    "claimsidentity",
    "sessionsecuritytoken",
    "roleprincipal",
    "system.configuration.install",
    "__reduce__",
    "__setstate__",
    "!!",
    "!ruby/",
    "tag:yaml.org",
    "\"@type\"",
    "\"$type\"",
    "\"@class\"",
    "'@type'",
    "processbuilder",
    "runtime.getruntime",
    "java.runtime",
    "invokertransformer",
    "chainedtransformer",
    "constanttransformer",
    "templatesimpl",
    "jdbcrowsetimpl",
    "mlet",
    "classpathxmlapplicationcontext",
    "scriptenginemanager",
    "urlclassloader",
    "methodinvoker",
    "instantiatetransformer",
    "beanshell",
];
pub(super) static DESER_DICT: Dict = Dict::new(DESER_MARKERS, true);

/// The starts of values that the anchored rules below look for.
fn deser_prefix(t: &str) -> bool {
    let b = t.as_bytes();
    b.get(..8)
        .is_some_and(|x| x.eq_ignore_ascii_case(b"aced0005"))
        || [
            "\u{AC}\u{ED}",
            "AAEAAAD/////",
            "a:",
            "s:",
            "gA",
            "cos\n",
            "cposix\n",
            "c__builtin__\n",
            "csubprocess\n",
            "cbuiltins\n",
            "BAh",
        ]
        .iter()
        .any(|p| t.starts_with(p))
}

/// `O:<digit>` / `C:+<digit>` at a word start within the bytes the PHP object rule scans.
fn php_object_marker(b: &[u8]) -> bool {
    (0..b.len().min(4096)).any(|i| {
        matches!(b[i], b'O' | b'C')
            && b.get(i + 1) == Some(&b':')
            && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
            && match b.get(i + 2) {
                Some(b'+') => b.get(i + 3).is_some_and(u8::is_ascii_digit),
                Some(c) => c.is_ascii_digit(),
                None => false,
            }
    })
}

pub(crate) fn deserialization(text: &str, lower: &str, sink: &mut Sink) {
    // ASCII case folding leaves whitespace alone, so both trim to the same bytes.
    let (t, lower) = (text.trim(), lower.trim());
    // The PHP marker needs a colon and a class name a dot.
    let f = sink.feat;
    let php = f.any(Feat::COLON) && php_object_marker(t.as_bytes());
    if !(deser_prefix(t) || php || DESER_DICT.any_in(t, sink.words)) {
        let j = if f.any(Feat::DOT) {
            java_class_ref(t, lower, sink.words)
        } else {
            0
        };
        if j > 0 {
            sink.hit(Class::Deserialization, "deser.java-class", j, text);
        }
        return;
    }
    let mut best = Strongest::NONE;
    // Java serialized stream, base64 (rO0AB) or hex (aced0005).
    if let Some(p) = t.find("rO0AB") {
        if p == 0 || !t.as_bytes()[p - 1].is_ascii_alphanumeric() {
            best.consider((92, "deser.java-base64"));
        }
    }
    // The same stream magic (AC ED 00 05) one or two bytes into a base64 blob: `?ztAA`
    // where `?` carries the low bits of the byte before (K, a, q or 6), or `s7QAF`.
    let shifted_1 = t
        .match_indices("ztAA")
        .take(64)
        .any(|(p, _)| p > 0 && matches!(t.as_bytes()[p - 1], b'K' | b'a' | b'q' | b'6'));
    if shifted_1 || t.contains("s7QAF") {
        best.consider((80, "deser.java-base64"));
    }
    if t.len() >= 12
        && t.get(..8)
            .is_some_and(|x| x.eq_ignore_ascii_case("aced0005"))
    {
        best.consider((90, "deser.java-hex"));
    }
    if t.starts_with("\u{AC}\u{ED}\0\u{5}") || t.starts_with("\u{AC}\u{ED}") && t.contains("java") {
        best.consider((92, "deser.java-stream"));
    }
    // .NET BinaryFormatter base64, LosFormatter/ViewState gadget types.
    if t.starts_with("AAEAAAD/////") {
        best.consider((92, "deser.dotnet-binaryformatter"));
    }
    for gadget in [
        "objectdataprovider",
        "typeconfusedelegate",
        "system.windows.data",
        "system.diagnostics.process",
        "windowsidentity",
        "textformattingrunproperties",
        "psobject",
        "system.management.automation",
        "activitysurrogateselector",
        "system.data.dataset",
        "claimsidentity",
        "sessionsecuritytoken",
        "roleprincipal",
        "system.configuration.install",
    ] {
        if lower.contains(gadget) {
            best.consider((85, "deser.dotnet-gadget"));
        }
    }
    // PHP serialize(): O:8:"stdClass":1:{...}, C:..., a:2:{s:...}.
    let b = t.as_bytes();
    for i in 0..b.len().min(4096) {
        if !matches!(b[i], b'O' | b'C') || b.get(i + 1) != Some(&b':') {
            continue;
        }
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut j = i + 2;
        if b.get(j) == Some(&b'+') {
            j += 1;
        }
        let ds = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > ds && b.get(j) == Some(&b':') && b.get(j + 1) == Some(&b'"') {
            let close = crate::extract::truncate_str(&t[j + 2..], 256)
                .find('"')
                .map(|p| j + 2 + p);
            if let Some(c) = close {
                let name = &t[j + 2..c];
                if !name.is_empty()
                    && name
                        .bytes()
                        .all(|x| x.is_ascii_alphanumeric() || x == b'_' || x == b'\\')
                    && t[c + 1..].starts_with(':')
                {
                    best.consider((90, "deser.php-object"));
                }
            }
        }
    }
    if (t.starts_with("a:") || t.starts_with("s:"))
        && t.contains(":{")
        && (t.contains(";s:") || t.contains("{s:") || t.contains("{i:"))
    {
        best.consider((65, "deser.php-array"));
    }
    // Python pickle (protocol 0 text and base64 of protocol 2–5).
    if t.starts_with("gASV")
        || t.starts_with("gAJj")
        || t.starts_with("gANj")
        || t.starts_with("gAR")
        || t.starts_with("gAJ") && t.len() > 20
        || t.contains("Y29zCnN5c3RlbQ")
        || t.contains("Y3Bvc2l4CnN5c3RlbQ")
    {
        best.consider((88, "deser.python-pickle"));
    }
    if (t.starts_with("cos\n")
        || t.starts_with("cposix\n")
        || t.starts_with("c__builtin__\n")
        || t.starts_with("csubprocess\n")
        || t.starts_with("cbuiltins\n"))
        && (t.contains("\n(") || t.contains("tR"))
    {
        best.consider((92, "deser.python-pickle"));
    }
    if lower.contains("__reduce__") || lower.contains("__setstate__") {
        best.consider((60, "deser.python-reduce"));
    }
    // YAML language tags that instantiate objects.
    for tag in [
        "!!python/",
        "!!javax.",
        "!!java.",
        "!!com.sun.",
        "!!org.",
        "!ruby/object",
        "!ruby/hash",
        "!!ruby/",
        "!!net.",
        "!!sun.",
        "tag:yaml.org,2002:python/",
        "!!python",
    ] {
        if lower.contains(tag) {
            best.consider((90, "deser.yaml-tag"));
        }
    }
    // Ruby Marshal base64 (BAh), Java class references.
    if t.starts_with("BAh") && t.len() > 20 && decode::plausible_base64(t) {
        best.consider((70, "deser.ruby-marshal"));
    }
    // JSON polymorphic type keys carrying class names (Jackson, Fastjson, Json.NET).
    if (lower.contains("\"@type\"")
        || lower.contains("\"$type\"")
        || lower.contains("\"@class\"")
        || lower.contains("'@type'"))
        && (lower.contains("java")
            || lower.contains("com.")
            || lower.contains("org.")
            || lower.contains("system."))
    {
        best.consider((85, "deser.polymorphic-type"));
    }
    let j = if f.any(Feat::DOT) {
        java_class_ref(t, lower, sink.words)
    } else {
        0
    };
    if j > 0 {
        best.consider((j, "deser.java-class"));
    }
    // `ProcessBuilder.evil.*` / `Runtime.getRuntime` style references without package.
    for cls in [
        "processbuilder",
        "runtime.getruntime",
        "java.runtime",
        "invokertransformer",
        "chainedtransformer",
        "constanttransformer",
        "templatesimpl",
        "jdbcrowsetimpl",
        "mlet",
        "classpathxmlapplicationcontext",
        "scriptenginemanager",
        "urlclassloader",
        "methodinvoker",
        "instantiatetransformer",
        "beanshell",
    ] {
        if let Some(p) = lower.find(cls) {
            let before_ok = p == 0 || !lower.as_bytes()[p - 1].is_ascii_alphanumeric();
            let after = &lower[p + cls.len()..];
            if before_ok
                && (after.is_empty() || after.starts_with(['.', '(', '"', ';', ' ', '>', '<', ')']))
            {
                best.consider((75, "deser.gadget-class"));
            }
        }
    }
    best.report(Class::Deserialization, text, sink);
}

// ---------------------------------------------------------------------------- prototype pollution

pub(crate) fn prototype_pollution(text: &str, lower: &str, sink: &mut Sink) {
    let origin = sink.origin;
    let mut best = 0;
    if let Some(p) = lower.find("__proto__") {
        best = if origin.is_name() {
            90
        } else {
            let around = &lower[p + 9..];
            let before = &lower[..p];
            if around.starts_with(['[', '.', '"', '\'', ']'])
                || before.ends_with(['[', '.', '"', '\''])
                || around.trim_start().starts_with([':', '='])
            {
                82
            } else {
                55
            }
        };
    }
    if let Some(p) = lower.find("constructor") {
        let after = lower[p + 11..].trim_start_matches([']', '"', '\'', '.', '[', ' ']);
        if after.starts_with("prototype") {
            best = best.max(85);
        }
    }
    if origin.is_name() && lower == "prototype" {
        best = best.max(60);
    }
    if best > 0 {
        sink.hit(Class::PrototypePollution, "proto.pollution", best, text);
    }
}

// ---------------------------------------------------------------------------- CR/LF

const HEADER_NAMES: &[&str] = &[
    "set-cookie",
    "location",
    "content-type",
    "content-length",
    "transfer-encoding",
    "refresh",
    "cache-control",
    "host",
    "cookie",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "content-security-policy",
    "x-xss-protection",
    "content-disposition",
    "connection",
    "expires",
    "last-modified",
    "etag",
    "vary",
    "www-authenticate",
    "authorization",
    "x-forwarded-for",
    "x-forwarded-host",
    "link",
    "strict-transport-security",
    "x-frame-options",
    "server",
    "remote-addr",
    "upgrade",
    "content-encoding",
    "pragma",
    "referer",
    "user-agent",
    "x-content-type-options",
    "bcc",
    "cc",
    "to",
    "from",
    "subject",
    "reply-to",
    "sender",
    "return-path",
    "mime-version",
    "content-transfer-encoding",
];

pub(crate) fn crlf(text: &str, sink: &mut Sink) {
    let origin = sink.origin;
    // A full request line inside a value: `GET http://x HTTP/1.1` (request smuggling).
    if let Some(p) = text
        .contains(" HTTP/")
        .then(|| text.find(" HTTP/"))
        .flatten()
    {
        let before = text[..p].trim_end();
        let method = before
            .rsplit(|c: char| c.is_whitespace())
            .nth(1)
            .unwrap_or("");
        let after = &text[p + 6..];
        if matches!(
            method,
            "GET" | "POST" | "HEAD" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" | "CONNECT" | "TRACE"
        ) && after.starts_with(|c: char| c.is_ascii_digit())
        {
            sink.hit(Class::Crlf, "crlf.request-line", 75, text);
        }
    }
    if !text.contains(['\r', '\n']) {
        return;
    }
    if origin == Origin::PathSegment {
        // A line break in a path is protocol tampering; prose pasted into a path less so.
        let prose = text.split_whitespace().count() > 4
            || text.chars().count() > 40
            || text.matches('\n').count() >= 2;
        sink.hit(
            Class::Crlf,
            "crlf.path-newline",
            if prose { 50 } else { 70 },
            text,
        );
    }
    let free_text = matches!(
        origin,
        Origin::JsonValue | Origin::XmlText | Origin::RawBody | Origin::GraphQl
    ) || (origin == Origin::ParamValue && sink.header.is_none());
    let mut best = 0;
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\r' && b[i] != b'\n' {
            i += 1;
            continue;
        }
        let cr = b[i] == b'\r';
        let mut j = i;
        while j < b.len() && (b[j] == b'\r' || b[j] == b'\n') && j < i + 8 {
            j += 1;
        }
        let next = &text[j..];
        let line = next.lines().next().unwrap_or("");
        let line = crate::extract::truncate_str(line, 256);
        let lower_line = line.to_ascii_lowercase();
        // Request/response line: `HTTP/1.1 200 OK`, `GET / HTTP/1.1`.
        if lower_line.starts_with("http/1.")
            || lower_line.starts_with("http/2")
            || (lower_line.contains(" http/1.")
                && lower_line
                    .split(' ')
                    .next()
                    .is_some_and(|m| m.len() <= 8 && m.bytes().all(|c| c.is_ascii_alphabetic())))
        {
            best = best.max(88);
        }
        if let Some((name, value)) = line.split_once(':') {
            let n = name.trim().to_ascii_lowercase();
            let token = !n.is_empty()
                && n.len() < 40
                && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-');
            // `https://…` on its own line is a URL, not a header.
            let header_like = token && !value.starts_with("//");
            if header_like {
                let known = HEADER_NAMES.contains(&n.as_str()) || n.starts_with("x-");
                // Mail header names are also how letters are written ("To: Bob").
                let mailish = matches!(
                    n.as_str(),
                    "bcc"
                        | "cc"
                        | "to"
                        | "from"
                        | "subject"
                        | "reply-to"
                        | "sender"
                        | "return-path"
                );
                if known && mailish && free_text && !cr {
                    best = best.max(40);
                } else if known {
                    best = best.max(if free_text && !cr { 62 } else { 85 });
                } else if !free_text && cr {
                    best = best.max(70);
                }
            }
        }
        // A blank line followed by a document: response splitting into a body.
        let doc: String = crate::extract::truncate_str(next, 64)
            .trim_start()
            .chars()
            .take(16)
            .collect::<String>()
            .to_ascii_lowercase();
        if doc.starts_with("<html") || doc.starts_with("<script") || doc.starts_with("<!doctype") {
            best = best.max(80);
        }
        // CR/LF in a name (parameter, cookie, file) has no innocent use.
        if cr
            && matches!(
                origin,
                Origin::CookieName | Origin::ParamName | Origin::Filename | Origin::PathSegment
            )
        {
            best = best.max(65);
        }
        i = j;
    }
    if best > 0 {
        sink.hit(Class::Crlf, "crlf.header-injection", best, text);
    }
}

// ---------------------------------------------------------------------------- XXE

pub(crate) fn xxe(text: &str, lower: &str, sink: &mut Sink) {
    let f = sink.feat;
    let markup = f.any(Feat::LT) && lower.contains("<!")
        || lower.contains("xinclude")
        || f.any(Feat::COLON) && lower.contains("xi:include")
        || f.any(Feat::OTHER) && lower.contains("!entity")
        || lower.contains("schemalocation");
    if !markup {
        return;
    }
    if lower.contains("!entity")
        && (lower.contains(" system") || lower.contains(" public") || lower.contains("!entity %"))
        && !lower.contains("<!entity")
    {
        sink.hit(Class::Xxe, "xxe.entity", 75, text);
    }
    if lower.contains("schemalocation=")
        && (lower.contains("http://") || lower.contains("https://"))
        && lower.contains('<')
    {
        sink.hit(Class::Xxe, "xxe.remote-schema", 66, text);
    }
    let mut best = 0;
    let doctype = lower.contains("<!doctype");
    if lower.contains("<!entity") {
        let external = lower.contains(" system ")
            || lower.contains(" system\"")
            || lower.contains(" system'")
            || lower.contains(" public ")
            || lower.contains("system \"")
            || lower.contains("system '");
        let param = lower.contains("<!entity %") || lower.contains("<!entity  %");
        best = if external || param { 92 } else { 60 };
        // Entity expansion bombs: many references inside entity values.
        let refs = lower.matches("&lol").count() + lower.matches(";&").count();
        if refs >= 8 {
            best = best.max(85);
        }
    } else if doctype
        && (lower.contains(" system ") || lower.contains(" system\"") || lower.contains(" public "))
    {
        best = 70;
    }
    if lower.contains("xi:include") || lower.contains("http://www.w3.org/2001/xinclude") {
        best = best.max(82);
    }
    if best > 0 {
        sink.hit(Class::Xxe, "xxe.entity", best, text);
    }
}

// ---------------------------------------------------------------------------- code injection

const PHP_FUNCS: &[&str] = &[
    "system",
    "exec",
    "shell_exec",
    "passthru",
    "popen",
    "proc_open",
    "pcntl_exec",
    "eval",
    "assert",
    "create_function",
    "call_user_func",
    "call_user_func_array",
    "preg_replace",
    "include",
    "include_once",
    "require",
    "require_once",
    "file_get_contents",
    "file_put_contents",
    "fopen",
    "fwrite",
    "fputs",
    "readfile",
    "base64_decode",
    "gzinflate",
    "gzuncompress",
    "gzdecode",
    "str_rot13",
    "phpinfo",
    "chr",
    "ord",
    "print_r",
    "var_dump",
    "var_export",
    "unserialize",
    "highlight_file",
    "show_source",
    "php_uname",
    "getenv",
    "putenv",
    "ini_set",
    "ini_get",
    "dl",
    "mail",
    "move_uploaded_file",
    "copy",
    "unlink",
    "rmdir",
    "mkdir",
    "chmod",
    "symlink",
    "scandir",
    "glob",
    "opendir",
    "readdir",
    "array_map",
    "array_filter",
    "usort",
    "uasort",
    "register_shutdown_function",
    "register_tick_function",
    "set_error_handler",
    "ob_start",
    "escapeshellcmd",
    "posix_getpwuid",
    "posix_kill",
    "posix_setuid",
    "curl_exec",
    "fsockopen",
    "socket_create",
    "stream_socket_client",
    "get_defined_vars",
    "extract",
    "parse_str",
    "compact",
    "convert_uudecode",
    "hex2bin",
    "bin2hex",
    "strrev",
    "urldecode",
    "rawurldecode",
    "bzdecompress",
    "pfsockopen",
    "zlib_decode",
    "get_defined_functions",
    "curl_init",
    "posix_getegid",
    "file_exists",
    "is_array",
    "assert_options",
    "filegroup",
    "unpack",
    "strip_tags",
    "intval",
    "fputcsv",
    "fgets",
    "fread",
    "proc_nice",
    "proc_terminate",
    "stripslashes",
    "str_replace",
    "substr",
    "implode",
    "explode",
    "sprintf",
    "printf",
    "file",
    "filter_var",
    "expect_popen",
    "zlib_decode",
    "lcg_value",
];

/// `PHP_FUNCS` as a set, built once.
fn php_func(name: &str) -> bool {
    static SET: WordSet = WordSet::new(PHP_FUNCS);
    SET.contains(name)
}

/// The superglobals and stream wrappers `php_code` looks for.
pub(super) static PHP_SG_DICT: Dict = Dict::new(
    &[
        "$_get",
        "$_post",
        "$_request",
        "$_cookie",
        "$_server",
        "$_files",
        "$_env",
        "$_session",
        "$globals",
        "$http_raw_post_data",
        "php://input",
        "php://filter",
        "php://stdin",
        "php://stdout",
        "php://memory",
        "php://fd",
        "data://text/plain",
        "data:text/plain",
        "zip://",
        "phar://",
        "expect://",
    ],
    false,
);

/// Builtins long and distinctive enough to recognise as the tail of a longer identifier
/// (`FOOgzinflate(`), built once.
fn php_suffixes(with_underscore: bool) -> &'static [&'static str] {
    static PLAIN: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    if with_underscore {
        ALL.get_or_init(|| {
            PHP_FUNCS
                .iter()
                .copied()
                .filter(|f| f.contains('_') || f.len() >= 6 && php_distinctive(f))
                .collect()
        })
    } else {
        PLAIN.get_or_init(|| {
            PHP_FUNCS
                .iter()
                .copied()
                .filter(|f| f.len() >= 6 && php_distinctive(f))
                .collect()
        })
    }
}

/// Function names that are PHP-only spellings (underscores, prefixes): strong alone.
fn php_distinctive(name: &str) -> bool {
    name.contains('_')
        || matches!(
            name,
            "phpinfo"
                | "passthru"
                | "pfsockopen"
                | "bzdecompress"
                | "unpack"
                | "filegroup"
                | "intval"
                | "fputcsv"
                | "popen"
                | "eval"
                | "assert"
                | "gzinflate"
                | "gzuncompress"
                | "gzdecode"
                | "unserialize"
                | "system"
                | "exec"
                | "chr"
                | "fsockopen"
                | "readfile"
                | "unlink"
                | "symlink"
                | "scandir"
                | "opendir"
                | "readdir"
                | "putenv"
                | "getenv"
                | "hex2bin"
                | "strrev"
                | "urldecode"
                | "dl"
        )
}

/// Whether a `(` (or `=(`) follows, across whitespace, a name the call loops of
/// `php_code` could act on: six characters or more, or a PHP builtin. With a comment
/// anywhere (they may stand between a name and its `(`) the answer is yes.
fn php_call_candidate(lower: &str) -> bool {
    if lower.contains("/*") || lower.contains("//") || lower.contains('#') {
        return true;
    }
    let b = lower.as_bytes();
    let name_before = |mut end: usize| {
        while end > 0 && b[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && (b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_') {
            start -= 1;
        }
        &lower[start..end]
    };
    lower.match_indices('(').any(|(q, _)| {
        let candidate = |name: &str| name.len() >= 6 || php_func(name);
        candidate(name_before(q)) || q > 0 && b[q - 1] == b'=' && candidate(name_before(q - 1))
    })
}

/// Skips whitespace and C/shell comments; returns the next index.
fn skip_ws_comments(b: &[u8], mut i: usize) -> usize {
    let mut guard = 0;
    while i < b.len() && guard < 64 {
        guard += 1;
        if b[i].is_ascii_whitespace() {
            i += 1;
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            // Bounded: an unterminated comment must not make every caller rescan the tail.
            let mut j = i + 2;
            while j + 1 < b.len() && !(b[j] == b'*' && b[j + 1] == b'/') && j < i + 1024 {
                j += 1;
            }
            i = (j + 2).min(b.len());
        } else if (b[i] == b'/' && b.get(i + 1) == Some(&b'/')) || b[i] == b'#' {
            let start = i;
            while i < b.len() && b[i] != b'\n' && i < start + 1024 {
                i += 1;
            }
        } else {
            break;
        }
    }
    i
}

/// PHP in a value, read in lower case: PHP names and tags are case-insensitive.
/// `f` holds the features of `lower`, `words` its dictionaries with a word.
fn php_code(lower: &str, f: Feat, words: Words) -> (u32, &'static str) {
    let b = lower.as_bytes();
    let mut best = (0u32, "");
    let mut bump = |s: u32, r: &'static str| {
        if s > best.0 {
            best = (s, r);
        }
    };
    // Every open tag below starts with `<?`, every bracket tag holds `php`.
    let open_tag = f.any(Feat::LT) && lower.contains("<?");
    if open_tag && (lower.contains("<?php") || lower.contains("<?=")) {
        bump(88, "code.php-open-tag");
    } else if let Some(p) = open_tag.then(|| lower.find("<?")).flatten() {
        let rest = &lower[p + 2..];
        if !rest.starts_with("xml ")
            && !rest.starts_with("xml?")
            && !rest.starts_with("xml-stylesheet")
            && rest.trim_start().len() > 1
        {
            bump(72, "code.php-open-tag");
        }
    }
    if lower.contains("php") {
        for tag in ["[php]", "[/php]", "[\\php]", "{php}", "{/php}", "[?php]"] {
            if lower.contains(tag) {
                bump(75, "code.php-open-tag");
            }
        }
    }
    if lower.trim_end().ends_with("<?") {
        bump(65, "code.php-open-tag");
    }
    if let Some(p) = open_tag.then(|| lower.find("<?xml")).flatten() {
        let rest = lower[p + 5..].trim_start();
        if !rest.is_empty()
            && !rest.starts_with("version")
            && !rest.starts_with("encoding")
            && !rest.starts_with("?>")
            && !rest.starts_with("-stylesheet")
        {
            bump(72, "code.php-open-tag");
        }
    }
    // PHP builtins are snake_case with well-known prefixes: `file_exists(`, `curl_init(`.
    // It and the function-call loop below look at calls only: without `(`, skip both.
    let call = f.any(Feat::PAREN) && lower.contains('(') && php_call_candidate(lower);
    if call {
        let mut i = 0;
        while i < b.len() {
            if !(b[i].is_ascii_alphabetic())
                || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            {
                i += 1;
                continue;
            }
            let st = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            let name = &lower[st..i];
            if name.len() < 6 || name.starts_with('_') || name.ends_with('_') {
                continue;
            }
            // Only a call can be code: look for `(` before matching the name against
            // the builtin suffixes, which is the expensive part.
            let j = skip_ws_comments(b, i);
            if b.get(j) != Some(&b'(') && !(b.get(j) == Some(&b'=') && b.get(j + 1) == Some(&b'('))
            {
                continue;
            }
            let suffix_only = !name.contains('_')
                && php_suffixes(false)
                    .iter()
                    .any(|f| name.len() > f.len() && name.ends_with(f));
            if !name.contains('_') && !suffix_only {
                continue;
            }
            let prefix = name.split('_').next().unwrap_or("");
            let php_prefix = matches!(
                prefix,
                "file"
                    | "is"
                    | "str"
                    | "array"
                    | "get"
                    | "set"
                    | "curl"
                    | "posix"
                    | "gz"
                    | "zlib"
                    | "ob"
                    | "mb"
                    | "preg"
                    | "call"
                    | "func"
                    | "proc"
                    | "shell"
                    | "stream"
                    | "socket"
                    | "session"
                    | "ini"
                    | "php"
                    | "var"
                    | "json"
                    | "base64"
                    | "hex"
                    | "bin"
                    | "url"
                    | "html"
                    | "strip"
                    | "escape"
                    | "assert"
                    | "extract"
                    | "parse"
                    | "create"
                    | "register"
                    | "define"
                    | "class"
                    | "method"
                    | "fs"
                    | "bz"
                    | "mysql"
                    | "mysqli"
                    | "pg"
                    | "sqlite"
                    | "pcntl"
                    | "highlight"
                    | "show"
                    | "opcache"
                    | "apache"
                    | "error"
                    | "debug"
                    | "filter"
                    | "hash"
                    | "openssl"
                    | "mcrypt"
                    | "move"
                    | "fsock"
                    | "pfsock"
                    | "popen"
                    | "exec"
                    | "system"
                    | "passthru"
            );
            let known_suffix = php_suffixes(true).iter().any(|f| name.ends_with(f));
            if php_prefix || known_suffix {
                bump(66, "code.php-function");
            }
        }
    }
    // Every superglobal or wrapper has a `$` or a `:`; one scan says whether any is here.
    let has_sg = f.any(Feat::DOLLAR | Feat::COLON) && PHP_SG_DICT.any_in(lower, words);
    for &sg in PHP_SG_DICT.words() {
        // Every superglobal or wrapper has a `$` or a `:`.
        if !has_sg {
            break;
        }
        if let Some(p) = lower.find(sg) {
            let after = &lower[p + sg.len()..];
            let strong = sg.starts_with("php://")
                || sg.contains("://")
                || after.trim_start().starts_with(['[', ';', ')', '.'])
                || sg.starts_with("data:");
            bump(if strong { 78 } else { 60 }, "code.php-superglobal");
        }
    }
    // Function calls `name (args)` with comments allowed before `(`.
    let mut i = if call { 0 } else { b.len() };
    while i < b.len() {
        if !(b[i].is_ascii_alphabetic() || b[i] == b'_')
            || (i > 0
                && (b[i - 1].is_ascii_alphanumeric()
                    || b[i - 1] == b'_'
                    || b[i - 1] == b'$'
                    || b[i - 1] == b'.'
                    || b[i - 1] == b'-'))
        {
            i += 1;
            continue;
        }
        let st = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        let name = &lower[st..i];
        // Only a call can be code: look for `(` before looking the name up.
        let j = skip_ws_comments(b, i);
        if b.get(j) != Some(&b'(') || !php_func(name) {
            continue;
        }
        let commented =
            lower[i..j].contains("/*") || lower[i..j].contains('#') || lower[i..j].contains("//");
        let spaced = j > i && !commented;
        // Look at the argument list up to the matching paren.
        let mut k = j + 1;
        let mut depth = 1;
        while k < b.len() && depth > 0 && k < j + 512 {
            match b[k] {
                b'(' => depth += 1,
                b')' => depth -= 1,
                _ => {}
            }
            k += 1;
        }
        // Without a closing paren `k` stops at the byte cap or the end, which may fall
        // inside a multi-byte character: cut at the character boundary before it.
        let mut end = k.saturating_sub(1).max(j + 1);
        while !lower.is_char_boundary(end) {
            end -= 1;
        }
        let args = &lower[j + 1..end];
        let words_in_row = args
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != ' ')
            .any(|seg| seg.split_whitespace().count() >= 3);
        let closed = depth == 0;
        let code_args = args.trim().is_empty()
            || args.contains(['$', '\'', '"', '('])
            || args.trim().bytes().all(|c| c.is_ascii_digit() || c == b' ');
        let distinctive = php_distinctive(name);
        let score = if commented {
            85
        } else if words_in_row {
            0
        } else if distinctive && closed && code_args {
            80
        } else if distinctive && !spaced && (args.trim().is_empty() || !closed && args.len() < 3) {
            66
        } else if distinctive
            && !spaced
            && closed
            && args
                .trim()
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_')
        {
            // `phpinfo(foo)`: a PHP builtin called with one bare argument.
            64
        } else if !spaced && closed && args.trim().is_empty() && name.len() >= 4 {
            62
        } else if closed && code_args && args.contains(['$', '\'', '"']) {
            60
        } else {
            0
        };
        bump(score, "code.php-function");
    }
    // Variable functions: `$x(`, `$x{0}(`, `$_aB['d'] (17)`, `${'x'}`.
    let mut i = if f.any(Feat::DOLLAR) { 0 } else { b.len() };
    while i < b.len() {
        if b[i] != b'$' {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let spaced_brace = {
            let mut k = j;
            while k < b.len() && b[k] == b' ' && k < j + 32 {
                k += 1;
            }
            k > j && b.get(k) == Some(&b'{')
        };
        if spaced_brace {
            // `$ {x}`: only PHP allows whitespace between `$` and `{`.
            bump(72, "code.php-variable-variable");
        }
        if b.get(j) == Some(&b'{') {
            let close = lower[j..].find('}').map_or(b.len(), |p| j + p);
            let inner = lower[j + 1..close.min(lower.len())].trim();
            let k = skip_ws_comments(b, (close + 1).min(b.len()));
            if b.get(k) == Some(&b'(') || inner.starts_with(['\'', '"']) || inner.contains('(') {
                bump(75, "code.php-variable-variable");
            } else if !inner.is_empty()
                && inner
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b' ')
                && inner.contains(' ')
            {
                bump(55, "code.php-variable-variable");
            } else if !inner.is_empty()
                && inner
                    .bytes()
                    .all(|c| c.is_ascii_uppercase() || c == b'_' || c.is_ascii_alphanumeric())
            {
                // `${US_PRIVACY}` is also every macro placeholder language.
                bump(25, "code.php-variable-variable");
            }
            i = close.max(i + 1);
            continue;
        }
        let ns = j;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
            j += 1;
        }
        if j == ns || !b[ns].is_ascii_alphabetic() && b[ns] != b'_' {
            i = j.max(i + 1);
            continue;
        }
        // Subscripts and comments between the variable and the call.
        let mut k = skip_ws_comments(b, j);
        let mut subs = 0;
        while k < b.len() && (b[k] == b'[' || b[k] == b'{') && subs < 8 {
            let (open, close) = if b[k] == b'[' {
                (b'[', b']')
            } else {
                (b'{', b'}')
            };
            let mut depth = 0usize;
            let mut end = b.len();
            for (m, &c) in b.iter().enumerate().skip(k).take(256) {
                if c == open {
                    depth += 1;
                } else if c == close {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = m;
                        break;
                    }
                }
            }
            k = skip_ws_comments(b, (end + 1).min(b.len()));
            subs += 1;
        }
        if b.get(k) == Some(&b'(') {
            let obf = subs > 0 || lower[j..k].contains("/*") || lower[j..k].contains('#');
            bump(if obf { 80 } else { 68 }, "code.php-variable-function");
        }
        i = j;
    }
    // `(system)('id')`, `[system][0](ls)`: a callable in brackets.
    let mut inner_clean = String::new();
    for (open, close) in [('(', ')'), ('[', ']')] {
        if !f.any(Feat::PAREN | Feat::BRACKET) {
            break;
        }
        let mut from = 0;
        let mut guard = 0;
        while let Some(p) = lower[from..].find(open) {
            guard += 1;
            if guard > 64 {
                break;
            }
            let st = from + p + 1;
            let Some(q) = lower[st..].find(close) else {
                break;
            };
            let inner_raw = &lower[st..st + q];
            inner_clean.clear();
            {
                let ib = inner_raw.as_bytes();
                let mut x = 0;
                while x < ib.len() {
                    let y = skip_ws_comments(ib, x);
                    if y > x {
                        x = y;
                        continue;
                    }
                    inner_clean.push(char::from(ib[x]));
                    x += 1;
                }
            }
            let inner = inner_clean.trim().trim_matches(['\'', '"']);
            from = st + q + 1;
            if php_func(inner) && php_distinctive(inner)
                || inner.starts_with('$')
                    && inner.len() > 1
                    && inner[1..]
                        .bytes()
                        .all(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                let mut k = skip_ws_comments(b, from);
                // Optional `[0]` index.
                if b.get(k) == Some(&b'[') {
                    let end = lower[k..].find(']').map_or(b.len(), |e| k + e + 1);
                    k = skip_ws_comments(b, end);
                }
                if b.get(k) == Some(&b'(') {
                    bump(85, "code.php-bracket-call");
                }
            }
        }
    }
    best
}

/// Substrings without which none of the script-code rules below can fire.
const SCRIPT_TRIGGERS: &[&str] = &[
    "require",
    "process",
    "constructor",
    "import",
    "os.",
    "subprocess",
    "exec",
    "eval",
    "spawn",
    "popen",
    "system",
    "kernel",
    "io.",
    "open3",
    "%x(",
    "send(",
    "syscall",
    "runtime",
    "class.forname",
    "getmethod",
    "newinstance",
    "defineclass",
    "jshell",
    "java.lang.reflect",
    "scriptenginemanager",
    "while",
    "for(",
    "for (",
    "global",
    "console",
    "buffer.from",
    "module.",
    "_$$nd_func$$_",
    "__js_function",
    "resolved_model",
    "$7:",
    "__builtins__",
    "getattr",
    "pty.",
    "importlib",
    "socket.",
    "instance_eval",
    "class_eval",
    "const_get",
    "fs.",
    "getdeclaredmethod",
];
pub(super) static SCRIPT_DICT: Dict = Dict::new(SCRIPT_TRIGGERS, true);

fn script_code(text: &str, lower: &str, words: Words) -> (u32, &'static str) {
    if !SCRIPT_DICT.any_in(text, words) {
        return (0, "");
    }
    let compact: String = lower
        .chars()
        .filter(|c| !c.is_whitespace())
        .take(8192)
        .collect();
    let mut best = (0u32, "");
    let mut bump = |s: u32, r: &'static str| {
        if s > best.0 {
            best = (s, r);
        }
    };
    // Node.js.
    for m in [
        "require('child_process')",
        "require(\"child_process\")",
        "require(`child_process`)",
        "child_process",
        "process.mainmodule",
        "process.binding(",
        "global.process",
        "process.kill(",
        "process.exit(",
        "require('fs')",
        "require(\"fs\")",
        ".execsync(",
        ".spawnsync(",
        "process.env",
        "this.constructor.constructor",
        "require[",
        "module.constructor",
        "import('child_process')",
        "process.dlopen",
        "fs.readfilesync",
        "fs.writefilesync",
    ] {
        if compact.contains(m) {
            bump(
                if m.contains("child_process")
                    || m.contains("mainmodule")
                    || m.contains("binding")
                    || m.contains("constructor")
                    || m.contains("sync(")
                {
                    85
                } else {
                    72
                },
                "code.node",
            );
        }
    }
    if compact.contains("require(")
        && (compact.contains(".exec(")
            || compact.contains(".spawn(")
            || compact.contains("readfile"))
    {
        bump(85, "code.node");
    }
    if compact.contains(".spawn(") && compact.contains("process") {
        bump(80, "code.node");
    }
    if compact.contains("require[") || compact.starts_with("require(") {
        bump(72, "code.node");
    }
    // Event-loop denial: a loop whose condition is a constant (`while(!0)`, `for(;;)`).
    if compact.contains("for(;;)") {
        bump(75, "code.js-infinite-loop");
    }
    if let Some(p) = compact.find("while(") {
        let inner = &compact[p + 6..];
        let mut depth = 1;
        let mut end = inner.len();
        for (k, ch) in inner.char_indices() {
            match ch {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let cond = &inner[..end];
        let words: Vec<&str> = cond
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        let constant = !cond.is_empty()
            && !cond.contains(['<', '>', '='])
            && words.iter().all(|w| {
                w.bytes().all(|c| c.is_ascii_digit())
                    || matches!(
                        *w,
                        "true"
                            | "false"
                            | "newdate"
                            | "infinity"
                            | "nan"
                            | "null"
                            | "undefined"
                            | "this"
                            | "string"
                            | "number"
                            | "object"
                            | "new"
                            | "date"
                            | "array"
                            | "function"
                            | "boolean"
                    )
            });
        if constant {
            bump(75, "code.js-infinite-loop");
        }
    }
    // Node.js globals reached through member access or calls.
    for g in [
        "process.",
        "process[",
        "module.exports",
        "global.",
        "globalthis.",
        "console.",
        "console[",
        "buffer.from(",
        "require.main",
        "require.cache",
    ] {
        if let Some(p) = compact.find(g) {
            let before_ok = p == 0 || !compact.as_bytes()[p - 1].is_ascii_alphanumeric();
            let rest = &compact[p + g.len()..];
            let active = rest.contains('(')
                || rest.starts_with('=')
                || rest.contains("]=")
                || g.ends_with('[')
                || g == "module.exports";
            let process_ok = g != "process."
                || [
                    "env",
                    "mainmodule",
                    "binding",
                    "kill",
                    "exit",
                    "dlopen",
                    "stdout",
                    "stdin",
                ]
                .iter()
                .any(|x| rest.starts_with(x));
            if before_ok && active && process_ok {
                bump(70, "code.node-global");
            }
        }
    }
    if compact.contains("_$$nd_func$$_") || compact.contains("__js_function") {
        bump(85, "code.node-serialize");
    }
    if compact.contains("[\"constructor\"]")
        || compact.contains("['constructor']")
        || compact.contains("$7:") && compact.contains("prototype")
        || compact.contains("resolved_model")
    {
        bump(72, "code.js-constructor");
    }
    // Python.
    for m in [
        "__import__(",
        "os.system(",
        "os.popen(",
        "subprocess.",
        "eval(compile(",
        "exec(compile(",
        "getattr(__builtins__",
        "__builtins__[",
        "pty.spawn(",
        "importlib.import_module(",
        "os.exec",
        "socket.socket(",
    ] {
        if compact.contains(m) {
            bump(85, "code.python");
        }
    }
    // Ruby.
    for m in [
        "process.spawn(",
        "kernel.exec(",
        "kernel.system(",
        "io.popen(",
        "open3.",
        "kernel.open(",
        "%x(",
        "instance_eval(",
        "class_eval(",
        "object.const_get",
        "send(:system",
        "send(:eval",
        ".send(:",
        "syscall(",
    ] {
        if compact.contains(m) {
            bump(80, "code.ruby");
        }
    }
    // Java reflection / runtime.
    for m in [
        "runtime.getruntime().exec",
        "getruntime()",
        "new processbuilder(",
        "class.forname(",
        ".getmethod(",
        ".getdeclaredmethod(",
        "scriptenginemanager",
        ".newinstance(",
        "defineclass(",
        "jshell",
        "java.lang.reflect",
    ] {
        if compact.contains(m) {
            bump(82, "code.java");
        }
    }
    best
}

pub(crate) fn code_injection(text: &str, lower: &str, sink: &mut Sink) {
    if text.len() < 4 {
        return;
    }
    let (a, ra) = php_code(lower, sink.feat, sink.words);
    let (b, rb) = script_code(text, lower, sink.words);
    let (s, r) = if a >= b { (a, ra) } else { (b, rb) };
    if s > 0 {
        sink.hit(Class::CodeInjection, r, s, text);
    }
}

/// Upload names whose extension makes a server execute them, with the tricks servers
/// tolerate (`a.php.`, `a.php `, `a.php::$DATA`, `a.pHp5`).
pub(crate) fn dangerous_filename(text: &str, lower: &str, sink: &mut Sink) {
    let base = lower.rsplit(['/', '\\']).next().unwrap_or(lower);
    let cleaned: String = base
        .trim_end_matches(['.', ' ', '\0'])
        .replace("::$data", "")
        .chars()
        .filter(|c| *c != ' ')
        .collect();
    let ext = cleaned.rsplit_once('.').map_or("", |x| x.1);
    let ext = ext.trim_end_matches(|c: char| c.is_ascii_digit());
    let exec = ext.starts_with("php")
        || ext.starts_with("pht")
        || matches!(
            ext,
            "php"
                | "php3"
                | "php4"
                | "php5"
                | "php6"
                | "php7"
                | "php8"
                | "phtml"
                | "phar"
                | "pht"
                | "phps"
                | "pgif"
                | "shtml"
                | "jsp"
                | "jspx"
                | "jspf"
                | "jsw"
                | "jsv"
                | "asp"
                | "aspx"
                | "ashx"
                | "asmx"
                | "asa"
                | "cer"
                | "cgi"
                | "pl"
                | "htaccess"
                | "war"
                | "ear"
                | "cfm"
                | "cfml"
                | "xsl"
                | "xslt"
                | "sh"
                | "bat"
                | "cmd"
                | "ps1"
                | "vbs"
                | "hta"
                | "exe"
                | "dll"
        )
        || base.starts_with(".htaccess")
        || base == "web.config"
        || base.starts_with("sess_");
    // Dotfiles and backups of application config leak or replace credentials.
    let config_leak = (base.starts_with('.') && base.len() > 2 && !base.starts_with(".."))
        || base.contains("wp-config")
        || (base.starts_with("config")
            && matches!(
                ext,
                "bak" | "old" | "orig" | "save" | "swp" | "txt" | "yml" | "yaml" | "php" | "inc"
            ));
    if config_leak && !exec {
        sink.hit(Class::CodeInjection, "code.config-file-upload", 66, text);
    }
    if exec {
        sink.hit(Class::CodeInjection, "code.executable-upload", 75, text);
    }
}

#[cfg(test)]
mod tests;

// ---------------------------------------------------------------------------- scanners

/// Product names of vulnerability scanners and attack tools as they announce themselves
/// in a User-Agent. No browser, SDK or crawler uses these tokens; an operator who runs
/// one of them on purpose excludes `header.user-agent:scanner`.
const SCANNER_AGENTS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nuclei",
    "nessus",
    "arachni",
    "acunetix",
    "netsparker",
    "w3af",
    "zgrab",
    "masscan",
    "nmap scripting engine",
    "nmap nse",
    "dirbuster",
    "gobuster",
    "wpscan",
    "havij",
    "openvas",
    "whatweb",
    "jaeles",
    "wfuzz",
    "fuzz faster u fool",
    "feroxbuster",
    "commix",
    "xsstrike",
    "joomscan",
    "skipfish",
    "paros/",
    "webinspect",
    "appscan",
    "morfeus",
    "zmeu",
    "dotdotpwn",
    "fimap",
    "bsqlbf",
    "sqlninja",
    "metasploit",
    "burpcollaborator",
    "interact.sh",
    "qualysguard",
    "webshag",
    "wapiti",
    "ffuf",
];
static SCANNER_DICT: Dict = Dict::new(SCANNER_AGENTS, true);

/// A User-Agent naming a scanner or attack tool (`sqlmap/1.7`, `Nuclei`, `... Havij`).
pub(crate) fn scanner_agent(text: &str, lower: &str, sink: &mut Sink) {
    for (idx, at) in SCANNER_DICT.occurrences(lower, 8) {
        let word = SCANNER_AGENTS[idx];
        let b = lower.as_bytes();
        // A whole token: not the middle of a longer word (`nikto` in `niktos`).
        let before_ok = at == 0 || !b[at - 1].is_ascii_alphabetic();
        let end = at + word.len();
        let after_ok = word.ends_with('/') || end >= b.len() || !b[end].is_ascii_alphabetic();
        if before_ok && after_ok {
            sink.hit(Class::Scanner, "scanner.user-agent", 70, text);
            return;
        }
    }
}
