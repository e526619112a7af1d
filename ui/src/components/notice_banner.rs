//! The last message for the user: an error (with its API code) or a confirmation; dismissable.

use yew::prelude::*;

use super::context::Ctx;
use crate::state::{Action, Notice};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub notice: Option<Notice>,
}

#[function_component(NoticeBanner)]
pub fn notice_banner(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let Some(notice) = &props.notice else { return html! {} };
    let (class, role, text) = match notice {
        Notice::Error(t) => ("notice error", "alert", t.clone()),
        Notice::Info(t) => ("notice info", "status", t.clone()),
    };
    let dismiss = {
        let dispatch = ctx.dispatch.clone();
        Callback::from(move |_| dispatch.dispatch(Action::Dismiss))
    };
    html! {
        <div class={class} role={role} id="notice">
            <span>{ text }</span>
            <button class="dismiss" onclick={dismiss} aria-label="Dismiss message">{ "×" }</button>
        </div>
    }
}
