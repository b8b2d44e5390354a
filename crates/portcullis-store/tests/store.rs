//! The store's behaviour, identical on SQLite and PostgreSQL: every test below runs on both
//! (`sqlite::*`, `postgres::*`; PostgreSQL when `PORTCULLIS_TEST_DATABASE_URL` is set).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::TestDb;
use portcullis_limit::QuotaDelta;
use portcullis_store::key::parse;
use portcullis_store::model::{
    Actor, AuditFilter, IdentityUpdate, KeyFilter, KeyStatusKind, KeyUpdate, NewIdentity, NewKey,
    Page, QuotaUsage, UsageRecord,
};
use portcullis_store::{
    Clock, ErrorKind, IndexRow, IndexScan, IndexVisitor, KeyStatus, ManualClock, SecretString,
    Store, StoreError, Timestamp,
};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

fn admin() -> Actor {
    Actor::new("cli:alice").from_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)))
}

fn hash_of(store: &Store, plaintext: &SecretString) -> portcullis_store::KeyHash {
    store.hasher().hash(&parse(plaintext.expose()).unwrap())
}

async fn identity(store: &Store, name: &str) -> String {
    store
        .create_identity(NewIdentity::named(name), &admin())
        .await
        .unwrap()
        .id
}

fn key_for(identity: &str, scopes: &[&str]) -> NewKey {
    let mut new = NewKey::for_identity(identity);
    new.scopes = scopes.iter().map(|s| s.to_string()).collect();
    new
}

on_both_backends!(
    lifecycle,
    identity_rules,
    rotation_grace_with_injected_clock,
    rotation_never_outlives_own_expiry,
    revoke_is_immediate,
    expiry,
    concurrent_creates_lose_nothing,
    change_seen_by_second_handle_within_one_second,
    pagination,
    usage_batches,
    audit_filters,
    migrations_are_versioned_and_idempotent,
    plaintext_is_never_stored,
    migrations_upgrade_a_version_1_database,
    identity_overrides,
    overrides_are_refused_unless_the_rate_limiter_parses_them,
    quota_usage_accumulates_across_gateways,
    quota_usage_reads_and_prunes,
    quota_usage_survives_a_restart,
    index_scans_read_only_what_changed,
);

