//! The in-memory API key index the `api_key` filter reads: no database round trip per request.
//!
//! The index maps HMAC-SHA-256(pepper, key) to the caller, and is rebuilt from the store
//! whenever the store's change feed moves (a create, rotation or revocation made by this
//! process, the CLI, the admin API or another gateway: SQLite's change counter is polled every
//! 250 ms, PostgreSQL notifies). Expiry and rotation grace need no change: each entry carries
//! the instant it stops being valid, checked on every lookup.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_core::{CredentialLookup, Principal};
use portcullis_store::{KeyHasher, KeyRecord, Page, Store, StoreError, Timestamp, UsageRecord};

/// Requests counted for one key since the last batch was written.
#[derive(Debug, Default)]
struct Usage {
    count: AtomicU64,
    last_used_ms: AtomicI64,
}

#[derive(Debug)]
struct Entry {
    principal: Arc<Principal>,
    /// Unix milliseconds from which the key is no longer accepted.
    valid_until_ms: Option<i64>,
    usage: Arc<Usage>,
}

/// API keys by hash.
#[derive(Debug)]
pub struct KeyIndex {
    hasher: KeyHasher,
    keys: ArcSwap<HashMap<[u8; 32], Entry>>,
    /// Usage cells by key id; they outlive index rebuilds so no count is lost to a refresh.
    usage: Mutex<HashMap<Arc<str>, Arc<Usage>>>,
}

/// Shares equal strings (identity ids, scopes, roles) between the entries of one rebuild: a
/// million keys of a few identities hold a few copies, not a million.
#[derive(Default)]
struct Interner(HashMap<String, Arc<str>>);

impl Interner {
    fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.0.insert(text.to_owned(), Arc::clone(&shared));
        shared
    }
}

/// A stored rate or quota override. The store refuses malformed ones when they are written;
/// one that does not parse anyway is ignored rather than failing the whole index.
pub(crate) fn parse_override<T: std::str::FromStr>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| t.parse().ok())
}

/// What a key inherits from its identity.
struct IdentityPart {
    roles: Vec<String>,
    rate: Option<portcullis_limit::Rate>,
    quota: Option<portcullis_limit::Quota>,
}

fn entry(
    record: &KeyRecord,
    identity_roles: &HashMap<String, IdentityPart>,
    usage: Arc<Usage>,
    strings: &mut Interner,
) -> Entry {
    let valid_until_ms = match (record.expires_at, record.rotating_until) {
        (Some(a), Some(b)) => Some(a.unix_millis().min(b.unix_millis())),
        (Some(a), None) | (None, Some(a)) => Some(a.unix_millis()),
        (None, None) => None,
    };
    Entry {
        principal: Arc::new(Principal {
            identity: strings.get(&record.identity_id),
            key_id: Arc::from(record.id.as_str()),
            scopes: record.scopes.iter().map(|s| strings.get(s)).collect(),
            // A key carries its own roles and those of its identity.
            roles: {
                let mut roles: Vec<Arc<str>> =
                    record.roles.iter().map(|s| strings.get(s)).collect();
                for role in identity_roles
                    .get(&record.identity_id)
                    .into_iter()
                    .flat_map(|part| &part.roles)
                {
                    if !roles.iter().any(|r| r.as_ref() == role) {
                        roles.push(strings.get(role));
                    }
                }
                roles.into_boxed_slice()
            },
            // The key's own override wins over its identity's. The store refuses malformed
            // overrides; one that does not parse is ignored.
            rate_override: record
                .rate_limit_override
                .as_deref()
                .and_then(|r| r.parse().ok())
                .or_else(|| identity_roles.get(&record.identity_id).and_then(|p| p.rate)),
            quota_override: record
                .quota_override
                .as_deref()
                .and_then(|q| q.parse().ok())
                .or_else(|| {
                    identity_roles
                        .get(&record.identity_id)
                        .and_then(|p| p.quota)
                }),
        }),
        valid_until_ms,
        usage,
    }
}

impl KeyIndex {
    /// Loads every usable key of the store.
    pub async fn load(store: &Store) -> Result<Arc<KeyIndex>, StoreError> {
        let index = Arc::new(KeyIndex {
            hasher: store.hasher().clone(),
            keys: ArcSwap::from_pointee(HashMap::new()),
            usage: Mutex::new(HashMap::new()),
        });
        index.refresh(store).await?;
        Ok(index)
    }

