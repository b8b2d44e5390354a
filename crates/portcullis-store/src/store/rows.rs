//! Row decoding, dynamic SQL binds, cursors, paged listings and the status conditions shared
//! by queries.

use serde_json::Value;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::{Query, QueryScalar};
use sqlx::{Any, AnyPool, Row};

use crate::clock::Timestamp;
use crate::error::StoreError;
use crate::key::KeyHash;
use crate::model::{self, AuditEvent, Identity, KeyRecord, KeyStatusKind, Page, Paged, QuotaUsage};

pub(crate) const IDENTITY_COLUMNS: &str =
    "id, name, metadata, roles, rate_limit_override, quota_override, created_at, updated_at";

pub(crate) const KEY_COLUMNS: &str = "id, identity_id, display_prefix, env, scopes, roles, \
    metadata, created_at, updated_at, expires_at, last_used_at, request_count, revoked_at, \
    rotating_until, replaced_by, rate_limit_override, quota_override";

/// Values for a statement assembled at run time, numbered `$1`, `$2`, … in order of use.
#[derive(Default)]
pub(crate) struct Binds(Vec<Bind>);

enum Bind {
    Int(i64),
    Text(String),
}

impl Binds {
    /// Adds an integer; returns its placeholder.
    pub(crate) fn int(&mut self, value: i64) -> String {
        self.0.push(Bind::Int(value));
        format!("${}", self.0.len())
    }

    /// Adds a text; returns its placeholder.
    pub(crate) fn text(&mut self, value: &str) -> String {
        self.0.push(Bind::Text(value.to_owned()));
        format!("${}", self.0.len())
    }

    pub(crate) fn bind_all<'q>(
        self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for bind in self.0 {
            query = match bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        query
    }

    pub(crate) fn bind_all_scalar<'q, T>(
        self,
        mut query: QueryScalar<'q, Any, T, AnyArguments<'q>>,
    ) -> QueryScalar<'q, Any, T, AnyArguments<'q>> {
        for bind in self.0 {
            query = match bind {
                Bind::Int(v) => query.bind(v),
                Bind::Text(v) => query.bind(v),
            };
        }
        query
    }
}

/// Keys that authenticate at `now`; must agree with [`crate::model::KeyRecord::status_at`].
pub(crate) fn usable_condition(binds: &mut Binds, now: Timestamp) -> String {
    let now = binds.int(now.unix_millis());
    format!(
        "(revoked_at IS NULL AND (expires_at IS NULL OR expires_at > {now}) \
         AND (rotating_until IS NULL OR rotating_until > {now}))"
    )
}

/// Keys in `status` at `now`; must agree with [`crate::model::KeyRecord::status_at`].
pub(crate) fn status_condition(binds: &mut Binds, status: KeyStatusKind, now: Timestamp) -> String {
    match status {
        KeyStatusKind::Revoked => "revoked_at IS NOT NULL".to_owned(),
        KeyStatusKind::Active => {
            let now = binds.int(now.unix_millis());
            format!(
                "(revoked_at IS NULL AND rotating_until IS NULL \
                 AND (expires_at IS NULL OR expires_at > {now}))"
            )
        }
        KeyStatusKind::Rotating => {
            let now = binds.int(now.unix_millis());
            format!(
                "(revoked_at IS NULL AND rotating_until > {now} \
                 AND (expires_at IS NULL OR expires_at > {now}))"
            )
        }
        KeyStatusKind::Expired => {
            let now = binds.int(now.unix_millis());
            format!("(revoked_at IS NULL AND (expires_at <= {now} OR rotating_until <= {now}))")
        }
    }
}

/// Position in a creation-ordered listing: `<created_at millis>.<id>`.
pub(crate) struct Cursor {
    created_at: i64,
    id: String,
}

impl Cursor {
    pub(crate) fn of(created_at: Timestamp, id: &str) -> String {
        format!("{}.{id}", created_at.unix_millis())
    }

    pub(crate) fn parse(text: &str, id_prefix: &str) -> Result<Cursor, StoreError> {
        let (millis, id) = text.split_once('.').ok_or(StoreError::InvalidCursor)?;
        let created_at = millis.parse().map_err(|_| StoreError::InvalidCursor)?;
        if !model::is_id(id, id_prefix) {
            return Err(StoreError::InvalidCursor);
        }
        Ok(Cursor {
            created_at,
            id: id.to_owned(),
        })
    }

    pub(crate) fn condition(&self, binds: &mut Binds) -> String {
        let at = binds.int(self.created_at);
        let id = binds.text(&self.id);
        format!("(created_at > {at} OR (created_at = {at} AND id > {id}))")
    }
}

/// A creation- or id-ordered listing: `SELECT … [WHERE c1 AND c2 …] ORDER BY … LIMIT n + 1`,
/// the extra row telling whether a next page exists.
pub(crate) struct PageQuery {
    limit: i64,
    binds: Binds,
    conditions: Vec<String>,
}

