//! A labelled bar chart in plain inline SVG: categories along x, one bar per series in each, a y axis with its
//! unit. Colours come from CSS classes; the legend names every series in words.

use yew::prelude::*;

#[derive(Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// CSS class for the bars' colour.
    pub class: &'static str,
    pub values: Vec<u32>,
}

#[derive(Properties, PartialEq)]
pub struct Props {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub categories: Vec<String>,
    pub series: Vec<Series>,
    /// Show every n-th category label (long axes).
    #[prop_or(1)]
    pub label_every: usize,
    /// The y axis's top (e.g. 100 for percentages); by default the largest value.
    #[prop_or_default]
    pub y_max: Option<u32>,
}

/// Coordinates are whole units of the viewBox (integers: no float formatting in the wasm).
fn px(v: f64) -> String {
    (v.round() as i64).to_string()
}

const W: f64 = 560.0;
const H: f64 = 220.0;
const LEFT: f64 = 48.0;
const BOTTOM: f64 = 44.0;
const TOP: f64 = 12.0;

#[function_component(BarChart)]
pub fn bar_chart(props: &Props) -> Html {
    let max = props
        .y_max
        .unwrap_or_else(|| props.series.iter().flat_map(|s| s.values.iter().copied()).max().unwrap_or(0))
        .max(1);
    let plot_h = H - TOP - BOTTOM;
    let n = props.categories.len().max(1) as f64;
    let slot = (W - LEFT - 8.0) / n;
    let k = props.series.len().max(1) as f64;
    let bar = (slot * 0.8 / k).max(1.0);
    let y = |v: u32| TOP + plot_h - plot_h * f64::from(v) / f64::from(max);
    let summary = props
        .series
        .iter()
        .map(|s| format!("{}: {}", s.name, s.values.iter().sum::<u32>()))
        .collect::<Vec<_>>()
        .join(", ");
    html! {
        <figure class="chart">
            <figcaption>{ props.title.clone() }</figcaption>
            <svg viewBox={format!("0 0 {} {}", px(W), px(H))} role="img" aria-label={format!("{} ({summary})", props.title)}>
                // y axis: 0, half, max
                { for [0, max / 2, max].into_iter().map(|v| html! {
                    <g class="tick">
                        <line x1={px(LEFT)} x2={px(W - 8.0)} y1={px(y(v))} y2={px(y(v))} />
                        <text x={px(LEFT - 6.0)} y={px(y(v) + 4.0)} text-anchor="end">{ v }</text>
                    </g>
                }) }
                { for props.categories.iter().enumerate().map(|(i, c)| {
                    let x0 = LEFT + slot * i as f64 + slot * 0.1;
                    html! {
                        <g>
                            { for props.series.iter().enumerate().map(|(j, s)| {
                                let v = s.values.get(i).copied().unwrap_or(0);
                                let top = y(v);
                                html! {
                                    <rect class={s.class} x={px(x0 + bar * j as f64)} y={px(top)}
                                        width={px(bar)} height={px(TOP + plot_h - top)}>
                                        <title>{ format!("{c} — {}: {v}", s.name) }</title>
                                    </rect>
                                }
                            }) }
                            if i % props.label_every.max(1) == 0 {
                                <text class="cat" x={px(x0 + slot * 0.4)} y={px(H - BOTTOM + 16.0)} text-anchor="middle">{ c.clone() }</text>
                            }
                        </g>
                    }
                }) }
                <text class="axis" x={px(LEFT + (W - LEFT) / 2.0)} y={px(H - 6.0)} text-anchor="middle">{ props.x_label.clone() }</text>
                <text class="axis" transform={format!("translate(12 {}) rotate(-90)", px(TOP + plot_h / 2.0))} text-anchor="middle">{ props.y_label.clone() }</text>
            </svg>
            <ul class="legend">
                { for props.series.iter().map(|s| html! { <li><span class={classes!("swatch", s.class)}></span>{ s.name.clone() }</li> }) }
            </ul>
        </figure>
    }
}
