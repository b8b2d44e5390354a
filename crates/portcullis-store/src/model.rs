//! Identities, keys, audit events, and the inputs that create, change, filter and page them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::key::encode_base62;

/// Prefix of identity ids.
pub const IDENTITY_ID_PREFIX: &str = "idn_";
/// Prefix of key ids.
pub const KEY_ID_PREFIX: &str = "key_";
/// Length of the random base62 part of an id (16 characters, about 95 bits).
pub const ID_RANDOM_LEN: usize = 16;
/// Longest identity name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest scope or role.
pub const MAX_TAG_LEN: usize = 128;
/// Most scopes or roles on one identity or key.
pub const MAX_TAGS: usize = 100;
/// Largest metadata object, serialized as JSON.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Longest rate-limit or quota override string.
pub const MAX_OVERRIDE_LEN: usize = 64;
/// Longest actor name in the audit log.
pub const MAX_ACTOR_LEN: usize = 256;

/// A customer, service or user that owns keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// `idn_` followed by 16 base62 characters.
    pub id: String,
    /// Unique, human-chosen name (`acme`); never starts with `idn_`.
    pub name: String,
    /// Free-form JSON object.
    pub metadata: Value,
    /// Roles every key of this identity carries.
    pub roles: Vec<String>,
    /// Rate limit for this identity (e.g. `"100/s"`), interpreted by the rate limiter; same
    /// syntax as [`KeyRecord::rate_limit_override`].
    pub rate_limit_override: Option<String>,
    /// Quota for this identity (e.g. `"50000/month"`), interpreted by the rate limiter; same
    /// syntax as [`KeyRecord::quota_override`].
    pub quota_override: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// Input for [`Store::create_identity`](crate::Store::create_identity).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIdentity {
    /// Unique name.
    pub name: String,
    /// JSON object; `{}` when absent.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Rate limit for this identity (`"100/s"`); none when absent.
    #[serde(default)]
    pub rate_limit_override: Option<String>,
    /// Quota for this identity (`"1000/day"`); none when absent.
    #[serde(default)]
    pub quota_override: Option<String>,
}

impl NewIdentity {
    /// An identity with this name, no metadata, no roles and no overrides.
    pub fn named(name: impl Into<String>) -> NewIdentity {
        NewIdentity {
            name: name.into(),
            metadata: empty_object(),
            roles: Vec::new(),
            rate_limit_override: None,
            quota_override: None,
        }
    }
}

/// Changes to an identity; `None` leaves a field as it is, `Some(None)` clears an optional
/// one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityUpdate {
    /// New unique name.
    #[serde(default)]
    pub name: Option<String>,
    /// Replacement metadata object.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Replacement roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// New rate-limit override (`Some(None)`: none).
    #[serde(default, with = "double_option")]
    pub rate_limit_override: Option<Option<String>>,
    /// New quota override (`Some(None)`: none).
    #[serde(default, with = "double_option")]
    pub quota_override: Option<Option<String>>,
}

/// Where a key is in its life, computed from its times against a `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyStatus {
    /// Authenticates.
    Active,
    /// Replaced by a rotation; still authenticates until `until`.
    Rotating {
        /// End of the grace period (never after the key's own expiry).
        until: Timestamp,
    },
    /// Revoked; never authenticates again.
    Revoked {
        /// When it was revoked.
        at: Timestamp,
    },
    /// Past its expiry or its rotation grace; no longer authenticates.
    Expired,
}

impl KeyStatus {
    /// Whether a key in this status authenticates.
    pub fn is_usable(self) -> bool {
        matches!(self, KeyStatus::Active | KeyStatus::Rotating { .. })
    }

    /// The status without its data, for filters and messages.
    pub fn kind(self) -> KeyStatusKind {
        match self {
            KeyStatus::Active => KeyStatusKind::Active,
            KeyStatus::Rotating { .. } => KeyStatusKind::Rotating,
            KeyStatus::Revoked { .. } => KeyStatusKind::Revoked,
            KeyStatus::Expired => KeyStatusKind::Expired,
        }
    }
}

