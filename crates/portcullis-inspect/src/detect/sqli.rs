//! SQL injection: a SQL lexer run over the value in the contexts it could land in
//! (bare / numeric, inside a single-quoted string, inside a double-quoted string), and a
//! judge over the resulting token sequence. The judge looks for *structure* an injected
//! fragment needs to change a query (breaking out of a literal and continuing with an
//! operator, a tautology, a UNION, a stacked statement, a time-delay call, a comment that
//! cuts the rest of the query) rather than for SQL words, which are ordinary English.

use super::{Feat, Sink, Strongest, WordSet};
use crate::settings::Class;

/// Tokens lexed per context; injected fragments live near where the literal breaks.
const MAX_TOKENS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stmt {
    Select,
    Insert,
    Update,
    Delete,
    Ddl,
    Exec,
    Declare,
    Shutdown,
    Waitfor,
    Set,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum K {
    /// Quoted string; `closed` is false when it runs to the end of the value.
    Str {
        closed: bool,
    },
    Num,
    /// Identifier or word not otherwise classified.
    Ident,
    /// `and`, `or`, `xor`, `&&`, `||`.
    Logic,
    Not,
    Union,
    Stmt(Stmt),
    /// `like`, `in`, `is`, `between`, `regexp`, ... : word comparison operators.
    CmpWord,
    /// `=`, `<`, `>`, `!=`, `<>`, `<=`, `>=`, `<=>`.
    Cmp,
    /// Arithmetic and bit operators.
    Op,
    /// `null`, `true`, `false` and niladic value words.
    Literal,
    From,
    Where,
    /// `order by`, `group by`, `having`, `limit`, `procedure`.
    Clause,
    Into,
    /// `@var`, `@@var`.
    Var,
    /// Other reserved words (`as`, `top`, `case`, type names) that glue SQL together.
    Kw,
    LParen,
    RParen,
    Comma,
    Semi,
    /// Comment; `terminal` when it runs to the end of the value (cuts the query).
    Comment {
        terminal: bool,
    },
    Star,
    Other,
}

#[derive(Debug, Clone)]
struct Tok<'a> {
    k: K,
    /// Borrowed from the value (words and variables from its lower-case form); a line
    /// comment's text runs from its `--`/`#` to the end of its first eight characters.
    text: &'a str,
    /// Word immediately followed (whitespace/comments allowed) by `(`.
    call: bool,
}

fn classify(word: &str) -> K {
    match word {
        "and" | "or" | "xor" => K::Logic,
        "not" => K::Not,
        "union" => K::Union,
        "select" => K::Stmt(Stmt::Select),
        "insert" => K::Stmt(Stmt::Insert),
        "update" => K::Stmt(Stmt::Update),
        "delete" => K::Stmt(Stmt::Delete),
        "drop" | "create" | "alter" | "truncate" | "rename" => K::Stmt(Stmt::Ddl),
        "exec" | "execute" => K::Stmt(Stmt::Exec),
        "declare" => K::Stmt(Stmt::Declare),
        "shutdown" => K::Stmt(Stmt::Shutdown),
        "waitfor" => K::Stmt(Stmt::Waitfor),
        "set" => K::Stmt(Stmt::Set),
        "grant" | "revoke" | "merge" | "call" | "replace" | "load" | "handler" | "show" | "use"
        | "begin" | "commit" | "rollback" | "describe" | "with" => K::Stmt(Stmt::Other),
        "like" | "rlike" | "regexp" | "in" | "is" | "between" | "sounds" | "div" | "mod"
        | "glob" | "escape" | "collate" | "similar" | "ilike" => K::CmpWord,
        "null" | "true" | "false" | "unknown" | "current_user" | "session_user" | "system_user"
        | "current_date" | "current_time" | "current_timestamp" | "localtime"
        | "localtimestamp" | "sysdate" => K::Literal,
        "from" => K::From,
        "where" => K::Where,
        "having" | "order" | "group" | "limit" | "procedure" | "offset" => K::Clause,
        "into" => K::Into,
        "as" | "top" | "distinct" | "case" | "when" | "then" | "else" | "end" | "for" | "on"
        | "join" | "all" | "any" | "exists" | "asc" | "desc" | "nvarchar" | "varchar" | "char"
        | "int" | "integer" | "signed" | "unsigned" | "binary" => K::Kw,
        _ => K::Ident,
    }
}

/// Functions whose call in a parameter value has almost no innocent reading: time
/// delays, file and network access, error-based extraction, system introspection.
const ATTACK_FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "extractvalue",
    "updatexml",
    "load_file",
    "xp_cmdshell",
    "xp_dirtree",
    "xp_regread",
    "sp_executesql",
    "sp_oacreate",
    "dbms_pipe.receive_message",
    "dbms_lock.sleep",
    "utl_inaddr.get_host_address",
    "utl_http.request",
    "sys_eval",
    "sys_exec",
    "lo_import",
    "lo_export",
    "dblink",
    "randomblob",
    "version",
    "database",
    "schema",
    "user",
    "current_user",
    "system_user",
    "session_user",
    "user_name",
    "db_name",
    "host_name",
    "suser_name",
    "suser_sname",
    "is_srvrolemember",
    "pg_read_file",
    "pg_ls_dir",
    "make_set",
    "elt",
    "exp",
    "geometrycollection",
    "multipoint",
    "polygon",
    "linestring",
    "multilinestring",
    "name_const",
    "json_keys",
    "gtid_subset",
    "ctxsys.drithsx.sn",
    "dbms_xmlgen.getxml",
    "xmltype",
    "convert",
    "cast",
    "iif",
    "char",
    "chr",
    "nchar",
    "concat",
    "concat_ws",
    "group_concat",
    "ascii",
    "ord",
    "substring",
    "substr",
    "mid",
    "hex",
    "unhex",
    "length",
    "len",
    "if",
    "ifnull",
    "isnull",
    "nullif",
    "coalesce",
    "count",
    "floor",
    "rand",
    "md5",
    "sha1",
    "instr",
    "locate",
    "position",
    "left",
    "right",
    "reverse",
    "lower",
    "upper",
    "waitfor",
    "json_extract",
    "row",
    "table_name",
    "column_name",
    "now",
    "uuid",
    "connection_id",
    "last_insert_id",
    "row_count",
    "found_rows",
    "bin",
    "oct",
    "conv",
    "ucase",
    "lcase",
    "quote",
    "space",
    "repeat",
    "strcmp",
    "collation",
    "charset",
    "sysdate",
    "utc_time",
    "pg_user",
    "current_database",
    "current_schema",
    "dbms_random.value",
    "to_char",
    "to_number",
    "decode",
    "compress",
    "uncompress",
    "xmltype",
    "cos",
    "sin",
    "tan",
    "pow",
    "power",
    "sqrt",
    "trim",
    "rtrim",
    "ltrim",
    "insert",
    "strcmp",
    "encode",
    "find_in_set",
    "starts_with",
    "unistr",
    "jsonb_pretty",
    "json_build_object",
    "lo_get",
    "div",
    "schema_name",
    "char_length",
    "benchmark",
    "soundex",
    "pg_sleep",
    "load_file",
    "extractvalue",
    "updatexml",
    "abs",
    "ceil",
    "ceiling",
    "round",
    "greatest",
    "least",
    "field",
    "regexp_substring",
    "regexp_like",
    "regexp_replace",
    "crypt_key",
    "to_base64",
    "from_base64",
    "aes_decrypt",
];

/// Of the functions above, those that are strong on their own (no other SQL needed).
const STRONG_FUNCS: &[&str] = &[
    "sleep",
    "benchmark",
    "pg_sleep",
    "extractvalue",
    "updatexml",
    "load_file",
    "xp_cmdshell",
    "xp_dirtree",
    "xp_regread",
    "sp_executesql",
    "sp_oacreate",
    "dbms_pipe.receive_message",
    "dbms_lock.sleep",
    "utl_inaddr.get_host_address",
    "utl_http.request",
    "sys_eval",
    "sys_exec",
    "lo_import",
    "lo_export",
    "dblink",
    "pg_read_file",
    "pg_ls_dir",
    "name_const",
    "gtid_subset",
    "ctxsys.drithsx.sn",
    "dbms_xmlgen.getxml",
    "is_srvrolemember",
    "current_user",
    "system_user",
    "session_user",
    "suser_name",
    "suser_sname",
    "randomblob",
    "json_keys",
    "geometrycollection",
    "multipoint",
    "multilinestring",
    "pg_user",
    "current_database",
];

