//! Validation and compilation of the wire structs, collecting every error with its path.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::units::{parse_byte_size, parse_duration};
use crate::wire::{self, SizeValue};
use crate::{
    AccessLog, Admin, Admission, AuthMethod, Config, ConfigError, ConfigErrors, FilterMode,
    Gateway, HostPattern, IpNet, Log, Method, PathPattern, Route, Segment, Target, Tls, Upstream,
    UpstreamTls,
};

/// Collects errors while compiling.
pub(crate) struct Errors(Vec<ConfigError>);

impl Errors {
    pub(crate) fn new(initial: Vec<ConfigError>) -> Self {
        Self(initial)
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self, config: Option<Config>) -> Result<Config, ConfigErrors> {
        match config {
            Some(config) if self.0.is_empty() => Ok(config),
            _ => Err(ConfigErrors(self.0)),
        }
    }
}

const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// Compiles the file; returns `None` only when something could not be built at all. Errors are
/// recorded in `errors`, and the caller refuses the config when there are any.
pub(crate) fn compile(file: &wire::ConfigFile, base: &Path, errors: &mut Errors) -> Option<Config> {
    let gateway = compile_gateway(&file.gateway, base, errors);
    let admin = compile_admin(&file.admin, errors);
    let log = compile_log(&file.log, base);
    let store = file
        .store
        .as_ref()
        .and_then(|s| compile_store(s, base, errors));
    let upstreams = compile_upstreams(&file.upstream, base, errors);
    let routes = compile_routes_with(&file.route, &upstreams, file.store.is_some(), errors);
    let limits = crate::limits::compile_limits(&file.limits, errors);
    Some(Config {
        limits,
        gateway: gateway?,
        admin: admin?,
        log,
        store,
        upstreams,
        routes,
    })
}

fn compile_gateway(
    section: &wire::GatewaySection,
    base: &Path,
    errors: &mut Errors,
) -> Option<Gateway> {
    let listen = match &section.listen {
        Some(addrs) => parse_addrs(addrs, "gateway.listen", errors),
        None if section.tls.is_some() => Vec::new(),
        None => vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
    };
    let tls = section
        .tls
        .as_ref()
        .and_then(|tls| compile_tls(tls, base, errors));
    let tls_listeners = tls.as_ref().map_or(0, |tls| tls.listen.len());
    // When the TLS section failed to compile its own errors say why; do not pile on.
    let plain_given = section.listen.as_ref().map_or(0, Vec::len);
    if plain_given == 0
        && listen.is_empty()
        && tls_listeners == 0
        && (section.tls.is_none() || tls.is_some())
    {
        errors.push(
            "gateway.listen",
            "no listener: give at least one address in gateway.listen or gateway.tls.listen",
        );
    }

    let max_header_bytes = size(
        &section.max_header_bytes,
        16 * 1024,
        "gateway.max_header_bytes",
        errors,
    );
    if !(1024..=1024 * 1024).contains(&max_header_bytes) {
        errors.push(
            "gateway.max_header_bytes",
            format!("{max_header_bytes} is out of range: use 1 KiB to 1 MiB"),
        );
    }
    let max_body_bytes = size(
        &section.max_body_bytes,
        1024 * 1024,
        "gateway.max_body_bytes",
        errors,
    );

    let request_header_timeout = duration(
        &section.request_header_timeout,
        Duration::from_secs(10),
        "gateway.request_header_timeout",
        errors,
    );
    let request_timeout = duration(
        &section.request_timeout,
        Duration::from_secs(30),
        "gateway.request_timeout",
        errors,
    );
    let drain_timeout = duration(
        &section.drain_timeout,
        Duration::from_secs(30),
        "gateway.drain_timeout",
        errors,
    );

    let mut trusted_proxies = Vec::new();
    for (index, text) in section.trusted_proxies.iter().flatten().enumerate() {
        match parse_net(text) {
            Ok(net) => trusted_proxies.push(net),
            Err(message) => errors.push(format!("gateway.trusted_proxies[{index}]"), message),
        }
    }

    let hsts = section
        .hsts
        .clone()
        .unwrap_or_else(|| "max-age=31536000; includeSubDomains".to_owned());
    if http::HeaderValue::from_str(&hsts).is_err() {
        errors.push("gateway.hsts", "not a valid header value");
    }

    let workers = match section.workers {
        None => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        Some(n) if (1..=1024).contains(&n) => usize::try_from(n).unwrap_or(1),
        Some(n) => {
            errors.push(
                "gateway.workers",
                format!("{n} is out of range: use 1 to 1024 (leave it out for one per CPU)"),
            );
            1
        }
    };

    Some(Gateway {
        workers,
        listen,
        tls,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_body_bytes,
        request_header_timeout,
        request_timeout,
        drain_timeout,
        trusted_proxies,
        hsts,
    })
}