    /// Rebuilds the index from the store; returns the number of usable keys.
    pub async fn refresh(&self, store: &Store) -> Result<usize, StoreError> {
        // Identity roles and overrides apply to every key of the identity (identities are
        // few).
        let mut identity_roles: HashMap<String, IdentityPart> = HashMap::new();
        let mut page = Page::first(1000);
        loop {
            let identities = store.list_identities(&page).await?;
            for identity in identities.items {
                if !identity.roles.is_empty()
                    || identity.rate_limit_override.is_some()
                    || identity.quota_override.is_some()
                {
                    identity_roles.insert(
                        identity.id,
                        IdentityPart {
                            roles: identity.roles,
                            rate: parse_override(identity.rate_limit_override.as_deref()),
                            quota: parse_override(identity.quota_override.as_deref()),
                        },
                    );
                }
            }
            match identities.next_cursor {
                Some(cursor) => page = Page::after(1000, cursor),
                None => break,
            }
        }
        // Rows are turned into entries as they stream in: no list of full records is held.
        let known = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut fresh: Vec<(Arc<str>, Arc<Usage>)> = Vec::new();
        let mut strings = Interner::default();
        let mut keys = HashMap::with_capacity(self.len());
        store
            .for_each_active(Timestamp::now(), |hash, record| {
                let cell = match known.get(record.id.as_str()) {
                    Some(cell) => Arc::clone(cell),
                    None => {
                        let cell = Arc::new(Usage::default());
                        fresh.push((Arc::from(record.id.as_str()), Arc::clone(&cell)));
                        cell
                    }
                };
                keys.insert(hash.0, entry(&record, &identity_roles, cell, &mut strings));
            })
            .await?;
        drop(known);
        if !fresh.is_empty() {
            let mut usage = self
                .usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (id, cell) in fresh {
                // A refresh racing this one may have added the same key: keep the first cell.
                usage.entry(id).or_insert(cell);
            }
        }
        keys.shrink_to_fit();
        let count = keys.len();
        self.keys.store(Arc::new(keys));
        Ok(count)
    }

    /// Keeps the index in step with the store's change feed, until the returned task is
    /// aborted. A failed refresh is logged and retried on the next change (or after a second),
    /// and the previous index keeps serving meanwhile.
    pub fn follow(self: &Arc<Self>, store: Store) -> tokio::task::JoinHandle<()> {
        let index = Arc::clone(self);
        tokio::spawn(async move {
            let mut changes = store.changes().await;
            loop {
                if changes.changed().await.is_err() {
                    return;
                }
                if let Err(err) = index.refresh(&store).await {
                    tracing::error!(error = %err, "cannot refresh the API key index; the previous one keeps serving");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    changes.mark_changed();
                }
            }
        })
    }

    /// Takes the usage counted since the last call (keys with no use are left out).
    pub fn take_usage(&self) -> Vec<UsageRecord> {
        let usage = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        usage
            .iter()
            .filter_map(|(key_id, cell)| {
                let count = cell.count.swap(0, Ordering::Relaxed);
                (count > 0).then(|| UsageRecord {
                    key_id: key_id.to_string(),
                    count,
                    last_used: Timestamp::from_unix_millis(
                        cell.last_used_ms.load(Ordering::Relaxed),
                    )
                    .unwrap_or_else(Timestamp::now),
                })
            })
            .collect()
    }

    /// Writes usage to the store in batches every `interval`, off the request path, until the
    /// returned task is aborted. A failed batch is put back and written with the next one.
    pub fn write_usage(
        self: &Arc<Self>,
        store: Store,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let index = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                index.flush_usage(&store).await;
            }
        })
    }

    /// Writes the usage counted so far (also called once at shutdown).
    pub async fn flush_usage(&self, store: &Store) {
        let batch = self.take_usage();
        if batch.is_empty() {
            return;
        }
        if let Err(err) = store.record_usage(&batch).await {
            tracing::warn!(error = %err, keys = batch.len(), "cannot write key usage; retrying with the next batch");
            let usage = self
                .usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for record in batch {
                if let Some(cell) = usage.get(record.key_id.as_str()) {
                    cell.count.fetch_add(record.count, Ordering::Relaxed);
                }
            }
        }
    }

    /// Number of usable keys indexed.
    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CredentialLookup for KeyIndex {
    fn api_key(&self, presented: &str) -> Option<Arc<Principal>> {
        // The format and checksum refuse garbage before any hashing or lookup.
        let parsed = portcullis_store::key::parse(presented).ok()?;
        let hash = self.hasher.hash(&parsed);
        let keys = self.keys.load();
        let entry = keys.get(&hash.0)?;
        let now = Timestamp::now().unix_millis();
        if entry.valid_until_ms.is_some_and(|until| now >= until) {
            return None;
        }
        entry.usage.count.fetch_add(1, Ordering::Relaxed);
        entry.usage.last_used_ms.fetch_max(now, Ordering::Relaxed);
        Some(Arc::clone(&entry.principal))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use portcullis_store::{Actor, NewIdentity, NewKey};

    use super::*;

    async fn store(dir: &tempfile::TempDir) -> Store {
        let hasher = KeyHasher::new(b"0123456789abcdef0123").unwrap();
        Store::open(
            &format!("sqlite://{}", dir.path().join("k.db").display()),
            hasher,
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn identity_roles_reach_their_keys_and_usage_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let actor = Actor::new("test");
        let mut ops = NewIdentity::named("ops");
        ops.roles = vec!["admin".into()];
        store.create_identity(ops, &actor).await.unwrap();
        let mut new = NewKey::for_identity("ops");
        new.roles = vec!["reader".into()];
        let (record, key) = store.create_key(new, &actor).await.unwrap();

        let index = KeyIndex::load(&store).await.unwrap();
        let principal = index.api_key(key.expose()).unwrap();
        let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_ref()).collect();
        assert_eq!(roles, ["reader", "admin"]);
        assert!(index.api_key("pc_live_not_a_key").is_none());

        assert!(index.api_key(key.expose()).is_some());
        index.flush_usage(&store).await;
        assert_eq!(store.get_key(&record.id).await.unwrap().request_count, 2);
        // Counts survive a rebuild of the index and are not written twice.
        index.refresh(&store).await.unwrap();
        index.flush_usage(&store).await;
        assert_eq!(store.get_key(&record.id).await.unwrap().request_count, 2);
    }
}
