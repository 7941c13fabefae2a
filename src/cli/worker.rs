//! `envform worker start`: the process the worker command runs. It is its environment's pool
//! membership: it registers, sends heartbeats, and deregisters when stopped. It runs no agent
//! tasks (task execution belongs to the agent runtime), so it always reports itself idle. When the
//! registration names a Temporal server (`envform serve --temporal-address`), it also runs a
//! Temporal worker serving `envform.ping` on the environment's task queue, stopped with it.
//!
//! Network failures are retried with backoff, forever: a worker outlives restarts of the
//! service. A refusal is final: exit 1 with the service's reason (a full pool, an environment
//! that cannot take workers yet, an unknown token). 410 Gone from a heartbeat means the worker
//! must stop (environment deleted or inactive, token rotated): it exits 0 saying why. SIGTERM or
//! Ctrl-C deregisters, then exits 0. The token never appears in logs or errors.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::args::parse_duration;
use super::exit::Exit;
use crate::api::{
    EnvironmentError, Heartbeat, RegisterWorker, WorkerClient, WorkerRegistration, WorkerToken,
};

/// The service `envform serve` listens on by default.
const DEFAULT_API_URL: &str = "http://127.0.0.1:8080";

/// The first delay after a failed call; each further failure doubles it.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);

/// The longest delay between two registration attempts.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);

/// `envform worker` and its subcommands.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    #[command(subcommand)]
    command: WorkerCommand,
}

/// `envform worker` subcommands.
#[derive(Debug, clap::Subcommand)]
enum WorkerCommand {
    /// Join an environment's worker pool and stay in it until stopped.
    #[command(
        after_help = "Runs no agent tasks: task execution belongs to the agent runtime; this is the pool's membership.\n\nExample:\n  envform worker start --token \"$ENVFORM_WORKER_TOKEN\" --environment production --api-url http://127.0.0.1:8080"
    )]
    Start(StartArgs),
}

/// `envform worker start` flags.
#[derive(Debug, clap::Args)]
struct StartArgs {
    /// The worker token from `envform env worker-command` (or ENVFORM_WORKER_TOKEN, which keeps
    /// it out of the process list).
    #[arg(
        long,
        env = "ENVFORM_WORKER_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = parse_token
    )]
    token: WorkerToken,
    /// The environment to join, by name.
    #[arg(long, value_name = "NAME")]
    environment: String,
    /// The Environments Service (`envform serve`).
    #[arg(
        long,
        env = "KUBIYA_CONTROL_PLANE_URL",
        default_value = DEFAULT_API_URL,
        value_name = "URL"
    )]
    api_url: String,
    /// The name this worker reports; the machine's host name by default.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// How long one call may take, e.g. 10s.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    request_timeout: Duration,
    /// TLS and API key towards Temporal, when the service provisions on a Temporal server (the
    /// address, namespace and task queue come from the registration).
    #[command(flatten)]
    temporal: super::temporal_args::TemporalConnectArgs,
}

fn parse_token(text: &str) -> Result<WorkerToken, String> {
    let token = text.trim();
    if token.is_empty() {
        return Err("the worker token is empty".to_owned());
    }
    Ok(WorkerToken::new(token))
}

/// Runs an `envform worker` subcommand.
pub(crate) async fn execute(args: WorkerArgs) -> miette::Result<Exit> {
    match args.command {
        WorkerCommand::Start(args) => start(args).await,
    }
}

/// Why the heartbeat loop ended.
enum Stop {
    /// SIGTERM or Ctrl-C.
    Signal,
    /// The service said the worker must stop, and why.
    Gone(String),
    /// The service refused the worker's heartbeats (a token that is not the worker's).
    Refused(EnvironmentError),
}

async fn start(args: StartArgs) -> miette::Result<Exit> {
    let client =
        WorkerClient::new(&args.api_url, &args.token, args.request_timeout).map_err(|error| {
            miette::miette!(
                code = "envform::worker::client",
                help = "pass --api-url with the address of `envform serve`",
                "{error}"
            )
        })?;
    let shutdown = CancellationToken::new();
    let watcher = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            super::output::stop_signal().await;
            tracing::info!("signal received: deregistering");
            shutdown.cancel();
        }
    });
    let request = RegisterWorker {
        environment: args.environment.clone(),
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(crate::local::host_name),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    tracing::info!(
        environment = %request.environment,
        api_url = %client.base_url(),
        hostname = %request.hostname,
        "registering"
    );
    let result = run(&client, &request, &args.temporal, &shutdown).await;
    watcher.abort();
    result
}

