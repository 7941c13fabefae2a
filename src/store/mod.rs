//! Storage of the control plane behind the [`Store`] trait: organizations and the state of their
//! Temporal namespace, environments, worker-token digests, worker registrations
//! ([`WorkerStore`]) and the audit log ([`AuditStore`]).
//!
//! The store holds data and guarantees atomicity (a [`StoreTransaction`] commits all or nothing)
//! and the uniqueness of names within an organization; it decides nothing. Every rule (default
//! environment, validation, provisioning transitions) lives in `control_plane`, which composes
//! these operations inside one transaction per API call.

mod audit;
mod failure;
mod postgres;
mod postgres_state;
mod postgres_workers;
mod record;
mod row;
mod sqlite;
mod sqlite_state;
mod state;
mod workers;

pub use audit::{AuditEntry, AuditRecord, AuditStore, AuditTransaction};
pub use failure::StorageFailure;
pub use postgres::{PgPoolSettings, PgStore};
pub use record::{
    EnvironmentRecord, NamespaceRecord, NamespaceState, OrganizationRecord, UnknownNamespaceState,
    WorkerTokenHash, WorkerTokenRecord,
};
pub use sqlite::SqliteStore;
pub use state::{
    InvalidWorkspaceName, LockEvent, LockEventKind, LockRecord, MAX_WORKSPACE_NAME_LENGTH,
    RecordedLockEvent, StateStore, StateStoreError, StateTransaction, StoredDocument, Workspace,
    WorkspaceName, WriteRefusal,
};
pub use workers::{WorkerCounts, WorkerRecord, WorkerStore, WorkerTransaction};

use crate::model::{EnvironmentId, OrganizationId, Status};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another environment of the organization already has this name.
    #[error("an environment named `{name}` already exists in the organization")]
    NameTaken {
        /// The name asked for.
        name: String,
    },
    /// The organization already exists.
    #[error("organization `{organization}` already exists")]
    OrganizationExists {
        /// The organization.
        organization: OrganizationId,
    },
    /// The record to update does not exist.
    #[error("no such record")]
    NotFound,
    /// The directory of the database file could not be created.
    #[error("cannot create the database directory {}", path.display())]
    CreateDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Bringing the schema up to date failed.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database accepts no writes (a read-only standby).
    #[error("the database is read-only")]
    ReadOnly,
    /// A stored value could not be read back (edited by hand, or written by a newer version).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
}

/// The control plane's storage. Reads outside a transaction see committed data; writes go
/// through [`Store::begin`].
#[async_trait::async_trait]
pub trait Store: WorkerStore + AuditStore + Send + Sync {
    /// A number that grows after every write this store commits (in this process).
    fn write_generation(&self) -> u64;
    /// Starts a write transaction; writers are serialized, so reads inside it are current.
    async fn begin(&self) -> Result<Box<dyn StoreTransaction>, StoreError>;
    /// Checks that a write to the database commits now, by rewriting one row (readiness).
    async fn check_ready(&self) -> Result<(), StoreError>;
    /// The database's clock, for a store several processes share (their clocks may differ);
    /// `None` when the process's own clock is to be used.
    async fn database_now(&self) -> Result<Option<jiff::Timestamp>, StoreError> {
        Ok(None)
    }
    /// One organization.
    async fn organization(
        &self,
        organization: &OrganizationId,
    ) -> Result<Option<OrganizationRecord>, StoreError>;
    /// The organizations whose namespace is in `state`, ordered by id.
    async fn organizations_in_state(
        &self,
        state: NamespaceState,
    ) -> Result<Vec<OrganizationRecord>, StoreError>;
    /// The environments of an organization by creation time (ties by name), optionally by status.
    async fn environments(
        &self,
        organization: &OrganizationId,
        status: Option<Status>,
    ) -> Result<Vec<EnvironmentRecord>, StoreError>;
    /// One environment of an organization.
    async fn environment(
        &self,
        organization: &OrganizationId,
        id: EnvironmentId,
    ) -> Result<Option<EnvironmentRecord>, StoreError>;
    /// The worker token with this digest.
    async fn worker_token(
        &self,
        hash: &WorkerTokenHash,
    ) -> Result<Option<WorkerTokenRecord>, StoreError>;
}

/// One write transaction: everything done through it commits together, or not at all when it is
/// dropped without [`StoreTransaction::commit`].
#[async_trait::async_trait]
pub trait StoreTransaction: WorkerTransaction + AuditTransaction + Send {
    /// The database's clock, as [`Store::database_now`].
    async fn database_now(&mut self) -> Result<Option<jiff::Timestamp>, StoreError> {
        Ok(None)
    }
    /// One organization.
    async fn organization(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Option<OrganizationRecord>, StoreError>;
    /// Inserts an organization ([`StoreError::OrganizationExists`] if it exists).
    async fn insert_organization(&mut self, record: &OrganizationRecord) -> Result<(), StoreError>;
    /// Replaces the namespace record of an organization.
    async fn update_namespace(
        &mut self,
        organization: &OrganizationId,
        namespace: &NamespaceRecord,
    ) -> Result<(), StoreError>;
    /// Claims the running of the organization's provisioning for `claimant` during `lease`
    /// (judged by the database's clock): true if it was unclaimed, already `claimant`'s (then
    /// renewed), or its claim had run out. SQLite, with one server per file, always grants it.
    async fn claim_provisioning(
        &mut self,
        organization: &OrganizationId,
        claimant: &str,
        lease: std::time::Duration,
    ) -> Result<bool, StoreError>;
    /// Gives up `claimant`'s claim on the organization's provisioning, if it holds it.
    async fn release_provisioning(
        &mut self,
        organization: &OrganizationId,
        claimant: &str,
    ) -> Result<(), StoreError>;
    /// The environments of an organization, ordered as [`Store::environments`].
    async fn environments(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Vec<EnvironmentRecord>, StoreError>;
    /// The latest `created_at` of the organization's environments, if it has any.
    async fn latest_created_at(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Option<jiff::Timestamp>, StoreError>;
    /// One environment of an organization.
    async fn environment(
        &mut self,
        organization: &OrganizationId,
        id: EnvironmentId,
    ) -> Result<Option<EnvironmentRecord>, StoreError>;
    /// Inserts an environment ([`StoreError::NameTaken`] if the name is used in its organization).
    async fn insert_environment(&mut self, record: &EnvironmentRecord) -> Result<(), StoreError>;
    /// Replaces an environment by id within its organization ([`StoreError::NameTaken`],
    /// [`StoreError::NotFound`]).
    async fn update_environment(&mut self, record: &EnvironmentRecord) -> Result<(), StoreError>;
    /// Deletes an environment and its worker tokens; whether it existed.
    async fn delete_environment(
        &mut self,
        organization: &OrganizationId,
        id: EnvironmentId,
    ) -> Result<bool, StoreError>;
    /// Records a worker token's digest.
    async fn insert_worker_token(&mut self, record: &WorkerTokenRecord) -> Result<(), StoreError>;
    /// Commits everything done in the transaction.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}
