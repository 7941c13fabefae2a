//! `POST /api/v1/environments/{id}/ping`: runs `envform.ping` on the environment's Temporal task
//! queue, when the service provisions on a real Temporal server (`--temporal-address`).

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::app_state::{AppState, EnvironmentPath};
use super::auth::{Caller, Role};
use super::error_schemas::{ErrorBody, MessageError, ObjectError};
use super::json::{ApiError, ApiJson};
use crate::api::{
    EnvironmentError, EnvironmentsApi, MAX_PINGS, PingReport, PingRequest, PingResult,
};

/// How long one ping waits for a worker to answer.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The ping route.
pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/environments/{id}/ping", post(ping))
}

fn refused(status: u16, detail: String) -> ApiError {
    ApiError(EnvironmentError::Api { status, detail })
}

/// `POST /api/v1/environments/{id}/ping`.
#[utoipa::path(
    post, path = "/api/v1/environments/{id}/ping", tag = "environments",
    params(("id" = String, Path, description = "The environment's UUID; a malformed one is 404")),
    request_body = PingRequest,
    responses(
        (status = 200, description = "Each ping: the worker that answered and the round trip, or why none did", body = PingReport),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 403, description = "The key's role is below editor", body = MessageError),
        (status = 404, description = "Unknown, malformed or foreign id", body = MessageError),
        (status = 409, description = "No Temporal server, or no namespace yet", body = MessageError),
        (status = 422, description = "count out of range, or an invalid body", body = ErrorBody),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("UserKey" = []), ("Bearer" = []))
)]
pub(super) async fn ping(
    State(app): State<AppState>,
    caller: Caller,
    EnvironmentPath(id): EnvironmentPath,
    ApiJson(request): ApiJson<PingRequest>,
) -> Result<Response, ApiError> {
    // Pings start workflows in the organization's namespace: a write.
    caller.require(Role::Editor)?;
    if !(1..=MAX_PINGS).contains(&request.count) {
        return Err(refused(
            422,
            format!("count must be between 1 and {MAX_PINGS}"),
        ));
    }
    let environment = caller.scope.get(id).await?;
    let Some(temporal) = &app.temporal else {
        return Err(refused(
            409,
            "this service provisions no Temporal namespaces: start envform serve with \
             --temporal-address to ping workers"
                .to_owned(),
        ));
    };
    let Some(namespace) = environment.temporal_namespace.clone() else {
        return Err(refused(
            409,
            format!(
                "environment `{}` has no Temporal namespace yet (status {})",
                environment.name, environment.status
            ),
        ));
    };
    let task_queue = crate::temporal::environment_task_queue(&id);
    let outcomes = crate::temporal::ping_environment(
        temporal,
        &namespace,
        &task_queue,
        request.count,
        PING_TIMEOUT,
    )
    .await
    .map_err(|message| refused(503, message))?;
    let pings = outcomes
        .into_iter()
        .map(|outcome| {
            let round_trip_ms = outcome.elapsed.as_secs_f64() * 1000.0;
            match outcome.reply {
                Ok(reply) => PingResult {
                    worker_id: Some(reply.worker_id),
                    hostname: Some(reply.hostname),
                    environment: Some(reply.environment),
                    round_trip_ms,
                    error: None,
                },
                Err(error) => PingResult {
                    worker_id: None,
                    hostname: None,
                    environment: None,
                    round_trip_ms,
                    error: Some(error),
                },
            }
        })
        .collect();
    let report = PingReport {
        environment_id: id,
        environment_name: environment.name,
        temporal_namespace: namespace,
        task_queue,
        pings,
    };
    Ok(axum::Json(report).into_response())
}
