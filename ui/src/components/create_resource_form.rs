//! Admin: add a resource (a type such as `bed` and an identifier such as `Ward 3 Bed 12`).

use hhs_core::wire::endpoints;
use hhs_core::wire::CreateResourceRequest;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use super::context::Ctx;
use crate::state::{Action, Notice};

#[function_component(CreateResourceForm)]
pub fn create_resource_form() -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let ty = use_state(String::new);
    let ident = use_state(String::new);
    let busy = use_state(|| false);
    let input = |state: &UseStateHandle<String>| {
        let state = state.clone();
        Callback::from(move |e: InputEvent| state.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let onsubmit = {
        let (ty, ident, busy, ctx) = (ty.clone(), ident.clone(), busy.clone(), ctx.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            busy.set(true);
            let req =
                CreateResourceRequest { resource_type: ty.trim().to_owned(), identifier: ident.trim().to_owned() };
            let (busy, ident, ctx) = (busy.clone(), ident.clone(), ctx.clone());
            yew::platform::spawn_local(async move {
                match ctx.session.api.call::<endpoints::CreateResource>(None, "", &req).await {
                    Ok(r) => {
                        ctx.dispatch.dispatch(Action::Notify(Notice::Info(format!(
                            "Added {} {}.",
                            r.resource_type, r.identifier
                        ))));
                        ctx.dispatch.dispatch(Action::Created {
                            id: r.id,
                            resource_type: r.resource_type,
                            identifier: r.identifier,
                        });
                        ident.set(String::new());
                    }
                    Err(e) => {
                        ctx.dispatch.dispatch(Action::Notify(Notice::Error(format!("Could not add the resource: {e}"))))
                    }
                }
                busy.set(false);
            });
        })
    };
    html! {
        <form class="create" {onsubmit} aria-label="Add a resource">
            <label>{ "New resource type" }
                <input id="new-type" value={(*ty).clone()} oninput={input(&ty)} placeholder="bed, or-room, mri…" required=true />
            </label>
            <label>{ "Identifier" }
                <input id="new-identifier" value={(*ident).clone()} oninput={input(&ident)} placeholder="Ward 3 Bed 12" required=true />
            </label>
            <button type="submit" disabled={*busy}>{ if *busy { "Adding…" } else { "Add resource" } }</button>
        </form>
    }
}
