//! The TTL model: learned hold behaviour, suggested TTLs and anomaly scores. Pure, `no_std`, cheap to update
//! (O(1) per observation, O(log n) per suggestion), so the origin keeps it in memory and the edge or dashboard
//! could run it too.
//!
//! ## What it learns
//! A hold expires when `now - last_heartbeat > ttl`. A TTL too long keeps a bed locked long after its client
//! crashed (dead time); too short expires live holds (false expiry). What matters depends on the client:
//! * a client that **heartbeats** needs a TTL above its longest gap between heartbeats — we learn the
//!   distribution of each hold's longest gap;
//! * a client that **never heartbeats** needs a TTL above the whole hold — we learn hold durations.
//!
//! Each distribution is summarised per resource type and per (type, principal, owner) as a log-normal (running
//! sums of `ln x` and `ln² x`): robust to huge outliers, exact to update, tiny. An owner's parameters are shrunk
//! toward its type's (weight `n / (n + SHRINK)`), and with too little data the policy default TTL is used. Owner
//! ids are the clients' choice, so owner summaries are bounded per principal ([`MAX_OWNERS_PER_PRINCIPAL`], the
//! least recently updated forgotten first).
//!
//! The suggestion is the scope's 99.5th percentile times a safety margin, clamped to the policy's bounds. The
//! anomaly score of a live hold is how far its age (against the scope's hold durations) or its current heartbeat
//! gap (against the scope's gaps) sits in the tail, mapped to [0, 1] so that 0.8 means "far outside what this
//! scope does" (about 3 standard deviations in log space for age).

use alloc::collections::BTreeMap;
use alloc::string::String;

use libm::{erf, exp, log, sqrt};
use serde::{Deserialize, Serialize};

use crate::lease::Hold;
use crate::policy::TypePolicy;
use crate::time::Millis;
use crate::ttl::{Ttl, TtlBounds};

/// z of the 99.5th percentile of a standard normal: the quantile a suggestion covers.
const Z_QUANTILE: f64 = 2.575_829;
/// Head-room over the learned quantile: a slow network, a GC pause.
const GAP_MARGIN: f64 = 1.25;
const DURATION_MARGIN: f64 = 1.10;
/// Prior weight, in samples, of the type when estimating an owner.
const SHRINK: f64 = 20.0;
/// Fewer samples than this in a type: use the policy default.
const MIN_TYPE_SAMPLES: u32 = 10;
/// Fewer than this for an owner: the basis is reported as the type's.
const MIN_OWNER_SAMPLES: u32 = 5;
/// A floor on σ (log space): a scope whose samples are all equal still gets a sane, finite quantile.
const MIN_SIGMA: f64 = 0.05;
/// Anomaly mapping: score = Φ(z − shift). Age three σ past the mean scores ≈ 0.8; gaps need more, since a
/// lapsing gap is the TTL's job, not the anomaly list's.
const AGE_SHIFT: f64 = 2.3;
const GAP_SHIFT: f64 = 4.5;

/// Running log-normal summary of positive durations in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct LogSummary {
    pub n: u32,
    sum: f64,
    sum_sq: f64,
}

/// Log-normal parameters (μ, σ) in log-milliseconds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogNormal {
    pub mu: f64,
    pub sigma: f64,
}

impl LogNormal {
    pub fn quantile_ms(&self, z: f64) -> f64 {
        exp(self.mu + z * self.sigma)
    }

    /// How many σ above the mean `ms` is.
    pub fn z(&self, ms: f64) -> f64 {
        (log(ms.max(1.0)) - self.mu) / self.sigma
    }
}

