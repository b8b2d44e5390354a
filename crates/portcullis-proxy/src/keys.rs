//! The in-memory API key index the `api_key` filter reads: no database round trip per request.
//!
//! The index maps HMAC-SHA-256(pepper, key) to the caller. It is read whole from the store
//! once, when the gateway starts; after that, whenever the store's change feed moves (a
//! create, rotation, revocation or update made by this process, the CLI, the admin API or
//! another gateway: SQLite's change counter is polled every 250 ms, PostgreSQL notifies), only
//! the keys that the change touched are read again ([`IndexScan::ChangedSince`]), so a change
//! costs the same with a hundred keys or a million. Expiry and rotation grace need no change:
//! each entry carries the instant it stops being valid, checked on every lookup.
//!
//! Memory: an entry is 80 bytes (the hash, the key id, a shared [`Grants`], the end of
//! validity and the usage counters) plus its key id's allocation and its slot in a hash table.
//! Keys with the same identity, scopes, roles and overrides share one [`Grants`]. Entries live
//! in [`SHARDS`] shards, each a vector of entries and a table of indexes into it, behind its
//! own lock: a lookup takes one shard's read lock, a change one shard's write lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use hashbrown::HashTable;
use portcullis_core::{CredentialLookup, Grants, Principal};
use portcullis_store::{
    parse_tags, IndexRow, IndexScan, IndexVisitor, KeyHasher, Store, StoreError, Timestamp,
    UsageRecord,
};
use subtle::ConstantTimeEq;

/// Number of independently locked parts of the index.
pub const SHARDS: usize = 64;

/// One usable key.
#[derive(Debug)]
struct Entry {
    hash: [u8; 32],
    key_id: Arc<str>,
    grants: Arc<Grants>,
    /// Unix milliseconds from which the key is no longer accepted (`i64::MAX`: never).
    valid_until_ms: i64,
    /// Requests counted since the last usage batch was taken.
    count: AtomicU64,
    /// Unix milliseconds of the last use, 0 for none yet.
    last_used_ms: AtomicI64,
}

impl Entry {
    fn take_usage(&self) -> Option<UsageRecord> {
        // A plain load first: most keys of a large index were not used since the last batch.
        if self.count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let count = self.count.swap(0, Ordering::Relaxed);
        (count > 0).then(|| UsageRecord {
            key_id: self.key_id.to_string(),
            count,
            last_used: Timestamp::from_unix_millis(self.last_used_ms.load(Ordering::Relaxed))
                .unwrap_or_else(Timestamp::now),
        })
    }
}

/// The shard a key hash belongs to, and its hash in the shard's table. The key hash is an
/// HMAC output, uniformly distributed: its bytes need no further hashing.
fn shard_of(hash: &[u8; 32]) -> usize {
    usize::from(hash[0]) % SHARDS
}

fn slot_hash(hash: &[u8; 32]) -> u64 {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&hash[8..16]);
    u64::from_le_bytes(bytes)
}

/// Part of the index: entries, and a table of their positions by key hash.
#[derive(Debug, Default)]
struct Shard {
    slots: HashTable<u32>,
    entries: Vec<Entry>,
}

impl Shard {
    /// A shard of `entries` (distinct hashes), with no spare capacity.
    fn build(mut entries: Vec<Entry>) -> Shard {
        entries.shrink_to_fit();
        let mut slots = HashTable::with_capacity(entries.len());
        for (position, entry) in entries.iter().enumerate() {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            slots.insert_unique(slot_hash(&entry.hash), position, |&p| {
                slot_hash(&entries[p as usize].hash)
            });
        }
        Shard { slots, entries }
    }

    fn position(&self, hash: &[u8; 32]) -> Option<u32> {
        self.slots
            .find(slot_hash(hash), |&p| {
                // Constant time: how much of a stored hash matched is never observable.
                bool::from(self.entries[p as usize].hash.ct_eq(hash))
            })
            .copied()
    }

    fn get(&self, hash: &[u8; 32]) -> Option<&Entry> {
        self.position(hash).map(|p| &self.entries[p as usize])
    }

