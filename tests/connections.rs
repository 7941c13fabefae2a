//! Connection hygiene of `envform serve`: clients that connect and then send nothing, or one byte
//! at a time, neither keep their connections forever nor lock other clients out, even with few
//! file descriptors.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{KEY_A, Server};

/// `host:port` of a server URL.
fn address(server: &Server) -> String {
    server
        .url
        .strip_prefix("http://")
        .expect("an http:// URL")
        .to_owned()
}

/// A normal client's request while the attack runs: answered 200; its latency.
async fn normal_request(client: &reqwest::Client, server: &Server) -> Duration {
    let started = Instant::now();
    let answer = client
        .get(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .send()
        .await
        .expect("the normal client is answered");
    assert_eq!(answer.status(), 200);
    started.elapsed()
}

/// Sends one header byte every 3 s until the server closes the connection; true when it did.
async fn drip(address: String) -> bool {
    let Ok(mut stream) = TcpStream::connect(&address).await else {
        return false;
    };
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            return true;
        }
        let mut buffer = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buffer)).await {
            // Still open and silent: drip the next byte.
            Err(_) => {}
            // Closed (maybe with a 408 first): what the server must do.
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {
                // An answer (408) before the close: wait for the close.
                let closed = tokio::time::timeout(Duration::from_secs(30), async {
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                return closed.is_ok();
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_cut_while_normal_clients_are_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("serve.db"), &["--header-timeout", "5s"]);
    let attackers: Vec<_> = (0..200)
        .map(|_| tokio::spawn(drip(address(&server))))
        .collect();
    // Let every attacker connect and start dripping.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = http_client();
    let mut latencies = Vec::new();
    for _ in 0..20 {
        latencies.push(normal_request(&client, &server).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut closed = 0;
    for attacker in attackers {
        if attacker.await.expect("attacker task") {
            closed += 1;
        }
    }
    assert_eq!(
        closed, 200,
        "every dripping connection is closed by the server"
    );
    latencies.sort();
    eprintln!(
        "normal client during the slowloris: p50 {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // New connections are still served after the attack.
    normal_request(&http_client(), &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_exhaust_file_descriptors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::options()
        .fd_limit(256)
        .start(&dir.path().join("serve.db"));
    let mut idle = Vec::new();
    for _ in 0..300 {
        // Some are closed by the server at once to make room; they are kept anyway, as an
        // attacker would.
        if let Ok(stream) = TcpStream::connect(address(&server)).await {
            idle.push(stream);
        }
    }
    // Half of them start a request and never finish it.
    for stream in idle.iter_mut().step_by(2) {
        let _ = stream.write_all(b"GET /health HTTP/1.1\r\n").await;
    }
    let client = http_client();
    for _ in 0..5 {
        normal_request(&client, &server).await;
    }
    // The envform binary too, on fresh connections.
    let listed = server
        .envform(dir.path())
        .args(["env", "list", "-o", "json"])
        .output()
        .expect("run envform env list");
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let log = server.log();
    assert!(
        !log.contains("Too many open files"),
        "the server ran out of file descriptors:\n{log}"
    );
    assert!(log.contains("max_connections=192"), "{log}");
    drop(idle);
}

/// A reqwest client (the crypto provider installed first).
fn http_client() -> reqwest::Client {
    envform::api::install_crypto_provider();
    reqwest::Client::new()
}
