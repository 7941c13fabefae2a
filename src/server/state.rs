//! The HTTP state backend at `/api/v1/state/{workspace}` (docs/src/concepts/state.md): Terraform's HTTP backend
//! protocol (GET and POST the state, LOCK and UNLOCK with lock information, 423/409 with the
//! holder's), GitLab's shape of it (`POST`/`DELETE` on `…/lock`), and envform's two extensions
//! that [`crate::state::HttpBackend`] speaks: a lease on every lock and a fencing token every
//! write under a lock must carry (see [`StateService`]).
//!
//! A lock belongs to the API key that took it: a 423 or 409 answer shows another key the
//! holder's key (`holder_key`), `Who`, `Operation` and `Created`, but never the lock's `ID`,
//! which only the holder's key sees. An UNLOCK whose `Operation` is `force-unlock` (what
//! `envform force-unlock` sends) is answered 403 naming the `admin` role when the caller may not
//! break the lock.
//!
//! This module maps HTTP onto [`StateService`] and back, and holds no rule of its own. Each
//! organization (the caller's API key, given as a bearer token or as the password of basic
//! auth, which is how Terraform-style clients send it) has its own workspaces. Workspace names
//! are checked before anything is read or written. The state document never reaches a log line.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::app_state::AppState;
use super::auth::{Authenticated, Role, authenticate_key, presented_key};
use super::json::ApiError;
use crate::api::{EnvironmentError, PageRequest};
use crate::control_plane::state_service::{
    GrantKind, LockHolder, LockKey, StateService, StateServiceError, StateWrite, Unlocked,
    Workspace, WorkspaceName,
};
use crate::state::{FENCING_TOKEN_HEADER, FORCE_UNLOCK_OPERATION, FencingToken, LockInfo};
use crate::store::RecordedLockEvent;
use crate::store::StorageFailure;

/// The routes of the state backend, merged into the application's router.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/state/{workspace}", any(workspace_route))
        .route("/api/v1/state/{workspace}/lock", any(lock_route))
        .route("/api/v1/state/{workspace}/events", get(events_route))
}

/// The authenticated key of a state request.
struct StateCaller(Authenticated);

impl FromRequestParts<AppState> for StateCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let authenticated = match state_key(parts) {
            Ok(key) => authenticate_key(parts, Ok(key.expose_secret()), state),
            Err(ApiError(error)) => authenticate_key(parts, Err(error), state),
        };
        authenticated
            .map(StateCaller)
            .map_err(IntoResponse::into_response)
    }
}

/// The API key of a state request: `Authorization: Bearer <key>` or `UserKey <key>` like every
/// other route, or basic auth with the key as the password (the user name is not used).
fn state_key(parts: &Parts) -> Result<SecretString, ApiError> {
    let basic = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    let Some((_, credentials)) = basic else {
        let key = presented_key(parts)?;
        return Ok(SecretString::from(key.to_owned()));
    };
    let decoded = BASE64
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unauthorized("malformed basic credentials"))?;
    let decoded = SecretString::from(decoded);
    match decoded.expose_secret().split_once(':') {
        Some((_, password)) if !password.is_empty() => Ok(SecretString::from(password.to_owned())),
        _ => Err(unauthorized(
            "basic auth must carry the API key as its password",
        )),
    }
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError(EnvironmentError::Unauthorized {
        detail: detail.to_owned(),
    })
}

/// A request the state backend does not carry out, as it is answered.
#[derive(Debug)]
enum Refusal {
    /// `{"detail": ...}` with the status.
    Detail(StatusCode, String),
    /// The holder's lock information with 423 or 409, as Terraform's protocol has it.
    Holder(StatusCode, Box<LockHolder>),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Detail(status, detail) => ApiError(EnvironmentError::Api {
                status: status.as_u16(),
                detail,
            })
            .into_response(),
            Refusal::Holder(status, holder) => {
                (status, axum::Json(holder_body(&holder))).into_response()
            }
        }
    }
}

