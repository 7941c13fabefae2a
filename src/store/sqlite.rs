//! [`SqliteStore`]: the [`Store`] on a SQLite file (WAL, foreign keys, busy timeout) or in memory.
//!
//! Queries are built at run time with `sqlx::query`; the schema comes from migrations embedded
//! in the binary and applied by sqlx's migrator when the store opens.

use std::borrow::Cow;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::query::Query;
use sqlx::sqlite::{
    Sqlite, SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Executor, SqlStr, SqlitePool};
use uuid::Uuid;

use super::row::{ReadRow, records_as_read};
use super::{
    EnvironmentRecord, NamespaceRecord, NamespaceState, OrganizationRecord, Store, StoreError,
    StoreTransaction, WorkerTokenHash, WorkerTokenRecord,
};
use crate::model::{EnvironmentId, OrganizationId, Status};

/// The schema, oldest first. Embedded so the binary needs no files beside it; never edit a
/// released migration (its checksum is recorded), add a new one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "initial", include_str!("migrations/0001_initial.sql")),
    (2, "state", include_str!("migrations/0002_state.sql")),
    (
        3,
        "workers_audit",
        include_str!("migrations/0003_workers_audit.sql"),
    ),
    (
        4,
        "readiness",
        include_str!("migrations/0004_readiness.sql"),
    ),
    (
        5,
        "lock_owners",
        include_str!("migrations/0005_lock_owners.sql"),
    ),
    (
        6,
        "event_paging",
        include_str!("migrations/0006_event_paging.sql"),
    ),
    (
        7,
        "worker_token_bounds",
        include_str!("migrations/0007_worker_token_bounds.sql"),
    ),
];

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections kept for a file database: enough for concurrent readers beside one writer.
const MAX_FILE_CONNECTIONS: u32 = 4;

const ENVIRONMENT_COLUMNS: &str = "id, organization_id, name, display_name, description, status, \
     requested_status, configuration, metadata, tags, settings, execution_environment, \
     temporal_namespace, temporal_namespace_id, provisioning_workflow_id, provisioned_at, \
     error_message, created_at, updated_at, created_by";

const ORGANIZATION_COLUMNS: &str = "id, namespace_state, provisioning_workflow_id, \
     temporal_namespace, temporal_namespace_id, provisioned_at, error_message, created_at";

/// The control plane's store on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// Bumped after every committed write transaction; read caches compare it.
    generation: Arc<AtomicU64>,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) and migrates a database file.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            tokio::fs::create_dir_all(parent).await.map_err(|source| {
                StoreError::CreateDirectory {
                    path: parent.to_path_buf(),
                    source,
                }
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across application crashes in WAL mode, and much faster than FULL.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_FILE_CONNECTIONS)
            .before_acquire(|connection, _| {
                // A commit that failed (a full disk) can leave the connection inside a
                // transaction that SQLite already rolled back, so the rollback fails too; handed
                // out again, every later BEGIN on it would fail. The pool closes such a
                // connection instead and opens a fresh one.
                Box::pin(async move { Ok(!connection.is_in_transaction()) })
            })
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// A private in-memory database, for tests and throwaway use.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .in_memory(true)
            .foreign_keys(true);
        // Every connection to `:memory:` is a separate database, so the pool keeps exactly one
        // connection open for its whole life.
        let pool = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    /// The store on `pool`, its schema brought up to date.
    async fn migrated(pool: SqlitePool) -> Result<Self, StoreError> {
        let store = Self {
            pool,
            generation: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Closes every connection; later operations fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for tests that inspect the database directly.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = migrator();
        match migrator.run(&self.pool).await {
            Ok(()) => Ok(()),
            // Two processes opening a fresh file at once: the loser fails on tables the winner
            // just created; by now the winner has recorded them, so a second run is a no-op.
            Err(_) => Ok(migrator.run(&self.pool).await?),
        }
    }
}

/// sqlx's migrator over the embedded migrations (built by hand: `sqlx::migrate!` needs the
/// `macros` feature, which the crate does not enable).
fn migrator() -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn write_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    async fn begin(&self) -> Result<Box<dyn StoreTransaction>, StoreError> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that read and then
        // writes can fail with SQLITE_BUSY when another connection wrote meanwhile.
        let transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        Ok(Box::new(SqliteTransaction {
            transaction,
            generation: Arc::clone(&self.generation),
        }))
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        // A committed write of one row: a full disk or a lock held too long fails it, where a
        // read or an uncommitted write would not notice.
        let mut transaction = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(Timestamp::now().as_microsecond())
        .execute(&mut *transaction)
        .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn organization(
        &self,
        organization: &OrganizationId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        select_organization(&self.pool, organization).await
    }

    async fn organizations_in_state(
        &self,
        state: NamespaceState,
    ) -> Result<Vec<OrganizationRecord>, StoreError> {
        let sql = format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE namespace_state = ? ORDER BY id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(state.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(organization_from_row)
            .collect()
    }

    async fn environments(
        &self,
        organization: &OrganizationId,
        status: Option<Status>,
    ) -> Result<Vec<EnvironmentRecord>, StoreError> {
        let query = match status {
            None => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE organization_id = ? \
                 ORDER BY created_at, name"
            )))
            .bind(organization.0.as_str()),
            Some(status) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENVIRONMENT_COLUMNS} FROM environments \
                 WHERE organization_id = ? AND status = ? ORDER BY created_at, name"
            )))
            .bind(organization.0.as_str())
            .bind(status.as_str()),
        };
        records_as_read(query.fetch(&self.pool), environment_from_row).await
    }

    async fn environment(
        &self,
        organization: &OrganizationId,
        id: EnvironmentId,
    ) -> Result<Option<EnvironmentRecord>, StoreError> {
        select_environment(&self.pool, organization, id).await
    }

    async fn worker_token(
        &self,
        hash: &WorkerTokenHash,
    ) -> Result<Option<WorkerTokenRecord>, StoreError> {
        select_worker_token(&self.pool, hash).await
    }
}

