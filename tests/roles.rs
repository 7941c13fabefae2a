//! Roles and key lifecycle: a viewer key reads and plans but cannot write (403 naming the role);
//! a keys file holds named keys by digest and is read again on SIGHUP; the audit log names keys;
//! guessing keys is slowed to 429.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{KEY_A, Scenario, Server, write_file};

const VIEWER: &str = "viewer-key-1";

async fn call(
    server: &Server,
    method: Method,
    path: &str,
    key: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, String) {
    let mut request = http_client()
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.body(body);
    }
    let answer = request.send().await.expect("an answer");
    let status = answer.status();
    (status, answer.text().await.unwrap_or_default())
}

fn lock_body(id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"ID": id, "Operation": "apply", "Who": "ci", "Version": "1", "Created": "2026-01-01T00:00:00Z", "Path": "", "Info": ""}))
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_key_plans_but_cannot_write() {
    let scenario = Scenario::with(Server::options().key(VIEWER, "org-a:viewer"));
    scenario.write("version: 1\nenvironments:\n  - name: staging\n    description: s\n");
    let plan = scenario
        .plan()
        .env("KUBIYA_API_KEY", VIEWER)
        .output()
        .expect("run envform plan");
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(String::from_utf8_lossy(&plan.stdout).contains("staging"));
    let server = &scenario.server;
    // An environment made by an admin key, for the viewer to try to delete.
    let (status, created) = call(
        server,
        Method::POST,
        "/api/v1/environments",
        KEY_A,
        Some(br#"{"name": "made-by-admin"}"#.to_vec()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = serde_json::from_str::<Value>(&created).expect("JSON")["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    let refused = [
        (
            Method::POST,
            "/api/v1/environments".to_owned(),
            Some(br#"{"name": "by-viewer"}"#.to_vec()),
            "editor",
        ),
        (
            Method::DELETE,
            format!("/api/v1/environments/{id}"),
            None,
            "editor",
        ),
        (
            Method::GET,
            format!("/api/v1/environments/{id}/worker-command"),
            None,
            "editor",
        ),
        (
            Method::POST,
            format!("/api/v1/environments/{id}/worker-token/rotate"),
            None,
            "admin",
        ),
        (
            Method::from_bytes(b"LOCK").expect("method"),
            "/api/v1/state/main".to_owned(),
            Some(lock_body("viewer-lock")),
            "editor",
        ),
        (
            Method::POST,
            "/api/v1/state/main".to_owned(),
            Some(br#"{"version": 4}"#.to_vec()),
            "editor",
        ),
    ];
    for (method, path, body, role) in refused {
        let (status, text) = call(server, method.clone(), &path, VIEWER, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {text}");
        assert!(
            text.contains(&format!("needs the {role} role")),
            "{method} {path}: {text}"
        );
    }
    // Nothing changed: the environment is still there, no state and no lock were written.
    let (status, _) = call(
        server,
        Method::GET,
        &format!("/api/v1/environments/{id}"),
        VIEWER,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call(server, Method::GET, "/api/v1/state/main", VIEWER, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "no state was written");
    let (status, events) = call(
        server,
        Method::GET,
        "/api/v1/state/main/events",
        VIEWER,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        events.trim(),
        r#"{"events":[],"next_cursor":null}"#,
        "no lock event: {events}"
    );
    // Viewers read the audit log, which names the admin key by its fingerprint.
    let (status, audit) = call(server, Method::GET, "/api/v1/audit", VIEWER, None).await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(audit.contains("\"actor\":\"key:"), "{audit}");
}

fn digest(key: &str) -> String {
    envform::server::key_digest_text(key)
}

fn keys_file(entries: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("keys:\n");
    for (name, key, role) in entries {
        text.push_str(&format!(
            "  - name: {name}\n    organization: org-a\n    role: {role}\n    digest: {}\n",
            digest(key)
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_adds_and_revokes_keys_without_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("keys.yaml");
    write_file(
        dir.path(),
        "keys.yaml",
        &keys_file(&[("deployer", "sk-old", "editor")]),
    );
    let server = Server::options()
        .without_keys()
        .args(["--api-keys-file", &file.display().to_string()])
        .start(&dir.path().join("serve.db"));
    let text = std::fs::read_to_string(&file).expect("keys file");
    assert!(!text.contains("sk-old"), "only digests are stored");
    // A kept-alive client: its connection outlives the reload.
    let client = http_client();
    let status = |key: &'static str| {
        let client = client.clone();
        let url = format!("{}/api/v1/environments", server.url);
        async move {
            client
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .expect("an answer")
                .status()
        }
    };
    assert_eq!(status("sk-old").await, StatusCode::OK);
    assert_eq!(status("sk-new").await, StatusCode::UNAUTHORIZED);
    let created = client
        .post(format!("{}/api/v1/environments", server.url))
        .bearer_auth("sk-old")
        .json(&json!({"name": "by-deployer"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(created.status(), StatusCode::CREATED);

    write_file(
        dir.path(),
        "keys.yaml",
        &keys_file(&[("rotated", "sk-new", "viewer")]),
    );
    let pid = server.pid();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(hangup.success());
    let mut reloaded = false;
    for _ in 0..100 {
        if status("sk-new").await == StatusCode::OK {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reloaded,
        "the new key works after SIGHUP:\n{}",
        server.log()
    );
    assert_eq!(status("sk-old").await, StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(server.pid(), pid, "the same process");
    // A broken file leaves the keys in force.
    write_file(dir.path(), "keys.yaml", "keys: [not a key]\n");
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    let mut logged = false;
    for _ in 0..100 {
        if server.log().contains("API keys not changed") {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "{}", server.log());
    assert_eq!(status("sk-new").await, StatusCode::OK);
    // The audit log names the key that created the environment.
    let audit: Value = client
        .get(format!("{}/api/v1/audit", server.url))
        .bearer_auth("sk-new")
        .send()
        .await
        .expect("an answer")
        .json()
        .await
        .expect("JSON");
    let actors: Vec<&str> = audit["events"]
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|event| event["actor"].as_str())
        .collect();
    assert!(actors.contains(&"key:deployer"), "{actors:?}");
    assert!(!server.log().contains("sk-old") && !server.log().contains("sk-new"));
}

#[tokio::test(flavor = "multi_thread")]
async fn guessing_keys_is_slowed_per_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("serve.db"), &["--auth-failure-burst", "5"]);
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for guess in 0..8 {
        let answer = http_client()
            .get(format!("{}/api/v1/environments", server.url))
            .bearer_auth(format!("guess-{guess}"))
            .send()
            .await
            .expect("an answer");
        if answer.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = answer
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(
        statuses[5..].iter().all(|status| *status == 429),
        "{statuses:?}"
    );
    let seconds: u64 = retry_after
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(seconds >= 1);
    // While blocked, even the right key waits; afterwards it works again.
    let (status, _) = call(&server, Method::GET, "/api/v1/environments", KEY_A, None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    tokio::time::sleep(Duration::from_secs(seconds + 1)).await;
    let (status, _) = call(&server, Method::GET, "/api/v1/environments", KEY_A, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_may_come_alone_or_in_a_userkey_header() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let url = format!("{}/api/v1/environments", server.url);
    let client = http_client();
    for (header, value) in [
        ("Authorization", KEY_A.to_owned()),
        ("UserKey", KEY_A.to_owned()),
        ("Authorization", format!("UserKey {KEY_A}")),
    ] {
        let answer = client
            .get(&url)
            .header(header, &value)
            .send()
            .await
            .expect("an answer");
        assert_eq!(answer.status(), StatusCode::OK, "{header}: {value}");
    }
    let both = client
        .get(&url)
        .header("Authorization", format!("Bearer {KEY_A}"))
        .header("UserKey", KEY_A)
        .send()
        .await
        .expect("an answer");
    assert_eq!(both.status(), StatusCode::BAD_REQUEST);
}

/// A reqwest client (the crypto provider installed first).
fn http_client() -> reqwest::Client {
    envform::api::install_crypto_provider();
    reqwest::Client::new()
}
