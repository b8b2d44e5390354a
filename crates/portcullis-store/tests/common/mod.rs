//! Test databases: a temporary SQLite file, and a throw-away schema on the PostgreSQL server
//! named by `PORTCULLIS_TEST_DATABASE_URL` (skipped, with a message, when it is unset).

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use portcullis_store::{Clock, KeyHasher, ManualClock, Store, Timestamp};
use sqlx::Connection;

pub const PEPPER: &[u8] = b"test pepper, 16+ bytes long";
pub const DATABASE_URL_VAR: &str = "PORTCULLIS_TEST_DATABASE_URL";

pub fn hasher() -> KeyHasher {
    KeyHasher::new(PEPPER).unwrap()
}

/// A database for one test. Dropping it deletes the SQLite file or the PostgreSQL schema,
/// even when the test panicked.
pub struct TestDb {
    pub url: String,
    pub kind: Kind,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Sqlite { path: std::path::PathBuf },
    Postgres { admin_url: String, schema: String },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet would fail; the file itself must not exist:
        // the store creates it on first use.
        let path = dir.path().join("portcullis.db");
        TestDb {
            url: format!("sqlite://{}", path.display()),
            kind: Kind::Sqlite { path },
            _dir: Some(dir),
        }
    }

    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(DATABASE_URL_VAR) else {
            eprintln!("skipping PostgreSQL test {test}: {DATABASE_URL_VAR} is not set");
            return None;
        };
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let schema = format!(
            "pc_test_{}_{}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            Timestamp::now().unix_millis()
        );
        let mut conn = sqlx::postgres::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("{DATABASE_URL_VAR} is set but unreachable: {err}"));
        sqlx::raw_sql(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{schema}");
        Some(TestDb {
            url,
            kind: Kind::Postgres { admin_url, schema },
            _dir: None,
        })
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url, hasher()).await.unwrap()
    }

    pub async fn open_with(&self, clock: &ManualClock) -> Store {
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        Store::open_with_clock(&self.url, hasher(), clock)
            .await
            .unwrap()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, schema } = &self.kind {
            let (admin_url, schema) = (admin_url.clone(), schema.clone());
            // Drop may run inside a Tokio runtime (or while panicking): clean up on a thread
            // with its own runtime.
            let cleanup = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let mut conn = sqlx::postgres::PgConnection::connect(&admin_url)
                        .await
                        .unwrap();
                    sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut conn)
                        .await
                        .unwrap();
                });
            });
            let _ = cleanup.join();
        }
    }
}

/// Runs each listed `async fn NAME(db: &TestDb)` against SQLite and PostgreSQL, as
/// `sqlite::NAME` and `postgres::NAME`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::common::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}
