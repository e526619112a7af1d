//! Who is signed in, with which role, and whether the live feed is connected.

use hhs_core::Role;
use yew::prelude::*;

use crate::state::Link;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub link: Link,
    pub offset_ms: i64,
    pub principal: String,
    pub role: Role,
}

#[function_component(StatusBar)]
pub fn status_bar(props: &Props) -> Html {
    let (class, text) = match &props.link {
        Link::Connecting => ("feed connecting", "Connecting…".to_owned()),
        Link::Live => ("feed live", "Live".to_owned()),
        Link::Reconnecting(why) => ("feed lost", format!("Reconnecting ({why})")),
    };
    let role = match props.role {
        Role::Viewer => "viewer (read-only)",
        Role::Client => "client",
        Role::Admin => "admin",
        Role::Integration => "integration",
    };
    html! {
        <div class="status" aria-live="polite">
            <span class={class} id="link-status">{ text }</span>
            <span class="who">{ format!("{} · {role}", props.principal) }</span>
            <span class="offset" title="Server clock minus this computer's clock, measured at the last snapshot; countdowns use server time.">
                { format!("clock offset {:+} ms", props.offset_ms) }
            </span>
        </div>
    }
}
