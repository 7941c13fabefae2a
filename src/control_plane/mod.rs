//! The Environments Service's rules (docs/src/concepts/service.md) over a [`Store`]: the `default` environment,
//! names, validation, partial updates, namespace provisioning, worker tokens, worker pools
//! (registration, heartbeats, `max_workers`, rotation) and the audit log. Knows nothing
//! of HTTP: `server` serves an [`OrganizationScope`] per request, and the CLI uses one directly
//! as the embedded control plane.
//!
//! Every API call is one store transaction, so rules hold across processes sharing a database
//! file. Provisioning runs on background tasks that [`ControlPlane::shutdown`] stops; an
//! organization left `provisioning` is resumed when the control plane opens again.

mod audit;
pub mod clock;
mod config;
mod list_cache;
mod provisioner;
mod provisioning;
mod scope;
pub mod state_service;
mod token;
pub(crate) mod validation;
mod worker_command;
mod workers;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{
    ControlPlaneConfig, DEFAULT_WORKER_COMMAND_TEMPLATE, DEFAULT_WORKER_TOKEN_TTL,
    InvalidWorkerCommandTemplate, KUBIYA_WORKER_COMMAND_TEMPLATE, WorkerCommandTemplate,
    WorkerTokenTtl,
};
pub use provisioner::{
    BuiltinProvisioner, BuiltinProvisionerConfig, NamespaceProvisioner, ProvisionedNamespace,
    namespace_name_with_prefix,
};
pub use scope::OrganizationScope;
pub use workers::{
    DEFAULT_HEARTBEAT_INTERVAL, EXPIRY_INTERVALS, HeartbeatInterval, InvalidHeartbeatInterval,
    MAX_UNUSED_WORKER_TOKENS, MIN_HEARTBEAT_INTERVAL,
};

use crate::api::{EnvironmentError, EnvironmentId, OrganizationId};
use crate::model::DEFAULT_ENVIRONMENT;

/// The display name of the environment every organization starts with.
pub const DEFAULT_ENVIRONMENT_DISPLAY_NAME: &str = "Default Environment";
/// The description of the environment every organization starts with.
pub const DEFAULT_ENVIRONMENT_DESCRIPTION: &str = "Default environment for all workers";
use crate::store::{
    EnvironmentRecord, NamespaceState, OrganizationRecord, SqliteStore, StorageFailure, Store,
    StoreError,
};

/// Why a control plane could not be opened or resumed.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The database file could not be opened or migrated.
    #[error("cannot open the control plane database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The store failed.
    #[error("control plane store failed")]
    Store(#[from] StoreError),
}

/// The Environments Service: cheap to clone, shared by every organization it serves.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

/// What every clone of a [`ControlPlane`] shares.
pub(crate) struct Inner {
    store: Arc<dyn Store>,
    provisioner: Arc<dyn NamespaceProvisioner>,
    config: ControlPlaneConfig,
    /// Background provisioning tasks.
    tasks: Mutex<JoinSet<()>>,
    /// Workflows with a task in this process, so a resume never runs one twice.
    running: Mutex<HashSet<String>>,
    /// Cancelled by [`ControlPlane::shutdown`].
    shutdown: CancellationToken,
    /// Who this process is when it claims an organization's provisioning (unique per process).
    claimant: String,
    /// Recent list answers, when `config.list_cache` is set.
    pub(crate) list_cache: Option<list_cache::ListCache>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// The control plane on a SQLite file (created if missing), with the built-in provisioner;
    /// organizations left provisioning by a previous process are resumed.
    pub async fn open_sqlite(
        path: &Path,
        config: ControlPlaneConfig,
    ) -> Result<Self, ControlPlaneError> {
        let provisioner = Arc::new(BuiltinProvisioner::new(config.provisioner.clone()));
        Self::open_sqlite_with(path, config, provisioner).await
    }

