//! The route table of the HTTP API: which paths exist, which methods each accepts, what body and path
//! parameter each carries. The edge answers 404/405/415/422 from it without a round trip to the origin; a test
//! in the origin checks that the origin serves exactly these routes.

/// The JSON body a route accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    None,
    CreateResource,
    UpdateResource,
    Acquire,
    Holder,
    ForceRelease,
    CreateKey,
    Suggest,
}

/// The kind of a `{…}` path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    ResourceId,
    KeyId,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// With `{resource_id}`/`{key_id}` placeholders.
    pub path: &'static str,
    pub body: Body,
}

pub const ROUTES: &[Route] = &[
    Route { method: "GET", path: "/api/resources", body: Body::None },
    Route { method: "POST", path: "/api/resources", body: Body::CreateResource },
    Route { method: "GET", path: "/api/resources/{resource_id}", body: Body::None },
    Route { method: "PATCH", path: "/api/resources/{resource_id}", body: Body::UpdateResource },
    Route { method: "DELETE", path: "/api/resources/{resource_id}", body: Body::None },
    Route { method: "GET", path: "/api/locks", body: Body::None },
    Route { method: "POST", path: "/api/locks/acquire", body: Body::Acquire },
    Route { method: "POST", path: "/api/locks/heartbeat", body: Body::Holder },
    Route { method: "POST", path: "/api/locks/release", body: Body::Holder },
    Route { method: "POST", path: "/api/locks/force-release", body: Body::ForceRelease },
    Route { method: "GET", path: "/api/locks/{resource_id}", body: Body::None },
    Route { method: "GET", path: "/api/events", body: Body::None },
    Route { method: "GET", path: "/api/events/stream", body: Body::None },
    Route { method: "GET", path: "/api/audit/export", body: Body::None },
    Route { method: "POST", path: "/api/ml/suggest", body: Body::Suggest },
    Route { method: "GET", path: "/api/ml/anomalies", body: Body::None },
    Route { method: "GET", path: "/api/whoami", body: Body::None },
    Route { method: "GET", path: "/api/keys", body: Body::None },
    Route { method: "POST", path: "/api/keys", body: Body::CreateKey },
    Route { method: "DELETE", path: "/api/keys/{key_id}", body: Body::None },
];

/// What the table says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Match<'a> {
    /// The route, and the path parameter's value and kind if it has one.
    Found(&'static Route, Option<(Param, &'a str)>),
    MethodNotAllowed,
    NotFound,
}

/// Matches a path against a pattern; literal segments win over placeholders (`/api/locks/acquire` is not a
/// resource id).
fn matches<'a>(pattern: &str, path: &'a str) -> Option<Option<(Param, &'a str)>> {
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    let mut param = None;
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(param),
            (Some(pp), Some(ss)) => match pp {
                "{resource_id}" if !ss.is_empty() => param = Some((Param::ResourceId, ss)),
                "{key_id}" if !ss.is_empty() => param = Some((Param::KeyId, ss)),
                lit if lit == ss => {}
                _ => return None,
            },
            _ => return None,
        }
    }
}

pub fn find<'a>(method: &str, path: &'a str) -> Match<'a> {
    // Literal routes first, so `/api/locks/acquire` never reads as `/api/locks/{resource_id}`.
    let literal = ROUTES.iter().filter(|r| !r.path.contains('{'));
    let templated = ROUTES.iter().filter(|r| r.path.contains('{'));
    let mut path_exists = false;
    for group in [literal.collect::<alloc::vec::Vec<_>>(), templated.collect()] {
        for route in &group {
            if let Some(param) = matches(route.path, path) {
                if route.method == method {
                    return Match::Found(route, param);
                }
                path_exists = true;
            }
        }
        if path_exists {
            return Match::MethodNotAllowed;
        }
    }
    Match::NotFound
}

/// Everything the edge checks about a matched request before forwarding it, with the origin's codes:
/// the path parameter (422), and for routes with a body the content type (415), size (413), JSON syntax (400),
/// shape (422 `validation_failed`) and fields (422 with the field's code).
pub fn check(
    route: &Route,
    param: Option<(Param, &str)>,
    content_type: Option<&str>,
    body: &[u8],
    bounds: &crate::ttl::TtlBounds,
) -> Result<(), crate::error::ApiError> {
    use crate::api::*;
    use crate::error::{ApiError, ErrorCode};

    if let Some((Param::ResourceId, value)) = param {
        crate::ids::ResourceId::parse(value)?;
    }
    if route.body == Body::None {
        return Ok(());
    }
    if !content_type.is_some_and(is_json_content_type) {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, alloc::format!("request bodies are limited to {MAX_BODY_BYTES} bytes")));
    }
    match route.body {
        Body::None => {}
        Body::CreateResource => {
            parse_body::<CreateResourceRequest>(body)?.validate()?;
        }
        Body::UpdateResource => {
            crate::ids::Identifier::parse(&parse_body::<UpdateResourceRequest>(body)?.identifier)?;
        }
        Body::Acquire => {
            parse_body::<AcquireRequest>(body)?.validate(bounds)?;
        }
        Body::Holder => {
            parse_body::<HolderRequest>(body)?.validate()?;
        }
        Body::ForceRelease => {
            parse_body::<ForceReleaseRequest>(body)?.validate()?;
        }
        Body::CreateKey => {
            parse_body::<CreateKeyRequest>(body)?.validate()?;
        }
        Body::Suggest => {
            parse_body::<SuggestRequest>(body)?.validate()?;
        }
    }
    Ok(())
}
