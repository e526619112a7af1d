//! `GET /api/events`: the event log, oldest first, for one resource or all.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::stream::{self, Stream, StreamExt};
use hhs_core::wire::{EventPage, EventQuery, EventView, LockView, StreamQuery};
use http::header::AUTHORIZATION;
use http::HeaderMap;
use tokio::sync::broadcast::error::RecvError;

use super::error::AppError;
use super::extract::QueryParams;
use super::AppState;
use crate::store::{EventFilter, LogPos};
use crate::stream::Item;

/// The most events a reconnecting stream replays; a client further behind gets `resync`.
const BACKLOG: usize = 1_000;

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

/// A renewal: `event: heartbeat`, no `id:` (it is not in the log, so it must not move a client's resume point).
fn renewal_event(r: &LockView) -> Event {
    Event::default()
        .event("heartbeat")
        .json_data(r)
        .unwrap_or_else(|_| Event::default().comment("unserialisable renewal"))
}

fn sse_event(e: &EventView) -> Event {
    Event::default()
        .id(e.id.to_string())
        .event(e.kind.as_str())
        .json_data(e)
        .unwrap_or_else(|_| Event::default().comment("unserialisable event"))
}

/// `GET /api/events/stream` (viewer): server-sent events, one per event-log entry (`event:` is its kind, `id:`
/// its id, `data:` the same JSON as `GET /api/events`). With `Last-Event-ID` or `?after=` the missed events are
/// replayed first, so a reconnecting dashboard loses nothing. A subscriber too slow to keep up, or more than
/// 1,000 events behind, gets a `resync` event and should reload the board. The stream ends when its key is
/// revoked (checked every few seconds). Renewals of holds (heartbeats) come
/// as `event: heartbeat` with the hold's `LockView` and no id.
pub(super) async fn stream(
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let resume =
        headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok()).or(q.after);
    // Subscribe before reading the backlog, so nothing falls between the two.
    let rx = state.hub.subscribe();
    let backlog = match resume {
        Some(after) => {
            state
                .store
                .events(&EventFilter { after_id: Some(after), limit: BACKLOG as u32, ..EventFilter::default() })
                .await?
        }
        None => vec![],
    };
    let backlog = crate::stream::with_locks(&state.store, backlog).await?;
    // More missed than one page: the client cannot catch up by replay; it must reload its snapshot.
    let overflowed = backlog.len() >= BACKLOG;
    // Where the replay ends in commit order: live events at or before it were replayed already.
    let last = match (backlog.last(), resume) {
        (Some(logged), _) => logged.pos,
        (None, Some(id)) => state.store.log_position(id).await?.unwrap_or(LogPos { txid: 0, id }),
        (None, None) => LogPos::default(),
    };
    let mut first: Vec<Event> = backlog.iter().map(|l| sse_event(&l.event)).collect();
    if overflowed {
        first.push(resync());
    }
    let replay = stream::iter(first.into_iter().map(Ok));
    let live = stream::unfold((rx, last), |(mut rx, last)| async move {
        loop {
            match rx.recv().await {
                Ok(Item::Event(pos, e)) if pos > last => return Some((Ok(sse_event(&e)), (rx, pos))),
                Ok(Item::Event(..)) => continue,
                Ok(Item::Renewal(r)) => return Some((Ok(renewal_event(&r)), (rx, last))),
                Err(RecvError::Lagged(_)) => return Some((Ok(resync()), (rx, last))),
                Err(RecvError::Closed) => return None,
            }
        }
    });
    // Ends at shutdown, or graceful shutdown would wait on open dashboards forever; and when the key is revoked,
    // so a dashboard left open learns it (its reconnect is refused) instead of watching on.
    let header = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (auth, every) = (state.auth.clone(), state.stream_key_check);
    let revoked = async move {
        loop {
            tokio::time::sleep(every).await;
            if !auth.still_valid(header.as_deref()).await {
                break;
            }
        }
    };
    let events = replay.chain(live).take_until(state.shutdown.clone().cancelled_owned()).take_until(Box::pin(revoked));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// `GET /api/events`: a page of the log in commit order; `next_after` (the last event's id, on a full page)
/// continues it, and never skips an event that commits late (see "Reading the log in commit order").
pub(super) async fn list(
    State(state): State<AppState>,
    QueryParams(q): QueryParams<EventQuery>,
) -> Result<Json<EventPage>, AppError> {
    let filter = q.validate()?;
    let items: Vec<EventView> = state.store.events(&filter).await?.into_iter().map(|l| l.event).collect();
    let next_after = items.last().map(|e| e.id).filter(|_| items.len() == filter.limit as usize);
    Ok(Json(EventPage { items, next_after }))
}
