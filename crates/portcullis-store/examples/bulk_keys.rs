//! Fills a SQLite store with many API keys at once, for the start-time and memory benchmark
//! (`bench/keys.sh --million`). Creating keys through the API writes one durable transaction
//! each; this writes them in one transaction with the same hashing and the same columns.
//!
//! ```sh
//! cargo run --release -p portcullis-store --example bulk_keys -- sqlite:///tmp/keys.db PEPPER 1000000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use portcullis_store::{Actor, ApiKey, KeyHasher, NewIdentity, Store};
use sqlx::Connection as _;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: bulk_keys SQLITE_URL PEPPER COUNT");
    let pepper = args.next().expect("pepper");
    let count: usize = args.next().and_then(|c| c.parse().ok()).expect("count");
    let hasher = KeyHasher::new(pepper.as_bytes()).expect("pepper of at least 16 bytes");
    // Opening through the store creates the file and applies the migrations.
    let store = Store::open(&url, hasher.clone()).await.expect("open store");
    let identity = store
        .create_identity(NewIdentity::named("bulk"), &Actor::new("bench"))
        .await
        .expect("identity");
    store.close().await;

    let path = url.trim_start_matches("sqlite://");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .expect("connect");
    let now = portcullis_store::Timestamp::now().unix_millis();
    let mut tx = conn.begin().await.expect("begin");
    for n in 0..count {
        let key = ApiKey::generate("live").expect("key");
        let parsed = key.parsed();
        let hash = hasher.hash(&parsed);
        sqlx::query(
            "INSERT INTO api_keys (id, identity_id, key_hash, display_prefix, env, scopes, roles, metadata, created_at, updated_at, request_count) \
             VALUES (?, ?, ?, ?, 'live', '[\"orders:read\"]', '[]', '{}', ?, ?, 0)",
        )
        .bind(format!("key_bulk{n:011}"))
        .bind(&identity.id)
        .bind(hash.as_bytes().to_vec())
        .bind(parsed.display_prefix().to_owned())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    sqlx::query("UPDATE change_counter SET value = value + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await
        .expect("bump counter");
    tx.commit().await.expect("commit");
    eprintln!("inserted {count} keys");
}