impl LogSummary {
    /// Adds one sample. Values are clamped to [1 ms, 30 days], so a corrupt or absurd sample cannot dominate;
    /// NaN is ignored.
    pub fn add(&mut self, ms: f64) {
        if ms.is_nan() {
            return;
        }
        let x = log(ms.clamp(1.0, 30.0 * 86_400_000.0));
        self.n = self.n.saturating_add(1);
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Both summaries' samples in one (the sums add).
    pub fn merge(&mut self, other: &LogSummary) {
        self.n = self.n.saturating_add(other.n);
        self.sum += other.sum;
        self.sum_sq += other.sum_sq;
    }

    fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / f64::from(self.n))
    }

    fn variance(&self) -> Option<f64> {
        (self.n > 1).then(|| {
            let n = f64::from(self.n);
            ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
        })
    }

    /// The fitted log-normal, if there is at least one sample (one sample: σ at its floor).
    pub fn fit(&self) -> Option<LogNormal> {
        let mu = self.mean()?;
        let sigma = sqrt(self.variance().unwrap_or(0.0)).max(MIN_SIGMA);
        Some(LogNormal { mu, sigma })
    }

    /// This scope's fit, shrunk toward `parent` with a prior weight of `SHRINK` samples.
    pub fn shrunk_toward(&self, parent: LogNormal) -> LogNormal {
        let n = f64::from(self.n);
        if self.n == 0 {
            return parent;
        }
        let w = n / (n + SHRINK);
        let mu = w * self.mean().unwrap_or(parent.mu) + (1.0 - w) * parent.mu;
        let own_var = self.variance().unwrap_or(parent.sigma * parent.sigma);
        let var = w * own_var + (1.0 - w) * parent.sigma * parent.sigma;
        LogNormal { mu, sigma: sqrt(var).max(MIN_SIGMA) }
    }
}

/// What one finished hold teaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Heartbeats the hold received (0: a client that does not heartbeat).
    pub heartbeats: u32,
    /// The longest gap between heartbeats (or between grant and the first).
    pub max_gap: Millis,
    /// How long the client actually held (until it released, or tried to after its hold lapsed).
    pub held: Millis,
}

/// The summaries of one scope.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
pub struct ScopeStats {
    /// Longest gap per hold, for holds that heartbeat.
    pub gaps: LogSummary,
    /// Durations of holds that never heartbeat.
    pub silent_durations: LogSummary,
    /// Durations of all holds (the anomaly score's "how old is too old").
    pub durations: LogSummary,
}

/// Holds further than this many σ above their scope's typical duration are left out of the duration baseline:
/// forgotten holds must not teach the model that forgetting is normal.
const OUTLIER_Z: f64 = 4.0;
/// ... once the baseline has this many samples to judge by.
const OUTLIER_MIN_SAMPLES: u32 = 20;

impl ScopeStats {
    fn observe(&mut self, o: &Observation) {
        let held = o.held.0 as f64;
        let outlier =
            self.durations.n >= OUTLIER_MIN_SAMPLES && self.durations.fit().is_some_and(|f| f.z(held) > OUTLIER_Z);
        if !outlier {
            self.durations.add(held);
        }
        if o.heartbeats > 0 {
            self.gaps.add(o.max_gap.0 as f64);
        } else {
            self.silent_durations.add(held);
        }
    }

    fn samples(&self) -> u32 {
        self.durations.n
    }

    /// Whether holds of this scope mostly heartbeat.
    fn heartbeats(&self) -> bool {
        self.gaps.n >= self.silent_durations.n
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Owner,
    Type,
    Default,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Learned from the longest heartbeat gaps.
    HeartbeatGaps,
    /// Learned from whole hold durations (clients that don't heartbeat).
    HoldDurations,
    /// Not enough history: the policy default.
    PolicyDefault,
}

/// A suggested TTL and what it rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub ttl: Ttl,
    pub scope: Scope,
    pub basis: Basis,
    /// Finished holds behind it (the owner's if the scope is the owner, else the type's).
    pub samples: u32,
    /// The learned 99.5th percentile the TTL covers, before margin and bounds.
    pub quantile: Option<Millis>,
}

