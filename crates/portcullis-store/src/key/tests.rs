#![allow(clippy::unwrap_used)]

use super::*;

fn fresh(env: &str) -> String {
    ApiKey::generate(env)
        .unwrap()
        .into_plaintext()
        .into_exposed()
}

/// Rebuilds a key with a correct checksum around an arbitrary body (`pc_<env>_<secret>`).
fn with_checksum(body: &str) -> String {
    let sum = checksum(body);
    format!("{body}_{}", std::str::from_utf8(&sum).unwrap())
}

#[test]
fn generated_keys_parse_and_have_the_documented_shape() {
    for env in ["live", "test", "a", "abcdefgh"] {
        let key = fresh(env);
        assert_eq!(key.len(), key_len(env.len()));
        let parsed = parse(&key).unwrap();
        assert_eq!(parsed.env(), env);
        assert_eq!(parsed.display_prefix(), &key[..12]);
        assert!(key.starts_with(&format!("pc_{env}_")));
        let parts: Vec<&str> = key.split('_').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[2].len(), SECRET_LEN);
        assert_eq!(parts[3].len(), CHECKSUM_LEN);
    }
}

#[test]
fn generated_keys_differ() {
    let keys: std::collections::HashSet<String> = (0..1000).map(|_| fresh("live")).collect();
    assert_eq!(keys.len(), 1000);
}

#[test]
fn base62_is_fixed_width() {
    assert_eq!(encode_base62(0, 22), "0".repeat(22));
    assert_eq!(encode_base62(61, 3), "00z");
    assert_eq!(encode_base62(62, 3), "010");
    // 2^128 - 1 fits in 22 base62 digits.
    assert_eq!(encode_base62(u128::MAX, 22).len(), 22);
    assert_ne!(&encode_base62(u128::MAX, 22)[..1], "0");
}

#[test]
fn malformed_keys_are_refused_with_a_precise_error() {
    let good = fresh("live");
    let secret = &good[8..30];
    let mut bad_sum = good.clone().into_bytes();
    let last = bad_sum.len() - 1;
    bad_sum[last] = if bad_sum[last] == b'0' { b'1' } else { b'0' };
    let bad_sum = String::from_utf8(bad_sum).unwrap();
    let mut flipped = good.clone().into_bytes();
    flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();

    let ten_kb = format!("pc_live_{}", "A".repeat(10 * 1024));
    let cases: Vec<(&str, String, KeyFormatError)> = vec![
        ("bad checksum", bad_sum, KeyFormatError::BadChecksum),
        (
            "one secret char changed",
            flipped,
            KeyFormatError::BadChecksum,
        ),
        (
            "wrong prefix",
            good.replacen("pc_", "pk_", 1),
            KeyFormatError::WrongPrefix,
        ),
        (
            "upper-case prefix",
            good.replacen("pc_", "PC_", 1),
            KeyFormatError::WrongPrefix,
        ),
        ("empty", String::new(), KeyFormatError::WrongPrefix),
        (
            "bearer word kept",
            format!("Bearer {good}"),
            KeyFormatError::WrongPrefix,
        ),
        (
            "10 kB",
            ten_kb.clone(),
            KeyFormatError::TooLong { len: ten_kb.len() },
        ),
        (
            "129 bytes",
            "p".repeat(129),
            KeyFormatError::TooLong { len: 129 },
        ),
        (
            "non-ASCII",
            format!("pc_live_{}é_{}", &secret[..21], &good[31..]),
            KeyFormatError::NonAscii { offset: 29 },
        ),
        (
            "Cyrillic look-alike in prefix",
            good.replacen('c', "с", 1),
            KeyFormatError::NonAscii { offset: 1 },
        ),
        (
            "upper-case env",
            with_checksum(&format!("pc_LIVE_{secret}")),
            KeyFormatError::BadEnvironment,
        ),
        (
            "env too long",
            with_checksum(&format!("pc_abcdefghi_{secret}")),
            KeyFormatError::BadEnvironment,
        ),
        (
            "empty env",
            with_checksum(&format!("pc__{secret}")),
            KeyFormatError::BadEnvironment,
        ),
        (
            "digit in env",
            with_checksum(&format!("pc_l1ve_{secret}")),
            KeyFormatError::BadEnvironment,
        ),
        (
            "no env separator",
            "pc_live".to_owned(),
            KeyFormatError::BadEnvironment,
        ),
        (
            "truncated",
            good[..good.len() - 1].to_owned(),
            KeyFormatError::WrongLength {
                actual: 36,
                expected: 37,
                env_len: 4,
            },
        ),
        (
            "trailing newline",
            format!("{good}\n"),
            KeyFormatError::WrongLength {
                actual: 38,
                expected: 37,
                env_len: 4,
            },
        ),
        (
            "secret with a dash",
            format!("pc_live_{}-_{}", &secret[..21], &good[31..]),
            KeyFormatError::NonBase62 { offset: 29 },
        ),
        (
            "space inside",
            format!("pc_live_{} _{}", &secret[..21], &good[31..]),
            KeyFormatError::NonBase62 { offset: 29 },
        ),
        (
            "separator replaced",
            format!("pc_live_{secret}-{}", &good[31..]),
            KeyFormatError::MissingSeparator { offset: 30 },
        ),
    ];
    for (name, input, expected) in cases {
        assert_eq!(parse(&input).map(|_| ()), Err(expected), "case {name:?}");
    }
}