/// Starts the Temporal worker serving `envform.ping` on the environment's task queue, when the
/// registration names a Temporal server; it stops when `stop` is cancelled.
fn start_temporal_worker(
    registration: &WorkerRegistration,
    request: &RegisterWorker,
    connect: &super::temporal_args::TemporalConnectArgs,
    stop: &CancellationToken,
) -> miette::Result<Option<std::thread::JoinHandle<()>>> {
    let (Some(address), Some(namespace), Some(task_queue)) = (
        &registration.temporal_address,
        &registration.temporal_namespace,
        &registration.temporal_task_queue,
    ) else {
        return Ok(None);
    };
    let mut config = connect.resolve(address)?;
    config.identity = format!(
        "envform-worker-{}@{}",
        registration.worker_id, request.hostname
    );
    let settings = crate::temporal::PingWorkerSettings {
        namespace: namespace.clone(),
        task_queue: task_queue.clone(),
        reply: crate::temporal::PingReply {
            worker_id: registration.worker_id.to_string(),
            hostname: request.hostname.clone(),
            environment: registration.environment_name.clone(),
        },
    };
    tracing::info!(%address, %namespace, %task_queue, "serving envform.ping on Temporal");
    crate::temporal::run_ping_worker(config, settings, stop.clone())
        .map(Some)
        .map_err(|error| {
            miette::miette!(
                code = "envform::worker::temporal",
                "cannot start the Temporal worker: {error}"
            )
        })
}

/// Stops the Temporal worker (its pollers leave the task queue) and waits for it.
async fn stop_temporal_worker(
    worker: Option<std::thread::JoinHandle<()>>,
    stop: &CancellationToken,
) {
    stop.cancel();
    if let Some(worker) = worker {
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        tracing::info!("Temporal worker stopped");
    }
}

async fn run(
    client: &WorkerClient,
    request: &RegisterWorker,
    connect: &super::temporal_args::TemporalConnectArgs,
    shutdown: &CancellationToken,
) -> miette::Result<Exit> {
    let Some(registration) = register(client, request, shutdown).await? else {
        tracing::info!("stopped before registering");
        return Ok(Exit::Success);
    };
    tracing::info!(
        worker = %registration.worker_id,
        environment = %registration.environment_name,
        namespace = registration.temporal_namespace.as_deref().unwrap_or("-"),
        heartbeat_interval = ?registration.heartbeat_interval(),
        "registered; this worker runs no agent tasks (they belong to the agent runtime)"
    );
    let temporal_stop = CancellationToken::new();
    let temporal_worker = start_temporal_worker(&registration, request, connect, &temporal_stop)?;
    let stopped = heartbeats(client, &registration, shutdown).await;
    stop_temporal_worker(temporal_worker, &temporal_stop).await;
    match stopped {
        Stop::Gone(reason) => {
            tracing::info!(worker = %registration.worker_id, "stopping: {reason}");
            eprintln!("envform worker: stopping: {reason}");
            Ok(Exit::Success)
        }
        Stop::Signal => {
            match client.deregister(registration.worker_id).await {
                Ok(()) => tracing::info!(worker = %registration.worker_id, "deregistered"),
                Err(error) => tracing::warn!(
                    worker = %registration.worker_id,
                    "could not deregister ({error}); the service drops this worker once its \
                     heartbeats stop"
                ),
            }
            eprintln!("envform worker: stopped");
            Ok(Exit::Success)
        }
        Stop::Refused(error) => Err(miette::miette!(
            code = "envform::worker::refused",
            "heartbeat refused: {error}"
        )),
    }
}