/// The TTL to offer a person acquiring by hand (the dashboard's acquire form): the model's suggestion, but never
/// shorter than the type's default unless it was learned from this very owner's holds (`scope` [`Scope::Owner`]).
/// A type's history is mostly its scripted clients', which acquire and release in well under a second; a person
/// given their TTL would lose the bed while still at the keyboard. Longer suggestions are kept: the type's clients
/// heartbeating slowly is a lesson for everyone. A type's default lies within its bounds, so the answer does too.
pub fn ttl_for_person(suggested_seconds: u32, scope: Scope, type_default_seconds: u32) -> u32 {
    match scope {
        Scope::Owner => suggested_seconds,
        Scope::Type | Scope::Default => suggested_seconds.max(type_default_seconds),
    }
}

/// Who an owner is: within a resource type, a principal's owner id.
pub type OwnerKey = (String, String, String);

/// Owner summaries kept per principal (an owner on each type it holds counts once per type). Owner ids are
/// chosen by clients, so without a bound one key sending a fresh owner id with every hold would grow the model
/// for ever; past the bound the principal's least recently updated summary is forgotten (that owner is
/// estimated from its type again until it has history anew). Per principal, so one principal's churn never
/// evicts another's owners. Far above what a clinic's workstations and services need.
pub const MAX_OWNERS_PER_PRINCIPAL: usize = 10_000;

#[derive(Clone, Debug)]
struct OwnerEntry {
    stats: ScopeStats,
    /// When it was last updated, on the model's own update counter.
    touched: u64,
}

#[derive(Clone, Debug)]
pub struct TtlModel {
    types: BTreeMap<String, ScopeStats>,
    owners: BTreeMap<OwnerKey, OwnerEntry>,
    /// Each principal's owner summaries by when they were last updated, oldest first.
    recency: BTreeMap<String, BTreeMap<u64, OwnerKey>>,
    /// Counts updates: an order, not a time (the model reads no clock; replicas folding the same log in the same
    /// order keep the same owners).
    updates: u64,
    owner_capacity: usize,
}

impl Default for TtlModel {
    fn default() -> Self {
        TtlModel::with_owner_capacity(MAX_OWNERS_PER_PRINCIPAL)
    }
}

fn owner_key(resource_type: &str, principal: &str, owner: &str) -> OwnerKey {
    (String::from(resource_type), String::from(principal), String::from(owner))
}

/// Standard normal CDF.
fn phi(z: f64) -> f64 {
    0.5 * (1.0 + erf(z / core::f64::consts::SQRT_2))
}

impl TtlModel {
    /// An empty model keeping at most `capacity` owner summaries per principal (at least one).
    pub fn with_owner_capacity(capacity: usize) -> TtlModel {
        TtlModel {
            types: BTreeMap::new(),
            owners: BTreeMap::new(),
            recency: BTreeMap::new(),
            updates: 0,
            owner_capacity: capacity.max(1),
        }
    }

    /// Owner summaries held, over every principal.
    pub fn owner_summaries(&self) -> usize {
        self.owners.len()
    }

    /// Whether the model holds a summary of this owner on this type.
    pub fn knows_owner(&self, resource_type: &str, principal: &str, owner: &str) -> bool {
        self.owners.contains_key(&owner_key(resource_type, principal, owner))
    }

    /// The owner's summary to update, marked most recently updated; a new one may push out its principal's least
    /// recently updated.
    fn owner_mut(&mut self, resource_type: &str, principal: &str, owner: &str) -> &mut ScopeStats {
        self.updates += 1;
        let now = self.updates;
        let key = owner_key(resource_type, principal, owner);
        let recent = self.recency.entry(String::from(principal)).or_default();
        match self.owners.get_mut(&key) {
            Some(entry) => {
                recent.remove(&entry.touched);
                entry.touched = now;
                recent.insert(now, key.clone());
            }
            None => {
                recent.insert(now, key.clone());
                self.owners.insert(key.clone(), OwnerEntry { stats: ScopeStats::default(), touched: now });
                // The new entry is the newest, so it is never the one pushed out.
                while recent.len() > self.owner_capacity {
                    let Some((_, oldest)) = recent.pop_first() else { break };
                    self.owners.remove(&oldest);
                }
            }
        }
        &mut self.owners.entry(key).or_insert(OwnerEntry { stats: ScopeStats::default(), touched: now }).stats
    }

