//! Open sessions: who keeps which holds alive with one keepalive, how many, and until when. A session that
//! lapses takes its holds with it, so this is where an on-call engineer looks when many beds expire at once.

use hhs_core::wire::endpoints::{self, NoBody};
use hhs_core::wire::SessionView;
use hhs_core::Millis;
use yew::prelude::*;

use super::context::Ctx;
use crate::format;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// Server time, for the time each session has left.
    pub now: Millis,
}

#[function_component(SessionsView)]
pub fn sessions_view(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let sessions = use_state(|| None::<Result<Vec<SessionView>, String>>);
    let reload = use_state(|| 0u32);
    {
        let (api, sessions) = (ctx.session.api.clone(), sessions.clone());
        use_effect_with(*reload, move |_| {
            yew::platform::spawn_local(async move {
                let page = api.call::<endpoints::ListSessions>(None, "", &NoBody).await;
                sessions.set(Some(page.map(|p| p.items).map_err(|e| e.to_string())));
            });
        });
    }
    let refresh = {
        let reload = reload.clone();
        Callback::from(move |_: MouseEvent| reload.set(*reload + 1))
    };
    let body = match &*sessions {
        None => html! { <p role="status">{ "Loading the sessions…" }</p> },
        Some(Err(e)) => html! { <p class="error">{ format!("No data: {e}") }</p> },
        Some(Ok(list)) if list.is_empty() => html! { <p>{ "No open sessions." }</p> },
        Some(Ok(list)) => html! {
            <table class="sessions">
                <thead><tr>
                    <th scope="col">{ "Owner" }</th><th scope="col">{ "Principal" }</th><th scope="col">{ "Holds" }</th>
                    <th scope="col">{ "TTL (s)" }</th><th scope="col">{ "Status" }</th><th scope="col">{ "Expires in" }</th>
                </tr></thead>
                <tbody>
                    { for list.iter().map(|s| {
                        let left = s.remaining_at(props.now);
                        html! {
                            <tr data-session-id={s.id.to_string()} data-status={s.status.clone()}>
                                <th scope="row">{ s.owner_id.clone() }</th>
                                <td>{ s.principal.clone() }</td>
                                <td class="holds">{ s.holds }</td>
                                <td>{ s.ttl_seconds }</td>
                                <td>{ s.status.clone() }</td>
                                <td title={format::time(s.expires_at)}>{ format::duration(left) }</td>
                            </tr>
                        }
                    }) }
                </tbody>
            </table>
        },
    };
    html! {
        <section class="sessions-page" aria-labelledby="sessions-title">
            <h2 id="sessions-title">{ "Sessions" }</h2>
            <p class="sub">{ "Each keepalive renews every hold of its session; a session that lapses ends all of them together." }</p>
            <button class="refresh" onclick={refresh}>{ "Refresh" }</button>
            { body }
        </section>
    }
}
