//! Isolation and authentication on every route of `envform serve`: no key, a bad key, another
//! organization's key, and a worker token used as an API key (and the reverse) get 401 or 404 —
//! never another organization's data.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{KEY_A, KEY_B, Server};

struct Fixture {
    server: Server,
    client: reqwest::Client,
    id: String,
    worker_token: String,
    worker_id: String,
}

async fn send(
    fixture: &Fixture,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = fixture
        .client
        .request(method, format!("{}{path}", fixture.server.url));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn fixture() -> (tempfile::TempDir, Fixture) {
    envform::api::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let client = reqwest::Client::new();
    let mut fixture = Fixture {
        server,
        client,
        id: String::new(),
        worker_token: String::new(),
        worker_id: String::new(),
    };
    let (_, body) = send(
        &fixture,
        Method::POST,
        "/api/v1/environments",
        Some(KEY_A),
        Some(json!({"name": "org-a-secret-name"})),
    )
    .await;
    fixture.id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, body) = send(
        &fixture,
        Method::GET,
        &format!("/api/v1/environments/{}/worker-command", fixture.id),
        Some(KEY_A),
        None,
    )
    .await;
    fixture.worker_token = serde_json::from_str::<Value>(&body).unwrap()["worker_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = send(
        &fixture,
        Method::POST,
        "/api/v1/workers/register",
        Some(&fixture.worker_token.clone()),
        Some(json!({"environment": "org-a-secret-name", "hostname": "h", "version": "1"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    fixture.worker_id = serde_json::from_str::<Value>(&body).unwrap()["worker_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Organization A also keeps state.
    let (status, _) = send(
        &fixture,
        Method::POST,
        "/api/v1/state/shared-name",
        Some(KEY_A),
        Some(json!({"org": "a", "marker": "org-a-state-marker"})),
    )
    .await;
    assert!(status.is_success());
    (dir, fixture)
}

/// The API-key routes, with org A's ids filled in.
fn api_routes(fixture: &Fixture) -> Vec<(Method, String, Option<Value>)> {
    let id = &fixture.id;
    vec![
        (Method::GET, "/api/v1/environments".into(), None),
        (
            Method::POST,
            "/api/v1/environments".into(),
            Some(json!({"name": "intruder"})),
        ),
        (Method::GET, format!("/api/v1/environments/{id}"), None),
        (
            Method::PATCH,
            format!("/api/v1/environments/{id}"),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, format!("/api/v1/environments/{id}"), None),
        (
            Method::GET,
            format!("/api/v1/environments/{id}/worker-command"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{id}/workers"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{id}/worker-token/rotate"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/audit?environment_id={id}"),
            None,
        ),
        (Method::GET, "/api/v1/state/shared-name".into(), None),
        (Method::GET, "/api/v1/state/shared-name/events".into(), None),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_bad_key_and_worker_token_are_refused_everywhere() {
    let (_dir, fixture) = fixture().await;
    for (method, path, body) in api_routes(&fixture) {
        for credential in [None, Some("wrong-key"), Some(fixture.worker_token.as_str())] {
            let (status, text) =
                send(&fixture, method.clone(), &path, credential, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {credential:?}: {text}"
            );
            assert!(
                !text.contains("org-a-secret-name"),
                "{method} {path}: {text}"
            );
        }
    }
    // Worker routes take a worker token, never an API key.
    let worker_routes = [
        (
            Method::POST,
            "/api/v1/workers/register".to_owned(),
            Some(json!({"environment": "org-a-secret-name", "hostname": "h", "version": "1"})),
        ),
        (
            Method::POST,
            format!("/api/v1/workers/{}/heartbeat", fixture.worker_id),
            Some(json!({"busy": false})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/workers/{}", fixture.worker_id),
            None,
        ),
    ];
    for (method, path, body) in worker_routes {
        for credential in [None, Some("wrong-token"), Some(KEY_A)] {
            let (status, text) =
                send(&fixture, method.clone(), &path, credential, body.clone()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {credential:?}: {text}"
            );
        }
    }
    // Health needs nothing.
    let (status, _) = send(&fixture, Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_organization_sees_nothing_of_organization_a() {
    let (_dir, fixture) = fixture().await;
    for (method, path, body) in api_routes(&fixture) {
        let (status, text) = send(&fixture, method.clone(), &path, Some(KEY_B), body).await;
        assert!(
            !text.contains("org-a-secret-name") && !text.contains("org-a-state-marker"),
            "{method} {path} leaked organization A's data: {text}"
        );
        assert!(
            !text.contains(&fixture.id) || status == StatusCode::NOT_FOUND,
            "{method} {path}: {status} {text}"
        );
        if path.contains(&fixture.id) && !path.contains("audit") {
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {text}");
        }
    }
    // Organization A's environment and state are untouched.
    let (status, text) = send(
        &fixture,
        Method::GET,
        &format!("/api/v1/environments/{}", fixture.id),
        Some(KEY_A),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!text.contains("\"description\":\"x\""), "{text}");
    let (_, text) = send(
        &fixture,
        Method::GET,
        "/api/v1/state/shared-name",
        Some(KEY_A),
        None,
    )
    .await;
    assert!(text.contains("org-a-state-marker"), "{text}");
    // The worker's heartbeat still works: B's rotate did not touch A's tokens.
    let (status, text) = send(
        &fixture,
        Method::POST,
        &format!("/api/v1/workers/{}/heartbeat", fixture.worker_id),
        Some(&fixture.worker_token.clone()),
        Some(json!({"busy": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
}
