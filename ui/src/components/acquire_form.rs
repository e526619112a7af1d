//! Acquire a resource from the dashboard: owner id and TTL, the TTL prefilled with the model's suggestion.

use hhs_core::ResourceId;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::context::{Ctx, Op, DASHBOARD_OWNER};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: ResourceId,
    pub suggested_ttl: Option<u32>,
    pub busy: bool,
}

#[function_component(AcquireForm)]
pub fn acquire_form(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let owner = use_state(|| DASHBOARD_OWNER.to_owned());
    // None: not edited, so it follows the suggestion.
    let ttl = use_state(|| None::<String>);
    let shown_ttl = (*ttl).clone().or_else(|| props.suggested_ttl.map(|t| t.to_string())).unwrap_or_default();

    let onsubmit = {
        let (owner, shown_ttl, act, id) = (owner.clone(), shown_ttl.clone(), ctx.act.clone(), props.id);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            // An empty TTL lets the server's model choose; anything else goes as typed (the server validates).
            let ttl_seconds = match shown_ttl.trim() {
                "" => None,
                t => Some(t.parse::<f64>().unwrap_or(f64::NAN)),
            };
            act.emit((id, Op::Acquire { owner_id: owner.trim().to_owned(), ttl_seconds }));
        })
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
            <button type="submit" disabled={props.busy}>{ if props.busy { "Acquiring…" } else { "Acquire" } }</button>
        </form>
    }
}