    /// [`ControlPlane::open_sqlite`] with another provisioner (`envform serve --temporal-address`).
    pub async fn open_sqlite_with(
        path: &Path,
        config: ControlPlaneConfig,
        provisioner: Arc<dyn NamespaceProvisioner>,
    ) -> Result<Self, ControlPlaneError> {
        let store = SqliteStore::open(path)
            .await
            .map_err(|source| ControlPlaneError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let control_plane = Self::new(Arc::new(store), provisioner, config);
        control_plane.resume_provisioning().await?;
        Ok(control_plane)
    }

    /// The control plane on a store that other processes may share (PostgreSQL replicas), with
    /// the built-in provisioner: organizations left provisioning are resumed now, and again every
    /// [`provisioning::CLAIM_LEASE`] so that one whose claimer died is finished by another.
    pub async fn open_shared(
        store: Arc<dyn Store>,
        config: ControlPlaneConfig,
    ) -> Result<Self, ControlPlaneError> {
        let provisioner = Arc::new(BuiltinProvisioner::new(config.provisioner.clone()));
        Self::open_shared_with(store, config, provisioner).await
    }

    /// [`ControlPlane::open_shared`] with another provisioner (`envform serve --temporal-address`).
    pub async fn open_shared_with(
        store: Arc<dyn Store>,
        config: ControlPlaneConfig,
        provisioner: Arc<dyn NamespaceProvisioner>,
    ) -> Result<Self, ControlPlaneError> {
        let control_plane = Self::new(store, provisioner, config);
        control_plane.resume_provisioning().await?;
        let sweeper = control_plane.clone();
        lock(&control_plane.inner.tasks).spawn(async move {
            loop {
                tokio::select! {
                    () = sweeper.inner.shutdown.cancelled() => return,
                    () = tokio::time::sleep(provisioning::CLAIM_LEASE) => {}
                }
                if let Err(error) = sweeper.resume_provisioning().await {
                    tracing::warn!(error = %crate::local::error_chain(&error), "cannot resume namespace provisioning");
                }
            }
        });
        Ok(control_plane)
    }

    /// Whether a write to the store commits now (the `/ready` probe).
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        self.inner.store.check_ready().await
    }

    /// The control plane on a private in-memory database, with the built-in provisioner.
    pub async fn open_in_memory(config: ControlPlaneConfig) -> Result<Self, ControlPlaneError> {
        let store = SqliteStore::in_memory().await?;
        let provisioner = BuiltinProvisioner::new(config.provisioner.clone());
        Ok(Self::new(Arc::new(store), Arc::new(provisioner), config))
    }

    /// The control plane over any store and provisioner. Call
    /// [`ControlPlane::resume_provisioning`] once if the store may hold unfinished provisioning.
    pub fn new(
        store: Arc<dyn Store>,
        provisioner: Arc<dyn NamespaceProvisioner>,
        config: ControlPlaneConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                provisioner,
                claimant: format!("envform-{}-{}", std::process::id(), uuid::Uuid::new_v4()),
                list_cache: config.list_cache.map(list_cache::ListCache::new),
                config,
                tasks: Mutex::new(JoinSet::new()),
                running: Mutex::new(HashSet::new()),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// Restarts the provisioning of every organization still `provisioning` in the store (the
    /// process that started it stopped); returns how many.
    pub async fn resume_provisioning(&self) -> Result<usize, ControlPlaneError> {
        let mut organizations = self
            .inner
            .store
            .organizations_in_state(NamespaceState::Provisioning)
            .await?;
        // A provisioner that retries failures by itself resumes those too.
        if self.inner.provisioner.retry_backoff().is_some() {
            organizations.extend(
                self.inner
                    .store
                    .organizations_in_state(NamespaceState::Error)
                    .await?,
            );
        }
        let count = organizations.len();
        let mut first_steps = Vec::with_capacity(count);
        for organization in organizations {
            if let Some(workflow_id) = organization.namespace.provisioning_workflow_id {
                tracing::debug!(organization = %organization.id, "resuming namespace provisioning");
                first_steps.push(self.spawn_provisioning(organization.id, workflow_id));
            }
        }
        for first_step in first_steps {
            first_step.await;
        }
        Ok(count)
    }

    /// The API of one organization; the organization, its `default` environment and its
    /// namespace provisioning are created on first access.
    pub async fn organization(
        &self,
        organization: &OrganizationId,
    ) -> Result<OrganizationScope, EnvironmentError> {
        if organization.0.trim().is_empty() {
            return Err(EnvironmentError::Api {
                status: 400,
                detail: "The organization id is empty".to_owned(),
            });
        }
        let known = self
            .inner
            .store
            .organization(organization)
            .await
            .map_err(internal)?;
        if known.is_none() {
            self.create_organization(organization)
                .await
                .map_err(internal)?;
        }
        Ok(OrganizationScope::new(self.clone(), organization.clone()))
    }

    /// The organization and environment a worker token was issued for, if it is one this
    /// service minted for an environment that still exists.
    pub async fn verify_worker_token(
        &self,
        token: &str,
    ) -> Option<(OrganizationId, EnvironmentId)> {
        let now = self.now().await.ok()?;
        match self.inner.store.worker_token(&token::hash(token)).await {
            Ok(record) => record
                .filter(|record| self.token_usable(record, now))
                .map(|record| (record.organization_id, record.environment_id)),
            Err(error) => {
                tracing::error!(error = %crate::local::error_chain(&error), "worker token lookup failed");
                None
            }
        }
    }

    /// Stops background provisioning and waits for the tasks to end. Provisioning cut short
    /// resumes the next time the database is opened.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.inner.tasks));
        while tasks.join_next().await.is_some() {}
    }

