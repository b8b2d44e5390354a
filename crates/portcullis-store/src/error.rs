//! Store errors, with the one classification the admin API and CLI map to status codes.

use crate::model::KeyStatus;

/// How a caller should treat a [`StoreError`]; the admin API maps these to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: 400.
    Invalid,
    /// No such identity or key: 404.
    NotFound,
    /// The request conflicts with the current state (duplicate name, identity still has
    /// usable keys, key already revoked): 409.
    Conflict,
    /// The database failed or holds something this version cannot read: 500.
    Internal,
}

/// Everything the store can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A field failed validation.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field (`name`, `scopes[2]`, `expires_at`, …).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A pagination cursor that this store did not hand out.
    #[error("invalid pagination cursor")]
    InvalidCursor,
    /// No identity with this id or name.
    #[error("identity {0:?} not found")]
    IdentityNotFound(String),
    /// No key with this id.
    #[error("key {0:?} not found")]
    KeyNotFound(String),
    /// Another identity already has this name.
    #[error("an identity named {0:?} already exists")]
    DuplicateIdentityName(String),
    /// An identity cannot be deleted while it owns keys that still authenticate.
    #[error("identity {id:?} still has {count} active or rotating key(s); revoke them first")]
    IdentityHasActiveKeys {
        /// The identity's id.
        id: String,
        /// How many of its keys are active or rotating.
        count: i64,
    },
    /// The operation is not possible in the key's current status (rotating a revoked key,
    /// revoking twice, …).
    #[error("key {id:?} is {status}; cannot {operation} it")]
    KeyState {
        /// The key's id.
        id: String,
        /// Its status when the operation was attempted.
        status: KeyStatus,
        /// What was attempted (`rotate`, `revoke`, `update`).
        operation: &'static str,
    },
    /// The store URL is neither `sqlite:` nor `postgres:`/`postgresql:`.
    #[error(
        "unsupported store URL scheme {0:?}; use sqlite://PATH, sqlite::memory: or postgres://..."
    )]
    UnsupportedUrl(String),
    /// The database was migrated by a newer Portcullis than this one.
    #[error("database schema version {found} is newer than this build supports ({supported}); upgrade Portcullis")]
    SchemaTooNew {
        /// Highest version recorded in `schema_migrations`.
        found: i64,
        /// Highest version this build knows.
        supported: i64,
    },
    /// A migration failed; nothing of it was applied.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The database error.
        source: sqlx::Error,
    },
    /// A stored value this version cannot decode (bad JSON, out-of-range time, …).
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt {
        /// Which value.
        what: String,
        /// Why it cannot be read.
        reason: String,
    },
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// The classification callers map to responses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Invalid { .. } | StoreError::InvalidCursor => ErrorKind::Invalid,
            StoreError::IdentityNotFound(_) | StoreError::KeyNotFound(_) => ErrorKind::NotFound,
            StoreError::DuplicateIdentityName(_)
            | StoreError::IdentityHasActiveKeys { .. }
            | StoreError::KeyState { .. } => ErrorKind::Conflict,
            StoreError::UnsupportedUrl(_)
            | StoreError::SchemaTooNew { .. }
            | StoreError::Migration { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Database(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
