//! [`Store`]: identities, keys and the audit log on SQLite or PostgreSQL.
//!
//! One code path serves both databases through sqlx's `Any` driver: every statement uses
//! `$N` placeholders (SQLite accepts them too), times are `BIGINT` milliseconds, JSON is
//! `TEXT`, and the only dialect differences live in the migration runner and in how a write
//! transaction starts (see [`begin_write`]).
//!
//! Every lifecycle operation is one transaction that (1) bumps the change counter first,
//! (2) does its work, (3) writes its audit event, (4) on PostgreSQL queues a `pg_notify`, and
//! commits. Bumping the counter first takes its row lock, which serialises lifecycle
//! operations on both databases: checks such as "this identity has no active keys" cannot race
//! a concurrent create. Lifecycle writes are rare (admin actions), so the serialisation costs
//! nothing that matters; usage batches ([`Store::record_usage`]) and quota counters
//! ([`Store::add_quota_usage`]) do not take it.

mod changes;
mod index_scan;
mod migrations;
mod quota;
mod rows;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::watch;
use tokio::task::AbortHandle;

pub use changes::NOTIFY_CHANNEL;
pub use index_scan::{parse_tags, IndexRow, IndexScan, IndexVisitor};

use crate::clock::{Clock, SystemClock, Timestamp};
use crate::error::StoreError;
use crate::key::{ApiKey, KeyHash, KeyHasher};
use crate::model::{
    self, Actor, AuditEvent, AuditFilter, Identity, IdentityUpdate, KeyFilter, KeyRecord,
    KeyStatus, KeyUpdate, NewIdentity, NewKey, Page, Paged, RotatedKey, UsageRecord,
    IDENTITY_ID_PREFIX, KEY_ID_PREFIX,
};
use crate::secret::SecretString;
use rows::{Binds, Cursor, PageQuery, IDENTITY_COLUMNS, KEY_COLUMNS};

/// Longest rotation grace accepted: the old key must not outlive its replacement for long.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in WAL mode (or `sqlite::memory:` for tests).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The backend a store URL selects.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(StoreError::UnsupportedUrl(scheme.to_owned()))
        }
    }
}

/// The token store. Cheap to clone: clones share one connection pool and one change feed.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    backend: Backend,
    url: SecretString,
    hasher: KeyHasher,
    clock: Arc<dyn Clock>,
    changes: Arc<watch::Sender<i64>>,
    watchers: Mutex<Option<Vec<AbortHandle>>>,
    listening: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut watchers) = self.watchers.lock() {
            for handle in watchers.take().into_iter().flatten() {
                handle.abort();
            }
        }
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.inner.backend)
            .finish_non_exhaustive()
    }
}

/// SQLite connections: writes are serialised by SQLite anyway; a few connections let reads
/// (WAL readers do not block the writer) proceed beside one write.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
const POSTGRES_MAX_CONNECTIONS: u32 = 8;
/// How long a SQLite writer waits for another process's write transaction.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5000;

impl Store {
    /// Opens the store at `url` with the wall clock. See [`Store::open_with_clock`].
    pub async fn open(url: &str, hasher: KeyHasher) -> Result<Store, StoreError> {
        Store::open_with_clock(url, hasher, Arc::new(SystemClock)).await
    }

