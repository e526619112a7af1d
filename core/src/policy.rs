//! Deployment policy: what TTLs are accepted and how long each resource type stays blocked after an
//! involuntary loss.

use alloc::collections::BTreeMap;
use alloc::string::String;

use crate::time::Millis;
use crate::ttl::TtlBounds;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub ttl_bounds: TtlBounds,
    /// The TTL an acquire without `ttl_seconds` gets while the TTL model has too little history (seconds).
    pub default_ttl_seconds: u32,
    /// Lock-delay per resource type. After a hold on such a resource expires or is force-released, nobody can be
    /// granted it until the delay has passed, so a client that paused (GC, network partition) and still believes
    /// it holds cannot overlap with the next holder during that window. Types not listed have no delay; a clean
    /// release never has one.
    pub lock_delays: BTreeMap<String, Millis>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { ttl_bounds: TtlBounds::default(), default_ttl_seconds: 300, lock_delays: BTreeMap::new() }
    }
}

impl Policy {
    pub fn lock_delay(&self, resource_type: &str) -> Millis {
        self.lock_delays.get(resource_type).copied().unwrap_or(Millis::ZERO)
    }
}
