//! JSON in and out: the `{"detail": ...}` error answers (docs/src/concepts/service.md), and a body extractor whose
//! every failure is one of them (422 with `{loc, msg, type}` entries for a body that is not valid
//! JSON or has the wrong shape, 413 over the size limit) instead of axum's plain-text 400/415.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::api::{CreateEnvironment, EnvironmentError, FieldError, UpdateEnvironment};
use crate::control_plane::validation;

/// An error answer: the status and `{"detail": ...}` body of an [`EnvironmentError`].
#[derive(Debug)]
pub(crate) struct ApiError(pub(crate) EnvironmentError);

impl From<EnvironmentError> for ApiError {
    fn from(error: EnvironmentError) -> Self {
        Self(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self
            .0
            .status_code()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %self.0, "request failed");
        }
        let mut response = (status, axum::Json(self.0.to_body())).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // The database is away for a moment: well-behaved clients wait this long and retry.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A JSON request body of type `T`; every failure answers in the API's error shapes.
pub(crate) struct ApiJson<T>(pub(crate) T);

/// Rules of a body's wire form that its typed form cannot see (a `null` that reads as absent,
/// keys of a nested object the type would ignore); checked before the body is decoded.
pub(crate) trait WireRules: DeserializeOwned {
    /// Whether the type has rules: bodies of types without any are parsed once, not twice.
    const HAS_RULES: bool = false;

    /// A 422 when `body` (valid JSON) breaks a rule.
    fn check_wire(_body: &serde_json::Value) -> Result<(), EnvironmentError> {
        Ok(())
    }
}

impl WireRules for crate::api::RegisterWorker {}
impl WireRules for crate::api::Heartbeat {}
impl WireRules for crate::api::PingRequest {}

impl WireRules for CreateEnvironment {
    const HAS_RULES: bool = true;

    fn check_wire(body: &serde_json::Value) -> Result<(), EnvironmentError> {
        if body.get("status").is_some_and(serde_json::Value::is_null) {
            return Err(field_error(
                &["status"],
                "status cannot be null: leave it out for the default",
                "enum",
            ));
        }
        check_execution_environment_keys(body)
    }
}

impl WireRules for UpdateEnvironment {
    const HAS_RULES: bool = true;

    fn check_wire(body: &serde_json::Value) -> Result<(), EnvironmentError> {
        check_execution_environment_keys(body)
    }
}

/// `execution_environment` holds only the keys the service knows.
fn check_execution_environment_keys(body: &serde_json::Value) -> Result<(), EnvironmentError> {
    let Some(object) = body
        .get("execution_environment")
        .and_then(serde_json::Value::as_object)
    else {
        return Ok(());
    };
    let allowed = crate::model::ExecutionEnvironment::KEYS;
    match object.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(unknown) => Err(field_error(
            &["execution_environment", unknown],
            &format!(
                "Extra inputs are not permitted (known keys: {})",
                allowed.join(", ")
            ),
            "extra_forbidden",
        )),
        None => Ok(()),
    }
}

fn field_error(path: &[&str], msg: &str, kind: &str) -> EnvironmentError {
    let mut loc = vec![serde_json::Value::from("body")];
    loc.extend(path.iter().map(|segment| serde_json::Value::from(*segment)));
    EnvironmentError::Validation {
        errors: vec![FieldError {
            loc,
            msg: msg.to_owned(),
            kind: kind.to_owned(),
        }],
    }
}

/// Parses a body and checks its wire rules.
fn parse_checked<T: WireRules>(body: &[u8]) -> Result<T, EnvironmentError> {
    let value = parse_body(body)?;
    // Parsed from the same bytes, so it is valid JSON now.
    if !T::HAS_RULES {
        return Ok(value);
    }
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(body) {
        T::check_wire(&raw)?;
    }
    Ok(value)
}