#[test]
fn errors_never_echo_the_input() {
    let good = fresh("live");
    let truncated = &good[..good.len() - 1];
    let err = parse(truncated).unwrap_err().to_string();
    assert!(!err.contains(&good[8..20]), "{err}");
    assert_eq!(
        err,
        "key is 36 characters long; a key with a 4-letter environment is 37 characters"
    );
}

#[test]
fn parsed_key_debug_shows_only_the_prefix() {
    let key = ApiKey::generate("live").unwrap();
    let debug = format!("{:?} {:?}", key.parsed(), key);
    assert!(!debug.contains(&key.plaintext().expose()[12..]), "{debug}");
    assert!(debug.contains(key.parsed().display_prefix()));
}

#[test]
fn generate_rejects_bad_envs() {
    for env in ["", "LIVE", "toolongenv", "li_ve", "lïve"] {
        assert_eq!(
            ApiKey::generate(env).map(|_| ()),
            Err(KeyFormatError::BadEnvironment),
            "{env:?}"
        );
    }
}

#[test]
fn hasher_is_keyed_and_deterministic() {
    assert_eq!(
        KeyHasher::new(b"short").map(|_| ()),
        Err(PepperTooShort { len: 5 })
    );
    let a = KeyHasher::new(b"0123456789abcdef").unwrap();
    let b = KeyHasher::new(b"0123456789abcdeg").unwrap();
    let key = ApiKey::generate("test").unwrap();
    assert_eq!(a.hash(&key.parsed()), a.hash(&key.parsed()));
    assert_ne!(a.hash(&key.parsed()), b.hash(&key.parsed()));
    assert!(!format!("{a:?}").contains("0123"));
}

#[test]
fn checksum_and_hash_match_independent_implementations() {
    // Key built with Python's zlib.crc32; hash from
    // `printf %s KEY | openssl dgst -sha256 -hmac 0123456789abcdef`.
    let key = "pc_test_0000000000000000000000_3NvoGS";
    let parsed = parse(key).unwrap();
    let hasher = KeyHasher::new(b"0123456789abcdef").unwrap();
    let hex: String = hasher
        .hash(&parsed)
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "54aca716f048b1f04f1ee32bbefb7d897a80c5d22e20c65f6585f8b826e38c6f"
    );
}

#[test]
fn constant_time_eq_compares() {
    assert!(constant_time_eq(b"abc", b"abc"));
    assert!(!constant_time_eq(b"abc", b"abd"));
    assert!(!constant_time_eq(b"abc", b"abcd"));
}
