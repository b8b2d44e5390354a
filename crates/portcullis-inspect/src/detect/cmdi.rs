//! OS command injection: a shell tokenizer that undoes quoting tricks (`c'a't`, `c\at`,
//! `$IFS`, `$@`), finds command positions (after `;`, `|`, `&&`, newline, `$(`, backtick,
//! brace expansion) and judges the word there against the commands a shell would run.
//! Also cmd.exe `for`/`if` syntax and PowerShell cmdlets.

use std::borrow::Cow;

use super::{Feat, Sink, Strongest, WordSet, Words};
use crate::extract::Origin;
use crate::settings::Class;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sep {
    Start,
    Semi,
    Pipe,
    And,
    Or,
    Amp,
    Newline,
    Subst,
    Group,
    Brace,
}

#[derive(Debug, Clone)]
struct Word<'b> {
    text: &'b str,
    /// The separator that put this word in command position, if it is in one.
    cmd: Option<Sep>,
    /// The word contained quoting or escapes that a shell removes.
    obfuscated: bool,
}

/// Commands whose name is not an English word: running them is the point.
const STRONG: &[&str] = &[
    "wget",
    "curl",
    "nc",
    "ncat",
    "netcat",
    "bash",
    "sh",
    "zsh",
    "ksh",
    "dash",
    "csh",
    "tcsh",
    "python",
    "python2",
    "python3",
    "perl",
    "ruby",
    "php",
    "lua",
    "node",
    "whoami",
    "uname",
    "ifconfig",
    "ipconfig",
    "passwd",
    "chmod",
    "chown",
    "nslookup",
    "telnet",
    "ssh",
    "scp",
    "tftp",
    "powershell",
    "pwsh",
    "cmd",
    "certutil",
    "bitsadmin",
    "mshta",
    "rundll32",
    "regsvr32",
    "wmic",
    "systeminfo",
    "tasklist",
    "taskkill",
    "netstat",
    "useradd",
    "usermod",
    "crontab",
    "base64",
    "xxd",
    "awk",
    "gawk",
    "nohup",
    "sudo",
    "busybox",
    "socat",
    "gcc",
    "msfvenom",
    "lastlog",
    "uptime",
    "hostname",
    "ifup",
    "iptables",
    "nmap",
    "dig",
    "traceroute",
    "tracert",
    "env",
    "printenv",
    "getent",
    "mkfifo",
    "mknod",
    "telnetd",
    "rsync",
    "ftp",
    "sftp",
    "cscript",
    "wscript",
    "reg",
    "regedit",
    "schtasks",
    "sc",
    "icacls",
    "cacls",
    "bcdedit",
    "bcdboot",
    "vssadmin",
    "wevtutil",
    "fsutil",
    "diskpart",
    "msiexec",
    "net1",
    "xterm",
    "gdb",
    "strace",
    "ltrace",
    "visudo",
    "unxz",
    "gunzip",
    "bzip2",
    "xz",
    "zcat",
    "tar",
    "unzip",
    "zip",
    "dd",
    "chattr",
    "lsattr",
    "setfacl",
    "getfacl",
    "killall",
    "pkill",
    "pgrep",
    "lsof",
    "ss",
    "ip",
    "route",
    "arp",
    "iwconfig",
    "tcpdump",
    "tshark",
    "openssl",
    "gpg",
    "shred",
    "wall",
    "chpasswd",
    "chsh",
    "groupadd",
    "userdel",
    "sysctl",
    "modprobe",
    "insmod",
    "rmmod",
    "dmesg",
    "journalctl",
    "systemctl",
    "service",
    "launchctl",
    "osascript",
    "cc",
    "g++",
    "make",
    "javac",
    "java",
    "jrunscript",
    "jjs",
    "irb",
    "tclsh",
    "expect",
    "ksh93",
    "ash",
    "rbash",
    "fish",
    "mail",
    "sendmail",
    "mutt",
    "uuencode",
    "uudecode",
    "od",
    "hexdump",
    "strings",
    "readelf",
    "objdump",
    "ionice",
    "chroot",
    "unshare",
    "nsenter",
    "docker",
    "kubectl",
    "aws",
    "gsutil",
    "az",
    "cscli",
    "chef-client",
    "puppet",
    "ansible",
    "salt",
    "aa-disable",
    "aa-exec",
    "php-fpm",
    "apt",
    "apt-get",
    "yum",
    "dnf",
    "rpm",
    "dpkg",
    "pip",
    "npm",
    "gem",
    "composer",
    "cpan",
    "powershell_ise",
    "iex",
    "iwr",
    "irm",
    "whoami.exe",
    "findstr",
    "attrib",
    "xcopy",
    "robocopy",
    "takeown",
    "runas",
    "cmdkey",
    "klist",
    "nltest",
    "dsquery",
    "csvde",
    "ntdsutil",
    "mimikatz",
    "psexec",
    "vbc",
    "csc",
    "installutil",
    "regasm",
    "regsvcs",
    "msbuild",
    "forfiles",
    "pcalua",
    "ping6",
    "ls",
    "id",
    "ps",
    "pwd",
    "cat",
    "uname",
    "tac",
    "nl",
    "rev",
    "cut",
    "paste",
    "grep",
    "egrep",
    "fgrep",
    "sed",
    "xargs",
    "tee",
    "mkdir",
    "rmdir",
    "rm",
    "mv",
    "cp",
    "ln",
    "chgrp",
    "umask",
    "df",
    "du",
    "mount",
    "umount",
    "free",
    "top",
    "htop",
    "pstree",
    "groups",
    "users",
    "last",
    "finger",
    "pinky",
    "who",
    "lscpu",
    "lsblk",
    "lsmod",
    "lsusb",
    "lspci",
    "dir",
    "ver",
    "vol",
    "tree",
    "del",
    "erase",
    "copy",
    "rd",
    "md",
    "net",
    "powercfg",
    "column",
    "bridge",
    "comm",
    "flock",
    "cpulimit",
    "perf",
    "rmt",
    "rmt-tar",
    "rmt-dump",
    "lastlogin",
    "aptitude",
    "htop",
    "zstdcat",
    "zstd",
    "bsdtar",
    "c89",
    "c99",
    "iwmi",
    "gwmi",
    "ansible",
    "ansible-playbook",
    "ansible-vault",
    "ansible-galaxy",
    "ansible-console",
    "ansible-doc",
    "ansible-inventory",
    "ansible-pull",
    "ansible-config",
    "chef",
    "chef-vault",
    "chef-shell",
    "chef-run",
    "knife",
    "terraform",
    "nc.traditional",
    "ncat.exe",
    "telnet.exe",
    "pkexec",
    "setsid",
    "runuser",
    "capsh",
    "unzip",
    "7z",
    "rar",
    "unrar",
    "lzma",
    "lz4",
    "lzcat",
    "xzcat",
    "bzcat",
    "zgrep",
    "zless",
    "zmore",
    "curl.exe",
    "wget.exe",
    "mshta.exe",
];

