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
use portcullis_store::{Store, StoreError};

/// How long a loaded window is kept at most when its period is not known (longer than any
/// month): it only bounds when the counter is forgotten, never what it allows.
const LONGEST_WINDOW_MS: i64 = 32 * 86_400_000;

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
            limits.quotas.settle(
                &row.bucket,
                row.window_start,
                row.window_start + LONGEST_WINDOW_MS,
                row.used,
            );
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
                limits.quotas.settle(
                    &delta.bucket,
                    delta.window_start,
                    delta.window_start + LONGEST_WINDOW_MS,
                    used,
                );
            }
            Ok(batch.len())
        }
        Err(err) => {
            limits
                .quotas
                .restore(&batch, |start| start + LONGEST_WINDOW_MS);
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
                // The previous month stays readable for the admin API until the next one.
                if let Err(err) = store
                    .prune_quota_usage(month_start - LONGEST_WINDOW_MS)
                    .await
                {
                    tracing::debug!(error = %err, "pruning old quota windows failed");
                }
            }
        }
    })
}
