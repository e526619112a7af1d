//! Validation of ids, TTLs and request bodies: every bad input gets its own stable code, none panics.

use hhs_core::wire::{parse_body, AcquireRequest, CreateResourceRequest, HolderRequest};
use hhs_core::{ErrorCode, OwnerId, ResourceId, Ttl, TtlBounds};

#[test]
fn owner_ids() {
    assert!(OwnerId::parse("clinic-north:ws-12@ward.3_a").is_ok());
    assert!(OwnerId::parse(&"a".repeat(128)).is_ok());
    for bad in ["", " a", "a b", "a\n", "ä", &"a".repeat(129)] {
        assert_eq!(OwnerId::parse(bad).unwrap_err().code, ErrorCode::InvalidOwnerId, "{bad:?}");
    }
}

#[test]
fn ttls_respect_bounds_and_whole_seconds() {
    let b = TtlBounds::default();
    assert_eq!(Ttl::from_seconds_f64(5.0, &b).unwrap().seconds(), 5);
    assert_eq!(Ttl::from_seconds_f64(86_400.0, &b).unwrap().seconds(), 86_400);
    for bad in [4.0, 86_401.0, -1.0, 30.5, f64::NAN, f64::INFINITY, 1e300] {
        assert_eq!(Ttl::from_seconds_f64(bad, &b).unwrap_err().code, ErrorCode::InvalidTtl, "{bad}");
    }
}

#[test]
fn resource_ids() {
    assert!(ResourceId::parse("0190a0c4-7a52-7000-8000-000000000001").is_ok());
    assert_eq!(ResourceId::parse("bed-12").unwrap_err().code, ErrorCode::InvalidResourceId);
}