/// Strong commands that are also English words: after a separator they need shell-like
/// arguments (`; cat /etc/passwd`), not prose (`; cat food`).
const ENGLISH_STRONG: &[&str] = &[
    "cat", "top", "who", "last", "free", "cut", "tree", "make", "mail", "paste", "tee", "wall",
    "salt", "net", "copy", "del", "route", "service", "node", "expect", "groups", "users", "dig",
    "finger", "apt", "gem", "zip", "ash", "fish", "ss", "ip", "rev", "tac", "nl", "od", "strings",
    "mount", "service", "sort", "dd",
];

/// Command names that are also ordinary words; they count only with shell-like context.
const WEAK: &[&str] = &[
    "echo", "type", "more", "less", "head", "tail", "sort", "find", "time", "date", "kill",
    "sleep", "ping", "set", "file", "touch", "which", "exit", "read", "exec", "eval", "source",
    "alias", "unset", "export", "history", "test", "true", "false", "yes", "wait", "shift", "trap",
    "start", "call", "move", "rename", "print", "format", "open", "halt", "reboot", "shutdown",
    "poweroff", "init", "login", "logout", "su", "host", "whois", "diff", "look", "join", "split",
    "fold", "expand", "wc", "stat", "file", "locate", "whereis", "cal", "clear", "reset", "watch",
    "screen", "tmux", "vi", "vim", "nano", "ed", "ex", "view", "man", "info", "help", "python",
    "lynx", "links", "fetch", "get", "post", "sum", "base32", "shuf", "seq", "factor", "bc", "dc",
    "expr", "printf", "tr", "uniq", "comm", "od", "curl", "wget", "fold", "cd", "alias", "column",
];

/// cmd.exe built-ins and Windows tools, matched case-insensitively.
const WINDOWS: &[&str] = &[
    "cmd",
    "powershell",
    "pwsh",
    "dir",
    "type",
    "copy",
    "del",
    "erase",
    "ver",
    "vol",
    "net",
    "net1",
    "ipconfig",
    "systeminfo",
    "tasklist",
    "taskkill",
    "certutil",
    "bitsadmin",
    "mshta",
    "rundll32",
    "regsvr32",
    "wmic",
    "reg",
    "regedit",
    "schtasks",
    "sc",
    "icacls",
    "cacls",
    "bcdedit",
    "bcdboot",
    "vssadmin",
    "wevtutil",
    "fsutil",
    "diskpart",
    "msiexec",
    "cscript",
    "wscript",
    "findstr",
    "attrib",
    "xcopy",
    "robocopy",
    "takeown",
    "runas",
    "cmdkey",
    "whoami",
    "nltest",
    "dsquery",
    "psexec",
    "forfiles",
    "powercfg",
    "tracert",
    "netstat",
    "hostname",
    "iex",
    "iwr",
    "irm",
    "ping",
    "nslookup",
    "echo",
    "set",
    "start",
    "call",
];

/// Wrappers whose first argument is itself a command.
const PREFIXES: &[&str] = &[
    "sudo", "time", "nohup", "env", "exec", "xargs", "nice", "timeout", "busybox", "strace",
    "command", "builtin", "doas", "stdbuf", "chroot", "runas",
];

static STRONG_SET: WordSet = WordSet::new(STRONG);
static ENGLISH_STRONG_SET: WordSet = WordSet::new(ENGLISH_STRONG);
static WEAK_SET: WordSet = WordSet::new(WEAK);
static WINDOWS_SET: WordSet = WordSet::new(WINDOWS);
static PREFIX_SET: WordSet = WordSet::new(PREFIXES);

fn base_name(w: &str) -> Cow<'_, str> {
    let w = w.rsplit(['/', '\\']).next().unwrap_or(w);
    let w: Cow<'_, str> = if w.bytes().any(|c| c.is_ascii_uppercase()) {
        Cow::Owned(w.to_ascii_lowercase())
    } else {
        Cow::Borrowed(w)
    };
    let w = match w.strip_suffix(".exe") {
        Some(x) => Cow::Owned(x.to_string()),
        None => w,
    };
    let w = match w.strip_suffix(".com") {
        Some(x) => Cow::Owned(x.to_string()),
        None => w,
    };
    // Versioned interpreters: python3.10, php8.1, perl5.
    let stem = w.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    if stem.len() >= 3
        && stem.len() < w.len()
        && matches!(
            stem,
            "python" | "php" | "perl" | "ruby" | "node" | "lua" | "pip" | "java" | "bash" | "gcc"
        )
    {
        return Cow::Owned(stem.to_string());
    }
    w
}

/// Shell words of a value: their text (quotes and escapes removed) one after another in
/// one buffer, so tokenizing costs no allocation per word.
struct Tokens {
    buf: String,
    /// Per word: start and end in `buf`, command position, obfuscation.
    spans: Vec<(usize, usize, Option<Sep>, bool)>,
    /// `$IFS`-style evasion seen.
    ifs: bool,
}

