//! The HTTP state backend of `envform serve` end to end: the real `envform` binary keeping its
//! state at `/api/v1/state/{workspace}` of a real server, concurrent applies taking turns on
//! its lock, a held lock and an expired lease, and raw requests for what the binary never sends
//! (stale fencing tokens, other organizations, hostile workspace names).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use envform::control_plane::state_service::{
    LockEventKind, RecordedLockEvent, check_single_holder,
};
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::support::{KEY_A, KEY_B, Server};

/// One runtime for the raw requests of every test.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        tokio::runtime::Runtime::new().expect("runtime")
    })
}

/// An answer to a raw request.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "{error}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How a raw request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    Nothing,
}

/// Sends one request with reqwest (which normalizes the path: see [`raw_http`] for the rest).
fn send(
    method: &str,
    url: &str,
    auth: Auth<'_>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Answer {
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = client.request(method, url);
        request = match auth {
            Auth::Bearer(key) => request.bearer_auth(key),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Nothing => request,
        };
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.unwrap().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    })
}

/// Sends `method path` as typed, over a plain socket, so dot segments reach the server.
fn raw_http(server: &Server, method: &str, path: &str, body: &str) -> (u16, String) {
    let authority = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(authority).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {KEY_A}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn lock_info(id: &str, who: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "ID": id,
        "Operation": "apply",
        "Info": "",
        "Who": who,
        "Version": "test",
        "Created": "2026-01-02T03:04:05Z",
        "Path": "",
    }))
    .unwrap()
}

fn write_file(dir: &Path, name: &str, text: &str) {
    crate::support::write_file(dir, name, text);
}

/// A chain of `count` environments, so an apply takes a while and its steps go one by one.
pub(crate) fn chain(dir: &Path, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|index| format!("link-{index:02}")).collect();
    let mut yaml = String::from("version: 1\nenvironments:\n");
    for (index, name) in names.iter().enumerate() {
        yaml.push_str(&format!("  - name: {name}\n"));
        if index > 0 {
            yaml.push_str(&format!("    depends_on: [{}]\n", names[index - 1]));
        }
    }
    write_file(dir, "envform.yaml", &yaml);
    names
}

fn state_address(server: &Server, workspace: &str) -> String {
    format!("{}/api/v1/state/{workspace}", server.url)
}

/// An `envform` command in `dir` against `server`, keeping state in `workspace` with basic auth
/// carrying organization A's key as the password.
fn envform_on(server: &Server, dir: &Path, workspace: &str) -> assert_cmd::Command {
    let mut command = server.envform(dir);
    command
        .env("ENVFORM_STATE_ADDRESS", state_address(server, workspace))
        .env("ENVFORM_STATE_USERNAME", "envform")
        .env("ENVFORM_STATE_PASSWORD", KEY_A);
    command
}

/// Live environments by name → id, without `default`.
fn live(server: &Server, dir: &Path) -> BTreeMap<String, String> {
    let mut live = server.live_environments(dir);
    live.remove("default");
    live
}

/// The served state's resources by name → id.
fn served_state_ids(server: &Server, workspace: &str) -> BTreeMap<String, String> {
    let answer = send(
        "GET",
        &state_address(server, workspace),
        Auth::Bearer(KEY_A),
        &[],
        None,
    );
    assert_eq!(answer.status, 200);
    answer.json()["resources"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, resource)| (name.clone(), resource["id"].as_str().unwrap().to_owned()))
        .collect()
}

fn events(server: &Server, workspace: &str, key: &str) -> Vec<RecordedLockEvent> {
    let answer = send(
        "GET",
        &format!("{}/events", state_address(server, workspace)),
        Auth::Bearer(key),
        &[],
        None,
    );
    assert_eq!(answer.status, 200);
    let page = answer.json();
    assert!(page["next_cursor"].is_null(), "more than one page: {page}");
    serde_json::from_value(page["events"].clone()).unwrap()
}

fn count(events: &[RecordedLockEvent], kind: LockEventKind) -> usize {
    events
        .iter()
        .filter(|recorded| recorded.event.kind == kind)
        .count()
}

