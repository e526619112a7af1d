//! Acquire a resource from the dashboard: owner id and TTL, the TTL prefilled with the model's suggestion. On a
//! resource that is held or in lock-delay, the same form waits in its queue (up to 30 s, first come first
//! served) instead of being refused at once.

use hhs_core::ResourceId;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::context::{Ctx, Op, DASHBOARD_OWNER};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: ResourceId,
    pub suggested_ttl: Option<u32>,
    pub busy: bool,
    /// Held or in lock-delay: the form offers to wait in the queue.
    pub taken: bool,
}

#[function_component(AcquireForm)]
pub fn acquire_form(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let owner = use_state(|| DASHBOARD_OWNER.to_owned());
    // None: not edited, so it follows the suggestion.
    let ttl = use_state(|| None::<String>);
    let shown_ttl = (*ttl).clone().or_else(|| props.suggested_ttl.map(|t| t.to_string())).unwrap_or_default();
    let wait = use_state(|| hhs_core::queue::MAX_WAIT_SECONDS.to_string());

    let onsubmit = {
        let (owner, shown_ttl, wait, act, id, taken) =
            (owner.clone(), shown_ttl.clone(), wait.clone(), ctx.act.clone(), props.id, props.taken);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            // An empty TTL lets the server's model choose; anything else goes as typed (the server validates).
            let ttl_seconds = match shown_ttl.trim() {
                "" => None,
                t => Some(t.parse::<f64>().unwrap_or(f64::NAN)),
            };
            // A wait that does not read as a number is sent as more than the server allows: its 422 says why.
            let wait_seconds = taken.then(|| wait.trim().parse::<u32>().unwrap_or(u32::MAX));
            act.emit((id, Op::Acquire { owner_id: owner.trim().to_owned(), ttl_seconds, wait_seconds }));
        })
    };
    let on_wait = {
        let wait = wait.clone();
        Callback::from(move |e: InputEvent| wait.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let on_owner = {
        let owner = owner.clone();
        Callback::from(move |e: InputEvent| owner.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let on_ttl = {
        let ttl = ttl.clone();
        Callback::from(move |e: InputEvent| ttl.set(Some(e.target_unchecked_into::<HtmlInputElement>().value())))
    };
    html! {
        <form class="acquire" {onsubmit} aria-labelledby="acquire-title">
            <h3 id="acquire-title">{ "Acquire" }</h3>
            <label>{ "Owner id" }
                <input id="acquire-owner" value={(*owner).clone()} oninput={on_owner} required=true />
            </label>
            <label>{ "TTL (seconds)" }
                <input id="acquire-ttl" type="number" min="1" step="1" value={shown_ttl} oninput={on_ttl}
                    placeholder="model's choice" />
            </label>
            if props.taken {
                <label>{ "Wait up to (seconds)" }
                    <input id="acquire-wait" type="number" min="0" max={hhs_core::queue::MAX_WAIT_SECONDS.to_string()} step="1"
                        value={(*wait).clone()} oninput={on_wait} />
                </label>
            }
            <button type="submit" disabled={props.busy}>{ match (props.busy, props.taken) {
                (true, true) => "Waiting in the queue…",
                (true, false) => "Acquiring…",
                (false, true) => "Wait for it",
                (false, false) => "Acquire",
            } }</button>
        </form>
    }
}
