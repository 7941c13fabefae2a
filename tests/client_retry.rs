//! The SDK's retry policy against a real `envform serve` whose hidden `--faults` flag fails
//! chosen requests: idempotent calls retry through 429/502/503/504, a POST never does, a
//! `Retry-After` is waited for, a timeout is reported as such and not retried. The server's
//! `GET /_faults` counters say how many requests really arrived. A scripted listener covers what
//! `envform serve` never answers: a list cut off mid-answer (retried whole) and malformed ones.

use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envform::api::{
    ClientConfig, ControlPlaneClient, CreateEnvironment, EnvironmentError, EnvironmentId, Patch,
    UpdateEnvironment,
};
use tempfile::TempDir;

use crate::contract::{KEY_A, Wire, serve_options};
use crate::support::Server;

/// A server with the given fault rules, and its temporary directory.
fn faulty_server(rules: &str) -> (Server, TempDir) {
    let dir = TempDir::new().expect("temp dir");
    let server = serve_options()
        .args(["--faults", rules])
        .start(&dir.path().join("serve.db"));
    (server, dir)
}

/// How many requests matched each fault rule, and how many of them were failed.
async fn fault_counts(server: &Server) -> Vec<(u64, u64)> {
    let report = Wire::new(server.url()).get("/_faults", KEY_A).await.json();
    report["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|rule| {
            (
                rule["matched"].as_u64().expect("matched"),
                rule["injected"].as_u64().expect("injected"),
            )
        })
        .collect()
}

#[tokio::test]
async fn get_succeeds_after_two_503s() {
    let (server, _dir) = faulty_server("status=503,count=2,method=GET,path=/api/v1/environments");
    let environments = server
        .client(KEY_A)
        .environments()
        .list(None)
        .await
        .expect("list succeeds on the third attempt");
    assert_eq!(environments[0].name, "default");
    assert_eq!(
        fault_counts(&server).await,
        [(3, 2)],
        "three requests, two failed"
    );
}

#[tokio::test]
async fn get_gives_up_after_max_retries() {
    let (server, _dir) = faulty_server("status=502,method=GET,path=/api/v1/environments");
    let config = ClientConfig {
        base_url: server.url().to_owned(),
        max_retries: 2,
        retry_base_delay: Duration::from_millis(5),
        ..ClientConfig::new(KEY_A)
    };
    let client = ControlPlaneClient::with_config(config).expect("client");
    let result = client.environments().list(None).await;
    assert!(
        matches!(result, Err(EnvironmentError::Api { status: 502, .. })),
        "{result:?}"
    );
    assert_eq!(
        fault_counts(&server).await,
        [(3, 3)],
        "one attempt and two retries"
    );
}

#[tokio::test]
async fn patch_and_delete_are_retried() {
    let (server, _dir) =
        faulty_server("status=429,count=1,method=PATCH;status=504,count=1,method=DELETE");
    let environments_client = server.client(KEY_A);
    let environments = environments_client.environments();
    let created = environments
        .create(&CreateEnvironment::named("retried"))
        .await
        .expect("create");
    let updated = environments
        .update(
            created.id,
            &UpdateEnvironment {
                description: Patch::Set("after a 429".to_owned()),
                ..UpdateEnvironment::default()
            },
        )
        .await
        .expect("update succeeds on the second attempt");
    assert_eq!(updated.description.as_deref(), Some("after a 429"));
    environments
        .delete(created.id)
        .await
        .expect("delete succeeds on the second attempt");
    assert_eq!(fault_counts(&server).await, [(2, 1), (2, 1)]);
}

#[tokio::test]
async fn post_is_never_retried() {
    let (server, _dir) = faulty_server("status=503,count=1,method=POST");
    let client = server.client(KEY_A);
    let result = client
        .environments()
        .create(&CreateEnvironment::named("once"))
        .await;
    assert!(
        matches!(result, Err(EnvironmentError::Api { status: 503, .. })),
        "{result:?}"
    );
    assert_eq!(fault_counts(&server).await, [(1, 1)], "exactly one POST");
    let names: Vec<String> = client
        .environments()
        .list(None)
        .await
        .expect("list")
        .into_iter()
        .map(|environment| environment.name)
        .collect();
    assert_eq!(names, ["default"], "the refused POST created nothing");
}

#[tokio::test]
async fn post_failing_after_commit_is_ambiguous() {
    let (server, _dir) = faulty_server("status=502,count=1,method=POST,when=after");
    let client = server.client(KEY_A);
    let error = client
        .environments()
        .create(&CreateEnvironment::named("committed"))
        .await
        .expect_err("the answer was replaced by a 502");
    assert!(error.is_ambiguous(), "{error:?}");
    assert_eq!(fault_counts(&server).await, [(1, 1)], "exactly one POST");
    let environments = client.environments().list(None).await.expect("list");
    assert!(
        environments
            .iter()
            .any(|environment| environment.name == "committed"),
        "the service did create it"
    );
}

