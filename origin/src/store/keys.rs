//! API keys as stored: the secret only as its SHA-256; creating and revoking one is an event.

use async_trait::async_trait;
use hhs_core::wire::{EventView, KeyView, LogKind};
use hhs_core::{Millis, Role};

use super::dialect::Dialect;
use super::rows::Arg;
use super::sql_store::SqlStore;
use super::{Actor, StoreError};

/// API keys.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key and its `key_created` event.
    async fn create_key(&self, key: &KeyRecord, actor: &Actor) -> Result<KeyRecord, StoreError>;

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError>;

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Revokes a key (`key_revoked`); revoking a revoked key changes nothing. `NotFound` for an unknown id.
    async fn revoke_key(&self, id: &str, actor: &Actor) -> Result<KeyRecord, StoreError>;
}

#[async_trait]
impl<D: Dialect> KeyStore for SqlStore<D> {
    async fn create_key(&self, key: &KeyRecord, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let key = KeyRecord { created_at_ms: now.0, ..key.clone() };
        Self::exec(&mut tx, INSERT_KEY, key.args()).await?;
        Self::insert_event(&mut tx, key.event(LogKind::KeyCreated, now, actor)).await?;
        self.commit(tx, vec![]).await?;
        Ok(key)
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.read(SELECT_KEY, vec![Arg::text(id)]).await?.pop())
    }

    async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(&format!("{SELECT_KEYS} ORDER BY created_at_ms, id"), vec![]).await
    }

    async fn revoke_key(&self, id: &str, actor: &Actor) -> Result<KeyRecord, StoreError> {
        let (mut tx, now) = self.begin().await?;
        let changed = Self::exec(&mut tx, REVOKE_KEY, vec![Arg::text(id), Arg::Int(Some(now.0))]).await?;
        let key: KeyRecord =
            Self::fetch(&mut *tx, SELECT_KEY, vec![Arg::text(id)]).await?.pop().ok_or(StoreError::NotFound)?;
        if changed > 0 {
            Self::insert_event(&mut tx, key.event(LogKind::KeyRevoked, now, actor)).await?;
        }
        self.commit(tx, vec![]).await?;
        Ok(key)
    }
}

pub const INSERT_KEY: &str =
    "INSERT INTO api_keys (id, principal, role, secret_sha256, created_at_ms) VALUES ($1, $2, $3, $4, $5)";

pub const SELECT_KEYS: &str = "SELECT id, principal, role, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys";

pub const SELECT_KEY: &str =
    "SELECT id, principal, role, secret_sha256, created_at_ms, revoked_at_ms FROM api_keys WHERE id = $1";

pub const REVOKE_KEY: &str = "UPDATE api_keys SET revoked_at_ms = $2 WHERE id = $1 AND revoked_at_ms IS NULL";

/// An API key as stored: the secret only as its SHA-256.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct KeyRecord {
    pub id: String,
    pub principal: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub secret_sha256: Vec<u8>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

impl KeyRecord {
    pub fn view(&self) -> KeyView {
        KeyView {
            id: self.id.clone(),
            principal: self.principal.clone(),
            role: self.role,
            created_at: Millis(self.created_at_ms).to_utc(),
            revoked_at: self.revoked_at_ms.map(|m| Millis(m).to_utc()),
        }
    }

    /// This key's `key_created`/`key_revoked` entry.
    pub fn event(&self, kind: LogKind, at: Millis, actor: &Actor) -> EventView {
        EventView::of_key(kind, &self.id, &self.principal, self.role, at, actor)
    }

    /// The arguments of [`INSERT_KEY`].
    pub fn args(&self) -> Vec<Arg> {
        let (id, principal, role) = (Arg::text(&self.id), Arg::text(&self.principal), Arg::text(self.role.as_str()));
        vec![id, principal, role, Arg::Bytes(self.secret_sha256.clone()), Arg::Int(Some(self.created_at_ms))]
    }
}
