//! HL7 v2 ingestion: one ER7 message in, its `ACK` out — through `POST /api/hl7/v2` or the MLLP listener
//! (`serve --mllp ADDR`). The message is parsed with the `er7` crate; which beds change to which status, and the
//! answer, are `hhs_core::hl7`'s rules. A repeat of a control id from the same sender is answered as the first
//! was and applied once. Every message is in the audit trail (`hl7_received`: control id, type, sender,
//! outcome, the beds it set) — never a patient segment, and nothing of it in the logs but its control id.

use std::time::Duration;

use hhs_core::hl7::{ack, plan, AckCode, BedMapping, Inbound};
use hhs_core::wire::{Detail, EventView, Hl7Detail, LogKind, ResourceFilter};
use hhs_core::{Identifier, ResourceType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::{Actor, DynStore, StoreError};

/// MLLP framing: a message is `0x0B` … `0x1C 0x0D`.
const START: u8 = 0x0B;
const END: [u8; 2] = [0x1C, 0x0D];
/// The largest message taken (as the HTTP body limit).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The fields of `text` that the rules read; `Err` (with why) when it is not an HL7 v2 message at all.
pub fn read(text: &str) -> Result<Inbound, String> {
    let m = er7::parse(text).map_err(|e| format!("not an HL7 v2 message: {e}"))?;
    let get = |path: &str| m.query(path).ok().flatten().unwrap_or_default();
    let location = |field: &str| -> Option<Vec<String>> {
        let parts: Vec<String> = (1..=3).map(|c| get(&format!("{field}.{c}"))).collect();
        parts.iter().any(|p| !p.is_empty()).then_some(parts)
    };
    let npu = m.segment("NPU").is_some();
    let pv1 = m.segment("PV1").is_some();
    Ok(Inbound {
        code: get("MSH-9.1"),
        trigger: get("MSH-9.2"),
        control_id: get("MSH-10"),
        sending_application: get("MSH-3"),
        sending_facility: get("MSH-4"),
        version: get("MSH-12.1"),
        npu_bed: if npu { location("NPU-1") } else { None },
        npu_status: npu.then(|| get("NPU-2")),
        pv1_bed: if pv1 { location("PV1-3") } else { None },
        pv1_prior_bed: if pv1 { location("PV1-6") } else { None },
    })
}

/// Takes one message and answers it: applies what it asks (all of it, or nothing when a bed is unknown), records
/// it, and returns the `ACK`.
pub async fn ingest(store: &DynStore, mapping: &BedMapping, text: &str, actor: &Actor) -> Result<String, StoreError> {
    let inbound = match read(text) {
        Ok(m) if !m.control_id.is_empty() => m,
        Ok(m) => return Ok(answer(&m, AckCode::AR, "MSH-10 (message control id) is missing")),
        Err(why) => return Ok(answer(&Inbound::default(), AckCode::AR, &why)),
    };
    let sender = format!("{}^{}", inbound.sending_application, inbound.sending_facility);
    let message_type = format!("{}^{}", inbound.code, inbound.trigger);
    let detail = |code: AckCode, beds: Vec<String>, duplicate: bool| {
        let d = Hl7Detail { control_id: inbound.control_id.clone(), message_type: message_type.clone(), sender: sender.clone(), ack_code: code.as_str().into(), beds, duplicate };
        EventView::new(LogKind::Hl7Received, hhs_core::Millis(0), actor, Detail::Hl7(d))
    };
    if let Some((code, why)) = store.hl7_answered(&sender, &inbound.control_id).await? {
        let code = AckCode::parse(&code);
        store.hl7_record(&sender, &inbound.control_id, &message_type, (code.as_str(), &why), detail(code, vec![], true)).await?;
        tracing::info!(control_id = %inbound.control_id, "HL7 message repeated: answered as before");
        return Ok(answer(&inbound, code, &why));
    }
    let (code, why, beds) = match plan(&inbound, mapping) {
        Err((code, why)) => (code, why, vec![]),
        Ok(updates) => match resolve(store, mapping, &updates.iter().map(|u| u.identifier.clone()).collect::<Vec<_>>()).await? {
            Err(unknown) => (AckCode::AE, format!("unknown bed {unknown:?}: no resource of type {} with that identifier", mapping.resource_type), vec![]),
            Ok(ids) => {
                for (id, u) in ids.iter().zip(&updates) {
                    store.set_status(*id, u.status, actor).await?;
                }
                let beds: Vec<String> = updates.iter().map(|u| format!("{} {}", u.identifier, u.status.code())).collect();
                (AckCode::AA, format!("{} bed status(es) set", updates.len()), beds)
            }
        },
    };
    store.hl7_record(&sender, &inbound.control_id, &message_type, (code.as_str(), &why), detail(code, beds, false)).await?;
    tracing::info!(control_id = %inbound.control_id, message_type = %message_type, ack = code.as_str(), "HL7 message answered");
    Ok(answer(&inbound, code, &why))
}

/// The `ACK` to `m`, stamped now with a fresh control id of its own.
fn answer(m: &Inbound, code: AckCode, why: &str) -> String {
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S").to_string();
    ack(m, code, why, &stamp, &uuid::Uuid::now_v7().simple().to_string())
}

/// Each bed's resource id, or the first identifier that names no resource of the mapped type.
async fn resolve(store: &DynStore, mapping: &BedMapping, identifiers: &[String]) -> Result<Result<Vec<hhs_core::ResourceId>, String>, StoreError> {
    let Ok(ty) = ResourceType::parse(&mapping.resource_type) else { return Ok(Err(identifiers.first().cloned().unwrap_or_default())) };
    let mut ids = vec![];
    for ident in identifiers {
        let Ok(parsed) = Identifier::parse(ident) else { return Ok(Err(ident.clone())) };
        let filter = ResourceFilter { resource_type: Some(ty.clone()), identifier: Some(parsed), after: None, limit: 1 };
        match store.resources(&filter).await?.first() {
            Some(r) => ids.push(r.id),
            None => return Ok(Err(ident.clone())),
        }
    }
    Ok(Ok(ids))
}

/// The MLLP listener: each connection sends framed messages and gets each `ACK` framed back. Bytes outside a
/// frame are skipped; a frame over [`MAX_MESSAGE`] or idle for a minute closes its connection.
pub async fn serve_mllp(listener: TcpListener, store: DynStore, mapping: BedMapping, shutdown: CancellationToken) {
    loop {
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "MLLP accept failed");
                    continue;
                }
            },
        };
        let (store, mapping, stop) = (store.clone(), mapping.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                result = connection(socket, &store, &mapping) => if let Err(e) = result {
                    tracing::info!(peer = %peer, error = %e, "MLLP connection ended");
                },
            }
        });
    }
}