    /// Adds an entry, or replaces what an existing one for the same key grants (its usage
    /// counters stay).
    fn upsert(&mut self, entry: Entry) {
        if let Some(position) = self.position(&entry.hash) {
            let existing = &mut self.entries[position as usize];
            existing.key_id = entry.key_id;
            existing.grants = entry.grants;
            existing.valid_until_ms = entry.valid_until_ms;
            return;
        }
        let Ok(position) = u32::try_from(self.entries.len()) else {
            // 2^32 keys in one shard: far beyond any store; refuse rather than corrupt.
            tracing::error!("API key index shard full; key not indexed");
            return;
        };
        let hash = slot_hash(&entry.hash);
        self.entries.push(entry);
        let entries = &self.entries;
        self.slots
            .insert_unique(hash, position, |&p| slot_hash(&entries[p as usize].hash));
    }

    /// Removes the entry of `hash`, returning it.
    fn remove(&mut self, hash: &[u8; 32]) -> Option<Entry> {
        let position = self.position(hash)?;
        let entries = &self.entries;
        if let Ok(slot) = self.slots.find_entry(slot_hash(hash), |&p| p == position) {
            slot.remove();
        }
        let last = u32::try_from(entries.len() - 1).unwrap_or(u32::MAX);
        let removed = self.entries.swap_remove(position as usize);
        if position != last {
            // The last entry moved into the gap: point its slot there.
            let moved = slot_hash(&self.entries[position as usize].hash);
            if let Some(slot) = self.slots.find_mut(moved, |&p| p == last) {
                *slot = position;
            }
        }
        Some(removed)
    }
}

/// Turns rows into entries, sharing equal strings and equal [`Grants`] between them.
///
/// The caches are bounded so that a store where every key has grants of its own does not
/// hold a second copy of them while it loads.
#[derive(Default)]
struct EntryBuilder {
    /// Grants by the row texts they were built from.
    grants: Cache<String, Arc<Grants>>,
    /// Parsed scope and role lists by their stored JSON text.
    tags: Cache<String, Arc<[Arc<str>]>>,
    /// Identity ids, scopes and roles.
    strings: Cache<Arc<str>, ()>,
    scratch: String,
}

/// A map that empties itself when it reaches [`Cache::LIMIT`] entries.
struct Cache<K, V>(HashMap<K, V>);

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache(HashMap::new())
    }
}

impl<K: std::hash::Hash + Eq, V> Cache<K, V> {
    const LIMIT: usize = 1 << 16;

    fn insert(&mut self, key: K, value: V) {
        if self.0.len() >= Self::LIMIT {
            self.0.clear();
        }
        self.0.insert(key, value);
    }
}

impl EntryBuilder {
    fn entry(&mut self, row: &IndexRow<'_>) -> Entry {
        Entry {
            hash: *row.hash,
            key_id: Arc::from(row.key_id),
            grants: self.grants(row),
            valid_until_ms: row.valid_until_ms.unwrap_or(i64::MAX),
            count: AtomicU64::new(0),
            last_used_ms: AtomicI64::new(0),
        }
    }

    fn grants(&mut self, row: &IndexRow<'_>) -> Arc<Grants> {
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        for part in [
            Some(row.identity_id),
            Some(row.scopes),
            Some(row.roles),
            Some(row.identity_roles),
            row.rate_limit_override,
            row.quota_override,
            row.identity_rate_limit_override,
            row.identity_quota_override,
        ] {
            // NUL cannot occur in any of these texts; "\u{1}" marks an absent one.
            text.push_str(part.unwrap_or("\u{1}"));
            text.push('\0');
        }
        let grants = match self.grants.0.get(&text) {
            Some(grants) => Arc::clone(grants),
            None => {
                let grants = Arc::new(self.build_grants(row));
                self.grants.insert(text.clone(), Arc::clone(&grants));
                grants
            }
        };
        self.scratch = text;
        grants
    }

    fn build_grants(&mut self, row: &IndexRow<'_>) -> Grants {
        let scopes = self.tags(row.scopes);
        // A key carries its own roles and those of its identity.
        let mut roles: Vec<Arc<str>> = self.tags(row.roles).to_vec();
        for role in self.tags(row.identity_roles).iter() {
            if !roles.contains(role) {
                roles.push(Arc::clone(role));
            }
        }
        Grants::new(
            self.string(row.identity_id),
            scopes.to_vec().into_boxed_slice(),
            roles.into_boxed_slice(),
            // The key's own override wins over its identity's. The store refuses malformed
            // overrides; one that does not parse is ignored.
            parse_override(row.rate_limit_override)
                .or_else(|| parse_override(row.identity_rate_limit_override)),
            parse_override(row.quota_override)
                .or_else(|| parse_override(row.identity_quota_override)),
        )
    }

