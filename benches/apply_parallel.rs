//! Apply's parallelism: 1,000 creates against an `envform serve` child process (a fresh database
//! per run) with 20 ms added to every API call, at parallelism 1 and 10. Targets: parallelism 10
//! at least 8× faster than 1, and within 1.3× of the ideal 1000 / 10 × 20 ms.
//!
//! The latency is added on the client side: an `EnvironmentsApi` wrapper over the SDK client
//! sleeps 20 ms before each call, as a network round trip would, so concurrent calls overlap.
//! The executor runs as `envform apply` runs it: `apply::execute` on the plan, the state journaled
//! to a local file under its lock after every step. Two more runs at parallelism 10 split the
//! time: state kept in memory (what journaling to the file costs), and that without the added
//! latency (what the server and the executor cost). Last, one state save is timed at 1,000 and
//! 10,000 resources.
//!
//! Run with `cargo bench --bench apply_parallel` (`-- --quick` for 100 creates).

#[path = "common.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envform::api::{
    ControlPlaneClient, CreateEnvironment, Environment, EnvironmentError, EnvironmentId,
    EnvironmentsApi, Status, UpdateEnvironment, WorkerCommand,
};
use envform::apply::{self, ApplyOptions, Journal, SilentProgress};
use envform::desired::{self, SourceFile, Sources};
use envform::plan::{self, PlanOptions};
use envform::state::{LocalBackend, LockHandle, LockInfo, State, StateBackend, StateError};
use tokio_util::sync::CancellationToken;

use common::{ServeProcess, median, millis};

/// Creates per run.
const CREATES: usize = 1_000;
/// Added to every API call.
const ADDED_LATENCY: Duration = Duration::from_millis(20);
/// The parallelism compared with 1.
const PARALLELISM: usize = 10;
/// Parallelism 10 must be at least this many times faster than 1.
const TARGET_SPEEDUP: f64 = 8.0;
/// Parallelism 10 may take at most this many times the ideal.
const TARGET_IDEAL_RATIO: f64 = 1.3;
/// Measured saves of the state-size probe.
const SAVE_RUNS: usize = 9;

/// `EnvironmentsApi` over the SDK client that waits `latency` before each call, and counts calls
/// and the time the real call took (the server's round trip, without the added latency).
struct DelayedApi {
    inner: ControlPlaneClient,
    latency: Duration,
    calls: CallCounts,
}

/// How many calls of one kind were made and how long they took.
#[derive(Default)]
struct CallStats {
    count: AtomicU64,
    nanos: AtomicU64,
}

impl CallStats {
    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn mean(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Relaxed) / self.count().max(1))
    }
}

/// Calls made, by kind.
#[derive(Default)]
struct CallCounts {
    list: CallStats,
    get: CallStats,
    create: CallStats,
    update: CallStats,
    delete: CallStats,
    worker_command: CallStats,
}

