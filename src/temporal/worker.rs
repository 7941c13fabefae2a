//! Temporal workers, each on a thread of its own (the SDK's worker future is not `Send`), kept
//! running until told to stop: an unreachable Temporal or a failed worker is retried with
//! backoff, so a worker outlives restarts of the Temporal server.

use std::thread::JoinHandle;
use std::time::Duration;

use backon::BackoffBuilder;
use temporalio_client::Connection;
use temporalio_client::tonic::{Code, Request};
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio_util::sync::CancellationToken;

use super::connection::TemporalConfig;
use super::workflows::{
    NamespaceActivities, PingReply, PingWorkflow, ProvisionNamespaceWorkflow, TemporalCallError,
};

/// The backoff between attempts to (re)start a worker.
pub(crate) fn restart_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(10))
        .with_jitter()
        .without_max_times()
}

/// Which worker to run.
#[derive(Clone)]
enum Kind {
    /// envform serve's: the provisioning workflow and its activities, in the system namespace.
    Provisioning,
    /// `envform worker start`'s: `envform.ping`, answering with this reply.
    Ping(PingReply),
}

/// What `envform worker start` needs to serve its environment's task queue.
#[derive(Debug, Clone)]
pub struct PingWorkerSettings {
    /// The environment's namespace.
    pub namespace: String,
    /// The environment's task queue.
    pub task_queue: String,
    /// What `envform.ping` answers.
    pub reply: PingReply,
}

/// Starts `envform worker start`'s Temporal worker; it runs until `stop` is cancelled, then
/// shuts down cleanly (its pollers leave the task queue) before the thread ends.
pub fn run_ping_worker(
    config: TemporalConfig,
    settings: PingWorkerSettings,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    spawn(
        config,
        settings.namespace,
        settings.task_queue,
        Kind::Ping(settings.reply),
        stop,
    )
}

/// Starts envform serve's provisioning worker in the system namespace (registered if missing).
pub(crate) fn run_provisioning_worker(
    config: TemporalConfig,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    let namespace = config.system_namespace.clone();
    spawn(
        config,
        namespace,
        super::PROVISIONING_TASK_QUEUE.to_owned(),
        Kind::Provisioning,
        stop,
    )
}

fn spawn(
    config: TemporalConfig,
    namespace: String,
    task_queue: String,
    kind: Kind,
    stop: CancellationToken,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("temporal-{task_queue}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the Temporal worker's runtime");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &runtime,
                supervise(&config, &namespace, &task_queue, &kind, &stop),
            );
        })
}

/// Runs the worker until `stop`, restarting it with backoff when it cannot run.
async fn supervise(
    config: &TemporalConfig,
    namespace: &str,
    task_queue: &str,
    kind: &Kind,
    stop: &CancellationToken,
) {
    let sdk_runtime = match Runtime::from_current_tokio(RuntimeOptions::default()) {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the Temporal SDK runtime");
            return;
        }
    };
    let mut delays = restart_backoff().build();
    while !stop.is_cancelled() {
        match run_once(&sdk_runtime, config, namespace, task_queue, kind, stop).await {
            Ok(()) => {
                tracing::info!(%namespace, %task_queue, "Temporal worker stopped");
                return;
            }
            Err(message) => {
                let delay = delays.next().unwrap_or(Duration::from_secs(10));
                tracing::warn!(%namespace, %task_queue, "Temporal worker not running ({message}); retrying in {delay:?}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Connects, builds and runs the worker once; `Ok` when it stopped because `stop` was cancelled.
async fn run_once(
    sdk_runtime: &Runtime,
    config: &TemporalConfig,
    namespace: &str,
    task_queue: &str,
    kind: &Kind,
    stop: &CancellationToken,
) -> Result<(), String> {
    let connection = tokio::select! {
        () = stop.cancelled() => return Ok(()),
        connection = config.connect() => connection?,
    };
    let options = match kind {
        Kind::Provisioning => {
            ensure_namespace(&connection, namespace, config.retention).await?;
            WorkerOptions::new(task_queue)
                .register_activities(NamespaceActivities {
                    connection: connection.clone(),
                })
                .register_workflow::<ProvisionNamespaceWorkflow>()
                .map_err(|error| error.to_string())?
                .build()
        }
        Kind::Ping(reply) => {
            let reply = reply.clone();
            WorkerOptions::new(task_queue)
                .register_workflow_with_factory::<PingWorkflow, _>(move || PingWorkflow {
                    reply: reply.clone(),
                })
                .map_err(|error| error.to_string())?
                .build()
        }
    };
    let client = TemporalConfig::client(&connection, namespace)?;
    let mut worker = Worker::new(sdk_runtime, client, options)
        .map_err(|error| format!("cannot start a Temporal worker: {error}"))?;
    let shutdown = worker.shutdown_handle();
    let stopper = tokio::task::spawn_local({
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            shutdown();
        }
    });
    tracing::info!(%namespace, %task_queue, "Temporal worker polling");
    let ran = worker.run().await;
    stopper.abort();
    match ran {
        Ok(()) if stop.is_cancelled() => Ok(()),
        Ok(()) => Err("the worker stopped by itself".to_owned()),
        Err(error) => Err(format!(
            "the Temporal worker failed: {}",
            crate::local::error_chain(&error)
        )),
    }
}

/// Registers `namespace` unless it exists (envform serve's system namespace).
pub(crate) async fn ensure_namespace(
    connection: &Connection,
    namespace: &str,
    retention: Duration,
) -> Result<(), String> {
    let mut service = connection.workflow_service();
    let request = DescribeNamespaceRequest {
        namespace: namespace.to_owned(),
        ..DescribeNamespaceRequest::default()
    };
    match service.describe_namespace(Request::new(request)).await {
        Ok(_) => return Ok(()),
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => {
            return Err(format!(
                "Temporal cannot describe namespace `{namespace}`: {}",
                status.message()
            ));
        }
    }
    let options = temporalio_client::RegisterNamespaceOptions::builder()
        .namespace(namespace)
        .description("envform serve: namespace provisioning workflows")
        .workflow_execution_retention_period(retention)
        .build();
    match service
        .register_namespace(Request::new(options.into()))
        .await
    {
        Ok(_) => {
            tracing::info!(%namespace, "registered envform's system namespace");
            Ok(())
        }
        Err(status) if status.code() == Code::AlreadyExists => Ok(()),
        Err(status) => Err(TemporalCallError(format!(
            "Temporal refused to register namespace `{namespace}`: {}",
            status.message()
        ))
        .to_string()),
    }
}