impl Tokens {
    /// The words, with wrapper commands passing command position to their argument.
    fn words(&self) -> Vec<Word<'_>> {
        let mut words: Vec<Word<'_>> = self
            .spans
            .iter()
            .map(|&(start, end, cmd, obfuscated)| Word {
                text: &self.buf[start..end],
                cmd,
                obfuscated,
            })
            .collect();
        let mut k = 0;
        while k + 1 < words.len() {
            let lower_word = !words[k].text.bytes().any(|c| c.is_ascii_uppercase());
            if words[k].cmd.is_some()
                && lower_word
                && PREFIX_SET.contains(&base_name(words[k].text))
            {
                let sep = words[k].cmd;
                // `timeout 5 cmd`: skip numeric and flag arguments.
                let mut m = k + 1;
                while m < words.len()
                    && m < k + 4
                    && (words[m].text.starts_with('-')
                        || words[m].text.bytes().all(|b| b.is_ascii_digit()))
                {
                    m += 1;
                }
                if m < words.len() && words[m].cmd.is_none() {
                    words[m].cmd = sep;
                }
            }
            k += 1;
        }
        words
    }
}

/// Splits a value into shell words, tracking command positions.
fn tokenize(s: &str) -> Tokens {
    let mut chars: Vec<char> = Vec::with_capacity(s.len().min(1 << 20));
    chars.extend(s.chars().take(1 << 20));
    let mut t = Tokens {
        buf: String::with_capacity(s.len()),
        spans: Vec::with_capacity(s.len() / 4 + 2),
        ifs: false,
    };
    // The current word is `t.buf[cur..]`.
    let mut cur = 0usize;
    let mut cur_obf = false;
    let mut pending: Option<Sep> = Some(Sep::Start);
    let mut cur_cmd: Option<Sep> = None;
    let mut i = 0;
    let flush = |t: &mut Tokens,
                 cur: &mut usize,
                 cur_obf: &mut bool,
                 cur_cmd: &mut Option<Sep>,
                 pending: &mut Option<Sep>| {
        if t.buf.len() > *cur {
            let cmd = if cur_cmd.is_some() { *cur_cmd } else { None };
            t.spans.push((*cur, t.buf.len(), cmd, *cur_obf));
            *cur = t.buf.len();
            *cur_obf = false;
            *cur_cmd = None;
            // After a command word, following words are arguments.
            if cmd.is_some() {
                *pending = None;
            }
        }
    };
    while i < chars.len() && t.spans.len() < 4096 {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let empty = t.buf.len() == cur;
        let mut sep: Option<(Sep, usize)> = None;
        match c {
            ';' => sep = Some((Sep::Semi, 1)),
            '\n' | '\r' => sep = Some((Sep::Newline, 1)),
            '|' => {
                sep = Some(if next == Some('|') {
                    (Sep::Or, 2)
                } else {
                    (Sep::Pipe, 1)
                })
            }
            '&' => {
                sep = Some(if next == Some('&') {
                    (Sep::And, 2)
                } else {
                    (Sep::Amp, 1)
                })
            }
            '`' => sep = Some((Sep::Subst, 1)),
            '$' if next == Some('(') => sep = Some((Sep::Subst, 2)),
            '(' => sep = Some((Sep::Group, 1)),
            '{' if empty => sep = Some((Sep::Brace, 1)),
            _ => {}
        }
        if let Some((kind, len)) = sep {
            flush(&mut t, &mut cur, &mut cur_obf, &mut cur_cmd, &mut pending);
            pending = Some(kind);
            i += len;
            continue;
        }
        match c {
            ' ' | '\t' | '\x0b' | '\x0c' | ',' | ')' | '}' | '<' | '>' => {
                // `,` splits brace expansion `{ls,-la}`; `<`/`>` redirections.
                let was_cmd = cur_cmd.is_some() || (empty && pending.is_some());
                flush(&mut t, &mut cur, &mut cur_obf, &mut cur_cmd, &mut pending);
                if c == ')' || c == '}' {
                    pending = None;
                }
                if (c == '<' || c == '>') && !was_cmd {
                    t.buf.push(c);
                    t.spans.push((cur, t.buf.len(), None, false));
                    cur = t.buf.len();
                }
                i += 1;
                continue;
            }
            '\\' => {
                if let Some(n) = next {
                    if n != '\n' {
                        if empty {
                            cur_cmd = pending;
                        }
                        t.buf.push(n);
                        cur_obf = true;
                    }
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            '\'' | '"' => {
                let q = c;
                let mut j = i + 1;
                if empty {
                    cur_cmd = pending;
                }
                let start_len = t.buf.len();
                while j < chars.len() && chars[j] != q {
                    t.buf.push(chars[j]);
                    j += 1;
                }
                if t.buf.len() > start_len || j > i + 1 || j < chars.len() {
                    cur_obf = true;
                }
                i = j + 1;
                continue;
            }
            '$' => {
                // $IFS / ${IFS} / $IFS$9 act as whitespace; $@ $* $1 expand to nothing.
                let rest = &chars[i + 1..chars.len().min(i + 8)];
                let starts = |p: &str| rest.iter().copied().take(p.len()).eq(p.chars());
                if starts("{IFS}") || starts("IFS") {
                    t.ifs = true;
                    flush(&mut t, &mut cur, &mut cur_obf, &mut cur_cmd, &mut pending);
                    i += if rest.first() == Some(&'{') { 6 } else { 4 };
                    continue;
                }
                if matches!(next, Some('@' | '*') | Some('0'..='9')) && !empty {
                    cur_obf = true;
                    i += 2;
                    continue;
                }
                // An unset variable inside a word expands to nothing: `c${KK}url`, `sh$XX`.
                if !empty {
                    if next == Some('{') {
                        if let Some(close) = chars[i..chars.len().min(i + 40)]
                            .iter()
                            .position(|&c| c == '}')
                        {
                            cur_obf = true;
                            i += close + 1;
                            continue;
                        }
                    } else if next.is_some_and(|c| c.is_ascii_alphabetic() || c == '_') {
                        let mut j = i + 1;
                        while j < chars.len()
                            && (chars[j].is_ascii_alphanumeric() || chars[j] == '_')
                            && j < i + 32
                        {
                            j += 1;
                        }
                        cur_obf = true;
                        i = j;
                        continue;
                    }
                } else if next.is_some_and(|c| c.is_ascii_lowercase()) && pending.is_some() {
                    // `$u wget`: a short lower-case variable in command position.
                    let mut j = i + 1;
                    while j < chars.len() && chars[j].is_ascii_lowercase() && j < i + 4 {
                        j += 1;
                    }
                    if chars.get(j).is_some_and(|c| *c == ' ') && j - i <= 3 {
                        i = j + 1;
                        continue;
                    }
                }
            }
            _ => {}
        }
        if empty {
            cur_cmd = pending;
        }
        t.buf.push(c);
        i += 1;
    }
    flush(&mut t, &mut cur, &mut cur_obf, &mut cur_cmd, &mut pending);
    t
}

/// A path into a binary directory: `/bin/sh`, `/usr/local/bin/x`, `sbin/ip`.
fn abs_bin_path(w: &str) -> bool {
    [
        "/bin/",
        "/usr/bin/",
        "/sbin/",
        "/usr/sbin/",
        "/usr/local/bin/",
        "bin/",
        "sbin/",
    ]
    .iter()
    .any(|p| {
        w.starts_with(p)
            && w.len() > p.len() + 1
            && w[p.len()..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.')
    })
}

/// Whether `judge_words` over `tokenize(text)` is bound to find nothing, decided without
/// tokenizing. Command positions are the start and what follows a separator (`;`, `|`,
/// `&`, newline, backtick, `(`; a quote can hide a separator but never adds one), plus
/// the argument of a wrapper. When the word at each of them (quotes removed as the
/// tokenizer does; an escape, `$` or non-ASCII byte outside quotes is left to it) names
/// no command or wrapper, or is the capitalised first word, no word can score. Anything
/// else is left to the tokenizer (`{` too: it opens a command group).
///
/// `f` holds the features of `text` or of a string `text` is part of.
fn no_command_word(text: &str, f: Feat) -> bool {
    let b = text.as_bytes();
    if f.any(Feat::BRACE) && b.contains(&b'{') {
        return false;
    }
    let separator = |c: u8| matches!(c, b';' | b'\n' | b'\r' | b'|' | b'&' | b'`' | b'(');
    // Delimiters that end a word; `)` and `}` also end command position.
    let delimiter = |c: u8| {
        matches!(
            c,
            b' ' | b'\t' | 0x0b | 0x0c | b',' | b')' | b'}' | b'<' | b'>'
        )
    };
    let harmless = |at: usize| {
        let mut i = at;
        while i < b.len() && matches!(b[i], b' ' | b'\t' | 0x0b | 0x0c | b',' | b'<' | b'>') {
            i += 1;
        }
        if i >= b.len() || matches!(b[i], b')' | b'}') || separator(b[i]) {
            return true;
        }
        // The word as the tokenizer builds it: a quote takes everything up to the same
        // quote (or the end) literally, without the quotes.
        let mut j = i;
        let mut unquoted: Option<String> = None;
        while j < b.len() {
            let c = b[j];
            if c == b'\'' || c == b'"' {
                let w = unquoted.get_or_insert_with(|| text[i..j].to_string());
                let close = b[j + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .map_or(b.len(), |p| j + 1 + p);
                w.push_str(&text[j + 1..close]);
                j = close + 1;
                continue;
            }
            if !c.is_ascii() || delimiter(c) || separator(c) || matches!(c, b'$' | b'\\') {
                break;
            }
            if let Some(w) = unquoted.as_mut() {
                w.push(char::from(c));
            }
            j += 1;
        }
        if j == i || j < b.len() && !delimiter(b[j]) && !separator(b[j]) {
            return false;
        }
        let word = unquoted.as_deref().unwrap_or(&text[i..j.min(b.len())]);
        if at == 0 && word.bytes().any(|c| c.is_ascii_uppercase()) {
            return true;
        }
        // After a plain `(` (a group, not `$(`) a weak command scores nothing.
        let group = at >= 1 && b[at - 1] == b'(' && (at < 2 || b[at - 2] != b'$');
        let name = base_name(word);
        !(STRONG_SET.contains(&name)
            || !group && WEAK_SET.contains(&name)
            || PREFIX_SET.contains(&name)
            || abs_bin_path(word))
    };
    let separators =
        Feat::SEMI | Feat::CTRL | Feat::PIPE | Feat::AMP | Feat::BACKTICK | Feat::PAREN;
    harmless(0)
        && (!f.any(separators)
            || b.iter()
                .enumerate()
                .all(|(k, &c)| !separator(c) || harmless(k + 1)))
}

fn shellish_arg(w: &str) -> bool {
    // `%SystemDrive%`-style environment references and file names with extensions.
    if let Some(p) = w.find('%') {
        if w[p + 1..].find('%').is_some_and(|q| q > 1) {
            return true;
        }
    }
    if let Some((stem, ext)) = w.rsplit_once('.') {
        let file_ext = matches!(
            ext.to_ascii_lowercase().as_str(),
            "ini"
                | "conf"
                | "cfg"
                | "txt"
                | "log"
                | "xml"
                | "bat"
                | "cmd"
                | "exe"
                | "dll"
                | "sh"
                | "php"
                | "py"
                | "pl"
                | "rb"
                | "js"
                | "ps1"
                | "vbs"
                | "sql"
                | "db"
                | "key"
                | "pem"
                | "env"
                | "yml"
                | "yaml"
                | "json"
                | "bak"
                | "zip"
                | "gz"
                | "tar"
                | "so"
        );
        if file_ext && !stem.is_empty() && !stem.contains(' ') {
            return true;
        }
    }
    let b = w.as_bytes();
    (b.first() == Some(&b'-')
        && b.len() >= 2
        && b.len() <= 24
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'='))
        || w.starts_with('/')
        || w.starts_with("~/")
        || w.starts_with("./")
        || w.starts_with("../")
        || w.starts_with('$')
        || w.starts_with('%') && w.ends_with('%') && w.len() > 2
        || w.contains("://")
        || w == ">"
        || w == "<"
        || (w.len() > 2 && w.as_bytes()[0].is_ascii_alphabetic() && w.as_bytes()[1] == b':')
        || (w.contains('.')
            && w.split('.').count() == 4
            && w.split('.')
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|c| c.is_ascii_digit())))
}

/// Whether `line` (an argument a shell runs as a command line) starts with a command:
/// one that is not an English word, an absolute path to a binary, or a weak one with a
/// shell-looking argument.
fn runs_command(line: &str) -> bool {
    let mut it = line.split_whitespace();
    let Some(first) = it.next() else {
        return false;
    };
    let first = first.trim_start_matches(['(', '{', ';', '&', '|']);
    let name = base_name(first);
    let name = name.as_ref();
    if first.bytes().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    (STRONG_SET.contains(name) && !ENGLISH_STRONG_SET.contains(name))
        || abs_bin_path(first)
        || (STRONG_SET.contains(name) || WEAK_SET.contains(name)) && it.take(4).any(shellish_arg)
}

fn judge_words(words: &[Word<'_>], ifs: bool, prose: bool, free_text: bool) -> (u32, &'static str) {
    let mut best = (0u32, "");
    let mut bump = |s: u32, r: &'static str| {
        if s > best.0 {
            best = (s, r);
        }
    };
    for (idx, w) in words.iter().enumerate() {
        let Some(sep) = w.cmd else { continue };
        let name = base_name(w.text);
        let name = name.as_ref();
        if name.is_empty() || name.len() > 32 {
            continue;
        }
        // Unix commands are case-sensitive: `Cat` or `AZ` is prose. cmd.exe is not.
        let has_upper = w.text.bytes().any(|c| c.is_ascii_uppercase());
        if has_upper
            && (!WINDOWS_SET.contains(name) || sep == Sep::Start || WEAK_SET.contains(name))
        {
            continue;
        }
        let strong = STRONG_SET.contains(name);
        let weak = !strong && WEAK_SET.contains(name);
        let abs_bin = abs_bin_path(w.text);
        if !strong && !weak && !abs_bin {
            continue;
        }
        let args: Vec<&Word<'_>> = words[idx + 1..]
            .iter()
            .take_while(|x| x.cmd.is_none())
            .take(8)
            .collect();
        let shell_args = args.iter().any(|a| shellish_arg(a.text));
        let plain_args = args.len();
        let last = args.is_empty() && idx + 1 == words.len();
        let wrapped = idx > 0
            && PREFIX_SET.contains(&base_name(words[idx - 1].text))
            && words[idx - 1].cmd.is_some();
        let score = match sep {
            Sep::Start if name == "alias" => {
                // `alias [-p] [+m] name=value`
                if args
                    .iter()
                    .take(3)
                    .any(|a| a.text.contains('=') && !a.text.starts_with('='))
                {
                    72
                } else {
                    0
                }
            }
            Sep::Start => {
                if abs_bin {
                    72
                } else if strong && (wrapped || w.obfuscated) && name.len() >= 2 {
                    75
                } else if strong
                    && (name.contains('-')
                        || name.contains('_')
                        || *base_name(w.text) != w.text.to_ascii_lowercase()
                            && !w.text.contains('/'))
                    && !args.is_empty()
                {
                    // `aa-disable php-fpm`, `python3.10 x`: names no prose contains.
                    70
                } else if strong
                    && !ENGLISH_STRONG_SET.contains(name)
                    && args.is_empty()
                    && idx + 1 < words.len()
                    && name.len() > 3
                    && words[idx + 1].cmd.is_some_and(|c| c != Sep::Start)
                {
                    // `whoami;…`: a command, then a separator and more.
                    65
                } else if strong && shell_args {
                    70
                } else if weak
                    && shell_args
                    && !matches!(
                        name,
                        "time" | "date" | "read" | "open" | "help" | "print" | "test"
                    )
                {
                    62
                } else if strong
                    && last
                    && matches!(
                        name,
                        "whoami"
                            | "ifconfig"
                            | "ipconfig"
                            | "uname"
                            | "systeminfo"
                            | "netstat"
                            | "tasklist"
                            | "passwd"
                            | "lastlog"
                            | "visudo"
                    )
                {
                    55
                } else {
                    0
                }
            }
            Sep::Subst => {
                if strong || abs_bin || weak {
                    88
                } else {
                    0
                }
            }
            Sep::Semi | Sep::Pipe | Sep::And | Sep::Or | Sep::Newline
                if name == "sleep"
                    && args
                        .first()
                        .is_some_and(|a| a.text.bytes().all(|c| c.is_ascii_digit())) =>
            {
                // `; sleep 5 ;`: the blind timing probe.
                78
            }
            Sep::Semi | Sep::Pipe | Sep::And | Sep::Or | Sep::Newline
                if ENGLISH_STRONG_SET.contains(name) =>
            {
                if shell_args || last {
                    75
                } else {
                    35
                }
            }
            Sep::Semi | Sep::Pipe | Sep::And | Sep::Or | Sep::Newline => {
                if strong || abs_bin {
                    if plain_args > 3 && !shell_args && w.cmd == Some(Sep::Newline) {
                        40
                    } else {
                        85
                    }
                } else if shell_args || last {
                    75
                } else {
                    35
                }
            }
            Sep::Amp => {
                if (strong || abs_bin) && (shell_args || last || plain_args == 0) && name.len() > 1
                {
                    80
                } else if weak && shell_args {
                    70
                } else {
                    0
                }
            }
            Sep::Group | Sep::Brace => {
                if (strong || abs_bin) && (shell_args || last || w.obfuscated) {
                    70
                } else {
                    0
                }
            }
        };
        // `eval 'cat /etc/passwd'`, `trap 'rm -rf x' EXIT`: the quoted argument is a
        // command line the shell runs; judge its first word as a command.
        let score = if matches!(name, "eval" | "trap")
            && args.first().is_some_and(|a| runs_command(a.text))
        {
            score.max(if sep == Sep::Start { 72 } else { 85 })
        } else {
            score
        };
        // In a document field a bare command line (`curl https://api… -H …`) is usually
        // documentation; it needs a separator or a clearly hostile argument to count.
        let hostile_arg = args.iter().any(|a| {
            // The path itself, or an operand's value (`dd if=/etc/passwd`, `--file=/etc/…`).
            let path = a.text.split_once('=').map_or(a.text, |(_, v)| v);
            ["/etc/", "/bin/", "/dev/", "/proc/", "/tmp/"]
                .iter()
                .any(|p| a.text.starts_with(p) || path.starts_with(p))
                || a.text == "-e"
                || a.text == "-c"
        });
        // …or a second command chained after it (`cd /;cd etc;fold passwd`): prose and
        // documentation do not join commands with shell operators.
        let chained = sep == Sep::Start
            && free_text
            && words[idx + 1..].iter().take(24).any(|x| {
                matches!(x.cmd, Some(Sep::Semi | Sep::Pipe | Sep::And | Sep::Or))
                    && !x.text.bytes().any(|c| c.is_ascii_uppercase())
                    && {
                        let n = base_name(x.text);
                        STRONG_SET.contains(n.as_ref()) || WEAK_SET.contains(n.as_ref())
                    }
            });
        let score = if sep == Sep::Start && free_text && !hostile_arg && !w.obfuscated && !chained {
            score.min(55)
        } else {
            score
        };
        let score = if w.obfuscated && score > 0 {
            (score + 10).min(95)
        } else {
            score
        };
        // A new line in a multi-line document (markdown, a post) starts a sentence or a
        // code sample, not a command the server runs.
        let score = if sep == Sep::Newline && prose {
            score.min(50)
        } else {
            score
        };
        bump(score, "cmdi.command");
    }
    if ifs && best.0 > 0 {
        best = ((best.0 + 10).min(95), "cmdi.ifs-evasion");
    }
    best
}

/// cmd.exe `FOR /F ... IN (...) DO`, `IF [NOT] EXIST|DEFINED|ERRORLEVEL`, `IF a EQU b`.
fn windows_batch(lower: &str, f: Feat) -> u32 {
    // A rule needs the word `if` or `for` in command position: first, or after `&`, `|`,
    // `;` or `(`. Without those characters only the first word can be.
    if !(lower.contains("if") || lower.contains("for")) {
        return 0;
    }
    if !(f.any(Feat::AMP | Feat::PIPE | Feat::SEMI | Feat::PAREN)
        && lower
            .bytes()
            .any(|c| matches!(c, b'&' | b'|' | b';' | b'(')))
    {
        let first = lower.split_whitespace().next().unwrap_or("");
        let first = first.trim_start_matches('@');
        if !(first == "if" || first == "for" || first.starts_with("if/i")) {
            return 0;
        }
    }
    let spaced: Cow<'_, str> = if lower.contains("if/i") {
        Cow::Owned(lower.replacen("if/i", "if /i", 4))
    } else {
        Cow::Borrowed(lower)
    };
    let mut raw = [""; 64];
    let mut words = [""; 64];
    let mut n = 0;
    for w in spaced.split_whitespace().take(64) {
        raw[n] = w;
        words[n] = w.trim_start_matches([';', '&', '|', '@']);
        n += 1;
    }
    let (raw, words) = (&raw[..n], &words[..n]);
    let mut best = 0;
    for (i, w) in words.iter().enumerate() {
        let at_cmd = i == 0
            || raw[i - 1].ends_with(['&', '|', ';', '('])
            || raw[i].starts_with(['&', '|', ';']);
        if !at_cmd {
            continue;
        }
        if *w == "if"
            && words[i + 1..].iter().take(8).any(|x| x.contains("=="))
            && words.len() > i + 3
        {
            best = best.max(72);
        }
        match *w {
            "for" => {
                let a = words.get(i + 1).copied().unwrap_or("");
                if matches!(a, "/f" | "/l" | "/r" | "/d") || a.starts_with('%') {
                    if words[i..]
                        .iter()
                        .take(12)
                        .any(|x| *x == "in" || x.starts_with("in("))
                    {
                        best = best.max(80);
                    } else {
                        best = best.max(55);
                    }
                }
            }
            "if" => {
                let mut j = i + 1;
                if words.get(j) == Some(&"/i") {
                    j += 1;
                }
                if words.get(j) == Some(&"not") {
                    j += 1;
                }
                let a = words.get(j).copied().unwrap_or("");
                let b = words.get(j + 1).copied().unwrap_or("");
                let keyword_test =
                    matches!(a, "exist" | "defined" | "errorlevel" | "cmdextversion")
                        && words.len() > j + 2;
                let comparison = matches!(b, "equ" | "neq" | "lss" | "leq" | "gtr" | "geq" | "==")
                    && words.len() > j + 3;
                if keyword_test || comparison {
                    best = best.max(78);
                } else if a.contains("==") && words.len() > j + 1 {
                    best = best.max(70);
                }
            }
            _ => {}
        }
    }
    best
}

