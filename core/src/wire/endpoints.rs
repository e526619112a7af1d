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
use crate::wire::events::EventPage;
use crate::wire::locks::*;
use crate::wire::queries::*;
use crate::wire::requests::*;
use crate::wire::views::*;

/// An endpoint: its place in the table and its typed request and response.
pub trait Endpoint {
    const API: Api;
    const METHOD: &'static str;
    /// With `{resource_id}`/`{key_id}` placeholders.
    const PATH: &'static str;
    const ROLE: Role;
    /// Its query parameters (`NoBody`: none).
    type Query;
    type Request: RequestBody;
    type Response;
}

pub trait RequestBody: Serialize + DeserializeOwned {
    /// Whether requests carry this body (GET and DELETE send none).
    const PRESENT: bool = true;
    /// An HL7 v2 message (ER7 text) rather than JSON.
    const ER7: bool = false;
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

/// One HL7 v2 message in ER7 (`POST /api/hl7/v2`), as text: sent as `application/hl7-v2` (or
/// `x-application/hl7-v2+er7`, `text/plain`), answered with its `ACK` the same way. Whatever it holds, the
/// answer is an `ACK` (`AR` for what cannot be read), so the edge checks only its media type and size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Er7;

impl RequestBody for Er7 {
    const ER7: bool = true;
    fn check(_: &[u8], _: &TtlBounds) -> Result<(), ApiError> {
        Ok(())
    }
}

/// The answer to an ER7 message: its `ACK`, in ER7, as `application/hl7-v2`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Er7Ack;

/// The media types an ER7 body may be sent as.
pub fn is_er7_content_type(value: &str) -> bool {
    let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(media.as_str(), "application/hl7-v2" | "x-application/hl7-v2+er7" | "text/plain")
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
    UpdateResourceRequest => |r, _b| r.validate();
    AcquireRequest => |r, b| r.validate(b);
    HolderRequest => |r, _b| r.validate();
    ForceReleaseRequest => |r, _b| r.validate();
    CreateKeyRequest => |r, _b| r.validate();
    crate::policy::TypeChange => |r, _b| r.check();
    SuggestRequest => |r, _b| r.validate();
    OpenSessionRequest => |r, b| r.validate(b);
    BookRequest => |r, _b| r.validate();
    AcquireGroupRequest => |r, b| r.validate(b);
    GroupHolderRequest => |r, _b| r.validate();
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
    /// Whether the request carries a body (JSON unless `er7`), and how the edge checks it.
    pub body: bool,
    pub er7: bool,
    pub check: fn(&[u8], &TtlBounds) -> Result<(), ApiError>,
    /// Whether it reads query parameters.
    pub query: bool,
    /// The status of its success.
    pub status: u16,
    /// The errors its own rules can give; [`Route::errors`] adds those of its shape.
    pub own_errors: &'static [ErrorCode],
}

impl PartialEq for Route {
    fn eq(&self, other: &Route) -> bool {
        self.api == other.api
    }
}

/// `$query` if given, else `NoBody`.
macro_rules! or_none {
    () => {
        NoBody
    };
    ($t:ty) => {
        $t
    };
}

macro_rules! given {
    () => {
        false
    };
    ($t:ty) => {
        true
    };
}

/// A route's query check: none without a query type.
macro_rules! query_check {
    ($parser:ident, $q:ident) => {{
        let _ = ($parser, $q);
        Ok(())
    }};
    ($parser:ident, $q:ident, $t:ty) => {
        crate::wire::queries::Query::check(&$parser.parse::<$t>($q)?)
    };
}

macro_rules! endpoints {
    ($($(#[$doc:meta])* $name:ident: $method:literal $path:literal $(? $query:ty)?, $req:ty => $status:literal $resp:ty, $role:ident,
        [$($err:ident),*];)*) => {
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
                type Query = or_none!($($query)?);
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
            er7: <$req as RequestBody>::ER7,
            check: <$req as RequestBody>::check,
            query: given!($($query)?),
            status: $status,
            own_errors: &[$(ErrorCode::$err),*],
        }),*];

        /// The edge's check of a request's query string (`?` and after, without the `?`): parsed by `parser` into
        /// the route's query type and validated as the origin does. A route without query parameters ignores
        /// its query string, as the origin does.
        pub fn check_query(api: Api, query: &str, parser: &impl crate::wire::queries::QueryParser) -> Result<(), ApiError> {
            match api {
                $(Api::$name => query_check!(parser, query $(, $query)?),)*
            }
        }

        /// The JSON Schemas of each endpoint's query, request and response, for the OpenAPI description.
        #[cfg(feature = "openapi")]
        pub(crate) fn documented(api: Api, g: &mut schemars::SchemaGenerator) -> crate::wire::bodies::Bodies {
            match api {
                $(Api::$name => crate::wire::bodies::Bodies::of::<or_none!($($query)?), $req, $resp>(g),)*
            }
        }
    };
}

