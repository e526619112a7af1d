//! HL7 v2 bed status, as rules over a message's few fields (the origin parses ER7 with the `er7` crate and hands
//! the fields here): which beds change to which status ([`plan`]), which resource a bed is ([`BedMapping`]), and
//! the acknowledgement to answer ([`ack`]). Only the segments named here are read; patient segments never are.
//!
//! * `ADT^A20` (bed status update): `NPU-1` the bed (point of care^room^bed), `NPU-2` its status, table 0116.
//! * `ADT^A01` (admit): the bed in `PV1-3` becomes O (occupied).
//! * `ADT^A02` (transfer): the new bed in `PV1-3` becomes O, the prior one in `PV1-6` U.
//! * `ADT^A03` (discharge): the bed in `PV1-3` becomes U.
//!
//! Anything else is rejected (`AR`); a message whose beds are unknown or whose status is not in table 0116 is
//! an error (`AE`) and changes nothing.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::status::Status;

/// The acknowledgement codes of `MSA-1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// Accepted and applied.
    AA,
    /// Accepted, but it could not be applied (an unknown bed, a status outside table 0116): nothing changed.
    AE,
    /// Rejected: not a message HHS takes (malformed, another type).
    AR,
}

impl AckCode {
    pub const fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
        }
    }

    /// The code as stored by [`AckCode::as_str`]; anything else reads as `AR`.
    pub fn parse(code: &str) -> AckCode {
        [AckCode::AA, AckCode::AE].into_iter().find(|c| c.as_str() == code).unwrap_or(AckCode::AR)
    }
}

/// The fields of one message that HHS reads, as the parser found them (components of a field split on `^`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inbound {
    /// `MSH-9.1` and `MSH-9.2`, e.g. `ADT` and `A20`.
    pub code: String,
    pub trigger: String,
    /// `MSH-10`.
    pub control_id: String,
    /// `MSH-3` and `MSH-4` (sending application and facility), who the answer goes to and whose control ids
    /// these are.
    pub sending_application: String,
    pub sending_facility: String,
    /// `MSH-12`.
    pub version: String,
    /// `NPU-1` components and `NPU-2`, when there is an `NPU` segment.
    pub npu_bed: Option<Vec<String>>,
    pub npu_status: Option<String>,
    /// `PV1-3` and `PV1-6` components (assigned and prior patient location), when there is a `PV1`.
    pub pv1_bed: Option<Vec<String>>,
    pub pv1_prior_bed: Option<Vec<String>>,
}

/// Which resource a bed is: of type `resource_type`, with the identifier `template` makes of the location's
/// components (`{1}` point of care, `{2}` room, `{3}` bed). Without a template, the components as sent joined
/// by `^`, trailing empty ones left out (`4W^401^A`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BedMapping {
    pub resource_type: String,
    pub template: Option<String>,
}

impl Default for BedMapping {
    fn default() -> Self {
        BedMapping { resource_type: "bed".into(), template: None }
    }
}

impl BedMapping {
    /// The identifier of the bed at `location` (its components), or `None` for an empty location.
    pub fn identifier(&self, location: &[String]) -> Option<String> {
        let last = location.iter().rposition(|c| !c.trim().is_empty())?;
        let parts = &location[..=last];
        Some(match &self.template {
            None => parts.join("^"),
            Some(t) => {
                let mut out = t.clone();
                for i in (1..=9).rev() {
                    out = out.replace(&format!("{{{i}}}"), parts.get(i - 1).map_or("", |s| s.as_str()));
                }
                out
            }
        })
    }
}

/// One bed's new status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BedUpdate {
    /// The resource identifier ([`BedMapping::identifier`]).
    pub identifier: String,
    pub status: Status,
}

/// What a message asks for: the beds and their statuses, or the acknowledgement code and reason to refuse it with.
pub fn plan(m: &Inbound, mapping: &BedMapping) -> Result<Vec<BedUpdate>, (AckCode, String)> {
    if m.code != "ADT" {
        return Err((AckCode::AR, format!("message type {} is not taken here: send ADT^A20, A01, A02 or A03", m.code)));
    }
    let bed = |loc: &Option<Vec<String>>, field: &str| {
        loc.as_deref().and_then(|l| mapping.identifier(l)).ok_or_else(|| (AckCode::AE, format!("{field} names no bed")))
    };
    match m.trigger.as_str() {
        "A20" => {
            let code = m.npu_status.as_deref().unwrap_or("");
            let status = Status::parse(code).map_err(|_| {
                (AckCode::AE, format!("NPU-2 status {code:?} is not in HL7 table 0116 (C, H, I, K, O, U)"))
            })?;
            Ok(alloc::vec![BedUpdate { identifier: bed(&m.npu_bed, "NPU-1")?, status }])
        }
        "A01" => Ok(alloc::vec![BedUpdate { identifier: bed(&m.pv1_bed, "PV1-3")?, status: Status::Occupied }]),
        "A03" => Ok(alloc::vec![BedUpdate { identifier: bed(&m.pv1_bed, "PV1-3")?, status: Status::Unoccupied }]),
        "A02" => {
            let mut updates =
                alloc::vec![BedUpdate { identifier: bed(&m.pv1_bed, "PV1-3")?, status: Status::Occupied }];
            if let Ok(prior) = bed(&m.pv1_prior_bed, "PV1-6") {
                updates.insert(0, BedUpdate { identifier: prior, status: Status::Unoccupied });
            }
            Ok(updates)
        }
        other => Err((AckCode::AR, format!("ADT^{other} is not taken here: send ADT^A20, A01, A02 or A03"))),
    }
}