    fn owner(&self, resource_type: &str, principal: &str, owner: &str) -> Option<&ScopeStats> {
        self.owners.get(&owner_key(resource_type, principal, owner)).map(|e| &e.stats)
    }

    pub fn observe(&mut self, resource_type: &str, principal: &str, owner: &str, o: &Observation) {
        self.types.entry(String::from(resource_type)).or_default().observe(o);
        self.owner_mut(resource_type, principal, owner).observe(o);
    }

    /// A heartbeat gap seen without a finished hold: a heartbeat that arrived after its hold had lapsed (the gap
    /// that caused a false expiry). Teaches the owner's gap distribution only (see [`TtlModel::observe_late`]).
    pub fn observe_gap(&mut self, resource_type: &str, principal: &str, owner: &str, gap: Millis) {
        self.owner_mut(resource_type, principal, owner).gaps.add(gap.0 as f64);
    }

    /// A hold whose client came back after it had lapsed (a late release): teaches that owner only. Late reports
    /// are one client's failures — a stalled process, a lost network — and every other owner's suggestion leans
    /// on its type's summary; fed there, 300 lapses of one clinic would push every clinic's TTL toward the
    /// maximum. The owner learns its own lesson (its next suggestion covers the gap); the type does not.
    pub fn observe_late(&mut self, resource_type: &str, principal: &str, owner: &str, o: &Observation) {
        self.owner_mut(resource_type, principal, owner).observe(o);
    }

    pub fn type_samples(&self, resource_type: &str) -> u32 {
        self.types.get(resource_type).map_or(0, ScopeStats::samples)
    }

    fn scopes(&self, resource_type: &str, principal: &str, owner: &str) -> (Option<&ScopeStats>, Option<&ScopeStats>) {
        let ty = self.types.get(resource_type).filter(|t| t.samples() >= MIN_TYPE_SAMPLES);
        let own = self.owner(resource_type, principal, owner);
        (ty, own)
    }

    /// The TTL to use for a new hold of this owner on a resource of this type.
    pub fn suggest(&self, resource_type: &str, principal: &str, owner: &str, policy: &TypePolicy) -> Suggestion {
        let bounds = &policy.ttl_bounds();
        let default = Suggestion {
            ttl: Ttl::from_seconds(policy.default_ttl_seconds().clamp(bounds.min_seconds, bounds.max_seconds), bounds)
                .unwrap_or_else(|_| Ttl::from_stored_millis(i64::from(bounds.max_seconds) * 1000)),
            scope: Scope::Default,
            basis: Basis::PolicyDefault,
            samples: 0,
            quantile: None,
        };
        let (Some(ty), own) = self.scopes(resource_type, principal, owner) else {
            return default;
        };
        let own_enough = own.filter(|o| o.samples() >= MIN_OWNER_SAMPLES);
        // The owner's own habit decides the mode once it has one; before that, the type's.
        let heartbeats = own_enough.map_or(ty.heartbeats(), ScopeStats::heartbeats);
        let (basis, type_summary, own_summary, margin) = if heartbeats {
            (Basis::HeartbeatGaps, ty.gaps, own.map(|o| o.gaps), GAP_MARGIN)
        } else {
            (Basis::HoldDurations, ty.silent_durations, own.map(|o| o.silent_durations), DURATION_MARGIN)
        };
        let Some(type_fit) = type_summary.fit() else {
            // The type has history, but none of this kind: fall back on the owner's own, or the default.
            return match own_summary.and_then(|s| s.fit()) {
                Some(fit) => Self::finish(fit, margin, Scope::Owner, basis, own_summary.map_or(0, |s| s.n), bounds),
                None => default,
            };
        };
        let fit = own_summary.map_or(type_fit, |s| s.shrunk_toward(type_fit));
        let (scope, samples) = match own_enough {
            Some(_) => (Scope::Owner, own_summary.map_or(0, |s| s.n)),
            None => (Scope::Type, type_summary.n),
        };
        Self::finish(fit, margin, scope, basis, samples, bounds)
    }

