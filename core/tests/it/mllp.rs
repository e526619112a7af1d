//! The MLLP listener's trust rules, and HL7 repeats: which transport a configuration gets (or why it may not
//! start), which principal a certificate is, and when a message repeats a recorded one.

use hhs_core::hl7::{canonical, expired_before, recorded, repeat, AckCode, Answered, Repeat, DEFAULT_REPEAT_WINDOW};
use hhs_core::mllp::{transport, ClientMap, Listen, Refused, Transport};
use hhs_core::Millis;
use proptest::prelude::*;

#[test]
fn off_loopback_only_tls_with_mapped_clients_starts() {
    let tls = Listen { cert: true, key: true, client_ca: true, mapped: 1, ..Listen::default() };
    assert_eq!(transport(&tls), Ok(Transport::Tls));
    assert_eq!(
        transport(&Listen { loopback: true, ..tls.clone() }),
        Ok(Transport::Tls),
        "TLS configured applies on loopback too"
    );
    assert!(transport(&Listen { mapped: 0, ..tls.clone() }).unwrap_err().contains("--mllp-client"));
    assert!(transport(&Listen { client_ca: false, ..tls.clone() }).unwrap_err().contains("all three"));
    let plain = transport(&Listen::default()).unwrap_err();
    assert!(
        plain.contains("--mllp-tls-cert") && plain.contains("--mllp-client-ca") && plain.contains("127.0.0.1"),
        "{plain}"
    );
    match transport(&Listen { loopback: true, ..Listen::default() }) {
        Ok(Transport::Plain { principal }) => assert_eq!(principal.as_str(), "mllp-loopback"),
        other => panic!("{other:?}"),
    }
    assert!(
        transport(&Listen { loopback: true, plain_principal: Some("hhs:mllp"), ..Listen::default() }).is_err(),
        "reserved"
    );
}

#[test]
fn a_certificate_is_the_principal_its_names_map_to() {
    let map =
        ClientMap::parse(["adt.hospital.example=adt-feed", "spiffe://hospital/lab=lab-feed", "ADT Engine=adt-feed"])
            .unwrap();
    assert_eq!(map.principal(&["adt.hospital.example"]).unwrap().as_str(), "adt-feed");
    assert_eq!(map.principal(&["ADT Engine", "adt.hospital.example"]).unwrap().as_str(), "adt-feed");
    assert_eq!(map.principal(&["spiffe://hospital/lab", "x"]).unwrap().as_str(), "lab-feed");
    assert_eq!(map.principal(&["adt.hospital.example", "spiffe://hospital/lab"]), Err(Refused::Ambiguous));
    assert_eq!(map.principal(&["someone.else"]), Err(Refused::Unmapped));
    assert_eq!(map.principal(&[]), Err(Refused::Unmapped));
    for bad in [&["nope"][..], &["=p"], &["a=hhs:x"], &["a=anonymous"], &["a=p", "a=q"], &["a=bad principal"]] {
        assert!(ClientMap::parse(bad.iter().copied()).is_err(), "{bad:?}");
    }
}

#[test]
fn a_repeat_is_the_same_content_within_the_window() {
    let window = DEFAULT_REPEAT_WINDOW;
    assert_eq!(window, Millis(604_800_000));
    let at = Millis(1_000_000_000_000);
    let s = Answered { digest: "d1".into(), ack: "MSH|…".into(), at };
    assert_eq!(repeat(None, "d1", at, window), Repeat::New);
    assert_eq!(repeat(Some(&s), "d1", at, window), Repeat::Same);
    assert_eq!(repeat(Some(&s), "d2", Millis(at.0 + 1), window), Repeat::Reused);
    assert_eq!(repeat(Some(&s), "d1", Millis(at.0 + window.0 - 1), window), Repeat::Same);
    assert_eq!(repeat(Some(&s), "d1", Millis(at.0 + window.0), window), Repeat::New, "expired at the window's end");
    assert_eq!(repeat(Some(&s), "d2", Millis(at.0 + window.0), window), Repeat::New);
    assert_eq!(expired_before(Millis(at.0 + window.0), window), at);
    assert!(recorded(AckCode::AA) && !recorded(AckCode::AE) && !recorded(AckCode::AR));
    assert_eq!(canonical("MSH|a\r\nNPU|b\n"), "MSH|a\rNPU|b\r");
    assert_eq!(canonical("MSH|a\rNPU|b"), canonical("MSH|a\r\rNPU|b\r"));
    assert_ne!(canonical("MSH|a|20261127\rNPU|b"), canonical("MSH|a|20261128\rNPU|b"));
}

proptest! {
    /// Whatever the record and the clock: a record is only ever matched within its window, and then exactly by
    /// its digest.
    #[test]
    fn repeats_follow_the_window_and_the_digest(at in 0i64..1_000_000, now in 0i64..2_000_000, window in 0i64..1_000_000, same: bool) {
        let s = Answered { digest: "d".into(), ack: String::new(), at: Millis(at) };
        let got = repeat(Some(&s), if same { "d" } else { "e" }, Millis(now), Millis(window));
        let live = at > now - window;
        prop_assert_eq!(got, match (live, same) { (false, _) => Repeat::New, (true, true) => Repeat::Same, (true, false) => Repeat::Reused });
    }

    #[test]
    fn canonical_ignores_only_segment_terminators(segs in proptest::collection::vec("[A-Z|^~&0-9]{1,12}", 1..6), crlf: bool) {
        let sep = if crlf { "\r\n" } else { "\n" };
        prop_assert_eq!(canonical(&segs.join(sep)), canonical(&segs.join("\r")));
    }
}
