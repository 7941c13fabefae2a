//! The OpenAPI document: the served one is the committed `docs/openapi.json`, and every answer
//! the contract suite receives, through its wire client or through the SDK (by way of a checking
//! proxy), is checked against the document's schema for its path, method and status.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::State;

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

/// Checks one answer against the document, panicking with what is off it.
pub(crate) fn check_answer(method: &reqwest::Method, path: &str, status: u16, body: &str) {
    if let Err(problem) = answer_problem(method, path, status, body) {
        panic!("{problem}");
    }
}

/// What is off the document in one answer: its status must be documented for the operation (or
/// covered by `default`), and a JSON body must match the schema given for it. Answers to paths
/// the document does not describe (the fault report, unknown paths) are not checked.
fn answer_problem(
    method: &reqwest::Method,
    path: &str,
    status: u16,
    body: &str,
) -> Result<(), String> {
    let Some(template) = template_of(path) else {
        return Ok(());
    };
    let operation = &document()["paths"][template][method.as_str().to_ascii_lowercase()];
    if operation.is_null() {
        // An undocumented method: the service must refuse it.
        return if status == 405 || status == 404 {
            Ok(())
        } else {
            Err(format!(
                "{method} {path} is not in the document, yet answered {status}"
            ))
        };
    }
    let responses = &operation["responses"];
    let response = responses
        .get(status.to_string())
        .or_else(|| responses.get("default"))
        .ok_or_else(|| format!("{method} {template}: status {status} is not documented"))?;
    let Some(schema) = response
        .pointer("/content/application~1json/schema")
        .cloned()
    else {
        return Ok(());
    };
    if body.is_empty() {
        return Ok(());
    }
    let instance: Value = serde_json::from_str(body).map_err(|error| {
        format!("{method} {path} answered {status} with no JSON ({error}): {body}")
    })?;
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
        .map_err(|error| format!("the schema of {method} {template} {status}: {error}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|error| format!("{} at {}", error, error.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{method} {path} answered {status} off the document: {errors:?}\n{body}"
        ))
    }
}

/// A proxy on 127.0.0.1 in front of `envform serve` that checks every answer against the
/// document, so that what the SDK receives is held to it too.
pub(crate) struct CheckingProxy {
    url: String,
    forward: Arc<Forward>,
    task: tokio::task::JoinHandle<()>,
}

/// What the proxy shares with its handler.
struct Forward {
    upstream: String,
    http: reqwest::Client,
    checked: AtomicUsize,
    problems: Mutex<Vec<String>>,
}

impl CheckingProxy {
    /// Starts a proxy forwarding to `upstream` (a base URL).
    pub(crate) async fn start(upstream: &str) -> Self {
        envform::api::install_crypto_provider();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let forward = Arc::new(Forward {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            checked: AtomicUsize::new(0),
            problems: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(forward_one)
            .with_state(Arc::clone(&forward));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, forward, task }
    }

    /// The base URL to give the SDK.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Stops the proxy; panics with every answer that was off the document. The number of
    /// answers checked.
    pub(crate) fn finish(self) -> usize {
        self.task.abort();
        let problems = self
            .forward
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            problems.is_empty(),
            "answers the SDK received are off the document:\n{}",
            problems.join("\n")
        );
        self.forward.checked.load(Ordering::Relaxed)
    }
}

/// Forwards one request upstream and checks its answer on the way back.
async fn forward_one(
    State(forward): State<Arc<Forward>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let fail = |message: String| {
        forward
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
        axum::response::Response::builder()
            .status(502)
            .body(axum::body::Body::empty())
            .unwrap_or_default()
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            return fail(format!(
                "{} {path}: reading the request: {error}",
                parts.method
            ));
        }
    };
    let mut outgoing = forward
        .http
        .request(parts.method.clone(), format!("{}{path}", forward.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !is_hop_by_hop(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => return fail(format!("{} {path}: forwarding: {error}", parts.method)),
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = match answer.bytes().await {
        Ok(bytes) => bytes,
        Err(error) => {
            return fail(format!(
                "{} {path}: reading the answer: {error}",
                parts.method
            ));
        }
    };
    forward.checked.fetch_add(1, Ordering::Relaxed);
    if let Err(problem) = answer_problem(
        &parts.method,
        &path,
        status.as_u16(),
        &String::from_utf8_lossy(&bytes),
    ) {
        forward
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(problem);
    }
    let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if !is_hop_by_hop(name) {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

/// Headers that belong to one connection, not to the request or answer.
fn is_hop_by_hop(name: &reqwest::header::HeaderName) -> bool {
    use reqwest::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
    [CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING].contains(name)
        || name.as_str() == "keep-alive"
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

#[tokio::test]
async fn the_checking_proxy_reports_an_answer_off_the_document() {
    // An upstream that answers the list with a wrong shape.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let upstream = format!("http://{}", listener.local_addr().expect("address"));
    let app = axum::Router::new().fallback(|| async {
        (
            [("content-type", "application/json")],
            r#"[{"id": "not-a-uuid", "status": "paused"}]"#,
        )
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let proxy = CheckingProxy::start(&upstream).await;
    let answer = reqwest::get(format!("{}/api/v1/environments", proxy.url()))
        .await
        .expect("through the proxy");
    assert_eq!(answer.status(), 200);
    assert!(answer.text().await.expect("body").contains("not-a-uuid"));
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| proxy.finish()));
    server.abort();
    let message = finished.expect_err("the wrong shape is reported");
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(message.contains("off the document"), "{message}");
}
