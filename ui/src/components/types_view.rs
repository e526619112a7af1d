//! Resource types and their policy: the one copy every replica, the reaper and the edge's origin decide with.
//! Anyone signed in sees it; an admin edits a type here (each change is recorded with who and the old and new
//! values).

use hhs_core::status::Status;
use hhs_core::wire::endpoints;
use hhs_core::wire::TypeView;
use hhs_core::TypeChange;
use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::context::Ctx;
use crate::loaded::{self, use_list};
use crate::state::{Action, Notice};

#[function_component(TypesView)]
pub fn types_view() -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let (types, reload) = use_list::<endpoints::ListTypes, _, _>(&ctx.session.api);
    let empty = "No resource types yet: adding a resource makes its type.";
    let body = loaded::view(&types, "Loading the resource types…", empty, |list| {
        html! {
            <table class="types">
                <thead><tr>
                    <th scope="col">{ "Type" }</th><th scope="col">{ "Lock-delay (s)" }</th><th scope="col">{ "Shortest TTL (s)" }</th>
                    <th scope="col">{ "Default TTL (s)" }</th><th scope="col">{ "Longest TTL (s)" }</th>
                    <th scope="col">{ "Longest booking (s)" }</th>
                    <th scope="col" title="the operational status (HL7 table 0116) a new resource of the type starts in">{ "New resources start" }</th>
                    if ctx.session.is_admin() { <th scope="col">{ "" }</th> }
                </tr></thead>
                <tbody>
                    { for list.iter().map(|t| html! { <TypeRow key={t.name.clone()} ty={t.clone()} on_saved={
                        let reload = reload.clone();
                        Callback::from(move |_| reload.emit(()))
                    } /> }) }
                </tbody>
            </table>
        }
    });
    html! {
        <section class="types-page" aria-labelledby="types-title">
            <h2 id="types-title">{ "Resource types" }</h2>
            <p class="sub">{ "Each type's policy applies on every replica and to the reaper from their next transaction on." }</p>
            { body }
        </section>
    }
}

#[derive(Properties, PartialEq)]
struct RowProps {
    ty: TypeView,
    on_saved: Callback<()>,
}

/// One type: its values, and for an admin inputs and a Save button.
#[function_component(TypeRow)]
fn type_row(props: &RowProps) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let t = &props.ty;
    let refs: [NodeRef; 5] = Default::default();
    let values =
        [t.lock_delay_seconds, t.min_ttl_seconds, t.default_ttl_seconds, t.max_ttl_seconds, t.booking_max_seconds];
    let labels = ["lock-delay", "shortest TTL", "default TTL", "longest TTL", "longest booking"];
    let starts = format!("{} {}", t.default_status.code(), t.default_status.word());
    if !ctx.session.is_admin() {
        return html! {
            <tr><th scope="row">{ t.name.clone() }</th>{ for values.iter().map(|v| html! { <td>{ v }</td> }) }<td>{ starts }</td></tr>
        };
    }
    let status_ref = NodeRef::default();
    let save = {
        let (refs, name, ctx, on_saved, status_ref) =
            (refs.clone(), t.name.clone(), ctx.clone(), props.on_saved.clone(), status_ref.clone());
        Callback::from(move |_| {
            let status = status_ref.cast::<HtmlSelectElement>().and_then(|e| Status::parse(&e.value()).ok());
            let read = |i: usize| refs[i].cast::<HtmlInputElement>().and_then(|e| e.value().trim().parse::<u32>().ok());
            let change = TypeChange {
                lock_delay_seconds: read(0),
                min_ttl_seconds: read(1),
                default_ttl_seconds: read(2),
                max_ttl_seconds: read(3),
                booking_max_seconds: read(4),
                default_status: status,
            };
            let (api, dispatch, name, on_saved) =
                (ctx.session.api.clone(), ctx.dispatch.clone(), name.clone(), on_saved.clone());
            yew::platform::spawn_local(async move {
                match api.call::<endpoints::PutType>(Some(&name), "", &change).await {
                    Ok(_) => {
                        dispatch.dispatch(Action::Notify(Notice::Info(format!(
                            "{name}: policy saved; every replica applies it now."
                        ))));
                        on_saved.emit(());
                    }
                    Err(e) => dispatch.dispatch(Action::Notify(Notice::Error(format!("{name}: not saved: {e}")))),
                }
            });
        })
    };
    html! {
        <tr data-type={t.name.clone()}>
            <th scope="row">{ t.name.clone() }</th>
            { for values.iter().zip(refs.iter()).zip(labels).map(|((v, r), label)| html! {
                <td><input ref={r.clone()} type="number" min="0" value={v.to_string()} aria-label={format!("{} {label} (seconds)", t.name)} /></td>
            }) }
            <td>
                <select ref={status_ref} aria-label={format!("{} new resources start", t.name)}>
                    { for Status::ALL.iter().map(|s| html! {
                        <option value={s.code()} selected={*s == t.default_status}>{ format!("{} {}", s.code(), s.word()) }</option>
                    }) }
                </select>
            </td>
            <td><button onclick={save} aria-label={format!("Save {}", t.name)}>{ "Save" }</button></td>
        </tr>
    }
}