async fn connection(mut socket: tokio::net::TcpStream, store: &DynStore, mapping: &BedMapping) -> std::io::Result<()> {
    let actor = Actor::system("mllp");
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // Every complete frame in the buffer, in order.
        while let Some((start, end)) = frame(&buf) {
            let text = String::from_utf8_lossy(&buf[start + 1..end]).into_owned();
            buf.drain(..end + END.len());
            let answer = match ingest(store, mapping, &text, &actor).await {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HL7 message not taken: the database is unavailable");
                    answer(&read(&text).unwrap_or_default(), AckCode::AE, "HHS cannot reach its database; send it again")
                }
            };
            let mut out = vec![START];
            out.extend_from_slice(answer.as_bytes());
            out.extend_from_slice(&END);
            socket.write_all(&out).await?;
        }
        if buf.len() > MAX_MESSAGE + 2 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"));
        }
        let n = tokio::time::timeout(Duration::from_secs(60), socket.read(&mut chunk)).await.map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        // Anything before a frame's start is noise.
        if let Some(s) = buf.iter().position(|b| *b == START) {
            buf.drain(..s);
        } else {
            buf.clear();
        }
    }
}

/// The first complete frame in `buf`: the index of its start byte and of its end (the `0x1C`).
pub fn frame(buf: &[u8]) -> Option<(usize, usize)> {
    let start = buf.iter().position(|b| *b == START)?;
    let end = buf[start..].windows(2).position(|w| w == END)? + start;
    Some((start, end))
}
