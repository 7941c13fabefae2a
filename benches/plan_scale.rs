//! `envform plan` at scale: 10,000 desired environments against 10,000 live ones on an
//! `envform serve` child process, with half of them changed since the last apply.
//!
//! Measured, as medians: the one list call alone (SDK, in this process, with the server's list
//! cache expired as it is when a plan starts); the pure core in this process (spec parse, diff
//! with ordering, each rendering); and the whole `envform plan` command as a child process, with
//! the peak resident memory it reached. Targets: the whole plan within
//! 1.5× the list call alone, and at most 150 MB of peak memory. The verdict on time pairs each
//! run of the command with a list call timed just before it, so both see the same machine load.
//! Beside it, an estimate (not a measurement) for a server on another machine, whose list call
//! does not share the plan's cores: the later of the list call and the parse, then the diff and
//! the rendering.
//!
//! Live environments are seeded into the server's database, all but the last 100, which are
//! created through the API to time a create at that size (filling an organization through the API
//! is quadratic: each create reads all its environments).
//!
//! State is what an apply of the unchanged file would have recorded: the adopt plan's steps
//! recorded into a state document with `Step::record_in`, exactly as the executor does after
//! each step, without 10,000 rounds of API calls and state writes.
//!
//! Run with `cargo bench --bench plan_scale` (`-- --quick` for 1,000 environments). With
//! `ENVFORM_BENCH_KEEP=1` the files and the server's database are kept, for profiling one command.

#[path = "common.rs"]
mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envform::api::{
    ControlPlaneClient, CreateEnvironment, Environment, EnvironmentId, OrganizationId,
};
use envform::desired::{self, Desired, DesiredEnvironment, SourceFile, Sources};
use envform::model::{Lineage, Owner};
use envform::plan::render::{self, DEFAULT_MARKDOWN_MAX_CHARS};
use envform::plan::{self, Plan, PlanOptions};
use envform::state::{LocalBackend, State, StateBackend};
use envform::store::{EnvironmentRecord, SqliteStore, Store};
use jiff::SignedDuration;
use tokio::task::JoinSet;

use common::{API_KEY, ServeProcess, fleet_text, measure, median, millis};

/// Environments desired and live.
const ENVIRONMENTS: usize = 10_000;
/// Environments per `depends_on` chain (each one depends on the one before it).
const CHAIN_LENGTH: usize = 10;
/// Environments created through the API (the others are seeded into the database).
const API_CREATES: usize = 100;
/// Environments per desired-state file.
const FILE_ENVIRONMENTS: usize = 1_000;
/// Creates in flight while the server is populated.
const CREATE_CONCURRENCY: usize = 4;
/// Measured runs of each in-process case.
const CORE_RUNS: usize = 5;
/// Measured runs of the whole command in the human format.
const COMMAND_RUNS: usize = 11;
/// Measured runs of the whole command in the json and markdown formats.
const OTHER_FORMAT_RUNS: usize = 5;
/// A pause before each timed list call and each run of the command, longer than the time
/// `envform serve` answers a repeated list from memory: every one is timed against a cold cache.
const COLD_LIST_PAUSE: Duration =
    envform::server::LIST_CACHE_TTL.saturating_add(Duration::from_millis(50));
/// The whole plan may take at most this many times the list call alone.
const TARGET_RATIO: f64 = 1.5;
/// The whole plan may reach at most this peak resident memory.
const TARGET_PEAK_MB: f64 = 150.0;

/// The desired state as files of `FILE_ENVIRONMENTS` environments each (one file of 10,000
/// exceeds the spec's node budget per file): every environment at revision 1, except those
/// `revision` moves on. A later revision changes the description and `configuration.max_workers`.
fn desired_files(
    directory: &Path,
    count: usize,
    revision: impl Fn(usize) -> usize,
) -> Vec<SourceFile> {
    (0..count)
        .step_by(FILE_ENVIRONMENTS)
        .enumerate()
        .map(|(file, first)| SourceFile {
            path: directory.join(format!("part-{file:03}.yaml")),
            text: fleet_text(
                first..count.min(first + FILE_ENVIRONMENTS),
                &revision,
                Some(CHAIN_LENGTH),
            ),
        })
        .collect()
}

/// Every other environment moves on to revision 2.
fn half_changed(index: usize) -> usize {
    1 + usize::from(index.is_multiple_of(2))
}

