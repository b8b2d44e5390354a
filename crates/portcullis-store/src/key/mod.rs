//! API key format, generation, parsing and hashing. No I/O.
//!
//! A key is `pc_<env>_<secret>_<checksum>`:
//!
//! - `pc_` lets secret scanners match leaked keys;
//! - `<env>` is 1 to 8 lowercase ASCII letters (`live`, `test`, …);
//! - `<secret>` is 128 random bits in base62, always 22 characters (zero-padded);
//! - `<checksum>` is the CRC32 of everything before its separator (`pc_<env>_<secret>`), in
//!   base62, always 6 characters.
//!
//! [`parse`] rejects malformed input (wrong prefix, bad environment, wrong length, non-base62,
//! non-ASCII, oversized, bad checksum) before any lookup, without allocating and without ever
//! echoing the input in its error. The store keeps only [`KeyHasher::hash`]:
//! HMAC-SHA-256 under a server pepper, so a stolen database does not yield usable keys and
//! cannot be brute-forced offline without the pepper.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::SecretString;

#[cfg(test)]
mod tests;

/// The fixed prefix every key starts with.
pub const KEY_PREFIX: &str = "pc_";
/// Length of the base62 secret part (128 bits need 22 base62 digits).
pub const SECRET_LEN: usize = 22;
/// Length of the base62 CRC32 checksum part (32 bits need 6 base62 digits).
pub const CHECKSUM_LEN: usize = 6;
/// Longest accepted environment name.
pub const MAX_ENV_LEN: usize = 8;
/// Inputs longer than this are refused before anything else is looked at.
pub const MAX_INPUT_LEN: usize = 128;
/// Length of the display prefix stored beside the hash (e.g. `pc_live_AbCd`).
pub const DISPLAY_PREFIX_LEN: usize = 12;
/// Shortest pepper [`KeyHasher::new`] accepts, in bytes.
pub const MIN_PEPPER_LEN: usize = 16;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a string is not a well-formed key. Messages name the position or length that is wrong
/// and never repeat the input, which may be a real key pasted in the wrong place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    /// Longer than [`MAX_INPUT_LEN`] bytes; checked first so oversized input costs nothing.
    #[error("key is {len} bytes long; keys are at most {MAX_INPUT_LEN} bytes")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
    },
    /// Contains a byte outside ASCII.
    #[error("key contains a non-ASCII character at byte {offset}")]
    NonAscii {
        /// Byte offset of the first non-ASCII byte.
        offset: usize,
    },
    /// Does not start with `pc_`.
    #[error("key does not start with \"pc_\"")]
    WrongPrefix,
    /// The environment after `pc_` is not 1 to 8 lowercase ASCII letters followed by `_`.
    #[error("key environment must be 1 to {MAX_ENV_LEN} lowercase ASCII letters followed by \"_\" (as in pc_live_...)")]
    BadEnvironment,
    /// The overall length does not match the environment's length.
    #[error("key is {actual} characters long; a key with a {env_len}-letter environment is {expected} characters")]
    WrongLength {
        /// Length of the input.
        actual: usize,
        /// Length a key with this environment has.
        expected: usize,
        /// Length of the environment found in the input.
        env_len: usize,
    },
    /// A character of the secret or checksum part is not base62 (`0-9A-Za-z`).
    #[error("key has a character that is not base62 (0-9, A-Z, a-z) at offset {offset}")]
    NonBase62 {
        /// Byte offset of the offending character.
        offset: usize,
    },
    /// The `_` between secret and checksum is missing.
    #[error("key has no \"_\" separator before its checksum at offset {offset}")]
    MissingSeparator {
        /// Byte offset where the separator was expected.
        offset: usize,
    },
    /// The checksum does not match: a typo, a truncated copy, or a made-up key.
    #[error("key checksum does not match (mistyped or truncated key)")]
    BadChecksum,
}

/// A syntactically valid key, borrowed from the input (parsing does not allocate). Its
/// `Debug` shows only the display prefix.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    key: &'a str,
    env_len: usize,
}

impl<'a> ParsedKey<'a> {
    /// The environment (`live`, `test`, …).
    pub fn env(&self) -> &'a str {
        &self.key[KEY_PREFIX.len()..KEY_PREFIX.len() + self.env_len]
    }

    /// The first [`DISPLAY_PREFIX_LEN`] characters, safe to show and store (`pc_live_AbCd`).
    pub fn display_prefix(&self) -> &'a str {
        &self.key[..DISPLAY_PREFIX_LEN]
    }

    /// The whole key. Secret: call sites are easy to audit (grep for `expose`).
    pub fn expose(&self) -> &'a str {
        self.key
    }
}

impl fmt::Debug for ParsedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedKey")
            .field("display_prefix", &self.display_prefix())
            .finish_non_exhaustive()
    }
}