/// A write transaction on the SQLite store; dropping it rolls back.
pub(super) struct SqliteTransaction {
    pub(super) transaction: sqlx::Transaction<'static, Sqlite>,
    generation: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl StoreTransaction for SqliteTransaction {
    async fn organization(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        select_organization(&mut *self.transaction, organization).await
    }

    async fn insert_organization(&mut self, record: &OrganizationRecord) -> Result<(), StoreError> {
        let namespace = &record.namespace;
        let result = sqlx::query(
            "INSERT INTO organizations (id, namespace_state, provisioning_workflow_id, \
             temporal_namespace, temporal_namespace_id, provisioned_at, error_message, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(record.id.0.as_str())
        .bind(namespace.state.as_str())
        .bind(namespace.provisioning_workflow_id.as_deref())
        .bind(namespace.temporal_namespace.as_deref())
        .bind(namespace.temporal_namespace_id.as_deref())
        .bind(namespace.provisioned_at.map(|at| at.as_microsecond()))
        .bind(namespace.error_message.as_deref())
        .bind(record.created_at.as_microsecond())
        .execute(&mut *self.transaction)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::OrganizationExists {
                organization: record.id.clone(),
            }),
            Err(error) => Err(error.into()),
        }
    }

    async fn update_namespace(
        &mut self,
        organization: &OrganizationId,
        namespace: &NamespaceRecord,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE organizations SET namespace_state = ?, provisioning_workflow_id = ?, \
             temporal_namespace = ?, temporal_namespace_id = ?, provisioned_at = ?, \
             error_message = ? WHERE id = ?",
        )
        .bind(namespace.state.as_str())
        .bind(namespace.provisioning_workflow_id.as_deref())
        .bind(namespace.temporal_namespace.as_deref())
        .bind(namespace.temporal_namespace_id.as_deref())
        .bind(namespace.provisioned_at.map(|at| at.as_microsecond()))
        .bind(namespace.error_message.as_deref())
        .bind(organization.0.as_str())
        .execute(&mut *self.transaction)
        .await?;
        if result.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn claim_provisioning(
        &mut self,
        _organization: &OrganizationId,
        _claimant: &str,
        _lease: Duration,
    ) -> Result<bool, StoreError> {
        // Always granted: a SQLite file has one server, which must resume at once after a crash
        // rather than wait out a dead process's claim. An embedded control plane sharing the
        // file may provision the same organization too; the first outcome recorded wins.
        Ok(true)
    }

