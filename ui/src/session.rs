//! Who is signed in. Only the API key is kept, in the tab's session storage (gone when the tab closes; "sign
//! out" removes it); the principal and role are asked of the server at every sign-in.

use gloo::storage::{SessionStorage, Storage};
use hhs_core::Role;

use crate::api::Api;

const KEY: &str = "hhs.api_key";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub api: Api,
    pub principal: String,
    pub role: Role,
}

impl Session {
    /// Whether the key may acquire, heartbeat and release.
    pub fn can_hold(&self) -> bool {
        self.role.allows(Role::Client)
    }

    pub fn is_admin(&self) -> bool {
        self.role.allows(Role::Admin)
    }
}

pub fn stored_key() -> Option<String> {
    SessionStorage::get::<String>(KEY).ok().filter(|k| !k.is_empty())
}

pub fn remember(key: &str) {
    let _ = SessionStorage::set(KEY, key);
}

pub fn forget() {
    SessionStorage::delete(KEY);
}
