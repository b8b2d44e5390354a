//! Bulk reads for a gateway's in-memory key index: every usable key when it starts, then only
//! the rows that lifecycle transactions changed since (the `change_seq` columns).
//!
//! A million keys must load in a few seconds. sqlx hands SQLite rows one at a time from its
//! worker thread (about 4 µs per row, 4 s per million), so the full read of a SQLite file goes
//! through rusqlite on a blocking thread instead (about 0.6 µs per row), and the full read of
//! PostgreSQL through sqlx's own PostgreSQL driver on a connection of its own (the `Any` driver
//! copies every value). The reads of what changed, which are small, and in-memory SQLite use
//! the store's pool.

use futures_util::TryStreamExt;
use sqlx::{Connection, Row};

use super::{changes, Backend, Store};
use crate::clock::Timestamp;
use crate::error::StoreError;

/// What to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexScan {
    /// Every key that authenticates now.
    Usable,
    /// Every key a lifecycle transaction after change counter value `seq` wrote (whatever its
    /// status now: a revocation must reach the index too), and the usable keys of every
    /// identity such a transaction changed.
    ChangedSince(i64),
}

/// One key as an index needs it, borrowed from the row being read.
#[derive(Debug, Clone, Copy)]
pub struct IndexRow<'a> {
    /// HMAC-SHA-256(pepper, key).
    pub hash: &'a [u8; 32],
    /// The key's id.
    pub key_id: &'a str,
    /// The owning identity's id.
    pub identity_id: &'a str,
    /// The key's scopes as stored: a JSON array of strings. Equal texts are equal lists, so an
    /// index can parse each distinct text once ([`parse_tags`]).
    pub scopes: &'a str,
    /// The key's own roles, stored like `scopes`.
    pub roles: &'a str,
    /// The identity's roles, stored like `scopes`.
    pub identity_roles: &'a str,
    /// The key's rate-limit override (`100/s`), validated when written.
    pub rate_limit_override: Option<&'a str>,
    /// The key's quota override (`1000/day`), validated when written.
    pub quota_override: Option<&'a str>,
    /// The identity's rate-limit override.
    pub identity_rate_limit_override: Option<&'a str>,
    /// The identity's quota override.
    pub identity_quota_override: Option<&'a str>,
    /// Unix milliseconds from which the key no longer authenticates (its expiry or the end of
    /// its rotation grace, whichever is first); `None`: no end.
    pub valid_until_ms: Option<i64>,
    /// Whether the key was revoked.
    pub revoked: bool,
}

impl IndexRow<'_> {
    /// Whether the key authenticates at `now_ms`; agrees with
    /// [`crate::model::KeyRecord::is_usable_at`].
    pub fn usable_at(&self, now_ms: i64) -> bool {
        !self.revoked && self.valid_until_ms.is_none_or(|until| now_ms < until)
    }
}

/// Receives the rows of [`Store::scan_index`]. It is moved to the thread that reads and handed
/// back when the read is done, hence `Send + 'static`.
pub trait IndexVisitor: Send + 'static {
    /// One row; the borrowed texts live only for this call.
    fn visit(&mut self, row: &IndexRow<'_>);
}

/// Parses a scopes or roles column ([`IndexRow::scopes`]).
pub fn parse_tags(text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::corrupt("tag list", err))
}

const COLUMNS: &str = "k.key_hash, k.id, k.identity_id, k.scopes, k.roles, k.expires_at, \
    k.rotating_until, k.revoked_at, k.rate_limit_override, k.quota_override, i.roles, \
    i.rate_limit_override, i.quota_override";

/// The statement for `scan`, with `param` as its one placeholder (`$1` or `?1`): the current
/// time for [`IndexScan::Usable`], the sequence for [`IndexScan::ChangedSince`].
fn statement(scan: IndexScan, param: &str) -> String {
    match scan {
        IndexScan::Usable => format!(
            "SELECT {COLUMNS} FROM api_keys k JOIN identities i ON i.id = k.identity_id \
             WHERE k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > {param}) \
             AND (k.rotating_until IS NULL OR k.rotating_until > {param})"
        ),
        // Keys of a changed identity that are revoked are not in any index: left out.
        IndexScan::ChangedSince(_) => format!(
            "SELECT {COLUMNS} FROM api_keys k JOIN identities i ON i.id = k.identity_id \
             WHERE k.change_seq > {param} \
             UNION ALL \
             SELECT {COLUMNS} FROM identities i JOIN api_keys k ON k.identity_id = i.id \
             WHERE i.change_seq > {param} AND k.revoked_at IS NULL"
        ),
    }
}

fn param(scan: IndexScan, now: Timestamp) -> i64 {
    match scan {
        IndexScan::Usable => now.unix_millis(),
        IndexScan::ChangedSince(seq) => seq,
    }
}

