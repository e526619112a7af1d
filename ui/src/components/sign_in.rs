//! The sign-in page: paste an API key; the server says whose it is and what it may do.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api::Api;
use crate::session::{self, Session};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub on_signed_in: Callback<Session>,
    pub error: Option<String>,
    /// A stored key is being checked.
    pub checking: bool,
}

#[function_component(SignIn)]
pub fn sign_in(props: &Props) -> Html {
    let key = use_state(String::new);
    let busy = use_state(|| false);
    let error = use_state(|| None::<String>);
    let shown_error = (*error).clone().or_else(|| props.error.clone());

    let oninput = {
        let key = key.clone();
        Callback::from(move |e: InputEvent| key.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let onsubmit = {
        let (key, busy, error, done) = (key.clone(), busy.clone(), error.clone(), props.on_signed_in.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let k = key.trim().to_owned();
            if *busy {
                return;
            }
            if k.is_empty() {
                error.set(Some("Paste an API key first (it looks like hhs_0123456789ab_…).".into()));
                return;
            }
            busy.set(true);
            let (busy, error, done) = (busy.clone(), error.clone(), done.clone());
            yew::platform::spawn_local(async move {
                let api = Api::new(k.clone());
                match api.whoami().await {
                    Ok(me) => {
                        session::remember(&k);
                        done.emit(Session { api, principal: me.principal, role: me.role });
                    }
                    Err(e) => error.set(Some(e.sign_in_message())),
                }
                busy.set(false);
            });
        })
    };

    html! {
        <main class="sign-in">
            <form {onsubmit} aria-labelledby="sign-in-title">
                <h1 id="sign-in-title">{ "HHS — Hospital Hold System" }</h1>
                <p>{ "Sign in with your API key to see every hold live. Viewer keys see; client keys can also hold and release; admin keys can also force-release and add resources." }</p>
                <label for="api-key">{ "API key" }</label>
                <input id="api-key" type="password" autocomplete="off" spellcheck="false" value={(*key).clone()} {oninput}
                    placeholder="hhs_…" aria-describedby="sign-in-error" />
                <button type="submit" disabled={*busy || props.checking}>
                    { if *busy || props.checking { "Checking…" } else { "Sign in" } }
                </button>
                <p id="sign-in-error" class="error" role="alert" hidden={shown_error.is_none()}>{ shown_error.unwrap_or_default() }</p>
                <p class="hint">{ "The key stays in this browser tab only, until you sign out or close it." }</p>
            </form>
        </main>
    }
}