fn compile_tls(section: &wire::TlsSection, base: &Path, errors: &mut Errors) -> Option<Tls> {
    let listen = match &section.listen {
        Some(addrs) => parse_addrs(addrs, "gateway.tls.listen", errors),
        None => {
            errors.push(
                "gateway.tls.listen",
                "missing: give the HTTPS listen addresses, e.g. [\"0.0.0.0:8443\"]",
            );
            Vec::new()
        }
    };
    let cert = read_required_file(
        section.cert.as_deref(),
        base,
        "gateway.tls.cert",
        "the certificate chain (PEM)",
        errors,
    );
    let key = read_required_file(
        section.key.as_deref(),
        base,
        "gateway.tls.key",
        "the private key (PEM)",
        errors,
    );
    let ((cert_path, cert_pem), (key_path, key_pem)) = (cert?, key?);
    Some(Tls {
        listen,
        cert_path,
        key_path,
        cert_pem,
        key_pem: crate::Secret::new(key_pem),
    })
}

fn compile_admin(section: &wire::AdminSection, errors: &mut Errors) -> Option<Admin> {
    let text = section.listen.as_deref().unwrap_or(DEFAULT_ADMIN_LISTEN);
    let listen = match text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            errors.push(
                "admin.listen",
                format!("\"{text}\" is not an address: use IP:PORT, e.g. \"127.0.0.1:9901\""),
            );
            return None;
        }
    };
    let token = match section.token.as_deref().map(crate::secret::resolve_secret) {
        None => None,
        Some(Ok(token)) => Some(token),
        Some(Err(message)) => {
            errors.push("admin.token", message);
            None
        }
    };
    if !listen.ip().is_loopback() && token.is_none() {
        errors.push(
            "admin.listen",
            format!("{listen} is reachable from other hosts: set admin.token (e.g. \"env:PORTCULLIS_ADMIN_TOKEN\") or listen on a loopback address"),
        );
    }
    Some(Admin { listen, token })
}

fn compile_log(section: &wire::LogSection, base: &Path) -> Log {
    let access = match section.access.as_deref() {
        None | Some("stdout") => AccessLog::Stdout,
        Some("off") => AccessLog::Off,
        Some(path) => AccessLog::File(resolve(base, Path::new(path))),
    };
    Log { access }
}

fn compile_store(
    section: &wire::StoreSection,
    base: &Path,
    errors: &mut Errors,
) -> Option<crate::StoreConfig> {
    let url = match section.url.as_deref() {
        None => "sqlite://portcullis.db".to_owned(),
        Some(url) => match crate::secret::resolve_secret(url) {
            Ok(url) => url.expose().clone(),
            Err(message) => {
                errors.push("store.url", message);
                return None;
            }
        },
    };
    let url = if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() || path.starts_with(":memory:") || path.starts_with('/') {
            url
        } else {
            format!("sqlite://{}", resolve(base, Path::new(path)).display())
        }
    } else if url.starts_with("postgres://")
        || url.starts_with("postgresql://")
        || url == "sqlite::memory:"
    {
        url
    } else {
        errors.push(
            "store.url",
            "use sqlite://FILE or postgres://USER@HOST/DB (a secret reference like env:NAME works too)",
        );
        return None;
    };
    let pepper = match section.pepper.as_deref() {
        None => {
            errors.push(
                "store.pepper",
                "missing: keys are stored as HMAC-SHA-256(pepper, key); set pepper = \"env:PORTCULLIS_PEPPER\" (at least 16 bytes)",
            );
            return None;
        }
        Some(reference) if !reference.starts_with("env:") && !reference.starts_with("file:") => {
            errors.push(
                "store.pepper",
                "give a secret reference (env:NAME or file:PATH), not the pepper itself: config files get copied and committed",
            );
            return None;
        }
        Some(reference) => match crate::secret::resolve_secret(reference) {
            Ok(pepper) if pepper.expose().len() >= 16 => pepper,
            Ok(_) => {
                errors.push(
                    "store.pepper",
                    "too short: use at least 16 bytes (32 random bytes recommended)",
                );
                return None;
            }
            Err(message) => {
                errors.push("store.pepper", message);
                return None;
            }
        },
    };
    Some(crate::StoreConfig {
        url: crate::Secret::new(url),
        pepper,
    })
}