/// The body of a 423 or 409: the holder's lock information as Terraform's protocol has it, and
/// `holder_key`, the key that took it. The `ID` only when the caller's key took the lock: to
/// any other key it would be no use (locks are bound to keys) and only invite guessing.
fn holder_body(holder: &LockHolder) -> serde_json::Value {
    let mut body = serde_json::to_value(&holder.info).unwrap_or_default();
    if let Some(object) = body.as_object_mut() {
        if !holder.caller_holds {
            object.remove("ID");
        }
        object.insert(
            "holder_key".to_owned(),
            holder
                .key
                .clone()
                .map_or(serde_json::Value::Null, Into::into),
        );
        object.insert("detail".to_owned(), format!("locked by {holder}").into());
    }
    body
}

/// The key a state request comes from, as the state service knows it.
fn lock_key(caller: &Authenticated) -> LockKey {
    LockKey::new(
        format!("key:{}", caller.0.name),
        caller.0.role >= Role::Admin,
    )
}

/// A `{"detail": ...}` refusal with `status`.
fn detail(status: StatusCode, detail: impl Into<String>) -> Refusal {
    Refusal::Detail(status, detail.into())
}

/// The workspace a request names, of the caller's organization: checked before anything is
/// touched; and the caller.
struct NamedWorkspace(Workspace, Authenticated);

impl FromRequestParts<AppState> for NamedWorkspace {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let StateCaller(caller) = StateCaller::from_request_parts(parts, state).await?;
        let invalid = |text: String| {
            detail(
                StatusCode::BAD_REQUEST,
                format!("invalid workspace: {text}"),
            )
            .into_response()
        };
        let Path(name) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| invalid(rejection.body_text()))?;
        let name = WorkspaceName::parse(&name).map_err(|error| invalid(error.to_string()))?;
        Ok(NamedWorkspace(
            Workspace {
                organization: caller.0.organization.0.clone(),
                name,
            },
            caller,
        ))
    }
}

/// The `?ID=` of a state write.
#[derive(Deserialize)]
struct WriteQuery {
    #[serde(rename = "ID")]
    id: Option<String>,
}