#[tokio::test]
async fn retry_after_is_the_minimum_wait() {
    let (server, _dir) = faulty_server("status=503,count=1,method=GET,retry_after=1");
    let started = Instant::now();
    server
        .client(KEY_A)
        .environments()
        .list(None)
        .await
        .expect("list succeeds after waiting");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited only {:?}",
        started.elapsed()
    );
    assert_eq!(fault_counts(&server).await, [(2, 1)]);
}

#[tokio::test]
async fn retry_after_beyond_the_ceiling_ends_retries() {
    let (server, _dir) = faulty_server("status=429,count=1,method=GET,retry_after=120");
    let started = Instant::now();
    let result = server.client(KEY_A).environments().list(None).await;
    assert!(
        matches!(result, Err(EnvironmentError::Api { status: 429, .. })),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(fault_counts(&server).await, [(1, 1)]);
}

#[tokio::test]
async fn timeout_is_reported_and_not_retried() {
    // A listener that accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0_u8; 1024];
            let _ = stream.read(&mut buffer);
            held.push(stream);
        }
    });
    let config = ClientConfig {
        base_url: format!("http://{address}"),
        request_timeout: Duration::from_millis(300),
        retry_base_delay: Duration::from_millis(5),
        ..ClientConfig::new("any-key")
    };
    let client = ControlPlaneClient::with_config(config).expect("client");
    let result = client.environments().get(EnvironmentId::new_random()).await;
    assert!(
        matches!(result, Err(EnvironmentError::Timeout { .. })),
        "{result:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "a timeout is not retried"
    );
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let address = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("address")
    };
    let config = ClientConfig {
        base_url: format!("http://{address}"),
        max_retries: 2,
        retry_base_delay: Duration::from_millis(5),
        ..ClientConfig::new("any-key")
    };
    let client = ControlPlaneClient::with_config(config).expect("client");
    let error = client
        .environments()
        .list(None)
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(error, EnvironmentError::Transport { .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("any-key"));
}

/// A listener that answers the `n`th request with `answers[n]` (the last one from then on), and
/// counts the requests.
fn scripted_server(answers: Vec<String>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&requests);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buffer = [0_u8; 4096];
            let _ = stream.read(&mut buffer);
            let index = counter.fetch_add(1, Ordering::SeqCst);
            let answer = &answers[index.min(answers.len() - 1)];
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
            // Dropping the stream closes the connection, mid-body when the answer is short.
        }
    });
    (format!("http://{address}"), requests)
}

/// A 200 answer with `body`, announcing `length` bytes.
fn ok_answer(body: &str, length: usize) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n{body}"
    )
}

fn fast_retries(url: String) -> ControlPlaneClient {
    let config = ClientConfig {
        base_url: url,
        max_retries: 2,
        retry_base_delay: Duration::from_millis(5),
        ..ClientConfig::new("any-key")
    };
    ControlPlaneClient::with_config(config).expect("client")
}

#[tokio::test]
async fn a_list_cut_off_mid_answer_is_retried_whole() {
    let whole = r#"[{"id":"5f0c2a4e-8d1b-4c3a-9e7f-1a2b3c4d5e6f","name":"web","status":"active"},
        {"id":"6a1d3b5f-9e2c-4d4b-8f80-2b3c4d5e6f70","name":"api","status":"inactive"}]"#;
    // The first answer stops inside the second environment, before its announced length.
    let cut = &whole[..whole.find("\"api\"").expect("the second environment")];
    let (url, requests) = scripted_server(vec![
        ok_answer(cut, whole.len()),
        ok_answer(whole, whole.len()),
    ]);
    let environments = fast_retries(url)
        .environments()
        .list(None)
        .await
        .expect("the second, whole answer is read");
    let names: Vec<&str> = environments.iter().map(|env| env.name.as_str()).collect();
    assert_eq!(names, ["web", "api"], "nothing of the cut answer is kept");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_malformed_list_is_an_error_naming_where_and_is_not_retried() {
    for (body, expected) in [
        (
            r#"[{"id":"5f0c2a4e-8d1b-4c3a-9e7f-1a2b3c4d5e6f","name":"web","status":"active"} {}]"#,
            "expected `,` or `]` at byte 78",
        ),
        (
            r#"[{"name":"web"}]"#,
            "element 0 of the array: missing field `id`",
        ),
        (r#"{"detail":"not a list"}"#, "expected `[` at byte 0"),
        (
            r#"[{"id":"5f0c2a4e"#,
            "the answer ended before its array did",
        ),
    ] {
        let (url, requests) = scripted_server(vec![ok_answer(body, body.len())]);
        let error = fast_retries(url)
            .environments()
            .list(None)
            .await
            .expect_err(body);
        let message = error.to_string();
        assert!(
            message.contains("unexpected answer from the control plane")
                && message.contains(expected),
            "{body}: {message}"
        );
        assert_eq!(requests.load(Ordering::SeqCst), 1, "{body}: not retried");
    }
}
