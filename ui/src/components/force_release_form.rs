//! Admin: end someone's hold, with the reason the audit trail records. The lock-delay of the type applies.

use hhs_core::ResourceId;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::context::{Ctx, Op};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub id: ResourceId,
    pub busy: bool,
}

#[function_component(ForceReleaseForm)]
pub fn force_release_form(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let reason = use_state(String::new);
    let onsubmit = {
        let (reason, act, id) = (reason.clone(), ctx.act.clone(), props.id);
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            act.emit((id, Op::ForceRelease { reason: reason.trim().to_owned() }));
        })
    };
    let oninput = {
        let reason = reason.clone();
        Callback::from(move |e: InputEvent| reason.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    html! {
        <form class="force" {onsubmit} aria-labelledby="force-title">
            <h3 id="force-title">{ "Force release" }</h3>
            <label>{ "Reason (kept in the audit trail)" }
                <input id="force-reason" value={(*reason).clone()} {oninput} required=true maxlength="500"
                    placeholder="e.g. workstation crashed, patient moved" />
            </label>
            <button type="submit" class="danger" disabled={props.busy || reason.trim().is_empty()}>
                { if props.busy { "Releasing…" } else { "Force release" } }
            </button>
        </form>
    }
}
