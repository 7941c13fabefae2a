//! The answers' shapes that are not wire types of the SDK (the three error bodies, health), for
//! the API description only: the server writes them from [`crate::api::EnvironmentError`].

use utoipa::ToSchema;

/// `{"detail": "…"}`: 400, 404, 409, 410, 413, 500, 503.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct MessageError {
    /// What went wrong.
    detail: String,
}

/// One invalid field of a request: where, what, and a machine-readable kind.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct FieldProblem {
    /// Where: `body`, `query` or `path`, then field names and list indexes.
    #[schema(value_type = Vec<serde_json::Value>)]
    loc: Vec<serde_json::Value>,
    /// What is wrong.
    msg: String,
    /// The kind, e.g. `missing`, `extra_forbidden`, `string_too_short`.
    #[serde(rename = "type")]
    kind: String,
}

/// `{"detail": [{loc, msg, type}, …]}`: 422, every invalid field at once.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct ValidationError {
    /// Each invalid field.
    detail: Vec<FieldProblem>,
}

/// `{"detail": {"message": "…"}}`: 401.
#[derive(ToSchema, serde::Serialize)]
#[allow(dead_code)]
pub(crate) struct ObjectError {
    /// What went wrong, under `message`.
    #[schema(value_type = Object)]
    detail: serde_json::Value,
}

/// Any of the three error shapes.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum ErrorBody {
    /// `detail` is a string.
    Message(MessageError),
    /// `detail` lists the invalid fields.
    Validation(ValidationError),
    /// `detail` is an object.
    Object(ObjectError),
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct HealthStatus {
    /// `ok` (`/health`) or `ready` (`/ready`).
    status: String,
}
