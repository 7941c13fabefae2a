//! Throughput of `GET /api/v1/environments` on `envform serve` with 50 environments, over
//! keep-alive connections: one client in sequence, then 16 concurrent clients. The server runs
//! in-process on 127.0.0.1:0 with a temporary SQLite database; each scenario runs for a fixed time.
//!
//! Run with `cargo bench --bench serve_list`. Prints requests per second, p50 and p95 latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use envform::api::{
    ClientConfig, ControlPlaneClient, CreateEnvironment, EnvironmentsApi, OrganizationId,
};
use envform::control_plane::{ControlPlane, ControlPlaneConfig, OrganizationScope};
use envform::server::{ApiKey, ServeConfig, Server};
use serde_json::json;

const API_KEY: &str = "bench-key";
const ENVIRONMENTS: usize = 50;
const WARM_UP: usize = 200;
const DURATION: Duration = Duration::from_secs(5);
const CONCURRENCY: usize = 16;

/// The latencies of one scenario.
struct Sample {
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Sample {
    fn report(mut self, label: &str) {
        self.latencies.sort_unstable();
        let count = self.latencies.len();
        let percentile = |p: usize| self.latencies[(count * p / 100).min(count - 1)];
        println!(
            "{label:<40} {count:>7} requests  {:>8.0} req/s  p50 {:>7.3} ms  p95 {:>7.3} ms",
            count as f64 / self.elapsed.as_secs_f64(),
            percentile(50).as_secs_f64() * 1000.0,
            percentile(95).as_secs_f64() * 1000.0,
        );
    }
}

/// One kind of request: the SDK's typed `list`, a raw GET that only reads the bytes, or, as the
/// baseline without HTTP, the embedded control plane's `list` on its own database.
#[derive(Clone, Copy)]
enum Caller {
    Sdk,
    Raw,
    Embedded,
}

struct Clients {
    sdk: ControlPlaneClient,
    raw: reqwest::Client,
    url: String,
    embedded: OrganizationScope,
}

impl Clients {
    async fn call(&self, caller: Caller) {
        match caller {
            Caller::Embedded => {
                let environments = self.embedded.list(None).await.expect("list");
                assert_eq!(environments.len(), ENVIRONMENTS + 1);
            }
            Caller::Sdk => {
                let environments = self.sdk.environments().list(None).await.expect("list");
                assert_eq!(environments.len(), ENVIRONMENTS + 1);
            }
            Caller::Raw => {
                let response = self
                    .raw
                    .get(&self.url)
                    .bearer_auth(API_KEY)
                    .send()
                    .await
                    .expect("list");
                assert!(response.status().is_success());
                let body = response.bytes().await.expect("body");
                assert!(!body.is_empty());
            }
        }
    }
}

/// Calls in a loop until the duration is over; returns each call's latency.
async fn run_for(clients: &Clients, caller: Caller, deadline: Instant) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let started = Instant::now();
        clients.call(caller).await;
        latencies.push(started.elapsed());
    }
    latencies
}

async fn sequential(clients: &Clients, caller: Caller) -> Sample {
    let started = Instant::now();
    let latencies = run_for(clients, caller, started + DURATION).await;
    Sample {
        latencies,
        elapsed: started.elapsed(),
    }
}

async fn concurrent(clients: &Arc<Clients>, caller: Caller) -> Sample {
    let started = Instant::now();
    let deadline = started + DURATION;
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let clients = Arc::clone(clients);
            tokio::spawn(async move { run_for(&clients, caller, deadline).await })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    Sample {
        latencies,
        elapsed: started.elapsed(),
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::TempDir::new().expect("temp dir");
        let mut config = ServeConfig::new(dir.path().join("bench.db"));
        config.addr = "127.0.0.1:0".parse().expect("address");
        config.api_keys = BTreeMap::from([(
            ApiKey::new(API_KEY).expect("key"),
            OrganizationId("bench".to_owned()),
        )]);
        let server = Server::bind(config).await.expect("bind");
        let base_url = format!("http://{}", server.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));

        let sdk = ControlPlaneClient::with_config(ClientConfig {
            base_url: base_url.clone(),
            ..ClientConfig::new(API_KEY)
        })
        .expect("client");
        let environments: Vec<CreateEnvironment> = (0..ENVIRONMENTS)
            .map(|index| {
                let mut data = CreateEnvironment::named(format!("environment-{index:02}"));
                data.description = Some(format!("Environment number {index}"));
                data.configuration =
                    serde_json::from_value(json!({"max_workers": 10, "timeout_seconds": 3600}))
                        .ok();
                data.metadata =
                    serde_json::from_value(json!({"team": "platform", "stage": "bench"})).ok();
                data
            })
            .collect();
        for data in &environments {
            sdk.environments().create(data).await.expect("create");
        }
        let embedded_plane = ControlPlane::open_sqlite(
            &dir.path().join("embedded.db"),
            ControlPlaneConfig::default(),
        )
        .await
        .expect("embedded control plane");
        let embedded = embedded_plane
            .organization(&OrganizationId("bench".to_owned()))
            .await
            .expect("organization");
        for data in &environments {
            embedded.create(data).await.expect("create");
        }
        let clients = Arc::new(Clients {
            sdk,
            raw: reqwest::Client::new(),
            url: format!("{base_url}/api/v1/environments"),
            embedded,
        });
        for _ in 0..WARM_UP {
            clients.call(Caller::Sdk).await;
        }

        println!(
            "GET /api/v1/environments ({} environments), {}s per scenario",
            ENVIRONMENTS + 1,
            DURATION.as_secs()
        );
        sequential(&clients, Caller::Embedded)
            .await
            .report("sequential, embedded list (no HTTP)");
        sequential(&clients, Caller::Sdk)
            .await
            .report("sequential, SDK list");
        sequential(&clients, Caller::Raw)
            .await
            .report("sequential, raw GET");
        concurrent(&clients, Caller::Sdk)
            .await
            .report(&format!("{CONCURRENCY} concurrent, SDK list"));
        concurrent(&clients, Caller::Raw)
            .await
            .report(&format!("{CONCURRENCY} concurrent, raw GET"));

        let _ = stop.send(());
        serving.await.expect("server task").expect("server");
        embedded_plane.shutdown().await;
    });
}