impl CallCounts {
    fn kinds(&self) -> [(&'static str, &CallStats); 6] {
        [
            ("POST", &self.create),
            ("GET one", &self.get),
            ("list", &self.list),
            ("PATCH", &self.update),
            ("DELETE", &self.delete),
            ("worker-command", &self.worker_command),
        ]
    }

    fn total(&self) -> u64 {
        self.kinds().iter().map(|(_, stats)| stats.count()).sum()
    }

    /// "POST 1000 (9.1 ms each), GET one 1000 (1.2 ms each)": the time is the real call's.
    fn describe(&self) -> String {
        self.kinds()
            .iter()
            .filter(|(_, stats)| stats.count() > 0)
            .map(|(label, stats)| {
                format!(
                    "{label} {} ({:.1} ms each)",
                    stats.count(),
                    millis(stats.mean())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl DelayedApi {
    /// Waits the added latency, then makes the call and records it.
    async fn call<T>(&self, stats: &CallStats, call: impl Future<Output = T>) -> T {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let started = Instant::now();
        let result = call.await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.count.fetch_add(1, Ordering::Relaxed);
        stats.nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }
}

#[async_trait::async_trait]
impl EnvironmentsApi for DelayedApi {
    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError> {
        self.call(
            &self.calls.list,
            EnvironmentsApi::list(&self.inner, status_filter),
        )
        .await
    }
    async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError> {
        self.call(&self.calls.get, EnvironmentsApi::get(&self.inner, id))
            .await
    }
    async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError> {
        self.call(
            &self.calls.create,
            EnvironmentsApi::create(&self.inner, data),
        )
        .await
    }
    async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError> {
        self.call(
            &self.calls.update,
            EnvironmentsApi::update(&self.inner, id, patch),
        )
        .await
    }
    async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError> {
        self.call(&self.calls.delete, EnvironmentsApi::delete(&self.inner, id))
            .await
    }
    async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        self.call(
            &self.calls.worker_command,
            EnvironmentsApi::get_worker_command(&self.inner, id),
        )
        .await
    }
}

/// State kept in memory: what apply costs without writing a file.
#[derive(Default)]
struct MemoryBackend {
    stored: Mutex<Option<State>>,
}

#[async_trait::async_trait]
impl StateBackend for MemoryBackend {
    async fn load(&self) -> Result<Option<State>, StateError> {
        Ok(self.stored.lock().expect("state mutex").clone())
    }
    async fn save(&self, state: &State, _lock: Option<&LockHandle>) -> Result<(), StateError> {
        *self.stored.lock().expect("state mutex") = Some(state.clone());
        Ok(())
    }
    async fn lock(&self, info: LockInfo) -> Result<LockHandle, StateError> {
        Ok(LockHandle::new(info))
    }
    async fn unlock(&self, _handle: LockHandle) -> Result<(), StateError> {
        Ok(())
    }
    async fn force_unlock(&self, _lock_id: &str) -> Result<(), StateError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "memory".to_owned()
    }
}

/// A backend that counts saves and the time spent in them.
struct TimedBackend {
    inner: Box<dyn StateBackend>,
    saves: AtomicU64,
    save_nanos: AtomicU64,
}

impl TimedBackend {
    fn new(inner: Box<dyn StateBackend>) -> Self {
        Self {
            inner,
            saves: AtomicU64::new(0),
            save_nanos: AtomicU64::new(0),
        }
    }
}

#[async_trait::async_trait]
impl StateBackend for TimedBackend {
    async fn load(&self) -> Result<Option<State>, StateError> {
        self.inner.load().await
    }
    async fn save(&self, state: &State, lock: Option<&LockHandle>) -> Result<(), StateError> {
        let started = Instant::now();
        let result = self.inner.save(state, lock).await;
        self.saves.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.save_nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }
    async fn lock(&self, info: LockInfo) -> Result<LockHandle, StateError> {
        self.inner.lock(info).await
    }
    async fn unlock(&self, handle: LockHandle) -> Result<(), StateError> {
        self.inner.unlock(handle).await
    }
    async fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        self.inner.force_unlock(lock_id).await
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Where a run journals its state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Journaling {
    /// `.envform/state.json` in the run's directory, as `envform apply` does.
    LocalFile,
    /// In memory.
    Memory,
}

/// One apply to measure.
struct Scenario {
    label: &'static str,
    creates: usize,
    parallelism: usize,
    latency: Duration,
    journaling: Journaling,
}

/// What one apply took.
struct Outcome {
    elapsed: Duration,
    calls: u64,
    calls_described: String,
    saves: u64,
    save_time: Duration,
    state: State,
}

fn desired_text(count: usize) -> String {
    let mut text = String::from("version: 1\nenvironments:\n");
    for index in 0..count {
        let _ = writeln!(text, "  - name: created-{index:04}");
        let _ = writeln!(text, "    description: Environment {index}");
        let _ = writeln!(
            text,
            "    configuration: {{max_workers: {}, timeout_seconds: 3600}}",
            1 + index % 10
        );
        let _ = writeln!(text, "    metadata: {{team: team-{:02}}}", index % 7);
    }
    text
}

/// Waits until the organization exists and its namespace is provisioned, so the measured run
/// starts from a settled organization.
async fn settle(client: &ControlPlaneClient) -> Vec<Environment> {
    loop {
        let live = client.environments().list(None).await.expect("list");
        if live
            .iter()
            .all(|environment| environment.status.is_settled())
        {
            return live;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn run(scenario: &Scenario) -> Outcome {
    let directory = tempfile::tempdir().expect("temp dir");
    let server = ServeProcess::start(directory.path(), &[]);
    let client = server.client();
    let live = settle(&client).await;

    let path = directory.path().join("envform.yaml");
    let desired = desired::parse(Sources {
        files: vec![SourceFile {
            path,
            text: desired_text(scenario.creates),
        }],
    })
    .unwrap_or_else(|error| panic!("invalid desired state: {error:?}"));
    let state = State::empty(server.url());
    let options = PlanOptions::default();
    let planned = plan::diff(&desired, &live, &state, &options)
        .unwrap_or_else(|errors| panic!("plan: {errors:?}"));
    assert_eq!(planned.summary().add, scenario.creates);

    let api = Arc::new(DelayedApi {
        inner: client,
        latency: scenario.latency,
        calls: CallCounts::default(),
    });
    let state_path = directory.path().join(".envform").join("state.json");
    let backend = TimedBackend::new(match scenario.journaling {
        Journaling::LocalFile => Box::new(LocalBackend::new(&state_path)),
        Journaling::Memory => Box::new(MemoryBackend::default()),
    });
    let lock = backend
        .lock(LockInfo::new("apply", state_path.display().to_string()))
        .await
        .expect("lock state");
    let apply_options = ApplyOptions {
        parallelism: scenario.parallelism,
        ..ApplyOptions::default()
    };

    let started = Instant::now();
    let bound = planned
        .bind(&desired, &live, state, false)
        .expect("the fresh plan binds");
    let report = apply::execute(
        bound,
        api.clone(),
        Journal {
            backend: &backend,
            lock: Some(&lock),
        },
        &apply_options,
        CancellationToken::new(),
        &SilentProgress,
    )
    .await;
    let elapsed = started.elapsed();

    backend.unlock(lock).await.expect("unlock state");
    let failed: Vec<_> = report
        .results
        .iter()
        .filter(|result| !result.outcome.is_done())
        .take(3)
        .map(|result| format!("{}: {:?}", result.name, result.outcome))
        .collect();
    assert!(
        failed.is_empty() && report.succeeded(),
        "{}: apply did not finish every step: {failed:?} {:?}",
        scenario.label,
        report.fatal
    );
    assert_eq!(report.state.resources.len(), scenario.creates);
    Outcome {
        elapsed,
        calls: api.calls.total(),
        calls_described: api.calls.describe(),
        saves: backend.saves.load(Ordering::Relaxed),
        save_time: Duration::from_nanos(backend.save_nanos.load(Ordering::Relaxed)),
        state: report.state,
    }
}

/// `state` grown to `resources` entries by copying its resources under new names.
fn grown(state: &State, resources: usize) -> State {
    let mut grown = state.clone();
    let originals: Vec<_> = state.resources.values().cloned().collect();
    let mut index = 0;
    while grown.resources.len() < resources {
        let mut resource = originals[index % originals.len()].clone();
        resource.id = EnvironmentId::new_random();
        grown.resources.insert(format!("copy-{index:05}"), resource);
        index += 1;
    }
    grown
}

/// The median time of one local state save of `state`, in a fresh directory.
async fn save_time(state: &State, directory: &Path) -> Duration {
    let backend = LocalBackend::new(directory.join("state.json"));
    let mut state = state.clone();
    state.serial = 1;
    backend.save(&state, None).await.expect("first save");
    let mut samples = Vec::with_capacity(SAVE_RUNS);
    for _ in 0..SAVE_RUNS {
        state.serial += 1;
        let started = Instant::now();
        backend.save(&state, None).await.expect("save");
        samples.push(started.elapsed());
    }
    median(&samples)
}

fn main() {
    let creates = if common::quick() {
        CREATES / 10
    } else {
        CREATES
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let scenarios = [
        Scenario {
            label: "parallelism 1, +20 ms, local state",
            creates,
            parallelism: 1,
            latency: ADDED_LATENCY,
            journaling: Journaling::LocalFile,
        },
        Scenario {
            label: "parallelism 10, +20 ms, local state",
            creates,
            parallelism: PARALLELISM,
            latency: ADDED_LATENCY,
            journaling: Journaling::LocalFile,
        },
        Scenario {
            label: "parallelism 10, +20 ms, state in memory",
            creates,
            parallelism: PARALLELISM,
            latency: ADDED_LATENCY,
            journaling: Journaling::Memory,
        },
        Scenario {
            label: "parallelism 10, no added latency, state in memory",
            creates,
            parallelism: PARALLELISM,
            latency: Duration::ZERO,
            journaling: Journaling::Memory,
        },
    ];
    let mut outcomes = Vec::new();
    for scenario in &scenarios {
        let outcome = runtime.block_on(run(scenario));
        eprintln!("{}: {:.2} s", scenario.label, outcome.elapsed.as_secs_f64());
        outcomes.push(outcome);
    }

    println!();
    println!(
        "{creates} creates against `envform serve` (fresh database per run), {} ms added per call",
        ADDED_LATENCY.as_millis()
    );
    let mut calls = Vec::new();
    println!(
        "{:<50} {:>9} {:>10} {:>8} {:>7} {:>12}",
        "", "total", "per create", "calls", "saves", "in saves"
    );
    for (scenario, outcome) in scenarios.iter().zip(&outcomes) {
        calls.push(format!("  {}: {}", scenario.label, outcome.calls_described));
        println!(
            "{:<50} {:>7.2} s {:>7.2} ms {:>8} {:>7} {:>8.2} s ({:.2} ms each)",
            scenario.label,
            outcome.elapsed.as_secs_f64(),
            millis(outcome.elapsed) / scenario.creates as f64,
            outcome.calls,
            outcome.saves,
            outcome.save_time.as_secs_f64(),
            millis(outcome.save_time) / outcome.saves.max(1) as f64,
        );
    }

    let serial = &outcomes[0];
    let parallel = &outcomes[1];
    let calls_per_create = parallel.calls as f64 / creates as f64;
    let speedup = serial.elapsed.as_secs_f64() / parallel.elapsed.as_secs_f64();
    let latency = ADDED_LATENCY.as_secs_f64();
    let issue_ideal = creates as f64 / PARALLELISM as f64 * latency;
    let per_call_ideal = issue_ideal * calls_per_create;
    let parallel_seconds = parallel.elapsed.as_secs_f64();
    let verdict = |pass: bool| if pass { "ok" } else { "MISSED" };
    println!();
    println!("calls, and each real call's mean time (without the added latency):");
    for line in &calls {
        println!("{line}");
    }
    println!("calls per create: {calls_per_create:.2}");
    println!(
        "speedup, parallelism {PARALLELISM} over 1: {speedup:.2}× (target ≥ {TARGET_SPEEDUP:.0}×: {})",
        verdict(speedup >= TARGET_SPEEDUP)
    );
    println!(
        "against the ideal of one call per create, {creates} / {PARALLELISM} × {} ms = {issue_ideal:.2} s: {:.2}× (target ≤ {TARGET_IDEAL_RATIO}×: {})",
        ADDED_LATENCY.as_millis(),
        parallel_seconds / issue_ideal,
        verdict(parallel_seconds / issue_ideal <= TARGET_IDEAL_RATIO)
    );
    println!(
        "against the ideal of {calls_per_create:.0} calls per create, {per_call_ideal:.2} s: {:.2}× (target ≤ {TARGET_IDEAL_RATIO}×: {})",
        parallel_seconds / per_call_ideal,
        verdict(parallel_seconds / per_call_ideal <= TARGET_IDEAL_RATIO)
    );
    println!(
        "parallelism 1 against its ideal {:.2} s ({calls_per_create:.0} calls × {} ms × {creates}): {:.2}×",
        creates as f64 * calls_per_create * latency,
        ADDED_LATENCY.as_millis(),
        serial.elapsed.as_secs_f64() / (creates as f64 * calls_per_create * latency)
    );

    // How one state write grows with the state: every finished step (and every batch of
    // creates, for their intents) rewrites the whole file.
    let directory = tempfile::tempdir().expect("temp dir");
    println!();
    println!(
        "one local state save (write, fsync, backup link, rename, directory fsync), median of {SAVE_RUNS}:"
    );
    for resources in [creates, creates * 10] {
        let state = grown(&parallel.state, resources);
        let bytes = serde_json::to_vec_pretty(&state).map_or(0, |bytes| bytes.len());
        let subdirectory = directory.path().join(resources.to_string());
        let time = runtime.block_on(save_time(&state, &subdirectory));
        println!(
            "  {resources:>6} resources ({:.1} MB): {:.2} ms",
            bytes as f64 / 1e6,
            millis(time)
        );
    }
}