#[test]
fn apply_plan_and_state_list_keep_state_on_the_served_backend() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    write_file(
        dir.path(),
        "envform.yaml",
        "version: 1\nenvironments:\n  - name: alpha\n  - name: beta\n    depends_on: [alpha]\n  - name: gamma\n",
    );
    let address = state_address(&server, "ws");
    server
        .envform(dir.path())
        .args(["apply", "--auto-approve", "--state-address", &address])
        .env("ENVFORM_STATE_USERNAME", "x")
        .env("ENVFORM_STATE_PASSWORD", KEY_A)
        .assert()
        .success();
    server
        .envform(dir.path())
        .args(["plan", "--detailed-exitcode", "--state-address", &address])
        .env("ENVFORM_STATE_USERNAME", "x")
        .env("ENVFORM_STATE_PASSWORD", KEY_A)
        .assert()
        .code(0);
    let live = live(&server, dir.path());
    let output = server
        .envform(dir.path())
        .args(["state", "list", "--state-address", &address])
        .env("ENVFORM_STATE_USERNAME", "x")
        .env("ENVFORM_STATE_PASSWORD", KEY_A)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let listed = String::from_utf8(output.stdout).unwrap();
    for name in ["alpha", "beta", "gamma"] {
        let line = listed
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("`{name}` not listed:\n{listed}"));
        assert!(line.contains(&live[name]), "{line}");
    }
    assert_eq!(served_state_ids(&server, "ws"), live);
    assert!(!dir.path().join(".envform/state.json").exists());

    // The state went through the lock: one grant, one release, writes under its token.
    let events = events(&server, "ws", KEY_A);
    check_single_holder(&events).unwrap();
    assert_eq!(count(&events, LockEventKind::Granted), 1, "{events:#?}");
    assert_eq!(count(&events, LockEventKind::Unlocked), 1, "{events:#?}");
    assert_eq!(
        count(&events, LockEventKind::WriteRefused),
        0,
        "{events:#?}"
    );
    let writes: Vec<_> = events
        .iter()
        .filter(|recorded| recorded.event.kind == LockEventKind::Written)
        .collect();
    assert!(writes.len() >= 3, "{events:#?}");
    assert!(writes.iter().all(
        |write| write.event.fencing_token == events[0].event.fencing_token
            && write.event.lock_id == events[0].event.lock_id
    ));
    // The document is served back byte for byte, with its checksum.
    let answer = send("GET", &address, Auth::Basic("any", KEY_A), &[], None);
    assert_eq!(answer.status, 200);
    let md5 = answer.headers["content-md5"].to_str().unwrap().to_owned();
    assert!(!md5.is_empty());
    assert!(
        !server.log().contains("\"resources\""),
        "the state document never reaches the log"
    );
    // An apply with nothing to do takes the lock and writes no state.
    let writes = server.requests("POST", "/api/v1/state/ws");
    assert!(writes > 0, "the first apply wrote state");
    envform_on(&server, dir.path(), "ws")
        .args(["apply", "--auto-approve"])
        .assert()
        .success()
        .stdout(predicates::str::contains("No changes."));
    assert_eq!(
        server.requests("POST", "/api/v1/state/ws"),
        writes,
        "no state write"
    );
    assert!(
        server.requests("LOCK", "/api/v1/state/ws") >= 2,
        "the lock was taken"
    );
}

#[test]
fn concurrent_applies_on_the_served_backend_take_turns() {
    for concurrency in [2, 8] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("serve.db"), &[]);
        let names = chain(dir.path(), 8);
        let children: Vec<_> = (0..concurrency)
            .map(|_| {
                server
                    .envform_process(dir.path())
                    .env("ENVFORM_STATE_ADDRESS", state_address(&server, "shared"))
                    .env("ENVFORM_STATE_USERNAME", "envform")
                    .env("ENVFORM_STATE_PASSWORD", KEY_A)
                    .args(["apply", "--auto-approve", "--lock-timeout", "60s"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "{concurrency}: {output:?}");
        }
        let live = live(&server, dir.path());
        assert_eq!(
            live.keys().cloned().collect::<Vec<_>>(),
            names,
            "{concurrency}: live environments"
        );
        assert_eq!(served_state_ids(&server, "shared"), live, "{concurrency}");

        let events = events(&server, "shared", KEY_A);
        check_single_holder(&events).unwrap_or_else(|overlap| panic!("{overlap}: {events:#?}"));
        assert_eq!(
            count(&events, LockEventKind::Granted),
            concurrency,
            "each apply held the lock once: {events:#?}"
        );
        assert_eq!(count(&events, LockEventKind::Unlocked), concurrency);
        assert_eq!(count(&events, LockEventKind::TakenOver), 0);
        assert_eq!(count(&events, LockEventKind::WriteRefused), 0);
    }
}

