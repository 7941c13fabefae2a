//! The OpenAPI 3.1 description of `envform serve`, generated from the routes' `#[utoipa::path]`
//! attributes and the wire types' `ToSchema` derives, served at `GET /api/openapi.json` (no key
//! needed) and kept as `docs/openapi.json`. It owns no behaviour: a route that changes shape
//! changes here through its attribute.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error_schemas::{
    ErrorBody, FieldProblem, HealthStatus, MessageError, ObjectError, ValidationError,
};

use crate::api::{
    AuditAction, AuditEvent, CommandParts, CreateEnvironment, Environment, EnvironmentId,
    ExecutionEnvironment, Heartbeat, HeartbeatAck, OrganizationId, RegisterWorker, Status,
    UpdateEnvironment, Worker, WorkerCommand, WorkerId, WorkerRegistration, WorkerStatus,
};

// The state backend's routes dispatch on the method themselves (`any`, for Terraform's LOCK and
// UNLOCK, which OpenAPI 3.1 cannot describe): their standard methods are described by these
// bodiless functions, which only carry the attributes.

/// `GET /api/v1/state/{workspace}`.
#[utoipa::path(
    get, path = "/api/v1/state/{workspace}", tag = "state",
    params(("workspace" = String, Path, description = "The workspace's name", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The state document as stored (Content-MD5 set)", body = serde_json::Value),
        (status = 204, description = "No state was written yet"),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("Bearer" = []), ("Basic" = []), ("UserKey" = []))
)]
#[allow(dead_code)]
fn state_get() {}

/// `POST` or `PUT /api/v1/state/{workspace}`.
#[utoipa::path(
    method(post, put), path = "/api/v1/state/{workspace}", tag = "state",
    params(
        ("workspace" = String, Path, description = "The workspace's name", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
        ("ID" = Option<String>, Query, description = "The lock held, when the workspace is locked"),
    ),
    request_body(content = serde_json::Value, description = "The state document"),
    responses(
        (status = 200, description = "Stored"),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = "default", description = "Refused: 409 stale serial or another lock, 423 locked, 428 no fencing token", body = ErrorBody),
    ),
    security(("Bearer" = []), ("Basic" = []), ("UserKey" = []))
)]
#[allow(dead_code)]
fn state_post() {}

/// `POST /api/v1/state/{workspace}/lock` (or `LOCK` on the workspace).
#[utoipa::path(
    post, path = "/api/v1/state/{workspace}/lock", tag = "state",
    params(("workspace" = String, Path, description = "The workspace's name", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    request_body(content = Object, description = "Terraform's lock information (`ID`, `Operation`, `Who`, …)"),
    responses(
        (status = 200, description = "Locked; the lease and fencing token in headers", body = Object),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = "default", description = "Refused: 423 or 409 with the holder's key (`holder_key`) and lock information; its `ID` only to the key that took the lock", body = Object),
    ),
    security(("Bearer" = []), ("Basic" = []), ("UserKey" = []))
)]
#[allow(dead_code)]
fn state_lock() {}

/// `DELETE /api/v1/state/{workspace}/lock` (or `UNLOCK` on the workspace).
#[utoipa::path(
    delete, path = "/api/v1/state/{workspace}/lock", tag = "state",
    params(("workspace" = String, Path, description = "The workspace's name", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")),
    request_body(content = Object, description = "The lock information of the lock to release"),
    responses(
        (status = 200, description = "Unlocked"),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = "default", description = "Refused: 409 or 423 with the holder's key (`holder_key`) and lock information (its `ID` only to the key that took the lock); 403 for a force-unlock of another key's lock without the admin role", body = Object),
    ),
    security(("Bearer" = []), ("Basic" = []), ("UserKey" = []))
)]
#[allow(dead_code)]
fn state_unlock() {}

/// `GET /api/v1/state/{workspace}/events`.
#[utoipa::path(
    get, path = "/api/v1/state/{workspace}/events", tag = "state",
    params(
        ("workspace" = String, Path, description = "The workspace's name", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000, description = "At most this many events (default 1000)"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "The `next_cursor` of the previous page, unchanged"),
    ),
    responses(
        (status = 200, description = "A page of the workspace's lock events, oldest first", body = LockEventsPage),
        (status = 401, description = "No or an unknown API key", body = ObjectError),
        (status = 400, description = "A `cursor` this list did not answer", body = MessageError),
        (status = 422, description = "An invalid `limit`", body = ValidationError),
        (status = "default", description = "Another error", body = ErrorBody),
    ),
    security(("Bearer" = []), ("Basic" = []), ("UserKey" = []))
)]
#[allow(dead_code)]
fn state_events() {}

