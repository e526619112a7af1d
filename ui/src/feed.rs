//! The live feed: snapshot, then the event stream, forever. Every (re)connect loads a fresh snapshot and streams
//! from its `last_event_id`, so nothing falls between the two, and renewals missed while disconnected (they are
//! not replayed) are caught up too. A `resync` message does the same at once; a lost connection waits a little
//! longer each time (1 s doubling to 15 s). A rejected key ends the feed and signs the user out.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{select, Either};
use hhs_core::wire::{EventView, LockView};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader};
use yew::platform::time::sleep;
use yew::{Callback, UseReducerDispatcher};

use crate::api::{self, Api, UiError};
use crate::sse::Parser;
use crate::state::{Action, Board, Link};

/// The server sends a keep-alive every 15 s; this long without a byte means the connection is dead.
const SILENCE: Duration = Duration::from_secs(45);
const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// Stops the feed when dropped (sign-out, unmount).
pub struct FeedHandle {
    cancelled: Rc<Cell<bool>>,
    abort: Option<AbortController>,
}

impl Drop for FeedHandle {
    fn drop(&mut self) {
        self.cancelled.set(true);
        if let Some(a) = &self.abort {
            a.abort();
        }
    }
}

/// How one stream connection ended.
enum End {
    Resync,
    Lost(String),
    Rejected(UiError),
}

pub fn start(api: Api, dispatch: UseReducerDispatcher<Board>, on_rejected: Callback<UiError>) -> FeedHandle {
    let cancelled = Rc::new(Cell::new(false));
    let abort = AbortController::new().ok();
    let handle = FeedHandle { cancelled: cancelled.clone(), abort: abort.clone() };
    yew::platform::spawn_local(async move {
        let signal = abort.as_ref().map(|a| a.signal());
        let mut backoff = Duration::from_secs(1);
        while !cancelled.get() {
            let end = match api.snapshot().await {
                Ok((list, offset_ms)) => {
                    let cursor = list.last_event_id;
                    dispatch.dispatch(Action::Snapshot { list, offset_ms });
                    stream(&api, cursor, signal.as_ref(), &dispatch, &mut backoff).await
                }
                Err(e) if e.is_unauthenticated() => End::Rejected(e),
                Err(e) => End::Lost(e.to_string()),
            };
            if cancelled.get() {
                return;
            }
            match end {
                End::Rejected(e) => {
                    on_rejected.emit(e);
                    return;
                }
                End::Resync => {}
                End::Lost(why) => {
                    dispatch.dispatch(Action::Link(Link::Reconnecting(why)));
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
    handle
}

/// One connection of the stream, from `cursor`, until it ends.
async fn stream(
    api: &Api,
    cursor: i64,
    signal: Option<&web_sys::AbortSignal>,
    dispatch: &UseReducerDispatcher<Board>,
    backoff: &mut Duration,
) -> End {
    let resp = match api.fetch("GET", &format!("/api/events/stream?after={cursor}"), None, signal).await {
        Ok(r) => r,
        Err(e) => return End::Lost(e.to_string()),
    };
    if !resp.ok() {
        let err = api::error(resp.status(), &api::text(&resp).await.unwrap_or_default());
        return if err.is_unauthenticated() { End::Rejected(err) } else { End::Lost(err.to_string()) };
    }
    let Some(reader) = resp.body().map(|b| b.get_reader().unchecked_into::<ReadableStreamDefaultReader>()) else {
        return End::Lost("the event stream had no body".into());
    };
    dispatch.dispatch(Action::Link(Link::Live));
    *backoff = Duration::from_secs(1);
    let mut parser = Parser::default();
    loop {
        let read = Box::pin(JsFuture::from(reader.read()));
        let chunk = match select(read, Box::pin(sleep(SILENCE))).await {
            Either::Left((Ok(chunk), _)) => chunk,
            Either::Left((Err(_), _)) => return End::Lost("the event stream broke off".into()),
            Either::Right(_) => {
                let _ = reader.cancel();
                return End::Lost("the event stream went silent".into());
            }
        };
        let done = js_sys::Reflect::get(&chunk, &"done".into()).ok().and_then(|v| v.as_bool()).unwrap_or(true);
        if done {
            return End::Lost("the event stream ended".into());
        }
        let Ok(value) = js_sys::Reflect::get(&chunk, &"value".into()) else { continue };
        let bytes = js_sys::Uint8Array::new(&value).to_vec();
        for msg in parser.push(&bytes) {
            match msg.event.as_str() {
                "resync" => return End::Resync,
                "heartbeat" => {
                    if let Ok(r) = serde_json::from_str::<LockView>(&msg.data) {
                        dispatch.dispatch(Action::Renewal(r));
                    }
                }
                _ => {
                    if let Ok(e) = serde_json::from_str::<EventView>(&msg.data) {
                        dispatch.dispatch(Action::Event(e));
                    }
                }
            }
        }
    }
}