#[test]
fn body_errors_are_classified() {
    assert_eq!(parse_body::<AcquireRequest>(b"{not json").unwrap_err().code, ErrorCode::InvalidJson);
    assert_eq!(parse_body::<AcquireRequest>(b"").unwrap_err().code, ErrorCode::InvalidJson);
    assert_eq!(parse_body::<AcquireRequest>(b"[]").unwrap_err().code, ErrorCode::ValidationFailed);
    // Serde reads a struct from an array of its fields; a body is an object or nothing.
    let array = parse_body::<hhs_core::TypeChange>(b"[null, null]").unwrap_err();
    assert_eq!(
        (array.code, array.message.as_str()),
        (ErrorCode::ValidationFailed, "the request body must be a JSON object")
    );
    assert_eq!(parse_body::<HolderRequest>(br#"["x", "a", null]"#).unwrap_err().code, ErrorCode::ValidationFailed);
    let quoted = parse_body::<AcquireRequest>(br#"{"resource_id":"x","owner_id":"a","ttl_seconds":"30"}"#).unwrap_err();
    assert_eq!(quoted.code, ErrorCode::ValidationFailed);
    assert!(quoted.message.contains(r#""30", expected a number"#), "JSON's words, not Rust's: {}", quoted.message);
    let unknown = parse_body::<HolderRequest>(br#"{"resource_id":"x","owner_id":"a","extra":1}"#).unwrap_err();
    assert_eq!(unknown.code, ErrorCode::ValidationFailed);
    assert!(unknown.message.contains("extra"));
    let ok: CreateResourceRequest = parse_body(br#"{"type":"bed","identifier":"Ward 3, bed 12"}"#).unwrap();
    assert!(ok.validate().is_ok());
    let bad: CreateResourceRequest = parse_body(br#"{"type":"Bed!","identifier":"x"}"#).unwrap();
    assert_eq!(bad.validate().unwrap_err().code, ErrorCode::InvalidResourceType);
}

#[test]
fn acquire_validation_names_the_field() {
    let b = TtlBounds::default();
    let req = |rid: &str, owner: &str, ttl: f64| AcquireRequest {
        resource_id: rid.into(),
        owner_id: owner.into(),
        ttl_seconds: Some(ttl),
        session_id: None,
        wait_seconds: None,
    };
    let rid = "0190a0c4-7a52-7000-8000-000000000001";
    assert!(req(rid, "a", 30.0).validate(&b).is_ok());
    let no_ttl = AcquireRequest {
        resource_id: rid.into(),
        owner_id: "a".into(),
        ttl_seconds: None,
        session_id: None,
        wait_seconds: None,
    };
    assert_eq!(no_ttl.validate(&b).unwrap().ttl, None, "omitted: the model decides");
    assert_eq!(req("nope", "a", 30.0).validate(&b).unwrap_err().code, ErrorCode::InvalidResourceId);
    assert_eq!(req(rid, "a b", 30.0).validate(&b).unwrap_err().code, ErrorCode::InvalidOwnerId);
    assert_eq!(req(rid, "a", 1.0).validate(&b).unwrap_err().code, ErrorCode::InvalidTtl);
}

#[test]
fn every_code_has_a_4xx_or_5xx_status_and_round_trips() {
    let e = hhs_core::ApiError::new(ErrorCode::LockHeld, "x");
    let json = serde_json::to_string(&hhs_core::error::ErrorBody::from(e)).unwrap();
    assert_eq!(json, r#"{"error":{"code":"lock_held","message":"x"}}"#);
    assert_eq!(ErrorCode::LockHeld.http_status(), 409);
    assert_eq!(serde_json::to_value(ErrorCode::NotYourHold).unwrap(), ErrorCode::NotYourHold.as_str());
}

#[test]
fn api_keys_and_bearer_headers() {
    use hhs_core::auth::{format_key, parse_bearer, parse_key};
    let key = format_key("0123456789ab", &"f".repeat(64));
    let parts = parse_key(&key).unwrap();
    assert_eq!((parts.key_id, parts.secret.len()), ("0123456789ab", 64));
    assert!(parse_key("hhs_0123456789ab_short").is_none());
    assert!(parse_key(&key.to_uppercase()).is_none());
    assert!(parse_key(&format!("{key}x")).is_none());
    assert!(parse_bearer(Some(&format!("Bearer {key}"))).is_ok());
    for bad in [None, Some(""), Some("Basic abc"), Some("Bearer"), Some("Bearer hhs_x_y")] {
        let e = parse_bearer(bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unauthenticated);
        assert_eq!(e.http_status(), 401);
    }
    assert!(hhs_core::Role::Admin.allows(hhs_core::Role::Client));
    assert!(!hhs_core::Role::Viewer.allows(hhs_core::Role::Client));
}

#[test]
fn route_table_matches_literals_before_parameters() {
    use hhs_core::wire::endpoints::{find, Api, Match, Param};
    let Match::Found(r, None) = find("POST", "/api/locks/acquire") else { panic!() };
    assert_eq!((r.api, r.body), (Api::Acquire, true));
    let Match::Found(r, Some((Param::ResourceId, "abc"))) = find("GET", "/api/locks/abc") else { panic!() };
    assert_eq!(r.path, "/api/locks/{resource_id}");
    assert_eq!(find("GET", "/api/locks/acquire"), Match::MethodNotAllowed);
    assert_eq!(find("PUT", "/api/locks/acquire"), Match::MethodNotAllowed);
    assert_eq!(find("GET", "/api/nothing"), Match::NotFound);
    assert_eq!(find("GET", "/api/locks/a/b"), Match::NotFound);
    assert!(matches!(find("DELETE", "/api/keys/0123456789ab"), Match::Found(_, Some((Param::KeyId, _)))));
    // The Allow header of a 405, by the same precedence.
    use hhs_core::wire::endpoints::allowed_methods;
    assert_eq!(allowed_methods("/api/locks/acquire"), ["POST"]);
    assert_eq!(allowed_methods("/api/resources"), ["GET", "POST"]);
    assert_eq!(allowed_methods("/api/resources/abc"), ["GET", "PATCH", "DELETE"]);
    assert!(allowed_methods("/api/nothing").is_empty());
}

#[test]
fn a_booking_refuses_without_promising_a_renewal_that_cannot_shorten_it() {
    let at = hhs_core::Millis(1_764_000_000_000);
    let refusal = |booked| {
        hhs_core::ApiError::from(hhs_core::Denied::LockHeld {
            holder: OwnerId::parse("theatre-3").unwrap(),
            expires_at: at,
            booked,
        })
    };
    let booked = refusal(true);
    assert_eq!(booked.code, ErrorCode::LockHeld);
    assert!(booked.message.starts_with("the resource is booked by theatre-3 until "), "{}", booked.message);
    assert!(!booked.message.contains("renew"), "{}", booked.message);
    assert!(refusal(false).message.ends_with("unless they renew"));
}