#[test]
fn a_held_lock_stops_an_apply_naming_its_holder_until_it_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    chain(dir.path(), 2);
    let address = state_address(&server, "main");
    let holder_id = "5f0c2d9e-held-by-a-test";
    let answer = send(
        "LOCK",
        &address,
        Auth::Bearer(KEY_A),
        &[],
        Some(lock_info(holder_id, "tester@ci-runner")),
    );
    assert_eq!(answer.status, 200);
    let grant = answer.json();
    assert_eq!(grant["fencing_token"], 1);
    assert_eq!(grant["lease_seconds"], 60);
    assert_eq!(grant["ID"], holder_id);

    envform_on(&server, dir.path(), "main")
        .args(["apply", "--auto-approve"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("tester@ci-runner").and(predicate::str::contains(holder_id)),
        );
    assert!(live(&server, dir.path()).is_empty(), "nothing was applied");
    let answer = send("GET", &address, Auth::Bearer(KEY_A), &[], None);
    assert_eq!(answer.status, 204, "no state was written");

    // A LOCK by someone else gets 423 with the holder; an UNLOCK naming another ID gets 409.
    let answer = send(
        "LOCK",
        &address,
        Auth::Bearer(KEY_A),
        &[],
        Some(lock_info("other", "x@y")),
    );
    assert_eq!(answer.status, 423);
    assert_eq!(answer.json()["ID"], holder_id);
    assert_eq!(answer.json()["Who"], "tester@ci-runner");
    envform_on(&server, dir.path(), "main")
        .args(["force-unlock", "not-the-holder", "--yes"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(holder_id));

    // Naming the holder's ID breaks the lock.
    envform_on(&server, dir.path(), "main")
        .args(["force-unlock", holder_id, "--yes"])
        .assert()
        .success();
    envform_on(&server, dir.path(), "main")
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    assert_eq!(live(&server, dir.path()).len(), 2);
    let events = events(&server, "main", KEY_A);
    check_single_holder(&events).unwrap();
    // The apply after the break was granted a higher token than the broken lock.
    let tokens: Vec<u64> = events
        .iter()
        .filter(|recorded| recorded.event.kind == LockEventKind::Granted)
        .filter_map(|recorded| recorded.event.fencing_token.map(|token| token.0))
        .collect();
    assert_eq!(tokens, [1, 2]);
}

#[test]
fn an_expired_lease_is_taken_over_and_the_stale_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &["--state-lease", "1s"]);
    chain(dir.path(), 3);
    let address = state_address(&server, "main");
    let stale_id = "paused-holder";
    let answer = send(
        "LOCK",
        &address,
        Auth::Bearer(KEY_A),
        &[],
        Some(lock_info(stale_id, "paused@host")),
    );
    assert_eq!(answer.status, 200);
    let grant = answer.json();
    assert_eq!(grant["lease_seconds"], 1);
    let stale_token = grant["fencing_token"].as_u64().unwrap();

    // Not renewed: after the lease, the lock is anyone's.
    std::thread::sleep(Duration::from_millis(1500));
    envform_on(&server, dir.path(), "main")
        .args(["apply", "--auto-approve"])
        .assert()
        .success();
    let applied = served_state_ids(&server, "main");
    assert_eq!(applied, live(&server, dir.path()));
    assert_eq!(applied.len(), 3);

    // The paused holder wakes up and writes with its old token: refused, nothing changes.
    let before = send("GET", &address, Auth::Bearer(KEY_A), &[], None).body;
    let answer = send(
        "POST",
        &format!("{address}?ID={stale_id}"),
        Auth::Bearer(KEY_A),
        &[("X-Envform-Fencing-Token", &stale_token.to_string())],
        Some(b"{\"version\": 1, \"overwritten\": true}".to_vec()),
    );
    assert_eq!(
        answer.status,
        412,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert!(answer.json()["detail"].as_str().unwrap().contains("stale"));
    assert_eq!(
        send("GET", &address, Auth::Bearer(KEY_A), &[], None).body,
        before
    );

    let events = events(&server, "main", KEY_A);
    check_single_holder(&events).unwrap();
    let takeover = events
        .iter()
        .find(|recorded| recorded.event.kind == LockEventKind::TakenOver)
        .expect("the apply took the expired lock over");
    assert_eq!(takeover.event.holder_lock_id.as_deref(), Some(stale_id));
    assert!(takeover.event.fencing_token.unwrap().0 > stale_token);
    let refused = events.last().unwrap();
    assert_eq!(refused.event.kind, LockEventKind::WriteRefused);
    assert_eq!(refused.event.lock_id.as_deref(), Some(stale_id));
}

