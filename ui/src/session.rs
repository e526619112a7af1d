//! Who is signed in. Only the API key is kept, as plain text in the tab's session storage under `hhs.api_key`
//! (gone when the tab closes; "sign out" removes it); the principal and role are asked of the server at every
//! sign-in.

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

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

pub fn stored_key() -> Option<String> {
    storage()?.get_item(KEY).ok()?.filter(|k| !k.is_empty())
}

pub fn remember(key: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(KEY, key);
    }
}

pub fn forget() {
    if let Some(s) = storage() {
        let _ = s.remove_item(KEY);
    }
}
