//! Fills a store with many API keys at once, for the start-time and memory benchmark
//! (`KEYS=1000000 bench/keys.sh`). Creating keys through the API writes one durable
//! transaction each; this writes them in one transaction, many rows per statement, with the
//! same hashing and the same columns.
//!
//! ```sh
//! cargo run --release -p portcullis-store --example bulk_keys -- URL PEPPER COUNT [IDENTITIES]
//! ```
//!
//! URL is a SQLite or PostgreSQL store URL. The keys are spread over IDENTITIES identities
//! (default 1), round robin.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use portcullis_store::{Actor, ApiKey, KeyHasher, NewIdentity, Store};
use sqlx::Connection as _;

/// Rows per INSERT: 7 values each, well under SQLite's and PostgreSQL's bind limits.
const ROWS_PER_STATEMENT: usize = 500;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: bulk_keys URL PEPPER COUNT [IDENTITIES]";
    let url = args.next().expect(usage);
    let pepper = args.next().expect(usage);
    let count: usize = args.next().and_then(|c| c.parse().ok()).expect(usage);
    let identities: usize = args.next().map_or(1, |c| c.parse().expect(usage));
    let hasher = KeyHasher::new(pepper.as_bytes()).expect("pepper of at least 16 bytes");
    // Opening through the store creates the database and applies the migrations.
    let store = Store::open(&url, hasher.clone()).await.expect("open store");
    let run = std::process::id();
    let mut owners = Vec::with_capacity(identities);
    for n in 0..identities.max(1) {
        let identity = store
            .create_identity(
                NewIdentity::named(format!("bulk-{run}-{n}")),
                &Actor::new("bench"),
            )
            .await
            .expect("identity");
        owners.push(identity.id);
    }
    store.close().await;

    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
    let now = portcullis_store::Timestamp::now().unix_millis();
    let mut tx = conn.begin().await.expect("begin");
    // Written as one lifecycle change: running gateways read these rows on their next refresh.
    let seq: i64 = sqlx::query_scalar(
        "UPDATE change_counter SET value = value + 1 WHERE id = 1 RETURNING value",
    )
    .fetch_one(&mut *tx)
    .await
    .expect("bump counter");
    let mut written = 0;
    while written < count {
        let rows = ROWS_PER_STATEMENT.min(count - written);
        let mut sql = String::from(
            "INSERT INTO api_keys (id, identity_id, key_hash, display_prefix, env, scopes, roles, \
             metadata, created_at, updated_at, request_count, change_seq) VALUES ",
        );
        for row in 0..rows {
            let b = row * 7;
            if row > 0 {
                sql.push(',');
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, 'live', '[\"orders:read\"]', '[]', '{{}}', ${}, ${}, 0, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            ));
        }
        let mut query = sqlx::query(&sql);
        for n in written..written + rows {
            let key = ApiKey::generate("live").expect("key");
            let parsed = key.parsed();
            query = query
                .bind(format!("key_bulk{run}x{n:011}"))
                .bind(owners[n % owners.len()].clone())
                .bind(hasher.hash(&parsed).as_bytes().to_vec())
                .bind(parsed.display_prefix().to_owned())
                .bind(now)
                .bind(now)
                .bind(seq);
        }
        query.execute(&mut *tx).await.expect("insert");
        written += rows;
    }
    tx.commit().await.expect("commit");
    eprintln!("inserted {count} keys over {} identities", owners.len());
}
