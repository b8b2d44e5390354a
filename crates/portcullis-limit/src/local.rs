//! In-process GCRA buckets: sharded maps (no global lock), bounded, idle buckets evicted.
//!
//! A bucket whose TAT has passed is full again, which is the same as no bucket at all, so it
//! can be dropped without changing any decision. When a shard reaches its share of
//! `max_buckets` it first drops those; if every bucket is still owed time, it drops the ones
//! closest to full (the least owed) until a quarter of the room is free again.

use hashbrown::HashTable;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use crate::gcra::{Gcra, Outcome};

/// Default bound on the buckets kept in memory.
pub const DEFAULT_MAX_BUCKETS: usize = 1_000_000;

/// Buckets by name, each stored with the hash that also picked its shard: one hash per
/// decision.
#[derive(Default)]
struct Shard {
    tats: HashTable<Bucket>,
}

struct Bucket {
    hash: u64,
    key: Box<str>,
    tat: u64,
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("buckets", &self.tats.len())
            .finish()
    }
}

impl Shard {
    fn get(&self, hash: u64, key: &str) -> Option<u64> {
        self.tats.find(hash, |b| &*b.key == key).map(|b| b.tat)
    }
}

/// In-process buckets.
#[derive(Debug)]
pub struct LocalBuckets {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
}

impl LocalBuckets {
    /// Buckets for at most `max_buckets` keys at once.
    pub fn new(max_buckets: usize) -> LocalBuckets {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        let count = (threads * 8).next_power_of_two().min(max_buckets.max(1));
        LocalBuckets {
            shards: (0..count).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: RandomState::new(),
            per_shard: (max_buckets / count).max(1),
        }
    }

    fn shard(&self, key: &str) -> (u64, std::sync::MutexGuard<'_, Shard>) {
        let hash = self.hasher.hash_one(key);
        // The shard count is a power of two; the table uses the hash's high bits.
        let index = (hash as usize) & (self.shards.len() - 1);
        // A poisoned shard only means a panic elsewhere while it was held; the map is
        // still consistent (every update is a single insert or remove).
        let guard = self.shards[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (hash, guard)
    }

    /// Takes one request from `key`'s bucket at `now`.
    pub fn take(&self, key: &str, limit: &Gcra, now: u64) -> Outcome {
        let (hash, mut shard) = self.shard(key);
        match shard.tats.find_mut(hash, |b| &*b.key == key) {
            Some(bucket) => {
                let (outcome, next) = limit.take(Some(bucket.tat), now);
                if let Some(next) = next {
                    bucket.tat = next;
                }
                outcome
            }
            None => {
                let (outcome, next) = limit.take(None, now);
                if let Some(tat) = next {
                    if shard.tats.len() >= self.per_shard {
                        evict(&mut shard.tats, self.per_shard, now);
                    }
                    shard.tats.insert_unique(
                        hash,
                        Bucket {
                            hash,
                            key: key.into(),
                            tat,
                        },
                        |b| b.hash,
                    );
                }
                outcome
            }
        }
    }

    /// Gives back one request taken from `key`'s bucket.
    pub fn refund(&self, key: &str, limit: &Gcra) {
        let (hash, mut shard) = self.shard(key);
        if let Some(bucket) = shard.tats.find_mut(hash, |b| &*b.key == key) {
            bucket.tat = limit.refund(bucket.tat);
        }
    }

    /// The state of `key`'s bucket, without taking anything.
    pub fn peek(&self, key: &str, limit: &Gcra, now: u64) -> Outcome {
        let (hash, shard) = self.shard(key);
        limit.peek(shard.get(hash, key), now)
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |s| s.tats.len()))
            .sum()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn evict(tats: &mut HashTable<Bucket>, room: usize, now: u64) {
    tats.retain(|b| b.tat > now);
    let target = room - room / 4;
    if tats.len() >= target.max(1) {
        let mut owed: Vec<u64> = tats.iter().map(|b| b.tat).collect();
        let last = owed.len() - 1;
        let drop = (tats.len() + 1 - target.max(1)).min(last);
        owed.select_nth_unstable(drop);
        let cut = owed[drop];
        tats.retain(|b| b.tat > cut);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn buckets_are_separate_and_exact() {
        let buckets = LocalBuckets::new(1000);
        let limit = Gcra::new("2/s".parse().unwrap(), 2);
        for key in ["a", "b"] {
            assert!(buckets.take(key, &limit, SECOND).allowed);
            assert!(buckets.take(key, &limit, SECOND).allowed);
            assert!(!buckets.take(key, &limit, SECOND).allowed);
        }
        buckets.refund("a", &limit);
        assert!(buckets.take("a", &limit, SECOND).allowed);
        assert!(!buckets.take("b", &limit, SECOND).allowed);
    }

    #[test]
    fn memory_stays_bounded_and_owed_buckets_are_kept_first() {
        let buckets = LocalBuckets::new(64);
        let limit = Gcra::new("1/h".parse().unwrap(), 1);
        for i in 0..10_000u64 {
            buckets.take(&format!("k{i}"), &limit, SECOND + i);
        }
        assert!(buckets.len() <= 64, "{} buckets", buckets.len());
        // Idle buckets go first: at a time when all have refilled, new keys evict them all.
        let later = 10_000 * SECOND;
        for i in 0..64u64 {
            buckets.take(&format!("n{i}"), &limit, later);
        }
        assert!(buckets.len() <= 64);
    }
}