impl fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyStatus::Active => f.write_str("active"),
            KeyStatus::Rotating { until } => write!(f, "rotating until {until}"),
            KeyStatus::Revoked { at } => write!(f, "revoked since {at}"),
            KeyStatus::Expired => f.write_str("expired"),
        }
    }
}

/// A key status without its data: what [`KeyFilter::status`] selects on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatusKind {
    /// See [`KeyStatus::Active`].
    Active,
    /// See [`KeyStatus::Rotating`].
    Rotating,
    /// See [`KeyStatus::Revoked`].
    Revoked,
    /// See [`KeyStatus::Expired`].
    Expired,
}

impl FromStr for KeyStatusKind {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, StoreError> {
        match text {
            "active" => Ok(KeyStatusKind::Active),
            "rotating" => Ok(KeyStatusKind::Rotating),
            "revoked" => Ok(KeyStatusKind::Revoked),
            "expired" => Ok(KeyStatusKind::Expired),
            _ => Err(StoreError::invalid(
                "status",
                "must be one of active, rotating, revoked, expired",
            )),
        }
    }
}

/// A key as stored: everything but the secret, which is never stored (only its hash is, and
/// the hash is not part of this record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// `key_` followed by 16 base62 characters.
    pub id: String,
    /// Owner.
    pub identity_id: String,
    /// First 12 characters of the key (`pc_live_AbCd`), to recognise it.
    pub display_prefix: String,
    /// Environment from the key (`live`, `test`).
    pub env: String,
    /// Scopes granted.
    pub scopes: Vec<String>,
    /// Roles carried (in addition to the identity's).
    pub roles: Vec<String>,
    /// Free-form JSON object.
    pub metadata: Value,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was last changed by a lifecycle operation.
    pub updated_at: Timestamp,
    /// When it stops authenticating, if ever.
    pub expires_at: Option<Timestamp>,
    /// Latest use recorded by [`Store::record_usage`](crate::Store::record_usage).
    pub last_used_at: Option<Timestamp>,
    /// Requests recorded by [`Store::record_usage`](crate::Store::record_usage).
    pub request_count: i64,
    /// Status computed when the record was read; use [`KeyRecord::status_at`] for a fresh one.
    pub status: KeyStatus,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// End of the rotation grace, set when the key was rotated (already capped at
    /// `expires_at`).
    pub rotating_until: Option<Timestamp>,
    /// Per-key rate limit (e.g. `"10/s"`), interpreted by the rate limiter.
    pub rate_limit_override: Option<String>,
    /// Per-key quota (e.g. `"1000/day"`), interpreted by the rate limiter.
    pub quota_override: Option<String>,
    /// The key that replaced this one in a rotation.
    pub replaced_by: Option<String>,
}

impl KeyRecord {
    /// The status at `now`: revoked wins, then expiry (its own or the end of the rotation
    /// grace), then rotating, else active. Pure and cheap: an in-memory index calls it per
    /// request, since keys expire without any write to the store.
    pub fn status_at(&self, now: Timestamp) -> KeyStatus {
        status_at(self.revoked_at, self.expires_at, self.rotating_until, now)
    }

    /// Whether the key authenticates at `now`.
    pub fn is_usable_at(&self, now: Timestamp) -> bool {
        self.status_at(now).is_usable()
    }

    /// The last instant the key can authenticate (exclusive), if bounded.
    pub fn valid_until(&self) -> Option<Timestamp> {
        min_opt(self.expires_at, self.rotating_until)
    }
}

pub(crate) fn status_at(
    revoked_at: Option<Timestamp>,
    expires_at: Option<Timestamp>,
    rotating_until: Option<Timestamp>,
    now: Timestamp,
) -> KeyStatus {
    if let Some(at) = revoked_at {
        return KeyStatus::Revoked { at };
    }
    let end = min_opt(expires_at, rotating_until);
    if end.is_some_and(|end| now >= end) {
        return KeyStatus::Expired;
    }
    match (rotating_until, end) {
        (Some(_), Some(until)) => KeyStatus::Rotating { until },
        _ => KeyStatus::Active,
    }
}