/// Validates desired-state files as `desired::load` would after reading them.
fn parse(files: &[SourceFile]) -> Result<Desired, desired::SpecError> {
    desired::parse(Sources {
        files: files.to_vec(),
    })
}

fn valid(files: &[SourceFile]) -> Desired {
    parse(files).unwrap_or_else(|error| panic!("invalid desired state: {error:?}"))
}

/// The lineage of the state the bench writes, which every environment it makes carries as its
/// owner, as if envform had created them.
fn owner() -> Owner {
    Owner {
        lineage: Lineage(uuid::Uuid::from_u128(0x5ca1e)),
        prevent_destroy: false,
    }
}

fn create_payload(environment: &DesiredEnvironment) -> CreateEnvironment {
    CreateEnvironment {
        settings: Some(owner().stamped(None)),
        description: environment.fields.description.clone(),
        configuration: environment.fields.configuration.clone(),
        metadata: environment.fields.metadata.clone(),
        ..CreateEnvironment::named(environment.name.clone())
    }
}

/// Inserts `environments` straight into the server's database in one transaction, as the
/// service's create would store them. Creating them through the API instead takes minutes: each
/// create reads every environment of the organization, so filling one is quadratic.
async fn seed(database: &Path, environments: &[DesiredEnvironment]) {
    let store = SqliteStore::open(database)
        .await
        .expect("open the server's database");
    let organization = OrganizationId(common::ORGANIZATION.to_owned());
    let existing = store
        .environments(&organization, None)
        .await
        .expect("read environments");
    // The organization's own environment carries its namespace, as every new one does.
    let template = existing
        .iter()
        .find(|record| record.name == plan::DEFAULT_ENVIRONMENT)
        .expect("the organization's default environment")
        .clone();
    let mut transaction = store.begin().await.expect("begin");
    for (offset, environment) in environments.iter().enumerate() {
        // Creation times strictly increase, as the service keeps them.
        let created_at = template
            .created_at
            .checked_add(SignedDuration::from_micros(offset as i64 + 1))
            .expect("creation time");
        let record = EnvironmentRecord {
            id: EnvironmentId::new_random(),
            name: environment.name.clone(),
            display_name: Some(environment.name.clone()),
            description: environment.fields.description.clone(),
            configuration: environment.fields.configuration.clone(),
            metadata: environment.fields.metadata.clone(),
            tags: None,
            settings: Some(owner().stamped(None)),
            execution_environment: None,
            created_at,
            updated_at: created_at,
            created_by: Some("plan_scale".to_owned()),
            ..template.clone()
        };
        transaction
            .insert_environment(&record)
            .await
            .expect("insert environment");
    }
    transaction.commit().await.expect("commit");
    store.close().await;
}

/// Creates `environments` through the API, `CREATE_CONCURRENCY` at a time.
async fn create_through_api(client: &ControlPlaneClient, environments: &[DesiredEnvironment]) {
    let mut tasks = JoinSet::new();
    for environment in environments {
        while tasks.len() >= CREATE_CONCURRENCY {
            finish_create(tasks.join_next().await);
        }
        let client = client.clone();
        let data = create_payload(environment);
        tasks.spawn(async move { client.environments().create(&data).await.map(drop) });
    }
    while let Some(joined) = tasks.join_next().await {
        finish_create(Some(joined));
    }
}

fn finish_create(
    joined: Option<Result<Result<(), envform::api::EnvironmentError>, tokio::task::JoinError>>,
) {
    if let Some(joined) = joined {
        joined.expect("create task").expect("create");
    }
}

fn forced() -> PlanOptions {
    // Half of the fleet changes: far above the 30% update threshold.
    PlanOptions {
        force: true,
        ..PlanOptions::default()
    }
}

/// The state an apply of `applied` would leave: its adopt plan's steps recorded one by one.
fn applied_state(applied: &Desired, live: &[Environment], target: &str) -> State {
    let fresh = State {
        lineage: owner().lineage,
        ..State::empty(target)
    };
    let adopt = plan::diff(applied, live, &fresh, &forced())
        .unwrap_or_else(|errors| panic!("adopt plan: {errors:?}"));
    let mut state = fresh.clone();
    for step in adopt.steps() {
        let id = step
            .environment_id
            .expect("an adopted environment has an id");
        step.record_in(&mut state, id);
    }
    state.serial = 1;
    state
}

