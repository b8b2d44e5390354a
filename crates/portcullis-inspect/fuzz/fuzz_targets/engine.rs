//! The whole engine on a request built from arbitrary structure: method, path, query,
//! headers (the ones with special handling named, any other too), a `Content-Type`
//! picked among the body formats, a body, settings (sensitivity, limits, exclusions).
//! The shared inspection invariants, and no finding at an excluded location.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use portcullis_inspect::{Engine, Exclusion, Request, Sensitivity, Settings};

#[derive(Arbitrary, Debug)]
enum Mime<'a> {
    Json,
    ProblemJson,
    Xml,
    SoapXml,
    Form,
    Multipart,
    Graphql,
    TextPlain,
    OctetStream,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Field<'a> {
    Cookie,
    UserAgent,
    Referer,
    Origin,
    Authorization,
    ProxyAuthorization,
    XApiKey,
    XFileName,
    XForwardedFor,
    Host,
    ContentType,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    sensitivity: u8,
    max_findings: u8,
    small_limits: Option<(u8, u16, u16, u8)>,
    exclusions: Vec<&'a str>,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    content_type: Option<(Mime<'a>, &'a str)>,
    headers: Vec<(Field<'a>, &'a [u8])>,
    body: &'a [u8],
}

fuzz_target!(|input: Input<'_>| {
    let mut settings = Settings {
        sensitivity: match input.sensitivity % 3 {
            0 => Sensitivity::Balanced,
            1 => Sensitivity::Strict,
            _ => Sensitivity::Paranoid,
        },
        max_findings: usize::from(input.max_findings % 32),
        exclusions: input
            .exclusions
            .iter()
            .filter_map(|e| e.parse::<Exclusion>().ok())
            .collect(),
        ..Settings::default()
    };
    if let Some((values, value_len, file_bytes, depth)) = input.small_limits {
        settings.max_values = usize::from(values);
        settings.max_value_len = usize::from(value_len);
        settings.max_file_bytes = usize::from(file_bytes);
        settings.max_depth = usize::from(depth % 16);
    }
    let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some((mime, params)) = &input.content_type {
        let m = match mime {
            Mime::Json => "application/json",
            Mime::ProblemJson => "application/problem+json",
            Mime::Xml => "application/xml",
            Mime::SoapXml => "application/soap+xml",
            Mime::Form => "application/x-www-form-urlencoded",
            Mime::Multipart => "multipart/form-data; boundary=XX",
            Mime::Graphql => "application/graphql",
            Mime::TextPlain => "text/plain",
            Mime::OctetStream => "application/octet-stream",
            Mime::Other(s) => s,
        };
        headers.push(("content-type".into(), format!("{m}{params}").into_bytes()));
    }
    for (name, value) in &input.headers {
        let n = match name {
            Field::Cookie => "cookie",
            Field::UserAgent => "user-agent",
            Field::Referer => "referer",
            Field::Origin => "origin",
            Field::Authorization => "authorization",
            Field::ProxyAuthorization => "proxy-authorization",
            Field::XApiKey => "x-api-key",
            Field::XFileName => "x-file-name",
            Field::XForwardedFor => "x-forwarded-for",
            Field::Host => "host",
            Field::ContentType => "content-type",
            Field::Other(s) => s,
        };
        // The gateway hands over valid field names (RFC 9110 tokens), in lower case.
        let n: String = n
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(*c))
            .collect::<String>()
            .to_ascii_lowercase();
        if n.is_empty() {
            continue;
        }
        headers.push((n, value.to_vec()));
    }
    let header_refs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let req = Request {
        method: input.method,
        path: input.path,
        query: input.query,
        headers: &header_refs,
        body: input.body,
    };
    let engine = Engine::new(settings);
    let out = portcullis_inspect_fuzz::check_inspection(&engine, &req);
    for f in &out.findings {
        for e in &engine.settings().exclusions {
            assert!(!e.matches(&f.location, f.class), "excluded by {e:?}: {f:?}");
        }
    }
});
