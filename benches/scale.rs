//! envform at scale: 1,000, 10,000 and 30,000 environments (100,000 with
//! `ENVFORM_SCALE_MAX=100000`), each against a fresh `envform serve` child process on loopback with
//! its own SQLite file.
//!
//! For each size, in one run, side by side:
//! - `envform apply` of every environment (all creates, parallelism 16), as a child process: its
//!   time and peak resident memory;
//! - `envform plan` of the same files right after (no changes): its time, peak memory and the
//!   memory per environment, paired with a bare list call timed just before each run;
//! - the list call alone: a plain HTTP client that reads and discards the body (time, bytes), with
//!   the server's list cache expired, as a plan meets it;
//! - the server's list memory: what a fresh server's peak grows by over three such list calls;
//! - the CPU time the server spends on a bare list call and during a plan, and the plan's own: the
//!   least time the machine's cores need for both, which bounds the plan however it is written;
//! - one state save of the applied state in this process: the whole document (what compaction
//!   writes), and one changed resource under the lock (what a step's save writes);
//! - `envform validate` of the first file (10,000 environments, or all of them when fewer), as a
//!   child process, beside the YAML library's own event parse of the same bytes in this process.
//!
//! Then the growth ratios between sizes, and the targets: apply of 30,000 ≤ 3.5× 10,000 (and
//! 100,000 ≤ 3.5× 30,000), plan peak memory ≤ 6 KB per environment at 30,000, `validate` ≤ 3× the
//! event parse at 10,000, `plan` ≤ 1.5× the bare list call at 10,000 and 30,000, and the server's
//! list peak memory ≤ 6 KB per environment at 30,000.
//!
//! Run with `cargo bench --bench scale` (`-- --quick` for 1,000 and 3,000).

#[path = "common.rs"]
mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use envform::state::{LocalBackend, LockInfo, State, StateBackend, StateChanges};

use common::{API_KEY, ChildRun, ServeProcess, fleet_text, median, millis};

/// The sizes measured by default.
const DEFAULT_SIZES: [usize; 3] = [1_000, 10_000, 30_000];
/// The size added when `ENVFORM_SCALE_MAX` allows it.
const LARGE_SIZE: usize = 100_000;
/// Environments per desired-state file.
const FILE_ENVIRONMENTS: usize = 10_000;
/// `envform apply --parallelism`.
const PARALLELISM: usize = 16;
/// Runs of each measured command (after one warm-up, for plan and validate).
const RUNS: usize = 3;
/// Runs of the in-process measures.
const CORE_RUNS: usize = 5;
/// A pause before each timed list call and each plan, longer than `envform serve`'s list cache.
const COLD_LIST_PAUSE: Duration =
    envform::server::LIST_CACHE_TTL.saturating_add(Duration::from_millis(50));

/// What was measured at one size.
struct Figures {
    environments: usize,
    desired_bytes: usize,
    apply: Duration,
    apply_peak_kib: u64,
    plan: Duration,
    plan_paired: f64,
    plan_peak_kib: u64,
    list: Duration,
    list_bytes: usize,
    state_bytes: u64,
    whole_save: Duration,
    step_save: Duration,
    validated: usize,
    validate: Duration,
    validate_peak_kib: u64,
    event_parse: Duration,
    server_peak_kib: u64,
    /// What a fresh server's peak grew by over the list calls a plan makes, in KiB.
    server_list_kib: u64,
    /// The plan's CPU time (user and system, every thread), median.
    plan_cpu: Duration,
    /// The server's CPU time during a bare list call, median.
    server_list_cpu: Duration,
    /// The server's CPU time during a plan, median.
    server_plan_cpu: Duration,
}

/// The sizes to measure: the defaults, and 100,000 when `ENVFORM_SCALE_MAX` reaches it.
fn sizes() -> Vec<usize> {
    if common::quick() {
        return vec![1_000, 3_000];
    }
    let max = std::env::var("ENVFORM_SCALE_MAX")
        .ok()
        .and_then(|value| value.replace(['_', ','], "").parse::<usize>().ok())
        .unwrap_or(30_000);
    DEFAULT_SIZES
        .into_iter()
        .chain([LARGE_SIZE])
        .filter(|size| *size <= max)
        .collect()
}

