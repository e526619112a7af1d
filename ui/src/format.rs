//! How times and durations read on the board.

use chrono::{DateTime, Datelike, Timelike, Utc};
use hhs_core::Millis;

/// A countdown or age: `42 s`, `4:05` (min:s), `2 h 05 min`, `3 d 4 h`.
pub fn duration(ms: Millis) -> String {
    let s = ms.0.max(0) / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{}:{:02}", s / 60, s % 60),
        3_600..=86_399 => format!("{} h {:02} min", s / 3_600, (s % 3_600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3_600),
    }
}

// Formatted by hand: chrono's strftime machinery would add kilobytes to the wasm for two formats.

/// A server timestamp as UTC wall-clock time, for titles and the detail: `2026-11-26 07:28:18 UTC`.
pub fn time(t: DateTime<Utc>) -> String {
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second())
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The same, short (the timeline): `Nov 26 07:28:18`.
pub fn short_time(t: DateTime<Utc>) -> String {
    format!("{} {:02} {:02}:{:02}:{:02}", MONTHS[t.month0() as usize % 12], t.day(), t.hour(), t.minute(), t.second())
}

/// An hour of the day, `07:00`.
pub fn hour(t: DateTime<Utc>) -> String {
    format!("{:02}:00", t.hour())
}

/// A score in [0, 1] with two decimals (`0.87`), without float formatting.
pub fn score(x: f64) -> String {
    let hundredths = (x.clamp(0.0, 1.0) * 100.0).round() as u32;
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

/// Seconds as a readable TTL (`300 s (5:00)`).
pub fn ttl(seconds: u32) -> String {
    if seconds < 60 {
        format!("{seconds} s")
    } else {
        format!("{seconds} s ({})", duration(Millis::from_secs(i64::from(seconds))))
    }
}
