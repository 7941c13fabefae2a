//! [`OrganizationScope`]: the Environments API of one organization, in process.

use std::sync::Arc;

use super::{ControlPlane, audit, clock, internal, provisioning, validation, worker_command};
use crate::api::{
    AuditAction, CreateEnvironment, Environment, EnvironmentError, EnvironmentId, EnvironmentsApi,
    OrganizationId, Patch, Status, UpdateEnvironment, WorkerCommand,
};
use crate::model::DEFAULT_ENVIRONMENT;
use crate::store::{
    EnvironmentRecord, NamespaceState, OrganizationRecord, StoreError, StoreTransaction,
    WorkerCounts,
};

/// The Environments API of one organization, on an in-process [`ControlPlane`].
#[derive(Clone)]
pub struct OrganizationScope {
    control_plane: ControlPlane,
    organization: OrganizationId,
    actor: Option<String>,
}

impl std::fmt::Debug for OrganizationScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrganizationScope")
            .field("organization", &self.organization)
            .field("actor", &self.actor)
            .finish_non_exhaustive()
    }
}

impl OrganizationScope {
    pub(super) fn new(control_plane: ControlPlane, organization: OrganizationId) -> Self {
        Self {
            control_plane,
            organization,
            actor: None,
        }
    }

    /// The same scope acting for `actor`, recorded as `created_by` of what it creates.
    pub fn with_actor(self, actor: impl Into<String>) -> Self {
        Self {
            actor: Some(actor.into()),
            ..self
        }
    }

    /// The organization this scope serves.
    pub fn organization_id(&self) -> &OrganizationId {
        &self.organization
    }

    /// The control plane the scope runs on.
    pub(super) fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// Who the audit log records as making this scope's changes.
    pub(super) fn actor(&self) -> &str {
        self.actor.as_deref().unwrap_or("unknown")
    }

    /// Writes an audit entry about `record` in `transaction`.
    async fn audit(
        &self,
        transaction: &mut dyn StoreTransaction,
        action: AuditAction,
        record: &EnvironmentRecord,
        before: Option<serde_json::Value>,
        after: Option<serde_json::Value>,
    ) -> Result<(), EnvironmentError> {
        let entry = audit::entry(
            &self.organization,
            self.actor(),
            action,
            record,
            before,
            after,
        );
        audit::record(transaction, &entry).await
    }

    /// The live worker counts of one environment.
    async fn counts(&self, id: EnvironmentId) -> Result<WorkerCounts, EnvironmentError> {
        let counts = self
            .control_plane
            .worker_counts(&self.organization, Some(id))
            .await?;
        Ok(counts.get(&id).copied().unwrap_or_default())
    }

    async fn begin(&self) -> Result<Box<dyn StoreTransaction>, EnvironmentError> {
        self.control_plane
            .inner()
            .store
            .begin()
            .await
            .map_err(internal)
    }

    /// The organization inside a transaction; it exists since the scope was built for it.
    async fn organization_record(
        &self,
        transaction: &mut dyn StoreTransaction,
    ) -> Result<OrganizationRecord, EnvironmentError> {
        transaction
            .organization(&self.organization)
            .await
            .map_err(internal)?
            .ok_or_else(|| internal(StoreError::NotFound))
    }

    async fn environment_record(
        &self,
        transaction: &mut dyn StoreTransaction,
        id: EnvironmentId,
    ) -> Result<EnvironmentRecord, EnvironmentError> {
        transaction
            .environment(&self.organization, id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)
    }
}

impl OrganizationScope {
    /// The list answer as the cache holds it: shared, so a hit copies nothing.
    pub(crate) async fn list_shared(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Arc<Vec<Environment>>, EnvironmentError> {
        let inner = self.control_plane.inner();
        // Read before the query: a write committed meanwhile makes the entry unusable.
        let generation = inner.store.write_generation();
        if let Some(cached) = inner
            .list_cache
            .as_ref()
            .and_then(|cache| cache.get(&self.organization, status_filter, generation))
        {
            return Ok(cached);
        }
        let records = inner
            .store
            .environments(&self.organization, status_filter)
            .await
            .map_err(internal)?;
        let counts = self
            .control_plane
            .worker_counts(&self.organization, None)
            .await?;
        let environments: Arc<Vec<Environment>> = Arc::new(
            records
                .into_iter()
                .map(|record| {
                    let counts = counts.get(&record.id).copied().unwrap_or_default();
                    to_environment(record, counts)
                })
                .collect(),
        );
        if let Some(cache) = &inner.list_cache {
            cache.put(&self.organization, status_filter, generation, &environments);
        }
        Ok(environments)
    }
}

#[async_trait::async_trait]
impl EnvironmentsApi for OrganizationScope {
    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError> {
        self.list_shared(status_filter)
            .await
            .map(Arc::unwrap_or_clone)
    }

