//! Who may send HL7 v2 over MLLP (IHE ATNA's node authentication as the anchor): off loopback the listener takes
//! only TLS connections whose client certificate a configured CA signed ([`transport`]), and each certificate
//! is one integration principal ([`ClientMap`]) — the principal the messages are attributed to and their
//! repeats are kept under, never the sender named inside a message. The origin does the TLS and reads the
//! certificate's names; these are the rules over what it read.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::Principal;

/// How the listener takes connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Plain TCP: loopback only (a local demo, `cargo xtask dev`), every message by `principal`.
    Plain { principal: Principal },
    /// TLS with a client certificate from a trusted CA, mapped to its principal.
    Tls,
}

/// What the flags configure: whether the address is loopback, which TLS files are given, how many certificate
/// names are mapped, and the principal of plain connections.
#[derive(Clone, Debug, Default)]
pub struct Listen<'a> {
    pub loopback: bool,
    pub cert: bool,
    pub key: bool,
    pub client_ca: bool,
    pub mapped: usize,
    pub plain_principal: Option<&'a str>,
}

/// The listener's transport, or why it must not start (with what to set).
pub fn transport(l: &Listen) -> Result<Transport, String> {
    let parts = [l.cert, l.key, l.client_ca];
    if parts.iter().all(|p| *p) {
        if l.mapped == 0 {
            return Err("--mllp with TLS maps no client certificate to a principal: add --mllp-client NAME=PRINCIPAL (NAME: the certificate's subject CN or a DNS/URI subject alternative name)".into());
        }
        return Ok(Transport::Tls);
    }
    if parts.iter().any(|p| *p) {
        return Err("--mllp TLS needs all three of --mllp-tls-cert, --mllp-tls-key and --mllp-client-ca".into());
    }
    if !l.loopback {
        return Err("--mllp on a non-loopback address requires TLS with client certificates: give --mllp-tls-cert and --mllp-tls-key (the server's certificate and key, PEM), --mllp-client-ca (the CAs that sign clients' certificates, PEM) and --mllp-client NAME=PRINCIPAL for each client; or bind 127.0.0.1".into());
    }
    let name = l.plain_principal.unwrap_or(DEFAULT_PLAIN_PRINCIPAL);
    let principal = Principal::for_key(name).map_err(|e| format!("--mllp-plain-principal {name:?}: {}", e.message))?;
    Ok(Transport::Plain { principal })
}

/// The principal of plain loopback connections unless `--mllp-plain-principal` names another.
pub const DEFAULT_PLAIN_PRINCIPAL: &str = "mllp-loopback";

/// Which principal each client certificate is: by a name it carries (subject CN, DNS or URI SAN).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientMap {
    entries: Vec<(String, Principal)>,
}

/// Why a certificate is not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// None of its names is mapped.
    Unmapped,
    /// Its names are mapped to more than one principal: which is meant cannot be told.
    Ambiguous,
}

impl ClientMap {
    /// `NAME=PRINCIPAL` entries (the flag's form); a principal as a key's (not reserved), a name not empty and
    /// mapped once.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<ClientMap, String> {
        let mut map = ClientMap::default();
        for entry in entries {
            let (name, principal) =
                entry.split_once('=').ok_or_else(|| format!("--mllp-client expects NAME=PRINCIPAL, got {entry:?}"))?;
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("--mllp-client {entry:?}: the certificate name is empty"));
            }
            let principal =
                Principal::for_key(principal.trim()).map_err(|e| format!("--mllp-client {entry:?}: {}", e.message))?;
            if map.entries.iter().any(|(n, _)| n == name) {
                return Err(format!("--mllp-client: {name:?} is mapped twice"));
            }
            map.entries.push((name.to_string(), principal));
        }
        Ok(map)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal of a certificate with these names: every mapped name must map to the same one.
    pub fn principal(&self, names: &[&str]) -> Result<Principal, Refused> {
        let mut found: Option<&Principal> = None;
        for (name, principal) in &self.entries {
            if names.contains(&name.as_str()) {
                match found {
                    Some(p) if p != principal => return Err(Refused::Ambiguous),
                    _ => found = Some(principal),
                }
            }
        }
        found.cloned().ok_or(Refused::Unmapped)
    }
}