impl PageQuery {
    /// A query for `page`, whose limit is checked here; its cursor is the caller's to parse.
    pub(crate) fn new(page: &Page) -> Result<PageQuery, StoreError> {
        Ok(PageQuery {
            limit: page.checked_limit()?,
            binds: Binds::default(),
            conditions: Vec::new(),
        })
    }

    /// Adds a condition (ANDed with the others) whose values `condition` binds.
    pub(crate) fn filter(&mut self, condition: impl FnOnce(&mut Binds) -> String) {
        let condition = condition(&mut self.binds);
        self.conditions.push(condition);
    }

    /// Runs `select` (`SELECT … FROM table`) with the conditions, decodes each row, and
    /// returns the page with the cursor after its last item when more rows follow.
    pub(crate) async fn fetch<T>(
        mut self,
        pool: &AnyPool,
        select: &str,
        order_by: &str,
        decode: impl Fn(&AnyRow) -> Result<T, StoreError>,
        cursor: impl Fn(&T) -> String,
    ) -> Result<Paged<T>, StoreError> {
        let mut sql = select.to_owned();
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        let limit = self.binds.int(self.limit + 1);
        sql.push_str(&format!(" ORDER BY {order_by} LIMIT {limit}"));
        let rows = self
            .binds
            .bind_all(sqlx::query(&sql))
            .fetch_all(pool)
            .await?;
        let mut items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        let keep = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > keep {
            items.truncate(keep);
            items.last().map(cursor)
        } else {
            None
        };
        Ok(Paged { items, next_cursor })
    }
}

pub(crate) fn tags_json(tags: &[String]) -> String {
    Value::from(tags.to_vec()).to_string()
}

pub(crate) fn identity(row: &AnyRow) -> Result<Identity, StoreError> {
    Ok(Identity {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        metadata: json(row, "metadata")?,
        roles: tags(row, "roles")?,
        rate_limit_override: row.try_get("rate_limit_override")?,
        quota_override: row.try_get("quota_override")?,
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
    })
}

pub(crate) fn key(row: &AnyRow, now: Timestamp) -> Result<KeyRecord, StoreError> {
    let revoked_at = opt_timestamp(row, "revoked_at")?;
    let expires_at = opt_timestamp(row, "expires_at")?;
    let rotating_until = opt_timestamp(row, "rotating_until")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        identity_id: row.try_get("identity_id")?,
        display_prefix: row.try_get("display_prefix")?,
        env: row.try_get("env")?,
        scopes: tags(row, "scopes")?,
        roles: tags(row, "roles")?,
        metadata: json(row, "metadata")?,
        created_at: timestamp(row, "created_at")?,
        updated_at: timestamp(row, "updated_at")?,
        expires_at,
        last_used_at: opt_timestamp(row, "last_used_at")?,
        request_count: row.try_get("request_count")?,
        status: model::status_at(revoked_at, expires_at, rotating_until, now),
        revoked_at,
        rotating_until,
        rate_limit_override: row.try_get("rate_limit_override")?,
        quota_override: row.try_get("quota_override")?,
        replaced_by: row.try_get("replaced_by")?,
    })
}

pub(crate) fn key_hash(row: &AnyRow) -> Result<KeyHash, StoreError> {
    let bytes: Vec<u8> = row.try_get("key_hash")?;
    KeyHash::from_slice(&bytes)
        .ok_or_else(|| StoreError::corrupt("key_hash", format!("{} bytes, not 32", bytes.len())))
}

pub(crate) fn audit_event(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: row.try_get("id")?,
        at: timestamp(row, "at")?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        source_ip: row.try_get("source_ip")?,
        detail: json(row, "detail")?,
    })
}

pub(crate) fn quota_usage(row: &AnyRow) -> Result<QuotaUsage, StoreError> {
    Ok(QuotaUsage {
        bucket: row.try_get("bucket")?,
        window_start: row.try_get("window_start")?,
        used: used(row.try_get("used")?)?,
    })
}

/// A stored `quota_usage.used`; never negative, since it only ever grows from 0.
pub(crate) fn used(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt("quota_usage.used", format!("{value}")))
}

fn timestamp(row: &AnyRow, column: &str) -> Result<Timestamp, StoreError> {
    let millis: i64 = row.try_get(column)?;
    Timestamp::from_unix_millis(millis)
        .ok_or_else(|| StoreError::corrupt(column, format!("{millis} is out of range")))
}

fn opt_timestamp(row: &AnyRow, column: &str) -> Result<Option<Timestamp>, StoreError> {
    let millis: Option<i64> = row.try_get(column)?;
    millis
        .map(|m| {
            Timestamp::from_unix_millis(m)
                .ok_or_else(|| StoreError::corrupt(column, format!("{m} is out of range")))
        })
        .transpose()
}

fn json(row: &AnyRow, column: &str) -> Result<Value, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|err| StoreError::corrupt(column, err))
}

fn tags(row: &AnyRow, column: &str) -> Result<Vec<String>, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|err| StoreError::corrupt(column, err))
}