    async fn release_provisioning(
        &mut self,
        _organization: &OrganizationId,
        _claimant: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    async fn environments(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Vec<EnvironmentRecord>, StoreError> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE organization_id = ? \
             ORDER BY created_at, name"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization.0.as_str())
            .fetch_all(&mut *self.transaction)
            .await?
            .iter()
            .map(environment_from_row)
            .collect()
    }

    async fn latest_created_at(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Option<Timestamp>, StoreError> {
        // An index lookup (environments_by_creation), not a scan of the organization.
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(created_at) FROM environments WHERE organization_id = ?",
        )
        .bind(organization.0.as_str())
        .fetch_one(&mut *self.transaction)
        .await?;
        optional_timestamp(latest)
    }

    async fn environment(
        &mut self,
        organization: &OrganizationId,
        id: EnvironmentId,
    ) -> Result<Option<EnvironmentRecord>, StoreError> {
        select_environment(&mut *self.transaction, organization, id).await
    }

    async fn insert_environment(&mut self, record: &EnvironmentRecord) -> Result<(), StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(INSERT_ENVIRONMENT.as_str()))
            .bind(record.id.to_string())
            .bind(record.organization_id.0.as_str())
            .bind(record.created_at.as_microsecond());
        bind_changeable(query, record)?
            .execute(&mut *self.transaction)
            .await
            .map(drop)
            .map_err(|error| name_taken_or(error, record))
    }

    async fn update_environment(&mut self, record: &EnvironmentRecord) -> Result<(), StoreError> {
        let query = sqlx::query(sqlx::AssertSqlSafe(UPDATE_ENVIRONMENT.as_str()));
        let result = bind_changeable(query, record)?
            .bind(record.id.to_string())
            .bind(record.organization_id.0.as_str())
            .execute(&mut *self.transaction)
            .await;
        match result {
            Ok(done) if done.rows_affected() == 0 => Err(StoreError::NotFound),
            Ok(_) => Ok(()),
            Err(error) => Err(name_taken_or(error, record)),
        }
    }

    async fn delete_environment(
        &mut self,
        organization: &OrganizationId,
        id: EnvironmentId,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM environments WHERE id = ? AND organization_id = ?")
            .bind(id.to_string())
            .bind(organization.0.as_str())
            .execute(&mut *self.transaction)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn insert_worker_token(&mut self, record: &WorkerTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO worker_tokens (token_hash, organization_id, environment_id, created_at, \
             registered_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(record.hash.0.as_str())
        .bind(record.organization_id.0.as_str())
        .bind(record.environment_id.to_string())
        .bind(record.created_at.as_microsecond())
        .bind(record.registered_at.map(|at| at.as_microsecond()))
        .execute(&mut *self.transaction)
        .await?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.transaction.commit().await?;
        // After the commit, so a reader that saw the old generation refills from the new data.
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn select_organization<'c, E>(
    executor: E,
    organization: &OrganizationId,
) -> Result<Option<OrganizationRecord>, StoreError>
where
    E: Executor<'c, Database = Sqlite>,
{
    let sql = format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(organization.0.as_str())
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(organization_from_row)
        .transpose()
}

async fn select_environment<'c, E>(
    executor: E,
    organization: &OrganizationId,
    id: EnvironmentId,
) -> Result<Option<EnvironmentRecord>, StoreError>
where
    E: Executor<'c, Database = Sqlite>,
{
    let sql = format!(
        "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = ? AND organization_id = ?"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .bind(organization.0.as_str())
        .fetch_optional(executor)
        .await?
        .as_ref()
        .map(environment_from_row)
        .transpose()
}

/// The worker token with this digest, through the pool or a transaction.
pub(super) async fn select_worker_token<'c, E>(
    executor: E,
    hash: &WorkerTokenHash,
) -> Result<Option<WorkerTokenRecord>, StoreError>
where
    E: Executor<'c, Database = Sqlite>,
{
    let row = sqlx::query(
        "SELECT token_hash, organization_id, environment_id, created_at, registered_at \
         FROM worker_tokens WHERE token_hash = ?",
    )
    .bind(hash.0.as_str())
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(worker_token_from_row).transpose()
}

/// The columns of an environment that an update writes, in the order [`bind_changeable`] binds
/// them (both stores' `bind_changeable`); the rest (`id`, `organization_id`, `created_at`) never
/// change.
pub(super) const CHANGEABLE_COLUMNS: [&str; 17] = [
    "name",
    "display_name",
    "description",
    "status",
    "requested_status",
    "configuration",
    "metadata",
    "tags",
    "settings",
    "execution_environment",
    "temporal_namespace",
    "temporal_namespace_id",
    "provisioning_workflow_id",
    "provisioned_at",
    "error_message",
    "updated_at",
    "created_by",
];

/// Inserts an environment: the columns that never change, then [`CHANGEABLE_COLUMNS`].
static INSERT_ENVIRONMENT: LazyLock<String> = LazyLock::new(|| {
    let placeholders = vec!["?"; 3 + CHANGEABLE_COLUMNS.len()].join(", ");
    format!(
        "INSERT INTO environments (id, organization_id, created_at, {}) VALUES ({placeholders})",
        CHANGEABLE_COLUMNS.join(", ")
    )
});

/// Writes [`CHANGEABLE_COLUMNS`] of the environment with an id in an organization.
static UPDATE_ENVIRONMENT: LazyLock<String> = LazyLock::new(|| {
    let assignments: Vec<String> = CHANGEABLE_COLUMNS
        .iter()
        .map(|column| format!("{column} = ?"))
        .collect();
    format!(
        "UPDATE environments SET {} WHERE id = ? AND organization_id = ?",
        assignments.join(", ")
    )
});

/// Binds `record`'s values for [`CHANGEABLE_COLUMNS`], JSON columns serialized.
fn bind_changeable<'q>(
    query: Query<'q, Sqlite, SqliteArguments>,
    record: &EnvironmentRecord,
) -> Result<Query<'q, Sqlite, SqliteArguments>, StoreError> {
    Ok(query
        .bind(record.name.as_str())
        .bind(record.display_name.as_deref())
        .bind(record.description.as_deref())
        .bind(record.status.as_str())
        .bind(record.requested_status.as_str())
        .bind(to_json(record.configuration.as_ref())?)
        .bind(to_json(record.metadata.as_ref())?)
        .bind(to_json(record.tags.as_ref())?)
        .bind(to_json(record.settings.as_ref())?)
        .bind(to_json(record.execution_environment.as_ref())?)
        .bind(record.temporal_namespace.as_deref())
        .bind(record.temporal_namespace_id.as_deref())
        .bind(record.provisioning_workflow_id.as_deref())
        .bind(record.provisioned_at.map(|at| at.as_microsecond()))
        .bind(record.error_message.as_deref())
        .bind(record.updated_at.as_microsecond())
        .bind(record.created_by.as_deref()))
}