async fn lifecycle(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let acme = store
        .create_identity(
            NewIdentity {
                metadata: json!({"tier": "gold"}),
                roles: vec!["customer".into()],
                ..NewIdentity::named("acme")
            },
            &admin(),
        )
        .await
        .unwrap();
    assert!(acme.id.starts_with("idn_"));
    assert_eq!(store.get_identity("acme").await.unwrap(), acme);
    assert_eq!(store.get_identity(&acme.id).await.unwrap(), acme);

    // Create: plaintext once, well-formed, found by its hash.
    let mut new = key_for("acme", &["orders:read", "orders:write"]);
    new.roles = vec!["admin".into()];
    new.metadata = json!({"purpose": "ci"});
    new.expires_at = Some(clock.now().saturating_add(90 * DAY));
    new.rate_limit_override = Some("10/s".into());
    let (key, plaintext) = store.create_key(new, &admin()).await.unwrap();
    let parsed = parse(plaintext.expose()).unwrap();
    assert_eq!(parsed.env(), "live");
    assert_eq!(key.display_prefix, parsed.display_prefix());
    assert!(key.id.starts_with("key_"));
    assert_eq!(key.identity_id, acme.id);
    assert_eq!(key.status, KeyStatus::Active);
    assert_eq!(format!("{plaintext:?}"), "[redacted]");
    let hash = hash_of(&store, &plaintext);
    assert_eq!(store.find_by_hash(&hash).await.unwrap().unwrap(), key);
    assert_eq!(store.verify_hash(&hash).await.unwrap().unwrap(), key);
    assert_eq!(store.get_key(&key.id).await.unwrap(), key);

    // A test-environment key.
    let mut new = key_for(&acme.id, &["orders:read"]);
    new.env = "test".into();
    let (test_key, test_plaintext) = store.create_key(new, &admin()).await.unwrap();
    assert!(test_plaintext.expose().starts_with("pc_test_"));
    assert_eq!(test_key.env, "test");

    // List with filters.
    let all = store
        .list_keys(&KeyFilter::default(), &Page::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    assert_eq!(all.next_cursor, None);
    let by_name = KeyFilter {
        identity: Some("acme".into()),
        status: Some(KeyStatusKind::Active),
    };
    assert_eq!(
        store
            .list_keys(&by_name, &Page::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let unknown = KeyFilter {
        identity: Some("nobody".into()),
        status: None,
    };
    let err = store
        .list_keys(&unknown, &Page::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    // Update scopes, metadata, expiry.
    clock.advance(Duration::from_secs(5));
    let updated = store
        .update_key(
            &key.id,
            KeyUpdate {
                scopes: Some(vec!["orders:read".into()]),
                metadata: Some(json!({"purpose": "nightly"})),
                expires_at: Some(None),
                ..KeyUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(updated.scopes, vec!["orders:read".to_string()]);
    assert_eq!(updated.metadata, json!({"purpose": "nightly"}));
    assert_eq!(updated.expires_at, None);
    assert_eq!(updated.updated_at, clock.now());
    assert_eq!(store.get_key(&key.id).await.unwrap(), updated);
    let err = store
        .update_key(&key.id, KeyUpdate::default(), &admin())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let err = store
        .update_key(
            &key.id,
            KeyUpdate {
                scopes: Some(vec!["has space".into()]),
                ..KeyUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field, .. } if field == "scopes[0]"),
        "{err}"
    );
    let err = store
        .update_key(
            &key.id,
            KeyUpdate {
                scopes: Some(vec!["orders:write".into()]),
                expires_at: Some(Some(clock.now())),
                ..KeyUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Invalid { field, .. } if field == "expires_at"),
        "{err}"
    );
    assert_eq!(store.get_key(&key.id).await.unwrap(), updated);

    // Delete is refused while keys authenticate, then allowed once they are revoked.
    let err = store.delete_identity("acme", &admin()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::IdentityHasActiveKeys { count: 2, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    store.revoke_key(&key.id, &admin()).await.unwrap();
    store.revoke_key(&test_key.id, &admin()).await.unwrap();
    store.delete_identity("acme", &admin()).await.unwrap();
    let err = store.get_identity("acme").await.unwrap_err();
    assert!(matches!(err, StoreError::IdentityNotFound(_)));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = store.get_key(&key.id).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyNotFound(_)));
    assert_eq!(store.find_by_hash(&hash).await.unwrap(), None);

    // Every lifecycle step is in the audit log, newest first, with who and from where.
    let events = store
        .audit(&AuditFilter::default(), &Page::default())
        .await
        .unwrap()
        .items;
    let actions: Vec<&str> = events.iter().rev().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "identity.create",
            "key.create",
            "key.create",
            "key.update",
            "key.revoke",
            "key.revoke",
            "identity.delete"
        ]
    );
    for event in &events {
        assert_eq!(event.actor, "cli:alice");
        assert_eq!(event.source_ip.as_deref(), Some("192.0.2.7"));
    }
    let update = events.iter().find(|e| e.action == "key.update").unwrap();
    assert_eq!(update.target, key.id);
    assert_eq!(
        update.detail["changes"]["scopes"],
        json!({"from": ["orders:read", "orders:write"], "to": ["orders:read"]})
    );
}

async fn identity_rules(db: &TestDb) {
    let store = db.open().await;
    let acme = identity(&store, "acme").await;
    let before = store.change_counter().await.unwrap();
    let err = store
        .create_identity(NewIdentity::named("acme"), &admin())
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::DuplicateIdentityName(n) if n == "acme"));
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(err.to_string(), "an identity named \"acme\" already exists");

    identity(&store, "globex").await;
    let err = store
        .update_identity(
            "globex",
            IdentityUpdate {
                name: Some("acme".into()),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateIdentityName(_)));
    // Both refusals rolled back: only creating globex moved the counter or wrote an event.
    assert_eq!(store.change_counter().await.unwrap(), before + 1);
    assert_eq!(store.get_identity("globex").await.unwrap().name, "globex");
    let events = store
        .audit(&AuditFilter::default(), &Page::default())
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 2, "{events:?}");
    // Naming the current name changes nothing about the name.
    let same = store
        .update_identity(
            "globex",
            IdentityUpdate {
                name: Some("globex".into()),
                roles: Some(vec!["partner".into()]),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(same.name, "globex");
    let event = store
        .audit(
            &AuditFilter {
                action: Some("identity.update".into()),
                ..AuditFilter::default()
            },
            &Page::first(1),
        )
        .await
        .unwrap()
        .items
        .remove(0);
    assert_eq!(
        event.detail,
        json!({"changes": {"roles": {"from": [], "to": ["partner"]}}})
    );

    let renamed = store
        .update_identity(
            &acme,
            IdentityUpdate {
                name: Some("acme-corp".into()),
                roles: Some(vec!["partner".into()]),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "acme-corp");
    assert_eq!(store.get_identity("acme-corp").await.unwrap(), renamed);
    assert!(store.get_identity("acme").await.is_err());

    for bad in ["", "idn_sneaky", " padded", "tab\there"] {
        let err = store
            .create_identity(NewIdentity::named(bad), &admin())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{bad:?}: {err}");
    }
    let mut bad_meta = NewIdentity::named("meta");
    bad_meta.metadata = json!("not an object");
    assert_eq!(
        store
            .create_identity(bad_meta, &admin())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
    let err = store
        .create_key(key_for("nobody", &[]), &admin())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IdentityNotFound(_)));
    let mut bad_env = key_for(&acme, &[]);
    bad_env.env = "LIVE".into();
    let err = store.create_key(bad_env, &admin()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Invalid { field, .. } if field == "env"));
    // An identity with no usable keys is deletable at once.
    store.delete_identity("globex", &admin()).await.unwrap();
    let err = store.delete_identity("globex", &admin()).await.unwrap_err();
    assert!(matches!(err, StoreError::IdentityNotFound(_)));
}

async fn rotation_grace_with_injected_clock(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let id = identity(&store, "acme").await;
    let mut new = key_for(&id, &["orders:read"]);
    new.expires_at = Some(clock.now().saturating_add(10 * DAY));
    let (old, old_plaintext) = store.create_key(new, &admin()).await.unwrap();
    let old_hash = hash_of(&store, &old_plaintext);

    let rotated_at = clock.now();
    let rotated = store.rotate_key(&old.id, HOUR, &admin()).await.unwrap();
    let grace_end = rotated_at.saturating_add(HOUR);
    assert_eq!(
        rotated.previous.status,
        KeyStatus::Rotating { until: grace_end }
    );
    assert_eq!(
        rotated.previous.replaced_by.as_deref(),
        Some(rotated.key.id.as_str())
    );
    assert_eq!(rotated.key.scopes, old.scopes);
    assert_eq!(rotated.key.expires_at, old.expires_at);
    assert_eq!(rotated.key.identity_id, old.identity_id);
    assert_ne!(rotated.plaintext, old_plaintext);
    let new_hash = hash_of(&store, &rotated.plaintext);

    // Both are visible as such, and both authenticate during the grace period.
    assert_eq!(
        store.get_key(&old.id).await.unwrap().status,
        KeyStatus::Rotating { until: grace_end }
    );
    let rotating = KeyFilter {
        status: Some(KeyStatusKind::Rotating),
        ..KeyFilter::default()
    };
    let listed = store.list_keys(&rotating, &Page::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, old.id);
    clock.advance(HOUR - Duration::from_millis(1));
    assert!(store.verify_hash(&old_hash).await.unwrap().is_some());
    assert!(store.verify_hash(&new_hash).await.unwrap().is_some());
    let index = store.load_all_active(clock.now()).await.unwrap();
    assert_eq!(index.len(), 2);
    assert!(index.iter().any(|(h, k)| *h == old_hash && k.id == old.id));

    // One millisecond later the old key is done; the new one carries on.
    clock.advance(Duration::from_millis(1));
    assert_eq!(store.verify_hash(&old_hash).await.unwrap(), None);
    assert_eq!(
        store.get_key(&old.id).await.unwrap().status,
        KeyStatus::Expired
    );
    assert!(store.verify_hash(&new_hash).await.unwrap().is_some());
    let index = store.load_all_active(clock.now()).await.unwrap();
    assert_eq!(index.len(), 1);
    assert_eq!(index[0].1.id, rotated.key.id);
    // An index built earlier sees the same thing through status_at.
    assert!(!rotated.previous.is_usable_at(clock.now()));

    // A rotated (or expired) key cannot be rotated again; its replacement can.
    let err = store.rotate_key(&old.id, HOUR, &admin()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::KeyState {
                operation: "rotate",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = store
        .rotate_key(&rotated.key.id, 31 * DAY, &admin())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    let again = store
        .rotate_key(&rotated.key.id, Duration::ZERO, &admin())
        .await
        .unwrap();
    assert_eq!(again.previous.status, KeyStatus::Expired);

    // Expiry of both rotated keys shows up in the audit log once.
    let swept = store.sweep_expired(&Actor::new("system")).await.unwrap();
    assert!(swept.windows(2).all(|w| w[0] < w[1]), "{swept:?}");
    assert_eq!(
        swept.iter().collect::<HashSet<_>>(),
        [&old.id, &rotated.key.id].into_iter().collect()
    );
    assert!(store
        .sweep_expired(&Actor::new("system"))
        .await
        .unwrap()
        .is_empty());
    let expire_events = store
        .audit(
            &AuditFilter {
                action: Some("key.expire".into()),
                target: Some(old.id.clone()),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(expire_events.len(), 1);
    assert_eq!(expire_events[0].detail["reason"], "rotation_grace_ended");
    let rotate_event = store
        .audit(
            &AuditFilter {
                action: Some("key.rotate".into()),
                target: Some(old.id.clone()),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(rotate_event[0].detail["replaced_by"], json!(rotated.key.id));
}

async fn rotation_never_outlives_own_expiry(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let id = identity(&store, "acme").await;
    let mut new = key_for(&id, &[]);
    let expires_at = clock.now().saturating_add(Duration::from_secs(30 * 60));
    new.expires_at = Some(expires_at);
    let (old, old_plaintext) = store.create_key(new, &admin()).await.unwrap();
    let rotated = store.rotate_key(&old.id, DAY, &admin()).await.unwrap();
    assert_eq!(rotated.previous.rotating_until, Some(expires_at));
    assert_eq!(
        rotated.previous.status,
        KeyStatus::Rotating { until: expires_at }
    );
    clock.set(expires_at);
    let old_hash = hash_of(&store, &old_plaintext);
    assert_eq!(store.verify_hash(&old_hash).await.unwrap(), None);
    assert_eq!(
        store.get_key(&old.id).await.unwrap().status,
        KeyStatus::Expired
    );
}

async fn revoke_is_immediate(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let id = identity(&store, "acme").await;
    let (key, plaintext) = store.create_key(key_for(&id, &[]), &admin()).await.unwrap();
    let (other, _) = store.create_key(key_for(&id, &[]), &admin()).await.unwrap();
    let hash = hash_of(&store, &plaintext);
    let revoked = store.revoke_key(&key.id, &admin()).await.unwrap();
    assert_eq!(revoked.status, KeyStatus::Revoked { at: clock.now() });
    // No time passes: the very next lookup refuses it.
    assert_eq!(store.verify_hash(&hash).await.unwrap(), None);
    assert_eq!(
        store.find_by_hash(&hash).await.unwrap().unwrap().status,
        KeyStatus::Revoked { at: clock.now() }
    );
    let index = store.load_all_active(clock.now()).await.unwrap();
    assert_eq!(
        index.iter().map(|(_, k)| k.id.clone()).collect::<Vec<_>>(),
        [other.id]
    );
    for err in [
        store.revoke_key(&key.id, &admin()).await.unwrap_err(),
        store.rotate_key(&key.id, HOUR, &admin()).await.unwrap_err(),
        store
            .update_key(
                &key.id,
                KeyUpdate {
                    scopes: Some(vec![]),
                    ..KeyUpdate::default()
                },
                &admin(),
            )
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::KeyState { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Conflict);
    }
    let err = store
        .revoke_key("key_0000000000000000", &admin())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyNotFound(_)));
    let revoked_list = store
        .list_keys(
            &KeyFilter {
                status: Some(KeyStatusKind::Revoked),
                ..KeyFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(revoked_list.items.len(), 1);
}

async fn expiry(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let id = identity(&store, "acme").await;
    let mut new = key_for(&id, &[]);
    new.expires_at = Some(clock.now());
    let err = store.create_key(new.clone(), &admin()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Invalid { field, .. } if field == "expires_at"));
    new.expires_at = Some(clock.now().saturating_add(HOUR));
    let (key, plaintext) = store.create_key(new, &admin()).await.unwrap();
    let hash = hash_of(&store, &plaintext);
    assert!(store.verify_hash(&hash).await.unwrap().is_some());
    clock.advance(HOUR);
    assert_eq!(store.verify_hash(&hash).await.unwrap(), None);
    assert_eq!(
        store.get_key(&key.id).await.unwrap().status,
        KeyStatus::Expired
    );
    assert!(store.load_all_active(clock.now()).await.unwrap().is_empty());
    let expired = store
        .list_keys(
            &KeyFilter {
                status: Some(KeyStatusKind::Expired),
                ..KeyFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(expired.items.len(), 1);
    // Moving the expiry does not revive an expired key.
    let err = store
        .update_key(
            &key.id,
            KeyUpdate {
                expires_at: Some(None),
                ..KeyUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::KeyState {
            operation: "update",
            ..
        }
    ));
    // An identity whose keys all expired can be deleted.
    store.delete_identity(&id, &admin()).await.unwrap();
    assert_eq!(
        store.sweep_expired(&Actor::new("system")).await.unwrap(),
        Vec::<String>::new(),
        "deleted keys are not swept"
    );
    // A key past its own expiry is swept once, as ended by that expiry.
    let globex = identity(&store, "globex").await;
    let mut new = key_for(&globex, &[]);
    let expires_at = clock.now().saturating_add(Duration::from_millis(1));
    new.expires_at = Some(expires_at);
    let (other, _) = store.create_key(new, &admin()).await.unwrap();
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        store.sweep_expired(&Actor::new("system")).await.unwrap(),
        [other.id.as_str()]
    );
    let events = store
        .audit(
            &AuditFilter {
                action: Some("key.expire".into()),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target, other.id);
    assert_eq!(
        events[0].detail,
        json!({"reason": "expires_at", "ended_at": expires_at})
    );
    assert!(store
        .sweep_expired(&Actor::new("system"))
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_creates_lose_nothing(db: &TestDb) {
    let store = db.open().await;
    // A second pool on the same database writes at the same time.
    let other = db.open().await;
    let id = identity(&store, "acme").await;
    let before = store.change_counter().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let actor = Actor::new(format!("task-{i}"));
            store
                .create_key(key_for(&id, &["orders:read"]), &actor)
                .await
        }));
    }
    let mut created = HashSet::new();
    for task in tasks {
        let (key, _) = task.await.unwrap().unwrap();
        created.insert(key.id);
    }
    assert_eq!(created.len(), 50);
    let mut listed = HashSet::new();
    let mut page = Page::first(7);
    loop {
        let result = store.list_keys(&KeyFilter::default(), &page).await.unwrap();
        listed.extend(result.items.into_iter().map(|k| k.id));
        match result.next_cursor {
            Some(cursor) => page = Page::after(7, cursor),
            None => break,
        }
    }
    assert_eq!(listed, created);
    assert_eq!(store.change_counter().await.unwrap(), before + 50);
    let audit = store
        .audit(
            &AuditFilter {
                action: Some("key.create".into()),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(audit.items.len(), 50);
    assert_eq!(
        store.load_all_active(Timestamp::now()).await.unwrap().len(),
        50
    );
}

async fn change_seen_by_second_handle_within_one_second(db: &TestDb) {
    let writer = db.open().await;
    let reader = db.open().await;
    let mut changes = reader.changes().await;
    let start = *changes.borrow_and_update();
    let id = identity(&writer, "acme").await;
    let (key, _) = writer
        .create_key(key_for(&id, &[]), &admin())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(1), changes.changed())
        .await
        .expect("create not seen within 1 s")
        .unwrap();
    assert!(*changes.borrow_and_update() > start);

    // Wait until the reader has caught up with both writes, then revoke.
    let target = writer.change_counter().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(1),
        changes.wait_for(|value| *value >= target),
    )
    .await
    .expect("reader did not catch up")
    .unwrap();
    writer.revoke_key(&key.id, &admin()).await.unwrap();
    let revoked_at = writer.change_counter().await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(1),
        changes.wait_for(|value| *value >= revoked_at),
    )
    .await
    .expect("revocation not seen within 1 s")
    .unwrap();
    // What the signal promises: a reload now sees the revocation.
    assert!(reader
        .load_all_active(Timestamp::now())
        .await
        .unwrap()
        .is_empty());

    // The writer's own feed updates at commit, without waiting for a poll.
    let own = writer.changes().await;
    identity(&writer, "globex").await;
    assert!(own.has_changed().unwrap());
}

async fn pagination(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    // Same timestamp for several rows: the id breaks ties.
    for i in 0..5 {
        identity(&store, &format!("customer-{i}")).await;
        if i % 2 == 0 {
            clock.advance(Duration::from_millis(1));
        }
    }
    let mut seen = Vec::new();
    let mut page = Page::first(2);
    let mut pages = 0;
    loop {
        let result = store.list_identities(&page).await.unwrap();
        pages += 1;
        seen.extend(result.items.into_iter().map(|i| i.name));
        match result.next_cursor {
            Some(cursor) => page = Page::after(2, cursor),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "{seen:?}");
    for bad in [
        "",
        "nonsense",
        "12.key_0000000000000000",
        "x.idn_0000000000000000",
    ] {
        let err = store
            .list_identities(&Page::after(2, bad))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidCursor), "{bad:?}");
    }
    for limit in [0, 1001] {
        let err = store
            .list_identities(&Page::first(limit))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
    }
}

async fn usage_batches(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let id = identity(&store, "acme").await;
    let (a, _) = store.create_key(key_for(&id, &[]), &admin()).await.unwrap();
    let (b, _) = store.create_key(key_for(&id, &[]), &admin()).await.unwrap();
    let counter = store.change_counter().await.unwrap();
    let t1 = clock.now().saturating_add(Duration::from_secs(1));
    let t2 = clock.now().saturating_add(Duration::from_secs(2));
    let updated = store
        .record_usage(&[
            UsageRecord {
                key_id: a.id.clone(),
                count: 3,
                last_used: t2,
            },
            UsageRecord {
                key_id: b.id.clone(),
                count: 1,
                last_used: t1,
            },
            UsageRecord {
                key_id: a.id.clone(),
                count: 4,
                last_used: t1,
            },
            UsageRecord {
                key_id: "key_0000000000000000".into(),
                count: 9,
                last_used: t1,
            },
        ])
        .await
        .unwrap();
    assert_eq!(updated, 2);
    let a = store.get_key(&a.id).await.unwrap();
    assert_eq!((a.request_count, a.last_used_at), (7, Some(t2)));
    // An older batch never moves last_used_at backwards.
    store
        .record_usage(&[UsageRecord {
            key_id: a.id.clone(),
            count: 1,
            last_used: t1,
        }])
        .await
        .unwrap();
    let a = store.get_key(&a.id).await.unwrap();
    assert_eq!((a.request_count, a.last_used_at), (8, Some(t2)));
    assert_eq!(store.get_key(&b.id).await.unwrap().request_count, 1);
    assert_eq!(store.record_usage(&[]).await.unwrap(), 0);
    // Usage is not a lifecycle change: no reload signal, no audit event.
    assert_eq!(store.change_counter().await.unwrap(), counter);
}

async fn audit_filters(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let start = clock.now();
    let bob = Actor::new("admin:bob");
    let acme = store
        .create_identity(NewIdentity::named("acme"), &bob)
        .await
        .unwrap();
    clock.advance(HOUR);
    for i in 0..5 {
        identity(&store, &format!("other-{i}")).await;
    }
    let by_bob = store
        .audit(
            &AuditFilter {
                actor: Some("admin:bob".into()),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(by_bob.items.len(), 1);
    assert_eq!(by_bob.items[0].target, acme.id);
    assert_eq!(by_bob.items[0].source_ip, None);
    assert_eq!(by_bob.items[0].at, start);
    let early = store
        .audit(
            &AuditFilter {
                until: Some(start.saturating_add(Duration::from_secs(1))),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(early.items.len(), 1);
    let late = store
        .audit(
            &AuditFilter {
                since: Some(start.saturating_add(Duration::from_secs(1))),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap();
    assert_eq!(late.items.len(), 5);
    // Pages are newest first and do not overlap.
    let first = store
        .audit(&AuditFilter::default(), &Page::first(4))
        .await
        .unwrap();
    let second = store
        .audit(
            &AuditFilter::default(),
            &Page::after(4, first.next_cursor.clone().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 4);
    assert_eq!(second.items.len(), 2);
    assert_eq!(second.next_cursor, None);
    let ids: Vec<i64> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|e| e.id)
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let err = store
        .audit(&AuditFilter::default(), &Page::after(4, "abc"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor));
    let err = store
        .create_identity(NewIdentity::named("x"), &Actor::new(""))
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::Invalid { field, .. } if field == "actor"));
}

async fn migrations_are_versioned_and_idempotent(db: &TestDb) {
    let store = db.open().await;
    identity(&store, "acme").await;
    store.close().await;
    // Reopening applies nothing and keeps the data.
    let store = db.open().await;
    assert_eq!(store.get_identity("acme").await.unwrap().name, "acme");
    assert_eq!(Store::schema_version(), 3);
    // A database from a newer build is refused rather than misread.
    let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)",
    )
    .execute(&raw)
    .await
    .unwrap();
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&raw)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3, 99]);
    raw.close().await;
    let err = Store::open(&db.url, common::hasher()).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 3
            }
        ),
        "{err}"
    );
}