const PS_VERBS: &[&str] = &[
    "invoke-expression",
    "invoke-webrequest",
    "invoke-restmethod",
    "invoke-command",
    "invoke-item",
    "invoke-wmimethod",
    "start-process",
    "new-object",
    "remove-item",
    "set-executionpolicy",
    "get-content",
    "get-childitem",
    "get-process",
    "get-wmiobject",
    "add-type",
    "out-file",
    "copy-item",
    "stop-process",
    "set-content",
    "get-service",
    "start-bitstransfer",
    "get-ciminstance",
    "set-itemproperty",
    "new-item",
    "set-mppreference",
    "convertto-securestring",
    "invoke-shellcode",
    "invoke-mimikatz",
    "get-itemproperty",
    "get-localuser",
    "get-acl",
    "set-alias",
    "invoke-obfuscation",
];

/// Every verb and marker `powershell` looks for, so most values are cleared in one scan.
const PS_TRIGGERS: &[&str] = &[
    "invoke-",
    "start-",
    "new-",
    "remove-",
    "set-",
    "get-",
    "add-type",
    "out-file",
    "copy-item",
    "stop-process",
    "convertto-",
    "-enc",
    "downloadstring(",
    "downloadfile(",
    "net.webclient",
    "frombase64string(",
    "-executionpolicy",
    "-nop ",
    "-windowstyle",
    "iex(",
    "iex (",
    "iwr ",
    "[system.",
    "[convert]::",
];
pub(super) static PS_DICT: super::Dict = super::Dict::new(PS_TRIGGERS, false);

