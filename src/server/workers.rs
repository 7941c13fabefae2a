//! The worker routes: registration, heartbeats and deregistration authenticated by a worker
//! token (`Authorization: Bearer efw_…`), and, with an API key, an environment's workers, its
//! token rotation and the audit log. Each handler is one call into the control plane.
//!
//! The two kinds of credential never stand in for each other: worker routes look the bearer up
//! among worker-token digests only, and every other route among the configured API keys only.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;

use super::app_state::{AppState, EnvironmentPath};
use super::auth::{AuthRejection, Caller, Keys, Role, client_address, presented_key};
use super::error_schemas::{ErrorBody, MessageError, ObjectError, ValidationError};
use super::json::{ApiError, ApiJson};
use crate::api::{
    AuditPage, EnvironmentError, EnvironmentId, FieldError, Heartbeat, HeartbeatAck, PageRequest,
    RegisterWorker, Worker, WorkerCommand, WorkerId, WorkerRegistration, WorkerToken, WorkersApi,
};

/// The worker and audit routes, merged into the application's router.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/workers/register", post(register))
        .route("/api/v1/workers/{id}/heartbeat", post(heartbeat))
        .route("/api/v1/workers/{id}", delete(deregister))
        .route("/api/v1/environments/{id}/workers", get(list_workers))
        .route(
            "/api/v1/environments/{id}/worker-token/rotate",
            post(rotate_token),
        )
        .route("/api/v1/audit", get(audit))
}

/// The worker token a worker request carries; checked by the control plane, never here. A
/// refused token counts against the client's address like a refused API key (429 once it has
/// failed too often), so tokens cannot be guessed at speed either.
struct WorkerCaller {
    token: WorkerToken,
    keys: Arc<Keys>,
    address: Option<IpAddr>,
}

impl WorkerCaller {
    /// `result`, with a 401 counted as a failed authentication of the caller's address.
    fn counted<T>(&self, result: Result<T, EnvironmentError>) -> Result<T, AuthRejection> {
        result.map_err(|error| match error {
            EnvironmentError::Unauthorized { .. } => self.keys.refuse(self.address, error),
            other => other.into(),
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WorkerCaller
where
    Arc<Keys>: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let keys = Arc::<Keys>::from_ref(state);
        let address = client_address(parts);
        keys.check_not_blocked(address)?;
        // No token, or a malformed header, is not a guess: refused without counting.
        let token = WorkerToken::new(presented_key(parts)?);
        Ok(WorkerCaller {
            token,
            keys,
            address,
        })
    }
}

/// The `{id}` of a worker route; a malformed id is the same 410 as an unknown worker.
struct WorkerPath(WorkerId);

impl<S: Send + Sync> FromRequestParts<S> for WorkerPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| unknown_worker())?;
        id.parse().map(WorkerPath).map_err(|_| unknown_worker())
    }
}

fn unknown_worker() -> ApiError {
    ApiError(EnvironmentError::Api {
        status: StatusCode::GONE.as_u16(),
        detail: "worker is not registered".to_owned(),
    })
}

#[utoipa::path(
    post, path = "/api/v1/workers/register", tag = "workers",
    request_body = RegisterWorker,
    responses(
        (status = 201, description = "Registered", body = WorkerRegistration),
        (status = 409, description = "The environment cannot take workers now", body = MessageError),
        (status = 401, description = "No or an unknown credential", body = ObjectError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("WorkerToken" = []))
)]
async fn register(
    State(app): State<AppState>,
    caller: WorkerCaller,
    ApiJson(request): ApiJson<RegisterWorker>,
) -> Result<Response, AuthRejection> {
    let mut registration = caller.counted(
        app.control_plane
            .register_worker(&caller.token, &request)
            .await,
    )?;
    if let Some(temporal) = &app.temporal {
        registration.temporal_address = Some(temporal.config().address.clone());
        registration.temporal_task_queue = Some(crate::temporal::environment_task_queue(
            &registration.environment_id,
        ));
    }
    Ok((StatusCode::CREATED, axum::Json(registration)).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/workers/{id}/heartbeat", tag = "workers",
    params(("id" = String, Path, description = "The worker's UUID; a malformed one is 410")),
    request_body = Heartbeat,
    responses(
        (status = 200, description = "Still a member", body = HeartbeatAck),
        (status = 410, description = "The worker must stop (deleted, inactive, token rotated)", body = MessageError),
        (status = 401, description = "No or an unknown credential", body = ObjectError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("WorkerToken" = []))
)]
async fn heartbeat(
    State(app): State<AppState>,
    caller: WorkerCaller,
    WorkerPath(worker): WorkerPath,
    ApiJson(heartbeat): ApiJson<Heartbeat>,
) -> Result<Response, AuthRejection> {
    let ack = caller.counted(
        app.control_plane
            .worker_heartbeat(&caller.token, worker, &heartbeat)
            .await,
    )?;
    Ok(axum::Json(ack).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/workers/{id}", tag = "workers",
    params(("id" = String, Path, description = "The worker's UUID; a malformed one is 410")),
    responses(
        (status = 204, description = "Left the pool"),
        (status = 410, description = "Not registered", body = MessageError),
        (status = 401, description = "No or an unknown credential", body = ObjectError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("WorkerToken" = []))
)]
async fn deregister(
    State(app): State<AppState>,
    caller: WorkerCaller,
    WorkerPath(worker): WorkerPath,
) -> Result<Response, AuthRejection> {
    caller.counted(
        app.control_plane
            .deregister_worker(&caller.token, worker)
            .await,
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get, path = "/api/v1/environments/{id}/workers", tag = "workers",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    responses(
        (status = 200, description = "The environment's registered workers", body = [Worker]),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 401, description = "No or an unknown credential", body = ObjectError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn list_workers(
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
) -> Result<Response, ApiError> {
    let workers = caller.scope.list_workers(id).await?;
    Ok(axum::Json(workers).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/environments/{id}/worker-token/rotate", tag = "workers",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    responses(
        (status = 200, description = "Every earlier token revoked; the new command", body = WorkerCommand),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 401, description = "No or an unknown credential", body = ObjectError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn rotate_token(
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let command = caller.scope.rotate_worker_token(id).await?;
    Ok(axum::Json(command).into_response())
}

#[derive(Deserialize)]
struct AuditQuery {
    environment_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[utoipa::path(
    get, path = "/api/v1/audit", tag = "audit",
    params(
        ("environment_id" = Option<uuid::Uuid>, Query, description = "Only events of this environment (a UUID)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many events (default 1000)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of audit events, oldest first", body = AuditPage),
        (status = 400, description = "A `cursor` this list did not answer", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn audit(
    caller: Caller,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let invalid = |field: &str, msg: String| {
        ApiError(EnvironmentError::Validation {
            errors: vec![FieldError {
                loc: vec!["query".into(), field.into()],
                msg,
                kind: if field == "environment_id" {
                    "uuid_parsing".to_owned()
                } else {
                    "query_parsing".to_owned()
                },
            }],
        })
    };
    let Query(query) = query.map_err(|rejection| invalid("query", rejection.body_text()))?;
    let environment = query
        .environment_id
        .map(|text| text.parse::<EnvironmentId>())
        .transpose()
        .map_err(|error| invalid("environment_id", format!("not a UUID: {error}")))?;
    let page = PageRequest::from_query(query.limit.as_deref(), query.cursor.as_deref())?;
    let page = caller.scope.audit_page(environment, &page).await?;
    Ok(axum::Json(page).into_response())
}