/// Registers, retrying transient failures; `None` when stopped first.
async fn register(
    client: &WorkerClient,
    request: &RegisterWorker,
    shutdown: &CancellationToken,
) -> miette::Result<Option<WorkerRegistration>> {
    let mut failures: u32 = 0;
    loop {
        let attempt = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            attempt = client.register(request) => attempt,
        };
        match attempt {
            Ok(registration) => return Ok(Some(registration)),
            Err(error) if is_transient(&error) => {
                failures += 1;
                let delay = backoff(failures, MAX_RETRY_DELAY);
                tracing::warn!("registration failed ({error}); retrying in {delay:?}");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            Err(error) => {
                let help = match error.status_code() {
                    Some(401) => "get a current token with `envform env worker-command NAME`",
                    Some(409) => {
                        "the environment must be ready or active and have room under max_workers"
                    }
                    _ => "check --environment and --token",
                };
                return Err(miette::miette!(
                    code = "envform::worker::registration_refused",
                    help = help,
                    "registration refused: {error}"
                ));
            }
        }
    }
}

/// Sends heartbeats every interval until the service says stop or a signal arrives. After a
/// transient failure the next heartbeat comes sooner (backoff capped at the interval), so a
/// short outage does not cost the worker its place.
async fn heartbeats(
    client: &WorkerClient,
    registration: &WorkerRegistration,
    shutdown: &CancellationToken,
) -> Stop {
    let mut interval = registration.heartbeat_interval();
    let mut failures: u32 = 0;
    loop {
        let wait = if failures == 0 {
            interval
        } else {
            backoff(failures, interval)
        };
        tokio::select! {
            () = shutdown.cancelled() => return Stop::Signal,
            () = tokio::time::sleep(wait) => {}
        }
        // The worker runs no tasks, so it is never busy.
        let heartbeat = Heartbeat { busy: false };
        let sent = tokio::select! {
            () = shutdown.cancelled() => return Stop::Signal,
            sent = client.heartbeat(registration.worker_id, &heartbeat) => sent,
        };
        match sent {
            Ok(ack) => {
                if failures > 0 {
                    tracing::info!("heartbeats resumed after {failures} failed");
                }
                failures = 0;
                tracing::debug!(worker = %ack.worker_id, "heartbeat");
                interval = Duration::from_millis(ack.heartbeat_interval_ms.max(1));
            }
            Err(EnvironmentError::Api {
                status: 410,
                detail,
            }) => return Stop::Gone(detail),
            Err(error) if is_transient(&error) => {
                failures += 1;
                tracing::warn!("heartbeat failed ({error}); retrying");
            }
            Err(error) => return Stop::Refused(error),
        }
    }
}

/// Failures worth another attempt: the network, timeouts, and the service saying "not now".
fn is_transient(error: &EnvironmentError) -> bool {
    match error {
        EnvironmentError::Transport { .. } | EnvironmentError::Timeout { .. } => true,
        EnvironmentError::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
        _ => false,
    }
}

/// The delay after `failures` consecutive failures: doubling from [`FIRST_RETRY_DELAY`], at most
/// `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    FIRST_RETRY_DELAY.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(2);
        let delays: Vec<Duration> = (1..=6).map(|failures| backoff(failures, cap)).collect();
        assert_eq!(
            delays,
            [
                Duration::from_millis(250),
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(2),
                Duration::from_secs(2),
            ]
        );
        assert_eq!(backoff(u32::MAX, MAX_RETRY_DELAY), MAX_RETRY_DELAY);
    }

    #[test]
    fn only_network_trouble_and_busy_answers_are_retried() {
        let api = |status| EnvironmentError::Api {
            status,
            detail: String::new(),
        };
        assert!(is_transient(&EnvironmentError::Timeout { seconds: 1.0 }));
        assert!(is_transient(&api(503)));
        assert!(!is_transient(&api(410)));
        assert!(!is_transient(&EnvironmentError::Conflict {
            detail: "full".into()
        }));
    }

    #[test]
    fn parsed_arguments_never_show_the_token() {
        use clap::Parser;
        #[derive(Debug, clap::Parser)]
        struct Wrapper {
            #[command(subcommand)]
            command: WorkerCommand,
        }
        let token = "efw_0123456789abcdef0123456789abcdef";
        let parsed =
            Wrapper::try_parse_from(["worker", "start", "--token", token, "--environment", "prod"])
                .unwrap();
        let debug = format!("{parsed:?}");
        assert!(!debug.contains(token), "{debug}");
        assert!(debug.contains("prod"));
    }
}
