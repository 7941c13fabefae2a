//! The OpenAPI document: the served one is the committed `docs/openapi.json`, and every answer
//! the contract suite's wire client receives is checked against the document's schema for its
//! path, method and status.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::Server;

/// The committed document.
fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

/// The document the library generates (the one `envform serve` serves).
fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        serde_json::from_str(&envform::server::openapi_json()).expect("the document is JSON")
    })
}

#[test]
fn the_served_document_is_the_committed_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // No key needed.
    let (status, served) = runtime.block_on(async {
        let response = reqwest::get(format!("{}/api/openapi.json", server.url()))
            .await
            .expect("GET /api/openapi.json");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    });
    assert_eq!(status, 200, "{served}");
    if std::env::var_os("ENVFORM_UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path(), &served).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json differs from the served document: run \
         `ENVFORM_UPDATE_OPENAPI=1 cargo test --test integration the_served_document` and review the diff"
    );
    let served: Value = serde_json::from_str(&served).expect("JSON");
    assert_eq!(&served, document());
}

/// Every operation that takes a credential documents 401; those taking an API key also 403 (a
/// role too low) and 429 (with `Retry-After`); the paged routes take `limit` and `cursor`.
#[test]
fn authenticated_operations_document_401_403_and_429() {
    let mut checked = 0;
    for (path, item) in document()["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let schemes: Vec<&String> = operation["security"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_object)
                .flat_map(|requirement| requirement.keys())
                .collect();
            if schemes.is_empty() {
                continue;
            }
            checked += 1;
            let responses = &operation["responses"];
            assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            if schemes.iter().any(|scheme| *scheme != "WorkerToken") {
                assert!(responses.get("403").is_some(), "{method} {path}: no 403");
                assert!(
                    responses["429"]["headers"].get("Retry-After").is_some(),
                    "{method} {path}: no 429 with Retry-After"
                );
            } else {
                assert!(
                    responses.get("403").is_none(),
                    "{method} {path}: worker routes have no roles"
                );
            }
        }
    }
    assert!(checked >= 15, "only {checked} authenticated operations");
    for path in ["/api/v1/audit", "/api/v1/state/{workspace}/events"] {
        let parameters: Vec<&str> = document()["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .filter_map(|parameter| parameter["name"].as_str())
            .collect();
        assert!(
            parameters.contains(&"limit") && parameters.contains(&"cursor"),
            "{path}: {parameters:?}"
        );
        let page = &document()["paths"][path]["get"]["responses"]["200"];
        assert!(page.to_string().contains("Page"), "{path}: {page}");
    }
}

/// The path template of the document that `path` is, preferring literal segments
/// (`/api/v1/workers/register` over `/api/v1/workers/{id}`).
fn template_of(path: &str) -> Option<&'static str> {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    document()["paths"]
        .as_object()?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') {
                    continue;
                }
                if part != segment {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template)
}

/// Checks one answer against the document: its status is documented for the operation (or
/// covered by `default`), and a JSON body matches the schema given for it. Answers to paths the
/// document does not describe (the fault report, unknown paths) are not checked.
pub(crate) fn check_answer(method: &reqwest::Method, path: &str, status: u16, body: &str) {
    let Some(template) = template_of(path) else {
        return;
    };
    let operation = &document()["paths"][template][method.as_str().to_ascii_lowercase()];
    if operation.is_null() {
        // An undocumented method: the service must refuse it.
        assert!(
            status == 405 || status == 404,
            "{method} {path} is not in the document, yet answered {status}"
        );
        return;
    }
    let responses = &operation["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| panic!("{method} {template}: status {status} is not documented"));
    let Some(schema) = response
        .pointer("/content/application~1json/schema")
        .cloned()
    else {
        return;
    };
    if body.is_empty() {
        return;
    }
    let instance: Value = serde_json::from_str(body).unwrap_or_else(|error| {
        panic!("{method} {path} answered {status} with no JSON ({error}): {body}")
    });
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document()["components"].clone(),
    });
    if let (Some(root), Value::Object(schema)) = (root.as_object_mut(), schema) {
        root.extend(schema);
    }
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("the schema of {method} {template} {status}: {error}"));
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} answered {status} off the document: {errors:?}\n{body}"
    );
}

#[test]
fn answers_outside_the_schema_are_caught() {
    // The check itself can fail: a wrong shape, an undocumented status.
    let wrong = std::panic::catch_unwind(|| {
        check_answer(
            &reqwest::Method::GET,
            "/api/v1/environments",
            200,
            r#"[{"id": "not-a-uuid", "name": 5, "status": "paused"}]"#,
        );
    });
    assert!(wrong.is_err());
    let right = std::panic::catch_unwind(|| {
        check_answer(
            &reqwest::Method::GET,
            "/api/v1/environments/",
            404,
            r#"{"detail": "Environment not found"}"#,
        );
    });
    assert!(right.is_ok());
    assert_eq!(
        template_of("/api/v1/workers/register"),
        Some("/api/v1/workers/register")
    );
}
