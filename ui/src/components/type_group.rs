//! One resource type's table: a heading with how many are held, then a row per resource.

use std::collections::BTreeSet;
use std::rc::Rc;

use hhs_core::{Millis, ResourceId};
use yew::prelude::*;

use super::resource_row::ResourceRow;
use crate::state::{Row, Shown};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub resource_type: String,
    /// Resources of this type on the board (before filtering).
    pub total: usize,
    /// The ones that pass the filters, in order.
    pub rows: Vec<Rc<Row>>,
    pub now: Millis,
    pub busy: BTreeSet<ResourceId>,
    /// The key may act (client or admin): show the actions column.
    pub actions: bool,
}

#[function_component(TypeGroup)]
pub fn type_group(props: &Props) -> Html {
    let held = props.rows.iter().filter(|r| r.shown(props.now) == Shown::Held).count();
    let heading_id = format!("group-{}", props.resource_type);
    html! {
        <section class="group" aria-labelledby={heading_id.clone()} data-type={props.resource_type.clone()}>
            <h2 id={heading_id}>
                { props.resource_type.clone() }
                <span class="sub">{ format!(" — {held} held of {} shown, {} in all", props.rows.len(), props.total) }</span>
            </h2>
            <table>
                <colgroup>
                    <col class="c-name" /><col class="c-state" /><col class="c-holder" /><col class="c-token" />
                    <col class="c-expires" /><col class="c-beat" />
                    if props.actions { <col class="c-actions" /> }
                </colgroup>
                <thead>
                    <tr>
                        <th scope="col">{ "Resource" }</th>
                        <th scope="col">{ "State" }</th>
                        <th scope="col" title="owner id · principal (the clinic whose key holds it)">{ "Holder" }</th>
                        <th scope="col">{ "Token" }</th>
                        <th scope="col">{ "Expires in" }</th>
                        <th scope="col" title="time since the holder's last heartbeat">{ "Heartbeat" }</th>
                        if props.actions { <th scope="col">{ "Actions" }</th> }
                    </tr>
                </thead>
                <tbody>
                    { for props.rows.iter().map(|row| {
                        // Rows whose look cannot change with time keep a fixed `now`, so the tick skips them.
                        let now = if row.ticks() { props.now } else { Millis::ZERO };
                        html! { <ResourceRow key={row.id.to_string()} row={row.clone()} {now} busy={props.busy.contains(&row.id)} /> }
                    }) }
                </tbody>
            </table>
        </section>
    }
}