    async fn create_organization(&self, organization: &OrganizationId) -> Result<(), StoreError> {
        let mut transaction = self.inner.store.begin().await?;
        // Another caller (or process) may have created it since the read above.
        if transaction.organization(organization).await?.is_some() {
            return Ok(());
        }
        let now = clock::now();
        let workflow_id = provisioning::workflow_id(self.inner.provisioner.as_ref(), organization);
        let namespace = provisioning::started(&workflow_id);
        transaction
            .insert_organization(&OrganizationRecord {
                id: organization.clone(),
                namespace: namespace.clone(),
                created_at: now,
            })
            .await?;
        let mut default = EnvironmentRecord::new(organization.clone(), DEFAULT_ENVIRONMENT, now);
        // As the production service names and describes it.
        default.display_name = Some(DEFAULT_ENVIRONMENT_DISPLAY_NAME.to_owned());
        default.description = Some(DEFAULT_ENVIRONMENT_DESCRIPTION.to_owned());
        provisioning::apply_namespace(&mut default, &namespace);
        transaction.insert_environment(&default).await?;
        let entry = audit::entry(
            organization,
            audit::SERVICE_ACTOR,
            crate::api::AuditAction::EnvironmentCreate,
            &default,
            None,
            Some(audit::environment_document(&default, None)),
        );
        transaction.insert_audit_entry(&entry).await?;
        transaction.commit().await?;
        tracing::info!(organization = %organization, "organization created; provisioning its namespace");
        self.spawn_provisioning(organization.clone(), workflow_id)
            .await;
        Ok(())
    }

    /// Runs a provisioning workflow in the background, unless it already runs here or the
    /// control plane is shutting down (then the next start resumes it). The returned future ends
    /// once the provisioner is pending or its immediate outcome is recorded (see
    /// [`provisioning::run`]).
    fn spawn_provisioning(
        &self,
        organization: OrganizationId,
        workflow_id: String,
    ) -> impl Future<Output = ()> + use<> {
        let (first_step, first_step_done) = oneshot::channel::<()>();
        let spawned = !self.inner.shutdown.is_cancelled()
            && lock(&self.inner.running).insert(workflow_id.clone());
        if spawned {
            let inner = Arc::clone(&self.inner);
            let mut tasks = lock(&self.inner.tasks);
            // Finished tasks are reaped here so the set does not grow with every organization.
            while tasks.try_join_next().is_some() {}
            tasks.spawn(async move {
                provisioning::run(&inner, organization, workflow_id.clone(), first_step).await;
                lock(&inner.running).remove(&workflow_id);
            });
        }
        // Not spawned: `first_step` is dropped here, so the future is ready at once.
        async move {
            // Only ever dropped, never sent: the error is the signal.
            let _ = first_step_done.await;
        }
    }

    /// What the clones share: store, provisioner, configuration.
    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// A store failure as the API reports it, without leaking internals (they are logged): `507`
/// when storage is full, `503` when the database is unavailable for now, else `500`.
fn internal(error: impl std::error::Error + 'static) -> EnvironmentError {
    tracing::error!(error = %crate::local::error_chain(&error), "environments service internal error");
    match StorageFailure::of(&error) {
        Some(failure) => EnvironmentError::Api {
            status: failure.status(),
            detail: failure.detail().to_owned(),
        },
        None => EnvironmentError::Api {
            status: 500,
            detail: "Internal error in the environments service".to_owned(),
        },
    }
}

/// Locks a mutex, ignoring poisoning: the guarded sets stay consistent whatever panicked.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