/// System catalog names; referring to them is reconnaissance.
const SYSTEM_OBJECTS: &[&str] = &[
    "information_schema",
    "sysobjects",
    "syscolumns",
    "sysdatabases",
    "sysusers",
    "mysql.user",
    "mysql.db",
    "pg_shadow",
    "pg_user",
    "pg_database",
    "pg_catalog",
    "sqlite_master",
    "sqlite_schema",
    "all_tables",
    "all_users",
    "user_tables",
    "dba_users",
    "sys.tables",
    "sys.objects",
    "sys.databases",
    "master..sysdatabases",
    "msysobjects",
    "information_schema.tables",
    "information_schema.columns",
    "information_schema.schemata",
    "msdb",
    "tempdb",
    "msysaccessobjects",
    "msysqueries",
    "msysrelationships",
    "schema_name",
    "northwind",
    "pg_tables",
    "pg_class",
    "pg_proc",
    "sys.columns",
    "syscomments",
    "sys.sql_logins",
    "v$version",
    "master.dbo.sysdatabases",
];

static ATTACK_FUNC_SET: WordSet = WordSet::new(ATTACK_FUNCS);
static STRONG_FUNC_SET: WordSet = WordSet::new(STRONG_FUNCS);
static SYSTEM_OBJECT_SET: WordSet = WordSet::new(SYSTEM_OBJECTS);

fn is_word_byte(c: u8) -> bool {
    // By table: the lexer asks this for every byte of every word.
    static WORD: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let c = i as u8;
            t[i] = c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80;
            i += 1;
        }
        t
    };
    WORD[usize::from(c)]
}

/// The first `n` characters of `s`.
fn prefix_chars(s: &str, n: usize) -> &str {
    s.char_indices().nth(n).map_or(s, |(i, _)| &s[..i])
}

/// `lower` is `s` in ASCII lower case (same byte offsets).
fn lex<'a>(
    toks: &mut Vec<Tok<'a>>,
    s: &'a str,
    lower: &'a str,
    start_in_quote: Option<u8>,
) -> bool {
    let b = s.as_bytes();
    // The caller's buffer, reused from one context to the next.
    toks.clear();
    toks.reserve(s.len() / 4 + 4);
    let mut i = 0usize;
    // In quote context the value starts inside a literal: skip to its closing quote.
    if let Some(q) = start_in_quote {
        let mut closed = false;
        while i < b.len() {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == q {
                if b.get(i + 1) == Some(&q) {
                    i += 2;
                    continue;
                }
                i += 1;
                closed = true;
                break;
            }
            i += 1;
        }
        if !closed {
            return false;
        }
    }
    let mut prose_until = 0usize;
    while i < b.len() && toks.len() < MAX_TOKENS {
        let c = b[i];
        if c.is_ascii_whitespace() || c == 0 || c == 0x0b || c == 0x0c {
            i += 1;
            continue;
        }
        // Comments.
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            if b.get(i + 2) == Some(&b'!') {
                // MySQL executable comment: its content is code.
                i += 3;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                toks.push(Tok {
                    k: K::Comment { terminal: false },
                    text: "/*!",
                    call: false,
                });
                continue;
            }
            match s[i + 2..].find("*/") {
                Some(p) => {
                    let body = &s[i + 2..i + 2 + p];
                    toks.push(Tok {
                        k: K::Comment { terminal: false },
                        text: prefix_chars(body, 16),
                        call: false,
                    });
                    i += p + 4;
                }
                None => {
                    toks.push(Tok {
                        k: K::Comment { terminal: true },
                        text: "/*",
                        call: false,
                    });
                    i = b.len();
                }
            }
            continue;
        }
        if c == b'*' && b.get(i + 1) == Some(&b'/') {
            i += 2;
            continue;
        }
        // PostgreSQL JSON operators `#>>`, `#>`, `#-` are not comments.
        let pg_json_op = c == b'#' && matches!(b.get(i + 1), Some(b'>') | Some(b'-')) && {
            let len = if b.get(i + 2) == Some(&b'>') { 3 } else { 2 };
            s[(i + len).min(s.len())..].trim_start().starts_with('\'')
        };
        if pg_json_op {
            let len = if b.get(i + 2) == Some(&b'>') { 3 } else { 2 };
            toks.push(Tok {
                k: K::Cmp,
                text: &s[i..i + len],
                call: false,
            });
            i += len;
            continue;
        }
        if ((c == b'-' && b.get(i + 1) == Some(&b'-')) || c == b'#') && i >= prose_until {
            let end = s[i..].find('\n').map_or(b.len(), |p| i + p);
            // A "comment" holding a run of prose is punctuation in text, not SQL.
            let body = s[i..end].trim_start_matches(['-', '#']).trim_start();
            let content_at = end - body.len();
            let content = body.trim_end();
            if content.len() > 24 && content.split_whitespace().count() >= 4 {
                // Remember it, so later `#`/`--` on the same line do not rescan it.
                prose_until = end;
                toks.push(Tok {
                    k: K::Other,
                    text: "#",
                    call: false,
                });
                i += if c == b'#' { 1 } else { 2 };
                continue;
            }
            // Only the last line matters for cutting the query; a newline continues SQL.
            let terminal = end == b.len() || s[end..].trim().is_empty();
            // From the comment marker to the end of the content's first eight characters:
            // what lies between is `-`, `#` and whitespace.
            let kept = prefix_chars(content, 8);
            let text = &s[i..(content_at + kept.len()).max(i + 1)];
            toks.push(Tok {
                k: K::Comment { terminal },
                text,
                call: false,
            });
            i = end;
            continue;
        }
        if c == b'\'' || c == b'"' || c == b'`' {
            let q = c;
            let mut j = i + 1;
            let mut closed = false;
            while j < b.len() {
                if b[j] == b'\\' && q != b'`' {
                    j += 2;
                    continue;
                }
                if b[j] == q {
                    if b.get(j + 1) == Some(&q) {
                        j += 2;
                        continue;
                    }
                    closed = true;
                    break;
                }
                j += 1;
            }
            let end = j.min(b.len());
            let inner = prefix_chars(s.get(i + 1..end).unwrap_or(""), 32);
            let k = if q == b'`' {
                K::Ident
            } else {
                K::Str { closed }
            };
            // A backtick identifier keeps its opening backtick.
            let text = if q == b'`' {
                &s[i..i + 1 + inner.len()]
            } else {
                inner
            };
            toks.push(Tok {
                k,
                text,
                call: false,
            });
            i = if closed { end + 1 } else { b.len() };
            continue;
        }
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let st = i;
            if c == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X' | b'b' | b'B')) {
                i += 2;
                while i < b.len() && b[i].is_ascii_hexdigit() {
                    i += 1;
                }
            } else {
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
                if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                    let mut j = i + 1;
                    if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                        j += 1;
                    }
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            toks.push(Tok {
                k: K::Num,
                text: &s[st..i],
                call: false,
            });
            continue;
        }
        if c == b'@' && b.get(i + 1) == Some(&b'>') {
            toks.push(Tok {
                k: K::Cmp,
                text: "@>",
                call: false,
            });
            i += 2;
            continue;
        }
        if c == b'@' {
            let st = i;
            i += 1;
            if b.get(i) == Some(&b'@') {
                i += 1;
            }
            while i < b.len() && (is_word_byte(b[i]) || b[i] == b'.') {
                i += 1;
            }
            toks.push(Tok {
                k: K::Var,
                text: &lower[st..i],
                call: false,
            });
            continue;
        }
        if is_word_byte(c) {
            let st = i;
            while i < b.len()
                && (is_word_byte(b[i])
                    || (b[i] == b'.'
                        && b.get(i + 1).is_some_and(|&x| is_word_byte(x) || x == b'.')))
            {
                i += 1;
            }
            let word = &lower[st..i];
            // PostgreSQL array constructor `array['a','b']` is one literal.
            if word == "array" && b.get(i) == Some(&b'[') {
                if let Some(p) = s[i..].find(']') {
                    toks.push(Tok {
                        k: K::Str { closed: true },
                        text: "array",
                        call: false,
                    });
                    i += p + 1;
                    continue;
                }
            }
            // N'..', X'..', B'..', E'..' prefixed literals.
            if matches!(
                word,
                "n" | "x" | "b" | "e" | "_utf8" | "_latin1" | "_binary"
            ) && matches!(b.get(i), Some(b'\''))
            {
                continue;
            }
            let mut j = i;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            // Comments between a function name and its `(` are a classic evasion.
            while j + 1 < b.len() && b[j] == b'/' && b[j + 1] == b'*' {
                match s[j + 2..].find("*/") {
                    Some(p) => j += p + 4,
                    None => break,
                }
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
            }
            let call = b.get(j) == Some(&b'(');
            let mut k = classify(word);
            if let K::Stmt(_) = k {
                // `if(` / `char(` etc. are calls; `select(` is still select.
            } else if call && k == K::Ident {
                k = K::Ident;
            }
            toks.push(Tok {
                k,
                text: word,
                call,
            });
            continue;
        }
        let two = if i + 1 < b.len() {
            &b[i..i + 2]
        } else {
            &b[i..i + 1]
        };
        let (k, len) = match two {
            b"||" | b"&&" => (K::Logic, 2),
            b"<=" if b.get(i + 2) == Some(&b'>') => (K::Cmp, 3),
            b"<=" | b">=" | b"!=" | b"<>" | b"^=" => (K::Cmp, 2),
            b"->" if b.get(i + 2) == Some(&b'>') => (K::Cmp, 3),
            b"<@" | b"@>" | b"?|" | b"?&" | b"->" => (K::Cmp, 2),
            b"::" | b":=" | b"<<" | b">>" => (K::Op, 2),
            _ => match c {
                b'=' | b'<' | b'>' => (K::Cmp, 1),
                b'?' if i > 0 => (K::Cmp, 1),
                b'!' => (K::Not, 1),
                b'+' | b'-' | b'/' | b'%' | b'^' | b'|' | b'&' | b'~' => (K::Op, 1),
                b'*' => (K::Star, 1),
                b'(' => (K::LParen, 1),
                b')' => (K::RParen, 1),
                b',' => (K::Comma, 1),
                b';' => (K::Semi, 1),
                b'[' => {
                    // T-SQL bracketed identifier, or one cut off by the end of the value.
                    let word = b[i + 1..].iter().take_while(|&&c| is_word_byte(c)).count();
                    match s[i..].find(']') {
                        Some(p) if p < 64 => {
                            // `[dbo].[orders]`, `[dbo].orders`: one qualified name.
                            let mut len = p + 1;
                            while b.get(i + len) == Some(&b'.') {
                                let rest = &s[i + len + 1..];
                                let part = if rest.starts_with('[') {
                                    rest.find(']').filter(|&q| q < 64).map(|q| q + 1)
                                } else {
                                    let w = rest.bytes().take_while(|&c| is_word_byte(c)).count();
                                    (w > 0).then_some(w)
                                };
                                match part {
                                    Some(n) => len += 1 + n,
                                    None => break,
                                }
                            }
                            (K::Ident, len)
                        }
                        None if word > 0 && i + 1 + word == b.len() => (K::Ident, word + 1),
                        _ => (K::Other, 1),
                    }
                }
                _ => (K::Other, 1),
            },
        };
        // Operators and punctuation are ASCII, so the slice ends on a character boundary.
        let text = &s[i..(i + len).min(b.len())];
        toks.push(Tok {
            k,
            text,
            call: false,
        });
        i += len;
    }
    true
}

