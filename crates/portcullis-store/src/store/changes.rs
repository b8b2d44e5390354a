//! Change notification: tells a running gateway that keys or identities changed, so it can
//! reload its in-memory index within a second, whichever process made the change.
//!
//! Every lifecycle transaction bumps `change_counter.value`. Watchers publish the latest value
//! on a `watch` channel:
//! - in-process writers publish right after commit (instant for the same `Store`);
//! - SQLite: a background task polls the counter every [`POLL_INTERVAL`] (one indexed
//!   single-row read);
//! - PostgreSQL: a `PgListener` on [`NOTIFY_CHANNEL`] re-reads the counter on every
//!   notification and after every reconnect; the poll keeps running every
//!   [`PG_SAFETY_POLL`] as a safety net, and at [`POLL_INTERVAL`] whenever LISTEN is down.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::AnyPool;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::MissedTickBehavior;

use super::Backend;

/// PostgreSQL channel lifecycle transactions `pg_notify` on.
pub const NOTIFY_CHANNEL: &str = "portcullis_keys";
/// How often the counter is polled when no notification mechanism is available.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the counter is polled on PostgreSQL while LISTEN works.
pub(crate) const PG_SAFETY_POLL: Duration = Duration::from_secs(5);
/// Pause before re-trying a failed LISTEN connection.
const LISTEN_RETRY: Duration = Duration::from_secs(2);

/// Publishes `value` if it is newer than what the channel holds. The counter only grows
/// (lifecycle transactions are serialised on its row), so an older read is stale, not news.
pub(crate) fn publish(tx: &watch::Sender<i64>, value: i64) {
    tx.send_if_modified(|current| {
        if value > *current {
            *current = value;
            true
        } else {
            false
        }
    });
}

pub(crate) async fn read_counter(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT value FROM change_counter WHERE id = 1")
        .fetch_one(pool)
        .await
}

/// Starts the watcher tasks; the caller aborts them through the returned handles.
pub(crate) fn spawn(
    backend: Backend,
    pool: AnyPool,
    url: String,
    tx: Arc<watch::Sender<i64>>,
    listening: Arc<AtomicBool>,
) -> Vec<AbortHandle> {
    let mut handles = Vec::new();
    if backend == Backend::Postgres {
        let listen = listen_task(pool.clone(), url, Arc::clone(&tx), Arc::clone(&listening));
        handles.push(tokio::spawn(listen).abort_handle());
    }
    handles.push(tokio::spawn(poll_task(pool, tx, listening)).abort_handle());
    handles
}

async fn poll_task(pool: AnyPool, tx: Arc<watch::Sender<i64>>, listening: Arc<AtomicBool>) {
    let mut ticker = tokio::time::interval(POLL_INTERVAL);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let ticks_per_safety_poll = (PG_SAFETY_POLL.as_millis() / POLL_INTERVAL.as_millis()) as u64;
    let mut tick: u64 = 0;
    loop {
        ticker.tick().await;
        tick = tick.wrapping_add(1);
        if listening.load(Ordering::Relaxed) && tick % ticks_per_safety_poll != 0 {
            continue;
        }
        // A failed read is retried on the next tick; the index keeps serving what it has.
        if let Ok(value) = read_counter(&pool).await {
            publish(&tx, value);
        }
    }
}

async fn listen_task(
    pool: AnyPool,
    url: String,
    tx: Arc<watch::Sender<i64>>,
    listening: Arc<AtomicBool>,
) {
    loop {
        if let Ok(mut listener) = PgListener::connect(&url).await {
            if listener.listen(NOTIFY_CHANNEL).await.is_ok() {
                listening.store(true, Ordering::Relaxed);
                // Anything committed before LISTEN took effect is caught by this read.
                if let Ok(value) = read_counter(&pool).await {
                    publish(&tx, value);
                }
                // `try_recv` is awaited alone (not raced in a select!) so no message is ever
                // cut in half by cancellation.
                // A notification, or Ok(None) for a lost connection (which re-LISTENs on
                // the next call): either way, the counter is the truth.
                while let Ok(_notification) = listener.try_recv().await {
                    if let Ok(value) = read_counter(&pool).await {
                        publish(&tx, value);
                    }
                }
            }
        }
        listening.store(false, Ordering::Relaxed);
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}