fn powershell(lower: &str, words: Words) -> u32 {
    if !PS_DICT.any_in(lower, words) {
        return 0;
    }
    let mut best = 0;
    for verb in PS_VERBS {
        if let Some(p) = lower.find(verb) {
            let before_ok = p == 0 || !lower.as_bytes()[p - 1].is_ascii_alphanumeric();
            let after = &lower[p + verb.len()..];
            let after_ok = after.is_empty()
                || after
                    .starts_with(|c: char| c.is_whitespace() || c == '(' || c == ';' || c == '|');
            if before_ok && after_ok {
                best = best.max(if after.trim().is_empty() { 60 } else { 78 });
            }
        }
    }
    for marker in [
        "-encodedcommand",
        "-enc ",
        "downloadstring(",
        "downloadfile(",
        "net.webclient",
        "frombase64string(",
        "-executionpolicy bypass",
        "-nop ",
        "-windowstyle hidden",
        "iex(",
        "iex (",
        "iwr ",
        "[system.",
        "[convert]::",
    ] {
        if lower.contains(marker) {
            best = best.max(78);
        }
    }
    best
}

/// Shell-only expression syntax: arithmetic `$((…))` / `$[…]`, process substitution
/// `<(cmd)` / `>(cmd)`, parameter expansion operators `${x#…}`, `$SHELL -c`.
fn shell_expressions(text: &str) -> (u32, &'static str) {
    let mut best = (0u32, "");
    let mut bump = |s: u32, r: &'static str| {
        if s > best.0 {
            best = (s, r);
        }
    };
    if text.contains("$((") || text.contains("$[") && text.contains(']') {
        bump(72, "cmdi.arithmetic-expansion");
    }
    for m in ["<(", ">("] {
        if let Some(p) = text.find(m) {
            let tokens = tokenize(&text[p + 2..]);
            if tokens.words().first().is_some_and(|w| {
                let n = base_name(w.text);
                STRONG_SET.contains(&n) || WEAK_SET.contains(&n)
            }) {
                bump(80, "cmdi.process-substitution");
            }
        }
    }
    if let Some(p) = text.find("${") {
        let inner = &text[p + 2..];
        let end = inner.find('}').unwrap_or(inner.len());
        let body = &inner[..end];
        let name_len = body
            .bytes()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
            .count();
        if name_len > 0
            && name_len < body.len()
            && matches!(
                body.as_bytes()[name_len],
                b'#' | b'%' | b'/' | b'^' | b',' | b'@'
            )
        {
            bump(65, "cmdi.parameter-expansion");
        }
    }
    for sh in ["$shell", "${shell}", "$bash", "${bash}", "$0"] {
        if let Some(p) = text.to_ascii_lowercase().find(sh) {
            if text[p + sh.len()..].trim_start().starts_with("-c") {
                bump(82, "cmdi.shell-variable");
            }
        }
    }
    // Directory-stack tilde expansion as a whole value: `~+`, `~-1`.
    let t = text.trim();
    if t.len() >= 2
        && t.len() <= 4
        && t.starts_with('~')
        && matches!(t.as_bytes()[1], b'+' | b'-')
        && t[2..].bytes().all(|c| c.is_ascii_digit())
    {
        bump(60, "cmdi.tilde-expansion");
    }
    best
}