/// `/api/v1/state/{workspace}`: GET, POST (PUT too), LOCK and UNLOCK.
async fn workspace_route(
    NamedWorkspace(workspace, caller): NamedWorkspace,
    State(app): State<AppState>,
    method: Method,
    query: Result<Query<WriteQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let service = &app.state_service;
    let needed = if method == Method::GET {
        Role::Viewer
    } else {
        Role::Editor
    };
    if let Err(error) = caller.require(needed) {
        return ApiError(error).into_response();
    }
    let key = lock_key(&caller);
    let result = match method.as_str() {
        "GET" => get_state(service, &workspace).await,
        "POST" | "PUT" => write_state(service, &workspace, &key, query, &headers, body).await,
        "LOCK" => lock(service, &workspace, &key, &headers, body).await,
        "UNLOCK" => unlock(service, &workspace, &key, &headers, body).await,
        _ => return allowing(method_not_allowed(), "GET, POST, PUT"),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `/api/v1/state/{workspace}/lock`, GitLab's shape: POST locks, DELETE unlocks (LOCK and
/// UNLOCK work there too).
async fn lock_route(
    NamedWorkspace(workspace, caller): NamedWorkspace,
    State(app): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    if let Err(error) = caller.require(Role::Editor) {
        return ApiError(error).into_response();
    }
    let service = &app.state_service;
    let key = lock_key(&caller);
    let result = match method.as_str() {
        "POST" | "LOCK" => lock(service, &workspace, &key, &headers, body).await,
        "DELETE" | "UNLOCK" => unlock(service, &workspace, &key, &headers, body).await,
        _ => return allowing(method_not_allowed(), "POST, DELETE"),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The paging parameters of `GET …/events`, as texts: [`PageRequest`] judges them.
#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// A page of a workspace's lock event log.
#[derive(serde::Serialize)]
struct EventsPage {
    /// The events, oldest first.
    events: Vec<RecordedLockEvent>,
    /// The cursor of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// `GET /api/v1/state/{workspace}/events?limit=…&cursor=…`: a page of the workspace's lock event
/// log, for audits.
async fn events_route(
    NamedWorkspace(workspace, _caller): NamedWorkspace,
    State(app): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let page = match query {
        Ok(Query(query)) => {
            PageRequest::from_query(query.limit.as_deref(), query.cursor.as_deref())
        }
        Err(rejection) => Err(EnvironmentError::Api {
            status: StatusCode::BAD_REQUEST.as_u16(),
            detail: rejection.body_text(),
        }),
    };
    // A cursor belongs to one workspace's log.
    let scope = format!("events/{}", workspace.name.as_str());
    let after = page.and_then(|page| Ok((page.after(&scope)?, page)));
    let (after, page) = match after {
        Ok(read) => read,
        Err(error) => return ApiError(error).into_response(),
    };
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = page.limit.saturating_add(1);
    match app
        .state_service
        .events_after(&workspace, after, limit)
        .await
    {
        Ok(events) => {
            let (events, next_cursor) = page.page(events, &scope, |event| {
                u64::try_from(event.sequence).unwrap_or_default()
            });
            axum::Json(EventsPage {
                events,
                next_cursor,
            })
            .into_response()
        }
        Err(error) => refusal(error).into_response(),
    }
}

async fn get_state(service: &StateService, workspace: &Workspace) -> Result<Response, Refusal> {
    let Some(stored) = service.get(workspace).await.map_err(refusal)? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let md5 = BASE64.encode(Md5::digest(stored.document.as_bytes()));
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (
                axum::http::HeaderName::from_static("content-md5"),
                HeaderValue::from_str(&md5).map_err(|_| internal())?,
            ),
        ],
        stored.document,
    )
        .into_response())
}

async fn write_state(
    service: &StateService,
    workspace: &Workspace,
    key: &LockKey,
    query: Result<Query<WriteQuery>, QueryRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let Query(query) = query.map_err(|rejection| {
        detail(
            StatusCode::BAD_REQUEST,
            format!("invalid query: {}", rejection.body_text()),
        )
    })?;
    let fencing_token = fencing_token(headers)?;
    let body = checked_body(headers, body)?;
    let document = String::from_utf8(body.to_vec()).map_err(|_| {
        detail(
            StatusCode::BAD_REQUEST,
            "the state document is not UTF-8 text",
        )
    })?;
    let write = StateWrite {
        document,
        lock_id: query.id.filter(|id| !id.is_empty()),
        fencing_token,
    };
    service
        .write(workspace, key, write)
        .await
        .map_err(|error| refused_write(workspace, key, error))?;
    Ok(StatusCode::OK.into_response())
}

async fn lock(
    service: &StateService,
    workspace: &Workspace,
    key: &LockKey,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let info = lock_info(headers, body)?;
    let granted = service
        .lock(workspace, key, info.clone())
        .await
        .map_err(|error| refused_lock(workspace, key, &info, error))?;
    match granted.kind {
        GrantKind::Renewed => tracing::debug!(
            target: "envform::server::state",
            organization = %workspace.organization,
            workspace = %workspace.name,
            lock_id = %info.id,
            key = %key.name,
            fencing_token = %granted.fencing_token,
            "state lock lease renewed"
        ),
        GrantKind::New | GrantKind::TakenOver => tracing::info!(
            target: "envform::server::state",
            organization = %workspace.organization,
            workspace = %workspace.name,
            lock_id = %info.id,
            who = %info.who,
            key = %key.name,
            fencing_token = %granted.fencing_token,
            taken_over = granted.kind == GrantKind::TakenOver,
            "state lock granted"
        ),
    }
    // Terraform's clients ignore the body; envform's read the token and the lease from it.
    let mut answer = serde_json::to_value(&info).map_err(|_| internal())?;
    if let Some(object) = answer.as_object_mut() {
        object.insert("fencing_token".to_owned(), granted.fencing_token.0.into());
        object.insert(
            "lease_seconds".to_owned(),
            granted.lease.as_secs().max(1).into(),
        );
        object.insert(
            "lease_expires_at".to_owned(),
            granted.lease_expires_at.to_string().into(),
        );
    }
    Ok(axum::Json(answer).into_response())
}

async fn unlock(
    service: &StateService,
    workspace: &Workspace,
    key: &LockKey,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let info = lock_info(headers, body)?;
    // What `envform force-unlock` sends: a refusal then says which role would do.
    let force = info.operation == FORCE_UNLOCK_OPERATION;
    let unlocked = service
        .unlock(workspace, key, &info, force)
        .await
        .map_err(|error| refused_lock(workspace, key, &info, error))?;
    if unlocked == Unlocked::Released {
        tracing::info!(
            target: "envform::server::state",
            organization = %workspace.organization,
            workspace = %workspace.name,
            lock_id = %info.id,
            who = %info.who,
            key = %key.name,
            "state lock released"
        );
    }
    Ok(StatusCode::OK.into_response())
}

/// The lock information of a LOCK or UNLOCK body.
fn lock_info(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<LockInfo, Refusal> {
    let body = checked_body(headers, body)?;
    serde_json::from_slice::<LockInfo>(&body).map_err(|error| {
        detail(
            StatusCode::BAD_REQUEST,
            format!("the body is not lock information: {error}"),
        )
    })
}

/// The body, refused when over the size limit or when it does not match its `Content-MD5`.
fn checked_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, Refusal> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            detail(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        } else {
            detail(StatusCode::BAD_REQUEST, "cannot read the request body")
        }
    })?;
    if let Some(expected) = headers.get("content-md5") {
        let matches = BASE64
            .decode(expected.as_bytes())
            .is_ok_and(|expected| expected.as_slice() == Md5::digest(&body).as_slice());
        if !matches {
            return Err(detail(
                StatusCode::BAD_REQUEST,
                "the body does not match its Content-MD5 header",
            ));
        }
    }
    Ok(body)
}