#[test]
fn organizations_are_separate_and_bad_workspace_names_touch_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("serve.db");
    let server = Server::start(&db, &[]);
    let address = state_address(&server, "shared");

    // Organization A locks and writes `shared`.
    let answer = send(
        "LOCK",
        &address,
        Auth::Basic("ignored", KEY_A),
        &[],
        Some(lock_info("a-lock", "alice@a")),
    );
    assert_eq!(answer.status, 200);
    let document = b"{\"owner\": \"org-a\"}\n".to_vec();
    let answer = send(
        "POST",
        &format!("{address}?ID=a-lock"),
        Auth::Basic("ignored", KEY_A),
        &[("X-Envform-Fencing-Token", "1")],
        Some(document.clone()),
    );
    assert_eq!(answer.status, 200);

    // Organization B sees no state there, and its own lock on the same name is granted.
    let answer = send("GET", &address, Auth::Bearer(KEY_B), &[], None);
    assert_eq!(answer.status, 204);
    let answer = send(
        "LOCK",
        &address,
        Auth::Bearer(KEY_B),
        &[],
        Some(lock_info("b-lock", "bob@b")),
    );
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["fencing_token"], 1);
    // B cannot release A's lock: in B's namespace, A's ID names nothing held.
    let answer = send(
        "UNLOCK",
        &address,
        Auth::Bearer(KEY_B),
        &[],
        Some(lock_info("a-lock", "bob@b")),
    );
    assert_eq!(answer.status, 409);
    assert_eq!(answer.json()["ID"], "b-lock");
    assert_eq!(events(&server, "shared", KEY_B).len(), 1);
    let answer = send("GET", &address, Auth::Bearer(KEY_A), &[], None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, document, "served byte for byte");

    // GitLab's shape: POST and DELETE on `…/lock`.
    let gitlab = state_address(&server, "gitlab");
    let lock_address = format!("{gitlab}/lock");
    let answer = send(
        "POST",
        &lock_address,
        Auth::Bearer(KEY_A),
        &[],
        Some(lock_info("g", "gl@ci")),
    );
    assert_eq!(answer.status, 200);
    let answer = send(
        "POST",
        &lock_address,
        Auth::Bearer(KEY_A),
        &[],
        Some(lock_info("h", "other@ci")),
    );
    assert_eq!(answer.status, 423);
    let answer = send(
        "DELETE",
        &lock_address,
        Auth::Bearer(KEY_A),
        &[],
        Some(lock_info("g", "gl@ci")),
    );
    assert_eq!(answer.status, 200);

    // No key, a wrong key, a key in basic auth's user name instead of its password: 401.
    for auth in [
        Auth::Nothing,
        Auth::Bearer("wrong-key"),
        Auth::Basic("wrong", "wrong-key"),
        Auth::Basic(KEY_A, ""),
    ] {
        let answer = send("GET", &address, auth, &[], None);
        assert_eq!(answer.status, 401);
    }

    // Names that are not workspace names: 400 with a detail, whatever the method.
    let long = "x".repeat(200);
    for name in ["a%2Fb", "..%2Fetc", "bad%20name", "%C3%A9", long.as_str()] {
        for method in ["GET", "POST", "LOCK", "UNLOCK"] {
            let answer = send(
                method,
                &format!("{}/api/v1/state/{name}", server.url),
                Auth::Bearer(KEY_A),
                &[],
                Some(lock_info("bad", "mallory@x")),
            );
            assert_eq!(answer.status, 400, "{method} {name}");
            assert!(
                answer.json()["detail"]
                    .as_str()
                    .unwrap()
                    .contains("workspace"),
                "{method} {name}"
            );
        }
    }
    // Dot segments, sent as typed (an HTTP client would resolve them first).
    for path in [
        "/api/v1/state/..",
        "/api/v1/state/.",
        "/api/v1/state/../lock",
    ] {
        for method in ["GET", "POST", "LOCK"] {
            let (status, body) = raw_http(&server, method, path, "{\"ID\": \"dots\"}");
            assert_eq!(status, 400, "{method} {path}: {body}");
            assert!(body.contains("workspace"), "{method} {path}: {body}");
        }
    }
    let (status, _) = raw_http(&server, "GET", "/api/v1/state/", "");
    assert_eq!(status, 404);
    let answer = send(
        "PATCH",
        &address,
        Auth::Bearer(KEY_A),
        &[],
        Some(b"{}".to_vec()),
    );
    assert_eq!(answer.status, 405);

    // Nothing but the valid workspaces reached the database.
    let rows = runtime().block_on(async {
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .read_only(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT organization_id, workspace FROM state_documents \
             UNION SELECT organization_id, workspace FROM state_locks \
             UNION SELECT organization_id, workspace FROM state_fencing_tokens \
             UNION SELECT organization_id, workspace FROM state_lock_events",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    });
    let rows: BTreeSet<(String, String)> = rows.into_iter().collect();
    let expected: BTreeSet<(String, String)> = [
        ("org-a", "gitlab"),
        ("org-a", "shared"),
        ("org-b", "shared"),
    ]
    .into_iter()
    .map(|(organization, workspace)| (organization.to_owned(), workspace.to_owned()))
    .collect();
    assert_eq!(rows, expected);
}