fn compile_upstreams(
    sections: &[wire::UpstreamSection],
    base: &Path,
    errors: &mut Errors,
) -> Vec<Upstream> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut upstreams = Vec::with_capacity(sections.len());
    for (index, section) in sections.iter().enumerate() {
        let at = |key: &str| format!("upstream[{index}].{key}");
        let name = match section.name.as_deref() {
            Some(name) if valid_name(name) => name.to_owned(),
            Some(name) => {
                errors.push(
                    at("name"),
                    format!(
                        "\"{name}\" is not a valid name: use letters, digits, '-', '_' and '.'"
                    ),
                );
                name.to_owned()
            }
            None => {
                errors.push(at("name"), "missing");
                format!("#{index}")
            }
        };
        if let Some(first) = seen.insert(section.name.as_deref().unwrap_or(""), index) {
            if section.name.is_some() {
                errors.push(
                    at("name"),
                    format!("\"{name}\" is already the name of upstream[{first}]"),
                );
            }
        }
        let mut targets = Vec::new();
        match &section.targets {
            None => errors.push(at("targets"), "missing: give at least one \"host:port\""),
            Some(list) if list.is_empty() => {
                errors.push(at("targets"), "empty: give at least one \"host:port\"")
            }
            Some(list) => {
                for (t, text) in list.iter().enumerate() {
                    match parse_target(text) {
                        Ok(target) => targets.push(target),
                        Err(message) => {
                            errors.push(format!("upstream[{index}].targets[{t}]"), message)
                        }
                    }
                }
            }
        }
        let connect_timeout = duration(
            &section.connect_timeout,
            Duration::from_secs(2),
            &at("connect_timeout"),
            errors,
        );
        let timeout = duration(
            &section.timeout,
            Duration::from_secs(30),
            &at("timeout"),
            errors,
        );
        let idle_timeout = duration(
            &section.idle_timeout,
            Duration::from_secs(60),
            &at("idle_timeout"),
            errors,
        );
        let fail_timeout = duration(
            &section.fail_timeout,
            Duration::from_secs(10),
            &at("fail_timeout"),
            errors,
        );
        let max_idle_per_target = match section.max_idle_per_target {
            None => 256,
            Some(n) if (0..=100_000).contains(&n) => usize::try_from(n).unwrap_or(256),
            Some(n) => {
                errors.push(
                    at("max_idle_per_target"),
                    format!("{n} is out of range: use 0 to 100000"),
                );
                256
            }
        };
        let tls = section.tls.as_ref().and_then(|tls| {
            let ca = read_required_file(
                tls.ca.as_deref(),
                base,
                &format!("upstream[{index}].tls.ca"),
                "the CA bundle (PEM) that signs the targets' certificates",
                errors,
            );
            if let Some(server_name) = &tls.server_name {
                if rustls_name_ok(server_name).is_err() {
                    errors.push(
                        format!("upstream[{index}].tls.server_name"),
                        format!("\"{server_name}\" is not a DNS name or IP address"),
                    );
                }
            }
            let (ca_path, ca_pem) = ca?;
            Some(UpstreamTls {
                ca_pem,
                ca_path,
                server_name: tls.server_name.clone(),
            })
        });
        upstreams.push(Upstream {
            name,
            targets,
            connect_timeout,
            timeout,
            idle_timeout,
            max_idle_per_target,
            fail_timeout,
            preserve_host: section.preserve_host.unwrap_or(false),
            tls,
        });
    }
    upstreams
}

fn rustls_name_ok(name: &str) -> Result<(), ()> {
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(())
    }
}