    async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError> {
        let record = self
            .control_plane
            .inner()
            .store
            .environment(&self.organization, id)
            .await
            .map_err(internal)?
            .ok_or_else(not_found)?;
        Ok(to_environment(record, self.counts(id).await?))
    }

    async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError> {
        validation::check_create(data)?;
        let mut transaction = self.begin().await?;
        let organization = self.organization_record(transaction.as_mut()).await?;
        let latest = transaction
            .latest_created_at(&self.organization)
            .await
            .map_err(internal)?;
        let now = clock::now();
        let mut namespace = organization.namespace;
        let mut retry_workflow = None;
        if namespace.state == NamespaceState::Error {
            // A create in an organization whose namespace failed retries provisioning: the
            // organization cannot use any environment until it has a namespace.
            let workflow_id = provisioning::workflow_id(
                self.control_plane.inner().provisioner.as_ref(),
                &self.organization,
            );
            namespace = provisioning::started(&workflow_id);
            provisioning::transition(transaction.as_mut(), &self.organization, &namespace, now)
                .await
                .map_err(internal)?;
            retry_workflow = Some(workflow_id);
        }
        // Creation times strictly increase within an organization, so the list order is the
        // creation order even within one clock tick.
        let created_at = latest.map_or(now, |latest| clock::after(latest, now));
        let requested_status = data.status.unwrap_or(Status::Active);
        let mut record = EnvironmentRecord {
            display_name: Some(
                data.display_name
                    .clone()
                    .unwrap_or_else(|| data.name.clone()),
            ),
            description: data.description.clone(),
            status: requested_status,
            requested_status,
            configuration: data.configuration.clone(),
            metadata: data.metadata.clone(),
            tags: data.tags.clone(),
            settings: data.settings.clone(),
            execution_environment: data.execution_environment.clone(),
            created_by: self.actor.clone(),
            ..EnvironmentRecord::new(self.organization.clone(), &data.name, created_at)
        };
        provisioning::apply_namespace(&mut record, &namespace);
        transaction
            .insert_environment(&record)
            .await
            .map_err(name_conflict)?;
        let after = audit::environment_document(&record, None);
        self.audit(
            transaction.as_mut(),
            AuditAction::EnvironmentCreate,
            &record,
            None,
            Some(after),
        )
        .await?;
        transaction.commit().await.map_err(internal)?;
        if let Some(workflow_id) = retry_workflow {
            tracing::info!(organization = %self.organization, "retrying namespace provisioning");
            self.control_plane
                .spawn_provisioning(self.organization.clone(), workflow_id)
                .await;
            // A provisioner that finished at once has changed the record since.
            if let Some(current) = self
                .control_plane
                .inner()
                .store
                .environment(&self.organization, record.id)
                .await
                .map_err(internal)?
            {
                record = current;
            }
        }
        Ok(to_environment(record, WorkerCounts::default()))
    }

    async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError> {
        validation::check_update(patch)?;
        let mut transaction = self.begin().await?;
        let mut record = self.environment_record(transaction.as_mut(), id).await?;
        let previous = record.clone();
        if let Patch::Set(name) = &patch.name {
            if record.name == DEFAULT_ENVIRONMENT && name != DEFAULT_ENVIRONMENT {
                return Err(EnvironmentError::Api {
                    status: 400,
                    detail: "The default environment cannot be renamed".to_owned(),
                });
            }
            record.name = name.clone();
        }
        apply_patch(&mut record.display_name, &patch.display_name);
        apply_patch(&mut record.description, &patch.description);
        apply_patch(&mut record.configuration, &patch.configuration);
        apply_patch(&mut record.metadata, &patch.metadata);
        apply_patch(&mut record.tags, &patch.tags);
        apply_patch(&mut record.settings, &patch.settings);
        apply_patch(
            &mut record.execution_environment,
            &patch.execution_environment,
        );
        if let Patch::Set(status) = patch.status {
            // While the namespace is provisioning (or failed) only the requested status changes;
            // it shows once the namespace is ready.
            record.requested_status = status;
            let organization = self.organization_record(transaction.as_mut()).await?;
            record.status = provisioning::environment_status(organization.namespace.state, status);
        }
        record.updated_at = clock::after(record.updated_at, clock::now());
        transaction
            .update_environment(&record)
            .await
            .map_err(name_conflict)?;
        let before = audit::environment_document(&previous, None);
        let after = audit::environment_document(&record, Some(&previous));
        self.audit(
            transaction.as_mut(),
            AuditAction::EnvironmentUpdate,
            &record,
            Some(before),
            Some(after),
        )
        .await?;
        transaction.commit().await.map_err(internal)?;
        let counts = self.counts(record.id).await?;
        Ok(to_environment(record, counts))
    }