    /// The TTL for a new session of this principal's owner. A session is kept alive as a heartbeating hold is,
    /// and each keepalive renews its holds ([`crate::session::renew_hold`] records the gap on each), so what it
    /// needs is a TTL above the owner's longest gaps between renewals: the owner's gap summaries on every type
    /// are pooled (log-normal sums add) and read as a heartbeating hold's would be. With fewer than
    /// `MIN_OWNER_SAMPLES` such gaps, `default` (clamped to `bounds`).
    pub fn suggest_session(&self, principal: &str, owner: &str, default: Ttl, bounds: &TtlBounds) -> Suggestion {
        let mut gaps = LogSummary::default();
        for e in self.owners.iter().filter(|((_, p, o), _)| p == principal && o == owner).map(|(_, e)| e) {
            gaps.merge(&e.stats.gaps);
        }
        match gaps.fit().filter(|_| gaps.n >= MIN_OWNER_SAMPLES) {
            Some(fit) => Self::finish(fit, GAP_MARGIN, Scope::Owner, Basis::HeartbeatGaps, gaps.n, bounds),
            None => {
                let secs = default.seconds().clamp(bounds.min_seconds, bounds.max_seconds);
                let ttl = Ttl::from_seconds(secs, bounds).unwrap_or(default);
                Suggestion { ttl, scope: Scope::Default, basis: Basis::PolicyDefault, samples: gaps.n, quantile: None }
            }
        }
    }

    fn finish(fit: LogNormal, margin: f64, scope: Scope, basis: Basis, samples: u32, b: &TtlBounds) -> Suggestion {
        let q = fit.quantile_ms(Z_QUANTILE);
        let secs = libm::ceil(q * margin / 1000.0);
        let secs = if secs.is_finite() {
            secs.clamp(f64::from(b.min_seconds), f64::from(b.max_seconds))
        } else {
            f64::from(b.max_seconds)
        };
        Suggestion {
            ttl: Ttl::from_seconds_f64(secs, b)
                .unwrap_or_else(|_| Ttl::from_stored_millis(i64::from(b.max_seconds) * 1000)),
            scope,
            basis,
            samples,
            quantile: Some(Millis(q as i64)),
        }
    }

    /// How unusual a hold is at `now`, in [0, 1]; 0 for a hold that is not live, or a scope without history.
    pub fn anomaly(&self, resource_type: &str, hold: &Hold, now: Millis) -> f64 {
        if !hold.is_live(now) {
            return 0.0;
        }
        let (Some(ty), own) = self.scopes(resource_type, hold.principal.as_str(), hold.owner.as_str()) else {
            return 0.0;
        };
        let pick = |t: &LogSummary, o: Option<LogSummary>| t.fit().map(|tf| o.map_or(tf, |o| o.shrunk_toward(tf)));
        let age = now.since(hold.acquired_at).0 as f64;
        let mut score = pick(&ty.durations, own.map(|o| o.durations)).map_or(0.0, |d| phi(d.z(age) - AGE_SHIFT));
        if hold.heartbeats > 0 {
            let gap = now.since(hold.last_heartbeat).0 as f64;
            if let Some(g) = pick(&ty.gaps, own.map(|o| o.gaps)) {
                score = score.max(phi(g.z(gap) - GAP_SHIFT));
            }
        }
        if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}
