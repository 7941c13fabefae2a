//! `EnvironmentError`: every way an Environments API call can fail, parsed from the three
//! `detail` shapes of docs/src/concepts/service.md (string, array of field errors, object).

use serde::{Deserialize, Serialize};

/// One field error of a 422 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// Where the error is, e.g. `["body", "configuration", "max_workers"]`.
    #[serde(default)]
    pub loc: Vec<serde_json::Value>,
    /// What is wrong.
    pub msg: String,
    /// A machine-readable kind.
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl FieldError {
    /// A body field error at `body.<path>`.
    pub fn body(path: &[&str], msg: impl Into<String>, kind: impl Into<String>) -> Self {
        let mut loc = vec![serde_json::Value::from("body")];
        loc.extend(path.iter().map(|part| serde_json::Value::from(*part)));
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }

    /// The location as a dotted path, without the leading `body`.
    pub fn path(&self) -> String {
        self.loc
            .iter()
            .skip_while(|part| part.as_str() == Some("body"))
            .map(|part| match part {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(".")
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path(), self.msg)
    }
}

/// Why an Environments API call failed.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EnvironmentError {
    /// 404: no such environment in this organization.
    #[error("not found: {detail}")]
    #[diagnostic(code(envform::api::not_found))]
    NotFound {
        /// The service's message.
        detail: String,
    },
    /// 409: the name is taken.
    #[error("conflict: {detail}")]
    #[diagnostic(
        code(envform::api::conflict),
        help("environment names are unique within an organization")
    )]
    Conflict {
        /// The service's message.
        detail: String,
    },
    /// 422: the body is invalid.
    #[error("validation failed: {}", join_errors(errors))]
    #[diagnostic(code(envform::api::validation))]
    Validation {
        /// One entry per invalid field.
        errors: Vec<FieldError>,
    },
    /// 401: no key, or a key the service does not know.
    #[error("unauthorized: {detail}")]
    #[diagnostic(
        code(envform::api::unauthorized),
        help(
            "set KUBIYA_API_KEY (or --api-key) to a key the service at --api-url (KUBIYA_CONTROL_PLANE_URL) accepts"
        )
    )]
    Unauthorized {
        /// The service's message.
        detail: String,
    },
    /// Any other error status (400 for the default environment, 413, 5xx, ...).
    #[error("API error {status}: {detail}")]
    #[diagnostic(code(envform::api::error))]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The service's message.
        detail: String,
    },
    /// The request did not complete: connection refused or reset, TLS, a body that is not JSON.
    #[error("transport error: {message}")]
    #[diagnostic(
        code(envform::api::transport),
        help("check --api-url / KUBIYA_CONTROL_PLANE_URL and the network")
    )]
    Transport {
        /// What went wrong, with its causes on one line.
        message: String,
        /// The underlying error. Not the error's `source`: `message` already says it, and a
        /// report would otherwise print every cause twice.
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The request timed out; whether the service acted on it is unknown.
    #[error("request timed out after {seconds:.1}s")]
    #[diagnostic(
        code(envform::api::timeout),
        help("raise --request-timeout, or check the service")
    )]
    Timeout {
        /// How long the client waited.
        seconds: f64,
    },
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl EnvironmentError {
    /// The HTTP status this error stands for, if it came from (or maps to) an HTTP answer.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            EnvironmentError::NotFound { .. } => Some(404),
            EnvironmentError::Conflict { .. } => Some(409),
            EnvironmentError::Validation { .. } => Some(422),
            EnvironmentError::Unauthorized { .. } => Some(401),
            EnvironmentError::Api { status, .. } => Some(*status),
            EnvironmentError::Transport { .. } | EnvironmentError::Timeout { .. } => None,
        }
    }

    /// Whether the service may or may not have acted on the request (a write's outcome is unknown).
    pub fn is_ambiguous(&self) -> bool {
        match self {
            EnvironmentError::Transport { .. } | EnvironmentError::Timeout { .. } => true,
            EnvironmentError::Api { status, .. } => matches!(status, 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// Builds the error for an HTTP error answer from its status and body.
    pub fn from_response(status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Envelope {
            detail: serde_json::Value,
        }
        let detail = serde_json::from_slice::<Envelope>(body)
            .map(|envelope| envelope.detail)
            .unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(body).trim().to_owned())
            });
        if status == 422
            && let Ok(errors) = serde_json::from_value::<Vec<FieldError>>(detail.clone())
        {
            return EnvironmentError::Validation { errors };
        }
        let detail = detail_text(&detail);
        match status {
            401 => EnvironmentError::Unauthorized { detail },
            404 => EnvironmentError::NotFound { detail },
            409 => EnvironmentError::Conflict { detail },
            422 => EnvironmentError::Validation {
                errors: vec![FieldError {
                    loc: vec![],
                    msg: detail,
                    kind: "value_error".into(),
                }],
            },
            _ => EnvironmentError::Api { status, detail },
        }
    }

    /// The `{"detail": ...}` body the service sends for this error.
    pub fn to_body(&self) -> serde_json::Value {
        let detail = match self {
            EnvironmentError::Validation { errors } => serde_json::json!(errors),
            EnvironmentError::Unauthorized { detail } => serde_json::json!({ "message": detail }),
            EnvironmentError::NotFound { detail }
            | EnvironmentError::Conflict { detail }
            | EnvironmentError::Api { detail, .. } => serde_json::json!(detail),
            other => serde_json::json!(other.to_string()),
        };
        serde_json::json!({ "detail": detail })
    }
}

/// A readable text for any of the three `detail` shapes.
fn detail_text(detail: &serde_json::Value) -> String {
    match detail {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Object(object) => ["message", "detail", "error"]
            .iter()
            .find_map(|key| object.get(*key).and_then(|value| value.as_str()))
            .map(str::to_owned)
            .unwrap_or_else(|| detail.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| {
                item.get("msg")
                    .and_then(|msg| msg.as_str())
                    .map(str::to_owned)
                    .unwrap_or_else(|| item.to_string())
            })
            .collect::<Vec<_>>()
            .join("; "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_string_detail() {
        let error = EnvironmentError::from_response(404, br#"{"detail":"Environment not found"}"#);
        assert!(
            matches!(error, EnvironmentError::NotFound { detail } if detail == "Environment not found")
        );
    }

    #[test]
    fn parses_validation_array() {
        let body =
            br#"{"detail":[{"loc":["body","name"],"msg":"too short","type":"value_error"}]}"#;
        let EnvironmentError::Validation { errors } = EnvironmentError::from_response(422, body)
        else {
            panic!("expected a validation error");
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path(), "name");
    }

    #[test]
    fn parses_object_detail() {
        let error =
            EnvironmentError::from_response(401, br#"{"detail":{"message":"invalid api key"}}"#);
        assert!(
            matches!(error, EnvironmentError::Unauthorized { detail } if detail == "invalid api key")
        );
    }

    #[test]
    fn non_json_body_keeps_text() {
        let error = EnvironmentError::from_response(502, b"Bad Gateway");
        assert!(
            matches!(error, EnvironmentError::Api { status: 502, detail } if detail == "Bad Gateway")
        );
    }
}
