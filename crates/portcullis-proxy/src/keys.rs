//! The in-memory API key index the `api_key` filter reads: no database round trip per request.
//!
//! The index maps HMAC-SHA-256(pepper, key) to the caller, and is rebuilt from the store
//! whenever the store's change feed moves (a create, rotation or revocation made by this
//! process, the CLI, the admin API or another gateway: SQLite's change counter is polled every
//! 250 ms, PostgreSQL notifies). Expiry and rotation grace need no change: each entry carries
//! the instant it stops being valid, checked on every lookup.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use portcullis_core::{CredentialLookup, Principal};
use portcullis_store::{KeyHasher, KeyRecord, Store, StoreError, Timestamp};

#[derive(Debug)]
struct Entry {
    principal: Arc<Principal>,
    /// Unix milliseconds from which the key is no longer accepted.
    valid_until_ms: Option<i64>,
}

/// API keys by hash.
#[derive(Debug)]
pub struct KeyIndex {
    hasher: KeyHasher,
    keys: ArcSwap<HashMap<[u8; 32], Entry>>,
}

fn entry(record: KeyRecord) -> Entry {
    let valid_until_ms = match (record.expires_at, record.rotating_until) {
        (Some(a), Some(b)) => Some(a.unix_millis().min(b.unix_millis())),
        (Some(a), None) | (None, Some(a)) => Some(a.unix_millis()),
        (None, None) => None,
    };
    Entry {
        principal: Arc::new(Principal {
            identity: Arc::from(record.identity_id.as_str()),
            key_id: Arc::from(record.id.as_str()),
            scopes: record
                .scopes
                .iter()
                .map(|s| Arc::from(s.as_str()))
                .collect(),
            roles: record.roles.iter().map(|s| Arc::from(s.as_str())).collect(),
        }),
        valid_until_ms,
    }
}

impl KeyIndex {
    /// Loads every usable key of the store.
    pub async fn load(store: &Store) -> Result<Arc<KeyIndex>, StoreError> {
        let index = Arc::new(KeyIndex {
            hasher: store.hasher().clone(),
            keys: ArcSwap::from_pointee(HashMap::new()),
        });
        index.refresh(store).await?;
        Ok(index)
    }

    /// Rebuilds the index from the store; returns the number of usable keys.
    pub async fn refresh(&self, store: &Store) -> Result<usize, StoreError> {
        let mut keys = HashMap::new();
        store
            .for_each_active(Timestamp::now(), |hash, record| {
                keys.insert(hash.0, entry(record));
            })
            .await?;
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
        if let Some(until) = entry.valid_until_ms {
            if Timestamp::now().unix_millis() >= until {
                return None;
            }
        }
        Some(Arc::clone(&entry.principal))
    }
}