fn min_opt(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Input for [`Store::create_key`](crate::Store::create_key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Owner: identity id or name.
    pub identity: String,
    /// Environment written into the key (`live`, `test`); `live` when absent.
    #[serde(default = "default_env")]
    pub env: String,
    /// Scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// JSON object; `{}` when absent.
    #[serde(default = "empty_object")]
    pub metadata: Value,
    /// Expiry; must be in the future.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Per-key rate limit.
    #[serde(default)]
    pub rate_limit_override: Option<String>,
    /// Per-key quota.
    #[serde(default)]
    pub quota_override: Option<String>,
}

impl NewKey {
    /// A `live` key for `identity` (id or name) with no scopes, roles, metadata or expiry.
    pub fn for_identity(identity: impl Into<String>) -> NewKey {
        NewKey {
            identity: identity.into(),
            env: default_env(),
            scopes: Vec::new(),
            roles: Vec::new(),
            metadata: empty_object(),
            expires_at: None,
            rate_limit_override: None,
            quota_override: None,
        }
    }
}

/// Changes to a key; `None` leaves a field as it is, `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyUpdate {
    /// Replacement scopes.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Replacement roles.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// Replacement metadata object.
    #[serde(default)]
    pub metadata: Option<Value>,
    /// New expiry (`Some(None)`: never expires). Must be in the future.
    #[serde(default, with = "double_option")]
    pub expires_at: Option<Option<Timestamp>>,
    /// New rate-limit override (`Some(None)`: none).
    #[serde(default, with = "double_option")]
    pub rate_limit_override: Option<Option<String>>,
    /// New quota override (`Some(None)`: none).
    #[serde(default, with = "double_option")]
    pub quota_override: Option<Option<String>>,
}

impl KeyUpdate {
    pub(crate) fn is_empty(&self) -> bool {
        self.scopes.is_none()
            && self.roles.is_none()
            && self.metadata.is_none()
            && self.expires_at.is_none()
            && self.rate_limit_override.is_none()
            && self.quota_override.is_none()
    }
}

/// The result of [`Store::rotate_key`](crate::Store::rotate_key).
#[derive(Debug)]
pub struct RotatedKey {
    /// The new key.
    pub key: KeyRecord,
    /// The new key's plaintext, to show once.
    pub plaintext: crate::SecretString,
    /// The old key, now [`KeyStatus::Rotating`] (or [`KeyStatus::Expired`] for a zero grace).
    pub previous: KeyRecord,
}

/// Which keys [`Store::list_keys`](crate::Store::list_keys) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFilter {
    /// Only keys of this identity (id or name).
    pub identity: Option<String>,
    /// Only keys in this status at the store clock's `now`.
    pub status: Option<KeyStatusKind>,
}

/// Who performed a lifecycle operation, and from where; recorded in its audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Who (`cli:alice`, `admin:key_…`, `system`).
    pub name: String,
    /// Client address, when the operation came over the network.
    pub source_ip: Option<IpAddr>,
}

impl Actor {
    /// An actor without a source address (CLI, system tasks).
    pub fn new(name: impl Into<String>) -> Actor {
        Actor {
            name: name.into(),
            source_ip: None,
        }
    }

    /// The same actor, seen from `ip`.
    pub fn from_ip(mut self, ip: IpAddr) -> Actor {
        self.source_ip = Some(ip);
        self
    }
}

/// One lifecycle event in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Increasing sequence number.
    pub id: i64,
    /// When it happened.
    pub at: Timestamp,
    /// Who did it.
    pub actor: String,
    /// What was done: `identity.create`, `identity.update`, `identity.delete`, `key.create`,
    /// `key.update`, `key.rotate`, `key.revoke`, `key.expire`.
    pub action: String,
    /// The id of the identity or key acted on.
    pub target: String,
    /// Where the request came from.
    pub source_ip: Option<String>,
    /// What changed (never secrets).
    pub detail: Value,
}