async fn plaintext_is_never_stored(db: &TestDb) {
    let store = db.open().await;
    let id = identity(&store, "acme").await;
    let (key, plaintext) = store.create_key(key_for(&id, &[]), &admin()).await.unwrap();
    let rotated = store.rotate_key(&key.id, HOUR, &admin()).await.unwrap();
    let secrets = [
        plaintext.expose().to_owned(),
        rotated.plaintext.expose().to_owned(),
    ];
    // Every text column of every row, as the database returns it.
    let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let mut dump = String::new();
    for sql in [
        "SELECT id || display_prefix || scopes || roles || metadata FROM api_keys",
        "SELECT actor || action || target || detail FROM audit_events",
        "SELECT id || name || metadata || roles FROM identities",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&raw).await.unwrap();
        dump.push_str(&rows.join("\n"));
    }
    raw.close().await;
    for secret in &secrets {
        // Not the key, and not its secret part either.
        assert!(!dump.contains(secret.as_str()));
        assert!(!dump.contains(&secret[12..30]));
    }
    if let common::Kind::Sqlite { path } = &db.kind {
        // The raw file and its WAL, byte for byte.
        for file in [path.clone(), path.with_extension("db-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                let text = String::from_utf8_lossy(&bytes);
                for secret in &secrets {
                    assert!(!text.contains(&secret[12..30]), "{}", file.display());
                }
            }
        }
    }
}