fn compile_routes_with(
    sections: &[wire::RouteSection],
    upstreams: &[Upstream],
    store_configured: bool,
    errors: &mut Errors,
) -> Vec<Route> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut routes: Vec<(usize, Route)> = Vec::with_capacity(sections.len());
    for (index, section) in sections.iter().enumerate() {
        let at = |key: &str| format!("route[{index}].{key}");
        let name = match section.name.as_deref() {
            Some(name) if valid_name(name) => name.to_owned(),
            Some(name) => {
                errors.push(
                    at("name"),
                    format!(
                        "\"{name}\" is not a valid name: use letters, digits, '-', '_' and '.'"
                    ),
                );
                name.to_owned()
            }
            None => {
                errors.push(at("name"), "missing");
                format!("#{index}")
            }
        };
        if let Some(name) = section.name.as_deref() {
            if let Some(first) = seen.insert(name, index) {
                errors.push(
                    at("name"),
                    format!("\"{name}\" is already the name of route[{first}]"),
                );
            }
        }

        let host = section
            .host
            .as_deref()
            .and_then(|host| match parse_host_pattern(host) {
                Ok(pattern) => Some(pattern),
                Err(message) => {
                    errors.push(at("host"), message);
                    None
                }
            });

        let mut methods = Vec::new();
        for (m, text) in section.methods.iter().flatten().enumerate() {
            let upper = text.to_ascii_uppercase();
            match Method::from_bytes(upper.as_bytes()) {
                Ok(method) if !text.is_empty() && upper == *text => {
                    if methods.contains(&method) {
                        errors.push(
                            format!("route[{index}].methods[{m}]"),
                            format!("{text} is listed twice"),
                        );
                    }
                    methods.push(method);
                }
                Ok(_) => errors.push(
                    format!("route[{index}].methods[{m}]"),
                    format!("\"{text}\": write methods in upper case (\"{upper}\")"),
                ),
                Err(_) => errors.push(
                    format!("route[{index}].methods[{m}]"),
                    format!("\"{text}\" is not an HTTP method"),
                ),
            }
        }
        if section.methods.as_ref().is_some_and(Vec::is_empty) {
            errors.push(at("methods"), "empty: leave it out to match every method");
        }

        let path = match (&section.path, &section.path_prefix) {
            (Some(_), Some(_)) => {
                errors.push(at("path"), "give either path or path_prefix, not both");
                None
            }
            (None, None) => {
                errors.push(at("path"), "missing: give path (e.g. \"/orders/{order_id}\") or path_prefix (e.g. \"/static/\")");
                None
            }
            (Some(template), None) => match parse_template(template) {
                Ok(segments) => Some(PathPattern::Exact(segments)),
                Err(message) => {
                    errors.push(at("path"), message);
                    None
                }
            },
            (None, Some(prefix)) => match check_prefix(prefix) {
                Ok(()) => Some(PathPattern::Prefix(prefix.clone())),
                Err(message) => {
                    errors.push(at("path_prefix"), message);
                    None
                }
            },
        };

        let upstream = match section.upstream.as_deref() {
            None => {
                errors.push(
                    at("upstream"),
                    "missing: name the [[upstream]] this route forwards to",
                );
                None
            }
            Some(wanted) => match upstreams.iter().position(|u| u.name == wanted) {
                Some(position) => Some(position),
                None => {
                    let known: Vec<&str> = upstreams.iter().map(|u| u.name.as_str()).collect();
                    errors.push(
                        at("upstream"),
                        if known.is_empty() {
                            format!("no upstream named \"{wanted}\" (no [[upstream]] is defined)")
                        } else {
                            format!(
                                "no upstream named \"{wanted}\" (known: {})",
                                known.join(", ")
                            )
                        },
                    );
                    None
                }
            },
        };

        let auth = compile_auth(section.auth.as_deref(), index, errors);
        let admission = section
            .admission
            .as_ref()
            .map(|a| compile_admission(a, index, errors));
        let scopes: Vec<String> = section.scopes.clone().unwrap_or_default();
        let api_key_query = section.api_key_query.clone();
        if let Some(name) = &api_key_query {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                errors.push(
                    at("api_key_query"),
                    format!("\"{name}\" is not a parameter name (letters, digits, '_', '-')"),
                );
            }
            if !auth.contains(&AuthMethod::ApiKey) {
                errors.push(
                    at("api_key_query"),
                    "only meaningful with auth = [\"api_key\"]",
                );
            }
        }
        for (i, scope) in scopes.iter().enumerate() {
            if scope.is_empty()
                || scope.len() > 128
                || !scope.bytes().all(|b| b.is_ascii_graphic() && b != b',')
            {
                errors.push(
                    format!("route[{index}].scopes[{i}]"),
                    format!("\"{scope}\" is not a scope: 1 to 128 visible characters, no commas"),
                );
            }
        }
        if !scopes.is_empty() && auth.contains(&AuthMethod::None) {
            errors.push(
                format!("route[{index}].scopes"),
                "a public route (auth = [\"none\"]) has no caller to hold scopes",
            );
        }
        if auth.contains(&AuthMethod::ApiKey) && !store_configured {
            errors.push(
                format!("route[{index}].auth"),
                "\"api_key\" needs a [store] (url and pepper) to look keys up in",
            );
        }
        let rate_limits = crate::limits::compile_route_limits(
            section.limit.as_ref(),
            section.quota.as_ref(),
            section.concurrency.as_ref(),
            index,
            auth.contains(&AuthMethod::None),
            errors,
        );
        let inspect = section
            .inspect
            .as_ref()
            .map_or_else(crate::Inspect::default, |i| {
                compile_inspect(i, index, errors)
            });

        if let (Some(path), Some(upstream)) = (path, upstream) {
            routes.push((
                index,
                Route {
                    name,
                    host,
                    methods,
                    path,
                    upstream,
                    auth,
                    admission,
                    inspect,
                    scopes,
                    api_key_query,
                    rate_limits,
                },
            ));
        }
    }

    // Two routes that would match exactly the same requests make the winner depend on file order:
    // refuse them rather than guess.
    for (a, (index_a, route_a)) in routes.iter().enumerate() {
        for (index_b, route_b) in routes.iter().skip(a + 1) {
            // A route listing methods outranks one that takes all, so only equal method sets or
            // shared listed methods are ambiguous.
            let methods_overlap = (route_a.methods.is_empty() && route_b.methods.is_empty())
                || route_a.methods.iter().any(|m| route_b.methods.contains(m));
            if route_a.host == route_b.host && route_a.path == route_b.path && methods_overlap {
                errors.push(
                    format!("route[{index_b}].path"),
                    format!(
                        "matches the same host, path and methods as route[{index_a}] (\"{}\")",
                        route_a.name
                    ),
                );
            }
        }
    }
    routes.into_iter().map(|(_, route)| route).collect()
}