/// Expands one brace group the way bash does: `c{a,oun}t` → `cat count`,
/// `{l,-lh}s` → `ls -lhs`. Returns `None` without a comma list in braces.
fn brace_expand(text: &str) -> Option<String> {
    let open = text.find('{')?;
    let close = open + text[open..].find('}')?;
    let inner = &text[open + 1..close];
    if !inner.contains(',') || inner.contains(['{', ' ']) {
        return None;
    }
    let pre = &text[..open];
    let post = &text[close + 1..];
    let pre_word = pre.rsplit(|c: char| c.is_whitespace()).next().unwrap_or("");
    let post_word = post.split(|c: char| c.is_whitespace()).next().unwrap_or("");
    let words: Vec<String> = inner
        .split(',')
        .take(16)
        .filter(|a| !(a.is_empty() && pre_word.is_empty() && post_word.is_empty()))
        .map(|a| format!("{pre_word}{a}{post_word}"))
        .collect();
    Some(words.join(" "))
}

/// Matches a path containing glob classes (`/etc/pas[s]wd`, `/bi[n]/bash`) against the
/// system paths it could expand to.
fn glob_path(text: &str) -> u32 {
    if !text.contains('[') || !text.contains('/') {
        return 0;
    }
    const TARGETS: &[&str] = &[
        "/etc/passwd",
        "/etc/shadow",
        "/bin/bash",
        "/bin/sh",
        "/usr/bin/bash",
        "/usr/sbin/bash",
        "/usr/bin/id",
        "/etc/hosts",
        "/etc",
        "/proc/self/environ",
        "/usr/bin/wget",
        "/usr/bin/curl",
        "/bin/nc",
        "/usr/bin/uname",
        "/bin/uname",
        "/usr/bin/whoami",
        "/usr/bin/python",
        "/usr/bin/perl",
        "/bin/cat",
        "/usr/bin/cat",
        "/bin/ls",
        "/usr/bin/nc",
    ];
    let path = text
        .trim()
        .split(|c: char| c.is_whitespace())
        .find(|w| w.starts_with('/') && w.contains('['))
        .unwrap_or("");
    if path.is_empty() {
        return 0;
    }
    // Pattern items: literal chars or one bracket class (any char it could match).
    let mut items: Vec<Option<char>> = Vec::new();
    let chars: Vec<char> = path.chars().take(256).collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '[' {
            if let Some(e) = chars[i..].iter().position(|&c| c == ']') {
                let class: Vec<char> = chars[i + 1..i + e].to_vec();
                let single = class.len() == 1 && class[0] != '!' && class[0] != '^';
                items.push(if single { Some(class[0]) } else { None });
                i += e + 1;
                continue;
            }
        }
        if chars[i] == '/' && items.last() == Some(&Some('/')) {
            i += 1;
            continue;
        }
        items.push(Some(chars[i]));
        i += 1;
    }
    for t in TARGETS {
        let tc: Vec<char> = t.chars().collect();
        if tc.len() == items.len()
            && tc
                .iter()
                .zip(&items)
                .all(|(c, it)| it.is_none_or(|x| x == *c))
        {
            return 80;
        }
    }
    0
}