/// Writes the desired state for `count` environments as files of [`FILE_ENVIRONMENTS`]; returns
/// the files' paths and their total size.
fn write_desired(directory: &Path, count: usize) -> (Vec<PathBuf>, usize) {
    std::fs::create_dir_all(directory).expect("create the desired-state directory");
    let mut bytes = 0;
    let paths = (0..count)
        .step_by(FILE_ENVIRONMENTS)
        .enumerate()
        .map(|(file, first)| {
            let path = directory.join(format!("part-{file:03}.yaml"));
            let text = fleet_text(first..count.min(first + FILE_ENVIRONMENTS), |_| 1, None);
            bytes += text.len();
            std::fs::write(&path, text).expect("write desired state");
            path
        })
        .collect();
    (paths, bytes)
}

/// `envform` with the server's address and key, its output to files in `directory`.
fn envform(directory: &Path, label: &str, arguments: &[&str], url: Option<&str>) -> Command {
    let mut command = Command::new(common::envform_binary());
    command.args(arguments);
    if let Some(url) = url {
        command.args(["--api-url", url, "--api-key", API_KEY]);
    }
    command
        .env("NO_COLOR", "1")
        .env_remove("ENVFORM_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(directory.join(format!("{label}.out"))).expect("stdout file"))
        .stderr(File::create(directory.join(format!("{label}.err"))).expect("stderr file"));
    command
}

/// Runs `command`, failing the bench with its stderr when it fails.
fn run_checked(command: &mut Command, directory: &Path, label: &str) -> ChildRun {
    let run = common::run_measured(command);
    if !run.status.success() {
        let stderr =
            std::fs::read_to_string(directory.join(format!("{label}.err"))).unwrap_or_default();
        let tail: String = stderr
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        panic!("envform {label} failed ({}):\n{tail}", run.status);
    }
    run
}

/// The list call as a plan meets it: a plain GET whose body is read and discarded, after the
/// server's list cache expired. Returns its time and the body's size.
fn bare_list(
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
) -> (Duration, usize) {
    std::thread::sleep(COLD_LIST_PAUSE);
    runtime.block_on(async {
        let started = Instant::now();
        let mut response = client
            .get(url)
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("list");
        assert!(
            response.status().is_success(),
            "list: {}",
            response.status()
        );
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await.expect("list body") {
            bytes += chunk.len();
        }
        (started.elapsed(), bytes)
    })
}

/// The YAML library's own parse of `text`: every event, nothing built from them.
fn event_parse(text: &str) -> usize {
    let mut events = 0;
    for event in serde_saphyr::granit_parser::Parser::new_from_str(text) {
        event.expect("the bench's YAML parses");
        events += 1;
    }
    events
}

/// The median time of saving `state` whole with a new serial, and of saving it with one resource
/// changed under the lock (as each step of an apply does), into a copy of its file.
fn save_times(
    runtime: &tokio::runtime::Runtime,
    state: &State,
    directory: &Path,
) -> (Duration, Duration) {
    let backend = LocalBackend::new(directory.join("state.json"));
    let mut state = state.clone();
    state.serial += 1;
    runtime
        .block_on(backend.save(&state, None))
        .expect("first save");
    let whole = common::measure(CORE_RUNS, || {
        state.serial += 1;
        runtime.block_on(backend.save(&state, None)).expect("save");
    })
    .0;
    let lock = runtime
        .block_on(backend.lock(LockInfo::new("bench", "scale")))
        .expect("lock state");
    let names: Vec<String> = state
        .resources
        .keys()
        .take(CORE_RUNS + 1)
        .cloned()
        .collect();
    let mut next = 0;
    let step = common::measure(CORE_RUNS, || {
        state.serial += 1;
        let resource = state
            .resources
            .get_mut(&names[next % names.len()])
            .expect("a resource");
        let mut applied = resource.last_applied.to_map();
        applied.insert(
            "description".to_owned(),
            serde_json::Value::String(format!("changed {next}")),
        );
        resource.last_applied = applied.into();
        let changes = StateChanges {
            resources: [names[next % names.len()].clone()].into(),
            intents: Default::default(),
            unkept_fields: false,
            digest_salt: false,
        };
        next += 1;
        runtime
            .block_on(backend.save_changes(&state, &changes, Some(&lock)))
            .expect("save under the lock");
    })
    .0;
    runtime.block_on(backend.unlock(lock)).expect("unlock");
    (whole, step)
}

fn measure(runtime: &tokio::runtime::Runtime, environments: usize) -> Figures {
    let directory = tempfile::tempdir().expect("temp dir");
    let server = ServeProcess::start(directory.path(), &[]);
    let url = server.url().to_owned();
    let list_url = format!("{url}/api/v1/environments");
    let http = reqwest::Client::new();
    // The first call creates the organization and its `default` environment.
    bare_list(runtime, &http, &list_url);

    let desired = directory.path().join("environments");
    let (files, desired_bytes) = write_desired(&desired, environments);
    let state_path = directory.path().join(".envform").join("state.json");
    let desired_arg = desired.display().to_string();
    let state_arg = state_path.display().to_string();

    // validate: the first file, beside the event parse of the same bytes.
    let first_text = std::fs::read_to_string(&files[0]).expect("read desired state");
    let validated = environments.min(FILE_ENVIRONMENTS);
    let event_parse_time = common::measure(CORE_RUNS, || {
        assert!(event_parse(&first_text) > validated);
    })
    .0;
    let first_arg = files[0].display().to_string();
    let validate_runs: Vec<ChildRun> = (0..=RUNS)
        .map(|_| {
            run_checked(
                &mut envform(
                    directory.path(),
                    "validate",
                    &["validate", "-f", &first_arg],
                    None,
                ),
                directory.path(),
                "validate",
            )
        })
        .skip(1)
        .collect();

    // apply: every environment is a create.
    eprintln!("{environments}: apply…");
    let apply_run = run_checked(
        &mut envform(
            directory.path(),
            "apply",
            &[
                "apply",
                "-f",
                &desired_arg,
                "--state",
                &state_arg,
                "--auto-approve",
                "--parallelism",
                &PARALLELISM.to_string(),
            ],
            Some(&url),
        ),
        directory.path(),
        "apply",
    );
    let state = runtime
        .block_on(LocalBackend::new(&state_path).load())
        .expect("load state")
        .expect("apply wrote state");
    assert_eq!(
        state.resources.len(),
        environments,
        "apply recorded every environment"
    );

    // plan: no changes, each run paired with a bare list call timed just before it.
    eprintln!("{environments}: plan…");
    let mut list_samples = Vec::new();
    let mut list_bytes = 0;
    let mut ratios = Vec::new();
    let mut plan_runs = Vec::new();
    let mut server_list_cpu = Vec::new();
    let mut server_plan_cpu = Vec::new();
    for round in 0..=RUNS {
        let before_list = server.cpu();
        let (list, bytes) = bare_list(runtime, &http, &list_url);
        let list_cpu = server.cpu().saturating_sub(before_list);
        list_bytes = bytes;
        std::thread::sleep(COLD_LIST_PAUSE);
        let before_plan = server.cpu();
        let run = run_checked(
            &mut envform(
                directory.path(),
                "plan",
                &[
                    "plan",
                    "-f",
                    &desired_arg,
                    "--state",
                    &state_arg,
                    "--detailed-exitcode",
                ],
                Some(&url),
            ),
            directory.path(),
            "plan",
        );
        let plan_cpu = server.cpu().saturating_sub(before_plan);
        // The first round warms the page cache and the server.
        if round > 0 {
            server_list_cpu.push(list_cpu);
            server_plan_cpu.push(plan_cpu);
            ratios.push(run.wall.as_secs_f64() / list.as_secs_f64());
            list_samples.push(list);
            plan_runs.push(run);
        }
    }
    ratios.sort_by(f64::total_cmp);

    let copies = directory.path().join("saves");
    std::fs::create_dir_all(&copies).expect("create a directory for state copies");
    let (whole_save, step_save) = save_times(runtime, &state, &copies);
    let state_bytes = std::fs::metadata(&state_path).map_or(0, |metadata| metadata.len());

    // The server's list alone: a fresh server on the same database, its peak before and after
    // list calls as plans make them (each with the cache cold).
    let server_peak_kib = server.peak_kib();
    drop(server);
    let fresh = ServeProcess::start(directory.path(), &[]);
    let fresh_list_url = format!("{}/api/v1/environments", fresh.url());
    let started_kib = fresh.peak_kib();
    for _ in 0..RUNS {
        bare_list(runtime, &http, &fresh_list_url);
    }
    let server_list_kib = fresh.peak_kib().saturating_sub(started_kib);

    let walls = |runs: &[ChildRun]| median(&runs.iter().map(|run| run.wall).collect::<Vec<_>>());
    let peak = |runs: &[ChildRun]| runs.iter().map(|run| run.peak_kib).max().unwrap_or(0);
    Figures {
        environments,
        desired_bytes,
        apply: apply_run.wall,
        apply_peak_kib: apply_run.peak_kib,
        plan: walls(&plan_runs),
        plan_paired: ratios[ratios.len() / 2],
        plan_peak_kib: peak(&plan_runs),
        list: median(&list_samples),
        list_bytes,
        state_bytes,
        whole_save,
        step_save,
        validated,
        validate: walls(&validate_runs),
        validate_peak_kib: peak(&validate_runs),
        event_parse: event_parse_time,
        server_peak_kib,
        server_list_kib,
        plan_cpu: median(&plan_runs.iter().map(|run| run.cpu).collect::<Vec<_>>()),
        server_list_cpu: median(&server_list_cpu),
        server_plan_cpu: median(&server_plan_cpu),
    }
}

/// KB an environment that the server's list calls added to its peak.
fn server_list_per_environment(figures: &Figures) -> f64 {
    figures.server_list_kib as f64 * 1.024 / figures.environments as f64
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(pass: bool) -> &'static str {
    if pass { "ok" } else { "MISSED" }
}

fn main() {
    envform::api::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mut all = Vec::new();
    for environments in sizes() {
        let started = Instant::now();
        let figures = measure(&runtime, environments);
        eprintln!(
            "{environments}: measured in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        all.push(figures);
    }

    println!();
    println!(
        "envform at scale: apply (all creates, parallelism {PARALLELISM}) and plan (no changes) against `envform serve` on loopback, SQLite; medians of {RUNS} runs"
    );
    println!(
        "{:>8} {:>7} | {:>9} {:>8} | {:>8} {:>8} {:>7} {:>6} | {:>8} {:>7} | {:>7} {:>9} {:>8} | {:>8} {:>8} {:>6} | {:>7}",
        "envs",
        "YAML MB",
        "apply",
        "peak MB",
        "plan",
        "peak MB",
        "KB/env",
        "÷list",
        "list",
        "MB",
        "state",
        "whole save",
        "step save",
        "validate",
        "events",
        "ratio",
        "serve MB",
    );
    for figures in &all {
        println!(
            "{:>8} {:>7.1} | {:>7.2} s {:>8.1} | {:>5.0} ms {:>8.1} {:>7.1} {:>5.2}× | {:>5.0} ms {:>7.1} | {:>4.1} MB {:>6.1} ms {:>5.2} ms | {:>5.0} ms {:>5.0} ms {:>5.2}× | {:>7.1}",
            figures.environments,
            figures.desired_bytes as f64 / 1e6,
            figures.apply.as_secs_f64(),
            mb(figures.apply_peak_kib),
            millis(figures.plan),
            mb(figures.plan_peak_kib),
            figures.plan_peak_kib as f64 * 1.024 / figures.environments as f64,
            figures.plan_paired,
            millis(figures.list),
            figures.list_bytes as f64 / 1e6,
            figures.state_bytes as f64 / 1e6,
            millis(figures.whole_save),
            millis(figures.step_save),
            millis(figures.validate),
            millis(figures.event_parse),
            figures.validate.as_secs_f64() / figures.event_parse.as_secs_f64(),
            mb(figures.server_peak_kib),
        );
    }
    println!(
        "(÷list: plan ÷ a bare list call timed just before it, median of the pairs; validate: `envform validate` of one file of {} environments or fewer, events: the YAML library's event parse of the same bytes)",
        FILE_ENVIRONMENTS
    );
    for figures in &all {
        println!(
            "  {}: validate peak memory {:.1} MB; a fresh server's peak grew {:.1} MB over {RUNS} list calls ({:.1} KB an environment)",
            figures.environments,
            mb(figures.validate_peak_kib),
            mb(figures.server_list_kib),
            server_list_per_environment(figures)
        );
    }

    println!();
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    println!(
        "CPU on this machine's {cores} cores during a plan (medians; the server's from /proc, in clock ticks):"
    );
    for figures in &all {
        let floor = (millis(figures.server_plan_cpu) + millis(figures.plan_cpu)) / cores as f64;
        println!(
            "  {}: server {:.0} ms for a bare list call, {:.0} ms during a plan; plan {:.0} ms: the two need at least {floor:.0} ms of the cores, {:.2}× the list call",
            figures.environments,
            millis(figures.server_list_cpu),
            millis(figures.server_plan_cpu),
            millis(figures.plan_cpu),
            floor / millis(figures.list),
        );
    }

    println!();
    println!("growth ratios (larger ÷ smaller):");
    println!(
        "{:>16} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7} {:>10} {:>9}",
        "", "envs", "apply", "apply MB", "plan", "plan MB", "list", "whole save", "step save"
    );
    for pair in all.windows(2) {
        let (small, large) = (&pair[0], &pair[1]);
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
        println!(
            "{:>16} {:>6.1}× {:>6.2}× {:>7.2}× {:>6.2}× {:>7.2}× {:>6.2}× {:>9.2}× {:>8.2}×",
            format!("{} → {}", small.environments, large.environments),
            large.environments as f64 / small.environments as f64,
            ratio(small.apply, large.apply),
            large.apply_peak_kib as f64 / small.apply_peak_kib as f64,
            ratio(small.plan, large.plan),
            large.plan_peak_kib as f64 / small.plan_peak_kib as f64,
            ratio(small.list, large.list),
            ratio(small.whole_save, large.whole_save),
            ratio(small.step_save, large.step_save),
        );
    }

    println!();
    println!("targets:");
    let find = |size: usize| all.iter().find(|figures| figures.environments == size);
    for (small, large) in [(10_000, 30_000), (30_000, LARGE_SIZE)] {
        if let (Some(small), Some(large)) = (find(small), find(large)) {
            let ratio = large.apply.as_secs_f64() / small.apply.as_secs_f64();
            println!(
                "  apply {} ÷ apply {}: {ratio:.2}× (target ≤ 3.5×: {})",
                large.environments,
                small.environments,
                verdict(ratio <= 3.5)
            );
        }
    }
    if let Some(figures) = find(30_000) {
        let per = figures.plan_peak_kib as f64 * 1.024 / figures.environments as f64;
        println!(
            "  plan peak memory per environment at 30,000: {per:.1} KB (target ≤ 6 KB: {})",
            verdict(per <= 6.0)
        );
    }
    if let Some(figures) = find(30_000) {
        let per = server_list_per_environment(figures);
        println!(
            "  the server's list: peak memory per environment at 30,000: {per:.1} KB (target ≤ 6 KB: {})",
            verdict(per <= 6.0)
        );
    }
    if let Some(figures) = find(10_000) {
        let ratio = figures.validate.as_secs_f64() / figures.event_parse.as_secs_f64();
        println!(
            "  validate of {} environments ÷ the event parse: {ratio:.2}× (target ≤ 3×: {})",
            figures.validated,
            verdict(ratio <= 3.0)
        );
    }
    for size in [10_000, 30_000] {
        if let Some(figures) = find(size) {
            println!(
                "  plan ÷ bare list call at {size}: {:.2}× (target ≤ 1.5×: {})",
                figures.plan_paired,
                verdict(figures.plan_paired <= 1.5)
            );
        }
    }
}
