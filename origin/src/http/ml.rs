//! `/api/ml`: the TTL model's suggestions and the "looks wrong" list (viewer).

use axum::extract::State;
use axum::Json;
use hhs_core::ttl_model::Suggestion;
use hhs_core::wire::{AnomalyList, AnomalyView, SuggestRequest, SuggestResponse, SuggestionBasis};

use super::auth::Caller;
use super::error::AppError;
use super::extract::{JsonBody, QueryParams};
use super::locks::next_after;
use super::AppState;
use hhs_core::wire::AnomalyQuery;

pub fn basis(s: &Suggestion) -> SuggestionBasis {
    SuggestionBasis {
        scope: s.scope,
        learned_from: s.basis,
        samples: s.samples,
        quantile_seconds: s.quantile.map(|q| q.0 as f64 / 1000.0),
    }
}

pub(super) async fn suggest(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<SuggestRequest>,
) -> Result<Json<SuggestResponse>, AppError> {
    let (resource_id, owner) = req.validate()?;
    let (resource, lease, now) = state.store.lease(resource_id).await?;
    let (suggestion, score) = state.model.read(|m| {
        let s = m.suggest(resource.resource_type.as_str(), caller.principal.as_str(), owner.as_str(), &resource.policy);
        let score = lease.hold.as_ref().map_or(0.0, |h| m.anomaly(resource.resource_type.as_str(), h, now));
        (s, score)
    });
    Ok(Json(SuggestResponse {
        suggested_ttl: suggestion.ttl.seconds(),
        anomaly_score: score,
        basis: basis(&suggestion),
    }))
}

/// Live holds scoring at least `min_score` (default 0.8), most unusual first within a page of up to `limit`
/// held leases (by resource id; `after` for the next).
pub(super) async fn anomalies(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<AnomalyQuery>,
) -> Result<Json<AnomalyList>, AppError> {
    let (filter, min) = q.validate()?;
    let (leases, now) = state.store.leases(&filter).await?;
    let next_after = next_after(&leases, filter.limit);
    let mut items: Vec<AnomalyView> = state.model.read(|m| {
        leases
            .iter()
            .filter_map(|(r, l)| {
                let h = l.live_hold(now)?;
                let score = m.anomaly(r.resource_type.as_str(), h, now);
                (score >= min).then(|| AnomalyView {
                    resource_id: r.id,
                    resource_type: r.resource_type.as_str().to_owned(),
                    identifier: r.identifier.as_str().to_owned(),
                    owner_id: h.owner.as_str().to_owned(),
                    principal: h.principal.as_str().to_owned(),
                    anomaly_score: score,
                    held_seconds: now.since(h.acquired_at).0 as f64 / 1000.0,
                    heartbeat_gap_seconds: now.since(h.last_heartbeat).0 as f64 / 1000.0,
                    fencing_token: h.token.0,
                })
            })
            .collect()
    });
    items.sort_by(|a, b| b.anomaly_score.total_cmp(&a.anomaly_score));
    Ok(Json(AnomalyList { items, next_after }))
}
