//! The signed-in dashboard: owns the board store, the live feed, the one-second clock and the actions; shows
//! the status bar, notices, the board or analytics tab, and a resource's detail.

use std::rc::Rc;

use gloo::timers::callback::Interval;
use hhs_core::{Millis, ResourceId};
use yew::prelude::*;

use super::analytics_view::AnalyticsView;
use super::board_view::BoardView;
use super::context::{Ctx, Op};
use super::detail_panel::DetailPanel;
use super::notice_banner::NoticeBanner;
use super::sessions_view::SessionsView;
use super::status_bar::StatusBar;
use super::types_view::TypesView;
use crate::api::UiError;
use crate::feed;
use crate::session::Session;
use crate::state::{Action, Board, Notice};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub session: Rc<Session>,
    /// Sign out, with the reason to show on the sign-in page (None: the user asked).
    pub on_sign_out: Callback<Option<String>>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Board,
    Analytics,
    Types,
    Sessions,
}

/// This browser's clock, in ms since the epoch.
fn local_now() -> i64 {
    js_sys::Date::now() as i64
}

#[function_component(Dashboard)]
pub fn dashboard(props: &Props) -> Html {
    let board = use_reducer(Board::default);
    let local = use_state(local_now);
    let tab = use_state(|| Tab::Board);
    let selected = use_state(|| None::<ResourceId>);
    // Bumped to restart the feed (a fresh snapshot) when the board finds itself stale.
    let generation = use_state(|| 0u32);

    let on_rejected = {
        let out = props.on_sign_out.clone();
        Callback::from(move |e: UiError| out.emit(Some(e.sign_in_message())))
    };

    // The feed lives as long as this session (and generation); dropping the handle aborts the stream.
    {
        let (api, dispatch, on_rejected) = (props.session.api.clone(), board.dispatcher(), on_rejected.clone());
        use_effect_with((props.session.clone(), *generation), move |_| {
            let handle = feed::start(api, dispatch, on_rejected);
            move || drop(handle)
        });
    }
    {
        let generation = generation.clone();
        use_effect_with(board.stale, move |stale| {
            if *stale {
                generation.set(*generation + 1);
            }
        });
    }
    // Countdowns tick once a second; nothing else polls. With `?count-renders` the page also publishes how
    // many rows have rendered (`window.__hhsRowRenders`), for `cargo xtask bench ui`.
    {
        let local = local.clone();
        use_effect_with((), move |_| {
            let window = web_sys::window();
            let count =
                window.as_ref().and_then(|w| w.location().search().ok()).is_some_and(|q| q.contains("count-renders"));
            let tick = Interval::new(1_000, move || {
                local.set(local_now());
                if let (true, Some(w)) = (count, &window) {
                    let _ = js_sys::Reflect::set(w, &"__hhsRowRenders".into(), &super::resource_row::renders().into());
                }
            });
            move || drop(tick)
        });
    }

    // What every row reads from the context must not change on a tick, or every row re-renders each second
    // (measured: 1,000 of 1,000 before, only the ticking ones after). So the callbacks are made once per
    // session, and `act` reads the board through a ref each render updates rather than capturing it.
    let latest = use_mut_ref(|| board.clone());
    *latest.borrow_mut() = board.clone();
    let act = use_callback((props.session.clone(), props.on_sign_out.clone()), {
        let latest = latest.clone();
        move |(id, op): (ResourceId, Op), (session, sign_out): &(Rc<Session>, Callback<Option<String>>)| {
            let board = latest.borrow().clone();
            if board.busy.contains(&id) {
                return;
            }
            let identifier = board.rows.get(&id).map(|r| r.identifier.clone()).unwrap_or_else(|| id.to_string());
            let (api, dispatch, sign_out) = (session.api.clone(), board.dispatcher(), sign_out.clone());
            dispatch.dispatch(Action::Busy(id));
            yew::platform::spawn_local(async move {
                let result = op.send(&api, id).await;
                match &result {
                    Err(e) if e.is_unauthenticated() => sign_out.emit(Some(e.sign_in_message())),
                    Ok(_) => dispatch.dispatch(Action::Notify(Notice::Info(op.done(&identifier)))),
                    Err(_) => {}
                }
                dispatch.dispatch(Action::Done(id, result));
            });
        }
    });
    let select = use_callback(selected.setter(), |id: Option<ResourceId>, setter| setter.set(id));
    let ctx = Ctx { session: props.session.clone(), dispatch: board.dispatcher(), act, select };
    let now: Millis = board.server_now(*local);

    let sign_out = {
        let out = props.on_sign_out.clone();
        Callback::from(move |_| out.emit(None))
    };
    let tab_button = |t: Tab, label: &str, id: &str| {
        let tab = tab.clone();
        let current = *tab == t;
        html! {
            <button role="tab" id={id.to_owned()} aria-selected={current.to_string()} class={classes!("tab", current.then_some("current"))}
                onclick={Callback::from(move |_| tab.set(t))}>{ label.to_owned() }</button>
        }
    };

    html! {
        <ContextProvider<Ctx> context={ctx}>
            <div class="dashboard">
                <header class="top">
                    <h1>{ "HHS holds" }</h1>
                    <nav role="tablist" aria-label="Pages">
                        { tab_button(Tab::Board, "Board", "tab-board") }
                        { tab_button(Tab::Analytics, "Analytics", "tab-analytics") }
                        { tab_button(Tab::Types, "Types", "tab-types") }
                        { tab_button(Tab::Sessions, "Sessions", "tab-sessions") }
                    </nav>
                    <StatusBar link={board.link.clone()} offset_ms={board.offset_ms} principal={props.session.principal.clone()}
                        role={props.session.role} />
                    <button class="sign-out" onclick={sign_out}>{ "Sign out" }</button>
                </header>
                <NoticeBanner notice={board.notice.clone()} />
                <div class="body">
                    <main id="main">
                        if *tab == Tab::Board {
                            <BoardView board={board.clone()} {now} />
                        } else if *tab == Tab::Analytics {
                            <AnalyticsView board={board.clone()} {now} />
                        } else if *tab == Tab::Types {
                            <TypesView />
                        } else {
                            <SessionsView {now} />
                        }
                    </main>
                    if let Some(id) = *selected {
                        if let Some(row) = board.rows.get(&id) {
                            <DetailPanel row={row.clone()} {now} busy={board.busy.contains(&id)} />
                        }
                    }
                </div>
            </div>
        </ContextProvider<Ctx>>
    }
}
