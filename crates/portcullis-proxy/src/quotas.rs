//! Quota counters kept in the store, so a restart does not hand out a fresh quota.
//!
//! Requests are counted in memory on the request path ([`portcullis_limit::QuotaCounters`]);
//! a background task adds the counts to the store once a second (an atomic `used = used + n`,
//! so gateways sharing a database add up) and takes back the totals, which include what
//! other gateways counted. At start the current windows are loaded. On shutdown the last
//! counts are written.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::LimitState;
use portcullis_limit::{window, QuotaPeriod};
use portcullis_store::{Store, StoreError, Timestamp};

fn now_ms(limits: &LimitState) -> i64 {
    i64::try_from(limits.limiter.clock().now_ns() / 1_000_000).unwrap_or(i64::MAX)
}

/// Loads the counts of the current day and month windows.
pub async fn load(limits: &LimitState, store: &Store) -> Result<usize, StoreError> {
    let now = now_ms(limits);
    let (month_start, _) = window(QuotaPeriod::Month, now);
    let (day_start, _) = window(QuotaPeriod::Day, now);
    let rows = store.quota_usage_since(month_start).await?;
    let mut loaded = 0;
    for row in rows {
        if row.window_start == month_start || row.window_start >= day_start {
            limits
                .quotas
                .settle(&row.bucket, row.window_start, row.used);
            loaded += 1;
        }
    }
    Ok(loaded)
}

/// Writes the counts taken since the last call and takes back the store's totals. A failed
/// write keeps the counts for the next call.
pub async fn flush(limits: &LimitState, store: &Store) -> Result<usize, StoreError> {
    let now = now_ms(limits);
    let batch = limits.quotas.drain(now);
    if batch.is_empty() {
        return Ok(0);
    }
    match store.add_quota_usage(&batch).await {
        Ok(totals) => {
            for (delta, used) in batch.iter().zip(totals) {
                limits
                    .quotas
                    .settle(&delta.bucket, delta.window_start, used);
            }
            Ok(batch.len())
        }
        Err(err) => {
            limits.quotas.restore(&batch);
            Err(err)
        }
    }
}

/// Flushes every `every` until the returned task is aborted; old windows are pruned once an
/// hour. Call [`flush`] once more after the data plane has stopped.
pub fn persist(
    limits: Arc<LimitState>,
    store: Store,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut failing = false;
        let mut last_prune: Option<std::time::Instant> = None;
        loop {
            tokio::time::sleep(every).await;
            match flush(&limits, &store).await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("quota counts are written to the store again");
                }
                Ok(_) => {}
                Err(err) if !failing => {
                    failing = true;
                    tracing::warn!(error = %err, "cannot write quota counts to the store; they are kept and retried");
                }
                Err(_) => {}
            }
            if last_prune.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
                last_prune = Some(std::time::Instant::now());
                let (month_start, _) = window(QuotaPeriod::Month, now_ms(&limits));
                // The previous month stays in the store until the next one starts.
                let (previous_month, _) = window(QuotaPeriod::Month, month_start - 1);
                if let Err(err) = store.prune_quota_usage(previous_month).await {
                    tracing::debug!(error = %err, "pruning old quota windows failed");
                }
            }
        }
    })
}

/// Where one quota of a key stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct QuotaReport {
    /// Route name.
    pub route: String,
    /// Policy name, as in `RateLimit-Policy`.
    pub policy: String,
    /// The quota the key gets (`100000/month`): its override, its identity's, or the route's.
    pub quota: String,
    /// Requests counted in the current window.
    pub used: u64,
    /// Requests left in the current window.
    pub remaining: u64,
    /// Start of the current window.
    pub window_start: portcullis_store::Timestamp,
    /// When the quota renews.
    pub resets_at: portcullis_store::Timestamp,
    /// Whether the quota only logs (`mode = "monitor"`).
    pub monitor: bool,
}

/// The quotas of `routes` that count `key_id`'s requests, and where each stands now. Counts
/// come from the store (every gateway's, up to a second old) and, when given, from this
/// gateway's own counters (which may be fresher).
pub async fn key_report(
    routes: &[portcullis_config::Route],
    store: &Store,
    key_id: &str,
    local: Option<&LimitState>,
) -> Result<Vec<QuotaReport>, StoreError> {
    let key = store.get_key(key_id).await?;
    let identity = store.get_identity(&key.identity_id).await?;
    // As the key index resolves it: the key's own override, else its identity's.
    let caller_override = crate::keys::parse_override(key.quota_override.as_deref())
        .or_else(|| crate::keys::parse_override(identity.quota_override.as_deref()));
    let quotas =
        portcullis_core::ratelimit::key_quotas(routes, &key.identity_id, &key.id, caller_override);
    let now = Timestamp::now().unix_millis();
    let windows: Vec<(i64, i64)> = quotas.iter().map(|q| window(q.quota.period, now)).collect();
    let stored = store
        .quota_usage_of(
            &quotas
                .iter()
                .zip(&windows)
                .map(|(q, (start, _))| (q.bucket.clone(), *start))
                .collect::<Vec<_>>(),
        )
        .await?;
    Ok(quotas
        .into_iter()
        .zip(windows)
        .zip(stored)
        .map(|((q, (start, end)), stored)| {
            let here = local.map_or(0, |l| l.quotas.used(&q.bucket, &q.quota, now));
            let used = stored.max(here);
            QuotaReport {
                route: q.route,
                policy: q.policy,
                quota: q.quota.to_string(),
                used,
                remaining: q.quota.requests.saturating_sub(used),
                window_start: Timestamp::from_unix_millis(start).unwrap_or_else(Timestamp::now),
                resets_at: Timestamp::from_unix_millis(end).unwrap_or_else(Timestamp::now),
                monitor: q.monitor,
            }
        })
        .collect())
}
