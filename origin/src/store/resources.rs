//! Resources and their operational status: creating, renaming, setting the status (the queue served when a
//! resource becomes available), deleting, listing. A name given up keeps its last fencing token as a floor, so
//! a resource made again under it never issues a token twice.

use async_trait::async_trait;
use hhs_core::lease::{retire, token_floor};
use hhs_core::status::Status;
use hhs_core::wire::{Detail, EventView, LogKind, StatusDetail};
use hhs_core::{FencingToken, Identifier, ResourceId, ResourceType, TypePolicy};
use sqlx::Transaction;

use super::dialect::Dialect;
use super::rows::{Arg, Filter};
use super::sql_store::SqlStore;
use super::types::{TypeRow, ENSURE_TYPE};
use super::{Actor, Resource, ResourceFilter, StoreError};

/// Resources and their status.
#[async_trait]
pub trait ResourceStore: Send + Sync + 'static {
    /// Creates the resource, its (free) lease row and a `resource_created` event in one transaction; a type
    /// without a row gets one with `seed` (the process's flags for new types).
    async fn create_resource(
        &self,
        id: ResourceId,
        ty: &ResourceType,
        ident: &Identifier,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<Resource, StoreError>;

    /// Renames a resource (`resource_updated`).
    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError>;

    /// Sets a resource's operational status (`status_changed`, with the old and new), holding its lease row: a
    /// live hold goes on; a resource that becomes available is handed to its first waiter.
    async fn set_status(&self, id: ResourceId, status: Status, actor: &Actor) -> Result<Resource, StoreError>;

    /// Deletes a resource and its lease (`resource_deleted`) by `hhs_core::lease::retire`: refused while a hold
    /// is live (`LockHeld`) or a lock-delay (of `lock_delay` for its type) runs (`LockDelay`); a lapse nobody
    /// recorded is recorded first (`expired`). The name's last token is kept as its floor.
    async fn delete_resource(&self, id: ResourceId, actor: &Actor) -> Result<Resource, StoreError>;

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError>;
}