/// A failed write of `record`: its name taken when a unique index refused it.
fn name_taken_or(error: sqlx::Error, record: &EnvironmentRecord) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::NameTaken {
            name: record.name.clone(),
        }
    } else {
        error.into()
    }
}

pub(super) fn to_json<T: Serialize>(value: Option<&T>) -> Result<Option<String>, StoreError> {
    value
        .map(|value| {
            serde_json::to_string(value)
                .map_err(|error| StoreError::Corrupt(format!("cannot serialize a value: {error}")))
        })
        .transpose()
}

fn from_json<T: DeserializeOwned>(
    row: &impl ReadRow,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    row.optional_text(column)?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|error| StoreError::Corrupt(format!("column `{column}`: {error}")))
        })
        .transpose()
}

pub(super) fn organization_from_row(row: &impl ReadRow) -> Result<OrganizationRecord, StoreError> {
    let state = row.text("namespace_state")?;
    Ok(OrganizationRecord {
        id: OrganizationId(row.text("id")?),
        namespace: NamespaceRecord {
            state: NamespaceState::from_str(&state)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            provisioning_workflow_id: row.optional_text("provisioning_workflow_id")?,
            temporal_namespace: row.optional_text("temporal_namespace")?,
            temporal_namespace_id: row.optional_text("temporal_namespace_id")?,
            provisioned_at: optional_timestamp(row.optional_integer("provisioned_at")?)?,
            error_message: row.optional_text("error_message")?,
        },
        created_at: timestamp(row.integer("created_at")?)?,
    })
}

