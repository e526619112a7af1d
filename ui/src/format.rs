//! How times and durations read on the board.

use chrono::{DateTime, Utc};
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

/// A server timestamp as UTC wall-clock time, for titles and the detail.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// The same, short (the timeline's columns): `Nov 26 07:28:18`.
pub fn short_time(t: DateTime<Utc>) -> String {
    t.format("%b %d %H:%M:%S").to_string()
}

/// Seconds as a readable TTL (`300 s (5:00)`).
pub fn ttl(seconds: u32) -> String {
    if seconds < 60 {
        format!("{seconds} s")
    } else {
        format!("{seconds} s ({})", duration(Millis::from_secs(i64::from(seconds))))
    }
}
