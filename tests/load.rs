//! Load on `envform serve` over loopback: 32 concurrent clients mixing list, get, create, update and
//! delete. Only 409s (two clients racing for one name) are expected errors; p99 latency and the
//! server's resident memory at start and end are reported. CI runs 3 s;
//! `ENVFORM_LOAD_SECONDS=60 cargo test --release --test integration load -- --nocapture` is the
//! long run.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{KEY_A, Server};

const CLIENTS: usize = 32;

fn resident_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    requests: u64,
    conflicts: u64,
    unexpected: Vec<String>,
    latencies: Vec<Duration>,
}

async fn client_loop(client: reqwest::Client, url: String, index: usize, until: Instant) -> Tally {
    let mut tally = Tally::default();
    let base = format!("{url}/api/v1/environments");
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        // Names are shared between pairs of clients, so some creates race and get 409.
        let name = format!("load-{}-{}", index / 2, round % 4);
        let started = Instant::now();
        let created = client
            .post(&base)
            .bearer_auth(KEY_A)
            .json(&json!({"name": name, "metadata": {"round": round}}))
            .send()
            .await;
        let record = |status: u16, what: &str, tally: &mut Tally| {
            tally.requests += 1;
            match status {
                200..=299 => {}
                409 => tally.conflicts += 1,
                other => tally.unexpected.push(format!("{what}: {other}")),
            }
        };
        let Ok(created) = created else {
            tally.unexpected.push("create: no answer".into());
            continue;
        };
        let status = created.status().as_u16();
        record(status, "create", &mut tally);
        tally.latencies.push(started.elapsed());
        let id = if status == 201 {
            created
                .json::<Value>()
                .await
                .ok()
                .and_then(|env| env["id"].as_str().map(str::to_owned))
        } else {
            None
        };
        let started = Instant::now();
        let listed = client.get(&base).bearer_auth(KEY_A).send().await;
        tally.latencies.push(started.elapsed());
        match listed {
            Ok(response) => record(response.status().as_u16(), "list", &mut tally),
            Err(_) => tally.unexpected.push("list: no answer".into()),
        }
        let Some(id) = id else { continue };
        for (method, body) in [
            (reqwest::Method::GET, None),
            (
                reqwest::Method::PATCH,
                Some(json!({"description": format!("round {round}")})),
            ),
            (reqwest::Method::DELETE, None),
        ] {
            let started = Instant::now();
            let mut request = client
                .request(method.clone(), format!("{base}/{id}"))
                .bearer_auth(KEY_A);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let answer = request.send().await;
            tally.latencies.push(started.elapsed());
            match answer {
                Ok(response) => record(response.status().as_u16(), method.as_str(), &mut tally),
                Err(_) => tally.unexpected.push(format!("{method}: no answer")),
            }
        }
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_clients_mixed_load() {
    envform::api::install_crypto_provider();
    let seconds: u64 = std::env::var("ENVFORM_LOAD_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("serve.db"), &[]);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    // Warm up (the organization and its default environment, connections), then measure.
    let _ = client
        .get(format!("{}/api/v1/environments", server.url))
        .bearer_auth(KEY_A)
        .send()
        .await
        .unwrap();
    let start_rss = resident_kib(server.pid());
    let until = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|index| {
            tokio::spawn(client_loop(
                client.clone(),
                server.url.clone(),
                index,
                until,
            ))
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await.unwrap();
        total.requests += tally.requests;
        total.conflicts += tally.conflicts;
        total.unexpected.extend(tally.unexpected);
        total.latencies.extend(tally.latencies);
    }
    let end_rss = resident_kib(server.pid());
    total.latencies.sort_unstable();
    let percentile = |fraction: f64| {
        let index =
            ((total.latencies.len() as f64 * fraction) as usize).min(total.latencies.len() - 1);
        total.latencies[index]
    };
    eprintln!(
        "load: {CLIENTS} clients, {seconds} s: {} requests ({:.0}/s), {} expected 409s, {} unexpected; p50 {:.1?}, p99 {:.1?}; server RSS {} KiB at start, {} KiB at end",
        total.requests,
        total.requests as f64 / seconds as f64,
        total.conflicts,
        total.unexpected.len(),
        percentile(0.50),
        percentile(0.99),
        start_rss,
        end_rss,
    );
    assert!(
        total.unexpected.is_empty(),
        "{:?}",
        &total.unexpected[..total.unexpected.len().min(10)]
    );
    assert!(
        total.requests > 100,
        "the server answered too little: {}",
        total.requests
    );
    assert!(total.conflicts > 0, "the workload races for names");
}