    fn tags(&mut self, text: &str) -> Arc<[Arc<str>]> {
        if let Some(tags) = self.tags.0.get(text) {
            return Arc::clone(tags);
        }
        let parsed: Arc<[Arc<str>]> = match parse_tags(text) {
            Ok(tags) => tags.iter().map(|tag| self.string(tag)).collect(),
            Err(err) => {
                // The store writes only valid lists; a corrupt one grants nothing.
                tracing::error!(error = %err, "unreadable scopes or roles; the key gets none");
                Arc::from([])
            }
        };
        self.tags.insert(text.to_owned(), Arc::clone(&parsed));
        parsed
    }

    fn string(&mut self, text: &str) -> Arc<str> {
        if let Some((shared, ())) = self.strings.0.get_key_value(text) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(Arc::clone(&shared), ());
        shared
    }
}

/// A stored rate or quota override. The store refuses malformed ones when they are written;
/// one that does not parse anyway is ignored rather than failing the whole index.
pub(crate) fn parse_override<T: std::str::FromStr>(text: Option<&str>) -> Option<T> {
    text.and_then(|t| t.parse().ok())
}

/// What a read of changed rows found, applied under the shard locks afterwards.
enum Change {
    Upsert(Entry),
    Remove([u8; 32]),
}

/// API keys by hash.
#[derive(Debug)]
pub struct KeyIndex {
    hasher: KeyHasher,
    shards: Box<[RwLock<Shard>]>,
    /// Held across a read of the store, so reads never interleave.
    progress: tokio::sync::Mutex<Progress>,
    /// Usage not yet written: counts of keys removed from the index (revoked, expired) since
    /// the last batch, and batches the store failed to take.
    pending_usage: Mutex<Vec<UsageRecord>>,
}

impl KeyIndex {
    /// Loads every usable key of the store.
    pub async fn load(store: &Store) -> Result<Arc<KeyIndex>, StoreError> {
        let index = Arc::new(KeyIndex {
            hasher: store.hasher().clone(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            progress: tokio::sync::Mutex::new(Progress {
                seq: 0,
                builder: EntryBuilder::default(),
            }),
            pending_usage: Mutex::new(Vec::new()),
        });
        index.reload(store).await?;
        Ok(index)
    }

    fn read(&self, shard: usize) -> RwLockReadGuard<'_, Shard> {
        self.shards[shard]
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self, shard: usize) -> RwLockWriteGuard<'_, Shard> {
        self.shards[shard]
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads every usable key again and replaces the whole index with them; returns the
    /// number of usable keys. Usage counted so far is kept.
    pub async fn reload(&self, store: &Store) -> Result<usize, StoreError> {
        let mut progress = self.progress.lock().await;
        let load = Load {
            builder: std::mem::take(&mut progress.builder),
            parts: (0..SHARDS).map(|_| Vec::new()).collect(),
            now_ms: Timestamp::now().unix_millis(),
        };
        let (load, read_up_to) = store.scan_index(IndexScan::Usable, load).await?;
        let mut count = 0;
        for (shard, entries) in load.parts.into_iter().enumerate() {
            count += entries.len();
            let fresh = Shard::build(entries);
            let old = std::mem::replace(&mut *self.write(shard), fresh);
            self.keep_usage(old.entries);
        }
        *progress = Progress {
            seq: read_up_to,
            builder: load.builder,
        };
        Ok(count)
    }

