//! State locks bound to the API key that took them, on a real `envform serve` with SQLite and
//! with PostgreSQL: another key of the same organization cannot renew, write under, release or
//! (without the admin role) break the lock, not even with the holder's lock ID and fencing token
//! copied from the event log; refusals name the holder's key, never its ID; the event log names
//! every key.

use std::path::Path;

use envform::control_plane::state_service::{
    LockEventKind, RecordedLockEvent, WriteRefusal, check_single_holder, key_trail,
};
use predicates::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, ServerOptions, write_file};

/// Alice (editor) takes the lock; Bob (editor, same organization) tries to hijack it; Carol
/// (admin) breaks it.
const ALICE: &str = "sk-alice-0001";
const BOB: &str = "sk-bob-0002";
const CAROL: &str = "sk-carol-0003";
const ALICE_LOCK: &str = "3f5e1a2b-alice-lock";

fn keys_file() -> String {
    let mut text = String::from("keys:\n");
    for (name, key, role) in [
        ("alice", ALICE, "editor"),
        ("bob", BOB, "editor"),
        ("carol", CAROL, "admin"),
    ] {
        text.push_str(&format!(
            "  - name: {name}\n    organization: org-a\n    role: {role}\n    digest: {}\n",
            envform::server::key_digest_text(key)
        ));
    }
    text
}

/// A server for the three keys, from `options`.
fn start(options: ServerOptions, dir: &Path) -> Server {
    envform::api::install_crypto_provider();
    write_file(dir, "keys.yaml", &keys_file());
    options
        .without_keys()
        .args([
            "--api-keys-file",
            &dir.join("keys.yaml").display().to_string(),
        ])
        .start(&dir.join("serve.db"))
}

/// One answer: status and body.
struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("{error}: {} {}", self.status, self.text))
    }
}

async fn call(
    server: &Server,
    method: &str,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    let client = reqwest::Client::new();
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client
        .request(method, format!("{}/api/v1/state/{path}", server.url))
        .bearer_auth(key);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("an answer");
    Answer {
        status: response.status(),
        text: response.text().await.expect("a body"),
    }
}

fn lock_info(id: &str, who: &str, operation: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ID": id,
        "Operation": operation,
        "Info": "",
        "Who": who,
        "Version": "test",
        "Created": "2026-01-02T03:04:05Z",
        "Path": "",
    }))
    .expect("JSON")
}

/// A LOCK or UNLOCK of workspace `main` by `key`, with this lock information.
async fn lock_call(
    server: &Server,
    method: &str,
    key: &str,
    id: &str,
    who: &str,
    operation: &str,
) -> Answer {
    let info = lock_info(id, who, operation);
    call(server, method, "main", key, &[], Some(info)).await
}