fn valid_until(expires_at: Option<i64>, rotating_until: Option<i64>) -> Option<i64> {
    match (expires_at, rotating_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn hash_of(bytes: &[u8]) -> Result<&[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::corrupt("key hash", format!("{} bytes", bytes.len())))
}

impl Store {
    /// Reads the keys `scan` selects, handing each to `visit`, and returns `visit` with the
    /// change counter value the read is complete up to: every change up to it is in what was
    /// read (later ones may be too; applying a row twice must be harmless). Pass that value to
    /// the next [`IndexScan::ChangedSince`]. Rows are not held: a million keys cost the memory
    /// of the visitor's own index, not of a million decoded records.
    pub async fn scan_index<V>(&self, scan: IndexScan, visit: V) -> Result<(V, i64), StoreError>
    where
        V: IndexVisitor,
    {
        // Read first: lifecycle transactions commit in counter order (they serialise on the
        // counter row), so everything up to this value is committed and visible below.
        let seq = changes::read_counter(&self.inner.pool).await?;
        let now = self.now();
        let visit = match (scan, self.inner.backend, self.sqlite_file()) {
            (IndexScan::Usable, Backend::Sqlite, Some(path)) => {
                tokio::task::spawn_blocking(move || scan_sqlite_file(&path, scan, now, visit))
                    .await
                    .map_err(|err| {
                        StoreError::Database(sqlx::Error::Io(std::io::Error::other(err)))
                    })??
            }
            (IndexScan::Usable, Backend::Postgres, _) => {
                let mut conn = sqlx::PgConnection::connect(self.inner.url.expose()).await?;
                let visit = scan_postgres(&mut conn, scan, now, visit).await;
                // The read is over either way; a failed goodbye changes nothing.
                let _ = conn.close().await;
                visit?
            }
            _ => self.scan_pool(scan, now, visit).await?,
        };
        Ok((visit, seq))
    }

    /// The path of the SQLite file, when the store is one that another connection can open.
    fn sqlite_file(&self) -> Option<String> {
        if self.inner.backend != Backend::Sqlite {
            return None;
        }
        let url = self.inner.url.expose();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let plain = !path.is_empty()
            && !path.contains('%')
            && !path.contains(":memory:")
            && !query.contains("mode=memory");
        plain.then(|| path.to_owned())
    }

    async fn scan_pool<V>(
        &self,
        scan: IndexScan,
        now: Timestamp,
        mut visit: V,
    ) -> Result<V, StoreError>
    where
        V: IndexVisitor,
    {
        let sql = statement(scan, "$1");
        let mut rows = sqlx::query(&sql)
            .bind(param(scan, now))
            .fetch(&self.inner.pool);
        while let Some(row) = rows.try_next().await? {
            visit_row(&row, &mut visit)?;
        }
        Ok(visit)
    }
}

/// Hands one row of [`statement`]'s columns, read through sqlx, to `visit`.
fn visit_row<'r, R>(row: &'r R, visit: &mut impl IndexVisitor) -> Result<(), StoreError>
where
    R: Row,
    usize: sqlx::ColumnIndex<R>,
    &'r str: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    &'r [u8]: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let expires_at: Option<i64> = row.try_get(5)?;
    let rotating_until: Option<i64> = row.try_get(6)?;
    let revoked_at: Option<i64> = row.try_get(7)?;
    visit.visit(&IndexRow {
        hash: hash_of(row.try_get(0)?)?,
        key_id: row.try_get(1)?,
        identity_id: row.try_get(2)?,
        scopes: row.try_get(3)?,
        roles: row.try_get(4)?,
        identity_roles: row.try_get(10)?,
        rate_limit_override: row.try_get(8)?,
        quota_override: row.try_get(9)?,
        identity_rate_limit_override: row.try_get(11)?,
        identity_quota_override: row.try_get(12)?,
        valid_until_ms: valid_until(expires_at, rotating_until),
        revoked: revoked_at.is_some(),
    });
    Ok(())
}

/// PostgreSQL through its own driver: the `Any` driver copies every value of every row.
async fn scan_postgres<V>(
    conn: &mut sqlx::PgConnection,
    scan: IndexScan,
    now: Timestamp,
    mut visit: V,
) -> Result<V, StoreError>
where
    V: IndexVisitor,
{
    let sql = statement(scan, "$1");
    let mut rows = sqlx::query(&sql).bind(param(scan, now)).fetch(conn);
    while let Some(row) = rows.try_next().await? {
        visit_row(&row, &mut visit)?;
    }
    Ok(visit)
}

fn scan_sqlite_file<V>(
    path: &str,
    scan: IndexScan,
    now: Timestamp,
    mut visit: V,
) -> Result<V, StoreError>
where
    V: IndexVisitor,
{
    use rusqlite::OpenFlags;
    let failed = |err: rusqlite::Error| {
        StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
            "reading the keys of {path}: {err}"
        ))))
    };
    // Read-write without create: a WAL reader needs the shared-memory file, and the store
    // already created the database.
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(failed)?;
    conn.busy_timeout(std::time::Duration::from_millis(u64::from(
        super::SQLITE_BUSY_TIMEOUT_MS,
    )))
    .map_err(failed)?;
    let mut statement = conn.prepare(&statement(scan, "?1")).map_err(failed)?;
    let mut rows = statement.query([param(scan, now)]).map_err(failed)?;
    while let Some(row) = rows.next().map_err(failed)? {
        let hash = row
            .get_ref(0)
            .map_err(failed)?
            .as_blob()
            .map_err(|err| StoreError::corrupt("key hash", err))?;
        let value = |i| row.get_ref(i).map_err(failed);
        let text = |i| {
            value(i)?
                .as_str()
                .map_err(|err| StoreError::corrupt("key column", err))
        };
        let optional_text = |i| {
            value(i)?
                .as_str_or_null()
                .map_err(|err| StoreError::corrupt("key column", err))
        };
        let int = |i| {
            value(i)?
                .as_i64_or_null()
                .map_err(|err| StoreError::corrupt("key column", err))
        };
        visit.visit(&IndexRow {
            hash: hash_of(hash)?,
            key_id: text(1)?,
            identity_id: text(2)?,
            scopes: text(3)?,
            roles: text(4)?,
            identity_roles: text(10)?,
            rate_limit_override: optional_text(8)?,
            quota_override: optional_text(9)?,
            identity_rate_limit_override: optional_text(11)?,
            identity_quota_override: optional_text(12)?,
            valid_until_ms: valid_until(int(5)?, int(6)?),
            revoked: int(7)?.is_some(),
        });
    }
    Ok(visit)
}
