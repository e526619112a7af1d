//! The live board: filters, the live all-or-nothing groups, then one table per resource type.

use std::collections::BTreeMap;
use std::rc::Rc;

use hhs_core::Millis;
use yew::prelude::*;

use super::context::Ctx;
use super::create_resource_form::CreateResourceForm;
use super::filters_bar::FiltersBar;
use super::group_holds::GroupHolds;
use super::type_group::TypeGroup;
use crate::state::{Board, Row};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub board: UseReducerHandle<Board>,
    pub now: Millis,
}

#[function_component(BoardView)]
pub fn board_view(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let board = &props.board;
    let now = props.now;

    // The first full render of a snapshot, for `cargo xtask bench ui` (a Performance mark costs nothing).
    let marked = use_mut_ref(|| false);
    {
        let loaded = board.loaded;
        use_effect_with(loaded, move |loaded| {
            if *loaded && !*marked.borrow() {
                *marked.borrow_mut() = true;
                if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
                    let _ = p.mark("hhs-board-rendered");
                }
            }
        });
    }

    if !board.loaded {
        return html! { <p class="loading" role="status">{ "Loading the board…" }</p> };
    }
    let mut groups: BTreeMap<&str, Vec<Rc<Row>>> = BTreeMap::new();
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    for row in board.rows.values() {
        *totals.entry(row.resource_type.as_str()).or_default() += 1;
        if board.filters.matches(row, now) {
            groups.entry(row.resource_type.as_str()).or_default().push(row.clone());
        }
    }
    let shown: usize = groups.values().map(Vec::len).sum();
    html! {
        <>
            <FiltersBar filters={board.filters.clone()} types={board.types()} />
            if ctx.session.is_admin() {
                <CreateResourceForm />
            }
            <p class="count" aria-live="polite">{ format!("{shown} of {} resources shown", board.rows.len()) }</p>
            if board.rows.is_empty() {
                <p class="empty">{ "No resources yet. An admin can add beds, rooms and scanners here or through the API." }</p>
            }
            <GroupHolds groups={board.groups(now)} {now} />
            { for groups.into_iter().map(|(ty, mut rows)| {
                rows.sort_by(|a, b| a.identifier.cmp(&b.identifier));
                html! { <TypeGroup key={ty.to_owned()} resource_type={ty.to_owned()} total={totals[ty]} {rows} {now}
                    busy={board.busy.clone()} actions={ctx.session.can_hold()} /> }
            }) }
        </>
    }
}
