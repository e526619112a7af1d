//! The holds the TTL model finds most unusual right now (longest past their type's norm, or silent longest).

use hhs_core::wire::AnomalyView;
use hhs_core::Millis;
use yew::prelude::*;

use crate::format;
use crate::loaded::{self, Loaded};

#[derive(Properties, PartialEq)]
pub struct Props {
    /// None: not loaded; Some(Err): the endpoint failed.
    pub anomalies: Loaded<AnomalyView>,
}

#[function_component(AnomalyTable)]
pub fn anomaly_table(props: &Props) -> Html {
    let body = loaded::view(&props.anomalies, "Loading…", "No data: no current hold looks unusual.", |list| {
        let mut list = list.to_vec();
        list.sort_by(|a, b| b.anomaly_score.total_cmp(&a.anomaly_score));
        html! {
            <table class="anomalies">
                <thead><tr>
                    <th scope="col">{ "Score" }</th><th scope="col">{ "Resource" }</th><th scope="col">{ "Holder" }</th>
                    <th scope="col">{ "Held for" }</th><th scope="col">{ "Silent for" }</th><th scope="col">{ "Token" }</th>
                </tr></thead>
                <tbody>
                    { for list.iter().take(10).map(|a| html! {
                        <tr>
                            <td>{ format::score(a.anomaly_score) }</td>
                            <td>{ format!("{} ({})", a.identifier, a.resource_type) }</td>
                            <td>{ format!("{} · {}", a.owner_id, a.principal) }</td>
                            <td>{ format::duration(Millis((a.held_seconds * 1000.0) as i64)) }</td>
                            <td>{ format::duration(Millis((a.heartbeat_gap_seconds * 1000.0) as i64)) }</td>
                            <td>{ a.fencing_token }</td>
                        </tr>
                    }) }
                </tbody>
            </table>
        }
    });
    html! {
        <section aria-labelledby="anomaly-title">
            <h2 id="anomaly-title">{ "Highest anomaly scores" }</h2>
            { body }
        </section>
    }
}
