//! Analytics: hold durations per type, releases vs expirations per hour, utilisation per type, and the most
//! anomalous holds. Durations and endings come from the last 24 hours of the event log, read when the tab opens
//! (and on "Refresh"); utilisation is live from the board.

use std::collections::BTreeMap;

use hhs_core::wire::endpoints::{self, NoBody};
use hhs_core::wire::{AnomalyView, EventView};
use hhs_core::{Millis, ResourceId};
use yew::prelude::*;

use super::anomaly_table::AnomalyTable;
use super::bar_chart::{BarChart, Series};
use super::context::Ctx;
use crate::analytics::{self, DURATION_BUCKETS};
use crate::api::{Api, UiError};
use crate::format;
use crate::state::Board;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub board: UseReducerHandle<Board>,
    pub now: Millis,
}

const HOURS: usize = 24;
/// At most this many events are read (10 pages): enough for a day of a large hospital's endings.
const MAX_PAGES: usize = 10;

async fn last_day(api: &Api, now: Millis) -> Result<Vec<EventView>, UiError> {
    let since = Millis(analytics::hour_start(now).0 - (HOURS as i64 - 1) * 3_600_000)
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut all: Vec<EventView> = Vec::new();
    let mut query = format!("since={since}&limit=1000");
    for _ in 0..MAX_PAGES {
        let page = api.call::<endpoints::ListEvents>(None, &query, &NoBody).await?;
        all.extend(page.items);
        match page.next_after {
            Some(after) => query = format!("since={since}&limit=1000&after={after}"),
            None => break,
        }
    }
    Ok(all)
}

#[function_component(AnalyticsView)]
pub fn analytics_view(props: &Props) -> Html {
    let ctx = use_context::<Ctx>().expect("inside the dashboard");
    let events = use_state(|| None::<Result<(Vec<EventView>, Millis), String>>);
    let anomalies = use_state(|| None::<Result<Vec<AnomalyView>, String>>);
    let refresh = use_state(|| 0u32);
    {
        let (api, events, anomalies, now) = (ctx.session.api.clone(), events.clone(), anomalies.clone(), props.now);
        use_effect_with(*refresh, move |_| {
            yew::platform::spawn_local(async move {
                events.set(Some(last_day(&api, now).await.map(|e| (e, now)).map_err(|e| e.to_string())));
                anomalies.set(Some(api.anomalies().await.map_err(|e| e.to_string())));
            });
        });
    }
    let on_refresh = {
        let refresh = refresh.clone();
        Callback::from(move |_| refresh.set(*refresh + 1))
    };

    let types: BTreeMap<ResourceId, String> =
        props.board.rows.values().map(|r| (r.id, r.resource_type.clone())).collect();
    let utilisation = analytics::utilisation(&props.board, props.now);
    let util_chart = html! {
        <BarChart title="Utilisation now, per type" x_label="resource type" y_label="% held" y_max={Some(100)}
            categories={utilisation.keys().cloned().collect::<Vec<_>>()}
            series={vec![Series { name: "held (%)".into(), class: "s-held",
                values: utilisation.values().map(|(h, t)| (100 * h / (*t).max(1)) as u32).collect() }]} />
    };
    let from_log = match &*events {
        None => html! { <p role="status">{ "Reading the last 24 hours of the event log…" }</p> },
        Some(Err(e)) => html! { <p class="error">{ format!("No data: {e}") }</p> },
        Some(Ok((events, at))) => {
            let hist = analytics::duration_histogram(events, &types);
            let per_hour = analytics::endings_per_hour(events, *at, HOURS);
            let hour_labels: Vec<String> = (0..HOURS)
                .map(|i| {
                    format::hour(Millis(analytics::hour_start(*at).0 - (HOURS - 1 - i) as i64 * 3_600_000).to_utc())
                })
                .collect();
            html! {
                <>
                    <BarChart title="Releases vs expirations, last 24 hours" x_label="hour (UTC)" y_label="holds ended"
                        categories={hour_labels} label_every={3}
                        series={vec![
                            Series { name: "released".into(), class: "s-released", values: per_hour.iter().map(|e| e.released).collect() },
                            Series { name: "expired".into(), class: "s-expired", values: per_hour.iter().map(|e| e.expired).collect() },
                            Series { name: "force-released".into(), class: "s-forced", values: per_hour.iter().map(|e| e.force_released).collect() },
                        ]} />
                    if hist.is_empty() {
                        <p>{ "No data: no hold ended in the last 24 hours." }</p>
                    }
                    { for hist.iter().map(|(ty, counts)| html! {
                        <BarChart title={format!("Hold durations: {ty}, last 24 hours")} x_label="how long the hold lasted" y_label="holds"
                            categories={DURATION_BUCKETS.iter().map(|(l, _)| (*l).to_owned()).collect::<Vec<_>>()}
                            series={vec![Series { name: "holds".into(), class: "s-held", values: counts.to_vec() }]} />
                    }) }
                </>
            }
        }
    };
    html! {
        <div class="analytics">
            <div class="bar">
                <h2>{ "Analytics" }</h2>
                <button onclick={on_refresh}>{ "Refresh" }</button>
            </div>
            <div class="charts">
                { util_chart }
                { from_log }
            </div>
            <AnomalyTable anomalies={(*anomalies).clone()} />
        </div>
    }
}