endpoints! {
    /// Resources, a page at a time.
    ListResources: "GET" "/api/resources" ?ResourceQuery, NoBody => 200 ResourcePage, Viewer,
        [InvalidResourceType, InvalidResourceId];
    CreateResource: "POST" "/api/resources", CreateResourceRequest => 201 ResourceView, Admin,
        [InvalidResourceType, InvalidIdentifier, ResourceExists];
    GetResource: "GET" "/api/resources/{resource_id}", NoBody => 200 ResourceView, Viewer, [ResourceNotFound];
    /// Renames a resource (admin) and/or sets its operational status (admin or integration).
    UpdateResource: "PATCH" "/api/resources/{resource_id}", UpdateResourceRequest => 200 ResourceView, Integration,
        [InvalidIdentifier, ResourceNotFound, ResourceExists];
    /// Sets bed statuses from an HL7 v2 message (`ADT^A20`, `A01`, `A02`, `A03`), answered with its `ACK`.
    Hl7V2: "POST" "/api/hl7/v2", Er7 => 200 Er7Ack, Integration, [];
    /// Deletes a resource that nobody holds and that is not in lock-delay.
    DeleteResource: "DELETE" "/api/resources/{resource_id}", NoBody => 200 ResourceView, Admin,
        [ResourceNotFound, LockHeld, LockDelay];
    /// Leases, a page at a time, with the server time and the event to stream from.
    ListLocks: "GET" "/api/locks" ?LockQuery, NoBody => 200 LockList, Viewer,
        [InvalidOwnerId, InvalidResourceType, InvalidResourceId];
    Acquire: "POST" "/api/locks/acquire", AcquireRequest => 200 LockView, Client,
        [InvalidResourceId, InvalidOwnerId, InvalidTtl, ResourceNotFound, LockHeld, LockDelay, NotYourHold, RenewedBySession,
            HoldBooked, InvalidSessionId, SessionNotFound, SessionEnded, ResourceUnavailable];
    Heartbeat: "POST" "/api/locks/heartbeat", HolderRequest => 200 LockView, Client,
        [InvalidResourceId, InvalidOwnerId, InvalidFencingToken, ResourceNotFound, NotHolder, NotYourHold, LockExpired, StaleToken,
            RenewedBySession, HoldBooked];
    Release: "POST" "/api/locks/release", HolderRequest => 200 LockView, Client,
        [InvalidResourceId, InvalidOwnerId, InvalidFencingToken, ResourceNotFound, NotHolder, NotYourHold, LockExpired, StaleToken];
    /// Several resources for one owner, all or none (locked in one order; a refusal names every blocked member).
    AcquireGroup: "POST" "/api/locks/acquire-group", AcquireGroupRequest => 200 GroupView, Client,
        [InvalidResourceId, InvalidOwnerId, InvalidTtl, InvalidSessionId, ResourceNotFound, GroupBlocked, SessionNotFound, SessionEnded,
            NotYourHold];
    /// Renews every member of a group (all or none).
    HeartbeatGroup: "POST" "/api/locks/heartbeat-group", GroupHolderRequest => 200 GroupView, Client,
        [InvalidOwnerId, GroupNotFound, GroupBlocked];
    /// Releases every live member of a group (all or none).
    ReleaseGroup: "POST" "/api/locks/release-group", GroupHolderRequest => 200 GroupView, Client,
        [InvalidOwnerId, GroupNotFound, GroupBlocked];
    /// Turns the caller's live hold — or every live member of a group, all or none — into a booking until
    /// `until` (no heartbeats; ends `completed` then).
    Book: "POST" "/api/locks/book", BookRequest => 200 Booked, Client,
        [InvalidResourceId, InvalidOwnerId, InvalidFencingToken, ResourceNotFound, NotHolder, NotYourHold, LockExpired, StaleToken,
            GroupNotFound, GroupBlocked];
    ForceRelease: "POST" "/api/locks/force-release", ForceReleaseRequest => 200 LockView, Admin,
        [InvalidResourceId, ResourceNotFound, LockNotHeld];
    GetLock: "GET" "/api/locks/{resource_id}", NoBody => 200 LockView, Viewer, [ResourceNotFound];
    /// The event log in commit order, a page at a time.
    ListEvents: "GET" "/api/events" ?EventQuery, NoBody => 200 EventPage, Viewer, [InvalidResourceId];
    StreamEvents: "GET" "/api/events/stream" ?StreamQuery, NoBody => 200 EventStream, Viewer, [];
    ExportAudit: "GET" "/api/audit/export" ?ExportQuery, NoBody => 200 AuditExport, Admin, [];
    Suggest: "POST" "/api/ml/suggest", SuggestRequest => 200 SuggestResponse, Viewer,
        [InvalidResourceId, InvalidOwnerId, ResourceNotFound];
    Anomalies: "GET" "/api/ml/anomalies" ?AnomalyQuery, NoBody => 200 AnomalyList, Viewer, [InvalidResourceId];
    WhoAmI: "GET" "/api/whoami", NoBody => 200 WhoAmIView, Viewer, [];
    ListKeys: "GET" "/api/keys", NoBody => 200 KeyPage, Admin, [];
    CreateKey: "POST" "/api/keys", CreateKeyRequest => 201 CreatedKey, Admin, [];
    RevokeKey: "DELETE" "/api/keys/{key_id}", NoBody => 200 KeyView, Admin, [KeyNotFound];
    /// Sessions: one keepalive renews every hold taken under it (`session_id` in an acquire).
    ListSessions: "GET" "/api/sessions", NoBody => 200 SessionPage, Viewer, [];
    OpenSession: "POST" "/api/sessions", OpenSessionRequest => 201 SessionView, Client, [InvalidOwnerId, InvalidTtl];
    GetSession: "GET" "/api/sessions/{session_id}", NoBody => 200 SessionView, Viewer, [SessionNotFound];
    /// Renews the session and every live hold under it, in one statement; answers which holds it renewed.
    KeepAlive: "POST" "/api/sessions/{session_id}/keepalive", NoBody => 200 KeepAliveView, Client,
        [SessionNotFound, SessionEnded, NotYourHold];
    /// Closes the session and releases every hold under it.
    CloseSession: "DELETE" "/api/sessions/{session_id}", NoBody => 200 SessionView, Client,
        [SessionNotFound, SessionEnded, NotYourHold];
    /// Resource types and their policy.
    ListTypes: "GET" "/api/types", NoBody => 200 TypePage, Viewer, [];
    GetType: "GET" "/api/types/{type_name}", NoBody => 200 TypeView, Viewer, [TypeNotFound];
    /// Sets a type's policy (creating the type if new): each field optional, the rest unchanged.
    PutType: "PUT" "/api/types/{type_name}", crate::policy::TypeChange => 200 TypeView, Admin, [];
}

