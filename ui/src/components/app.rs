//! The root: the sign-in page until a key is accepted, then the dashboard. A key found in session storage is
//! checked again on load; a key the server rejects at any point returns here with the reason.

use std::rc::Rc;

use yew::prelude::*;

use super::dashboard::Dashboard;
use super::sign_in::SignIn;
use crate::api::Api;
use crate::session::{self, Session};

#[function_component(App)]
pub fn app() -> Html {
    let session = use_state(|| None::<Rc<Session>>);
    let error = use_state(|| None::<String>);
    let checking = use_state(|| session::stored_key().is_some());

    {
        let (session, error, checking) = (session.clone(), error.clone(), checking.clone());
        use_effect_with((), move |_| {
            if let Some(key) = session::stored_key() {
                yew::platform::spawn_local(async move {
                    let api = Api::new(key);
                    match api.whoami().await {
                        Ok(me) => session.set(Some(Rc::new(Session { api, principal: me.principal, role: me.role }))),
                        Err(e) => {
                            session::forget();
                            error.set(Some(e.sign_in_message()));
                        }
                    }
                    checking.set(false);
                });
            }
        });
    }

    let on_signed_in = {
        let (session, error) = (session.clone(), error.clone());
        Callback::from(move |s: Session| {
            error.set(None);
            session.set(Some(Rc::new(s)));
        })
    };
    let on_sign_out = {
        let (session, error) = (session.clone(), error.clone());
        Callback::from(move |why: Option<String>| {
            session::forget();
            error.set(why);
            session.set(None);
        })
    };

    match (*session).clone() {
        Some(s) => html! { <Dashboard session={s} {on_sign_out} /> },
        None => html! { <SignIn {on_signed_in} error={(*error).clone()} checking={*checking} /> },
    }
}