/// PostgreSQL only: with LISTEN up, the safety poll runs every 5 s, so three changes each seen
/// within a second can only have come through NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_changes_arrive_by_notify() {
    let Some(db) = TestDb::postgres("postgres_changes_arrive_by_notify").await else {
        return;
    };
    let writer = db.open().await;
    let reader = db.open().await;
    let mut changes = reader.changes().await;
    tokio::time::timeout(Duration::from_secs(10), async {
        while !reader.change_feed_listening() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("LISTEN never came up");
    for i in 0..3 {
        identity(&writer, &format!("customer-{i}")).await;
        let target = writer.change_counter().await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(1),
            changes.wait_for(|value| *value >= target),
        )
        .await
        .expect("change not seen within 1 s")
        .unwrap();
    }
    assert!(reader.change_feed_listening());
}

/// A database left at schema version 1 by an older build: only `0001_initial.sql` applied,
/// exactly as that build's runner did it.
async fn version_1_database(db: &TestDb) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = if db.is_postgres() {
        db.url.clone()
    } else {
        format!("{}?mode=rwc", db.url)
    };
    let raw = sqlx::AnyPool::connect(&url).await.unwrap();
    let (blob, serial_pk) = if db.is_postgres() {
        (
            "BYTEA",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        )
    } else {
        ("BLOB", "INTEGER PRIMARY KEY AUTOINCREMENT")
    };
    let v1 = include_str!("../migrations/0001_initial.sql")
        .replace("{{blob}}", blob)
        .replace("{{serial_pk}}", serial_pk);
    sqlx::raw_sql(&v1).execute(&raw).await.unwrap();
    // A 32-byte key hash, in each database's literal syntax.
    let hash = "ab".repeat(32);
    let hash = if db.is_postgres() {
        format!("'\\x{hash}'::bytea")
    } else {
        format!("X'{hash}'")
    };
    sqlx::raw_sql(&format!(
        "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
         name TEXT NOT NULL, applied_at BIGINT NOT NULL); \
         INSERT INTO schema_migrations (version, name, applied_at) \
         VALUES (1, 'initial schema', 0); \
         INSERT INTO identities (id, name, metadata, roles, created_at, updated_at) \
         VALUES ('idn_0000000000000001', 'old', '{{}}', '[\"legacy\"]', 1000, 1000); \
         INSERT INTO api_keys (id, identity_id, key_hash, display_prefix, env, scopes, roles, \
         metadata, created_at, updated_at) VALUES ('key_0000000000000001', \
         'idn_0000000000000001', {hash}, 'pc_live_0123', 'live', '[]', '[]', '{{}}', 1000, \
         1000);"
    ))
    .execute(&raw)
    .await
    .unwrap();
    raw
}

