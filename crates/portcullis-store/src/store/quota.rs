//! Quota counters shared by every gateway writing to the store: requests per bucket and
//! calendar window, added in batches and read back as totals.
//!
//! Counting is not a lifecycle change: no audit event, no change-counter bump, no reload
//! signal. Additions are atomic in the database (`used = used + delta` in one upsert), never
//! read-modify-write in Rust, so gateways in different processes never lose each other's
//! counts.

use std::cmp::Ordering;

use portcullis_limit::QuotaDelta;
use sqlx::{AnyConnection, Row};

use super::rows::{self, Binds};
use super::{begin_write, Backend, Store};
use crate::error::StoreError;
use crate::model::QuotaUsage;

/// Rows per statement: far below SQLite's 32766 and PostgreSQL's 65535 bound parameters
/// (three per row), and small enough that one statement never holds many row locks at once.
const ROWS_PER_STATEMENT: usize = 200;

/// `used` saturates here instead of overflowing (PostgreSQL would fail the batch; SQLite
/// would silently switch to a floating-point value).
const SATURATED: &str = "9223372036854775807";

impl Store {
    /// Adds each delta to its `(bucket, window_start)` counter, creating missing ones, and
    /// returns the new totals (every gateway's counts included) in the order of `deltas`.
    /// One transaction; an empty batch touches nothing. Deltas for the same counter are
    /// summed, and counters are written in a fixed order, so concurrent batches from several
    /// gateways neither lose counts nor deadlock on PostgreSQL. Totals saturate at `i64::MAX`.
    pub async fn add_quota_usage(&self, deltas: &[QuotaDelta]) -> Result<Vec<u64>, StoreError> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        // Sorted and without duplicates: PostgreSQL refuses to update one row twice in one
        // statement, and the fixed order is the lock order.
        let mut merged: Vec<(&str, i64, i64)> = Vec::with_capacity(deltas.len());
        let mut sorted: Vec<&QuotaDelta> = deltas.iter().collect();
        sorted.sort_by(|a, b| counter_of(a).cmp(&counter_of(b)));
        for delta in sorted {
            let amount = i64::try_from(delta.delta).unwrap_or(i64::MAX);
            match merged.last_mut() {
                Some((bucket, start, sum)) if (*bucket, *start) == counter_of(delta) => {
                    *sum = sum.saturating_add(amount);
                }
                _ => merged.push((delta.bucket.as_str(), delta.window_start, amount)),
            }
        }
        let now = self.now().unix_millis();
        let mut totals: Vec<Option<u64>> = vec![None; merged.len()];
        let mut tx = begin_write(&self.inner.pool, self.inner.backend).await?;
        for chunk in merged.chunks(ROWS_PER_STATEMENT) {
            let mut binds = Binds::default();
            let at = binds.int(now);
            let values: Vec<String> = chunk
                .iter()
                .map(|(bucket, start, amount)| {
                    let bucket = binds.text(bucket);
                    let start = binds.int(*start);
                    let amount = binds.int(*amount);
                    format!("({bucket}, {start}, {amount}, {at})")
                })
                .collect();
            let sql = format!(
                "INSERT INTO quota_usage (bucket, window_start, used, updated_at) VALUES {} \
                 ON CONFLICT (bucket, window_start) DO UPDATE SET \
                 used = CASE WHEN quota_usage.used > {SATURATED} - excluded.used \
                 THEN {SATURATED} ELSE quota_usage.used + excluded.used END, \
                 updated_at = excluded.updated_at \
                 RETURNING bucket, window_start, used",
                values.join(", ")
            );
            // RETURNING order is unspecified (SQLite says so): match rows by counter.
            let rows = binds
                .bind_all(sqlx::query(&sql))
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                let bucket: String = row.try_get("bucket")?;
                let start: i64 = row.try_get("window_start")?;
                let used = rows::used(row.try_get("used")?)?;
                if let Ok(i) =
                    merged.binary_search_by(|(b, s, _)| (*b, *s).cmp(&(bucket.as_str(), start)))
                {
                    totals[i] = Some(used);
                }
            }
        }
        tx.commit().await?;
        deltas
            .iter()
            .map(|delta| {
                merged
                    .binary_search_by(|(b, s, _)| (*b, *s).cmp(&counter_of(delta)))
                    .ok()
                    .and_then(|i| totals[i])
                    .ok_or_else(|| {
                        StoreError::corrupt(
                            "quota_usage",
                            format!(
                                "no total returned for bucket {:?}, window {}",
                                delta.bucket, delta.window_start
                            ),
                        )
                    })
            })
            .collect()
    }

    /// Every counter whose window starts at or after `window_start_min` (Unix milliseconds),
    /// ordered by window then bucket: what a gateway loads at start, and refreshes from, to
    /// know what other gateways have counted in the current windows.
    pub async fn quota_usage_since(
        &self,
        window_start_min: i64,
    ) -> Result<Vec<QuotaUsage>, StoreError> {
        let rows = sqlx::query(
            "SELECT bucket, window_start, used FROM quota_usage WHERE window_start >= $1 \
             ORDER BY window_start, bucket",
        )
        .bind(window_start_min)
        .fetch_all(&self.inner.pool)
        .await?;
        rows.iter().map(rows::quota_usage).collect()
    }

    /// The count of each `(bucket, window_start)`, 0 for counters never written, in the order
    /// asked. One consistent snapshot, however many statements a long list takes.
    pub async fn quota_usage_of(&self, buckets: &[(String, i64)]) -> Result<Vec<u64>, StoreError> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = match self.inner.backend {
            Backend::Sqlite => self.inner.pool.begin().await?,
            Backend::Postgres => {
                self.inner
                    .pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?
            }
        };
        let mut found: Vec<QuotaUsage> = Vec::new();
        for chunk in buckets.chunks(ROWS_PER_STATEMENT) {
            found.extend(select_counters(&mut tx, chunk).await?);
        }
        tx.commit().await?;
        found.sort_by(|a, b| compare(a, (&b.bucket, b.window_start)));
        Ok(buckets
            .iter()
            .map(|(bucket, start)| {
                found
                    .binary_search_by(|usage| compare(usage, (bucket, *start)))
                    .map_or(0, |i| found[i].used)
            })
            .collect())
    }

    /// Deletes the counters of windows that started before `window_start_before` (Unix
    /// milliseconds) and returns how many were deleted. Run it now and then from one place;
    /// a window is only worth keeping while it may still be current.
    pub async fn prune_quota_usage(&self, window_start_before: i64) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM quota_usage WHERE window_start < $1")
                .bind(window_start_before)
                .execute(&self.inner.pool)
                .await?
                .rows_affected(),
        )
    }
}

fn counter_of(delta: &QuotaDelta) -> (&str, i64) {
    (delta.bucket.as_str(), delta.window_start)
}

fn compare(usage: &QuotaUsage, counter: (&str, i64)) -> Ordering {
    (usage.bucket.as_str(), usage.window_start).cmp(&counter)
}

async fn select_counters(
    conn: &mut AnyConnection,
    counters: &[(String, i64)],
) -> Result<Vec<QuotaUsage>, StoreError> {
    let mut binds = Binds::default();
    let conditions: Vec<String> = counters
        .iter()
        .map(|(bucket, start)| {
            let bucket = binds.text(bucket);
            let start = binds.int(*start);
            format!("(bucket = {bucket} AND window_start = {start})")
        })
        .collect();
    let sql = format!(
        "SELECT bucket, window_start, used FROM quota_usage WHERE {}",
        conditions.join(" OR ")
    );
    let rows = binds
        .bind_all(sqlx::query(&sql))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(rows::quota_usage).collect()
}
