//! HL7 messages (`hhs_core::hl7`): each decided and recorded in one transaction — its record claimed under its
//! key, a repeat answered from the record, else its beds' statuses set as [`ResourceStore::set_status`] does.

use async_trait::async_trait;
use hhs_core::wire::{Detail, EventView, Hl7Detail, LogKind, StatusDetail};
use hhs_core::{Identifier, Lease, Millis, ResourceId, ResourceType};
use sqlx::Transaction;

use super::dialect::Dialect;
use super::resources::{resources_query, UPDATE_STATUS};
use super::rows::{Arg, LeaseRecord};
use super::sql_store::{SqlStore, SELECT_LEASE};
use super::{Actor, Change, Hl7Answer, Hl7Message, Resource, ResourceFilter, StoreError};

/// HL7 messages.
#[async_trait]
pub trait Hl7Store: Send + Sync + 'static {
    /// One HL7 message, decided and recorded in one transaction: its record claimed under its key (the
    /// principal, sender and control id: a concurrent copy waits for it), a repeat answered from the record
    /// (`hhs_core::hl7::repeat`: the same content gets the stored ACK and writes nothing; other content `AR`), else
    /// its beds' statuses set — each lease row locked in resource-id order, then `resources.status` updated and
    /// the queue served, as [`ResourceStore::set_status`] does — with the record (an `AA` only: `hl7::recorded`) and its
    /// `hl7_received` event. Records past the window are deleted after the commit.
    async fn hl7_ingest(&self, message: &Hl7Message, actor: &Actor) -> Result<Hl7Answer, StoreError>;
}