/// Runs `work` `runs` times (at least once), each after [`COLD_LIST_PAUSE`]; returns the median
/// time and the last result.
fn measure_cold<T>(runs: usize, mut work: impl FnMut() -> T) -> (Duration, T) {
    let mut timed = || {
        std::thread::sleep(COLD_LIST_PAUSE);
        let started = Instant::now();
        let result = work();
        (started.elapsed(), result)
    };
    let (first, mut last) = timed();
    let mut samples = vec![first];
    for _ in 1..runs {
        let (time, result) = timed();
        samples.push(time);
        last = result;
    }
    (median(&samples), last)
}

/// The whole command's figures in one format.
struct CommandFigures {
    wall: Duration,
    /// Median of each run's time over the list call timed just before it: on a shared machine
    /// the two then see the same load.
    paired_ratio: f64,
    peak_mb: f64,
    output_bytes: u64,
}

/// Runs `envform plan` `runs` times (after one warm-up) in `format`.
fn whole_command(
    directory: &Path,
    desired_path: &Path,
    state_path: &Path,
    url: &str,
    format: &str,
    runs: usize,
    list_call: &dyn Fn() -> Duration,
) -> CommandFigures {
    let stdout_path = directory.join(format!("plan.{format}.out"));
    let stderr_path = directory.join(format!("plan.{format}.err"));
    let run_once = || {
        let mut command = Command::new(common::envform_binary());
        command
            .arg("plan")
            .arg("-f")
            .arg(desired_path)
            .arg("--state")
            .arg(state_path)
            .args([
                "--api-url",
                url,
                "--api-key",
                API_KEY,
                "--force",
                "--format",
                format,
            ])
            .env("NO_COLOR", "1")
            .env_remove("ENVFORM_LOG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("stdout file"))
            .stderr(File::create(&stderr_path).expect("stderr file"));
        std::thread::sleep(COLD_LIST_PAUSE);
        let run = common::run_measured(&mut command);
        if !run.status.success() {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!(
                "envform plan --format {format} failed ({}):\n{stderr}",
                run.status
            );
        }
        run
    };
    run_once();
    let mut ratios = Vec::with_capacity(runs);
    let runs: Vec<_> = (0..runs)
        .map(|_| {
            let list = list_call();
            let run = run_once();
            ratios.push(run.wall.as_secs_f64() / list.as_secs_f64());
            run
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let walls: Vec<Duration> = runs.iter().map(|run| run.wall).collect();
    let peak_kib = runs.iter().map(|run| run.peak_kib).max().unwrap_or(0);
    CommandFigures {
        wall: median(&walls),
        paired_ratio: ratios[ratios.len() / 2],
        peak_mb: peak_kib as f64 / 1024.0,
        output_bytes: std::fs::metadata(&stdout_path).map_or(0, |metadata| metadata.len()),
    }
}

/// The first diagnostic of a spec error, on one line.
fn first_problem(error: &desired::SpecError) -> String {
    error.diagnostics().first().map_or_else(
        || error.to_string(),
        |diagnostic| format!("line {}: {diagnostic}", diagnostic.line),
    )
}

fn verdict(pass: bool) -> &'static str {
    if pass { "ok" } else { "MISSED" }
}

fn row(label: &str, duration: Duration, list: Duration, note: &str) {
    println!(
        "{label:<46} {:>9.1} ms {:>7.2}×  {note}",
        millis(duration),
        duration.as_secs_f64() / list.as_secs_f64()
    );
}

fn main() {
    let count = if common::quick() { 1_000 } else { ENVIRONMENTS };
    let directory = tempfile::tempdir().expect("temp dir");
    let server = ServeProcess::start(directory.path(), &[]);
    let client = server.client();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");

    let desired_path: PathBuf = directory.path().join("environments");
    std::fs::create_dir(&desired_path).expect("create the desired-state directory");
    let applied_files = desired_files(&desired_path, count, |_| 1);
    let changed_files = desired_files(&desired_path, count, half_changed);
    for file in &changed_files {
        std::fs::write(&file.path, &file.text).expect("write desired state");
    }
    let desired_bytes: usize = changed_files.iter().map(|file| file.text.len()).sum();
    let applied = valid(&applied_files);
    // The same environments in one file, to show where the per-file budget stands.
    let single_file = parse(&[SourceFile {
        path: directory.path().join("envform.yaml"),
        text: fleet_text(0..count, |_| 1, Some(CHAIN_LENGTH)),
    }]);

    // The first call creates the organization; most environments are then seeded into the
    // database and the last ones created through the API, which times a create at this size.
    runtime
        .block_on(client.environments().list(None))
        .expect("first list");
    let seeded = count - API_CREATES;
    runtime.block_on(seed(&server.database(), &applied.environments[..seeded]));
    let started = Instant::now();
    runtime.block_on(create_through_api(&client, &applied.environments[seeded..]));
    let create_time = started.elapsed() / API_CREATES as u32;
    let live = runtime
        .block_on(client.environments().list(None))
        .expect("list");
    assert_eq!(live.len(), count + 1, "every environment plus `default`");

    let state = applied_state(&applied, &live, server.url());
    let state_path = directory.path().join(".envform").join("state.json");
    let backend = LocalBackend::new(&state_path);
    runtime
        .block_on(backend.save(&state, None))
        .expect("save state");
    let state_bytes = std::fs::metadata(&state_path).map_or(0, |metadata| metadata.len());

    let unchanged = plan::diff(&applied, &live, &state, &forced()).expect("plan");
    assert!(
        !unchanged.has_changes(),
        "the applied file plans no change: {}",
        unchanged.summary()
    );

    // (a) The list call alone, as a plan makes it: with the server's list cache expired.
    let list_call = || {
        let (time, listed) = measure_cold(1, || {
            runtime
                .block_on(client.environments().list(None))
                .expect("list")
        });
        assert_eq!(listed.len(), count + 1);
        time
    };
    let list_samples: Vec<Duration> = (0..CORE_RUNS).map(|_| list_call()).collect();
    let list_alone = median(&list_samples);
    // For comparison: back to back, every call after the first is answered from the cache.
    let (warm_list, _) = measure(CORE_RUNS, || {
        runtime
            .block_on(client.environments().list(None))
            .expect("list")
    });
    // Its server share: the same request, reading the body without decoding it.
    let raw = reqwest::Client::new();
    let list_url = format!("{}/api/v1/environments", server.url());
    let (raw_list, body_bytes) = measure_cold(CORE_RUNS, || {
        runtime.block_on(async {
            let response = raw
                .get(&list_url)
                .bearer_auth(API_KEY)
                .send()
                .await
                .expect("list");
            assert!(response.status().is_success());
            response.bytes().await.expect("list body").len()
        })
    });

    // (b) The pure core, in this process.
    let (parse_time, desired) = measure(CORE_RUNS, || valid(&changed_files));
    let (yaml_time, _) = measure(CORE_RUNS, || {
        for file in &changed_files {
            serde_saphyr::from_str::<serde_json::Value>(&file.text).expect("YAML");
        }
    });
    let (diff_time, planned): (Duration, Plan) = measure(CORE_RUNS, || {
        plan::diff(&desired, &live, &state, &forced()).expect("plan")
    });
    let summary = planned.summary();
    assert_eq!(summary.change, count / 2, "{summary}");
    assert_eq!(
        summary.add + summary.destroy + summary.adopt,
        0,
        "{summary}"
    );
    let (human_time, human) = measure(CORE_RUNS, || render::render_human(&planned, false));
    let (json_time, json) = measure(CORE_RUNS, || render::render_json(&planned));
    let (markdown_time, markdown) = measure(CORE_RUNS, || {
        render::render_markdown(&planned, DEFAULT_MARKDOWN_MAX_CHARS)
    });
    let (state_load_time, loaded) = measure(CORE_RUNS, || {
        runtime.block_on(backend.load()).expect("load state")
    });
    assert_eq!(loaded.map(|state| state.resources.len()), Some(count));

    // (c) The whole command, as a child process, each run after a list call of its own.
    let url = server.url();
    let human_command = whole_command(
        directory.path(),
        &desired_path,
        &state_path,
        url,
        "human",
        COMMAND_RUNS,
        &list_call,
    );
    let json_command = whole_command(
        directory.path(),
        &desired_path,
        &state_path,
        url,
        "json",
        OTHER_FORMAT_RUNS,
        &list_call,
    );
    let markdown_command = whole_command(
        directory.path(),
        &desired_path,
        &state_path,
        url,
        "markdown",
        OTHER_FORMAT_RUNS,
        &list_call,
    );

    let core_human = parse_time + diff_time + human_time;
    // With the server on another machine the parse no longer shares its cores: the plan would
    // wait for the later of the two, then diff and render.
    let remote_estimate = list_alone.max(parse_time) + diff_time + human_time;
    let ratio = human_command.paired_ratio;
    println!();
    println!(
        "envform plan: {count} desired × {} live ({summary}); desired state {} files, {:.1} MB; state {:.1} MB",
        count + 1,
        changed_files.len(),
        desired_bytes as f64 / 1e6,
        state_bytes as f64 / 1e6,
    );
    println!(
        "the same environments in one file: {}",
        match &single_file {
            Ok(_) => "valid".to_owned(),
            Err(error) => format!("refused, {}", first_problem(error)),
        }
    );
    println!(
        "{API_CREATES} creates through the API on top of {seeded} environments, {CREATE_CONCURRENCY} in flight: {:.1} ms each",
        millis(create_time)
    );
    println!(
        "medians of {CORE_RUNS} runs in process, {COMMAND_RUNS} (human) or {OTHER_FORMAT_RUNS} runs of the command"
    );
    println!("{:<46} {:>12} {:>8}", "", "time", "÷ list");
    row(
        "list call alone (SDK, in process, cold cache)",
        list_alone,
        list_alone,
        "",
    );
    row(
        "  list call from serve's list cache (warm)",
        warm_list,
        list_alone,
        "not what a plan meets",
    );
    row(
        "  of which the server and transfer (raw GET)",
        raw_list,
        list_alone,
        &format!("{:.1} MB body", body_bytes as f64 / 1e6),
    );
    row("core: spec parse", parse_time, list_alone, "");
    row(
        "  for reference: the YAML alone, no spans/checks",
        yaml_time,
        list_alone,
        "serde-saphyr to serde_json::Value",
    );
    row("core: diff + order", diff_time, list_alone, "");
    row(
        "core: render human",
        human_time,
        list_alone,
        &format!("{:.1} MB", human.len() as f64 / 1e6),
    );
    row(
        "core: render json",
        json_time,
        list_alone,
        &format!("{:.1} MB", json.len() as f64 / 1e6),
    );
    row(
        "core: render markdown",
        markdown_time,
        list_alone,
        &format!("{:.2} MB (capped)", markdown.len() as f64 / 1e6),
    );
    row(
        "core: parse + diff + render human",
        core_human,
        list_alone,
        "",
    );
    row("state load (local file)", state_load_time, list_alone, "");
    row(
        "whole `envform plan` (human), child process",
        human_command.wall,
        list_alone,
        &format!(
            "paired {ratio:.2}×, target ≤ {TARGET_RATIO:.1}×: {}",
            verdict(ratio <= TARGET_RATIO)
        ),
    );
    row(
        "whole `envform plan --format json`",
        json_command.wall,
        list_alone,
        &format!("paired {:.2}×", json_command.paired_ratio),
    );
    row(
        "whole `envform plan --format markdown`",
        markdown_command.wall,
        list_alone,
        &format!("paired {:.2}×", markdown_command.paired_ratio),
    );
    println!(
        "(paired: the median over runs of each command's time ÷ a list call timed just before it)"
    );
    row(
        "estimate, server on another machine",
        remote_estimate,
        list_alone,
        "not measured: max(list, parse) + diff + order + render, in process",
    );
    for (label, figures) in [
        ("human", &human_command),
        ("json", &json_command),
        ("markdown", &markdown_command),
    ] {
        println!(
            "{:<46} {:>9.1} MB {:>8}  target ≤ {TARGET_PEAK_MB:.0} MB: {} ({:.0}% of it); stdout {:.1} MB",
            format!("peak memory, `envform plan --format {label}`"),
            figures.peak_mb,
            "",
            verdict(figures.peak_mb <= TARGET_PEAK_MB),
            100.0 * figures.peak_mb / TARGET_PEAK_MB,
            figures.output_bytes as f64 / 1e6,
        );
    }
    drop(server);
    if std::env::var_os("ENVFORM_BENCH_KEEP").is_some() {
        let kept = directory.keep();
        println!(
            "kept {}: `envform serve --db serve.db --api-key {API_KEY}={}`, then `envform plan -f environments --state .envform/state.json --force`",
            kept.display(),
            common::ORGANIZATION
        );
    }
}
