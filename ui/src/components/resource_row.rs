//! One resource on the board: its state, holder, fencing token, countdown and heartbeat age, and the actions
//! the signed-in key may take on it.

use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};

use hhs_core::{LockStatus, Millis};
use yew::prelude::*;

use super::context::{Ctx, Op};
use crate::format;
use crate::state::{Row, Shown};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub row: Rc<Row>,
    /// Server time (zero for rows whose look does not depend on it).
    pub now: Millis,
    /// An action on this resource is in flight.
    pub busy: bool,
}

/// The state badge: words, not only colour.
pub fn badge(shown: Shown) -> Html {
    html! { <span class={classes!("badge", shown.label())}>{ shown.label() }</span> }
}

/// How many times a row has rendered, for `cargo xtask bench ui` (a counter costs nothing; the dashboard
/// publishes it only on a page opened with `?count-renders`).
static RENDERS: AtomicU32 = AtomicU32::new(0);

pub fn renders() -> u32 {
    RENDERS.load(Ordering::Relaxed)
}

#[function_component(ResourceRow)]
pub fn resource_row(props: &Props) -> Html {
    RENDERS.fetch_add(1, Ordering::Relaxed);
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let row = &props.row;
    let lock = &row.lock;
    let shown = row.shown(props.now);
    let live = shown == Shown::Held;
    let id = row.id;

    // A lapsed hold still names its holder: whose client stopped heartbeating is what the on-call asks first.
    let lapsed = matches!(shown, Shown::Expired | Shown::LockDelay) && lock.status == LockStatus::Expired;
    let holder = match (live || lapsed, &lock.owner_id, &lock.principal) {
        (true, Some(o), Some(p)) if lapsed => format!("{o} · {p} (lapsed)"),
        // Renewed by a session's keepalives, not its own heartbeats: said so where the holder is read.
        (true, Some(o), Some(p)) if lock.session_id.is_some() => format!("{o} · {p} (session)"),
        // A member of an all-or-nothing group: its group's short id (the id's random tail; its head is a time),
        // the same on every member's row.
        (true, Some(o), Some(p)) if lock.group_id.is_some() && lock.status == LockStatus::Held => {
            format!("{o} · {p} (group …{})", lock.group_id.map(super::group_holds::short).unwrap_or_default())
        }
        // A booking: no heartbeats, ends at its time.
        (true, Some(o), Some(p)) if lock.status == LockStatus::Booked => {
            format!("{o} · {p} (booked until {})", lock.expires_at.map(format::time).unwrap_or_default())
        }
        (true, Some(o), Some(p)) => format!("{o} · {p}"),
        _ => "—".into(),
    };
    // Requests waiting in its queue (`wait_seconds`), first in first granted: said where the holder is read.
    let holder = match lock.queue_length {
        0 => holder,
        n => format!("{holder} · {n} waiting"),
    };
    let expires = match (shown, lock.remaining_at(props.now), lock.lock_delay_remaining_at(props.now)) {
        (Shown::Held, Some(left), _) => format::duration(left),
        (Shown::LockDelay, _, Some(left)) => format!("delay {}", format::duration(left)),
        _ => "—".into(),
    };
    let expires_title = lock.expires_at.filter(|_| live).map(format::time).unwrap_or_default();
    // A booking needs no heartbeats (it ends at its time): its age since the last one would only alarm.
    let booked = live && lock.status == LockStatus::Booked;
    let beat = match (live, lock.since_heartbeat_at(props.now)) {
        _ if booked => "not needed".into(),
        (true, Some(ago)) => format!("{} ago", format::duration(ago)),
        _ => "—".into(),
    };
    let urgent = live && lock.remaining_at(props.now).is_some_and(|m| m.0 < 30_000);

    let mine = live && lock.principal.as_deref() == Some(ctx.session.principal.as_str());
    let grantable = matches!(shown, Shown::Free | Shown::Expired);
    let owner_id = lock.owner_id.clone().unwrap_or_default();
    let token = lock.fencing_token;
    let act = |op: Op| {
        let act = ctx.act.clone();
        Callback::from(move |_: MouseEvent| act.emit((id, op.clone())))
    };
    let open = {
        let select = ctx.select.clone();
        Callback::from(move |_: MouseEvent| select.emit(Some(id)))
    };
    let name = row.identifier.clone();

    // Its operational status (HL7 table 0116): shown with its letter and word; one that cannot be held is greyed.
    let status = lock.resource_status.unwrap_or_default();
    let unavailable = !status.available();
    html! {
        <tr class={classes!("row", shown.label(), unavailable.then_some("unavailable"))} data-resource-id={id.to_string()}
            data-state={shown.label()} data-status={status.code()}>
            <th scope="row">
                <button class="link" onclick={open.clone()} title="Show this resource's history and actions">{ name.clone() }</button>
            </th>
            <td>{ badge(shown) }<span class="opstatus" title="operational status (HL7 table 0116)">{ format!("{} {}", status.code(), status.word()) }</span></td>
            <td class={classes!("holder", lapsed.then_some("past"))} title={holder.clone()}>{ holder.clone() }</td>
            <td class="token">{ if live { token.map(|t| t.to_string()).unwrap_or_default() } else { "—".into() } }</td>
            <td class={classes!("countdown", urgent.then_some("urgent"))} title={expires_title}>{ expires }</td>
            <td class="beat">{ beat }</td>
            if ctx.session.can_hold() {
            <td class="actions">
                if grantable {
                    <button onclick={open.clone()} disabled={props.busy} aria-label={format!("Acquire {name}")}>{ "Acquire…" }</button>
                } else if !mine {
                    // Held by another or in lock-delay: its detail offers to wait in the queue.
                    <button onclick={open.clone()} disabled={props.busy} aria-label={format!("Wait for {name}")}>{ "Wait…" }</button>
                }
                if mine && !booked {
                    <button onclick={act(Op::Heartbeat { owner_id: owner_id.clone(), fencing_token: token })} disabled={props.busy}
                        aria-label={format!("Heartbeat {name}")}>{ "Heartbeat" }</button>
                }
                if mine {
                    <button onclick={act(Op::Release { owner_id, fencing_token: token })} disabled={props.busy}
                        aria-label={format!("Release {name}")}>{ "Release" }</button>
                }
                if ctx.session.is_admin() && live && !mine {
                    <button class="danger" onclick={open}
                        disabled={props.busy} aria-label={format!("Force release {name}")}>{ "Force release…" }</button>
                }
            </td>
            }
        </tr>
    }
}
