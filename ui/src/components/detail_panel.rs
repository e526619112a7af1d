//! A resource's detail: its state, the TTL the model suggests, the actions the key allows, and the timeline of
//! its holds (last 7 days).

use std::rc::Rc;

use hhs_core::ttl_model::{self, Scope};
use hhs_core::wire::endpoints::{self, NoBody};
use hhs_core::wire::{SuggestRequest, SuggestResponse};
use hhs_core::Millis;
use yew::prelude::*;

use super::acquire_form::AcquireForm;
use super::context::{Ctx, DASHBOARD_OWNER};
use super::force_release_form::ForceReleaseForm;
use super::resource_row::badge;
use crate::format;
use crate::history::{self, Span};
use crate::state::{Row, Shown};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub row: Rc<Row>,
    pub now: Millis,
    pub busy: bool,
}

#[function_component(DetailPanel)]
pub fn detail_panel(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let row = &props.row;
    let shown = row.shown(props.now);
    let spans = use_state(|| None::<Result<Vec<Span>, String>>);
    let suggestion = use_state(|| None::<Result<SuggestResponse, String>>);
    // The type's default TTL: the least the form offers a person (`ttl_model::ttl_for_person`).
    let default_ttl = use_state(|| None::<u32>);
    let owner =
        row.lock.owner_id.clone().filter(|_| shown == Shown::Held).unwrap_or_else(|| DASHBOARD_OWNER.to_owned());
    // The signed-in principal's own hold: renewed or released from its row, not acquired again.
    let mine = shown == Shown::Held && row.lock.principal.as_deref() == Some(ctx.session.principal.as_str());
    // What waiting can end: a hold, a lock-delay, a status other than U (housekeeping done, say).
    let taken =
        matches!(shown, Shown::Held | Shown::LockDelay) || !row.lock.resource_status.unwrap_or_default().available();

    // Reload the type's default, the timeline and the suggestion when another resource is opened or this one
    // changes hands.
    {
        let (api, spans, suggestion, default_ttl, owner) =
            (ctx.session.api.clone(), spans.clone(), suggestion.clone(), default_ttl.clone(), owner.clone());
        let since = (props.now.0 - 7 * 86_400_000).max(0);
        let ty = row.resource_type.clone();
        use_effect_with((row.id, row.lock.fencing_token, row.lock.status), move |(id, _, _)| {
            let id = *id;
            yew::platform::spawn_local(async move {
                let policy = api.call::<endpoints::GetType>(Some(&ty), "", &NoBody).await;
                default_ttl.set(policy.ok().map(|t| t.default_ttl_seconds));
                let since = Millis(since).to_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let query = format!("resource_id={id}&since={since}&limit=1000");
                let events = api.call::<endpoints::ListEvents>(None, &query, &NoBody).await;
                spans.set(Some(events.map(|page| history::holds(&page.items)).map_err(|e| e.to_string())));
                let req = SuggestRequest { resource_id: id.to_string(), owner_id: owner };
                suggestion.set(Some(api.call::<endpoints::Suggest>(None, "", &req).await.map_err(|e| e.to_string())));
            });
        });
    }

    // Keyboard users land in the panel when it opens (Escape closes it).
    let close_ref = use_node_ref();
    {
        let close_ref = close_ref.clone();
        use_effect_with(row.id, move |_| {
            if let Some(b) = close_ref.cast::<web_sys::HtmlElement>() {
                let _ = b.focus();
            }
        });
    }
    let close = {
        let select = ctx.select.clone();
        Callback::from(move |_: MouseEvent| select.emit(None))
    };
    let onkeydown = {
        let select = ctx.select.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                select.emit(None);
            }
        })
    };
    // What the form offers a person: a suggestion learned from other owners (or, when the resource is held, for
    // its holder's owner) is raised to the type's default; without the default, the form leaves it to the server.
    let suggested_ttl = match (&*suggestion, *default_ttl) {
        (Some(Ok(s)), Some(default)) => {
            let scope = if owner == DASHBOARD_OWNER { s.basis.scope } else { Scope::Type };
            Some(ttl_model::ttl_for_person(s.suggested_ttl, scope, default))
        }
        _ => None,
    };
    let lock = &row.lock;

    html! {
        <aside class="detail" aria-labelledby="detail-title" {onkeydown}>
            <header>
                <h2 id="detail-title">{ row.identifier.clone() }</h2>
                <button class="close" ref={close_ref} onclick={close} aria-label="Close the detail (Escape)">{ "×" }</button>
            </header>
            <dl>
                <dt>{ "Type" }</dt><dd>{ row.resource_type.clone() }</dd>
                <dt>{ "State" }</dt><dd>{ badge(shown) }</dd>
                if shown == Shown::Held {
                    <dt>{ "Holder" }</dt>
                    <dd>{ format!("{} · {}", lock.owner_id.clone().unwrap_or_default(), lock.principal.clone().unwrap_or_default()) }</dd>
                    <dt>{ "Fencing token" }</dt><dd>{ lock.fencing_token.map(|t| t.to_string()).unwrap_or_default() }</dd>
                    <dt>{ "TTL" }</dt><dd>{ lock.ttl_seconds.map(format::ttl).unwrap_or_default() }</dd>
                    <dt>{ "Expires" }</dt><dd>{ lock.expires_at.map(format::time).unwrap_or_default() }</dd>
                }
                if let Some(until) = lock.lock_delay_until.filter(|_| shown == Shown::LockDelay) {
                    <dt>{ "Lock-delay until" }</dt><dd>{ format::time(until) }</dd>
                }
                <dt>{ "Resource id" }</dt><dd class="mono">{ row.id.to_string() }</dd>
            </dl>
            <section aria-labelledby="suggestion-title">
                <h3 id="suggestion-title">{ "TTL suggestion" }</h3>
                { match &*suggestion {
                    None => html! { <p>{ "Asking the TTL model…" }</p> },
                    Some(Err(e)) => html! { <p class="error">{ format!("No suggestion: {e}") }</p> },
                    Some(Ok(s)) => html! {
                        <p id="suggestion">
                            { format!("{} for owner {owner} — from {} ({} scope, {} samples).",
                                format::ttl(s.suggested_ttl), basis(&s.basis.learned_from), scope(&s.basis.scope), s.basis.samples) }
                            if shown == Shown::Held {
                                { format!(" Anomaly score of the current hold: {}.", format::score(s.anomaly_score)) }
                            }
                            if let Some(offered) = suggested_ttl.filter(|t| *t != s.suggested_ttl && ctx.session.can_hold()) {
                                { format!(" A person is offered {}: not learned from their own holds, so never below \
                                    the type's default.", format::ttl(offered)) }
                            }
                        </p>
                    },
                } }
            </section>
            // Free: acquire; held by someone else or in lock-delay: wait in the queue for it.
            if ctx.session.can_hold() && !mine {
                <AcquireForm id={row.id} suggested_ttl={suggested_ttl} busy={props.busy} {taken} />
            }
            if ctx.session.is_admin() && shown == Shown::Held {
                <ForceReleaseForm id={row.id} busy={props.busy} />
            }
            <section aria-labelledby="timeline-title">
                <h3 id="timeline-title">{ "Holds, last 7 days (UTC)" }</h3>
                { match &*spans {
                    None => html! { <p>{ "Loading…" }</p> },
                    Some(Err(e)) => html! { <p class="error">{ e.clone() }</p> },
                    Some(Ok(s)) if s.is_empty() => html! { <p>{ "No holds in the last 7 days." }</p> },
                    Some(Ok(s)) => html! {
                        <ol class="timeline">
                            { for s.iter().map(|span| html! {
                                <li class={classes!(span.to.is_none().then_some("current"))}>
                                    <span class="what">{ format!("#{} {} · {}", span.fencing_token, span.owner_id, span.principal) }</span>
                                    <span class="ended">{ span.ended.clone() }</span>
                                    <span class="when">
                                        { format!("{} → {}", format::short_time(span.from), span.to.map(format::short_time).unwrap_or_else(|| "now".into())) }
                                    </span>
                                </li>
                            }) }
                        </ol>
                    },
                } }
            </section>
        </aside>
    }
}

fn basis(b: &hhs_core::ttl_model::Basis) -> String {
    serde_json::to_value(b).ok().and_then(|v| v.as_str().map(|s| s.replace('_', " "))).unwrap_or_default()
}

fn scope(s: &hhs_core::ttl_model::Scope) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}
