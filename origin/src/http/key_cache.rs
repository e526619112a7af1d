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
    /// How many times a key was forgotten. A lookup notes it before reading the store and fills the cache only
    /// if it is unchanged after: a read that began before a revoke may return the unrevoked record, and must not
    /// put it back after `forget` (it would stay accepted here for a whole [`CACHE_TTL`]). One counter for all
    /// keys: a revoke is rare, and a fill it drops costs one more database read, never a wrong answer.
    forgets: u64,
}

/// What a lookup notes before it reads the store ([`KeyCache::ticket`]), to fill the cache with what it read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket(u64);

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::with_capacity(KNOWN_CAPACITY, UNKNOWN_CAPACITY)
    }
}

impl KeyCache {
    pub fn with_capacity(known: usize, unknown: usize) -> Self {
        KeyCache { known: Bounded::new(known), unknown: Bounded::new(unknown), forgets: 0 }
    }

    /// `Some(Some(key))`: cached and known; `Some(None)`: cached as unknown; `None`: ask the database.
    pub fn get(&self, id: &str, now: Instant) -> Option<Option<KeyRecord>> {
        if let Some(k) = self.known.get(id, now) {
            return Some(Some(k));
        }
        self.unknown.get(id, now).map(|()| None)
    }

    /// Taken before a lookup reads the store; [`KeyCache::fill`] with it stores what the read found.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.forgets)
    }

    /// Caches what a lookup read, unless a key was forgotten since its [`Ticket`] (the read may predate a
    /// revoke). Whether it was cached.
    pub fn fill(&mut self, ticket: Ticket, id: &str, key: Option<KeyRecord>, now: Instant) -> bool {
        if ticket.0 != self.forgets {
            return false;
        }
        self.insert(id, key, now);
        true
    }

    fn insert(&mut self, id: &str, key: Option<KeyRecord>, now: Instant) {
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
        self.forgets = self.forgets.wrapping_add(1);
        self.known.remove(id);
        self.unknown.remove(id);
    }

    /// Entries held (known, unknown).
    pub fn len(&self) -> (usize, usize) {
        (self.known.len(), self.unknown.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            principal: "p".into(),
            role: hhs_core::Role::Viewer,
            secret_sha256: vec![],
            created_at_ms: 0,
            revoked_at_ms: None,
        }
    }

    #[test]
    fn fifty_thousand_unknown_ids_stay_bounded_and_evict_no_known_key() {
        let mut cache = KeyCache::default();
        let now = Instant::now();
        cache.insert("real", Some(key("real")), now);
        for i in 0..50_000 {
            cache.insert(&format!("{i:012x}"), None, now);
        }
        let (known, unknown) = cache.len();
        assert_eq!(known, 1);
        assert!(unknown <= UNKNOWN_CAPACITY, "{unknown}");
        assert!(cache.known.order.len() <= 2 * KNOWN_CAPACITY && cache.unknown.order.len() <= 2 * UNKNOWN_CAPACITY);
        assert!(matches!(cache.get("real", now), Some(Some(_))));
        assert!(
            matches!(cache.get(&format!("{:012x}", 49_999), now), Some(None)),
            "the newest unknown id is remembered"
        );
        assert!(cache.get(&format!("{:012x}", 0), now).is_none(), "the oldest was forgotten: ask the database again");
    }

    #[test]
    fn entries_expire_and_a_key_found_later_replaces_its_unknown_entry() {
        let mut cache = KeyCache::default();
        let t0 = Instant::now();
        cache.insert("k", None, t0);
        assert!(matches!(cache.get("k", t0), Some(None)));
        assert!(cache.get("k", t0 + CACHE_TTL).is_none(), "expired after the TTL");
        cache.insert("k", Some(key("k")), t0);
        assert!(matches!(cache.get("k", t0), Some(Some(_))));
        assert_eq!(cache.len(), (1, 0));
        cache.forget("k");
        assert!(cache.get("k", t0).is_none());
    }

    #[test]
    fn a_read_that_began_before_a_forget_does_not_fill_the_cache() {
        let mut cache = KeyCache::default();
        let now = Instant::now();
        let before = cache.ticket();
        cache.forget("k");
        assert!(!cache.fill(before, "k", Some(key("k")), now), "the read predates the revoke");
        assert!(cache.get("k", now).is_none(), "ask the database again");
        let after = cache.ticket();
        assert!(cache.fill(after, "k", Some(key("k")), now));
        assert!(matches!(cache.get("k", now), Some(Some(_))));
    }
}
