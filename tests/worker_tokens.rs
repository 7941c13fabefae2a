//! Worker tokens are bounded: at most ten unused ones per environment (issuing an eleventh
//! revokes the oldest unused one), unused ones expire after `--worker-token-ttl`, and a token
//! that registered a worker stays valid. The same on SQLite, on PostgreSQL and across replicas
//! of one PostgreSQL database. Failed worker-token authentications are limited per client
//! address like failed API keys.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{KEY_A, Server, ServerOptions, worker_start_command};

/// The unused-token TTL the servers of these tests run with: short, so expiry is observable.
const TTL: &str = "2s";
/// Longer than [`TTL`].
const PAST_TTL: Duration = Duration::from_millis(2600);

fn http() -> reqwest::Client {
    envform::api::install_crypto_provider();
    reqwest::Client::new()
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.expect("a request to the server");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates environment `name` of organization A on `url` and waits until it is ready.
async fn ready_environment(http: &reqwest::Client, url: &str, name: &str) -> String {
    let (status, body) = send(
        http.post(format!("{url}/api/v1/environments"))
            .bearer_auth(KEY_A)
            .json(&json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = send(
            http.get(format!("{url}/api/v1/environments/{id}"))
                .bearer_auth(KEY_A),
        )
        .await;
        if body["status"] == "ready" || body["status"] == "active" {
            return id;
        }
        assert!(Instant::now() < deadline, "not ready: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A new token from `GET …/worker-command`.
async fn mint(http: &reqwest::Client, url: &str, id: &str) -> String {
    let (status, body) = send(
        http.get(format!("{url}/api/v1/environments/{id}/worker-command"))
            .bearer_auth(KEY_A),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["worker_token"].as_str().unwrap().to_owned()
}

/// Registers a worker with `token`: the status, and the worker id when registered.
async fn register(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    environment: &str,
) -> (u16, Option<String>) {
    let (status, body) = send(
        http.post(format!("{url}/api/v1/workers/register"))
            .bearer_auth(token)
            .json(&json!({"environment": environment, "hostname": "h", "version": "1"})),
    )
    .await;
    (status, body["worker_id"].as_str().map(str::to_owned))
}

async fn heartbeat(http: &reqwest::Client, url: &str, token: &str, worker: &str) -> u16 {
    send(
        http.post(format!("{url}/api/v1/workers/{worker}/heartbeat"))
            .bearer_auth(token)
            .json(&json!({"busy": false})),
    )
    .await
    .0
}

/// Runs the real `envform worker start` with `token`: whether it registered (it is then
/// stopped), and its log.
fn worker_start(url: &str, token: &str, environment: &str, dir: &Path) -> (bool, String) {
    let log_path = dir.join(format!("worker-{}.log", uuid::Uuid::new_v4()));
    let mut child = worker_start_command(url, token, environment, &log_path)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("registered; this worker runs no agent tasks") {
            let _ = child.kill();
            let _ = child.wait();
            return (true, text);
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(
                !status.success(),
                "worker exited 0 without registering: {text}"
            );
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            return (false, text);
        }
        assert!(Instant::now() < deadline, "worker undecided: {text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Twelve worker-command calls (spread over `servers` round robin), then: the first two tokens
/// cannot register (the real `envform worker start` is refused with the first), the other ten
/// can; tokens that registered stay valid past the TTL, an unused one does not.
async fn twelve_tokens_then_the_first_cannot_register(servers: &[&Server], dir: &Path) {
    let http = http();
    let url = |index: usize| servers[index % servers.len()].url.as_str();
    let id = ready_environment(&http, url(0), "pool").await;
    let mut tokens = Vec::new();
    for index in 0..12 {
        tokens.push(mint(&http, url(index), &id).await);
    }

    let (registered, log) = worker_start(url(0), &tokens[0], "pool", dir);
    assert!(!registered, "the first token registered: {log}");
    assert!(
        log.contains("unknown, expired or revoked worker token"),
        "{log}"
    );
    assert!(
        !log.contains(&tokens[0]),
        "the token is in the worker's log"
    );
    assert_eq!(register(&http, url(1), &tokens[1], "pool").await.0, 401);

    let (registered, log) = worker_start(url(1), &tokens[2], "pool", dir);
    assert!(registered, "the third token was refused: {log}");
    let mut workers = Vec::new();
    for (index, token) in tokens.iter().enumerate().skip(3) {
        let (status, worker) = register(&http, url(index), token, "pool").await;
        assert_eq!(status, 201, "token #{} refused", index + 1);
        workers.push((token.clone(), worker.unwrap()));
    }

    // Ten more unused tokens do not revoke tokens in use; an eleventh unused one revokes the
    // oldest unused, whatever replica issued it.
    let unused: Vec<String> = {
        let mut unused = Vec::new();
        for index in 0..11 {
            unused.push(mint(&http, url(index), &id).await);
        }
        unused
    };
    assert_eq!(register(&http, url(0), &unused[0], "pool").await.0, 401);
    let (status, worker) = register(&http, url(1), &unused[1], "pool").await;
    assert_eq!(status, 201);
    workers.push((unused[1].clone(), worker.unwrap()));

    tokio::time::sleep(PAST_TTL).await;
    // Unused and past the TTL: refused, on every replica.
    for (index, token) in unused.iter().enumerate().skip(2).take(servers.len()) {
        assert_eq!(register(&http, url(index), token, "pool").await.0, 401);
    }
    // In use: still valid for heartbeats and for more workers.
    for (index, (token, worker)) in workers.iter().enumerate() {
        assert_eq!(heartbeat(&http, url(index), token, worker).await, 200);
    }
    assert_eq!(register(&http, url(0), &tokens[3], "pool").await.0, 201);
    let (registered, log) = worker_start(url(1), &tokens[4], "pool", dir);
    assert!(registered, "a token in use was refused past the TTL: {log}");
}

fn options() -> ServerOptions {
    Server::options().args(["--worker-token-ttl", TTL])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_twelve_tokens_then_the_first_cannot_register() {
    let dir = tempfile::tempdir().unwrap();
    let server = options().start(&dir.path().join("serve.db"));
    twelve_tokens_then_the_first_cannot_register(&[&server], dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_twelve_tokens_then_the_first_cannot_register() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let options = options().postgres(&database);
    let first = options.clone().start(&dir.path().join("replica-0.db"));
    let second = options.start(&dir.path().join("replica-1.db"));
    twelve_tokens_then_the_first_cannot_register(&[&first, &second], dir.path()).await;
}

/// Twelve tokens issued at once over two replicas: exactly ten of them can register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_concurrent_issues_leave_ten_usable_tokens() {
    let database = crate::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let options = options().postgres(&database);
    let servers = [
        options.clone().start(&dir.path().join("replica-0.db")),
        options.start(&dir.path().join("replica-1.db")),
    ];
    let http = http();
    let id = ready_environment(&http, &servers[0].url, "burst").await;
    let mints = (0..12).map(|index| mint(&http, &servers[index % 2].url, &id));
    let tokens = futures::future::join_all(mints).await;
    let mut registered = 0;
    for (index, token) in tokens.iter().enumerate() {
        if register(&http, &servers[index % 2].url, token, "burst")
            .await
            .0
            == 201
        {
            registered += 1;
        }
    }
    assert_eq!(registered, 10);
}

/// Bad worker tokens count against the client's address like bad API keys: after the burst,
/// registration, heartbeats and deregistration are answered 429 with `Retry-After`, and so are
/// API-key calls from that address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_worker_token_authentications_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::options()
        .args(["--auth-failure-burst", "3"])
        .start(&dir.path().join("serve.db"));
    let http = http();
    let url = server.url.as_str();
    let id = ready_environment(&http, url, "pool").await;
    let token = mint(&http, url, &id).await;
    let (status, worker) = register(&http, url, &token, "pool").await;
    assert_eq!(status, 201);
    let worker = worker.unwrap();

    let forged = "efw_0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(register(&http, url, forged, "pool").await.0, 401);
    assert_eq!(heartbeat(&http, url, forged, &worker).await, 401);
    let (status, _) = send(
        http.delete(format!("{url}/api/v1/workers/{worker}"))
            .bearer_auth(forged),
    )
    .await;
    assert_eq!(status, 401);

    let response = http
        .post(format!("{url}/api/v1/workers/register"))
        .bearer_auth(forged)
        .json(&json!({"environment": "pool", "hostname": "h", "version": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    // Blocked: even the real token waits, and so does an API key from this address.
    assert_eq!(heartbeat(&http, url, &token, &worker).await, 429);
    let (status, _) = send(
        http.get(format!("{url}/api/v1/environments"))
            .bearer_auth(KEY_A),
    )
    .await;
    assert_eq!(status, 429);
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    assert_eq!(heartbeat(&http, url, &token, &worker).await, 200);
}