/// Which audit events [`Store::audit`](crate::Store::audit) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Only events by this actor.
    pub actor: Option<String>,
    /// Only this action.
    pub action: Option<String>,
    /// Only events about this identity or key id.
    pub target: Option<String>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events before this time.
    pub until: Option<Timestamp>,
}

/// Default page size.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_PAGE_LIMIT: u32 = 1000;

/// A page request: at most `limit` items after `cursor` (from a previous [`Paged`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// 1 to [`MAX_PAGE_LIMIT`].
    pub limit: u32,
    /// Where the previous page ended.
    pub cursor: Option<String>,
}

impl Default for Page {
    fn default() -> Page {
        Page {
            limit: DEFAULT_PAGE_LIMIT,
            cursor: None,
        }
    }
}

impl Page {
    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Page {
        Page {
            limit,
            cursor: None,
        }
    }

    /// The page of `limit` items after `cursor`.
    pub fn after(limit: u32, cursor: impl Into<String>) -> Page {
        Page {
            limit,
            cursor: Some(cursor.into()),
        }
    }

    pub(crate) fn checked_limit(&self) -> Result<i64, StoreError> {
        if (1..=MAX_PAGE_LIMIT).contains(&self.limit) {
            Ok(i64::from(self.limit))
        } else {
            Err(StoreError::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_LIMIT}"),
            ))
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paged<T> {
    /// The items, in a stable order (creation order; newest first for the audit log).
    pub items: Vec<T>,
    /// Pass to [`Page::after`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Requests counted in one quota bucket and calendar window, summed over every gateway that
/// writes to the store (see [`Store::add_quota_usage`](crate::Store::add_quota_usage)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaUsage {
    /// The bucket, as the rate limiter names it.
    pub bucket: String,
    /// Start of the window, Unix milliseconds (UTC).
    pub window_start: i64,
    /// Requests counted in this window.
    pub used: u64,
}

/// Usage of one key, accumulated by the gateway and written in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The key.
    pub key_id: String,
    /// Requests since the last batch.
    pub count: u64,
    /// Latest use in the batch.
    pub last_used: Timestamp,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn default_env() -> String {
    "live".to_owned()
}

pub(crate) fn new_id(prefix: &str) -> String {
    let mut random = [0u8; 16];
    rand::rng().fill_bytes(&mut random);
    // 16 base62 digits hold 95 bits; drop the rest of the 128.
    let value = u128::from_le_bytes(random) % 62u128.pow(ID_RANDOM_LEN as u32);
    format!("{prefix}{}", encode_base62(value, ID_RANDOM_LEN))
}

pub(crate) fn is_id(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == ID_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

pub(crate) fn validate_name(field: &str, name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(StoreError::invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} characters"),
        ));
    }
    if name.trim() != name {
        return Err(StoreError::invalid(
            field,
            "must not start or end with whitespace",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    if name.starts_with(IDENTITY_ID_PREFIX) {
        return Err(StoreError::invalid(
            field,
            format!("must not start with {IDENTITY_ID_PREFIX:?} (reserved for ids)"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_tags(field: &str, tags: &[String]) -> Result<(), StoreError> {
    if tags.len() > MAX_TAGS {
        return Err(StoreError::invalid(
            field,
            format!("at most {MAX_TAGS} entries"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || "_.:*/-".contains(c);
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || !tag.chars().all(ok_char) {
            return Err(StoreError::invalid(
                format!("{field}[{i}]"),
                format!("must be 1 to {MAX_TAG_LEN} characters of A-Z a-z 0-9 _ . : * / -"),
            ));
        }
        if tags[..i].contains(tag) {
            return Err(StoreError::invalid(
                format!("{field}[{i}]"),
                "duplicate entry",
            ));
        }
    }
    Ok(())
}

pub(crate) fn validate_metadata(field: &str, metadata: &Value) -> Result<String, StoreError> {
    if !metadata.is_object() {
        return Err(StoreError::invalid(field, "must be a JSON object"));
    }
    let text = metadata.to_string();
    if text.len() > MAX_METADATA_BYTES {
        return Err(StoreError::invalid(
            field,
            format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"),
        ));
    }
    Ok(text)
}

/// What an override field holds, and so which parser checks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OverrideKind {
    /// A [`portcullis_limit::Rate`]: `100/s`, `1000/h`.
    Rate,
    /// A [`portcullis_limit::Quota`]: `1000/day`, `50000/month`.
    Quota,
}

/// Refuses an override the rate limiter could not parse, so a bad value is caught when it is
/// written (400 from the admin API, an error from the CLI), not when a gateway loads it.
/// Length and character set are checked first: the parsers quote the text in their messages,
/// which end up in API responses and logs.
pub(crate) fn validate_override(
    field: &str,
    kind: OverrideKind,
    value: Option<&str>,
) -> Result<(), StoreError> {
    let Some(text) = value else {
        return Ok(());
    };
    if text.is_empty()
        || text.len() > MAX_OVERRIDE_LEN
        || !text.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(StoreError::invalid(
            field,
            format!("must be 1 to {MAX_OVERRIDE_LEN} printable ASCII characters"),
        ));
    }
    let parsed = match kind {
        OverrideKind::Rate => text.parse::<portcullis_limit::Rate>().map(|_| ()),
        OverrideKind::Quota => text.parse::<portcullis_limit::Quota>().map(|_| ()),
    };
    parsed.map_err(|err| StoreError::invalid(field, err.to_string()))
}

/// Checks a rate-limit and a quota override, in that order (see [`validate_override`]).
/// The value an update field sets, if it sets one (`Some(None)` clears: no value to check).
pub(crate) fn new_value(field: &Option<Option<String>>) -> Option<&str> {
    field.as_ref().and_then(Option::as_deref)
}

pub(crate) fn validate_overrides(
    rate_limit_override: Option<&str>,
    quota_override: Option<&str>,
) -> Result<(), StoreError> {
    validate_override(
        "rate_limit_override",
        OverrideKind::Rate,
        rate_limit_override,
    )?;
    validate_override("quota_override", OverrideKind::Quota, quota_override)
}

pub(crate) fn validate_actor(actor: &Actor) -> Result<(), StoreError> {
    if actor.name.is_empty()
        || actor.name.len() > MAX_ACTOR_LEN
        || actor.name.chars().any(char::is_control)
    {
        return Err(StoreError::invalid(
            "actor",
            format!("must be 1 to {MAX_ACTOR_LEN} bytes without control characters"),
        ));
    }
    Ok(())
}

/// Serde for `Option<Option<T>>`: absent → `None`, `null` → `Some(None)`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).unwrap()
    }

    #[test]
    fn status_is_computed_from_times() {
        let now = t(1_000_000);
        let later = now.saturating_add(Duration::from_secs(60));
        let earlier = now.saturating_sub(Duration::from_secs(60));
        assert_eq!(status_at(None, None, None, now), KeyStatus::Active);
        assert_eq!(status_at(None, Some(later), None, now), KeyStatus::Active);
        assert_eq!(status_at(None, Some(now), None, now), KeyStatus::Expired);
        assert_eq!(
            status_at(None, Some(earlier), None, now),
            KeyStatus::Expired
        );
        assert_eq!(
            status_at(None, None, Some(later), now),
            KeyStatus::Rotating { until: later }
        );
        // The grace never outlives the key's own expiry.
        let sooner = now.saturating_add(Duration::from_secs(10));
        assert_eq!(
            status_at(None, Some(sooner), Some(later), now),
            KeyStatus::Rotating { until: sooner }
        );
        assert_eq!(
            status_at(None, None, Some(earlier), now),
            KeyStatus::Expired
        );
        assert_eq!(
            status_at(Some(earlier), Some(later), Some(later), now),
            KeyStatus::Revoked { at: earlier }
        );
    }

    #[test]
    fn ids_have_prefix_and_fixed_width() {
        let id = new_id(KEY_ID_PREFIX);
        assert!(is_id(&id, KEY_ID_PREFIX), "{id}");
        assert_eq!(id.len(), 4 + ID_RANDOM_LEN);
        assert!(!is_id(&id, IDENTITY_ID_PREFIX));
        assert!(!is_id("key_short", KEY_ID_PREFIX));
    }

    #[test]
    fn key_update_json_distinguishes_absent_from_null() {
        let u: KeyUpdate = serde_json::from_str(r#"{"expires_at": null}"#).unwrap();
        assert_eq!(u.expires_at, Some(None));
        let u: KeyUpdate = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(u.expires_at, None);
        assert!(serde_json::from_str::<KeyUpdate>(r#"{"secret": 1}"#).is_err());
    }

    #[test]
    fn status_serializes_with_a_tag() {
        let json = serde_json::to_value(KeyStatus::Rotating { until: t(0) }).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"state": "rotating", "until": "1970-01-01T00:00:00.000Z"})
        );
        assert_eq!(
            serde_json::to_value(KeyStatus::Active).unwrap(),
            serde_json::json!({"state": "active"})
        );
    }

    #[test]
    fn validation_names_the_field() {
        let err = validate_tags("scopes", &["ok".into(), "bad scope".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid scopes[1]: must be 1 to 128 characters of A-Z a-z 0-9 _ . : * / -"
        );
        assert!(validate_name("name", "idn_x").is_err());
        assert!(validate_name("name", " acme").is_err());
        assert!(validate_name("name", "acme corp").is_ok());
        assert!(validate_metadata("metadata", &serde_json::json!([1])).is_err());
    }

    #[test]
    fn overrides_are_parsed_by_the_rate_limiter() {
        for good in ["100/s", "1000/h", "5 / min", "10/day"] {
            assert!(
                validate_override("rate_limit_override", OverrideKind::Rate, Some(good)).is_ok(),
                "{good}"
            );
        }
        for good in ["1000/day", "50000/month", "1/d"] {
            assert!(
                validate_override("quota_override", OverrideKind::Quota, Some(good)).is_ok(),
                "{good}"
            );
        }
        assert!(validate_override("quota_override", OverrideKind::Quota, None).is_ok());
        let err = validate_override("rate_limit_override", OverrideKind::Rate, Some("10/week"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid rate_limit_override: unknown rate unit \"week\" (use s, m, h or d)"
        );
        // A rate is not a quota: the calendar periods are day and month only.
        let err =
            validate_override("quota_override", OverrideKind::Quota, Some("5/s")).unwrap_err();
        assert!(
            matches!(&err, StoreError::Invalid { field, reason }
                if field == "quota_override" && reason.contains("unknown quota period")),
            "{err}"
        );
        // Length and characters are checked before the parser quotes the text back.
        let long = format!("{}/s", "1".repeat(80));
        let err =
            validate_override("rate_limit_override", OverrideKind::Rate, Some(&long)).unwrap_err();
        assert!(err.to_string().contains("printable ASCII"), "{err}");
        let err = validate_override("rate_limit_override", OverrideKind::Rate, Some("1\n/s"))
            .unwrap_err();
        assert!(err.to_string().contains("printable ASCII"), "{err}");
    }

    #[test]
    fn identity_update_json_clears_overrides_with_null() {
        let u: IdentityUpdate = serde_json::from_str(r#"{"quota_override": null}"#).unwrap();
        assert_eq!(u.quota_override, Some(None));
        assert_eq!(u.rate_limit_override, None);
        let u: IdentityUpdate =
            serde_json::from_str(r#"{"rate_limit_override": "100/s"}"#).unwrap();
        assert_eq!(u.rate_limit_override, Some(Some("100/s".into())));
        let new: NewIdentity = serde_json::from_str(r#"{"name": "acme"}"#).unwrap();
        assert_eq!(new, NewIdentity::named("acme"));
    }
}