    /// Opens the store at `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`), creating
    /// a SQLite file on first use, and applies pending migrations in one transaction.
    ///
    /// SQLite runs in WAL mode (readers never block the writer, and a killed process loses
    /// nothing committed) with `synchronous=FULL`: every commit is fsynced, so a key whose
    /// plaintext was shown, or a revocation that was confirmed, also survives a power loss.
    /// `NORMAL` would only risk the last transactions on an OS crash, but lifecycle writes are
    /// rare and a lost revocation would resurrect a key, so the fsync is worth it.
    ///
    /// A PostgreSQL schema can be chosen in the URL:
    /// `postgres://…/db?options=-c%20search_path%3Dportcullis`.
    pub async fn open_with_clock(
        url: &str,
        hasher: KeyHasher,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                let (url, in_memory) = sqlite_url(url);
                if !in_memory {
                    create_private_file(&url)?;
                }
                let options = AnyPoolOptions::new().after_connect(|conn, _meta| {
                    Box::pin(async move { sqlite_pragmas(conn).await })
                });
                let options = if in_memory {
                    // Every connection to `sqlite::memory:` would be its own database: keep
                    // exactly one, forever.
                    options
                        .max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None)
                        .max_lifetime(None)
                } else {
                    options.max_connections(SQLITE_MAX_CONNECTIONS)
                };
                options.connect(&url).await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(POSTGRES_MAX_CONNECTIONS)
                    .connect(url)
                    .await?
            }
        };
        migrations::run(&pool, backend, clock.now()).await?;
        let counter = changes::read_counter(&pool).await?;
        let (changes, _) = watch::channel(counter);
        Ok(Store {
            inner: Arc::new(Inner {
                pool,
                backend,
                url: SecretString::new(url.to_owned()),
                hasher,
                clock,
                changes: Arc::new(changes),
                watchers: Mutex::new(None),
                listening: Arc::new(AtomicBool::new(false)),
            }),
        })
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// The store's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The hasher keys are stored under (the gateway hashes presented keys with the same one).
    pub fn hasher(&self) -> &KeyHasher {
        &self.inner.hasher
    }

    /// The schema version this build migrates to.
    pub fn schema_version() -> i64 {
        migrations::latest_version()
    }

    /// Closes the connection pool and stops change watchers. Other clones become unusable.
    pub async fn close(&self) {
        if let Ok(mut watchers) = self.inner.watchers.lock() {
            for handle in watchers.take().into_iter().flatten() {
                handle.abort();
            }
        }
        self.inner.pool.close().await;
    }

    // ----- identities -------------------------------------------------------------------

    /// Creates an identity. Errors: [`StoreError::Invalid`],
    /// [`StoreError::DuplicateIdentityName`].
    pub async fn create_identity(
        &self,
        new: NewIdentity,
        actor: &Actor,
    ) -> Result<Identity, StoreError> {
        model::validate_actor(actor)?;
        model::validate_name("name", &new.name)?;
        model::validate_tags("roles", &new.roles)?;
        let metadata = model::validate_metadata("metadata", &new.metadata)?;
        model::validate_overrides(
            new.rate_limit_override.as_deref(),
            new.quota_override.as_deref(),
        )?;
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        let identity = Identity {
            id: model::new_id(IDENTITY_ID_PREFIX),
            name: new.name,
            metadata: new.metadata,
            roles: new.roles,
            rate_limit_override: new.rate_limit_override,
            quota_override: new.quota_override,
            created_at: now,
            updated_at: now,
        };
        sqlx::query(
            "INSERT INTO identities (id, name, metadata, roles, rate_limit_override, \
             quota_override, created_at, updated_at, change_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
        )
        .bind(&identity.id)
        .bind(&identity.name)
        .bind(metadata)
        .bind(rows::tags_json(&identity.roles))
        .bind(identity.rate_limit_override.as_deref())
        .bind(identity.quota_override.as_deref())
        .bind(now.unix_millis())
        .bind(tx.counter)
        .execute(&mut *tx.conn)
        .await
        .map_err(|err| duplicate_name_or(err, &identity.name))?;
        let detail = json!({
            "name": identity.name,
            "roles": identity.roles,
            "metadata": identity.metadata,
            "rate_limit_override": identity.rate_limit_override,
            "quota_override": identity.quota_override,
        });
        tx.audit(now, actor, "identity.create", &identity.id, detail)
            .await?;
        self.commit_lifecycle(tx).await?;
        Ok(identity)
    }

    /// One identity, by id (`idn_…`) or by name (names cannot start with `idn_`, so the two
    /// never collide). Errors: [`StoreError::IdentityNotFound`].
    pub async fn get_identity(&self, id_or_name: &str) -> Result<Identity, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        find_identity(&mut conn, id_or_name)
            .await?
            .ok_or_else(|| StoreError::IdentityNotFound(id_or_name.to_owned()))
    }

    /// Identities in creation order.
    pub async fn list_identities(&self, page: &Page) -> Result<Paged<Identity>, StoreError> {
        let mut query = PageQuery::new(page)?;
        if let Some(cursor) = &page.cursor {
            let cursor = Cursor::parse(cursor, IDENTITY_ID_PREFIX)?;
            query.filter(|binds| cursor.condition(binds));
        }
        query
            .fetch(
                &self.inner.pool,
                &format!("SELECT {IDENTITY_COLUMNS} FROM identities"),
                "created_at, id",
                rows::identity,
                |i| Cursor::of(i.created_at, &i.id),
            )
            .await
    }

    /// Changes an identity's name, metadata, roles or overrides. Errors:
    /// [`StoreError::Invalid`], [`StoreError::IdentityNotFound`],
    /// [`StoreError::DuplicateIdentityName`].
    pub async fn update_identity(
        &self,
        id_or_name: &str,
        update: IdentityUpdate,
        actor: &Actor,
    ) -> Result<Identity, StoreError> {
        model::validate_actor(actor)?;
        if let Some(name) = &update.name {
            model::validate_name("name", name)?;
        }
        if let Some(roles) = &update.roles {
            model::validate_tags("roles", roles)?;
        }
        if let Some(metadata) = &update.metadata {
            model::validate_metadata("metadata", metadata)?;
        }
        model::validate_overrides(
            model::new_value(&update.rate_limit_override),
            model::new_value(&update.quota_override),
        )?;
        if update == IdentityUpdate::default() {
            return Err(StoreError::invalid("update", "nothing to change"));
        }
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        let mut identity = find_identity(&mut tx.conn, id_or_name)
            .await?
            .ok_or_else(|| StoreError::IdentityNotFound(id_or_name.to_owned()))?;
        // Renaming to the current name is no change; a name taken by another identity is
        // refused by the UNIQUE constraint (see `duplicate_name_or`).
        let name = update.name.filter(|name| *name != identity.name);
        let mut changes = Changes::default();
        changes.apply("name", &mut identity.name, name);
        changes.apply("metadata", &mut identity.metadata, update.metadata);
        changes.apply("roles", &mut identity.roles, update.roles);
        changes.apply(
            "rate_limit_override",
            &mut identity.rate_limit_override,
            update.rate_limit_override,
        );
        changes.apply(
            "quota_override",
            &mut identity.quota_override,
            update.quota_override,
        );
        identity.updated_at = now;
        sqlx::query(
            "UPDATE identities SET name = $1, metadata = $2, roles = $3, \
             rate_limit_override = $4, quota_override = $5, updated_at = $6, change_seq = $7 \
             WHERE id = $8",
        )
        .bind(&identity.name)
        .bind(identity.metadata.to_string())
        .bind(rows::tags_json(&identity.roles))
        .bind(identity.rate_limit_override.as_deref())
        .bind(identity.quota_override.as_deref())
        .bind(now.unix_millis())
        .bind(tx.counter)
        .bind(&identity.id)
        .execute(&mut *tx.conn)
        .await
        .map_err(|err| duplicate_name_or(err, &identity.name))?;
        tx.audit(
            now,
            actor,
            "identity.update",
            &identity.id,
            changes.into_detail(),
        )
        .await?;
        self.commit_lifecycle(tx).await?;
        Ok(identity)
    }

    /// Deletes an identity and its keys. Refused with [`StoreError::IdentityHasActiveKeys`]
    /// while any of its keys still authenticates (active or rotating): revoke them first, so
    /// that deleting never silently cuts off a live client.
    pub async fn delete_identity(&self, id_or_name: &str, actor: &Actor) -> Result<(), StoreError> {
        model::validate_actor(actor)?;
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        let identity = find_identity(&mut tx.conn, id_or_name)
            .await?
            .ok_or_else(|| StoreError::IdentityNotFound(id_or_name.to_owned()))?;
        let mut binds = Binds::default();
        let id = binds.text(&identity.id);
        let usable = rows::usable_condition(&mut binds, now);
        let sql = format!("SELECT COUNT(*) FROM api_keys WHERE identity_id = {id} AND {usable}");
        let count: i64 = binds
            .bind_all_scalar(sqlx::query_scalar(&sql))
            .fetch_one(&mut *tx.conn)
            .await?;
        if count > 0 {
            return Err(StoreError::IdentityHasActiveKeys {
                id: identity.id,
                count,
            });
        }
        let deleted_keys = sqlx::query("DELETE FROM api_keys WHERE identity_id = $1")
            .bind(&identity.id)
            .execute(&mut *tx.conn)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM identities WHERE id = $1")
            .bind(&identity.id)
            .execute(&mut *tx.conn)
            .await?;
        let detail = json!({"name": identity.name, "deleted_keys": deleted_keys});
        tx.audit(now, actor, "identity.delete", &identity.id, detail)
            .await?;
        self.commit_lifecycle(tx).await
    }

    // ----- keys -------------------------------------------------------------------------

    /// Creates a key and returns its record and its plaintext. The plaintext exists only in
    /// this return value: the store keeps its HMAC and display prefix. Errors:
    /// [`StoreError::Invalid`], [`StoreError::IdentityNotFound`].
    pub async fn create_key(
        &self,
        new: NewKey,
        actor: &Actor,
    ) -> Result<(KeyRecord, SecretString), StoreError> {
        model::validate_actor(actor)?;
        let api_key = ApiKey::generate(&new.env)
            .map_err(|err| StoreError::invalid("env", err.to_string()))?;
        model::validate_tags("scopes", &new.scopes)?;
        model::validate_tags("roles", &new.roles)?;
        model::validate_metadata("metadata", &new.metadata)?;
        model::validate_overrides(
            new.rate_limit_override.as_deref(),
            new.quota_override.as_deref(),
        )?;
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        if let Some(expires_at) = new.expires_at {
            if expires_at <= now {
                return Err(StoreError::invalid("expires_at", "must be in the future"));
            }
        }
        let identity = find_identity(&mut tx.conn, &new.identity)
            .await?
            .ok_or_else(|| StoreError::IdentityNotFound(new.identity.clone()))?;
        let parsed = api_key.parsed();
        let record = KeyRecord {
            id: model::new_id(KEY_ID_PREFIX),
            identity_id: identity.id,
            display_prefix: parsed.display_prefix().to_owned(),
            env: new.env,
            scopes: new.scopes,
            roles: new.roles,
            metadata: new.metadata,
            created_at: now,
            updated_at: now,
            expires_at: new.expires_at,
            last_used_at: None,
            request_count: 0,
            status: KeyStatus::Active,
            revoked_at: None,
            rotating_until: None,
            rate_limit_override: new.rate_limit_override,
            quota_override: new.quota_override,
            replaced_by: None,
        };
        let hash = self.inner.hasher.hash(&parsed);
        insert_key(&mut tx.conn, &record, &hash, tx.counter).await?;
        tx.audit(now, actor, "key.create", &record.id, key_detail(&record))
            .await?;
        self.commit_lifecycle(tx).await?;
        Ok((record, api_key.into_plaintext()))
    }

    /// One key (never its secret). Errors: [`StoreError::KeyNotFound`].
    pub async fn get_key(&self, key_id: &str) -> Result<KeyRecord, StoreError> {
        let mut conn = self.inner.pool.acquire().await?;
        find_key(&mut conn, key_id, self.now())
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(key_id.to_owned()))
    }

    /// Keys in creation order, optionally of one identity (id or name; unknown →
    /// [`StoreError::IdentityNotFound`]) and in one status at the store clock's `now`.
    pub async fn list_keys(
        &self,
        filter: &KeyFilter,
        page: &Page,
    ) -> Result<Paged<KeyRecord>, StoreError> {
        let mut query = PageQuery::new(page)?;
        let now = self.now();
        if let Some(identity) = &filter.identity {
            let mut conn = self.inner.pool.acquire().await?;
            let identity = find_identity(&mut conn, identity)
                .await?
                .ok_or_else(|| StoreError::IdentityNotFound(identity.clone()))?;
            query.filter(|binds| format!("identity_id = {}", binds.text(&identity.id)));
        }
        if let Some(status) = filter.status {
            query.filter(|binds| rows::status_condition(binds, status, now));
        }
        if let Some(cursor) = &page.cursor {
            let cursor = Cursor::parse(cursor, KEY_ID_PREFIX)?;
            query.filter(|binds| cursor.condition(binds));
        }
        query
            .fetch(
                &self.inner.pool,
                &format!("SELECT {KEY_COLUMNS} FROM api_keys"),
                "created_at, id",
                |row| rows::key(row, now),
                |k| Cursor::of(k.created_at, &k.id),
            )
            .await
    }

    /// Changes a key's scopes, roles, metadata, expiry or overrides. Refused with
    /// [`StoreError::KeyState`] for revoked or expired keys (an expired key is not revived by
    /// moving its expiry: issue a new one).
    pub async fn update_key(
        &self,
        key_id: &str,
        update: KeyUpdate,
        actor: &Actor,
    ) -> Result<KeyRecord, StoreError> {
        model::validate_actor(actor)?;
        if update.is_empty() {
            return Err(StoreError::invalid("update", "nothing to change"));
        }
        if let Some(scopes) = &update.scopes {
            model::validate_tags("scopes", scopes)?;
        }
        if let Some(roles) = &update.roles {
            model::validate_tags("roles", roles)?;
        }
        if let Some(metadata) = &update.metadata {
            model::validate_metadata("metadata", metadata)?;
        }
        model::validate_overrides(
            model::new_value(&update.rate_limit_override),
            model::new_value(&update.quota_override),
        )?;
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        let mut key = find_key(&mut tx.conn, key_id, now)
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(key_id.to_owned()))?;
        if !key.status.is_usable() {
            return Err(StoreError::KeyState {
                id: key.id,
                status: key.status,
                operation: "update",
            });
        }
        if update.expires_at.flatten().is_some_and(|at| at <= now) {
            return Err(StoreError::invalid("expires_at", "must be in the future"));
        }
        let mut changes = Changes::default();
        changes.apply("scopes", &mut key.scopes, update.scopes);
        changes.apply("roles", &mut key.roles, update.roles);
        changes.apply("metadata", &mut key.metadata, update.metadata);
        changes.apply("expires_at", &mut key.expires_at, update.expires_at);
        changes.apply(
            "rate_limit_override",
            &mut key.rate_limit_override,
            update.rate_limit_override,
        );
        changes.apply(
            "quota_override",
            &mut key.quota_override,
            update.quota_override,
        );
        key.updated_at = now;
        key.status = key.status_at(now);
        sqlx::query(
            "UPDATE api_keys SET scopes = $1, roles = $2, metadata = $3, expires_at = $4, \
             rate_limit_override = $5, quota_override = $6, updated_at = $7, change_seq = $8 \
             WHERE id = $9",
        )
        .bind(rows::tags_json(&key.scopes))
        .bind(rows::tags_json(&key.roles))
        .bind(key.metadata.to_string())
        .bind(key.expires_at.map(Timestamp::unix_millis))
        .bind(key.rate_limit_override.as_deref())
        .bind(key.quota_override.as_deref())
        .bind(now.unix_millis())
        .bind(tx.counter)
        .bind(&key.id)
        .execute(&mut *tx.conn)
        .await?;
        tx.audit(now, actor, "key.update", &key.id, changes.into_detail())
            .await?;
        self.commit_lifecycle(tx).await?;
        Ok(key)
    }

    /// Rotates an active key: issues a new key (same identity, environment, scopes, roles,
    /// metadata, overrides and absolute expiry) and keeps the old one working, as
    /// [`KeyStatus::Rotating`], until `now + grace` or its own expiry, whichever is first.
    /// `grace` of zero ends the old key at once. Errors: [`StoreError::Invalid`] (grace over
    /// [`MAX_ROTATION_GRACE`]), [`StoreError::KeyNotFound`], [`StoreError::KeyState`] (the key
    /// is not active: already rotating, revoked or expired; rotate its replacement instead).
    pub async fn rotate_key(
        &self,
        key_id: &str,
        grace: Duration,
        actor: &Actor,
    ) -> Result<RotatedKey, StoreError> {
        model::validate_actor(actor)?;
        if grace > MAX_ROTATION_GRACE {
            return Err(StoreError::invalid(
                "grace",
                format!(
                    "must be at most {}",
                    humantime::format_duration(MAX_ROTATION_GRACE)
                ),
            ));
        }
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        let mut previous = find_key(&mut tx.conn, key_id, now)
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(key_id.to_owned()))?;
        if previous.status != KeyStatus::Active {
            return Err(StoreError::KeyState {
                id: previous.id,
                status: previous.status,
                operation: "rotate",
            });
        }
        let api_key = ApiKey::generate(&previous.env)
            .map_err(|err| StoreError::corrupt(format!("env of key {}", previous.id), err))?;
        let parsed = api_key.parsed();
        let key = KeyRecord {
            id: model::new_id(KEY_ID_PREFIX),
            display_prefix: parsed.display_prefix().to_owned(),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            request_count: 0,
            status: KeyStatus::Active,
            revoked_at: None,
            rotating_until: None,
            replaced_by: None,
            ..previous.clone()
        };
        let hash = self.inner.hasher.hash(&parsed);
        insert_key(&mut tx.conn, &key, &hash, tx.counter).await?;
        let until = match previous.expires_at {
            Some(expires_at) => now.saturating_add(grace).min(expires_at),
            None => now.saturating_add(grace),
        };
        sqlx::query(
            "UPDATE api_keys SET rotating_until = $1, replaced_by = $2, updated_at = $3, \
             change_seq = $4 WHERE id = $5",
        )
        .bind(until.unix_millis())
        .bind(&key.id)
        .bind(now.unix_millis())
        .bind(tx.counter)
        .bind(&previous.id)
        .execute(&mut *tx.conn)
        .await?;
        previous.rotating_until = Some(until);
        previous.replaced_by = Some(key.id.clone());
        previous.updated_at = now;
        previous.status = previous.status_at(now);
        let mut detail = key_detail(&key);
        if let Some(detail) = detail.as_object_mut() {
            detail.insert("rotated_from".into(), json!(previous.id));
        }
        tx.audit(now, actor, "key.create", &key.id, detail).await?;
        let detail = json!({
            "replaced_by": key.id,
            "grace_ms": u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
            "rotating_until": until,
        });
        tx.audit(now, actor, "key.rotate", &previous.id, detail)
            .await?;
        self.commit_lifecycle(tx).await?;
        Ok(RotatedKey {
            key,
            plaintext: api_key.into_plaintext(),
            previous,
        })
    }

    /// Revokes a key, immediately. Errors: [`StoreError::KeyNotFound`],
    /// [`StoreError::KeyState`] if it is already revoked.
    pub async fn revoke_key(&self, key_id: &str, actor: &Actor) -> Result<KeyRecord, StoreError> {
        model::validate_actor(actor)?;
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        let mut key = find_key(&mut tx.conn, key_id, now)
            .await?
            .ok_or_else(|| StoreError::KeyNotFound(key_id.to_owned()))?;
        if let KeyStatus::Revoked { .. } = key.status {
            return Err(StoreError::KeyState {
                id: key.id,
                status: key.status,
                operation: "revoke",
            });
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1, updated_at = $1, change_seq = $2 WHERE id = $3",
        )
        .bind(now.unix_millis())
        .bind(tx.counter)
        .bind(&key.id)
        .execute(&mut *tx.conn)
        .await?;
        let detail = json!({"identity_id": key.identity_id, "previous_status": key.status});
        key.revoked_at = Some(now);
        key.updated_at = now;
        key.status = key.status_at(now);
        tx.audit(now, actor, "key.revoke", &key.id, detail).await?;
        self.commit_lifecycle(tx).await?;
        Ok(key)
    }

    /// Writes a `key.expire` audit event for every key that has expired (its own expiry or
    /// the end of its rotation grace) since the last sweep, and returns their ids, sorted.
    /// Expiry itself needs no write (status is computed from times); this only makes it
    /// visible in the audit log. Run it periodically from one place (e.g. every minute).
    pub async fn sweep_expired(&self, actor: &Actor) -> Result<Vec<String>, StoreError> {
        model::validate_actor(actor)?;
        let mut tx = self.begin_lifecycle().await?;
        let now = self.now();
        // One statement marks them all and says which they were.
        let mut expired: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
            "UPDATE api_keys SET expiry_audited_at = $1, change_seq = $2 \
             WHERE revoked_at IS NULL AND expiry_audited_at IS NULL \
             AND (expires_at <= $1 OR rotating_until <= $1) \
             RETURNING id, expires_at, rotating_until",
        )
        .bind(now.unix_millis())
        .bind(tx.counter)
        .fetch_all(&mut *tx.conn)
        .await?;
        if expired.is_empty() {
            // Rolling back also undoes the counter bump: nothing changed.
            tx.conn.rollback().await?;
            return Ok(Vec::new());
        }
        // RETURNING order is unspecified: audit in id order on both databases.
        expired.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut ids = Vec::with_capacity(expired.len());
        for (id, expires_at, rotating_until) in expired {
            let by_grace = match (expires_at, rotating_until) {
                (Some(e), Some(r)) => r < e,
                (None, Some(_)) => true,
                _ => false,
            };
            let ended_at = if by_grace { rotating_until } else { expires_at };
            let detail = json!({
                "reason": if by_grace { "rotation_grace_ended" } else { "expires_at" },
                "ended_at": ended_at.and_then(Timestamp::from_unix_millis),
            });
            tx.audit(now, actor, "key.expire", &id, detail).await?;
            ids.push(id);
        }
        self.commit_lifecycle(tx).await?;
        Ok(ids)
    }

    /// The key with this hash, in any status (callers check [`KeyRecord::status`]).
    pub async fn find_by_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE key_hash = $1"
        ))
        .bind(hash.as_bytes().to_vec())
        .fetch_optional(&self.inner.pool)
        .await?;
        row.map(|row| rows::key(&row, self.now())).transpose()
    }

    /// The key with this hash if it authenticates now (active, or rotating within its grace).
    /// For CLI and admin authentication; the gateway's hot path uses an in-memory index built
    /// from [`Store::load_all_active`] instead.
    pub async fn verify_hash(&self, hash: &KeyHash) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self
            .find_by_hash(hash)
            .await?
            .filter(|key| key.status.is_usable()))
    }

    /// Every key that authenticates at `now`, with its hash, to build an in-memory index.
    /// Keys keep expiring after this call without any write: index users must check
    /// [`KeyRecord::status_at`] per request. For large stores prefer
    /// [`Store::for_each_active`], which does not hold every row at once.
    pub async fn load_all_active(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(KeyHash, KeyRecord)>, StoreError> {
        let mut keys = Vec::new();
        self.for_each_active(now, |hash, key| keys.push((hash, key)))
            .await?;
        Ok(keys)
    }

    /// Streams every key that authenticates at `now` into `visit`, one row at a time, so an
    /// index of a million keys can be built without a million decoded rows in memory at
    /// once. Returns how many keys were visited.
    pub async fn for_each_active(
        &self,
        now: Timestamp,
        mut visit: impl FnMut(KeyHash, KeyRecord),
    ) -> Result<u64, StoreError> {
        let mut binds = Binds::default();
        let usable = rows::usable_condition(&mut binds, now);
        let sql = format!("SELECT key_hash, {KEY_COLUMNS} FROM api_keys WHERE {usable}");
        let mut rows = binds.bind_all(sqlx::query(&sql)).fetch(&self.inner.pool);
        let mut visited = 0;
        while let Some(row) = rows.try_next().await? {
            visit(rows::key_hash(&row)?, rows::key(&row, now)?);
            visited += 1;
        }
        Ok(visited)
    }

    /// Adds a batch of usage counts in one transaction (no audit event, no change signal).
    /// Unknown key ids (deleted since) are skipped. Returns how many keys were updated.
    pub async fn record_usage(&self, batch: &[UsageRecord]) -> Result<u64, StoreError> {
        if batch.is_empty() {
            return Ok(0);
        }
        // A fixed lock order (by id) keeps two concurrent batches from deadlocking on
        // PostgreSQL; duplicates are merged first.
        let mut merged: std::collections::BTreeMap<&str, (i64, Timestamp)> = Default::default();
        for usage in batch {
            let count = i64::try_from(usage.count).unwrap_or(i64::MAX);
            let entry = merged
                .entry(usage.key_id.as_str())
                .or_insert((0, usage.last_used));
            entry.0 = entry.0.saturating_add(count);
            entry.1 = entry.1.max(usage.last_used);
        }
        let mut tx = begin_write(&self.inner.pool, self.inner.backend).await?;
        let mut updated = 0;
        for (key_id, (count, last_used)) in merged {
            updated += sqlx::query(
                "UPDATE api_keys SET request_count = request_count + $1, \
                 last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 \
                 THEN $2 ELSE last_used_at END WHERE id = $3",
            )
            .bind(count)
            .bind(last_used.unix_millis())
            .bind(key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(updated)
    }

    // ----- audit log --------------------------------------------------------------------

    /// Audit events, newest first.
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        page: &Page,
    ) -> Result<Paged<AuditEvent>, StoreError> {
        let mut query = PageQuery::new(page)?;
        if let Some(actor) = &filter.actor {
            query.filter(|binds| format!("actor = {}", binds.text(actor)));
        }
        if let Some(action) = &filter.action {
            query.filter(|binds| format!("action = {}", binds.text(action)));
        }
        if let Some(target) = &filter.target {
            query.filter(|binds| format!("target = {}", binds.text(target)));
        }
        if let Some(since) = filter.since {
            query.filter(|binds| format!("at >= {}", binds.int(since.unix_millis())));
        }
        if let Some(until) = filter.until {
            query.filter(|binds| format!("at < {}", binds.int(until.unix_millis())));
        }
        if let Some(cursor) = &page.cursor {
            let id = i64::from_str(cursor).map_err(|_| StoreError::InvalidCursor)?;
            query.filter(|binds| format!("id < {}", binds.int(id)));
        }
        query
            .fetch(
                &self.inner.pool,
                "SELECT id, at, actor, action, target, source_ip, detail FROM audit_events",
                "id DESC",
                rows::audit_event,
                |e| e.id.to_string(),
            )
            .await
    }

    // ----- change notification ----------------------------------------------------------

    /// The current value of the change counter, bumped by every lifecycle operation.
    pub async fn change_counter(&self) -> Result<i64, StoreError> {
        Ok(changes::read_counter(&self.inner.pool).await?)
    }

    /// A receiver that changes whenever identities or keys change, whichever process changed
    /// them: at once for changes through this `Store`, within about 250 ms on SQLite (the
    /// counter is polled), and as soon as PostgreSQL delivers the `NOTIFY` (polling at the
    /// same rate if LISTEN is down). The value is the change counter; intermediate values may
    /// be skipped, so treat a change as "read what changed" ([`IndexScan::ChangedSince`]),
    /// not as a count. The first call starts the
    /// background watchers; they stop when the last clone of this `Store` is dropped.
    pub async fn changes(&self) -> watch::Receiver<i64> {
        let receiver = self.inner.changes.subscribe();
        if let Ok(mut watchers) = self.inner.watchers.lock() {
            if watchers.is_none() {
                *watchers = Some(changes::spawn(
                    self.inner.backend,
                    self.inner.pool.clone(),
                    self.inner.url.expose().to_owned(),
                    Arc::clone(&self.inner.changes),
                    Arc::clone(&self.inner.listening),
                ));
            }
        }
        receiver
    }

    /// Whether changes currently arrive by PostgreSQL `LISTEN` (`false` on SQLite, before
    /// [`Store::changes`] is first called, and while LISTEN is down and the feed has fallen
    /// back to polling). Worth exporting as a metric.
    pub fn change_feed_listening(&self) -> bool {
        self.inner.listening.load(Ordering::Relaxed)
    }

    // ----- internals --------------------------------------------------------------------

    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// Starts a lifecycle transaction: bumps the change counter first (see the module docs).
    async fn begin_lifecycle(&self) -> Result<LifecycleTx, StoreError> {
        let mut conn = begin_write(&self.inner.pool, self.inner.backend).await?;
        let counter: i64 = sqlx::query_scalar(
            "UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut *conn)
        .await?;
        Ok(LifecycleTx { conn, counter })
    }

    async fn commit_lifecycle(&self, mut tx: LifecycleTx) -> Result<(), StoreError> {
        if self.inner.backend == Backend::Postgres {
            // Delivered to listeners at commit, not before; dropped on rollback.
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(tx.counter.to_string())
                .execute(&mut *tx.conn)
                .await?;
        }
        tx.conn.commit().await?;
        changes::publish(&self.inner.changes, tx.counter);
        Ok(())
    }
}

/// A write transaction. SQLite: `BEGIN IMMEDIATE` takes the write lock up front (waiting up
/// to the busy timeout for other writers, other processes included) instead of failing with
/// `SQLITE_BUSY` when a read inside the transaction later tries to upgrade to a write.
/// PostgreSQL: a plain `BEGIN` (read committed); lifecycle transactions serialise on the
/// change-counter row.
pub(crate) async fn begin_write(
    pool: &AnyPool,
    backend: Backend,
) -> Result<Transaction<'static, Any>, sqlx::Error> {
    match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => pool.begin().await,
    }
}