    /// Applies what changed in the store since the last read (see the module docs); returns
    /// how many changed rows were read.
    pub async fn refresh(&self, store: &Store) -> Result<usize, StoreError> {
        let mut progress = self.progress.lock().await;
        let since = progress.seq;
        let read = ReadChanges {
            builder: std::mem::take(&mut progress.builder),
            changes: Vec::new(),
            now_ms: Timestamp::now().unix_millis(),
        };
        let (read, read_up_to) = store
            .scan_index(IndexScan::ChangedSince(since), read)
            .await?;
        if read_up_to < since {
            // The counter went back: this is another database (restored, replaced). Read
            // everything again.
            drop(progress);
            tracing::warn!("the key store's change counter went back; reloading every key");
            return self.reload(store).await;
        }
        let count = read.changes.len();
        for change in read.changes {
            match change {
                Change::Upsert(entry) => self.write(shard_of(&entry.hash)).upsert(entry),
                Change::Remove(hash) => {
                    let removed = self.write(shard_of(&hash)).remove(&hash);
                    self.keep_usage(removed);
                }
            }
        }
        *progress = Progress {
            seq: read_up_to,
            builder: read.builder,
        };
        Ok(count)
    }

    /// Keeps the unwritten usage of entries leaving the index for the next batch.
    fn keep_usage(&self, entries: impl IntoIterator<Item = Entry>) {
        let usage: Vec<UsageRecord> = entries
            .into_iter()
            .filter_map(|entry| entry.take_usage())
            .collect();
        if !usage.is_empty() {
            self.pending_usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(usage);
        }
    }

    /// Keeps the index in step with the store's change feed, until the returned task is
    /// aborted. A failed refresh is logged and retried on the next change (or after a second),
    /// and the index keeps serving what it has meanwhile.
    pub fn follow(self: &Arc<Self>, store: Store) -> tokio::task::JoinHandle<()> {
        let index = Arc::clone(self);
        tokio::spawn(async move {
            let mut changes = store.changes().await;
            loop {
                if changes.changed().await.is_err() {
                    return;
                }
                if let Err(err) = index.refresh(&store).await {
                    tracing::error!(error = %err, "cannot refresh the API key index; it keeps serving what it has");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    changes.mark_changed();
                }
            }
        })
    }

