//! SQLite-only behaviour: file creation, WAL, in-memory stores, and that a killed writer
//! loses no committed key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestDb;
use portcullis_store::model::{Actor, NewIdentity, NewKey};
use portcullis_store::{Backend, ErrorKind, Store, StoreError};

#[tokio::test]
async fn file_is_created_private_in_wal_mode() {
    let db = TestDb::sqlite();
    let common::Kind::Sqlite { path } = &db.kind else {
        unreachable!()
    };
    assert!(!path.exists());
    let store = db.open().await;
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    raw.close().await;
    // A directory that does not exist is an error, not a silent in-memory store.
    let missing = path.with_file_name("missing-dir").join("x.db");
    let err = Store::open(&format!("sqlite://{}", missing.display()), common::hasher())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal, "{err}");
}

#[tokio::test]
async fn in_memory_store_works() {
    let store = Store::open("sqlite::memory:", common::hasher())
        .await
        .unwrap();
    let acme = store
        .create_identity(NewIdentity::named("acme"), &Actor::new("test"))
        .await
        .unwrap();
    // The single pooled connection keeps the database alive between calls.
    let (key, _) = store
        .create_key(NewKey::for_identity(&acme.id), &Actor::new("test"))
        .await
        .unwrap();
    assert_eq!(store.get_key(&key.id).await.unwrap().id, key.id);
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    for url in ["mysql://localhost/db", "portcullis.db", "redis://x"] {
        let err = Store::open(url, common::hasher()).await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{url}: {err}");
        assert_eq!(err.kind(), ErrorKind::Internal);
    }
}

const CHILD_ENV: &str = "PORTCULLIS_CRASH_TEST_DB";

/// The child half of `killed_writer_loses_no_committed_key`: creates keys until killed,
/// printing each id once `create_key` has returned (i.e. after commit).
fn crash_child(url: &str) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(url, common::hasher()).await.unwrap();
        let actor = Actor::new("crash-child");
        let mut out = std::io::stdout().lock();
        loop {
            let (key, _) = store
                .create_key(NewKey::for_identity("crash"), &actor)
                .await
                .unwrap();
            use std::io::Write;
            writeln!(out, "CREATED {}", key.id).unwrap();
            out.flush().unwrap();
        }
    })
}

#[test]
fn killed_writer_loses_no_committed_key() {
    if let Ok(url) = std::env::var(CHILD_ENV) {
        crash_child(&url);
    }
    let db = TestDb::sqlite();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let store = db.open().await;
        store
            .create_identity(NewIdentity::named("crash"), &Actor::new("test"))
            .await
            .unwrap();
        store.close().await;
    });

    // Several rounds, each SIGKILLed at a different point of its write loop.
    let mut committed = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "killed_writer_loses_no_committed_key",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &db.url)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let target = 40 + round * 17;
        let mut seen = 0;
        while seen < target {
            let line = lines.next().expect("child stopped early").unwrap();
            if let Some(id) = line.strip_prefix("CREATED ") {
                committed.push(id.to_owned());
                seen += 1;
            }
        }
        // Let it get into the middle of another write, then SIGKILL (no cleanup, no flush).
        std::thread::sleep(Duration::from_millis(3 * round as u64));
        child.kill().unwrap();
        // Ids printed before the kill are still in the pipe.
        for line in lines {
            if let Some(id) = line.unwrap().strip_prefix("CREATED ") {
                committed.push(id.to_owned());
            }
        }
        child.wait().unwrap();
    }

    runtime.block_on(async {
        let store = db.open().await;
        for id in &committed {
            store
                .get_key(id)
                .await
                .unwrap_or_else(|err| panic!("committed key {id} lost: {err}"));
        }
        let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&raw)
            .await
            .unwrap();
        assert_eq!(check, "ok");
        raw.close().await;
    });
    assert!(committed.len() >= 40 + 57 + 74);
}
