//! Filters: by type, state and owner, and a search by identifier.

use web_sys::{HtmlInputElement, HtmlSelectElement};
use yew::prelude::*;

use super::context::Ctx;
use crate::state::{Action, Filters, Shown};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub filters: Filters,
    pub types: Vec<String>,
}

#[function_component(FiltersBar)]
pub fn filters_bar(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let set = |change: fn(&mut Filters, String)| {
        let (dispatch, filters) = (ctx.dispatch.clone(), props.filters.clone());
        move |value: String| {
            let mut f = filters.clone();
            change(&mut f, value);
            dispatch.dispatch(Action::Filters(f));
        }
    };
    let on_select = |change: fn(&mut Filters, String)| {
        let set = set(change);
        Callback::from(move |e: Event| set(e.target_unchecked_into::<HtmlSelectElement>().value()))
    };
    let on_input = |change: fn(&mut Filters, String)| {
        let set = set(change);
        Callback::from(move |e: InputEvent| set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let f = &props.filters;
    let clear = {
        let dispatch = ctx.dispatch.clone();
        Callback::from(move |_| dispatch.dispatch(Action::Filters(Filters::default())))
    };
    html! {
        <form class="filters" role="search" aria-label="Filter the board" onsubmit={Callback::from(|e: SubmitEvent| e.prevent_default())}>
            <label>{ "Type" }
                <select id="filter-type" onchange={on_select(|f, v| f.resource_type = v)}>
                    <option value="" selected={f.resource_type.is_empty()}>{ "All types" }</option>
                    { for props.types.iter().map(|t| html! {
                        <option value={t.clone()} selected={*t == f.resource_type}>{ t.clone() }</option>
                    }) }
                </select>
            </label>
            <label>{ "State" }
                <select id="filter-state" onchange={on_select(|f, v| f.state = Shown::parse(&v))}>
                    <option value="" selected={f.state.is_none()}>{ "Any state" }</option>
                    { for Shown::ALL.iter().map(|s| html! {
                        <option value={s.label()} selected={f.state == Some(*s)}>{ s.label() }</option>
                    }) }
                </select>
            </label>
            <label>{ "Owner" }
                <input id="filter-owner" type="search" value={f.owner.clone()} placeholder="owner or principal"
                    oninput={on_input(|f, v| f.owner = v)} />
            </label>
            <label>{ "Search" }
                <input id="filter-search" type="search" value={f.search.clone()} placeholder="identifier, e.g. Bed 12"
                    oninput={on_input(|f, v| f.search = v)} />
            </label>
            <button type="button" onclick={clear} disabled={*f == Filters::default()}>{ "Clear filters" }</button>
        </form>
    }
}
