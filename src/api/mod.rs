//! The Environments API: wire types, the [`EnvironmentsApi`] trait and the HTTP client (the SDK).
//! It knows nothing about plans.

mod array_stream;
mod client;
mod error;
mod page;
mod ping;
mod types;
pub mod wire;
mod workers;

pub use crate::local::install_crypto_provider;
pub use client::{
    API_KEY_VARIABLE, BASE_URL_VARIABLE, ClientConfig, ClientError, ControlPlaneClient,
    DEFAULT_BASE_URL, Environments,
};
pub use error::{EnvironmentError, FieldError};
pub use page::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, PageRequest, decode_cursor, encode_cursor};
pub use ping::{MAX_PINGS, PingReport, PingRequest, PingResult};
pub use types::{
    CommandParts, Configuration, CreateEnvironment, Environment, EnvironmentId,
    ExecutionEnvironment, JsonMap, ManagedField, OrganizationId, Patch, Status, UnknownStatus,
    UpdateEnvironment, WorkerCommand, WorkerToken,
};
pub use workers::{
    AuditAction, AuditEvent, AuditPage, Heartbeat, HeartbeatAck, RegisterWorker,
    UnknownAuditAction, Worker, WorkerClient, WorkerId, WorkerRegistration, WorkerStatus,
    WorkersApi,
};

/// The calls of the Environments API, for one organization.
///
/// Implemented by the HTTP client and by the in-process control plane, and tested against one
/// contract suite, so the reconciler runs the same against either.
#[async_trait::async_trait]
pub trait EnvironmentsApi: Send + Sync {
    /// Every environment of the organization, ordered by creation time, optionally by status.
    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError>;
    /// One environment by id.
    async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError>;
    /// Creates an environment.
    async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError>;
    /// Partially updates an environment: each field sent replaces the stored one whole.
    async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError>;
    /// Deletes an environment (never the `default` one).
    async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError>;
    /// The command workers run to register with the environment, with its token.
    async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError>;
}

#[async_trait::async_trait]
impl<T: EnvironmentsApi + ?Sized> EnvironmentsApi for std::sync::Arc<T> {
    async fn list(
        &self,
        status_filter: Option<Status>,
    ) -> Result<Vec<Environment>, EnvironmentError> {
        (**self).list(status_filter).await
    }
    async fn get(&self, id: EnvironmentId) -> Result<Environment, EnvironmentError> {
        (**self).get(id).await
    }
    async fn create(&self, data: &CreateEnvironment) -> Result<Environment, EnvironmentError> {
        (**self).create(data).await
    }
    async fn update(
        &self,
        id: EnvironmentId,
        patch: &UpdateEnvironment,
    ) -> Result<Environment, EnvironmentError> {
        (**self).update(id, patch).await
    }
    async fn delete(&self, id: EnvironmentId) -> Result<(), EnvironmentError> {
        (**self).delete(id).await
    }
    async fn get_worker_command(
        &self,
        id: EnvironmentId,
    ) -> Result<WorkerCommand, EnvironmentError> {
        (**self).get_worker_command(id).await
    }
}