    async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError> {
        let mut transaction = self.begin().await?;
        let record = self.environment_record(transaction.as_mut(), id).await?;
        if record.name == DEFAULT_ENVIRONMENT {
            return Err(EnvironmentError::Api {
                status: 400,
                detail: "The default environment cannot be deleted".to_owned(),
            });
        }
        // Its worker tokens and registrations go with it: its workers are told to stop at their
        // next heartbeat.
        transaction
            .delete_environment(&self.organization, id)
            .await
            .map_err(internal)?;
        let before = audit::environment_document(&record, None);
        self.audit(
            transaction.as_mut(),
            AuditAction::EnvironmentDelete,
            &record,
            Some(before),
            None,
        )
        .await?;
        transaction.commit().await.map_err(internal)
    }

    async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        let mut transaction = self.begin().await?;
        let record = self.environment_record(transaction.as_mut(), id).await?;
        let worker_token = self
            .control_plane
            .issue_worker_token(transaction.as_mut(), &self.organization, record.id)
            .await?;
        // A new credential is a change worth recording; the token itself never is.
        let after = serde_json::json!({"worker_token": "issued"});
        self.audit(
            transaction.as_mut(),
            AuditAction::WorkerTokenIssue,
            &record,
            None,
            Some(after),
        )
        .await?;
        transaction.commit().await.map_err(internal)?;
        Ok(worker_command::worker_command(
            &self.control_plane,
            record,
            worker_token,
        ))
    }
}

/// Applies one field of a partial update: absent leaves it, `null` clears it, a value replaces it.
fn apply_patch<T: Clone>(field: &mut Option<T>, patch: &Patch<T>) {
    match patch {
        Patch::Unchanged => {}
        Patch::Clear => *field = None,
        Patch::Set(value) => *field = Some(value.clone()),
    }
}

pub(super) fn not_found() -> EnvironmentError {
    EnvironmentError::NotFound {
        detail: "Environment not found".to_owned(),
    }
}

/// A taken name as a 409; anything else as a 500.
fn name_conflict(error: StoreError) -> EnvironmentError {
    match error {
        StoreError::NameTaken { name } => EnvironmentError::Conflict {
            detail: format!("An environment named '{name}' already exists in this organization"),
        },
        other => internal(other),
    }
}

/// The wire form of a stored environment with its live worker counts.
fn to_environment(record: EnvironmentRecord, counts: WorkerCounts) -> Environment {
    Environment {
        id: record.id,
        organization_id: Some(record.organization_id),
        name: record.name,
        display_name: record.display_name,
        description: record.description,
        status: record.status,
        // While provisioning, a status change waits: the answer says what it will become.
        requested_status: (record.status == Status::Provisioning)
            .then_some(record.requested_status),
        configuration: record.configuration,
        metadata: record.metadata,
        tags: record.tags,
        settings: record.settings,
        execution_environment: record.execution_environment.map(Box::new),
        temporal_namespace: record.temporal_namespace,
        temporal_namespace_id: record.temporal_namespace_id,
        provisioning_workflow_id: record.provisioning_workflow_id,
        provisioned_at: record.provisioned_at,
        error_message: record.error_message,
        active_workers: Some(counts.active),
        idle_workers: Some(counts.idle()),
        busy_workers: Some(counts.busy),
        created_at: Some(record.created_at),
        updated_at: Some(record.updated_at),
        created_by: record.created_by,
    }
}
