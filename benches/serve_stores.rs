//! List and create throughput of `envform serve` on its two stores, side by side in one run:
//! SQLite with one process, PostgreSQL with one replica, PostgreSQL with three replicas on one
//! database. Each server is the real binary as a child process on 127.0.0.1:0; PostgreSQL is a
//! throwaway cluster started by the tests' fixture (`tests/postgres.rs`).
//!
//! For each setup: list with 50 environments, creates for a fixed time, then list with 10,000
//! environments (1,000 with `--quick`). 16 concurrent clients, each on its own keep-alive
//! connection to one replica (client i to replica i mod N, as a balancer spreads connections).
//! Run with `cargo bench --bench serve_stores` (add `-- --quick` for a shorter run).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

#[allow(dead_code)]
#[path = "../tests/postgres.rs"]
mod postgres;

const API_KEY: &str = "bench-key";
const CONCURRENCY: usize = 16;
const MEASURE: Duration = Duration::from_secs(4);

/// One setup: its servers and their URLs.
struct Setup {
    label: &'static str,
    servers: Vec<Child>,
    urls: Vec<String>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

/// Starts `envform serve` with `database` arguments; its URL.
fn serve(database: &[String]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_envform"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(database)
        .args(["--api-key", &format!("{API_KEY}=bench")])
        .env("ENVFORM_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn envform serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    reader.read_line(&mut line).expect("the listening line");
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line
        .trim()
        .strip_prefix("envform serve listening on ")
        .unwrap_or_else(|| panic!("envform serve did not start: {line:?}"))
        .to_owned();
    (child, url)
}

fn sqlite(dir: &Path) -> Setup {
    let (child, url) = serve(&["--db".into(), dir.join("bench.db").display().to_string()]);
    Setup {
        label: "SQLite, 1 process",
        servers: vec![child],
        urls: vec![url],
    }
}

fn postgres(replicas: usize, label: &'static str) -> Setup {
    let database = postgres::database();
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    for _ in 0..replicas {
        let (child, url) = serve(&["--database-url".into(), database.url.clone()]);
        servers.push(child);
        urls.push(url);
    }
    Setup {
        label,
        servers,
        urls,
    }
}

/// Runs `CONCURRENCY` clients for `MEASURE`, each calling `request` on its replica; requests per
/// second.
async fn throughput<F, Fut>(setup: &Setup, request: F) -> f64
where
    F: Fn(reqwest::Client, String, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = bool> + Send,
{
    let done = Arc::new(AtomicUsize::new(0));
    let sequence = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|client| {
            let url = setup.urls[client % setup.urls.len()].clone();
            let request = request.clone();
            let done = Arc::clone(&done);
            let sequence = Arc::clone(&sequence);
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while started.elapsed() < MEASURE {
                    let number = sequence.fetch_add(1, Ordering::Relaxed);
                    if request(http.clone(), url.clone(), number).await {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a client");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn list(http: reqwest::Client, url: String, _: usize) -> bool {
    match http
        .get(format!("{url}/api/v1/environments"))
        .bearer_auth(API_KEY)
        .send()
        .await
    {
        Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
        Err(_) => false,
    }
}

async fn create(http: reqwest::Client, url: String, number: usize, prefix: &str) -> bool {
    http.post(format!("{url}/api/v1/environments"))
        .bearer_auth(API_KEY)
        .json(&json!({ "name": format!("{prefix}-{number:06}") }))
        .send()
        .await
        .is_ok_and(|response| response.status().as_u16() == 201)
}

/// Creates environments until the organization has `total` (besides `default`).
async fn fill_to(setup: &Setup, have: usize, total: usize, prefix: &'static str) {
    let next = Arc::new(AtomicUsize::new(have));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|client| {
            let url = setup.urls[client % setup.urls.len()].clone();
            let next = Arc::clone(&next);
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                loop {
                    let number = next.fetch_add(1, Ordering::Relaxed);
                    if number >= total {
                        return;
                    }
                    assert!(
                        create(http.clone(), url.clone(), number, prefix).await,
                        "a create while filling"
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a filler");
    }
}

async fn count(setup: &Setup) -> usize {
    let listed: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!("{}/api/v1/environments", setup.urls[0]))
        .bearer_auth(API_KEY)
        .send()
        .await
        .expect("a list")
        .json()
        .await
        .expect("a JSON list");
    listed.len() - 1
}

/// The figures of one setup.
struct Figures {
    label: &'static str,
    list_small: f64,
    create: f64,
    list_large: f64,
}

async fn measure(setup: Setup, large: usize) -> Figures {
    fill_to(&setup, 0, 50, "small").await;
    let list_small = throughput(&setup, list).await;
    let create = throughput(&setup, |http, url, number| async move {
        create(http, url, number, "timed").await
    })
    .await;
    let have = count(&setup).await;
    fill_to(&setup, have, large.max(have), "large").await;
    let list_large = throughput(&setup, list).await;
    Figures {
        label: setup.label,
        list_small,
        create,
        list_large,
    }
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let large = if quick { 1_000 } else { 10_000 };
    envform::api::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut figures = Vec::new();
    for setup in [
        sqlite(dir.path()),
        postgres(1, "PostgreSQL, 1 replica"),
        postgres(3, "PostgreSQL, 3 replicas"),
    ] {
        figures.push(runtime.block_on(measure(setup, large)));
    }
    println!(
        "{CONCURRENCY} concurrent clients, {} s per measure; list of 50 and of {large} environments",
        MEASURE.as_secs()
    );
    println!(
        "{:<24} {:>14} {:>14} {:>16}",
        "setup", "list 50 req/s", "create req/s", "list large req/s"
    );
    for figure in &figures {
        println!(
            "{:<24} {:>14.0} {:>14.0} {:>16.1}",
            figure.label, figure.list_small, figure.create, figure.list_large
        );
    }
    let base = &figures[0];
    for figure in &figures[1..] {
        println!(
            "{} ÷ SQLite: list 50 {:.2}×, create {:.2}×, list large {:.2}×",
            figure.label,
            figure.list_small / base.list_small,
            figure.create / base.create,
            figure.list_large / base.list_large
        );
    }
}
