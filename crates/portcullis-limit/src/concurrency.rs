//! In-flight request limits: a count per key, taken when a request is admitted and given back
//! when its [`Permit`] is dropped (the response is done, or the request failed).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

/// In-flight counts of the keys hashed to one shard.
type Shard = Mutex<HashMap<Box<str>, u32>>;

#[derive(Debug)]
struct Inner {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

/// In-flight counts by key. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Concurrency {
    inner: Arc<Inner>,
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency::new()
    }
}

/// One admitted request; dropping it gives its slot back.
#[derive(Debug)]
pub struct Permit {
    inner: Arc<Inner>,
    shard: usize,
    key: Box<str>,
}

impl Concurrency {
    /// No request in flight.
    pub fn new() -> Concurrency {
        Concurrency {
            inner: Arc::new(Inner {
                shards: (0..64).map(|_| Mutex::new(HashMap::new())).collect(),
                hasher: RandomState::new(),
            }),
        }
    }

    /// A slot for `key` if fewer than `max` requests of it are in flight.
    pub fn try_acquire(&self, key: &str, max: u32) -> Option<Permit> {
        let shard = (self.inner.hasher.hash_one(key) as usize) & (self.inner.shards.len() - 1);
        let mut map = self.inner.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(key.into()).or_insert(0);
        if *count >= max {
            if *count == 0 {
                map.remove(key);
            }
            return None;
        }
        *count += 1;
        Some(Permit {
            inner: Arc::clone(&self.inner),
            shard,
            key: key.into(),
        })
    }

    /// Requests of `key` in flight now.
    pub fn in_flight(&self, key: &str) -> u32 {
        let shard = (self.inner.hasher.hash_one(key) as usize) & (self.inner.shards.len() - 1);
        self.inner.shards[shard]
            .lock()
            .map_or(0, |map| map.get(key).copied().unwrap_or(0))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut map = self.inner.shards[self.shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_when_permits_drop() {
        let limits = Concurrency::new();
        let a = limits.try_acquire("x", 2);
        let b = limits.try_acquire("x", 2);
        assert!(a.is_some() && b.is_some());
        assert!(limits.try_acquire("x", 2).is_none());
        assert!(limits.try_acquire("y", 2).is_some());
        drop(a);
        assert_eq!(limits.in_flight("x"), 1);
        assert!(limits.try_acquire("x", 2).is_some());
        drop(b);
        assert_eq!(limits.in_flight("x"), 0);
        assert!(limits.try_acquire("z", 0).is_none());
        assert_eq!(limits.in_flight("z"), 0);
    }
}