async fn migrations_upgrade_a_version_1_database(db: &TestDb) {
    let raw = version_1_database(db).await;
    let store = db.open().await;
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(&raw)
            .await
            .unwrap();
    assert_eq!(versions, [1, 2, 3]);
    // The key from version 1 is read by a gateway that starts (version 3: its change_seq is
    // 0), and not as a change.
    let (all, seq) = scan(&store, IndexScan::Usable).await;
    assert_eq!(ids(&all), ["key_0000000000000001"]);
    assert!(scan(&store, IndexScan::ChangedSince(seq))
        .await
        .0
        .is_empty());
    // The identity from version 1 is intact, without overrides.
    let old = store.get_identity("old").await.unwrap();
    assert_eq!(old.roles, ["legacy"]);
    assert_eq!((old.rate_limit_override, old.quota_override), (None, None));
    // The new columns are there, nullable, and writable through the store.
    let updated = store
        .update_identity(
            "old",
            IdentityUpdate {
                rate_limit_override: Some(Some("100/s".into())),
                quota_override: Some(Some("1000/day".into())),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let (rate, quota): (Option<String>, Option<String>) =
        sqlx::query_as("SELECT rate_limit_override, quota_override FROM identities WHERE id = $1")
            .bind(&updated.id)
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(
        (rate.as_deref(), quota.as_deref()),
        (Some("100/s"), Some("1000/day"))
    );
    // And the quota table, empty.
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quota_usage")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    raw.close().await;
    // A second start applies nothing more.
    store.close().await;
    let store = db.open().await;
    assert_eq!(
        store.get_identity("old").await.unwrap().rate_limit_override,
        Some("100/s".into())
    );
}

async fn identity_overrides(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let acme = store
        .create_identity(
            NewIdentity {
                rate_limit_override: Some("100/s".into()),
                quota_override: Some("50000/month".into()),
                ..NewIdentity::named("acme")
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(acme.rate_limit_override.as_deref(), Some("100/s"));
    assert_eq!(acme.quota_override.as_deref(), Some("50000/month"));
    assert_eq!(store.get_identity("acme").await.unwrap(), acme);
    // Listed in creation order; the same instant would order by (random) id.
    clock.advance(Duration::from_millis(1));
    let plain = store
        .create_identity(NewIdentity::named("plain"), &admin())
        .await
        .unwrap();
    assert_eq!(
        (plain.rate_limit_override, plain.quota_override),
        (None, None)
    );
    let listed = store.list_identities(&Page::default()).await.unwrap().items;
    assert_eq!(listed[0], acme);
    // JSON shape: the same field names as on keys, null when unset.
    let json = serde_json::to_value(&listed[1]).unwrap();
    assert_eq!(json["rate_limit_override"], serde_json::Value::Null);
    assert_eq!(json["quota_override"], serde_json::Value::Null);

    // Change one, clear the other, leave the rest.
    clock.advance(Duration::from_secs(1));
    let updated = store
        .update_identity(
            "acme",
            IdentityUpdate {
                rate_limit_override: Some(Some("1000/h".into())),
                quota_override: Some(None),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(updated.rate_limit_override.as_deref(), Some("1000/h"));
    assert_eq!(updated.quota_override, None);
    assert_eq!(updated.name, "acme");
    assert_eq!(updated.updated_at, clock.now());
    assert_eq!(store.get_identity(&acme.id).await.unwrap(), updated);
    // Absent fields are kept.
    let renamed = store
        .update_identity(
            "acme",
            IdentityUpdate {
                name: Some("acme-corp".into()),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    assert_eq!(renamed.rate_limit_override.as_deref(), Some("1000/h"));
    assert_eq!(renamed.quota_override, None);

    // Audited like the key overrides: on create, and from/to on update.
    let events = store
        .audit(
            &AuditFilter {
                target: Some(acme.id.clone()),
                ..AuditFilter::default()
            },
            &Page::default(),
        )
        .await
        .unwrap()
        .items;
    let created = events
        .iter()
        .find(|e| e.action == "identity.create")
        .unwrap();
    assert_eq!(created.detail["rate_limit_override"], "100/s");
    assert_eq!(created.detail["quota_override"], "50000/month");
    let update = events
        .iter()
        .find(|e| e.detail["changes"].get("quota_override").is_some())
        .unwrap();
    assert_eq!(update.action, "identity.update");
    assert_eq!(
        update.detail["changes"],
        json!({
            "rate_limit_override": {"from": "100/s", "to": "1000/h"},
            "quota_override": {"from": "50000/month", "to": null},
        })
    );
}

async fn overrides_are_refused_unless_the_rate_limiter_parses_them(db: &TestDb) {
    let store = db.open().await;
    let id = identity(&store, "acme").await;
    let before = store.change_counter().await.unwrap();
    let invalid = |err: StoreError, want: &str, reason_has: &str| {
        assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
        assert!(
            matches!(&err, StoreError::Invalid { field, reason }
                if field == want && reason.contains(reason_has)),
            "{err}"
        );
    };
    let err = store
        .create_identity(
            NewIdentity {
                rate_limit_override: Some("10/week".into()),
                ..NewIdentity::named("bad-rate")
            },
            &admin(),
        )
        .await
        .unwrap_err();
    invalid(err, "rate_limit_override", "unknown rate unit \"week\"");
    let err = store
        .create_identity(
            NewIdentity {
                quota_override: Some("5/s".into()),
                ..NewIdentity::named("bad-quota")
            },
            &admin(),
        )
        .await
        .unwrap_err();
    invalid(err, "quota_override", "unknown quota period \"s\"");
    let err = store
        .update_identity(
            &id,
            IdentityUpdate {
                quota_override: Some(Some("0/day".into())),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    invalid(err, "quota_override", "at least 1");
    let err = store
        .update_identity(
            &id,
            IdentityUpdate {
                rate_limit_override: Some(Some("lots".into())),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    invalid(err, "rate_limit_override", "is not a rate");
    // Keys are held to the same syntax.
    let mut new = key_for(&id, &[]);
    new.quota_override = Some("1000/week".into());
    let err = store.create_key(new, &admin()).await.unwrap_err();
    invalid(err, "quota_override", "unknown quota period");
    let mut new = key_for(&id, &[]);
    new.rate_limit_override = Some("100/s".into());
    new.quota_override = Some("1000/day".into());
    let (key, _) = store.create_key(new, &admin()).await.unwrap();
    let err = store
        .update_key(
            &key.id,
            KeyUpdate {
                rate_limit_override: Some(Some("100/fortnight".into())),
                ..KeyUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap_err();
    invalid(err, "rate_limit_override", "unknown rate unit");
    // Nothing refused was written: only the key create moved the counter.
    assert_eq!(store.change_counter().await.unwrap(), before + 1);
    assert!(store.get_identity("bad-rate").await.is_err());
    assert_eq!(store.get_identity(&id).await.unwrap().quota_override, None);
}

fn delta(bucket: &str, window_start: i64, delta: u64) -> QuotaDelta {
    QuotaDelta {
        bucket: bucket.into(),
        window_start,
        delta,
    }
}

/// 2026-11-22T00:00:00Z, a day window.
const TODAY: i64 = 1_795_305_600_000;
const YESTERDAY: i64 = TODAY - 86_400_000;

async fn quota_usage_accumulates_across_gateways(db: &TestDb) {
    // Two handles on one database: two gateways.
    let a = db.open().await;
    let b = db.open().await;
    let counter = a.change_counter().await.unwrap();
    assert_eq!(a.add_quota_usage(&[]).await.unwrap(), Vec::<u64>::new());
    // Totals come back in input order; duplicates in a batch are summed.
    let totals = a
        .add_quota_usage(&[
            delta("key:k1", TODAY, 3),
            delta("key:k2", TODAY, 1),
            delta("key:k1", TODAY, 2),
            delta("key:k1", YESTERDAY, 7),
        ])
        .await
        .unwrap();
    assert_eq!(totals, [5, 1, 5, 7]);
    let totals = b
        .add_quota_usage(&[delta("key:k2", TODAY, 4), delta("key:k1", TODAY, 1)])
        .await
        .unwrap();
    assert_eq!(totals, [5, 6], "b sees a's counts");

    // Both gateways at once, each batch in the opposite bucket order: atomic adds lose
    // nothing, and each add of 1 gets its own total back.
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let batch = if i % 2 == 0 {
            vec![delta("key:k1", TODAY, 1), delta("key:k3", TODAY, 2)]
        } else {
            vec![delta("key:k3", TODAY, 2), delta("key:k1", TODAY, 1)]
        };
        tasks.push(tokio::spawn(async move {
            let totals = store.add_quota_usage(&batch).await.unwrap();
            if batch[0].bucket == "key:k1" {
                totals[0]
            } else {
                totals[1]
            }
        }));
    }
    let (ten, hundred) = ([delta("key:k2", TODAY, 10)], [delta("key:k2", TODAY, 100)]);
    let (x, y) = tokio::join!(a.add_quota_usage(&ten), b.add_quota_usage(&hundred));
    let (x, y) = (x.unwrap()[0], y.unwrap()[0]);
    assert!(
        (x, y) == (15, 115) || (x, y) == (115, 105),
        "concurrent totals {x} and {y}"
    );
    let mut k1_totals = Vec::new();
    for task in tasks {
        k1_totals.push(task.await.unwrap());
    }
    k1_totals.sort_unstable();
    assert_eq!(k1_totals, (7..=46).collect::<Vec<u64>>());
    assert_eq!(
        b.quota_usage_of(&[
            ("key:k1".into(), TODAY),
            ("key:k2".into(), TODAY),
            ("key:k3".into(), TODAY),
            ("key:k1".into(), YESTERDAY),
            ("key:none".into(), TODAY),
        ])
        .await
        .unwrap(),
        [46, 115, 80, 7, 0]
    );
    // Totals saturate rather than overflow or fail the batch.
    let huge = a
        .add_quota_usage(&[delta("huge", TODAY, u64::MAX), delta("huge", TODAY, 1)])
        .await
        .unwrap();
    assert_eq!(huge, [i64::MAX as u64; 2]);
    let huge = b.add_quota_usage(&[delta("huge", TODAY, 5)]).await.unwrap();
    assert_eq!(huge, [i64::MAX as u64]);
    // Counting is not a lifecycle change: no reload signal, no audit event.
    assert_eq!(a.change_counter().await.unwrap(), counter);
    assert!(a
        .audit(&AuditFilter::default(), &Page::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn quota_usage_reads_and_prunes(db: &TestDb) {
    let store = db.open().await;
    assert!(store.quota_usage_since(i64::MIN).await.unwrap().is_empty());
    assert_eq!(store.quota_usage_of(&[]).await.unwrap(), Vec::<u64>::new());
    store
        .add_quota_usage(&[
            delta("id:acme", TODAY, 2),
            delta("key:b", TODAY, 1),
            delta("id:acme", YESTERDAY, 9),
            delta("key:a", TODAY, 4),
        ])
        .await
        .unwrap();
    let usage = |bucket: &str, window_start: i64, used: u64| QuotaUsage {
        bucket: bucket.into(),
        window_start,
        used,
    };
    // Only the current windows, ordered by window then bucket.
    assert_eq!(
        store.quota_usage_since(TODAY).await.unwrap(),
        [
            usage("id:acme", TODAY, 2),
            usage("key:a", TODAY, 4),
            usage("key:b", TODAY, 1)
        ]
    );
    assert_eq!(store.quota_usage_since(i64::MIN).await.unwrap().len(), 4);
    assert!(store.quota_usage_since(TODAY + 1).await.unwrap().is_empty());
    // More buckets than fit in one statement, asked in any order, with repeats.
    let mut many: Vec<(String, i64)> = (0..450).map(|i| (format!("b{i}"), TODAY)).collect();
    many.push(("key:a".into(), TODAY));
    many.push(("id:acme".into(), YESTERDAY));
    many.push(("key:a".into(), TODAY));
    many.reverse();
    let used = store.quota_usage_of(&many).await.unwrap();
    assert_eq!(&used[..3], [4, 9, 4]);
    assert!(used[3..].iter().all(|&u| u == 0));
    // A large batch spans several statements and still answers in order.
    let batch: Vec<QuotaDelta> = (0..450)
        .map(|i| delta(&format!("b{i}"), TODAY, i))
        .collect();
    let totals = store.add_quota_usage(&batch).await.unwrap();
    assert_eq!(totals, (0..450).collect::<Vec<u64>>());
    // Pruning deletes whole old windows only.
    assert_eq!(store.prune_quota_usage(TODAY).await.unwrap(), 1);
    assert_eq!(store.prune_quota_usage(TODAY).await.unwrap(), 0);
    assert_eq!(
        store
            .quota_usage_of(&[("id:acme".into(), YESTERDAY), ("id:acme".into(), TODAY)])
            .await
            .unwrap(),
        [0, 2]
    );
    assert_eq!(store.quota_usage_since(i64::MIN).await.unwrap().len(), 453);
}

async fn quota_usage_survives_a_restart(db: &TestDb) {
    let store = db.open().await;
    store
        .add_quota_usage(&[delta("key:k1", TODAY, 41)])
        .await
        .unwrap();
    store.close().await;
    let store = db.open().await;
    assert_eq!(
        store
            .quota_usage_of(&[("key:k1".into(), TODAY)])
            .await
            .unwrap(),
        [41]
    );
    assert_eq!(
        store
            .add_quota_usage(&[delta("key:k1", TODAY, 1)])
            .await
            .unwrap(),
        [42]
    );
}

/// A row of an index scan, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scanned {
    key_id: String,
    identity_id: String,
    scopes: Vec<String>,
    roles: Vec<String>,
    identity_roles: Vec<String>,
    rate: Option<String>,
    identity_quota: Option<String>,
    valid_until_ms: Option<i64>,
    revoked: bool,
}

#[derive(Default)]
struct Collect(Vec<Scanned>);

impl IndexVisitor for Collect {
    fn visit(&mut self, row: &IndexRow<'_>) {
        let tags = |text: &str| portcullis_store::parse_tags(text).unwrap();
        self.0.push(Scanned {
            key_id: row.key_id.to_owned(),
            identity_id: row.identity_id.to_owned(),
            scopes: tags(row.scopes),
            roles: tags(row.roles),
            identity_roles: tags(row.identity_roles),
            rate: row.rate_limit_override.map(str::to_owned),
            identity_quota: row.identity_quota_override.map(str::to_owned),
            valid_until_ms: row.valid_until_ms,
            revoked: row.revoked,
        });
    }
}

async fn scan(store: &Store, scan: IndexScan) -> (Vec<Scanned>, i64) {
    let (rows, seq) = store.scan_index(scan, Collect::default()).await.unwrap();
    let mut rows = rows.0;
    rows.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    (rows, seq)
}

fn ids(rows: &[Scanned]) -> Vec<&str> {
    rows.iter().map(|r| r.key_id.as_str()).collect()
}

async fn index_scans_read_only_what_changed(db: &TestDb) {
    let clock = ManualClock::new(Timestamp::now());
    let store = db.open_with(&clock).await;
    let acme = store
        .create_identity(
            NewIdentity {
                roles: vec!["customer".into()],
                quota_override: Some("1000/day".into()),
                ..NewIdentity::named("acme")
            },
            &admin(),
        )
        .await
        .unwrap();
    let other = identity(&store, "other").await;
    let mut new = key_for(&acme.id, &["orders:read"]);
    new.rate_limit_override = Some("5/s".into());
    let (k1, _) = store.create_key(new, &admin()).await.unwrap();
    let (k2, _) = store
        .create_key(key_for(&acme.id, &["orders:write"]), &admin())
        .await
        .unwrap();
    let (bystander, _) = store
        .create_key(key_for(&other, &[]), &admin())
        .await
        .unwrap();
    let (expired, _) = store
        .create_key(
            NewKey {
                expires_at: Some(clock.now().saturating_add(HOUR)),
                ..key_for(&other, &[])
            },
            &admin(),
        )
        .await
        .unwrap();

    // Everything usable, with what the index needs of the key and of its identity.
    clock.advance(2 * HOUR);
    let (all, seq) = scan(&store, IndexScan::Usable).await;
    assert_eq!(seq, store.change_counter().await.unwrap());
    let mut want = vec![k1.id.as_str(), k2.id.as_str(), bystander.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids(&all), want, "the expired key is left out");
    let first = all.iter().find(|r| r.key_id == k1.id).unwrap();
    assert_eq!(
        first,
        &Scanned {
            key_id: k1.id.clone(),
            identity_id: acme.id.clone(),
            scopes: vec!["orders:read".into()],
            roles: vec![],
            identity_roles: vec!["customer".into()],
            rate: Some("5/s".into()),
            identity_quota: Some("1000/day".into()),
            valid_until_ms: None,
            revoked: false,
        }
    );

    // Nothing changed: nothing read. Usage batches are not changes.
    store
        .record_usage(&[UsageRecord {
            key_id: k1.id.clone(),
            count: 3,
            last_used: clock.now(),
        }])
        .await
        .unwrap();
    let (none, same) = scan(&store, IndexScan::ChangedSince(seq)).await;
    assert!(none.is_empty(), "{none:?}");
    assert_eq!(same, seq);

    // A revocation is read as such.
    store.revoke_key(&k1.id, &admin()).await.unwrap();
    let (revoked, seq) = scan(&store, IndexScan::ChangedSince(seq)).await;
    assert_eq!(ids(&revoked), [k1.id.as_str()]);
    assert!(revoked[0].revoked);

    // A rotation: the old key with the end of its grace, and the new key.
    let rotated = store.rotate_key(&k2.id, HOUR, &admin()).await.unwrap();
    let (both, seq) = scan(&store, IndexScan::ChangedSince(seq)).await;
    let mut want = vec![k2.id.as_str(), rotated.key.id.as_str()];
    want.sort_unstable();
    assert_eq!(ids(&both), want);
    let old = both.iter().find(|r| r.key_id == k2.id).unwrap();
    assert_eq!(
        old.valid_until_ms,
        Some(clock.now().saturating_add(HOUR).unix_millis())
    );

    // An identity's change re-reads its unrevoked keys, and only those.
    store
        .update_identity(
            &acme.id,
            IdentityUpdate {
                roles: Some(vec!["gold".into()]),
                ..IdentityUpdate::default()
            },
            &admin(),
        )
        .await
        .unwrap();
    let (of_acme, seq) = scan(&store, IndexScan::ChangedSince(seq)).await;
    assert_eq!(ids(&of_acme), want);
    assert!(of_acme.iter().all(|r| r.identity_roles == ["gold"]));

    // The expiry sweep marks what it found expired as changed.
    store.sweep_expired(&admin()).await.unwrap();
    let (swept, _) = scan(&store, IndexScan::ChangedSince(seq)).await;
    assert_eq!(ids(&swept), [expired.id.as_str()]);
    assert!(swept[0].valid_until_ms.unwrap() <= clock.now().unix_millis());
}