/// Checks the format of `input` without any lookup. Cheap checks come first: length before
/// anything, then ASCII, prefix, environment, length, alphabet, and the checksum last.
pub fn parse(input: &str) -> Result<ParsedKey<'_>, KeyFormatError> {
    let bytes = input.as_bytes();
    if bytes.len() > MAX_INPUT_LEN {
        return Err(KeyFormatError::TooLong { len: bytes.len() });
    }
    if let Some(offset) = bytes.iter().position(|b| !b.is_ascii()) {
        return Err(KeyFormatError::NonAscii { offset });
    }
    let Some(rest) = input.strip_prefix(KEY_PREFIX) else {
        return Err(KeyFormatError::WrongPrefix);
    };
    let env_len = rest
        .bytes()
        .take(MAX_ENV_LEN + 1)
        .position(|b| b == b'_')
        .ok_or(KeyFormatError::BadEnvironment)?;
    if env_len == 0 || !rest[..env_len].bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(KeyFormatError::BadEnvironment);
    }
    let expected = key_len(env_len);
    if bytes.len() != expected {
        return Err(KeyFormatError::WrongLength {
            actual: bytes.len(),
            expected,
            env_len,
        });
    }
    let secret_start = KEY_PREFIX.len() + env_len + 1;
    let separator = secret_start + SECRET_LEN;
    for (offset, &b) in bytes.iter().enumerate().skip(secret_start) {
        if offset == separator {
            if b != b'_' {
                return Err(KeyFormatError::MissingSeparator { offset });
            }
        } else if !b.is_ascii_alphanumeric() {
            return Err(KeyFormatError::NonBase62 { offset });
        }
    }
    let expected_checksum = checksum(&input[..separator]);
    if bytes[separator + 1..] != expected_checksum {
        return Err(KeyFormatError::BadChecksum);
    }
    Ok(ParsedKey {
        key: input,
        env_len,
    })
}

/// Checks an environment name: 1 to [`MAX_ENV_LEN`] lowercase ASCII letters.
pub fn validate_env(env: &str) -> Result<(), KeyFormatError> {
    if (1..=MAX_ENV_LEN).contains(&env.len()) && env.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(KeyFormatError::BadEnvironment)
    }
}

/// A freshly generated key. The plaintext is returned to the caller once and never stored.
#[derive(Debug)]
pub struct ApiKey {
    plaintext: SecretString,
    env_len: usize,
}

impl ApiKey {
    /// Generates a key for `env` from 128 bits of the thread-local CSPRNG (ChaCha, seeded
    /// from the OS).
    pub fn generate(env: &str) -> Result<ApiKey, KeyFormatError> {
        validate_env(env)?;
        let mut random = [0u8; 16];
        rand::rng().fill_bytes(&mut random);
        let secret = encode_base62(u128::from_le_bytes(random), SECRET_LEN);
        let mut key = String::with_capacity(key_len(env.len()));
        key.push_str(KEY_PREFIX);
        key.push_str(env);
        key.push('_');
        key.push_str(&secret);
        let sum = checksum(&key);
        key.push('_');
        // `checksum` yields base62 ASCII only.
        key.extend(sum.iter().map(|&b| char::from(b)));
        Ok(ApiKey {
            plaintext: SecretString::new(key),
            env_len: env.len(),
        })
    }

    /// The key as a [`ParsedKey`] (it is well-formed by construction).
    pub fn parsed(&self) -> ParsedKey<'_> {
        ParsedKey {
            key: self.plaintext.expose(),
            env_len: self.env_len,
        }
    }

    /// The plaintext, to show once.
    pub fn plaintext(&self) -> &SecretString {
        &self.plaintext
    }

    /// Consumes the key, returning the plaintext.
    pub fn into_plaintext(self) -> SecretString {
        self.plaintext
    }
}

/// The stored form of a key: HMAC-SHA-256(pepper, key). Equality is constant-time.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// From stored bytes; `None` unless exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<KeyHash> {
        <[u8; 32]>::try_from(bytes).ok().map(KeyHash)
    }
}

impl PartialEq for KeyHash {
    fn eq(&self, other: &KeyHash) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell hashes apart in a log, not enough to matter.
        write!(f, "KeyHash(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

/// The pepper is shorter than [`MIN_PEPPER_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pepper is {len} bytes; it must be at least {MIN_PEPPER_LEN} bytes of secret random data")]
pub struct PepperTooShort {
    /// Length of the pepper given.
    pub len: usize,
}

/// Computes [`KeyHash`]es under the server pepper. `Debug` never shows the pepper.
#[derive(Clone)]
pub struct KeyHasher {
    // Keyed once: cloning the initialised state skips re-hashing the pepper per key.
    mac: Hmac<Sha256>,
}

impl KeyHasher {
    /// A hasher keyed with `pepper` (at least [`MIN_PEPPER_LEN`] bytes).
    pub fn new(pepper: &[u8]) -> Result<KeyHasher, PepperTooShort> {
        if pepper.len() < MIN_PEPPER_LEN {
            return Err(PepperTooShort { len: pepper.len() });
        }
        // HMAC accepts keys of any length; the error case cannot happen.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper)
            .map_err(|_| PepperTooShort { len: pepper.len() })?;
        Ok(KeyHasher { mac })
    }

    /// HMAC-SHA-256(pepper, key). Taking a [`ParsedKey`] means garbage never reaches the hash.
    pub fn hash(&self, key: &ParsedKey<'_>) -> KeyHash {
        let mut mac = self.mac.clone();
        mac.update(key.expose().as_bytes());
        KeyHash(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher { pepper: [redacted] }")
    }
}

/// Compares two byte strings in time independent of their contents (the length is not
/// secret). Use it for any comparison involving key material.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

fn key_len(env_len: usize) -> usize {
    KEY_PREFIX.len() + env_len + 1 + SECRET_LEN + 1 + CHECKSUM_LEN
}

fn checksum(text: &str) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    let mut value = crc32fast::hash(text.as_bytes());
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out
}

/// `value` in base62, most significant digit first, zero-padded to `width`.
pub(crate) fn encode_base62(mut value: u128, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    digits.into_iter().map(char::from).collect()
}