impl<T: WireRules, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    EnvironmentError::Api {
                        status: status.as_u16(),
                        detail: "request body too large".to_owned(),
                    }
                } else {
                    EnvironmentError::Api {
                        status: StatusCode::BAD_REQUEST.as_u16(),
                        detail: "cannot read the request body".to_owned(),
                    }
                }
            })?;
        parse_checked(&body).map(ApiJson).map_err(ApiError::from)
    }
}

/// A create-environment body as the service reads it before touching the store: decoded, then
/// validated; every failure is the answer the service gives (a 422 naming the fields). For tools
/// that check bodies outside a server, such as the fuzz targets in `fuzz/`.
pub fn read_create_body(body: &[u8]) -> Result<CreateEnvironment, EnvironmentError> {
    let data = parse_checked(body)?;
    validation::check_create(&data)?;
    Ok(data)
}

/// An update-environment body as the service reads it; see [`read_create_body`].
pub fn read_update_body(body: &[u8]) -> Result<UpdateEnvironment, EnvironmentError> {
    let patch = parse_checked(body)?;
    validation::check_update(&patch)?;
    Ok(patch)
}

/// Parses a JSON body, reporting where it went wrong as a 422 field error.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, EnvironmentError> {
    // serde also reads a struct from an array (`[]` would be an empty patch): every body of this
    // API is an object. Text that is no JSON value at all is left to the decoder's message.
    if body
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|first| matches!(first, b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'))
    {
        return Err(EnvironmentError::Validation {
            errors: vec![FieldError {
                loc: vec!["body".into()],
                msg: "Input should be a valid dictionary or object to extract fields from"
                    .to_owned(),
                kind: "model_attributes_type".to_owned(),
            }],
        });
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| validation_error(error.path().iter(), error.inner()))?;
    deserializer
        .end()
        .map_err(|error| validation_error(std::iter::empty(), &error))?;
    Ok(value)
}

fn validation_error<'a>(
    path: impl Iterator<Item = &'a serde_path_to_error::Segment>,
    error: &serde_json::Error,
) -> EnvironmentError {
    let mut loc = vec![serde_json::Value::from("body")];
    for segment in path {
        match segment {
            serde_path_to_error::Segment::Seq { index } => loc.push((*index).into()),
            serde_path_to_error::Segment::Map { key } => loc.push(key.as_str().into()),
            serde_path_to_error::Segment::Enum { variant } => loc.push(variant.as_str().into()),
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    let message = without_position(&error.to_string());
    let kind = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            return EnvironmentError::Validation {
                errors: vec![FieldError {
                    loc,
                    msg: format!("JSON decode error: {message}"),
                    kind: "json_invalid".to_owned(),
                }],
            };
        }
        serde_json::error::Category::Io => "value_error",
        serde_json::error::Category::Data => {
            // serde names the field in the message for these two; pydantic puts it in `loc`.
            if let Some(field) = quoted_after(&message, "unknown field `") {
                push_field(&mut loc, field);
                "extra_forbidden"
            } else if let Some(field) = quoted_after(&message, "missing field `") {
                push_field(&mut loc, field);
                "missing"
            } else if message.starts_with("unknown variant") {
                "enum"
            } else if message.starts_with("invalid type") {
                "type_error"
            } else {
                "value_error"
            }
        }
    };
    EnvironmentError::Validation {
        errors: vec![FieldError {
            loc,
            msg: message,
            kind: kind.to_owned(),
        }],
    }
}

/// Adds the field named by the message unless the path already ends with it.
fn push_field(loc: &mut Vec<serde_json::Value>, field: &str) {
    if loc.last().and_then(|last| last.as_str()) != Some(field) {
        loc.push(field.into());
    }
}

/// serde_json appends " at line L column C", which means nothing to a caller that sent JSON.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

