//! Rate-limit buckets: which client a request counts against when it has no accepted key of its own.
//!
//! A bucket per address is right for IPv4, where a host has one address (or a whole NAT shares one), and wrong
//! for IPv6, where a single host is routinely given a /64 and may send every request from a fresh address in
//! it: bucketed per address, it would get a fresh quota per request. So IPv6 counts per /64, the smallest
//! prefix a site is assigned; IPv4 (and IPv4 written as IPv4-mapped IPv6) per address.

use alloc::format;
use alloc::string::{String, ToString};
use core::net::{IpAddr, Ipv6Addr};

/// The bucket every request without a readable client address shares: garbage cannot earn a bucket of its own.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The bucket of the client address `text` (the value of `CF-Connecting-IP`: one address, as text).
///
/// * IPv4 `a.b.c.d` → `a.b.c.d`;
/// * IPv6 → its /64 in canonical form (RFC 5952, lower case, `::` for the longest zero run), e.g. `2001:db8:1:2::/64`;
/// * IPv4-mapped IPv6 (`::ffff:a.b.c.d`) → `a.b.c.d`, the same bucket as the IPv4 address;
/// * anything else (empty, a list, a host name, a port, a zone) → [`UNKNOWN_CLIENT`].
///
/// Surrounding whitespace and one pair of brackets (`[2001:db8::1]`) are allowed. Never panics.
pub fn client_bucket(text: &str) -> String {
    let t = text.trim();
    let t = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(t);
    match t.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        Err(_) => String::from(UNKNOWN_CLIENT),
    }
}