/// The fencing token a write carries, if any.
fn fencing_token(headers: &HeaderMap) -> Result<Option<FencingToken>, Refusal> {
    headers
        .get(FENCING_TOKEN_HEADER)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map(FencingToken)
                .ok_or_else(|| {
                    detail(
                        StatusCode::BAD_REQUEST,
                        format!("{FENCING_TOKEN_HEADER} must be a whole number"),
                    )
                })
        })
        .transpose()
}

/// A refused write: logged (without the document), then answered like any refusal.
fn refused_write(workspace: &Workspace, key: &LockKey, error: StateServiceError) -> Refusal {
    let logged = matches!(
        error,
        StateServiceError::Locked { .. } | StateServiceError::StaleFencingToken { .. }
    );
    logged_refusal(logged, workspace, key, error, "state write refused")
}

/// A refused LOCK or UNLOCK: logged when another key named the holder's lock, then answered
/// like any refusal.
fn refused_lock(
    workspace: &Workspace,
    key: &LockKey,
    info: &LockInfo,
    error: StateServiceError,
) -> Refusal {
    let named_holder = match &error {
        StateServiceError::Locked { holder } | StateServiceError::HeldByAnother { holder, .. } => {
            !holder.caller_holds && holder.info.id == info.id
        }
        StateServiceError::AdminRequired { .. } => true,
        _ => false,
    };
    let message = "state lock request from another key refused";
    logged_refusal(named_holder, workspace, key, error, message)
}

/// [`refusal`], with a warning naming the workspace and the calling key when `logged`.
fn logged_refusal(
    logged: bool,
    workspace: &Workspace,
    key: &LockKey,
    error: StateServiceError,
    message: &str,
) -> Refusal {
    if logged {
        tracing::warn!(
            target: "envform::server::state",
            organization = %workspace.organization,
            workspace = %workspace.name,
            key = %key.name,
            reason = %error,
            "{message}"
        );
    }
    refusal(error)
}