fn compile_auth(auth: Option<&[String]>, index: usize, errors: &mut Errors) -> Vec<AuthMethod> {
    let Some(list) = auth else {
        errors.push(
            format!("route[{index}].auth"),
            "missing: every route must say how clients authenticate; write auth = [\"none\"] for a public route",
        );
        return Vec::new();
    };
    if list.is_empty() {
        errors.push(
            format!("route[{index}].auth"),
            "empty: write auth = [\"none\"] for a public route",
        );
    }
    let mut methods = Vec::new();
    for (a, name) in list.iter().enumerate() {
        match name.as_str() {
            "none" => methods.push(AuthMethod::None),
            "api_key" => methods.push(AuthMethod::ApiKey),
            other => errors.push(
                format!("route[{index}].auth[{a}]"),
                format!(
                    "unknown authentication method \"{other}\" (supported: \"none\", \"api_key\")"
                ),
            ),
        }
    }
    if methods.contains(&AuthMethod::None) && list.len() > 1 {
        errors.push(
            format!("route[{index}].auth"),
            "\"none\" makes the route public and cannot be combined with other methods",
        );
    }
    methods
}

fn compile_inspect(
    section: &wire::InspectSection,
    index: usize,
    errors: &mut Errors,
) -> crate::Inspect {
    let at = |key: &str| format!("route[{index}].inspect.{key}");
    let mut inspect = crate::Inspect {
        mode: parse_mode(section.mode.as_deref(), &at("mode"), errors),
        ..crate::Inspect::default()
    };
    if let Some(text) = section.sensitivity.as_deref() {
        match text.parse::<portcullis_inspect::Sensitivity>() {
            Ok(sensitivity) => inspect.settings.sensitivity = sensitivity,
            Err(_) => errors.push(
                at("sensitivity"),
                format!(
                    "\"{text}\" is not a sensitivity: use \"balanced\", \"strict\" or \"paranoid\""
                ),
            ),
        }
    }
    for (i, text) in section.exclude.iter().flatten().enumerate() {
        match text.parse::<portcullis_inspect::Exclusion>() {
            Ok(exclusion) => inspect.settings.exclusions.push(exclusion),
            Err(err) => errors.push(
                format!("route[{index}].inspect.exclude[{i}]"),
                err.to_string(),
            ),
        }
    }
    let max = size(
        &section.max_body_bytes,
        64 * 1024,
        &at("max_body_bytes"),
        errors,
    );
    if max > 16 * 1024 * 1024 {
        errors.push(
            at("max_body_bytes"),
            format!("{max} is out of range: inspect at most 16 MiB"),
        );
    }
    inspect.max_body_bytes = usize::try_from(max).unwrap_or(64 * 1024);
    inspect.on_large_body = match section.on_large_body.as_deref() {
        None | Some("inspect_prefix") => crate::LargeBody::InspectPrefix,
        Some("reject") => crate::LargeBody::Reject,
        Some(other) => {
            errors.push(
                at("on_large_body"),
                format!("\"{other}\" is not a policy: use \"inspect_prefix\" or \"reject\""),
            );
            crate::LargeBody::InspectPrefix
        }
    };
    inspect
}

