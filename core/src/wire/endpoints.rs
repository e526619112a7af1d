//! Every endpoint of the API, declared once: method, path, request body, response body and the role it needs.
//! Each is a type implementing [`Endpoint`] (the dashboard's client and the client library call through it, so a
//! request and its answer cannot be mismatched) and a row of [`ROUTES`] (the edge answers 404/405 and validates
//! bodies from it without a round trip; the origin builds its router from it, one handler per [`Api`] by an
//! exhaustive match, so it serves exactly these routes).

use alloc::vec::Vec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::Role;
use crate::error::{ApiError, ErrorCode};
use crate::ttl::TtlBounds;
use crate::wire::requests::*;
use crate::wire::views::*;

/// An endpoint: its place in the table and its typed request and response.
pub trait Endpoint {
    const API: Api;
    const METHOD: &'static str;
    /// With `{resource_id}`/`{key_id}` placeholders.
    const PATH: &'static str;
    const ROLE: Role;
    type Request: RequestBody;
    type Response;
}

/// A request body: how the edge checks one before forwarding it (the origin decodes the same type).
pub trait RequestBody: Serialize + DeserializeOwned {
    /// Whether requests carry this body (GET and DELETE send none).
    const PRESENT: bool = true;
    /// The shape (422 `validation_failed`) and the fields (422 with the field's code).
    fn check(body: &[u8], bounds: &TtlBounds) -> Result<(), ApiError>;
}

/// The body of a request that has none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoBody;

impl RequestBody for NoBody {
    const PRESENT: bool = false;
    fn check(_: &[u8], _: &TtlBounds) -> Result<(), ApiError> {
        Ok(())
    }
}

macro_rules! request_bodies {
    ($($ty:ty => |$r:ident, $b:ident| $validate:expr;)*) => {$(
        impl RequestBody for $ty {
            fn check(body: &[u8], $b: &TtlBounds) -> Result<(), ApiError> {
                let $r = parse_body::<$ty>(body)?;
                $validate.map(drop)
            }
        }
    )*};
}

request_bodies! {
    CreateResourceRequest => |r, _b| r.validate();
    UpdateResourceRequest => |r, _b| crate::ids::Identifier::parse(&r.identifier);
    AcquireRequest => |r, b| r.validate(b);
    HolderRequest => |r, _b| r.validate();
    ForceReleaseRequest => |r, _b| r.validate();
    CreateKeyRequest => |r, _b| r.validate();
    crate::policy::TypeChange => |r, _b| r.check();
    SuggestRequest => |r, _b| r.validate();
}

/// `GET /api/events/stream`: Server-Sent Events — `EventView`s with their id, `heartbeat`s (a `LockView`, no id),
/// `resync` when the subscriber fell behind.
pub struct EventStream;

/// `GET /api/audit/export`: newline-delimited JSON, one `EventView` a line, oldest first.
pub struct AuditExport;

/// One row of the table.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub api: Api,
    pub method: &'static str,
    pub path: &'static str,
    pub role: Role,
    /// Whether the request carries a JSON body, and how the edge checks it.
    pub body: bool,
    pub check: fn(&[u8], &TtlBounds) -> Result<(), ApiError>,
}

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.api == other.api
    }
}

macro_rules! endpoints {
    ($($(#[$doc:meta])* $name:ident: $method:literal $path:literal, $req:ty => $resp:ty, $role:ident;)*) => {
        /// Names every endpoint (the origin matches on it exhaustively to pick a handler).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Api { $($name),* }

        $(
            $(#[$doc])*
            pub struct $name;
            impl Endpoint for $name {
                const API: Api = Api::$name;
                const METHOD: &'static str = $method;
                const PATH: &'static str = $path;
                const ROLE: Role = Role::$role;
                type Request = $req;
                type Response = $resp;
            }
        )*

        pub const ROUTES: &[Route] = &[$(Route {
            api: Api::$name,
            method: $method,
            path: $path,
            role: Role::$role,
            body: <$req as RequestBody>::PRESENT,
            check: <$req as RequestBody>::check,
        }),*];
    };
}

endpoints! {
    /// Resources, a page at a time (`?type=`, `?after=`, `?limit=`).
    ListResources: "GET" "/api/resources", NoBody => ResourcePage, Viewer;
    CreateResource: "POST" "/api/resources", CreateResourceRequest => ResourceView, Admin;
    GetResource: "GET" "/api/resources/{resource_id}", NoBody => ResourceView, Viewer;
    /// Renames a resource.
    UpdateResource: "PATCH" "/api/resources/{resource_id}", UpdateResourceRequest => ResourceView, Admin;
    DeleteResource: "DELETE" "/api/resources/{resource_id}", NoBody => ResourceView, Admin;
    /// Leases, a page at a time, with the server time and the event to stream from.
    ListLocks: "GET" "/api/locks", NoBody => LockList, Viewer;
    Acquire: "POST" "/api/locks/acquire", AcquireRequest => LockView, Client;
    Heartbeat: "POST" "/api/locks/heartbeat", HolderRequest => LockView, Client;
    Release: "POST" "/api/locks/release", HolderRequest => LockView, Client;
    ForceRelease: "POST" "/api/locks/force-release", ForceReleaseRequest => LockView, Admin;
    GetLock: "GET" "/api/locks/{resource_id}", NoBody => LockView, Viewer;
    /// The event log in commit order, a page at a time (`?after=`, `?resource_id=`, `?since=`, `?until=`).
    ListEvents: "GET" "/api/events", NoBody => EventPage, Viewer;
    StreamEvents: "GET" "/api/events/stream", NoBody => EventStream, Viewer;
    ExportAudit: "GET" "/api/audit/export", NoBody => AuditExport, Admin;
    Suggest: "POST" "/api/ml/suggest", SuggestRequest => SuggestResponse, Viewer;
    Anomalies: "GET" "/api/ml/anomalies", NoBody => AnomalyList, Viewer;
    WhoAmI: "GET" "/api/whoami", NoBody => WhoAmIView, Viewer;
    ListKeys: "GET" "/api/keys", NoBody => KeyPage, Admin;
    CreateKey: "POST" "/api/keys", CreateKeyRequest => CreatedKey, Admin;
    RevokeKey: "DELETE" "/api/keys/{key_id}", NoBody => KeyView, Admin;
    /// Resource types and their policy.
    ListTypes: "GET" "/api/types", NoBody => TypePage, Viewer;
    GetType: "GET" "/api/types/{type_name}", NoBody => TypeView, Viewer;
    /// Sets a type's policy (creating the type if new): each field optional, the rest unchanged.
    PutType: "PUT" "/api/types/{type_name}", crate::policy::TypeChange => TypeView, Admin;
}

/// The kind of a `{…}` path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    ResourceId,
    KeyId,
    TypeName,
}

/// What the table says about a request.
#[derive(Clone, Copy, Debug, PartialEq)]
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
                "{type_name}" if !ss.is_empty() => param = Some((Param::TypeName, ss)),
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
    for group in [literal.collect::<Vec<_>>(), templated.collect()] {
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
    bounds: &TtlBounds,
) -> Result<(), ApiError> {
    match param {
        Some((Param::ResourceId, value)) => drop(crate::ids::ResourceId::parse(value)?),
        Some((Param::TypeName, value)) => drop(crate::ids::ResourceType::parse(value)?),
        _ => {}
    }
    if !route.body {
        return Ok(());
    }
    if !content_type.is_some_and(is_json_content_type) {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(ErrorCode::PayloadTooLarge, alloc::format!("request bodies are limited to {MAX_BODY_BYTES} bytes")));
    }
    (route.check)(body, bounds)
}