impl Route {
    /// Every error this route can answer with: its own, and those of its shape — any request (authentication,
    /// the edge's rate limit and upstream, the database, a bug), a role that may not, a path parameter, a
    /// query, a body.
    pub fn errors(&self) -> Vec<ErrorCode> {
        use ErrorCode::*;
        // Every route refuses some role (an integration key reads nothing; the others need more than a viewer).
        let codes =
            alloc::vec![Unauthenticated, RateLimited, Internal, OriginUnavailable, DatabaseUnavailable, Forbidden];
        let mut codes = codes;
        if self.path.contains("{resource_id}") {
            codes.push(InvalidResourceId);
        }
        if self.path.contains("{type_name}") {
            codes.push(InvalidResourceType);
        }
        if self.path.contains("{session_id}") {
            codes.push(InvalidSessionId);
        }
        if self.query || self.body {
            codes.push(ValidationFailed);
        }
        if self.body {
            codes.extend([InvalidJson, UnsupportedMediaType, PayloadTooLarge]);
        }
        for code in self.own_errors {
            if !codes.contains(code) {
                codes.push(*code);
            }
        }
        codes
    }
}

/// The OpenAPI description of the table: open, like `/healthz`, and outside the table it describes.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The kind of a `{…}` path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    ResourceId,
    KeyId,
    TypeName,
    SessionId,
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
                "{session_id}" if !ss.is_empty() => param = Some((Param::SessionId, ss)),
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

/// The methods a path accepts (the `Allow` header of a 405), by the same precedence as [`find`].
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let literal: Vec<&'static str> =
        ROUTES.iter().filter(|r| !r.path.contains('{') && matches(r.path, path).is_some()).map(|r| r.method).collect();
    if !literal.is_empty() {
        return literal;
    }
    ROUTES.iter().filter(|r| r.path.contains('{') && matches(r.path, path).is_some()).map(|r| r.method).collect()
}

/// How long the origin may keep this (checked) request open on purpose: an acquire's `wait_seconds` in the
/// queue. A proxy in front (the edge) waits that much longer before it calls the origin lost.
pub fn held_open(route: &Route, body: &[u8]) -> crate::time::Millis {
    let wait = (route.api == Api::Acquire)
        .then(|| serde_json::from_slice::<AcquireRequest>(body).ok())
        .flatten()
        .and_then(|r| r.wait_seconds);
    crate::time::Millis(i64::from(wait.unwrap_or(0).min(crate::queue::MAX_WAIT_SECONDS)) * 1000)
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
        Some((Param::SessionId, value)) => drop(crate::ids::SessionId::parse(value)?),
        _ => {}
    }
    if !route.body {
        return Ok(());
    }
    if route.er7 && !content_type.is_some_and(is_er7_content_type) {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the message as Content-Type: application/hl7-v2",
        ));
    }
    if !route.er7 && !content_type.is_some_and(is_json_content_type) {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send the body as Content-Type: application/json"));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            alloc::format!("request bodies are limited to {MAX_BODY_BYTES} bytes"),
        ));
    }
    (route.check)(body, bounds)
}