/// Token stream without non-terminal comments, plus facts about the comments.
struct Stream<'a> {
    t: Vec<Tok<'a>>,
    terminal_comment: bool,
    /// The terminal comment holds words (`# BLAH`) rather than nothing or `-`/`+`.
    terminal_words: bool,
    inline_comments: usize,
    exec_comment: bool,
    /// The value opened with the quote that breaks the literal (`'select …`).
    quote_at_start: bool,
    /// The text before the breaking quote contains spaces (prose rather than a token).
    quote_prefix_words: bool,
}

fn strip(mut t: Vec<Tok<'_>>) -> Stream<'_> {
    let mut terminal_comment = false;
    let mut terminal_words = false;
    let mut inline_comments = 0;
    let mut exec_comment = false;
    t.retain(|tok| match tok.k {
        K::Comment { terminal } => {
            if tok.text == "/*!" {
                exec_comment = true;
            }
            if terminal {
                terminal_comment = true;
                // Only `-`, `#` and whitespace precede a line comment's words.
                terminal_words = tok.text.bytes().any(|c| c.is_ascii_alphanumeric());
            } else {
                inline_comments += 1;
            }
            false
        }
        _ => true,
    });
    Stream {
        t,
        terminal_comment,
        terminal_words,
        inline_comments,
        exec_comment,
        quote_at_start: false,
        quote_prefix_words: false,
    }
}

fn is_func(tok: &Tok) -> bool {
    tok.call
        && matches!(
            tok.k,
            K::Ident | K::Literal | K::Stmt(_) | K::Logic | K::CmpWord | K::Kw
        )
}

fn known_func(tok: &Tok) -> bool {
    tok.call && ATTACK_FUNC_SET.contains(tok.text)
}

fn strong_func(tok: &Tok) -> bool {
    tok.call && STRONG_FUNC_SET.contains(tok.text)
}

/// End of a balanced parenthesised group starting at `i` (which is `(`); returns the
/// index after the matching `)`, or the stream end.
fn skip_group(t: &[Tok], i: usize) -> usize {
    let mut depth = 0i32;
    let mut j = i;
    while j < t.len() {
        match t[j].k {
            K::LParen => depth += 1,
            K::RParen => {
                depth -= 1;
                if depth <= 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    t.len()
}

/// Whether the tokens inside a call's parentheses look like SQL arguments: literals,
/// operators, nested calls, commas, few bare words in a row (English has many).
fn sql_args(t: &[Tok]) -> bool {
    let mut prev_ident = false;
    for tok in t {
        match tok.k {
            K::Ident if !tok.call => {
                if prev_ident {
                    return false;
                }
                prev_ident = true;
            }
            K::Other => return false,
            _ => prev_ident = false,
        }
    }
    true
}

/// Parses one operand at `i`: a literal, identifier, variable, call, group, or unary op
/// applied to one. Returns the index after it.
fn operand(t: &[Tok], i: usize) -> Option<(usize, bool /*literal-ish*/, bool /*call*/)> {
    let mut i = i;
    while i < t.len() && matches!(t[i].k, K::Op | K::Not) && t[i].text != "*" {
        i += 1;
    }
    let tok = t.get(i)?;
    match tok.k {
        K::Num | K::Str { .. } | K::Literal | K::Var => {
            if tok.call {
                let end = skip_group(t, i + 1);
                return Some((end, true, true));
            }
            Some((i + 1, true, false))
        }
        K::Ident | K::CmpWord | K::Stmt(_) | K::Logic | K::Kw if tok.call => {
            let end = skip_group(t, i + 1);
            if !sql_args(t.get(i + 2..end.saturating_sub(1)).unwrap_or(&[])) {
                return None;
            }
            Some((end, false, true))
        }
        K::Ident => Some((i + 1, false, false)),
        K::LParen => {
            let end = skip_group(t, i);
            let closed = t
                .get(end.saturating_sub(1))
                .is_some_and(|x| x.k == K::RParen)
                && end > i + 1;
            let inner = t
                .get(i + 1..if closed { end - 1 } else { end })
                .unwrap_or(&[]);
            let subquery = matches!(inner.first().map(|x| x.k), Some(K::Stmt(Stmt::Select)));
            if inner.is_empty() || (!subquery && !sql_args(inner)) {
                return None;
            }
            let sub = matches!(inner.first().map(|x| x.k), Some(K::Stmt(Stmt::Select)))
                || inner.iter().any(|x| x.k == K::Cmp || known_func(x));
            Some((end, true, sub))
        }
        _ => None,
    }
}

/// Parses a boolean term: `a OP b`, a lone operand, `a IS [NOT] NULL`, `a BETWEEN x AND y`.
/// Returns (end, kind) with kind: 2 = comparison/call, 1 = lone literal, 0 = lone identifier.
fn term(t: &[Tok], i: usize) -> Option<(usize, u8, bool)> {
    let (mut j, lit, call) = operand(t, i)?;
    // Arithmetic chains: 1+1, 'a'||'b'.
    let mut guard = 0;
    while j < t.len() && matches!(t[j].k, K::Op | K::Star) && guard < 32 {
        guard += 1;
        match operand(t, j + 1) {
            Some((e, _, _)) => j = e,
            None => break,
        }
    }
    let cmp = t.get(j).map(|x| x.k);
    match cmp {
        Some(K::Cmp) | Some(K::CmpWord) => {
            let mut k = j + 1;
            while k < t.len() && matches!(t[k].k, K::Not | K::CmpWord | K::Cmp) && k < j + 3 {
                k += 1;
            }
            let (mut e, lit2, call2) = operand(t, k)?;
            let mut g = 0;
            while e < t.len() && matches!(t[e].k, K::Op | K::Star) && g < 32 {
                g += 1;
                match operand(t, e + 1) {
                    Some((x, _, _)) => e = x,
                    None => break,
                }
            }
            // BETWEEN x AND y
            if t.get(j).is_some_and(|x| x.text == "between")
                && t.get(e).is_some_and(|x| x.text == "and")
            {
                if let Some((x, _, _)) = operand(t, e + 1) {
                    e = x;
                }
            }
            // `this is way`, `it in time`: word operators between bare words are prose.
            let wordy =
                t.get(j).is_some_and(|x| x.k == K::CmpWord) && !lit && !lit2 && !call && !call2;
            Some((e, if wordy { 0 } else { 2 }, call || call2))
        }
        _ => Some((
            j,
            if call {
                2
            } else if lit {
                1
            } else {
                0
            },
            call,
        )),
    }
}

/// Whether position `i` ends an injected expression: end of value, a terminal comment
/// (already stripped), a closing paren, `;`, another logic operator, a clause.
fn clean_end(t: &[Tok], i: usize) -> bool {
    matches!(
        t.get(i).map(|x| x.k),
        None | Some(
            K::RParen
                | K::Semi
                | K::Logic
                | K::Clause
                | K::Union
                | K::Into
                | K::Str { closed: false }
        )
    )
}

fn valid_statement(t: &[Tok], i: usize) -> u32 {
    let Some(tok) = t.get(i) else { return 0 };
    let next = t.get(i + 1);
    let next_k = next.map(|x| x.k);
    match tok.k {
        K::Stmt(Stmt::Select) => {
            let mut j = i + 1;
            while j < t.len() && matches!(t[j].text, "distinct" | "all" | "top" | "distinctrow") {
                j += 1;
                // `top 10`; after `all` or `distinct` a number is the first column.
                if t[j - 1].text == "top" && t.get(j).is_some_and(|x| x.k == K::Num) {
                    j += 1;
                }
            }
            while t
                .get(j)
                .is_some_and(|x| x.k == K::Op && (x.text == "-" || x.text == "+" || x.text == "~"))
            {
                j += 1;
            }
            let Some(first) = t.get(j) else { return 0 };
            if first.text == "case"
                && t.get(j + 1)
                    .is_some_and(|x| x.text == "when" || x.k == K::Num)
            {
                return 85;
            }
            let after_first = match first.k {
                K::Star => j + 1,
                K::Num | K::Str { .. } | K::Var | K::Literal => j + 1,
                K::LParen => skip_group(t, j),
                _ if is_func(first) => skip_group(t, j + 1),
                K::Ident => j + 1,
                _ => return 0,
            };
            let strong_first = !matches!(first.k, K::Ident) || is_func(first);
            match t.get(after_first).map(|x| x.k) {
                Some(K::From) => {
                    if t.get(after_first + 1)
                        .is_some_and(|x| matches!(x.k, K::Ident | K::LParen | K::Literal))
                    {
                        if strong_first {
                            90
                        } else {
                            60
                        }
                    } else if t.get(after_first + 1).is_none() {
                        // `select col from` cut off at the end of the value.
                        45
                    } else {
                        30
                    }
                }
                Some(K::Comma) => {
                    if strong_first
                        || t.get(after_first + 1)
                            .is_some_and(|x| !matches!(x.k, K::Ident) || x.call)
                    {
                        85
                    } else {
                        55
                    }
                }
                None | Some(K::Semi | K::RParen | K::Union | K::Into | K::Where | K::Clause) => {
                    if matches!(first.k, K::Num | K::Str { .. }) && after_first >= t.len() {
                        // `select 'x'` alone: valid SQL, and also how a quoted word reads.
                        55
                    } else if strong_first {
                        80
                    } else {
                        40
                    }
                }
                Some(K::Str { closed: false }) if strong_first => 70,
                Some(K::Logic | K::Cmp | K::Op) if strong_first => 75,
                _ => {
                    if strong_first && matches!(first.k, K::Star | K::Var) {
                        60
                    } else {
                        20
                    }
                }
            }
        }
        K::Stmt(Stmt::Insert)
            if next.is_some_and(|x| x.k == K::Into)
                && t.get(i + 2).is_some_and(|x| x.k == K::Ident) =>
        {
            85
        }
        K::Stmt(Stmt::Update)
            if next_k == Some(K::Ident)
                && t.get(i + 2).is_some_and(|x| x.k == K::Stmt(Stmt::Set))
                && t.get(i + 3).is_some_and(|x| x.k == K::Ident)
                && t.get(i + 4).is_some_and(|x| x.k == K::Cmp) =>
        {
            85
        }
        K::Stmt(Stmt::Delete) => {
            // MySQL's modifiers sit between `delete` and `from`.
            let mut j = i + 1;
            while t
                .get(j)
                .is_some_and(|x| matches!(x.text, "low_priority" | "quick" | "ignore"))
                && j < i + 4
            {
                j += 1;
            }
            if t.get(j).is_some_and(|x| x.k == K::From)
                && t.get(j + 1).is_some_and(|x| x.k == K::Ident)
            {
                85
            } else {
                0
            }
        }
        // `TRUNCATE [orders]`, ``TRUNCATE `orders` ``: the table keyword is optional, and
        // a quoted identifier is SQL, not prose.
        K::Stmt(Stmt::Ddl)
            if tok.text == "truncate"
                && next.is_some_and(|x| {
                    x.k == K::Ident && (x.text.starts_with('[') || x.text.starts_with('`'))
                })
                && t.get(i + 2).is_none_or(|x| {
                    matches!(x.k, K::Semi | K::Comment { .. } | K::Str { closed: false })
                }) =>
        {
            80
        }
        K::Stmt(Stmt::Ddl) => {
            let obj = next.map(|x| x.text).unwrap_or("");
            // `drop table if exists x`; after the object name the statement must end
            // (`drop table tennis practice` is prose).
            let mut name_at = i + 2;
            if t.get(name_at).is_some_and(|x| x.text == "if") {
                name_at += 1 + usize::from(
                    t.get(name_at + 1)
                        .is_some_and(|x| x.text == "exists" || x.text == "not"),
                );
                if t.get(name_at).is_some_and(|x| x.text == "exists") {
                    name_at += 1;
                }
            }
            let ends = match t.get(name_at + 1) {
                None => true,
                Some(x) => {
                    matches!(
                        x.k,
                        K::Semi
                            | K::Comma
                            | K::RParen
                            | K::LParen
                            | K::Comment { .. }
                            | K::Str { closed: false }
                    ) || matches!(
                        x.text,
                        "cascade"
                            | "restrict"
                            | "purge"
                            | "add"
                            | "drop"
                            | "modify"
                            | "rename"
                            | "set"
                            | "as"
                            | "to"
                            | "("
                            | "change"
                            | "character"
                            | "convert"
                            | "engine"
                            | "auto_increment"
                            | "column"
                            | "partition"
                            | "default"
                            | "owner"
                    )
                }
            };
            if !ends {
                return 0;
            }
            let name_ok = t
                .get(name_at)
                .is_some_and(|x| matches!(x.k, K::Ident | K::Str { .. } | K::Clause | K::Literal));
            if name_ok
                && matches!(
                    obj,
                    "table"
                        | "database"
                        | "schema"
                        | "procedure"
                        | "function"
                        | "view"
                        | "index"
                        | "trigger"
                        | "user"
                        | "login"
                        | "column"
                        | "temporary"
                )
            {
                85
            } else {
                0
            }
        }
        K::Stmt(Stmt::Exec) => {
            let n = next.map(|x| x.text).unwrap_or("");
            if n.starts_with("xp_")
                || n.starts_with("sp_")
                || n.starts_with("master.")
                || n == "master"
                || n == "immediate"
            {
                90
            } else if next_k == Some(K::LParen) || next_k == Some(K::Var) {
                70
            } else {
                0
            }
        }
        K::Stmt(Stmt::Declare) if next_k == Some(K::Var) => 80,
        K::Stmt(Stmt::Shutdown)
            if matches!(next_k, None | Some(K::Semi) | Some(K::Ident)) && t.len() <= i + 3 =>
        {
            75
        }
        K::Stmt(Stmt::Waitfor)
            if next.is_some_and(|x| x.text == "delay" || x.text == "time")
                && t.get(i + 2)
                    .is_some_and(|x| matches!(x.k, K::Str { .. } | K::Var)) =>
        {
            90
        }
        K::Stmt(Stmt::Other) => match tok.text {
            "call" if next.is_some_and(|x| x.call) => 80,
            "begin"
                if t.get(i + 1..)
                    .unwrap_or(&[])
                    .iter()
                    .take(12)
                    .any(|x| x.text == "end")
                    && next.is_some_and(|x| x.call || x.k == K::Stmt(Stmt::Declare)) =>
            {
                80
            }
            // `begin declare @x varchar(8000)`: a T-SQL block, cut where the value ends.
            "begin"
                if next_k == Some(K::Stmt(Stmt::Declare))
                    && t.get(i + 2).is_some_and(|x| x.k == K::Var) =>
            {
                80
            }
            // MySQL `load data [local] infile 'f'`, `load xml infile 'f'`.
            "load"
                if next.is_some_and(|x| x.text == "data" || x.text == "xml")
                    && t.get(i + 2..)
                        .unwrap_or(&[])
                        .iter()
                        .take(3)
                        .position(|x| x.text == "infile")
                        .is_some_and(|p| {
                            t.get(i + 3 + p)
                                .is_some_and(|x| matches!(x.k, K::Str { .. }))
                        }) =>
            {
                85
            }
            _ => 0,
        },
        K::Stmt(Stmt::Set)
            if next_k == Some(K::Var) && t.get(i + 2).is_some_and(|x| x.k == K::Cmp) =>
        {
            75
        }
        _ => 0,
    }
}

/// A T-SQL `IF` statement at `j`: `IF EXISTS (…`, or a condition then a statement
/// (`IF 1=1 DROP DATABASE x`, `IF (SELECT …) WAITFOR DELAY '0:0:5'`).
fn tsql_if(t: &[Tok], j: usize) -> u32 {
    if !t.get(j).is_some_and(|x| x.text == "if" && !x.call) {
        return 0;
    }
    let mut compared = false;
    for k in j + 1..t.len().min(j + 12) {
        let x = &t[k];
        if x.text == "exists" && t.get(k + 1).is_some_and(|y| y.k == K::LParen) && k <= j + 2 {
            return 75;
        }
        match x.k {
            K::Cmp | K::CmpWord => compared = true,
            K::Stmt(_) if compared || k > j + 1 && t[k - 1].k == K::RParen => {
                return if valid_statement(t, k) > 0 { 80 } else { 0 };
            }
            K::Semi => return 0,
            _ => {}
        }
    }
    0
}

/// Score of a tail that follows a break-out point (closing quote, or start of value in
/// a bare context). `after_quote` raises confidence: the value closed a literal.
fn judge_tail(t: &[Tok], start: usize, after_quote: bool, s: &Stream) -> (u32, &'static str) {
    let mut best: (u32, &'static str) = (0, "");
    let bump = |score: u32, rule: &'static str, best: &mut (u32, &'static str)| {
        if score > best.0 {
            *best = (score, rule);
        }
    };
    let mut i = start;
    // Closing parens of the surrounding query: `')`, `1))`, then an optional alias.
    while i < t.len() && t[i].k == K::RParen && i < start + 4 {
        i += 1;
    }
    if t.get(i).is_some_and(|x| x.text == "as") && t.get(i + 1).is_some_and(|x| x.k == K::Ident) {
        i += 2;
    }
    if t.get(i).is_some_and(|x| x.k == K::Where) {
        if let Some((e, kind, _)) = term(t, i + 1) {
            if kind == 2 && (clean_end(t, e) || e >= t.len()) {
                bump(
                    if after_quote || i > start { 85 } else { 60 },
                    "sqli.where-break",
                    &mut best,
                );
            }
        }
        // `where 1=1 and ...`: judge what follows the first term like a logic tail.
        if let Some((e, _, _)) = term(t, i + 1) {
            if e < t.len() && matches!(t[e].k, K::Logic | K::Semi | K::Clause) {
                let r = judge_tail(t, e, after_quote, s);
                if r.0 > best.0 {
                    best = r;
                }
            }
        }
    }
    let Some(first) = t.get(i) else {
        if after_quote && s.terminal_comment {
            // `admin'--`, `x')#`; a comment with words after it reads like prose.
            // After prose (`SOAP 1 '#`) a quote and a hash are more likely typing.
            let score = if s.terminal_words {
                50
            } else if s.quote_prefix_words {
                55
            } else {
                72
            };
            bump(score, "sqli.quote-comment", &mut best);
        }
        return best;
    };
    // `admin' or `, `' = `, `` ` REGEXP ``: the value ends on an operator right after the
    // break, and the application's own closing quote opens its right operand
    // (`'admin' or ''`, `'' = ''`).
    if after_quote
        && i == start
        && i + 1 == t.len()
        && !s.terminal_comment
        && (matches!(first.k, K::Logic | K::Cmp)
            || first.k == K::CmpWord
                && matches!(
                    first.text,
                    "like" | "rlike" | "regexp" | "sounds" | "glob" | "ilike" | "similar"
                ))
    {
        let score = if s.quote_prefix_words {
            40
        } else if s.quote_at_start {
            64
        } else {
            60
        };
        bump(score, "sqli.dangling-operator", &mut best);
    }
    match first.k {
        K::Logic | K::Not => {
            let mut j = i + 1;
            if first.k == K::Logic && t.get(j).is_some_and(|x| x.k == K::Not) {
                j += 1;
            }
            if let Some((e, kind, call)) = term(t, j) {
                let end_ok = clean_end(t, e) || (e >= t.len());
                if end_ok || s.terminal_comment && e >= t.len() {
                    let score = match (kind, after_quote) {
                        (2, true) => 90,
                        (2, false) => {
                            if call || s.terminal_comment {
                                85
                            } else {
                                75
                            }
                        }
                        (1, true) => {
                            // A lone unterminated string (`" and "x`) is how quoted prose looks.
                            let open_str = matches!(
                                t.get(e.saturating_sub(1)).map(|x| x.k),
                                Some(K::Str { closed: false })
                            );
                            if open_str && !s.terminal_comment {
                                45
                            } else if e >= t.len()
                                || s.terminal_comment
                                || t.get(e).is_some_and(|x| x.k == K::Semi)
                            {
                                80
                            } else {
                                50
                            }
                        }
                        (1, false) => {
                            if s.terminal_comment {
                                70
                            } else {
                                40
                            }
                        }
                        (0, true) => {
                            if s.terminal_comment {
                                70
                            } else {
                                45
                            }
                        }
                        _ => 0,
                    };
                    bump(score, "sqli.logic-break", &mut best);
                } else if kind == 2 && after_quote {
                    bump(50, "sqli.logic-break-tail", &mut best);
                }
                if t.get(e)
                    .is_some_and(|x| matches!(x.k, K::Clause | K::Union | K::Into | K::Semi))
                {
                    let r = judge_tail(t, e, after_quote, s);
                    bump(r.0, r.1, &mut best);
                }
            }
            if let Some(n) = t.get(j) {
                if n.k == K::LParen {
                    let end = skip_group(t, j);
                    if t.get(j + 1).is_some_and(|x| x.k == K::Stmt(Stmt::Select)) {
                        bump(85, "sqli.logic-subquery", &mut best);
                    } else if after_quote && end > j + 2 && clean_end(t, end) {
                        bump(70, "sqli.logic-group", &mut best);
                    }
                }
                if n.text == "exists" && t.get(j + 1).is_some_and(|x| x.k == K::LParen) {
                    bump(85, "sqli.logic-exists", &mut best);
                }
            }
        }
        K::Semi => {
            if after_quote && i + 1 >= t.len() && i == start {
                // `admin';`: close the literal, end the statement. After prose
                // (`HAT 18';`) it is more likely a typo.
                bump(
                    if s.quote_prefix_words { 45 } else { 62 },
                    "sqli.quote-terminate",
                    &mut best,
                );
            }
            let v = valid_statement(t, i + 1);
            let call_next = t.get(i + 1).is_some_and(|x| {
                is_func(x) && (known_func(x) || x.text == "iif" || x.text == "if")
            });
            if call_next {
                bump(
                    if after_quote { 80 } else { 72 },
                    "sqli.stacked-call",
                    &mut best,
                );
            }
            let cond = tsql_if(t, i + 1);
            if cond > 0 {
                bump(cond, "sqli.stacked-if", &mut best);
            }
            if after_quote
                && t.get(i + 1).is_some_and(|x| {
                    matches!(
                        x.k,
                        K::Stmt(
                            Stmt::Select
                                | Stmt::Insert
                                | Stmt::Update
                                | Stmt::Delete
                                | Stmt::Ddl
                                | Stmt::Exec
                                | Stmt::Declare
                                | Stmt::Shutdown
                                | Stmt::Waitfor
                        )
                    )
                })
            {
                bump(65, "sqli.quote-stacked", &mut best);
            }
            if v > 0 {
                bump((v + 5).min(95), "sqli.stacked", &mut best);
            } else if after_quote && (i + 1 >= t.len()) && s.terminal_comment {
                bump(
                    if s.terminal_words { 50 } else { 72 },
                    "sqli.quote-comment",
                    &mut best,
                );
            }
        }
        K::Union => {
            let mut j = i + 1;
            while t
                .get(j)
                .is_some_and(|x| matches!(x.text, "all" | "distinct") || x.k == K::LParen)
            {
                j += 1;
            }
            if t.get(j).is_some_and(|x| x.k == K::Stmt(Stmt::Select)) {
                // `union select committee`: the select must read as a select list.
                // A bare `union select` at the end of a value is the probe itself.
                let v = if t.get(j + 1).is_none() {
                    45
                } else {
                    valid_statement(t, j)
                };
                let score = if v >= 40 {
                    92
                } else if after_quote {
                    70
                } else {
                    50
                };
                bump(score, "sqli.union", &mut best);
            }
        }
        K::Clause => {
            let n = t.get(i + 1);
            let by = n.is_some_and(|x| x.text == "by");
            let target_ok = t.get(i + if by { 2 } else { 1 }).is_some_and(|x| {
                matches!(x.k, K::Num | K::Ident | K::Str { .. } | K::Literal) || is_func(x)
            });
            let target_call = t.get(i + if by { 2 } else { 1 }).is_some_and(known_func);
            if target_ok
                && (after_quote
                    || t.get(i + 2).is_some_and(|x| x.k == K::Num)
                    || s.terminal_comment
                    || target_call)
            {
                bump(if after_quote { 80 } else { 70 }, "sqli.clause", &mut best);
            }
            if first.text == "procedure"
                && n.is_some_and(|x| x.text == "analyse" || x.text == "analyze")
            {
                bump(85, "sqli.clause", &mut best);
            }
        }
        K::Into => {
            if t.get(i + 1)
                .is_some_and(|x| x.text == "outfile" || x.text == "dumpfile")
            {
                bump(90, "sqli.into-outfile", &mut best);
            }
        }
        K::From if after_quote && i == start => {
            bump(62, "sqli.quote-from", &mut best);
        }
        K::Kw if first.text == "as" && after_quote => {
            if t.get(i + 2).is_some_and(|x| x.k == K::From) {
                bump(70, "sqli.alias-from", &mut best);
            }
        }
        K::Cmp | K::Op | K::CmpWord | K::Star => {
            // `'=0--`, `'+sleep(5)+'`, `'||(select ..)||'`, `' like '%`.
            if let Some((e, kind, call)) = term(t, i + 1) {
                let sub = t.get(i + 1).is_some_and(|x| x.k == K::LParen)
                    && t.get(i + 2).is_some_and(|x| x.k == K::Stmt(Stmt::Select));
                if sub {
                    bump(88, "sqli.operator-subquery", &mut best);
                } else if call && kind == 2 {
                    let f = t.get(i + 1..e).unwrap_or(&[]).iter().any(known_func);
                    bump(if f { 85 } else { 55 }, "sqli.operator-call", &mut best);
                } else if after_quote
                    && (clean_end(t, e) || (s.terminal_comment && e >= t.len()))
                    && !matches!(t.get(e).map(|x| x.k), Some(K::Str { closed: false }))
                {
                    let has_lit = t.get(i + 1..e).unwrap_or(&[]).iter().any(|x| {
                        matches!(x.k, K::Num | K::Str { closed: true } | K::Literal | K::Var)
                    });
                    let score = if !has_lit {
                        40
                    } else if s.terminal_comment && e >= t.len() {
                        75
                    } else if first.k == K::Cmp {
                        62
                    } else {
                        45
                    };
                    bump(score, "sqli.operator-break", &mut best);
                }
            }
        }
        K::Stmt(_) => {
            let v = valid_statement(t, i);
            if v > 0 {
                let score = if after_quote { v } else { v.saturating_sub(5) };
                bump(score, "sqli.statement", &mut best);
            }
            if after_quote
                && matches!(
                    first.k,
                    K::Stmt(Stmt::Select | Stmt::Exec | Stmt::Declare | Stmt::Shutdown)
                )
                && i == start
            {
                bump(
                    if s.quote_at_start { 62 } else { 50 },
                    "sqli.quote-select",
                    &mut best,
                );
            }
        }
        K::Comma if after_quote => {
            // `',(select ..))--`: breaking into a VALUES list.
            if t.get(i + 1).is_some_and(|x| x.k == K::LParen)
                && t.get(i + 2).is_some_and(|x| x.k == K::Stmt(Stmt::Select))
            {
                bump(85, "sqli.values-subquery", &mut best);
            } else if known_func(t.get(i + 1).unwrap_or(first)) {
                bump(70, "sqli.values-call", &mut best);
            }
        }
        _ => {
            if after_quote && s.terminal_comment && i + 1 >= t.len() && first.k == K::Ident {
                // `admin' aa--`: unusual; weak.
                bump(35, "sqli.quote-comment", &mut best);
            }
        }
    }
    best
}

/// Signals anywhere in the stream, independent of where the break is.
fn judge_anywhere(t: &[Tok], s: &Stream, bare: bool) -> (u32, &'static str) {
    let mut best: (u32, &'static str) = (0, "");
    let mut bump = |score: u32, rule: &'static str| {
        if score > best.0 {
            best = (score, rule);
        }
    };
    for i in 0..t.len() {
        let tok = &t[i];
        match tok.k {
            K::Union => {
                let mut j = i + 1;
                while t
                    .get(j)
                    .is_some_and(|x| matches!(x.text, "all" | "distinct") || x.k == K::LParen)
                {
                    j += 1;
                }
                if t.get(j).is_some_and(|x| x.k == K::Stmt(Stmt::Select)) {
                    let v = if t.get(j + 1).is_none() {
                        45
                    } else {
                        valid_statement(t, j)
                    };
                    bump(if v >= 40 { 92 } else { 50 }, "sqli.union");
                }
            }
            K::LParen if t.get(i + 1).is_some_and(|x| x.k == K::Stmt(Stmt::Select)) => {
                let v = valid_statement(t, i + 1);
                if v >= 40 {
                    bump(85, "sqli.subquery");
                }
            }
            K::Semi => {
                let v = valid_statement(t, i + 1);
                if v >= 60 {
                    bump(v, "sqli.stacked");
                }
            }
            K::Into
                if t.get(i + 1)
                    .is_some_and(|x| x.text == "outfile" || x.text == "dumpfile") =>
            {
                bump(90, "sqli.into-outfile");
            }
            K::Stmt(Stmt::Waitfor) | K::Stmt(Stmt::Exec) => {
                let v = valid_statement(t, i);
                if v >= 70 {
                    bump(v, "sqli.statement");
                }
            }
            K::Var if tok.text.starts_with("@@") && tok.text.len() > 3 => {
                bump(65, "sqli.system-variable");
            }
            K::Ident | K::Literal | K::Stmt(_) | K::CmpWord | K::Logic | K::Kw => {
                if tok.call {
                    let end = skip_group(t, i + 1);
                    let args = t.get(i + 2..end.saturating_sub(1)).unwrap_or(&[]);
                    let closed = end <= t.len() && t.get(end - 1).is_some_and(|x| x.k == K::RParen);
                    // `elt(1=1,1)`, `iif(3=3,1,1/0)`, `make_set(5=9,9)`: boolean probes.
                    let probe = args
                        .windows(3)
                        .any(|w| w[0].k == K::Num && w[1].k == K::Cmp && w[2].k == K::Num);
                    if probe && sql_args(args) {
                        bump(
                            if known_func(tok) || tok.text == "iif" || tok.text == "if" {
                                75
                            } else {
                                60
                            },
                            "sqli.boolean-probe",
                        );
                    }
                    let info = [
                        "version",
                        "database",
                        "user",
                        "current_user",
                        "system_user",
                        "schema",
                        "user_name",
                        "db_name",
                        "session_user",
                        "@@version",
                    ];
                    if known_func(tok) && args.iter().any(|x| x.call && info.contains(&x.text)) {
                        bump(75, "sqli.info-function");
                    }
                    if strong_func(tok) && sql_args(args) {
                        // `sleep(5)`, `benchmark(1e7,md5(1))`, `CURRENT_USER(`.
                        let numeric = args.iter().all(|x| {
                            matches!(
                                x.k,
                                K::Num
                                    | K::Comma
                                    | K::Op
                                    | K::Ident
                                    | K::LParen
                                    | K::RParen
                                    | K::Str { .. }
                                    | K::Var
                                    | K::Literal
                                    | K::Star
                            )
                        });
                        let score = if closed && numeric {
                            78
                        } else if args.is_empty() {
                            62
                        } else {
                            60
                        };
                        bump(score, "sqli.dangerous-function");
                    }
                }
                let bare_name = tok.text.trim_start_matches('`');
                if SYSTEM_OBJECT_SET.contains(bare_name)
                    || bare_name.starts_with("information_schema.")
                {
                    bump(70, "sqli.system-object");
                }
            }
            _ => {}
        }
    }
    // A SQL function opened at the end of the value: `concat (`, `user(`, `md5(`.
    if let Some(last_call) = t.iter().rposition(|x| x.call) {
        let tok = &t[last_call];
        if known_func(tok) && last_call + 2 == t.len() && t[last_call + 1].k == K::LParen {
            let lone = t[..last_call].iter().all(|x| x.k != K::Ident);
            bump(if lone { 62 } else { 50 }, "sqli.function-probe");
        }
    }
    for i in 0..t.len() {
        // PostgreSQL casts: `'..'::jsonb`, `password::int`.
        if t[i].text == "::" {
            let ty = t.get(i + 1).map(|x| x.text).unwrap_or("");
            let sql_type = matches!(
                ty,
                "int"
                    | "integer"
                    | "int4"
                    | "int8"
                    | "bigint"
                    | "smallint"
                    | "text"
                    | "varchar"
                    | "json"
                    | "jsonb"
                    | "numeric"
                    | "double"
                    | "float"
                    | "real"
                    | "bool"
                    | "boolean"
                    | "regclass"
                    | "oid"
                    | "bytea"
                    | "date"
                    | "timestamp"
                    | "uuid"
                    | "xml"
                    | "char"
                    | "inet"
            );
            let lhs = i.checked_sub(1).and_then(|x| t.get(x));
            if sql_type
                && lhs.is_some_and(|x| matches!(x.k, K::Str { .. } | K::Ident | K::RParen | K::Num))
            {
                bump(
                    if lhs.is_some_and(|x| matches!(x.k, K::Str { .. } | K::RParen)) {
                        72
                    } else {
                        64
                    },
                    "sqli.pg-cast",
                );
            }
        }
        // `1234 AS "alias" FROM`, `` `x` AS `y` from ``: a select-list tail.
        if t[i].text == "as" {
            let l = i.checked_sub(1).and_then(|x| t.get(x));
            let r = t.get(i + 1);
            let quoted = |x: Option<&Tok>| {
                x.is_some_and(|y| y.text.starts_with('`') || matches!(y.k, K::Str { .. }))
            };
            if (quoted(l) || l.is_some_and(|x| x.k == K::Num) || quoted(r))
                && (quoted(r) || quoted(l))
                && t.get(i + 2).is_some_and(|x| x.k == K::From)
                || (quoted(r) && t.get(i + 2).is_some_and(|x| x.k == K::From))
            {
                bump(66, "sqli.alias-from");
            }
        }
    }
    for i in 0..t.len() {
        // MySQL scientific-notation glue: `1.e(ascii)`, `1.e.tables`.
        let sci = t[i]
            .text
            .strip_suffix(".e")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()));
        if t[i].k == K::Num
            && sci
            && t.get(i + 1)
                .is_some_and(|x| matches!(x.k, K::LParen | K::Ident | K::Other))
        {
            bump(66, "sqli.scientific-glue");
        }
        // `CASE WHEN x THEN y`.
        if t[i].text == "case"
            && t.get(i + 2..)
                .unwrap_or(&[])
                .iter()
                .take(6)
                .any(|x| x.text == "then")
            && t.get(i + 1).is_some_and(|x| x.text == "when")
        {
            bump(64, "sqli.case-when");
        }
        // `if(1=`: a conditional probe.
        if t[i].text == "if"
            && t[i].call
            && t.get(i + 2).is_some_and(|x| x.k == K::Num)
            && t.get(i + 3).is_some_and(|x| x.k == K::Cmp)
        {
            bump(64, "sqli.boolean-probe");
        }
    }
    if bare {
        // `) like (`, `) or (`: closing the application's group and continuing.
        if t.first().is_some_and(|x| x.k == K::RParen)
            && t.get(1)
                .is_some_and(|x| matches!(x.k, K::Logic | K::CmpWord | K::Cmp))
        {
            bump(62, "sqli.paren-break");
        }
        // The whole value is one SQL function call with literal arguments: `lo_get(16400)`.
        if t.first().is_some_and(known_func) && skip_group(t, 1) == t.len() && t.len() >= 3 {
            let args = &t[2..t.len() - 1];
            if !args.is_empty()
                && args
                    .iter()
                    .all(|x| matches!(x.k, K::Num | K::Str { .. } | K::Comma | K::Op))
            {
                bump(62, "sqli.function-probe");
            }
        }
        // `, FIND_IN_SET('22', x)`: a list continued with a SQL call.
        if t.first().is_some_and(|x| x.k == K::Comma) && t.get(1).is_some_and(known_func) {
            bump(65, "sqli.list-call");
        }
        // `select pg_sleep`: a statement naming a dangerous function.
        if t.first().is_some_and(|x| x.k == K::Stmt(Stmt::Select))
            && t.get(1).is_some_and(|x| STRONG_FUNC_SET.contains(x.text))
        {
            bump(70, "sqli.statement");
        }
    }
    // `'x'!='y`: a literal comparison balanced so the application's quote closes it.
    if t.len() == 3
        && matches!(t[0].k, K::Str { closed: true })
        && t[1].k == K::Cmp
        && matches!(t[2].k, K::Str { closed: false })
    {
        bump(68, "sqli.quoted-tautology");
    }
    if s.exec_comment
        && t.iter()
            .any(|x| matches!(x.k, K::Stmt(_) | K::Union | K::From | K::Logic))
    {
        bump(75, "sqli.mysql-comment");
    }
    if bare {
        let lead = usize::from(
            t.first()
                .is_some_and(|x| matches!(x.k, K::Op | K::Other | K::Semi)),
        );
        if let Some(first) = t.get(lead) {
            if matches!(first.k, K::Stmt(_)) {
                let v = valid_statement(t, lead);
                if v >= 40 {
                    bump(v.saturating_sub(5), "sqli.statement");
                }
            }
        }
        // Inline comments used as whitespace between SQL words: `1/**/or/**/1`.
        if s.inline_comments >= 1
            && t.iter()
                .any(|x| matches!(x.k, K::Logic | K::Stmt(_) | K::Union))
        {
            let sqlish = t
                .iter()
                .filter(|x| !matches!(x.k, K::Ident | K::Other))
                .count();
            if sqlish * 2 >= t.len() && t.len() >= 3 {
                bump(62, "sqli.comment-obfuscation");
            }
        }
    }
    best
}

/// Counts facts that only SQL has in the tail from `start`: literal comparisons
/// (`1=1`, `'a'='a'`), calls of SQL functions, logic operators between terms, clause
/// keywords, statement separators followed by statements. Prose (three bare words in a
/// row) vetoes. Catches the long tail of shapes that the fixed rules above do not.
fn structure_score(t: &[Tok], start: usize, after_quote: bool, s: &Stream) -> (u32, &'static str) {
    let tail = t.get(start..).unwrap_or(&[]);
    if tail.is_empty() {
        return (0, "");
    }
    let mut facts = 0u32;
    let mut lit_cmp = false;
    let mut idents_in_row = 0;
    let mut idents = 0usize;
    for (i, tok) in tail.iter().enumerate() {
        match tok.k {
            K::Ident if !tok.call => {
                idents_in_row += 1;
                idents += 1;
                if idents_in_row >= 3 {
                    return (0, "");
                }
                continue;
            }
            K::Other => return (0, ""),
            K::Cmp => {
                let l = i.checked_sub(1).and_then(|x| tail.get(x));
                let r = tail.get(i + 1);
                let lit = |x: Option<&Tok>| {
                    x.is_some_and(|y| {
                        matches!(y.k, K::Num | K::Str { .. } | K::Literal)
                            || y.k == K::RParen
                            || y.call
                    })
                };
                if lit(l) && lit(r) {
                    lit_cmp = true;
                    facts += 2;
                }
            }
            K::Logic => facts += 1,
            K::Where | K::Clause | K::Union | K::From | K::Into => facts += 1,
            K::Stmt(_) => facts += 1,
            K::Semi
                if tail
                    .get(i + 1)
                    .is_some_and(|x| matches!(x.k, K::Stmt(_)) || x.call) =>
            {
                facts += 1;
            }
            _ if known_func(tok) => facts += 2,
            _ => {}
        }
        idents_in_row = 0;
    }
    if s.terminal_comment {
        facts += 1;
    }
    // Comparisons alone (`<3 <3 <3`) are not a query: something else must be SQL.
    let cmp_facts = tail
        .windows(3)
        .filter(|w| {
            w[1].k == K::Cmp
                && matches!(w[0].k, K::Num | K::Str { .. } | K::Literal | K::RParen)
                && matches!(w[2].k, K::Num | K::Str { .. } | K::Literal)
        })
        .count() as u32;
    if facts <= cmp_facts * 2 {
        return (0, "");
    }
    // Mostly bare words means text that happens to contain `=` or `and`.
    if idents * 3 > tail.len() {
        return (0, "");
    }
    match (after_quote, lit_cmp, facts) {
        (true, true, f) if f >= 4 => (85, "sqli.structure"),
        (true, _, f) if f >= 5 => (75, "sqli.structure"),
        (true, true, f) if f >= 3 => (70, "sqli.structure"),
        (false, true, f) if f >= 5 => (75, "sqli.structure"),
        (false, true, f) if f >= 4 => (65, "sqli.structure"),
        _ => (0, ""),
    }
}

/// Scans every operand position in a bare context for `operand LOGIC term` tails:
/// `1 or 1=1`, `x') and sleep(5)`.
fn judge_bare_chain(t: &[Tok], s: &Stream) -> (u32, &'static str) {
    let mut best: (u32, &'static str) = (0, "");
    // Injection appended after the genuine value: the first operand is the value.
    let mut i = 0;
    if t.first().is_some_and(|x| matches!(x.k, K::Logic | K::Not)) {
        let r = judge_tail(t, 0, false, s);
        if r.0 > best.0 {
            best = r;
        }
        return best;
    }
    if t.first()
        .is_some_and(|x| matches!(x.k, K::Clause | K::Union | K::Semi | K::Into))
    {
        return judge_tail(t, 0, false, s);
    }
    let mut guard = 0;
    while let Some((e, _, _)) = term(t, i) {
        i = e;
        guard += 1;
        if guard > 8 || t.get(i).map(|x| x.k) != Some(K::Comma) {
            break;
        }
        i += 1;
    }
    if i > 0 {
        let r = judge_tail(t, i, false, s);
        if r.0 > best.0 {
            best = r;
        }
        // `417652--`: a value followed only by a comment that cuts the query.
        if i >= t.len()
            && s.terminal_comment
            && !s.terminal_words
            && t.iter().all(|x| !matches!(x.k, K::Ident))
        {
            // Bare numbers before `--` are also how people write ranges and IDs (`1---`);
            // an expression in parentheses or with operators is not.
            let expr = t
                .iter()
                .any(|x| matches!(x.k, K::LParen | K::Logic | K::Cmp | K::Var) || x.call);
            best = best.max((if expr { 64 } else { 45 }, "sqli.value-comment"));
        }
    }
    best
}

/// Judges one value; pushes at most one finding.
/// A value that is nothing but a comparison between literals, `'a'='a'` or a chain like
/// `'{"a":2}' < '$.a' = 7` (JSON documents compared through JSON operators, which some
/// filters do not parse): in a numeric context it is a predicate the attacker controls.
/// Text does not consist of quoted literals joined by comparison operators.
fn literal_comparison(t: &[Tok]) -> (u32, &'static str) {
    let literal =
        |k: Option<&Tok>| k.is_some_and(|x| matches!(x.k, K::Str { closed: true } | K::Num));
    if !t
        .first()
        .is_some_and(|x| matches!(x.k, K::Str { closed: true }))
    {
        return (0, "");
    }
    let mut i = 1;
    let mut cmps = 0;
    let mut strings = 1;
    while t.get(i).is_some_and(|x| x.k == K::Cmp) {
        // `->`/`->>` and multi-character operators lex as several tokens.
        while t.get(i).is_some_and(|x| matches!(x.k, K::Cmp | K::Op)) {
            i += 1;
        }
        if !literal(t.get(i)) {
            return (0, "");
        }
        if matches!(t[i].k, K::Str { .. }) {
            strings += 1;
        }
        cmps += 1;
        i += 1;
    }
    if i != t.len() || cmps == 0 || strings < 2 {
        return (0, "");
    }
    (if cmps >= 2 { 75 } else { 62 }, "sqli.literal-comparison")
}

/// Judges one value; `lower` is `text` in ASCII lower case.
pub(crate) fn detect(text: &str, lower: &str, sink: &mut Sink) {
    if text.len() < 2 {
        return;
    }
    // Cheap prefilter: SQL injection needs punctuation or a SQL word boundary.
    let has_signal = text.len() >= 4
        || text.bytes().any(|c| {
            matches!(
                c,
                b'\''
                    | b'"'
                    | b'('
                    | b';'
                    | b'='
                    | b'-'
                    | b'#'
                    | b'/'
                    | b'|'
                    | b'&'
                    | b'@'
                    | b'<'
                    | b'>'
                    | b'`'
            )
        });
    if !has_signal {
        return;
    }
    let mut best = Strongest::NONE;
    // Bare / numeric context.
    let mut toks = Vec::new();
    lex(&mut toks, text, lower, None);
    let s = strip(toks);
    best.consider(literal_comparison(&s.t));
    best.consider(judge_anywhere(&s.t, &s, true));
    best.consider(judge_bare_chain(&s.t, &s));
    best.consider(structure_score(&s.t, 0, false, &s));
    let mut toks = s.t;
    // Quote contexts.
    for q in [b'\'', b'"', b'`'] {
        if !sink.feat.any(Feat::QUOTE | Feat::BACKTICK) || !text.as_bytes().contains(&q) {
            continue;
        }
        if !lex(&mut toks, text, lower, Some(q)) {
            continue;
        }
        let mut s = strip(std::mem::take(&mut toks));
        s.quote_at_start = text.trim_start().as_bytes().first() == Some(&q);
        s.quote_prefix_words = text
            .split(char::from(q))
            .next()
            .is_some_and(|p| p.trim().contains(' '));
        best.consider(judge_tail(&s.t, 0, true, &s));
        best.consider(structure_score(&s.t, 0, true, &s));
        let (a, rule) = judge_anywhere(&s.t, &s, false);
        best.consider((a, rule));
        toks = s.t;
    }
    best.report(Class::Sqli, text, sink);
}

#[cfg(test)]
mod tests;