/// A page of a workspace's lock event log, as `GET …/events` answers it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct LockEventsPage {
    /// The events, oldest first; each with its `sequence`, `at`, `kind` and lock fields.
    #[schema(value_type = Vec<Object>)]
    events: Vec<serde_json::Value>,
    /// Pass it back as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "envform Environments Service",
        description = "The Environments API of `envform serve` (docs/src/concepts/service.md), with its worker, audit and state backend routes. Wire shapes follow the production service's (docs/src/reference/compatibility.md)."
    ),
    paths(
        super::routes::health,
        super::routes::ready,
        super::routes::list,
        super::routes::create,
        super::routes::get_one,
        super::routes::update,
        super::routes::delete,
        super::routes::worker_command,
        super::routes::openapi_document,
        super::workers::register,
        super::workers::heartbeat,
        super::workers::deregister,
        super::workers::list_workers,
        super::workers::rotate_token,
        super::workers::audit,
        super::temporal::ping,
        state_get,
        state_post,
        state_lock,
        state_unlock,
        state_events,
    ),
    components(schemas(
        Environment,
        CreateEnvironment,
        UpdateEnvironment,
        WorkerCommand,
        CommandParts,
        crate::api::Configuration,
        ExecutionEnvironment,
        EnvironmentId,
        OrganizationId,
        Status,
        RegisterWorker,
        WorkerRegistration,
        Heartbeat,
        HeartbeatAck,
        Worker,
        WorkerId,
        WorkerStatus,
        AuditEvent,
        crate::api::AuditPage,
        LockEventsPage,
        AuditAction,
        MessageError,
        ValidationError,
        FieldProblem,
        ObjectError,
        ErrorBody,
        HealthStatus,
        crate::api::PingRequest,
        crate::api::PingReport,
        crate::api::PingResult,
    )),
    modifiers(&SecuritySchemes, &AuthenticationAnswers),
    tags(
        (name = "environments", description = "Environments of the caller's organization"),
        (name = "workers", description = "Worker pools: registration and heartbeats (worker token), listing and rotation (API key)"),
        (name = "audit", description = "Who changed what"),
        (name = "state", description = "The HTTP state backend (Terraform's protocol; LOCK and UNLOCK are also accepted on the workspace path)"),
        (name = "service", description = "Health, readiness and this document"),
    )
)]
pub(crate) struct ApiDoc;

/// The schemes: an API key as `Authorization: UserKey <key>` or `Bearer <key>`, a worker token
/// as `Bearer efw_…`, and basic auth (the key as the password) for Terraform-style state clients.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // The service refuses unknown keys inside `execution_environment` (422), so the schema
        // says so; utoipa has no struct-level switch for it short of serde's
        // `deny_unknown_fields`, which would stop the SDK reading newer answers.
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(object))) =
            components.schemas.get_mut("ExecutionEnvironment")
        {
            object.additional_properties = Some(Box::new(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        }
        components.add_security_scheme(
            "UserKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`UserKey <key>`, as the production SDK sends it; the key alone in `Authorization`, \
                 or in a header of its own named `UserKey`, is accepted too",
            ))),
        );
        components.add_security_scheme(
            "Bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key as `Bearer <key>`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "WorkerToken",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("efw_…")
                    .description(Some(
                        "A worker token from `worker-command`, for the worker routes only",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "Basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "The API key as the password, for Terraform-style state clients",
                    ))
                    .build(),
            ),
        );
    }
}

/// The answers every authenticated operation can give, added once here rather than in each
/// route's attribute: 401 (no or an unknown credential); for API-key routes also 403 (the key's
/// role is too low: viewers read, editors write, admins rotate and force-unlock) and 429 (too
/// many failed authentications from the client's address, with `Retry-After`). Worker-token
/// routes have no roles and are not rate-limited.
struct AuthenticationAnswers;

impl Modify for AuthenticationAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::Header;
        use utoipa::openapi::schema::{Object, Type};
        use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

        let answer = |description: &str, schema: &str| {
            ResponseBuilder::new().description(description).content(
                "application/json",
                Content::new(Some(Ref::from_schema_name(schema))),
            )
        };
        let unauthorized = answer("No or an unknown credential", "ObjectError").build();
        let forbidden = answer(
            "The key's role is too low for this call; the answer names the role it needs",
            "MessageError",
        )
        .build();
        let mut retry_after = Header::new(Object::with_type(Type::Integer));
        retry_after.description =
            Some("Whole seconds to wait before authenticating again".to_owned());
        let too_many = answer(
            "Too many failed authentications from this address",
            "MessageError",
        )
        .header("Retry-After", retry_after)
        .build();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let schemes: Vec<String> = operation
                    .security
                    .iter()
                    .flatten()
                    .filter_map(|requirement| serde_json::to_value(requirement).ok())
                    .filter_map(|value| {
                        value
                            .as_object()
                            .map(|map| map.keys().cloned().collect::<Vec<_>>())
                    })
                    .flatten()
                    .collect();
                if schemes.is_empty() {
                    continue;
                }
                let responses = &mut operation.responses.responses;
                responses
                    .entry("401".to_owned())
                    .or_insert_with(|| RefOr::T(unauthorized.clone()));
                if schemes.iter().any(|scheme| scheme != "WorkerToken") {
                    responses
                        .entry("403".to_owned())
                        .or_insert_with(|| RefOr::T(forbidden.clone()));
                    responses
                        .entry("429".to_owned())
                        .or_insert_with(|| RefOr::T(too_many.clone()));
                }
            }
        }
    }
}

/// The document as pretty JSON with a final newline, as served and as kept in `docs/openapi.json`.
pub fn openapi_json() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_with_every_route() {
        let document: serde_json::Value =
            serde_json::from_str(&openapi_json()).expect("the document is JSON");
        assert!(
            document["openapi"]
                .as_str()
                .is_some_and(|version| version.starts_with("3.1")),
            "{}",
            document["openapi"]
        );
        for path in [
            "/health",
            "/ready",
            "/api/openapi.json",
            "/api/v1/environments",
            "/api/v1/environments/{id}",
            "/api/v1/environments/{id}/worker-command",
            "/api/v1/environments/{id}/workers",
            "/api/v1/environments/{id}/worker-token/rotate",
            "/api/v1/workers/register",
            "/api/v1/workers/{id}/heartbeat",
            "/api/v1/workers/{id}",
            "/api/v1/audit",
            "/api/v1/state/{workspace}",
            "/api/v1/state/{workspace}/lock",
            "/api/v1/state/{workspace}/events",
        ] {
            assert!(document["paths"].get(path).is_some(), "{path} is missing");
        }
        for scheme in ["UserKey", "Bearer", "WorkerToken", "Basic"] {
            assert!(
                document["components"]["securitySchemes"]
                    .get(scheme)
                    .is_some(),
                "{scheme}"
            );
        }
    }
}