/// Escapes text for an ER7 field with the standard delimiters (`| ^ ~ \ &`) and no line breaks.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '~' => out.push_str("\\R\\"),
            '\\' => out.push_str("\\E\\"),
            '&' => out.push_str("\\T\\"),
            '\r' | '\n' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The `ACK` answering `m`: its header turned round (HHS sends to the message's sender), `MSA` with `code`,
/// `m`'s control id and `text`. `timestamp` is `YYYYMMDDHHMMSS`, `control_id` the ACK's own.
pub fn ack(m: &Inbound, code: AckCode, text: &str, timestamp: &str, control_id: &str) -> String {
    let trigger = if m.trigger.is_empty() { String::new() } else { format!("^{}", escape(&m.trigger)) };
    let version = if m.version.is_empty() { "2.5".to_string() } else { escape(&m.version) };
    format!(
        "MSH|^~\\&|HHS|HHS|{}|{}|{timestamp}||ACK{trigger}^ACK|{}|P|{version}\rMSA|{}|{}|{}\r",
        escape(&m.sending_application),
        escape(&m.sending_facility),
        escape(control_id),
        code.as_str(),
        escape(&m.control_id),
        escape(text),
    )
}

/// How long a message applied is remembered by default (its repeat answered from the record): seven days,
/// longer than any interface engine's resend queue is kept, short enough that the records do not grow for ever.
pub const DEFAULT_REPEAT_WINDOW: crate::Millis = crate::Millis(7 * 24 * 3_600_000);

/// The text a message's repeat is judged by: its segments as sent, each ended by `\r` — a sender's `\n` or
/// `\r\n` between segments (or none after the last) is the same message. Every field is kept, `MSH-7` (the
/// message's time) too: an engine's resend after a lost ACK is the same message, byte for byte, and one stamped
/// anew under an old control id is another message.
pub fn canonical(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for segment in text.split(['\r', '\n']).filter(|s| !s.is_empty()) {
        out.push_str(segment);
        out.push('\r');
    }
    out
}

/// What is kept of a message applied, under its key (the principal that sent it, its sender `MSH-3^MSH-4` and
/// its control id `MSH-10`): the digest of its [`canonical`] text, the ACK it was answered with, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered {
    pub digest: String,
    pub ack: String,
    pub at: crate::Millis,
}

/// What a message is, against the record under its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repeat {
    /// Never seen, or seen longer ago than the window: taken as new.
    New,
    /// The same content again (an ACK that went missing): answered with the stored ACK, applied once.
    Same,
    /// Other content under a control id already used: refused (`AR`, [`reused`]), nothing applied.
    Reused,
}

/// Whether a message whose content has `digest` repeats `stored`, at `now`, with records kept for `window`.
pub fn repeat(stored: Option<&Answered>, digest: &str, now: crate::Millis, window: crate::Millis) -> Repeat {
    match stored {
        Some(s) if s.at.0 > expired_before(now, window).0 => {
            if s.digest == digest {
                Repeat::Same
            } else {
                Repeat::Reused
            }
        }
        _ => Repeat::New,
    }
}

/// Records received before this instant are past the window: no longer a repeat's, and deleted.
pub fn expired_before(now: crate::Millis, window: crate::Millis) -> crate::Millis {
    crate::Millis(now.0.saturating_sub(window.0))
}

/// Whether a message answered `code` is recorded for its repeats: only one that was applied (`AA`). An `AE` or
/// `AR` changed nothing, so its resend — after the bed was made, say — is judged afresh.
pub fn recorded(code: AckCode) -> bool {
    code == AckCode::AA
}

/// The `AR` text of a control id used again with other content.
pub fn reused(m: &Inbound) -> String {
    format!(
        "MSH-10 control id {} was already used by another message from {}^{}: nothing applied; send it with a new control id",
        m.control_id, m.sending_application, m.sending_facility
    )
}