    /// Takes the usage counted since the last call (keys with no use are left out).
    pub fn take_usage(&self) -> Vec<UsageRecord> {
        let mut batch = std::mem::take(
            &mut *self
                .pending_usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for shard in 0..SHARDS {
            batch.extend(
                self.read(shard)
                    .entries
                    .iter()
                    .filter_map(Entry::take_usage),
            );
        }
        batch
    }

    /// Writes usage to the store in batches every `interval`, off the request path, until the
    /// returned task is aborted. A failed batch is kept and written with the next one.
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
            // The store merges records of one key, so the kept batch is simply prepended.
            self.pending_usage
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(batch);
        }
    }

    /// Number of usable keys indexed.
    pub fn len(&self) -> usize {
        (0..SHARDS)
            .map(|shard| self.read(shard).entries.len())
            .sum()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How far the index has read the store.
struct Progress {
    /// The change counter value the index is complete up to.
    seq: i64,
    /// Kept between reads, so that a key created later shares the grants (and strings) of
    /// the keys already indexed.
    builder: EntryBuilder,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// Collects the usable keys of a full read into per-shard vectors.
struct Load {
    builder: EntryBuilder,
    parts: Vec<Vec<Entry>>,
    now_ms: i64,
}

impl IndexVisitor for Load {
    fn visit(&mut self, row: &IndexRow<'_>) {
        // The read selects usable keys as of the store's clock; the index goes by the wall
        // clock, like its lookups.
        if row.usable_at(self.now_ms) {
            self.parts[shard_of(row.hash)].push(self.builder.entry(row));
        }
    }
}

/// Collects changed rows as upserts and removals.
struct ReadChanges {
    builder: EntryBuilder,
    changes: Vec<Change>,
    now_ms: i64,
}

impl IndexVisitor for ReadChanges {
    fn visit(&mut self, row: &IndexRow<'_>) {
        self.changes.push(if row.usable_at(self.now_ms) {
            Change::Upsert(self.builder.entry(row))
        } else {
            Change::Remove(*row.hash)
        });
    }
}

impl CredentialLookup for KeyIndex {
    fn api_key(&self, presented: &str) -> Option<Principal> {
        // The format and checksum refuse garbage before any hashing or lookup.
        let parsed = portcullis_store::key::parse(presented).ok()?;
        let hash = self.hasher.hash(&parsed);
        let shard = self.read(shard_of(&hash.0));
        let entry = shard.get(&hash.0)?;
        let now = Timestamp::now().unix_millis();
        if now >= entry.valid_until_ms {
            return None;
        }
        entry.count.fetch_add(1, Ordering::Relaxed);
        entry.last_used_ms.fetch_max(now, Ordering::Relaxed);
        Some(Principal {
            key_id: Arc::clone(&entry.key_id),
            grants: Arc::clone(&entry.grants),
        })
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
        assert_eq!(&*principal.key_id, record.id.as_str());
        let roles: Vec<&str> = principal.grants.roles.iter().map(|r| r.as_ref()).collect();
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

    #[tokio::test]
    async fn changes_are_read_incrementally_and_usage_survives_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let actor = Actor::new("test");
        let mut acme = NewIdentity::named("acme");
        acme.roles = vec!["customer".into()];
        let acme = store.create_identity(acme, &actor).await.unwrap();
        let mut keys = Vec::new();
        for _ in 0..150 {
            let mut new = NewKey::for_identity(&acme.id);
            new.scopes = vec!["orders:read".into()];
            keys.push(store.create_key(new, &actor).await.unwrap());
        }
        let index = KeyIndex::load(&store).await.unwrap();
        assert_eq!(index.len(), 150);
        // Keys with the same grants share them.
        let a = index.api_key(keys[0].1.expose()).unwrap();
        let b = index.api_key(keys[1].1.expose()).unwrap();
        assert!(Arc::ptr_eq(&a.grants, &b.grants));

        // Revoke every other key: only those rows are read, from many shards, and the shards'
        // tables stay right as entries move within them.
        for (record, _) in keys.iter().step_by(2) {
            store.revoke_key(&record.id, &actor).await.unwrap();
        }
        assert_eq!(index.refresh(&store).await.unwrap(), 75);
        assert_eq!(index.len(), 75);
        for (n, (record, key)) in keys.iter().enumerate() {
            let found = index.api_key(key.expose());
            if n % 2 == 0 {
                assert!(found.is_none(), "revoked key {n} still accepted");
            } else {
                assert_eq!(&*found.unwrap().key_id, record.id.as_str());
            }
        }
        // Nothing changed since: nothing read.
        assert_eq!(index.refresh(&store).await.unwrap(), 0);
        // A key created later shares the grants of the keys loaded at start.
        let mut new = NewKey::for_identity(&acme.id);
        new.scopes = vec!["orders:read".into()];
        let (_, late) = store.create_key(new, &actor).await.unwrap();
        assert_eq!(index.refresh(&store).await.unwrap(), 1);
        let late = index.api_key(late.expose()).unwrap();
        assert!(Arc::ptr_eq(&late.grants, &a.grants));

        // A rotated key and its replacement both work; an identity's new roles reach its keys.
        let (old, old_key) = &keys[1];
        let rotated = store
            .rotate_key(&old.id, Duration::from_secs(3600), &actor)
            .await
            .unwrap();
        store
            .update_identity(
                &acme.id,
                portcullis_store::IdentityUpdate {
                    roles: Some(vec!["gold".into()]),
                    ..Default::default()
                },
                &actor,
            )
            .await
            .unwrap();
        index.refresh(&store).await.unwrap();
        assert_eq!(index.len(), 77);
        let roles = |key: &str| -> Vec<String> {
            let principal = index.api_key(key).unwrap();
            principal
                .grants
                .roles
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(roles(old_key.expose()), ["gold"]);
        assert_eq!(roles(rotated.plaintext.expose()), ["gold"]);

        // Uses of a key that is then revoked are still written (one in the loop above).
        let (used, used_key) = &keys[3];
        for _ in 0..3 {
            assert!(index.api_key(used_key.expose()).is_some());
        }
        store.revoke_key(&used.id, &actor).await.unwrap();
        index.refresh(&store).await.unwrap();
        assert!(index.api_key(used_key.expose()).is_none());
        index.flush_usage(&store).await;
        assert_eq!(store.get_key(&used.id).await.unwrap().request_count, 4);
        // A full reload keeps the index and loses no count either.
        assert!(index.api_key(old_key.expose()).is_some());
        assert_eq!(index.reload(&store).await.unwrap(), 76);
        index.flush_usage(&store).await;
        // Looked up for the grants check, in the loop, for its roles and here.
        assert_eq!(store.get_key(&old.id).await.unwrap().request_count, 4);
    }
}