/// The answer for a refusal: 423 or 409 with the holder's lock information, as Terraform's
/// protocol has it, else `{"detail": ...}`.
fn refusal(error: StateServiceError) -> Refusal {
    match error {
        StateServiceError::Locked { holder } => Refusal::Holder(StatusCode::LOCKED, holder),
        StateServiceError::HeldByAnother { holder, .. } => {
            Refusal::Holder(StatusCode::CONFLICT, holder)
        }
        StateServiceError::AdminRequired { .. } => detail(StatusCode::FORBIDDEN, error.to_string()),
        StateServiceError::StaleFencingToken { .. } => {
            detail(StatusCode::PRECONDITION_FAILED, error.to_string())
        }
        StateServiceError::MissingLockId | StateServiceError::EmptyDocument => {
            detail(StatusCode::BAD_REQUEST, error.to_string())
        }
        StateServiceError::InvalidLockInfo { .. } => {
            detail(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        StateServiceError::Storage(source) => {
            tracing::error!(
                target: "envform::server::state",
                error = %crate::local::error_chain(&source),
                "state store failed"
            );
            match StorageFailure::of(&source) {
                Some(failure) => detail(
                    StatusCode::from_u16(failure.status())
                        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    failure.detail(),
                ),
                None => internal(),
            }
        }
    }
}

fn internal() -> Refusal {
    detail(StatusCode::INTERNAL_SERVER_ERROR, "the state store failed")
}

/// A 405 with the `Allow` header RFC 9110 asks for: the methods the API description lists
/// (Terraform's LOCK and UNLOCK are accepted too, but OpenAPI cannot describe them).
fn allowing(refusal: Refusal, methods: &'static str) -> Response {
    let mut response = refusal.into_response();
    response
        .headers_mut()
        .insert(axum::http::header::ALLOW, HeaderValue::from_static(methods));
    response
}

fn method_not_allowed() -> Refusal {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts_with(header: Option<&str>) -> Parts {
        let mut builder = axum::http::Request::builder();
        if let Some(value) = header {
            builder = builder.header(AUTHORIZATION, value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    fn basic(credentials: &str) -> String {
        format!("Basic {}", BASE64.encode(credentials))
    }

    #[test]
    fn the_key_comes_from_a_bearer_header_or_the_basic_password() {
        let key = |header: &str| {
            state_key(&parts_with(Some(header)))
                .map(|key| key.expose_secret().to_owned())
                .ok()
        };
        assert_eq!(key("Bearer sk-1").as_deref(), Some("sk-1"));
        assert_eq!(key("UserKey sk-1").as_deref(), Some("sk-1"));
        assert_eq!(key(&basic("anyone:sk-1")).as_deref(), Some("sk-1"));
        // Only the first colon splits: a key may hold colons.
        assert_eq!(key(&basic("user:sk:2")).as_deref(), Some("sk:2"));
        assert_eq!(
            key(&format!("basic  {}", BASE64.encode("u:sk-3"))).as_deref(),
            Some("sk-3")
        );
        for refused in [
            basic("sk-1"),
            basic("sk-1:"),
            "Basic !!!".to_owned(),
            "Digest x".to_owned(),
        ] {
            assert!(key(&refused).is_none(), "{refused}");
        }
        assert!(state_key(&parts_with(None)).is_err());
    }

    fn holder(caller_holds: bool) -> Box<LockHolder> {
        Box::new(LockHolder {
            info: LockInfo::new("apply", "ws"),
            key: Some("key:alice".to_owned()),
            caller_holds,
        })
    }

    #[test]
    fn refusals_carry_the_holder_or_a_detail() {
        let locked = refusal(StateServiceError::Locked {
            holder: holder(true),
        });
        assert_eq!(locked.into_response().status(), StatusCode::LOCKED);
        let conflict = refusal(StateServiceError::HeldByAnother {
            holder: holder(false),
            requested: "other".to_owned(),
        });
        assert_eq!(conflict.into_response().status(), StatusCode::CONFLICT);
        let forbidden = refusal(StateServiceError::AdminRequired {
            holder: holder(false),
            caller: "key:bob".to_owned(),
        });
        assert_eq!(forbidden.into_response().status(), StatusCode::FORBIDDEN);
        let stale = refusal(StateServiceError::StaleFencingToken {
            presented: Some(FencingToken(1)),
            current: Some(FencingToken(2)),
        });
        assert_eq!(
            stale.into_response().status(),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            refusal(StateServiceError::EmptyDocument)
                .into_response()
                .status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn only_the_holders_key_sees_the_lock_id() {
        let own = holder(true);
        let body = holder_body(&own);
        assert_eq!(body["ID"], own.info.id.as_str());
        assert_eq!(body["holder_key"], "key:alice");
        let other = holder(false);
        let body = holder_body(&other);
        assert!(body.get("ID").is_none(), "{body}");
        assert!(!body.to_string().contains(&other.info.id), "{body}");
        assert_eq!(body["holder_key"], "key:alice");
        assert_eq!(body["Operation"], "apply");
        assert_eq!(body["Who"], other.info.who.as_str());
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|text| text.contains("key:alice"))
        );
    }
}