struct LifecycleTx {
    conn: Transaction<'static, Any>,
    counter: i64,
}

impl LifecycleTx {
    async fn audit(
        &mut self,
        at: Timestamp,
        actor: &Actor,
        action: &str,
        target: &str,
        detail: Value,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, action, target, source_ip, detail) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(at.unix_millis())
        .bind(&actor.name)
        .bind(action)
        .bind(target)
        .bind(actor.source_ip.map(|ip| ip.to_string()))
        .bind(detail.to_string())
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

/// The `changes` of an update's audit event: `{field: {"from": old, "to": new}}` for each
/// field the update sets.
#[derive(Default)]
struct Changes(serde_json::Map<String, Value>);

impl Changes {
    /// Sets `field` to `to` when the update names it, and records the change as `name`.
    fn apply<T: Serialize>(&mut self, name: &str, field: &mut T, to: Option<T>) {
        if let Some(to) = to {
            self.0
                .insert(name.to_owned(), json!({"from": field, "to": to}));
            *field = to;
        }
    }

    fn into_detail(self) -> Value {
        json!({ "changes": self.0 })
    }
}

async fn find_identity(
    conn: &mut AnyConnection,
    id_or_name: &str,
) -> Result<Option<Identity>, StoreError> {
    let column = if model::is_id(id_or_name, IDENTITY_ID_PREFIX) {
        "id"
    } else {
        "name"
    };
    let row = sqlx::query(&format!(
        "SELECT {IDENTITY_COLUMNS} FROM identities WHERE {column} = $1"
    ))
    .bind(id_or_name)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(rows::identity).transpose()
}

async fn find_key(
    conn: &mut AnyConnection,
    key_id: &str,
    now: Timestamp,
) -> Result<Option<KeyRecord>, StoreError> {
    let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
        .bind(key_id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| rows::key(&row, now)).transpose()
}

async fn insert_key(
    conn: &mut AnyConnection,
    key: &KeyRecord,
    hash: &KeyHash,
    change_seq: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO api_keys (id, identity_id, key_hash, display_prefix, env, scopes, roles, \
         metadata, created_at, updated_at, expires_at, rate_limit_override, quota_override, \
         change_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11, $12, $13)",
    )
    .bind(&key.id)
    .bind(&key.identity_id)
    .bind(hash.as_bytes().to_vec())
    .bind(&key.display_prefix)
    .bind(&key.env)
    .bind(rows::tags_json(&key.scopes))
    .bind(rows::tags_json(&key.roles))
    .bind(key.metadata.to_string())
    .bind(key.created_at.unix_millis())
    .bind(key.expires_at.map(Timestamp::unix_millis))
    .bind(key.rate_limit_override.as_deref())
    .bind(key.quota_override.as_deref())
    .bind(change_seq)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn key_detail(key: &KeyRecord) -> Value {
    json!({
        "identity_id": key.identity_id,
        "display_prefix": key.display_prefix,
        "env": key.env,
        "scopes": key.scopes,
        "roles": key.roles,
        "expires_at": key.expires_at,
        "rate_limit_override": key.rate_limit_override,
        "quota_override": key.quota_override,
    })
}

fn duplicate_name_or(err: sqlx::Error, name: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::DuplicateIdentityName(name.to_owned())
        }
        _ => StoreError::Database(err),
    }
}

