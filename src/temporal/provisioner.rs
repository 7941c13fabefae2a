//! [`TemporalProvisioner`]: an organization's namespace is registered by a provisioning workflow
//! on Temporal, run by the worker envform serve keeps in its system namespace.

use std::sync::Mutex;
use std::thread::JoinHandle;

use std::time::Duration;

use temporalio_client::errors::WorkflowStartError;
use temporalio_client::tonic::Code;
use temporalio_client::{
    Connection, WorkflowGetResultOptions, WorkflowIdConflictPolicy, WorkflowStartOptions,
};
use tokio_util::sync::CancellationToken;

use super::connection::TemporalConfig;
use super::worker::{ensure_namespace, restart_backoff, run_provisioning_worker};
use super::workflows::{NamespaceRequest, ProvisionNamespaceWorkflow};
use crate::api::OrganizationId;
use crate::control_plane::{NamespaceProvisioner, ProvisionedNamespace};

/// How long a start waits for a freshly registered system namespace to become known.
const NAMESPACE_CACHE_WAIT: Duration = Duration::from_secs(30);

/// Provisions namespaces with workflows on a Temporal server, and runs their worker.
pub struct TemporalProvisioner {
    config: TemporalConfig,
    /// The connection, once one succeeded (the SDK reconnects it by itself afterwards).
    connection: tokio::sync::Mutex<Option<Connection>>,
    /// Stops the provisioning worker.
    stop: CancellationToken,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for TemporalProvisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporalProvisioner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TemporalProvisioner {
    /// The provisioner, with its worker started (it waits for Temporal if it is unreachable).
    pub fn start(config: TemporalConfig) -> std::io::Result<Self> {
        let stop = CancellationToken::new();
        let worker = run_provisioning_worker(config.clone(), stop.clone())?;
        Ok(Self {
            config,
            connection: tokio::sync::Mutex::new(None),
            stop,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// How envform reaches Temporal.
    pub fn config(&self) -> &TemporalConfig {
        &self.config
    }

    /// A connection to Temporal: the one made before, else a new one.
    pub async fn connection(&self) -> Result<Connection, String> {
        let mut cached = self.connection.lock().await;
        if let Some(connection) = cached.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self.config.connect().await?;
        *cached = Some(connection.clone());
        Ok(connection)
    }

    /// Stops the provisioning worker and waits for it to leave its task queue.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(worker) = worker {
            let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        }
    }
}

#[async_trait::async_trait]
impl NamespaceProvisioner for TemporalProvisioner {
    async fn provision(
        &self,
        organization: &OrganizationId,
        workflow_id: &str,
    ) -> Result<ProvisionedNamespace, String> {
        let connection = self.connection().await?;
        // Temporal may have been unreachable when the worker started: the system namespace
        // must exist before a workflow can start in it.
        ensure_namespace(
            &connection,
            &self.config.system_namespace,
            self.config.retention,
        )
        .await?;
        let client = TemporalConfig::client(&connection, &self.config.system_namespace)?;
        let request = NamespaceRequest {
            organization: organization.0.clone(),
            namespace: self.config.organization_namespace(organization),
            retention_seconds: self.config.retention.as_secs(),
        };
        // Another replica may have started it: one workflow per organization.
        let options = WorkflowStartOptions::new(super::PROVISIONING_TASK_QUEUE, workflow_id)
            .id_conflict_policy(WorkflowIdConflictPolicy::UseExisting)
            .build();
        // A namespace registered a moment ago is unknown to Temporal's frontends until their
        // namespace cache refreshes (10 s by default): starts are retried that long.
        let deadline = tokio::time::Instant::now() + NAMESPACE_CACHE_WAIT;
        let handle = loop {
            match client
                .start_workflow(
                    ProvisionNamespaceWorkflow::run,
                    request.clone(),
                    options.clone(),
                )
                .await
            {
                Ok(handle) => break handle,
                Err(WorkflowStartError::Rpc(status))
                    if status.code() == Code::NotFound
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(error) => {
                    return Err(format!(
                        "Temporal did not start the provisioning workflow `{workflow_id}`: {}",
                        crate::local::error_chain(&error)
                    ));
                }
            }
        };
        let registered = handle
            .get_result(WorkflowGetResultOptions::default())
            .await
            .map_err(|error| {
                format!(
                    "the provisioning workflow `{workflow_id}` failed: {}",
                    crate::local::error_chain(&error)
                )
            })?;
        Ok(ProvisionedNamespace {
            temporal_namespace: registered.namespace,
            temporal_namespace_id: registered.namespace_id,
        })
    }

    fn workflow_id(&self, organization: &OrganizationId) -> Option<String> {
        Some(super::provisioning_workflow_id(organization))
    }

    fn retry_backoff(&self) -> Option<backon::ExponentialBuilder> {
        Some(restart_backoff())
    }
}
