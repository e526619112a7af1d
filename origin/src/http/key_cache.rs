//! The origin's cache of API keys: bounded, so a flood of made-up key ids cannot grow memory or evict the keys
//! clinics really use. Known keys and unknown ids live in separate FIFO-bounded maps: a miss storm only ever
//! churns the (smaller) unknown side. Entries count for [`CACHE_TTL`]; the bound only decides what is forgotten
//! early (which costs one more database read, never a wrong answer).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::store::KeyRecord;

/// How long a looked-up key (or the knowledge that an id is unknown) is trusted: a revoked key stops working
/// within this on every replica.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
/// Keys that exist: far more than any deployment has.
pub const KNOWN_CAPACITY: usize = 10_000;
/// Ids that do not: enough to absorb a client retrying a typo, small enough that a flood stays cheap.
pub const UNKNOWN_CAPACITY: usize = 4_096;

/// One side of the cache: a map with its insertion order, trimmed oldest-first past `capacity`.
struct Bounded<V> {
    capacity: usize,
    map: HashMap<String, (V, Instant)>,
    order: VecDeque<(String, Instant)>,
}

impl<V: Clone> Bounded<V> {
    fn new(capacity: usize) -> Self {
        Bounded { capacity, map: HashMap::new(), order: VecDeque::new() }
    }

    fn get(&self, id: &str, now: Instant) -> Option<V> {
        self.map.get(id).filter(|(_, at)| now.duration_since(*at) < CACHE_TTL).map(|(v, _)| v.clone())
    }

    fn insert(&mut self, id: &str, value: V, now: Instant) {
        self.map.insert(id.to_owned(), (value, now));
        self.order.push_back((id.to_owned(), now));
        while self.map.len() > self.capacity || self.order.len() > 2 * self.capacity {
            let Some((old, at)) = self.order.pop_front() else { break };
            // Only the newest insertion of an id owns its map entry; older queue entries are stale.
            if self.map.get(&old).is_some_and(|(_, t)| *t == at) {
                self.map.remove(&old);
            }
        }
    }

    fn remove(&mut self, id: &str) {
        self.map.remove(id);
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

pub struct KeyCache {
    known: Bounded<KeyRecord>,
    unknown: Bounded<()>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::with_capacity(KNOWN_CAPACITY, UNKNOWN_CAPACITY)
    }
}

impl KeyCache {
    pub fn with_capacity(known: usize, unknown: usize) -> Self {
        KeyCache { known: Bounded::new(known), unknown: Bounded::new(unknown) }
    }

    /// `Some(Some(key))`: cached and known; `Some(None)`: cached as unknown; `None`: ask the database.
    pub fn get(&self, id: &str, now: Instant) -> Option<Option<KeyRecord>> {
        if let Some(k) = self.known.get(id, now) {
            return Some(Some(k));
        }
        self.unknown.get(id, now).map(|()| None)
    }

    pub fn insert(&mut self, id: &str, key: Option<KeyRecord>, now: Instant) {
        match key {
            Some(k) => {
                self.unknown.remove(id);
                self.known.insert(id, k, now);
            }
            None => {
                self.known.remove(id);
                self.unknown.insert(id, (), now);
            }
        }
    }

    pub fn forget(&mut self, id: &str) {
        self.known.remove(id);
        self.unknown.remove(id);
    }

    /// Entries held (known, unknown).
    pub fn len(&self) -> (usize, usize) {
        (self.known.len(), self.unknown.len())
    }
}
