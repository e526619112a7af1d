//! A list read from one of the API's list endpoints, as the Sessions and Types tabs and the anomaly table show
//! it: loading, failed ("No data: …" with the API's error), empty, or the items — one hook and one reading of
//! the four states, so a new list tab is its table and nothing more.

use hhs_core::wire::endpoints::{Endpoint, NoBody};
use hhs_core::wire::Page;
use serde::de::DeserializeOwned;
use yew::prelude::*;

use crate::api::Api;

/// Not loaded yet (`None`), failed (the error's text), or the items.
pub type Loaded<T> = Option<Result<Vec<T>, String>>;

/// The first page of list endpoint `E`, read when the component mounts and again each time the returned
/// callback is emitted.
#[hook]
pub fn use_list<E, T, A>(api: &Api) -> (UseStateHandle<Loaded<T>>, Callback<()>)
where
    E: Endpoint<Request = NoBody, Response = Page<T, A>> + 'static,
    Page<T, A>: DeserializeOwned,
    T: 'static,
    A: 'static,
{
    let items = use_state(|| None::<Result<Vec<T>, String>>);
    let reload = use_state(|| 0u32);
    {
        let (api, items) = (api.clone(), items.clone());
        use_effect_with(*reload, move |_| {
            yew::platform::spawn_local(async move {
                let page = api.call::<E>(None, "", &NoBody).await;
                items.set(Some(page.map(|p| p.items).map_err(|e| e.to_string())));
            });
        });
    }
    (items, Callback::from(move |()| reload.set(*reload + 1)))
}

/// How a list reads in each state: `loading` and `empty` as given, a failure as "No data: …", else `table`.
pub fn view<T>(loaded: &Loaded<T>, loading: &str, empty: &str, table: impl FnOnce(&[T]) -> Html) -> Html {
    match loaded {
        None => html! { <p role="status">{ loading.to_owned() }</p> },
        Some(Err(e)) => html! { <p class="error">{ format!("No data: {e}") }</p> },
        Some(Ok(list)) if list.is_empty() => html! { <p>{ empty.to_owned() }</p> },
        Some(Ok(list)) => table(list),
    }
}