#[async_trait]
impl<D: Dialect> Hl7Store for SqlStore<D> {
    async fn hl7_ingest(&self, m: &Hl7Message, actor: &Actor) -> Result<Hl7Answer, StoreError> {
        use hhs_core::hl7::{self, AckCode, Repeat};
        let i = &m.inbound;
        let sender = format!("{}^{}", i.sending_application, i.sending_facility);
        let message_type = format!("{}^{}", i.code, i.trigger);
        let key = || vec![Arg::text(&actor.principal), Arg::text(&sender), Arg::text(&i.control_id)];
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let claim_at = Self::db_now(&mut tx).await?;
        let mut args = key();
        args.extend([
            Arg::text(&m.digest),
            Arg::Int(Some(claim_at.0)),
            Arg::text(&message_type),
            Arg::text(""),
            Arg::text(""),
        ]);
        args.push(Arg::Int(Some(hl7::expired_before(claim_at, m.window).0)));
        let claimed = Self::exec(&mut tx, CLAIM_HL7, args).await? == 1;
        // After the claim (which may have waited for a concurrent copy's transaction).
        let now = Self::db_now(&mut tx).await?;
        let stamp = now.to_utc().format("%Y%m%d%H%M%S").to_string();
        let answer =
            |code: AckCode, why: &str| hl7::ack(i, code, why, &stamp, &uuid::Uuid::now_v7().simple().to_string());
        let event = |code: AckCode, beds: Vec<String>, duplicate: bool| {
            let d = Hl7Detail {
                control_id: i.control_id.clone(),
                message_type: message_type.clone(),
                sender: sender.clone(),
                ack_code: code.as_str().into(),
                beds,
                duplicate,
            };
            EventView::new(LogKind::Hl7Received, now, actor, Detail::Hl7(d))
        };
        if !claimed {
            let (digest, ack, code, at): (String, String, String, i64) = Self::fetch(&mut *tx, SELECT_HL7, key())
                .await?
                .pop()
                .ok_or_else(|| StoreError::Corrupt("an HL7 record vanished under its claim".into()))?;
            let stored = hl7::Answered { digest, ack, at: Millis(at) };
            return match hl7::repeat(Some(&stored), &m.digest, now, m.window) {
                // Nothing written: a resend storm adds nothing to the log.
                Repeat::Same | Repeat::New => {
                    tx.rollback().await?;
                    Ok(Hl7Answer { ack: stored.ack, code: AckCode::parse(&code), repeat: Repeat::Same })
                }
                Repeat::Reused => {
                    let ack = answer(AckCode::AR, &hl7::reused(i));
                    Self::insert_event(&mut tx, event(AckCode::AR, vec![], true)).await?;
                    self.commit(tx, vec![]).await?;
                    Ok(Hl7Answer { ack, code: AckCode::AR, repeat: Repeat::Reused })
                }
            };
        }
        let mut changes = vec![];
        let (code, why, beds) = match &m.plan {
            Err((code, why)) => (*code, why.clone(), vec![]),
            Ok(updates) => match Self::hl7_apply(&mut tx, &m.bed_type, updates, actor).await? {
                Err(unknown) => (
                    AckCode::AE,
                    format!(
                        "unknown bed {unknown:?}: no resource of type {} with that identifier",
                        m.bed_type.as_str()
                    ),
                    vec![],
                ),
                Ok(c) => {
                    changes = c;
                    let beds = updates.iter().map(|u| format!("{} {}", u.identifier, u.status.code())).collect();
                    (AckCode::AA, format!("{} bed status(es) set", updates.len()), beds)
                }
            },
        };
        let ack = answer(code, &why);
        if hl7::recorded(code) {
            let mut args = key();
            args.extend([Arg::text(code.as_str()), Arg::text(&why), Arg::text(&ack)]);
            Self::exec(&mut tx, RECORD_HL7, args).await?;
        } else {
            Self::exec(&mut tx, UNCLAIM_HL7, key()).await?;
        }
        Self::insert_event(&mut tx, event(code, beds, false)).await?;
        self.commit(tx, changes).await?;
        // Outside the message's transaction: a failure here costs only a later retry.
        let expired = vec![Arg::Int(Some(hl7::expired_before(now, m.window).0))];
        let expire = async {
            let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
            Self::exec(&mut tx, EXPIRE_HL7, expired).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        };
        if let Err(e) = expire.await {
            tracing::warn!(error = %e, "could not delete expired HL7 records");
        }
        Ok(Hl7Answer { ack, code, repeat: Repeat::New })
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The bed of type `ty` named `identifier`, read now.
    pub(super) async fn hl7_bed(
        tx: &mut Transaction<'static, D>,
        ty: &ResourceType,
        identifier: &str,
    ) -> Result<Option<Resource>, StoreError> {
        let Ok(identifier) = Identifier::parse(identifier) else { return Ok(None) };
        let filter =
            ResourceFilter { resource_type: Some(ty.clone()), identifier: Some(identifier), after: None, limit: 1 };
        let (statement, args) = resources_query(&filter);
        Ok(Self::fetch(&mut **tx, &statement, args).await?.pop())
    }

    /// An HL7 message's status changes inside its transaction: every bed resolved (`Err`: the first that
    /// names no resource, and nothing is set), every lease row locked in resource-id order and the beds
    /// read again under the locks (a bed changed meanwhile is seen as it is now), the clock read, then
    /// each status set and each changed bed's queue served — per resource the order of `set_status`.
    pub(super) async fn hl7_apply(
        tx: &mut Transaction<'static, D>,
        ty: &ResourceType,
        updates: &[hhs_core::hl7::BedUpdate],
        actor: &Actor,
    ) -> Result<Result<Vec<Change>, String>, StoreError> {
        let mut ids = Vec::with_capacity(updates.len());
        for u in updates {
            match Self::hl7_bed(tx, ty, &u.identifier).await? {
                Some(r) => ids.push(r.id),
                None => return Ok(Err(u.identifier.clone())),
            }
        }
        let mut order: Vec<(ResourceId, &str)> =
            ids.iter().copied().zip(updates.iter().map(|u| u.identifier.as_str())).collect();
        order.sort_by_key(|(id, _)| *id);
        order.dedup_by_key(|(id, _)| *id);
        let locked = format!("{SELECT_LEASE}{}", D::lock("l"));
        let mut held: Vec<(Resource, Lease, bool)> = Vec::with_capacity(order.len());
        for (id, identifier) in &order {
            let rec: Option<LeaseRecord> = Self::fetch(&mut **tx, &locked, vec![Arg::Uuid(Some(id.0))]).await?.pop();
            let Some(rec) = rec else { return Ok(Err((*identifier).to_owned())) };
            let (_, lease) = rec.into_parts()?;
            match Self::hl7_bed(tx, ty, identifier).await? {
                Some(resource) if resource.id == *id => held.push((resource, lease, false)),
                _ => return Ok(Err((*identifier).to_owned())),
            }
        }
        let now = Self::db_now(tx).await?;
        for (id, u) in ids.iter().zip(updates) {
            let Some((resource, _, changed)) = held.iter_mut().find(|(r, _, _)| r.id == *id) else { continue };
            let from = resource.status;
            if from == u.status {
                continue;
            }
            Self::exec(tx, UPDATE_STATUS, vec![Arg::Uuid(Some(id.0)), Arg::text(u.status.code())]).await?;
            resource.status = u.status;
            *changed = true;
            let detail = Detail::Status(StatusDetail { from, to: u.status });
            Self::insert_event(
                tx,
                EventView { resource_id: Some(*id), ..EventView::new(LogKind::StatusChanged, now, actor, detail) },
            )
            .await?;
        }
        let mut changes = vec![];
        for (resource, lease, _) in held.iter().filter(|(_, _, changed)| *changed) {
            changes.extend(Self::serve_queue(tx, resource, lease, now).await?.1);
        }
        Ok(Ok(changes))
    }
}

/// Claims an HL7 message's record by its key (principal, sender `MSH-3^MSH-4`, control id): a new row, or one past
/// the window (`$9`: `hl7::expired_before`) taken over; 0 rows when a live record holds the key (on PostgreSQL a
/// concurrent claim of the key waits for its transaction).
pub const CLAIM_HL7: &str = "INSERT INTO hl7_messages (principal, sender, control_id, digest, received_at_ms, message_type, ack_code, ack_text, ack) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '') ON CONFLICT (principal, sender, control_id) DO UPDATE SET digest = excluded.digest, \
     received_at_ms = excluded.received_at_ms, message_type = excluded.message_type, ack_code = excluded.ack_code, \
     ack_text = excluded.ack_text, ack = excluded.ack WHERE hl7_messages.received_at_ms < $9";

/// The record under a key: digest, stored ACK, its code, when.
pub const SELECT_HL7: &str = "SELECT digest, ack, ack_code, received_at_ms FROM hl7_messages WHERE principal = $1 AND sender = $2 AND control_id = $3";

/// A claimed record completed with its answer.
pub const RECORD_HL7: &str = "UPDATE hl7_messages SET ack_code = $4, ack_text = $5, ack = $6 WHERE principal = $1 AND sender = $2 AND control_id = $3";

/// A claim given up (the message was not applied: nothing to remember).
pub const UNCLAIM_HL7: &str = "DELETE FROM hl7_messages WHERE principal = $1 AND sender = $2 AND control_id = $3";

/// Records past the window.
pub const EXPIRE_HL7: &str = "DELETE FROM hl7_messages WHERE received_at_ms < $1";