/// Alphabetic words of three or more letters outside backtick spans.
fn words_outside_backticks(text: &str) -> usize {
    text.split('`')
        .step_by(2)
        .flat_map(|part| part.split_whitespace())
        .filter(|w| w.len() >= 3 && w.bytes().all(|c| c.is_ascii_alphabetic()))
        .count()
}

/// Judges one value; pushes at most one finding.
pub(crate) fn detect(text: &str, lower: &str, sink: &mut Sink) {
    if text.len() < 2 {
        return;
    }
    let mut best = Strongest::NONE;
    // Which characters the value holds at all: a search for one it lacks is skipped.
    let f = sink.feat;
    // Shellshock: a function definition prefix in any value or header.
    if let Some(p) = (f.any(Feat::PAREN) && lower.contains("()"))
        .then(|| lower.find("()"))
        .flatten()
    {
        let rest = lower[p + 2..].trim_start();
        if rest.starts_with('{') {
            best.consider((
                if rest.contains(';') || rest.contains(':') {
                    92
                } else {
                    70
                },
                "cmdi.shellshock",
            ));
        }
    }
    // A data: URI's `;base64,` is media-type syntax, not a command separator.
    let text = match lower.strip_prefix("data:") {
        Some(rest)
            if rest
                .split(',')
                .next()
                .is_some_and(|m| m.ends_with(";base64") && !m.contains(' ')) =>
        {
            ""
        }
        _ => text,
    };
    let prose = f.any(Feat::CTRL)
        && text.matches('\n').count() >= 2
        && text.split_whitespace().count() >= 10;
    let free_text = matches!(
        sink.origin,
        Origin::JsonValue | Origin::XmlText | Origin::GraphQl | Origin::RawBody
    );
    let (sc, rule) = if no_command_word(text, f) {
        (0, "")
    } else {
        let tokens = tokenize(text);
        let ifs = tokens.ifs;
        let (mut sc, rule) = judge_words(&tokens.words(), ifs, prose, free_text);
        // Backticks in prose or markdown are code spans, not command substitution.
        if rule == "cmdi.command" && f.any(Feat::BACKTICK) && words_outside_backticks(text) >= 4 {
            let spaced = tokenize(&text.replace('`', " "));
            let (sc2, _) = judge_words(&spaced.words(), ifs, prose, free_text);
            sc = sc2.min(sc);
        }
        (sc, rule)
    };
    best.consider((sc, rule));
    // Quoted-argument context: the value may land inside '…' or "…" in a shell line, so
    // judge what follows the first quote as shell code (`';htop'`).
    for q in ['\'', '"'] {
        if let Some(p) = f.any(Feat::QUOTE).then(|| text.find(q)).flatten() {
            let rest = &text[p + 1..];
            if rest
                .trim_start()
                .starts_with([';', '|', '&', '`', '$', '\n'])
                && !no_command_word(rest, f)
            {
                let tokens = tokenize(rest);
                let (sc, rule) = judge_words(&tokens.words(), tokens.ifs, prose, free_text);
                best.consider((sc.saturating_sub(5), rule));
            }
        }
    }
    if f.any(Feat::DOLLAR) && text.contains('$')
        || f.any(Feat::PAREN) && text.contains('(') && (text.contains("<(") || text.contains(">("))
        || text.starts_with('~')
    {
        best.consider(shell_expressions(text));
    }
    if let Some(expanded) = f.any(Feat::BRACE).then(|| brace_expand(text)).flatten() {
        let tokens = tokenize(&expanded);
        if let Some(w) = tokens.words().first() {
            let n = base_name(w.text);
            if STRONG_SET.contains(&n) && n.len() >= 2 {
                best.consider((75, "cmdi.brace-expansion"));
            }
        }
    }
    let g = if f.any(Feat::BRACKET) && f.any(Feat::SLASH) {
        glob_path(text)
    } else {
        0
    };
    if g > 0 {
        best.consider((g, "cmdi.glob-path"));
    }
    best.consider((windows_batch(lower, f), "cmdi.windows-batch"));
    if f.any(Feat::HYPHEN)
        || f.any(Feat::PAREN) && lower.contains('(')
        || f.any(Feat::BRACKET) && lower.contains('[')
    {
        best.consider((powershell(lower, sink.words), "cmdi.powershell"));
    }
    if f.any(Feat::PCT)
        && (lower.contains("%comspec%")
            || lower.contains("%systemroot%")
            || lower.contains("%windir%"))
    {
        best.consider((65, "cmdi.windows-env"));
    }
    // Redirection into or out of system paths: `>/tmp/x`, `</etc/passwd`.
    // Every `>` inside a run already trimmed sees the same target: trim each run once,
    // or `>>>>…` costs the square of its length. Both are ASCII: byte offsets are
    // character offsets.
    let mut trimmed_to = 0;
    let scan = if f.any(Feat::LT | Feat::GT) {
        lower.len()
    } else {
        0
    };
    for (i, c) in lower.bytes().enumerate().take(scan) {
        if (c == b'>' || c == b'<') && i >= trimmed_to {
            let rest = lower[i + 1..].trim_start_matches(['>', ' ', '&']);
            trimmed_to = lower.len() - rest.len();
            if rest.starts_with("/tmp/")
                || rest.starts_with("/dev/tcp/")
                || rest.starts_with("/dev/udp/")
                || rest.starts_with("/etc/")
                || rest.starts_with("/var/www")
            {
                best.consider((
                    if rest.starts_with("/dev/") { 90 } else { 70 },
                    "cmdi.redirection",
                ));
            }
        }
    }
    // Bash history expansion `!-1`, `!!`.
    let bang = f.any(Feat::OTHER) && lower.contains('!');
    let hist = if bang && lower.contains("!-") {
        lower.matches("!-").count()
    } else {
        0
    };
    if hist >= 2 || bang && lower.contains("!!:") {
        best.consider((60, "cmdi.history-expansion"));
    }
    best.report(Class::Cmdi, text, sink);
}

#[cfg(test)]
mod tests;