fn quoted_after<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{CreateEnvironment, UpdateEnvironment};

    #[test]
    fn null_status_and_unknown_execution_keys_are_refused() {
        let errors = field_errors(read_create_body(br#"{"name": "a", "status": null}"#));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].loc, [serde_json::json!("body"), "status".into()]);
        let errors = field_errors(read_create_body(
            br#"{"name": "a", "execution_environment": {"env_vars": {}, "evil": 1}}"#,
        ));
        assert_eq!(
            errors[0].loc,
            [
                serde_json::json!("body"),
                "execution_environment".into(),
                "evil".into()
            ]
        );
        assert_eq!(errors[0].kind, "extra_forbidden");
        let errors = field_errors(read_update_body(
            br#"{"execution_environment": {"secret": ["x"]}}"#,
        ));
        assert_eq!(errors[0].kind, "extra_forbidden");
        read_create_body(br#"{"name": "ab", "execution_environment": {"secrets": ["s"]}}"#)
            .expect("known keys");
        assert!(read_create_body(br#"{"name": "ab", "status": "active"}"#).is_ok());
    }

    fn field_errors(result: Result<impl Sized, EnvironmentError>) -> Vec<FieldError> {
        match result {
            Err(EnvironmentError::Validation { errors }) => errors,
            Err(other) => panic!("expected a validation error, got {other}"),
            Ok(_) => panic!("expected a validation error, got a value"),
        }
    }

    #[test]
    fn syntax_error_is_json_invalid() {
        let errors = field_errors(parse_body::<CreateEnvironment>(b"{\"name\": "));
        assert_eq!(errors[0].kind, "json_invalid");
        // The location is where the JSON broke off.
        assert_eq!(
            errors[0].loc,
            vec![serde_json::json!("body"), serde_json::json!("name")]
        );
        assert!(errors[0].msg.starts_with("JSON decode error"));
    }

    #[test]
    fn wrong_type_points_at_the_field() {
        let errors = field_errors(parse_body::<CreateEnvironment>(
            br#"{"name": "ok", "configuration": {"max_workers": 1}, "tags": ["a", 5]}"#,
        ));
        assert_eq!(errors[0].kind, "type_error");
        assert_eq!(errors[0].path(), "tags.1");
        assert!(!errors[0].msg.contains("line"), "{}", errors[0].msg);
    }

    #[test]
    fn bodies_are_decoded_then_validated() {
        let errors = field_errors(read_create_body(br#"{"name": "x"}"#));
        assert_eq!(errors[0].kind, "string_too_short");
        let errors = field_errors(read_update_body(br#"{"name": null}"#));
        assert_eq!(errors[0].path(), "name");
        let errors = field_errors(read_create_body(b"\xff"));
        assert_eq!(errors[0].kind, "json_invalid");
        assert!(read_create_body(br#"{"name": "staging"}"#).is_ok());
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let errors = field_errors(parse_body::<CreateEnvironment>(
            br#"{"name": "x", "nmae": 1}"#,
        ));
        assert_eq!(errors[0].kind, "extra_forbidden");
        assert_eq!(errors[0].path(), "nmae");
        let errors = field_errors(parse_body::<CreateEnvironment>(br#"{"description": "x"}"#));
        assert_eq!(errors[0].kind, "missing");
        assert_eq!(errors[0].path(), "name");
    }

    #[test]
    fn bad_status_is_an_enum_error() {
        let errors = field_errors(parse_body::<UpdateEnvironment>(br#"{"status": "paused"}"#));
        assert_eq!(errors[0].kind, "enum");
        assert_eq!(errors[0].path(), "status");
    }

    #[test]
    fn trailing_garbage_is_refused() {
        let errors = field_errors(parse_body::<UpdateEnvironment>(br#"{} {}"#));
        assert_eq!(errors[0].kind, "json_invalid");
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_whole() {
        for body in [&b"[]"[..], b" [\"x\"]", b"\"x\"", b"5", b"null"] {
            let errors = field_errors(parse_body::<UpdateEnvironment>(body));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].loc, vec![serde_json::Value::from("body")]);
            assert_eq!(errors[0].kind, "model_attributes_type");
        }
    }
}