#[async_trait]
impl<D: Dialect> ResourceStore for SqlStore<D> {
    async fn create_resource(
        &self,
        id: ResourceId,
        ty: &ResourceType,
        ident: &Identifier,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<Resource, StoreError> {
        let (mut tx, now) = self.begin().await?;
        Self::exec(&mut tx, ENSURE_TYPE, TypeRow { name: ty.clone(), policy: *seed, updated_at_ms: now.0 }.args())
            .await?;
        let policy = Self::type_row(&mut tx, ty, "").await?.ok_or(StoreError::NotFound)?.policy;
        // A new resource starts in its type's default status.
        let resource = Resource {
            id,
            resource_type: ty.clone(),
            identifier: ident.clone(),
            created_at: now,
            status: policy.default_status,
            policy,
        };
        let status = Arg::text(resource.status.code());
        let args = vec![
            Arg::Uuid(Some(id.0)),
            Arg::text(ty.as_str()),
            Arg::text(ident.as_str()),
            Arg::Int(Some(now.0)),
            status,
        ];
        Self::exec(&mut tx, INSERT_RESOURCE, args).await?;
        Self::exec(&mut tx, INSERT_LEASE, vec![Arg::Uuid(Some(id.0))]).await?;
        Self::take_name(&mut tx, &resource, FencingToken(0)).await?;
        Self::insert_event(&mut tx, resource.event(LogKind::ResourceCreated, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(resource)
    }

    async fn update_resource(&self, id: ResourceId, ident: &Identifier, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, lease, now) = self.lock_lease(id).await?;
        Self::give_up_name(&mut tx, &resource, lease.last_token).await?;
        Self::exec(&mut tx, UPDATE_IDENTIFIER, vec![Arg::Uuid(Some(id.0)), Arg::text(ident.as_str())]).await?;
        resource.identifier = ident.clone();
        Self::take_name(&mut tx, &resource, lease.last_token).await?;
        Self::insert_event(&mut tx, resource.event(LogKind::ResourceUpdated, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(resource)
    }

    async fn set_status(&self, id: ResourceId, status: Status, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, mut resource, lease, now) = self.lock_lease(id).await?;
        let from = resource.status;
        if from == status {
            tx.commit().await?;
            return Ok(resource);
        }
        Self::exec(&mut tx, UPDATE_STATUS, vec![Arg::Uuid(Some(id.0)), Arg::text(status.code())]).await?;
        resource.status = status;
        let detail = Detail::Status(StatusDetail { from, to: status });
        Self::insert_event(
            &mut tx,
            EventView { resource_id: Some(id), ..EventView::new(LogKind::StatusChanged, now, actor, detail) },
        )
        .await?;
        let (_, changes, _) = Self::serve_queue(&mut tx, &resource, &lease, now).await?;
        self.commit(tx, changes).await?;
        Ok(resource)
    }

    async fn delete_resource(&self, id: ResourceId, actor: &Actor) -> Result<Resource, StoreError> {
        let (mut tx, resource, lease, now) = self.lock_lease(id).await?;
        let outcome = retire(&lease, now, resource.policy.lock_delay()).map_err(StoreError::Denied)?;
        // No hand-over: the resource goes (its waiters with it).
        Self::write(&mut tx, &lease, &outcome, actor).await?;
        Self::give_up_name(&mut tx, &resource, lease.last_token).await?;
        Self::exec(&mut tx, DELETE_RESOURCE, vec![Arg::Uuid(Some(id.0))]).await?;
        Self::insert_event(&mut tx, resource.event(LogKind::ResourceDeleted, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(resource)
    }

    async fn resources(&self, filter: &ResourceFilter) -> Result<Vec<Resource>, StoreError> {
        let (statement, args) = resources_query(filter);
        self.read(&statement, args).await
    }
}

impl<D: Dialect> SqlStore<D> {
    /// Gives up a resource's name: its last token becomes the name's floor.
    pub(super) async fn give_up_name(
        tx: &mut Transaction<'static, D>,
        r: &Resource,
        last: FencingToken,
    ) -> Result<(), StoreError> {
        let args =
            vec![Arg::text(r.resource_type.as_str()), Arg::text(r.identifier.as_str()), Arg::Int(Some(last.to_i64()))];
        Self::exec(tx, RAISE_FLOOR, args).await.map(drop)
    }

    /// Takes a name: the lease continues above the name's floor.
    pub(super) async fn take_name(
        tx: &mut Transaction<'static, D>,
        r: &Resource,
        last: FencingToken,
    ) -> Result<(), StoreError> {
        let args = vec![Arg::text(r.resource_type.as_str()), Arg::text(r.identifier.as_str())];
        let floor: Option<(i64,)> = Self::fetch(&mut **tx, SELECT_FLOOR, args).await?.pop();
        let raised = token_floor(last, floor.and_then(|(f,)| FencingToken::from_i64(f)));
        if raised > last {
            Self::exec(tx, SET_LAST_TOKEN, vec![Arg::Uuid(Some(r.id.0)), Arg::Int(Some(raised.to_i64()))]).await?;
        }
        Ok(())
    }
}

/// Resources with their types' policy.
const SELECT_RESOURCES: &str = "SELECT r.id, r.type, r.identifier, r.created_at_ms, r.status, t.lock_delay_ms, t.min_ttl_seconds, \
     t.max_ttl_seconds, t.default_ttl_seconds, t.booking_max_seconds, t.default_status FROM resources r JOIN resource_types t ON t.name = r.type";

pub const INSERT_RESOURCE: &str =
    "INSERT INTO resources (id, type, identifier, created_at_ms, status) VALUES ($1, $2, $3, $4, $5)";

pub const INSERT_LEASE: &str = "INSERT INTO leases (resource_id) VALUES ($1)";

pub const UPDATE_IDENTIFIER: &str = "UPDATE resources SET identifier = $2 WHERE id = $1";

pub const UPDATE_STATUS: &str = "UPDATE resources SET status = $2 WHERE id = $1";

pub const DELETE_RESOURCE: &str = "DELETE FROM resources WHERE id = $1";

/// Fencing-token floors of names given up (see `hhs_core::lease::token_floor`): raised, never lowered.
pub const RAISE_FLOOR: &str = "INSERT INTO token_floors (type, identifier, last_token) VALUES ($1, $2, $3) \
     ON CONFLICT (type, identifier) DO UPDATE SET last_token = \
     CASE WHEN excluded.last_token > token_floors.last_token THEN excluded.last_token ELSE token_floors.last_token END";

pub const SELECT_FLOOR: &str = "SELECT last_token FROM token_floors WHERE type = $1 AND identifier = $2";

pub const SET_LAST_TOKEN: &str = "UPDATE leases SET last_token = $2 WHERE resource_id = $1";

pub fn resources_query(f: &ResourceFilter) -> (String, Vec<Arg>) {
    let mut q = Filter::default();
    if let Some(t) = &f.resource_type {
        q.push("r.type = {}", Arg::text(t.as_str()));
    }
    if let Some(i) = &f.identifier {
        q.push("r.identifier = {}", Arg::text(i.as_str()));
    }
    if let Some(after) = f.after {
        q.push("r.id > {}", Arg::Uuid(Some(after.0)));
    }
    q.finish(SELECT_RESOURCES, "ORDER BY r.id", Some(f.limit))
}
