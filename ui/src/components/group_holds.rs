//! The board's all-or-nothing groups: one row per live group with its members, its holder and when it ends —
//! an operation's OR room, surgeon and machine read as one thing. Each member also keeps its row in its type's
//! table, marked with the group's short id.

use std::rc::Rc;

use hhs_core::{GroupId, LockStatus, Millis};
use yew::prelude::*;

use super::context::Ctx;
use crate::format;
use crate::state::Row;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// Live groups with their live members (`Board::groups`).
    pub groups: Vec<(GroupId, Vec<Rc<Row>>)>,
    pub now: Millis,
}

/// A group id's random tail, as the members' rows show it (its head is a time, the same for groups made together).
pub fn short(id: GroupId) -> String {
    let id = id.to_string();
    id.get(id.len().saturating_sub(6)..).unwrap_or_default().to_owned()
}

#[function_component(GroupHolds)]
pub fn group_holds(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    if props.groups.is_empty() {
        return html! {};
    }
    let now = props.now;
    html! {
        <section class="group groups" aria-labelledby="group-holds">
            <h2 id="group-holds">{ "Group holds" }<span class="sub">{ format!(" — {} live, all or nothing", props.groups.len()) }</span></h2>
            <table>
                <colgroup><col class="g-id" /><col class="g-holder" /><col class="g-members" /><col class="g-state" /><col class="g-ends" /></colgroup>
                <thead><tr>
                    <th scope="col">{ "Group" }</th><th scope="col">{ "Holder" }</th><th scope="col">{ "Members" }</th>
                    <th scope="col">{ "State" }</th><th scope="col">{ "Ends in" }</th>
                </tr></thead>
                <tbody>
                    { for props.groups.iter().map(|(id, members)| {
                        let first = &members[0].lock;
                        let holder = match (&first.owner_id, &first.principal) {
                            (Some(o), Some(p)) => format!("{o} · {p}"),
                            _ => "—".into(),
                        };
                        // Members are renewed and booked together; the earliest end is the group's.
                        let left = members.iter().filter_map(|m| m.lock.remaining_at(now)).min();
                        let booked = members.iter().all(|m| m.lock.status == LockStatus::Booked);
                        let state = match (booked, first.expires_at) {
                            (true, Some(end)) => format!("booked until {}", format::time(end)),
                            _ => "held".into(),
                        };
                        html! {
                            <tr data-group-id={id.to_string()}>
                                <th scope="row" title={id.to_string()}>{ format!("…{}", short(*id)) }</th>
                                <td title={holder.clone()}>{ holder }</td>
                                <td class="members">
                                    { for members.iter().map(|m| {
                                        let (select, rid) = (ctx.select.clone(), m.id);
                                        html! { <button class="link member" data-resource-id={rid.to_string()}
                                            onclick={Callback::from(move |_: MouseEvent| select.emit(Some(rid)))}
                                            title={format!("{}: show its history and actions", m.resource_type)}>
                                            { format!("{} ({})", m.identifier, m.resource_type) }
                                        </button> }
                                    }) }
                                </td>
                                <td class="state">{ state }</td>
                                <td class="countdown">{ left.map(format::duration).unwrap_or_else(|| "—".into()) }</td>
                            </tr>
                        }
                    }) }
                </tbody>
            </table>
        </section>
    }
}