pub(super) fn environment_from_row(row: &impl ReadRow) -> Result<EnvironmentRecord, StoreError> {
    Ok(EnvironmentRecord {
        id: parse_environment_id(&row.text("id")?)?,
        organization_id: OrganizationId(row.text("organization_id")?),
        name: row.text("name")?,
        display_name: row.optional_text("display_name")?,
        description: row.optional_text("description")?,
        status: parse_status(&row.text("status")?)?,
        requested_status: parse_status(&row.text("requested_status")?)?,
        configuration: from_json(row, "configuration")?,
        metadata: from_json(row, "metadata")?,
        tags: from_json(row, "tags")?,
        settings: from_json(row, "settings")?,
        execution_environment: from_json(row, "execution_environment")?,
        temporal_namespace: row.optional_text("temporal_namespace")?,
        temporal_namespace_id: row.optional_text("temporal_namespace_id")?,
        provisioning_workflow_id: row.optional_text("provisioning_workflow_id")?,
        provisioned_at: optional_timestamp(row.optional_integer("provisioned_at")?)?,
        error_message: row.optional_text("error_message")?,
        created_at: timestamp(row.integer("created_at")?)?,
        updated_at: timestamp(row.integer("updated_at")?)?,
        created_by: row.optional_text("created_by")?,
    })
}

/// A worker token record.
pub(super) fn worker_token_from_row(row: &impl ReadRow) -> Result<WorkerTokenRecord, StoreError> {
    Ok(WorkerTokenRecord {
        hash: WorkerTokenHash(row.text("token_hash")?),
        organization_id: OrganizationId(row.text("organization_id")?),
        environment_id: parse_environment_id(&row.text("environment_id")?)?,
        created_at: timestamp(row.integer("created_at")?)?,
        registered_at: optional_timestamp(row.optional_integer("registered_at")?)?,
    })
}

pub(super) fn parse_environment_id(text: &str) -> Result<EnvironmentId, StoreError> {
    Uuid::parse_str(text)
        .map(EnvironmentId)
        .map_err(|error| StoreError::Corrupt(format!("environment id `{text}`: {error}")))
}

