//! Resource types and their policies (`hhs_core::TypePolicy`): every change is a `type_updated` event with the
//! old and new values, two changes to one type apply one after the other (its row is held).

use async_trait::async_trait;
use hhs_core::wire::{Detail, EventView, LogKind, TypeDetail, TypeView};
use hhs_core::{Millis, Policy, ResourceType, TypeChange, TypePolicy};
use sqlx::Transaction;

use super::dialect::Dialect;
use super::rows::Arg;
use super::sql_store::SqlStore;
use super::{Actor, StoreError};

/// Resource types.
#[async_trait]
pub trait TypeStore: Send + Sync + 'static {
    /// Every resource type and its policy, by name.
    async fn types(&self) -> Result<Vec<TypeRow>, StoreError>;

    /// Applies `change` to a type's policy (a new type starts from `seed`) and records `type_updated` with the
    /// old and new values, in one transaction. [`StoreError::Invalid`] if the result breaks the policy rule.
    async fn put_type(
        &self,
        name: &ResourceType,
        change: &TypeChange,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<TypeRow, StoreError>;

    /// Fills the rows nobody has set (made by the migration) and makes the ones `seed` names, from the process's
    /// flags; never changes a set row. Each change is a `type_updated` event. Returns the rows it changed.
    async fn seed_types(&self, seed: &Policy, actor: &Actor) -> Result<Vec<TypeRow>, StoreError>;
}

#[async_trait]
impl<D: Dialect> TypeStore for SqlStore<D> {
    async fn types(&self) -> Result<Vec<TypeRow>, StoreError> {
        self.read(&format!("{SELECT_TYPES} ORDER BY name"), vec![]).await
    }

    async fn put_type(
        &self,
        name: &ResourceType,
        change: &TypeChange,
        seed: &TypePolicy,
        actor: &Actor,
    ) -> Result<TypeRow, StoreError> {
        let (mut tx, now) = self.begin().await?;
        // The type's row is held, so two changes to one type apply one after the other.
        let old = Self::type_row(&mut tx, name, &D::lock("resource_types")).await?;
        let policy = old.as_ref().map_or(seed, |o| &o.policy).apply(change).map_err(StoreError::Invalid)?;
        let new = TypeRow { name: name.clone(), policy, updated_at_ms: now.0 };
        Self::exec(&mut tx, PUT_TYPE, new.args()).await?;
        Self::insert_event(&mut tx, Self::type_event(old.as_ref(), &new, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(new)
    }

    async fn seed_types(&self, seed: &Policy, actor: &Actor) -> Result<Vec<TypeRow>, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let rows: Vec<TypeRow> = Self::fetch(&mut *tx, SELECT_TYPES, vec![]).await?;
        let named = seed.lock_delays.keys().filter_map(|n| ResourceType::parse(n).ok());
        let absent: Vec<ResourceType> = named.filter(|n| !rows.iter().any(|r| &r.name == n)).collect();
        let mut changed = vec![];
        for (old, name) in rows
            .iter()
            .filter(|r| r.updated_at_ms == 0)
            .map(|r| (Some(r), &r.name))
            .chain(absent.iter().map(|n| (None, n)))
        {
            let new = TypeRow { name: name.clone(), policy: seed.for_type(name.as_str()), updated_at_ms: now.0 };
            // Guarded: a replica starting at the same moment may have seeded it; then this changes nothing.
            if Self::exec(&mut tx, if old.is_some() { SEED_TYPE } else { ENSURE_TYPE }, new.args()).await? == 1 {
                Self::insert_event(&mut tx, Self::type_event(old, &new, now, actor)).await?;
                changed.push(new);
            }
        }
        self.commit(tx, vec![]).await?;
        Ok(changed)
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A type's row (`lock`: this dialect's row lock, or "").
    pub(super) async fn type_row(
        tx: &mut Transaction<'static, D>,
        name: &ResourceType,
        lock: &str,
    ) -> Result<Option<TypeRow>, StoreError> {
        let statement = format!("{SELECT_TYPES} WHERE name = $1{lock}");
        Ok(Self::fetch(&mut **tx, &statement, vec![Arg::text(name.as_str())]).await?.pop())
    }

    pub(super) fn type_event(old: Option<&TypeRow>, new: &TypeRow, at: Millis, actor: &Actor) -> EventView {
        let detail = TypeDetail { name: new.name.as_str().into(), old: old.map(TypeRow::view), new: new.view() };
        EventView::new(LogKind::TypeUpdated, at, actor, Detail::Type(detail))
    }
}

pub const SELECT_TYPES: &str = "SELECT name, lock_delay_ms, min_ttl_seconds, max_ttl_seconds, default_ttl_seconds, booking_max_seconds, default_status, updated_at_ms \
     FROM resource_types";

/// A type's row, made with `$2`…`$8` if it is missing; an existing row is left as it is.
pub const ENSURE_TYPE: &str = "INSERT INTO resource_types (name, lock_delay_ms, min_ttl_seconds, max_ttl_seconds, \
     default_ttl_seconds, updated_at_ms, booking_max_seconds, default_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO NOTHING";

/// A row nobody has set yet (`updated_at_ms` 0) takes the seed `$2`…`$8`; a set row is left as it is.
pub const SEED_TYPE: &str = "UPDATE resource_types SET lock_delay_ms = $2, min_ttl_seconds = $3, max_ttl_seconds = $4, \
     default_ttl_seconds = $5, updated_at_ms = $6, booking_max_seconds = $7, default_status = $8 WHERE name = $1 AND updated_at_ms = 0";

pub const PUT_TYPE: &str = "INSERT INTO resource_types (name, lock_delay_ms, min_ttl_seconds, max_ttl_seconds, \
     default_ttl_seconds, updated_at_ms, booking_max_seconds, default_status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (name) DO UPDATE SET \
     lock_delay_ms = excluded.lock_delay_ms, min_ttl_seconds = excluded.min_ttl_seconds, \
     max_ttl_seconds = excluded.max_ttl_seconds, default_ttl_seconds = excluded.default_ttl_seconds, \
     updated_at_ms = excluded.updated_at_ms, booking_max_seconds = excluded.booking_max_seconds, \
     default_status = excluded.default_status";

/// A resource type's row.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TypeRow {
    #[sqlx(try_from = "String")]
    pub name: ResourceType,
    #[sqlx(flatten)]
    pub policy: TypePolicy,
    /// 0: never set (made by the migration; the first start fills it from its flags).
    pub updated_at_ms: i64,
}

impl TypeRow {
    pub fn view(&self) -> TypeView {
        TypeView::of(self.name.as_str(), &self.policy)
    }

    /// The arguments of [`ENSURE_TYPE`] and [`PUT_TYPE`].
    pub fn args(&self) -> Vec<Arg> {
        let p = &self.policy;
        let ints = [p.lock_delay_ms, p.min_ttl_seconds, p.max_ttl_seconds, p.default_ttl_seconds, self.updated_at_ms];
        let ints = ints.into_iter().map(Some).chain([p.booking_max_seconds]).map(Arg::Int);
        [vec![Arg::text(self.name.as_str())], ints.collect(), vec![Arg::text(p.default_status.code())]].concat()
    }
}