/// Normalises a SQLite URL: creates the file on first use (`mode=rwc`) unless the URL says
/// otherwise, and reports whether it is an in-memory database.
fn sqlite_url(url: &str) -> (String, bool) {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory || url.contains("mode=") {
        return (url.to_owned(), in_memory);
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    (format!("{url}{separator}mode=rwc"), false)
}

/// Creates a missing SQLite file readable by its owner only (SQLite gives the `-wal` and
/// `-shm` files the same permissions): the store holds key hashes, metadata and the audit log.
fn create_private_file(url: &str) -> Result<(), StoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = path.split('?').next().unwrap_or(path);
    // Percent-encoded or empty paths are left to SQLite.
    if path.is_empty() || path.contains('%') || std::path::Path::new(path).exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        // Another process created it first: fine.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(StoreError::Database(sqlx::Error::Io(err))),
    }
}

async fn sqlite_pragmas(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    // journal_mode is persistent in the file; the others are per connection.
    for pragma in [
        format!("PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"),
        "PRAGMA journal_mode = WAL".to_owned(),
        "PRAGMA synchronous = FULL".to_owned(),
        "PRAGMA foreign_keys = ON".to_owned(),
    ] {
        sqlx::query(&pragma).execute(&mut *conn).await?;
    }
    Ok(())
}