fn parse_status(text: &str) -> Result<Status, StoreError> {
    Status::from_str(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(super) fn timestamp(microseconds: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_microsecond(microseconds)
        .map_err(|error| StoreError::Corrupt(format!("timestamp {microseconds}: {error}")))
}

pub(super) fn optional_timestamp(
    microseconds: Option<i64>,
) -> Result<Option<Timestamp>, StoreError> {
    microseconds.map(timestamp).transpose()
}

pub(super) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database) if database.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JsonMap;

    fn organization(id: &str) -> OrganizationRecord {
        OrganizationRecord {
            id: OrganizationId(id.to_owned()),
            namespace: NamespaceRecord {
                state: NamespaceState::Provisioning,
                provisioning_workflow_id: Some("workflow-1".into()),
                temporal_namespace: None,
                temporal_namespace_id: None,
                provisioned_at: None,
                error_message: None,
            },
            created_at: Timestamp::from_microsecond(1_000).unwrap(),
        }
    }

    fn environment(organization: &str, name: &str, created_at: i64) -> EnvironmentRecord {
        let mut configuration = JsonMap::new();
        configuration.insert("max_workers".into(), 3.into());
        let created_at = Timestamp::from_microsecond(created_at).unwrap();
        EnvironmentRecord {
            display_name: Some(name.to_uppercase()),
            status: Status::Provisioning,
            configuration: Some(configuration),
            tags: Some(vec!["a".into()]),
            provisioning_workflow_id: Some("workflow-1".into()),
            created_by: Some("someone".into()),
            ..EnvironmentRecord::new(OrganizationId(organization.to_owned()), name, created_at)
        }
    }

    #[tokio::test]
    async fn records_round_trip_and_order_by_creation_then_name() {
        let store = SqliteStore::in_memory().await.unwrap();
        let org = OrganizationId("acme".into());
        let mut transaction = store.begin().await.unwrap();
        transaction
            .insert_organization(&organization("acme"))
            .await
            .unwrap();
        let late = environment("acme", "zulu", 30);
        let tie_b = environment("acme", "bravo", 20);
        let tie_a = environment("acme", "alpha", 20);
        for record in [&late, &tie_b, &tie_a] {
            transaction.insert_environment(record).await.unwrap();
        }
        transaction.commit().await.unwrap();

        let names: Vec<_> = store
            .environments(&org, None)
            .await
            .unwrap()
            .into_iter()
            .map(|record| record.name)
            .collect();
        assert_eq!(names, ["alpha", "bravo", "zulu"]);
        let read = store.environment(&org, late.id).await.unwrap().unwrap();
        assert_eq!(read, late);
        assert_eq!(
            store.organization(&org).await.unwrap().unwrap(),
            organization("acme")
        );
    }

    #[tokio::test]
    async fn database_enforces_unique_names_per_organization() {
        let store = SqliteStore::in_memory().await.unwrap();
        let mut transaction = store.begin().await.unwrap();
        transaction
            .insert_organization(&organization("one"))
            .await
            .unwrap();
        transaction
            .insert_organization(&organization("two"))
            .await
            .unwrap();
        transaction
            .insert_environment(&environment("one", "staging", 1))
            .await
            .unwrap();
        // The same name in another organization is fine.
        transaction
            .insert_environment(&environment("two", "staging", 1))
            .await
            .unwrap();
        let duplicate = transaction
            .insert_environment(&environment("one", "staging", 2))
            .await;
        assert!(matches!(duplicate, Err(StoreError::NameTaken { name }) if name == "staging"));

        let mut other = environment("one", "other", 3);
        transaction.insert_environment(&other).await.unwrap();
        other.name = "staging".into();
        let rename = transaction.update_environment(&other).await;
        assert!(matches!(rename, Err(StoreError::NameTaken { .. })));
        let again = transaction.insert_organization(&organization("one")).await;
        assert!(matches!(again, Err(StoreError::OrganizationExists { .. })));
    }

    #[tokio::test]
    async fn dropped_transaction_rolls_back() {
        let store = SqliteStore::in_memory().await.unwrap();
        {
            let mut transaction = store.begin().await.unwrap();
            transaction
                .insert_organization(&organization("gone"))
                .await
                .unwrap();
        }
        let org = OrganizationId("gone".into());
        assert!(store.organization(&org).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn deleting_an_environment_deletes_its_tokens() {
        let store = SqliteStore::in_memory().await.unwrap();
        let org = OrganizationId("acme".into());
        let record = environment("acme", "staging", 1);
        let token = WorkerTokenRecord {
            hash: WorkerTokenHash("ab".repeat(32)),
            organization_id: org.clone(),
            environment_id: record.id,
            created_at: Timestamp::from_microsecond(5).unwrap(),
            registered_at: None,
        };
        let mut transaction = store.begin().await.unwrap();
        transaction
            .insert_organization(&organization("acme"))
            .await
            .unwrap();
        transaction.insert_environment(&record).await.unwrap();
        transaction.insert_worker_token(&token).await.unwrap();
        transaction.commit().await.unwrap();
        assert_eq!(
            store.worker_token(&token.hash).await.unwrap(),
            Some(token.clone())
        );

        let mut transaction = store.begin().await.unwrap();
        assert!(
            transaction
                .delete_environment(&org, record.id)
                .await
                .unwrap()
        );
        assert!(
            !transaction
                .delete_environment(&org, record.id)
                .await
                .unwrap()
        );
        transaction.commit().await.unwrap();
        assert_eq!(store.worker_token(&token.hash).await.unwrap(), None);
    }

    #[tokio::test]
    async fn open_creates_parent_directories_and_uses_wal() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("nested/deeper/envform.db");
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(path.exists());
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1);
        store.close().await;
        // Reopening runs the migrator again over an up-to-date schema.
        let reopened = SqliteStore::open(&path).await.unwrap();
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(reopened.pool())
            .await
            .unwrap();
        assert_eq!(applied, MIGRATIONS.len() as i64);
    }
}
