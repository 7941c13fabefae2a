//! The routes of docs/src/concepts/service.md, `GET /health` and `GET /ready`, each a thin call into the caller's organization
//! scope of the control plane.

use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::app_state::{AppState, EnvironmentPath};
use super::auth::{Caller, Role};
use super::error_schemas::{ErrorBody, HealthStatus, MessageError, ObjectError, ValidationError};
use super::faults::{self, FaultConfig, Faults};
use super::json::{ApiError, ApiJson};
use super::request_log::log_request;
use crate::api::{
    CreateEnvironment, Environment, EnvironmentError, EnvironmentsApi, FieldError, Status,
    UpdateEnvironment, WorkerCommand,
};
use crate::control_plane::ControlPlane;
use crate::store::StorageFailure;

/// Where the OpenAPI document is served.
const OPENAPI_PATH: &str = "/api/openapi.json";

/// The whole application: routes, body limit, injected faults (if any) and request logs.
pub(crate) fn router(
    state: AppState,
    body_limit_bytes: usize,
    fault_config: FaultConfig,
    request_timeout: std::time::Duration,
) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route(OPENAPI_PATH, get(openapi_document))
        .route("/api/v1/environments", get(list).post(create))
        .route(
            "/api/v1/environments/{id}",
            get(get_one).patch(update).delete(delete),
        )
        .route(
            "/api/v1/environments/{id}/worker-command",
            get(worker_command),
        )
        .merge(super::state::router())
        .merge(super::workers::router())
        .merge(super::temporal::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit_bytes))
        .with_state(state);
    if !fault_config.is_empty() {
        let faults = Arc::new(Faults::new(fault_config));
        router = router
            .route(
                faults::REPORT_PATH,
                get(faults::report).with_state(Arc::clone(&faults)),
            )
            .layer(from_fn_with_state(faults, faults::inject));
    }
    // Inside the request log, so a timed-out request is logged with its 408.
    router
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async move {
                    ApiError(EnvironmentError::Api {
                        status: StatusCode::REQUEST_TIMEOUT.as_u16(),
                        detail: "the request took too long".to_owned(),
                    })
                }))
                .layer(tower::timeout::TimeoutLayer::new(request_timeout)),
        )
        .layer(from_fn(log_request))
}

#[derive(Deserialize)]
struct ListQuery {
    status_filter: Option<String>,
}

#[utoipa::path(
    get, path = "/health", tag = "service",
    responses((status = 200, description = "The process is alive", body = HealthStatus))
)]
async fn health() -> Response {
    axum::Json(serde_json::json!({ "status": "ok" })).into_response()
}

/// Readiness, unlike `/health` (liveness): a write to the database commits now.
#[utoipa::path(
    get, path = "/ready", tag = "service",
    responses(
        (status = 200, description = "The database takes writes", body = HealthStatus),
        (status = 503, description = "The database is not ready", body = MessageError),
    )
)]
async fn ready(State(control_plane): State<ControlPlane>) -> Response {
    match control_plane.check_ready().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(error) => {
            tracing::warn!(error = %crate::local::error_chain(&error), "not ready");
            let detail = StorageFailure::of(&error).map_or(
                "The service's database is not ready",
                StorageFailure::detail,
            );
            ApiError(EnvironmentError::Api {
                status: StatusCode::SERVICE_UNAVAILABLE.as_u16(),
                detail: detail.to_owned(),
            })
            .into_response()
        }
    }
}

/// `GET /api/openapi.json`: this document; no key needed.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
async fn openapi_document(State(app): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        app.openapi.to_string(),
    )
        .into_response()
}

#[utoipa::path(
    get, path = "/api/v1/environments", tag = "environments",
    params(("status_filter" = Option<Status>, Query, description = "Only environments with this `status` (a pending status change does not count until provisioning ends)")),
    responses(
        (status = 200, description = "Every environment of the organization, oldest first", body = [Environment]),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error: 400, 409, 413, 500 or 503", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn list(
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let invalid_query = |msg: String| {
        ApiError(EnvironmentError::Validation {
            errors: vec![FieldError {
                loc: vec!["query".into(), "status_filter".into()],
                msg,
                kind: "enum".to_owned(),
            }],
        })
    };
    let Query(query) = query.map_err(|rejection| invalid_query(rejection.body_text()))?;
    let status_filter = query
        .status_filter
        .map(|text| text.parse::<Status>())
        .transpose()
        .map_err(|error| invalid_query(error.to_string()))?;
    let environments = caller.scope.list_shared(status_filter).await?;
    Ok(super::list_body::json_array(environments))
}

#[utoipa::path(
    get, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    responses(
        (status = 200, description = "The environment", body = Environment),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error: 400, 409, 413, 500 or 503", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn get_one(
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
) -> Result<Response, ApiError> {
    let environment = caller.scope.get(id).await?;
    Ok(axum::Json(environment).into_response())
}

#[utoipa::path(
    post, path = "/api/v1/environments", tag = "environments",
    request_body = CreateEnvironment,
    responses(
        (status = 201, description = "The environment created", body = Environment),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error: 400, 409, 413, 500 or 503", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn create(
    caller: Caller,
    ApiJson(data): ApiJson<CreateEnvironment>,
) -> Result<Response, ApiError> {
    caller.require(Role::Editor)?;
    let environment = caller.scope.create(&data).await?;
    Ok((StatusCode::CREATED, axum::Json(environment)).into_response())
}

#[utoipa::path(
    patch, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    request_body = UpdateEnvironment,
    responses(
        (status = 200, description = "The environment updated", body = Environment),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error: 400, 409, 413, 500 or 503", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn update(
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
    ApiJson(patch): ApiJson<UpdateEnvironment>,
) -> Result<Response, ApiError> {
    caller.require(Role::Editor)?;
    let environment = caller.scope.update(id, &patch).await?;
    Ok(axum::Json(environment).into_response())
}

#[utoipa::path(
    delete, path = "/api/v1/environments/{id}", tag = "environments",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    responses(
        (status = 204, description = "Deleted; its workers stop and its tokens are revoked"),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error: 400, 409, 413, 500 or 503", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn delete(
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
) -> Result<Response, ApiError> {
    caller.require(Role::Editor)?;
    caller.scope.delete(id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(
    get, path = "/api/v1/environments/{id}/worker-command", tag = "environments",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    responses(
        (status = 200, description = "A new worker token and the command that uses it", body = WorkerCommand),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 422, description = "Invalid fields, all of them", body = ValidationError),
        (status = "default", description = "Another error: 400, 409, 413, 500 or 503", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
async fn worker_command(
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
) -> Result<Response, ApiError> {
    caller.require(Role::Editor)?;
    let command = caller.scope.get_worker_command(id).await?;
    Ok(axum::Json(command).into_response())
}

async fn not_found() -> ApiError {
    ApiError(EnvironmentError::NotFound {
        detail: "Not Found".to_owned(),
    })
}

async fn method_not_allowed() -> ApiError {
    ApiError(EnvironmentError::Api {
        status: StatusCode::METHOD_NOT_ALLOWED.as_u16(),
        detail: "Method Not Allowed".to_owned(),
    })
}