async fn events(server: &Server, key: &str) -> Vec<RecordedLockEvent> {
    let answer = call(server, "GET", "main/events", key, &[], None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // One page holds them all: the log of this test is far below the default limit.
    let page = answer.json();
    assert!(page["next_cursor"].is_null(), "{page}");
    serde_json::from_value(page["events"].clone()).expect("lock events")
}

/// A refusal shown to a key that does not hold the lock: the holder's key and `Who`, not its ID.
fn assert_names_holder_not_id(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert!(!answer.text.contains(ALICE_LOCK), "{}", answer.text);
    let body = answer.json();
    assert!(body.get("ID").is_none(), "{body}");
    assert!(body.get("fencing_token").is_none(), "{body}");
    assert_eq!(body["holder_key"], "key:alice", "{body}");
    assert_eq!(body["Who"], "alice@laptop", "{body}");
    assert_eq!(body["Operation"], "apply", "{body}");
    assert_eq!(body["Created"], "2026-01-02T03:04:05Z", "{body}");
}

/// `envform force-unlock ID --yes` with `key` as the state password.
fn force_unlock(server: &Server, dir: &Path, key: &str) -> assert_cmd::assert::Assert {
    server
        .envform(dir)
        .env(
            "ENVFORM_STATE_ADDRESS",
            format!("{}/api/v1/state/main", server.url),
        )
        .env("ENVFORM_STATE_USERNAME", "envform")
        .env("ENVFORM_STATE_PASSWORD", key)
        .args(["force-unlock", ALICE_LOCK, "--yes"])
        .assert()
}

/// The hijack of the lock, refused at every step, and the log that tells it.
async fn hijack_is_refused(server: &Server, dir: &Path) {
    write_file(
        dir,
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: locked-env\n",
    );
    let granted = lock_call(server, "LOCK", ALICE, ALICE_LOCK, "alice@laptop", "apply").await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    let granted = granted.json();
    assert_eq!(granted["ID"], ALICE_LOCK);
    let token = granted["fencing_token"].as_u64().expect("a fencing token");

    // Bob waits like anyone, and the 423 names Alice's key, not her lock's ID.
    let locked = lock_call(server, "LOCK", BOB, "bob-lock", "bob@ci", "apply").await;
    assert_names_holder_not_id(&locked, StatusCode::LOCKED);
    // Alice's own key sees the ID (a second run of hers waits for the first).
    let own = lock_call(
        server,
        "LOCK",
        ALICE,
        "alice-second-run",
        "alice@laptop",
        "plan",
    )
    .await;
    assert_eq!(own.status, StatusCode::LOCKED, "{}", own.text);
    assert_eq!(own.json()["ID"], ALICE_LOCK);

    // The event log (any key of the organization reads it) shows the ID: copying it, and the
    // token, gets Bob nowhere.
    let copied = events(server, BOB).await;
    assert_eq!(copied[0].event.lock_id.as_deref(), Some(ALICE_LOCK));
    let relock = lock_call(server, "LOCK", BOB, ALICE_LOCK, "bob@ci", "apply").await;
    assert_names_holder_not_id(&relock, StatusCode::LOCKED);
    let token_text = token.to_string();
    let write = call(
        server,
        "POST",
        &format!("main?ID={ALICE_LOCK}"),
        BOB,
        &[("X-Envform-Fencing-Token", &token_text)],
        Some(br#"{"version":4,"serial":1,"hijacked":true}"#.to_vec()),
    )
    .await;
    assert_names_holder_not_id(&write, StatusCode::LOCKED);
    let unlock = lock_call(server, "UNLOCK", BOB, ALICE_LOCK, "bob@ci", "apply").await;
    assert_names_holder_not_id(&unlock, StatusCode::CONFLICT);
    // A force-unlock by an editor key that did not take the lock: 403 naming the role.
    force_unlock(server, dir, BOB)
        .code(1)
        .stderr(predicates::str::contains("403").and(predicates::str::contains("admin role")));
    let raw_force = lock_call(server, "UNLOCK", BOB, ALICE_LOCK, "bob@ci", "force-unlock").await;
    assert_eq!(
        raw_force.status,
        StatusCode::FORBIDDEN,
        "{}",
        raw_force.text
    );
    assert!(raw_force.text.contains("key:alice") && raw_force.text.contains("admin"));
    assert!(!raw_force.text.contains(ALICE_LOCK), "{}", raw_force.text);
    let nothing = call(server, "GET", "main", BOB, &[], None).await;
    assert_eq!(
        nothing.status,
        StatusCode::NO_CONTENT,
        "nothing was written"
    );

    // Alice still holds the lock with her token: she renews and writes.
    let renewed = lock_call(server, "LOCK", ALICE, ALICE_LOCK, "alice@laptop", "apply").await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text);
    assert_eq!(renewed.json()["fencing_token"].as_u64(), Some(token));
    let written = call(
        server,
        "POST",
        &format!("main?ID={ALICE_LOCK}"),
        ALICE,
        &[("X-Envform-Fencing-Token", &token_text)],
        Some(br#"{"version":4,"serial":1,"by":"alice"}"#.to_vec()),
    )
    .await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.text);

    // Carol, an admin, breaks it with the real binary; then Bob may lock.
    force_unlock(server, dir, CAROL).success();
    let free = lock_call(server, "LOCK", BOB, "bob-lock", "bob@ci", "apply").await;
    assert_eq!(free.status, StatusCode::OK, "{}", free.text);
    assert!(free.json()["fencing_token"].as_u64() > Some(token));

    let log = events(server, CAROL).await;
    check_single_holder(&log).unwrap_or_else(|overlap| panic!("{overlap}: {log:#?}"));
    let summary = key_trail(&log);
    use LockEventKind::*;
    assert_eq!(
        summary,
        [
            (Granted, "key:alice", "-", None),
            (
                LockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::OtherKey)
            ),
            (
                WriteRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::OtherKey)
            ),
            (
                UnlockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::OtherKey)
            ),
            (
                UnlockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::AdminRequired)
            ),
            (
                UnlockRefused,
                "key:bob",
                "key:alice",
                Some(WriteRefusal::AdminRequired)
            ),
            (Renewed, "key:alice", "key:alice", None),
            (Written, "key:alice", "key:alice", None),
            (Unlocked, "key:carol", "key:alice", None),
            (Granted, "key:bob", "-", None),
        ],
        "{log:#?}"
    );
    let document = call(server, "GET", "main", CAROL, &[], None).await;
    assert!(document.text.contains("alice"), "{}", document.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_hijack_by_another_key_is_refused_and_logged_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(Server::options(), dir.path());
    hijack_is_refused(&server, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_hijack_by_another_key_is_refused_and_logged_on_postgres() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(Server::options().postgres(&database), dir.path());
    hijack_is_refused(&server, dir.path()).await;
    // The columns the log was read from are the database's own.
    let rows = database.query(
        "SELECT kind, caller_key, coalesce(holder_key, '-') FROM state_lock_events ORDER BY sequence",
    );
    assert_eq!(rows[1], "lock_refused|key:bob|key:alice", "{rows:?}");
    let holder = database.query("SELECT holder_key FROM state_locks");
    assert_eq!(holder, ["key:bob"]);
}
