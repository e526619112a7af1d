//! The edge's per-client rate-limit bucket: IPv6 by /64, IPv4 by address, garbage in one shared bucket.

use std::net::{Ipv4Addr, Ipv6Addr};

use hhs_core::rate::{client_bucket, UNKNOWN_CLIENT};
use proptest::prelude::*;

#[test]
fn examples() {
    assert_eq!(client_bucket("203.0.113.7"), "203.0.113.7");
    assert_eq!(client_bucket(" 203.0.113.7 "), "203.0.113.7");
    assert_eq!(client_bucket("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert_eq!(client_bucket("2001:DB8:1:2::ffff"), "2001:db8:1:2::/64", "upper case and short forms normalise");
    assert_eq!(client_bucket("2001:0db8:0001:0002:0000:0000:0000:0001"), "2001:db8:1:2::/64");
    assert_eq!(client_bucket("[2001:db8:1:2::1]"), "2001:db8:1:2::/64");
    assert_eq!(client_bucket("2001:db8::1"), "2001:db8::/64");
    assert_eq!(client_bucket("::1"), "::/64");
    assert_eq!(client_bucket("::ffff:203.0.113.7"), "203.0.113.7", "IPv4-mapped is the IPv4 address");
    assert_eq!(client_bucket("::ffff:cb00:7107"), "203.0.113.7");
    for garbage in [
        "",
        " ",
        "unknown",
        "example.org",
        "203.0.113.7, 198.51.100.1",
        "203.0.113.7:443",
        "fe80::1%eth0",
        "[::1",
        "1.2.3",
        "2001:db8::1/64",
        "\u{0}",
        "ｆｅ８０::1",
    ] {
        assert_eq!(client_bucket(garbage), UNKNOWN_CLIENT, "{garbage:?}");
    }
}

fn v6_text(segments: [u16; 8], upper: bool) -> String {
    let s = Ipv6Addr::from(segments).to_string();
    if upper {
        s.to_uppercase()
    } else {
        s
    }
}

proptest! {
    #[test]
    fn two_addresses_in_one_slash_64_share_a_bucket(prefix in any::<[u16; 4]>(), a in any::<[u16; 4]>(), b in any::<[u16; 4]>(), upper in any::<bool>()) {
        let join = |iid: [u16; 4]| [prefix[0], prefix[1], prefix[2], prefix[3], iid[0], iid[1], iid[2], iid[3]];
        let (x, y) = (join(a), join(b));
        // IPv4-mapped addresses are IPv4 clients (their own rule, below).
        prop_assume!(Ipv6Addr::from(x).to_ipv4_mapped().is_none() && Ipv6Addr::from(y).to_ipv4_mapped().is_none());
        prop_assert_eq!(client_bucket(&v6_text(x, upper)), client_bucket(&v6_text(y, false)));
        prop_assert!(client_bucket(&v6_text(x, upper)).ends_with("/64"));
    }

    #[test]
    fn different_slash_64s_differ(p in any::<[u16; 4]>(), q in any::<[u16; 4]>(), iid in any::<[u16; 4]>()) {
        prop_assume!(p != q);
        let x = [p[0], p[1], p[2], p[3], iid[0], iid[1], iid[2], iid[3]];
        let y = [q[0], q[1], q[2], q[3], iid[0], iid[1], iid[2], iid[3]];
        prop_assume!(Ipv6Addr::from(x).to_ipv4_mapped().is_none() && Ipv6Addr::from(y).to_ipv4_mapped().is_none());
        prop_assert_ne!(client_bucket(&v6_text(x, false)), client_bucket(&v6_text(y, false)));
    }

    #[test]
    fn ipv4_is_by_address_and_its_mapped_form_is_the_same_bucket(a in any::<[u8; 4]>(), b in any::<[u8; 4]>()) {
        let (x, y) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
        prop_assert_eq!(client_bucket(&x.to_string()), x.to_string());
        prop_assert_eq!(client_bucket(&x.to_ipv6_mapped().to_string()), x.to_string());
        prop_assert_eq!(client_bucket(&x.to_string()) == client_bucket(&y.to_string()), a == b);
    }

    #[test]
    fn any_text_gets_a_bucket_without_panicking(text in any::<String>()) {
        let bucket = client_bucket(&text);
        prop_assert!(!bucket.is_empty() && bucket.len() <= 64, "{bucket:?}");
    }

    #[test]
    fn address_like_text_never_panics(text in "[0-9a-fA-F:.\\[\\]% ]{0,60}") {
        let bucket = client_bucket(&text);
        prop_assert!(bucket == UNKNOWN_CLIENT || bucket.parse::<Ipv4Addr>().is_ok() || bucket.ends_with("/64"), "{bucket:?}");
    }
}
