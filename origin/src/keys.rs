//! API keys: minting and verifying. A key is `hhs_<id>_<secret>`; the secret is 256 bits from the OS's CSPRNG and
//! only its SHA-256 is stored (a random secret needs no slow hash), compared in constant time.

use hhs_core::auth::{format_key, KeyParts, KEY_ID_LEN, SECRET_LEN};
use hhs_core::{Principal, Role};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{Actor, DynStore, KeyRecord, StoreError};

fn random_hex(chars: usize) -> Result<String, StoreError> {
    let mut bytes = vec![0u8; chars / 2];
    getrandom::fill(&mut bytes).map_err(|e| StoreError::Corrupt(format!("no randomness from the OS: {e}")))?;
    Ok(hex::encode(bytes))
}

pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `parts` is the key `record` stores (constant time in the secret).
pub fn verify(record: &KeyRecord, parts: &KeyParts<'_>) -> bool {
    record.id == parts.key_id && bool::from(secret_hash(parts.secret).ct_eq(&record.secret_sha256))
}

/// Mints a key, stores its hash, records `key_created`. Returns the full key — the only time it exists in
/// clear — and the stored record.
pub async fn create(
    store: &DynStore,
    principal: &Principal,
    role: Role,
    actor: &Actor,
) -> Result<(String, KeyRecord), StoreError> {
    let id = random_hex(KEY_ID_LEN)?;
    let secret = random_hex(SECRET_LEN)?;
    let record = KeyRecord {
        id: id.clone(),
        principal: principal.as_str().to_owned(),
        role,
        secret_sha256: secret_hash(&secret),
        created_at_ms: 0,
        revoked_at_ms: None,
    };
    let stored = store.create_key(&record, actor).await?;
    Ok((format_key(&id, &secret), stored))
}
