//! The Portcullis token store: API key format and hashing, identities, keys and the audit log,
//! on SQLite (embedded default, WAL) or PostgreSQL (several nodes), behind one [`Store`].
//!
//! - [`key`]: key format, generation, parsing and peppered hashing. No I/O.
//! - [`model`]: identities, keys, audit events and the inputs that create or change them.
//! - [`Store`]: lifecycle operations, each one transaction that also writes its audit event
//!   and bumps the change counter; change notification for in-memory key indexes; the quota
//!   counters gateways share.
//! - [`Clock`]: injected time, so expiry and rotation grace are testable without sleeping.

#![forbid(unsafe_code)]

pub mod clock;
pub mod error;
pub mod key;
pub mod model;
mod secret;
mod store;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp, TimestampParseError};
pub use error::{ErrorKind, StoreError};
pub use key::{ApiKey, KeyFormatError, KeyHash, KeyHasher, ParsedKey, PepperTooShort};
pub use model::{
    Actor, AuditEvent, AuditFilter, Identity, IdentityUpdate, KeyFilter, KeyRecord, KeyStatus,
    KeyStatusKind, KeyUpdate, NewIdentity, NewKey, Page, Paged, QuotaUsage, RotatedKey,
    UsageRecord,
};
pub use secret::SecretString;
pub use store::{
    parse_tags, Backend, IndexRow, IndexScan, IndexVisitor, Store, MAX_ROTATION_GRACE,
    NOTIFY_CHANNEL,
};
