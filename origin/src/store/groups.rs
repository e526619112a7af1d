//! Groups (`hhs_core::group`): a group acquired in one transaction, all or none, and operations on a group by
//! its id over the members recorded when it was granted.

use async_trait::async_trait;
use hhs_core::admission::Gate;
use hhs_core::group;
use hhs_core::lease::{AcquireCmd, Claim};
use hhs_core::{GroupId, HoldId, Millis, ResourceId, SessionId};

use super::dialect::Dialect;
use super::rows::Arg;
use super::sql_store::SqlStore;
use super::{Actor, Applied, GroupOp, StoreError};

/// Groups of holds.
#[async_trait]
pub trait GroupStore: Send + Sync + 'static {
    /// A group acquire (`hhs_core::group::acquire_group`) in one transaction: the session's row if there is one,
    /// then each member's lease row in `ids`' order (the caller passes `group::lock_order`, so two overlapping
    /// groups never wait on each other in a cycle). All granted, with the members recorded (`group_members`), or
    /// [`StoreError::GroupDenied`] with every refusal (a TTL outside a member's type bounds among them) and
    /// nothing written.
    async fn acquire_group(
        &self,
        ids: &[ResourceId],
        group: GroupId,
        cmd: AcquireCmd,
        session: Option<SessionId>,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError>;

    /// `op` on every member of `group` (as recorded when it was granted) by `claim`, their lease rows locked in
    /// `group::lock_order`, all or none (`hhs_core::group::by_id`): any member refused refuses the group
    /// ([`StoreError::GroupDenied`]) — a heartbeat or booking every member the group no longer holds; a release
    /// counts a member already ended as released and answers the holds it released. [`StoreError::NoGroup`]
    /// for an id no group was granted with.
    async fn group_op(
        &self,
        group: GroupId,
        claim: Claim,
        op: GroupOp,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError>;
}

#[async_trait]
impl<D: Dialect> GroupStore for SqlStore<D> {
    async fn acquire_group(
        &self,
        ids: &[ResourceId],
        group_id: GroupId,
        cmd: AcquireCmd,
        session_id: Option<SessionId>,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let s = match session_id {
            Some(id) => Some(Self::lock_session(&mut tx, id).await?),
            None => None,
        };
        let mut members = Vec::with_capacity(ids.len());
        for id in ids {
            members.push(Self::locked_lease(&mut tx, *id).await?);
        }
        let now = Self::db_now(&mut tx).await?;
        let mut queues = Vec::with_capacity(members.len());
        for (_, lease) in &members {
            queues.push(Self::queue_of(&mut tx, lease).await?);
        }
        let m: Vec<group::Member> = members
            .iter()
            .zip(&queues)
            .map(|((r, l), queue)| group::Member {
                lease: l,
                gate: Gate { policy: &r.policy, status: r.status, queue },
                new_hold_id: HoldId(uuid::Uuid::now_v7()),
            })
            .collect();
        let outcomes = match group::acquire_group(&m, now, group_id, &cmd, s.as_ref()) {
            Ok(outcomes) => outcomes,
            Err(refused) => {
                tx.rollback().await?;
                return Err(StoreError::GroupDenied(refused));
            }
        };
        let (mut applied, mut renewals) = (Vec::with_capacity(outcomes.len()), vec![]);
        for ((resource, lease), outcome) in members.into_iter().zip(outcomes) {
            // The group's membership, for its operations by id whatever later becomes of the leases.
            Self::exec(&mut tx, INSERT_GROUP_MEMBER, vec![Arg::Uuid(Some(group_id.0)), Arg::Uuid(Some(resource.id.0))])
                .await?;
            renewals.extend(Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?);
            applied.push(Applied { resource, outcome, now });
        }
        self.commit(tx, renewals).await?;
        Ok(applied)
    }

    async fn group_op(
        &self,
        group_id: GroupId,
        claim: Claim,
        op: GroupOp,
        actor: &Actor,
    ) -> Result<Vec<Applied>, StoreError> {
        let mut tx = self.pool().await?.begin_with(D::BEGIN_WRITE).await?;
        let rows: Vec<(uuid::Uuid,)> =
            Self::fetch(&mut *tx, SELECT_GROUP_MEMBERS, vec![Arg::Uuid(Some(group_id.0))]).await?;
        if rows.is_empty() {
            return Err(StoreError::NoGroup);
        }
        let mut ids: Vec<ResourceId> = rows.into_iter().map(|(r,)| ResourceId(r)).collect();
        // The order the group was acquired in (`group::lock_order`): overlapping operations never wait in a cycle.
        ids.sort();
        let mut members = Vec::with_capacity(ids.len());
        for id in &ids {
            members.push(Self::locked_lease_if_any(&mut tx, *id).await?);
        }
        let now = Self::db_now(&mut tx).await?;
        let held: Vec<group::Held> = ids
            .iter()
            .zip(&members)
            .map(|(id, m)| group::Held {
                resource_id: *id,
                lease: m.as_ref().map(|(_, l)| l),
                booking_max: m.as_ref().map_or(Millis::ZERO, |(r, _)| r.policy.booking_max()),
            })
            .collect();
        let outcomes = match group::by_id(&held, group_id, now, &claim, op) {
            Ok(outcomes) => outcomes,
            Err(refused) => {
                tx.rollback().await?;
                return Err(StoreError::GroupDenied(refused));
            }
        };
        let (mut applied, mut renewals) = (vec![], vec![]);
        for (member, outcome) in members.into_iter().zip(outcomes) {
            let (Some((resource, lease)), Some(outcome)) = (member, outcome) else { continue };
            // A release answers the holds it released (a repeat releases none).
            if op == GroupOp::Release && outcome.events.is_empty() {
                continue;
            }
            renewals.extend(Self::write_and_serve(&mut tx, &resource, &lease, &outcome, now, actor).await?);
            applied.push(Applied { resource, outcome, now });
        }
        self.commit(tx, renewals).await?;
        Ok(applied)
    }
}

/// Group `$1`'s members, as recorded when it was granted (whatever their leases hold now); the store locks their
/// leases in `hhs_core::group::lock_order`.
pub const SELECT_GROUP_MEMBERS: &str = "SELECT resource_id FROM group_members WHERE group_id = $1";

pub const INSERT_GROUP_MEMBER: &str = "INSERT INTO group_members (group_id, resource_id) VALUES ($1, $2)";