fn compile_admission(
    section: &wire::AdmissionSection,
    index: usize,
    errors: &mut Errors,
) -> Admission {
    let mut nets = |list: &Option<Vec<String>>, key: &str| {
        let mut out = Vec::new();
        for (i, text) in list.iter().flatten().enumerate() {
            match parse_net(text) {
                Ok(net) => out.push(net),
                Err(message) => {
                    errors.push(format!("route[{index}].admission.{key}[{i}]"), message)
                }
            }
        }
        out
    };
    let allow = nets(&section.allow, "allow");
    let deny = nets(&section.deny, "deny");
    let mode = parse_mode(
        section.mode.as_deref(),
        &format!("route[{index}].admission.mode"),
        errors,
    );
    Admission { allow, deny, mode }
}

pub(crate) fn parse_mode(text: Option<&str>, path: &str, errors: &mut Errors) -> FilterMode {
    match text {
        None | Some("block") => FilterMode::Block,
        Some("monitor") => FilterMode::Monitor,
        Some("off") => FilterMode::Off,
        Some(other) => {
            errors.push(
                path,
                format!("\"{other}\" is not a mode: use \"block\", \"monitor\" or \"off\""),
            );
            FilterMode::Block
        }
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_addrs(list: &[String], path: &str, errors: &mut Errors) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for (index, text) in list.iter().enumerate() {
        match text.parse::<SocketAddr>() {
            Ok(addr) => {
                if out.contains(&addr) {
                    errors.push(format!("{path}[{index}]"), format!("{addr} is listed twice"));
                }
                out.push(addr);
            }
            Err(_) => errors.push(
                format!("{path}[{index}]"),
                format!("\"{text}\" is not an address: use IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
            ),
        }
    }
    out
}

fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok(IpNet::from(ip)),
        Err(_) => Err(format!(
            "\"{text}\" is not an IP address or CIDR network (e.g. \"10.0.0.0/8\")"
        )),
    }
}

