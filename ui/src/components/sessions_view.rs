//! Open sessions: who keeps which holds alive with one keepalive, how many, and until when. A session that
//! lapses takes its holds with it, so this is where an on-call engineer looks when many beds expire at once.

use hhs_core::wire::endpoints;
use hhs_core::Millis;
use yew::prelude::*;

use super::context::Ctx;
use crate::format;
use crate::loaded::{self, use_list};

#[derive(Properties, PartialEq)]
pub struct Props {
    /// Server time, for the time each session has left.
    pub now: Millis,
}

#[function_component(SessionsView)]
pub fn sessions_view(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let (sessions, reload) = use_list::<endpoints::ListSessions, _, _>(&ctx.session.api);
    let refresh = Callback::from(move |_: MouseEvent| reload.emit(()));
    let body = loaded::view(&sessions, "Loading the sessions…", "No open sessions.", |list| {
        html! {
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
        }
    });
    html! {
        <section class="sessions-page" aria-labelledby="sessions-title">
            <h2 id="sessions-title">{ "Sessions" }</h2>
            <p class="sub">{ "Each keepalive renews every hold of its session; a session that lapses ends all of them together." }</p>
            <button class="refresh" onclick={refresh}>{ "Refresh" }</button>
            { body }
        </section>
    }
}
