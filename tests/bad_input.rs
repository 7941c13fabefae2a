//! The bad-input corpus of `tests/fixtures/bad/`: request bodies and headers against a real
//! `envform serve`, and command-line flags and environment variables against the binary. Each
//! case's outcome (HTTP status or exit code, and message) is asserted; nothing panics; a rejected
//! request leaves the service's data as it was.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::support::{KEY_A, KEY_B, Server, envform};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

#[derive(Debug, Deserialize)]
struct RequestCase {
    name: String,
    method: String,
    path: String,
    authorization: Option<String>,
    body: Value,
    status: u16,
}

async fn list(client: &reqwest::Client, server: &Server, key: &str) -> Value {
    client
        .get(format!("{}/api/v1/environments", server.url))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn body_bytes(body: &Value) -> Option<Vec<u8>> {
    match body {
        Value::Null => None,
        Value::String(text) if text.starts_with("RAW:") => Some(text.as_bytes()[4..].to_vec()),
        Value::String(text) if text.starts_with("HEX:") => Some(
            (4..text.len())
                .step_by(2)
                .map(|index| u8::from_str_radix(&text[index..index + 2], 16).unwrap())
                .collect(),
        ),
        Value::String(text) if text.starts_with("BIG:") => {
            let size: usize = text[4..].parse().unwrap();
            Some(format!(r#"{{"name":"big","description":"{}"}}"#, "a".repeat(size)).into_bytes())
        }
        other => Some(other.to_string().into_bytes()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn request_corpus_is_refused_without_changing_data() {
    let text = std::fs::read_to_string(fixtures().join("requests.json")).unwrap();
    let cases: Vec<RequestCase> = serde_json::from_str(&text).unwrap();
    assert!(cases.len() >= 40);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &["--body-limit", "1MiB"]);
    envform::api::install_crypto_provider();
    // A fresh connection per request: a server that refuses a body early (413) closes the
    // connection, and a pooled one could be reused after that.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let created: Value = client
        .post(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .json(&serde_json::json!({"name": "victim", "description": "unchanged"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let before_a = list(&client, &server, KEY_A).await;
    let before_b = list(&client, &server, KEY_B).await;
    let default_id = before_a
        .as_array()
        .unwrap()
        .iter()
        .find(|env| env["name"] == "default")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_id = before_b[0]["id"].as_str().unwrap().to_owned();

    for case in &cases {
        let path = case
            .path
            .replace("{id}", &id)
            .replace("{default_id}", &default_id)
            .replace("{other_id}", &other_id);
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client.request(method, format!("{}{path}", server.url));
        if let Some(authorization) = &case.authorization {
            request = request.header("Authorization", authorization);
        }
        if let Some(body) = body_bytes(&case.body) {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, case.status, "{}: {body}", case.name);
        let detail: Value = serde_json::from_str(&body)
            .unwrap_or_else(|_| panic!("{}: error body is not JSON: {body}", case.name));
        assert!(detail.get("detail").is_some(), "{}: {body}", case.name);
        assert_eq!(
            list(&client, &server, KEY_A).await,
            before_a,
            "{}: organization A's data changed",
            case.name
        );
        assert_eq!(
            list(&client, &server, KEY_B).await,
            before_b,
            "{}: organization B's data changed",
            case.name
        );
    }
    // Still serving after the whole corpus.
    assert!(
        client
            .get(format!("{}/health", server.url))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    // Two Authorization headers: refused, rather than one picked by order.
    let twice = client
        .post(format!("{}/api/v1/environments", server.url))
        .header("Authorization", format!("Bearer {KEY_B}"))
        .header("Authorization", format!("Bearer {KEY_A}"))
        .json(&serde_json::json!({"name": "twice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status().as_u16(), 400);
    assert_eq!(list(&client, &server, KEY_A).await, before_a);
    assert_eq!(list(&client, &server, KEY_B).await, before_b);
}

#[test]
fn command_line_corpus_fails_clearly() {
    let text = std::fs::read_to_string(fixtures().join("cli.tsv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::write(
        dir.path().join("ok.yaml"),
        "version: 1\nenvironments:\n  - name: fine\n",
    )
    .unwrap();
    let dir_text = dir.path().display().to_string();
    let mut count = 0;
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, arguments, environment, exit, message] = fields[..] else {
            panic!("malformed case line: {line:?}");
        };
        let mut command = envform(dir.path());
        command.args(
            arguments
                .replace("{dir}", &dir_text)
                .split(' ')
                .filter(|arg| !arg.is_empty()),
        );
        for pair in environment.split(';').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap();
            command.env(key, value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(exit.parse().unwrap()),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains(message),
            "{name}: stderr lacks {message:?}:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name} panicked:\n{stderr}");
        count += 1;
    }
    assert!(count >= 25, "{count} cases");
}