fn parse_target(text: &str) -> Result<Target, String> {
    let bad = || {
        format!("\"{text}\" is not a target: use HOST:PORT, e.g. \"127.0.0.1:3000\" or \"orders.internal:443\"")
    };
    if text.contains("://") {
        return Err(format!("\"{text}\": give HOST:PORT without a scheme (set tls = {{ ... }} on the upstream for HTTPS)"));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(Target {
            host: addr.ip().to_string(),
            port: addr.port(),
        });
    }
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 || host.is_empty() || rustls_name_ok(host).is_err() {
        return Err(bad());
    }
    Ok(Target {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn parse_host_pattern(text: &str) -> Result<HostPattern, String> {
    let lower = text.to_ascii_lowercase();
    let (suffix, name) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    if name.contains(':') || rustls_name_ok(name).is_err() || name.contains('*') {
        return Err(format!("\"{text}\" is not a host name: use e.g. \"api.example.com\" or \"*.example.com\" (no port)"));
    }
    Ok(if suffix {
        HostPattern::Suffix(format!(".{name}"))
    } else {
        HostPattern::Exact(name.to_owned())
    })
}

/// Parses `/orders/{order_id}/items` into segments.
fn parse_template(template: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = template.strip_prefix('/') else {
        return Err(format!("\"{template}\" must start with '/'"));
    };
    if template.contains('?') || template.contains('#') {
        return Err(format!(
            "\"{template}\": a path template cannot contain '?' or '#'"
        ));
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (position, raw) in rest.split('/').enumerate() {
        if raw.is_empty() {
            return Err(format!(
                "\"{template}\": segment {} is empty (no \"//\" or trailing '/')",
                position + 1
            ));
        }
        if raw == "." || raw == ".." {
            return Err(format!(
                "\"{template}\": \".\" and \"..\" segments are not allowed"
            ));
        }
        if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            let valid = !inner.is_empty()
                && inner
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(format!("\"{template}\": \"{{{inner}}}\" is not a parameter name (letters, digits and '_')"));
            }
            if names.contains(&inner) {
                return Err(format!(
                    "\"{template}\": parameter \"{inner}\" appears twice"
                ));
            }
            names.push(inner);
            segments.push(Segment::Param(inner.to_owned()));
        } else if raw.contains('{') || raw.contains('}') {
            return Err(format!("\"{template}\": a parameter must be a whole segment, like \"/orders/{{order_id}}\""));
        } else if raw.contains('%') {
            return Err(format!(
                "\"{template}\": write literal segments decoded (no percent-encoding)"
            ));
        } else {
            segments.push(Segment::Literal(raw.to_owned()));
        }
    }
    Ok(segments)
}

fn check_prefix(prefix: &str) -> Result<(), String> {
    if !prefix.starts_with('/') {
        return Err(format!("\"{prefix}\" must start with '/'"));
    }
    if prefix.contains('{') || prefix.contains('}') {
        return Err(format!(
            "\"{prefix}\": a prefix cannot hold parameters; use path = \"...\" for templates"
        ));
    }
    if prefix.split('/').any(|s| s == "." || s == "..")
        || prefix.contains('?')
        || prefix.contains('%')
    {
        return Err(format!(
            "\"{prefix}\" must be a plain path (no '.', '..', '?' or percent-encoding)"
        ));
    }
    Ok(())
}

fn size(value: &Option<SizeValue>, default: u64, path: &str, errors: &mut Errors) -> u64 {
    match value {
        None => default,
        Some(SizeValue::Bytes(n)) => match u64::try_from(*n) {
            Ok(n) if n > 0 => n,
            _ => {
                errors.push(path, format!("{n} must be a positive number of bytes"));
                default
            }
        },
        Some(SizeValue::Text(text)) => match parse_byte_size(text) {
            Ok(0) => {
                errors.push(path, "must be greater than zero");
                default
            }
            Ok(n) => n,
            Err(message) => {
                errors.push(path, message);
                default
            }
        },
    }
}

pub(crate) fn duration(
    value: &Option<String>,
    default: Duration,
    path: &str,
    errors: &mut Errors,
) -> Duration {
    match value.as_deref().map(parse_duration) {
        None => default,
        Some(Ok(d)) if d.is_zero() => {
            errors.push(path, "must be greater than zero");
            default
        }
        Some(Ok(d)) => d,
        Some(Err(message)) => {
            errors.push(path, message);
            default
        }
    }
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn read_required_file(
    path: Option<&Path>,
    base: &Path,
    at: &str,
    what: &str,
    errors: &mut Errors,
) -> Option<(PathBuf, Vec<u8>)> {
    let Some(path) = path else {
        errors.push(at, format!("missing: give the path of {what}"));
        return None;
    };
    let full = resolve(base, path);
    match std::fs::read(&full) {
        Ok(bytes) => Some((full, bytes)),
        Err(err) => {
            errors.push(at, format!("cannot read \"{}\": {err}", full.display()));
            None
        }
    }
}
