//! [`PgStore`]: the [`Store`] on PostgreSQL, for `envform serve --database-url postgres://…` run as
//! several replicas on one database.
//!
//! Every rule the control plane keeps relies on "reads inside a write transaction are current"
//! (SQLite gives that with `BEGIN IMMEDIATE`). Here each write transaction's first statement is
//! `pg_advisory_xact_lock(WRITE_LOCK_KEY)`: writers of every replica queue on that one lock, and
//! READ COMMITTED takes a fresh snapshot per statement, so everything a writer reads after the
//! lock is current until it commits. The cost is that writes are serialized across the whole
//! database, exactly as on SQLite (a write transaction lasts a few milliseconds, so a few hundred
//! writes a second); reads never take the lock. Names stay unique by the schema's constraints.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, Postgres};
use sqlx::query::Query;
use sqlx::{Connection, Executor, SqlStr};

use super::failure::is_transient;
use super::sqlite::{
    CHANGEABLE_COLUMNS, environment_from_row, is_unique_violation, optional_timestamp,
    organization_from_row, timestamp, to_json, worker_token_from_row,
};
use super::{
    EnvironmentRecord, NamespaceRecord, NamespaceState, OrganizationRecord, Store, StoreError,
    StoreTransaction, WorkerTokenHash, WorkerTokenRecord,
};
use crate::model::{EnvironmentId, OrganizationId, Status};

/// The PostgreSQL schema, oldest first, embedded like SQLite's (a separate history: the two
/// databases' DDL differs).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("migrations_postgres/0001_initial.sql"),
    ),
    (
        2,
        "lock_owners",
        include_str!("migrations_postgres/0002_lock_owners.sql"),
    ),
    (
        3,
        "event_paging",
        include_str!("migrations_postgres/0003_event_paging.sql"),
    ),
    (
        4,
        "worker_token_bounds",
        include_str!("migrations_postgres/0004_worker_token_bounds.sql"),
    ),
];

/// The advisory lock every write transaction takes first ("envform" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x0065_6e76_666f_726d;

/// The database's clock in microseconds since the Unix epoch; `clock_timestamp()`, not `now()`,
/// which would be the time the transaction began (before it waited for the write lock).
pub(super) const DATABASE_NOW: &str =
    "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint";

/// How many times starting a write transaction is tried when the connection fails at once.
const BEGIN_ATTEMPTS: u32 = 3;

const ENVIRONMENT_COLUMNS: &str = "id, organization_id, name, display_name, description, status, \
     requested_status, configuration, metadata, tags, settings, execution_environment, \
     temporal_namespace, temporal_namespace_id, provisioning_workflow_id, provisioned_at, \
     error_message, created_at, updated_at, created_by";

const ORGANIZATION_COLUMNS: &str = "id, namespace_state, provisioning_workflow_id, \
     temporal_namespace, temporal_namespace_id, provisioned_at, error_message, created_at";

/// How a [`PgStore`] connects: pool size and the bounds that make an unreachable or stuck
/// database answer quickly instead of holding requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgPoolSettings {
    /// Connections kept open at most, per process.
    pub max_connections: u32,
    /// How long a request waits for a connection (including opening one) before failing.
    pub acquire_timeout: Duration,
    /// Longest a statement may run, waiting for the write lock included.
    pub statement_timeout: Duration,
}

impl Default for PgPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(15),
        }
    }
}

/// The control plane's store on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// Bumped after every write this process commits (other replicas' writes do not show here,
    /// which is why the list cache is off on PostgreSQL).
    generation: Arc<AtomicU64>,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`). No connection is made
    /// until the first use, so a replica starts while the database is still coming up.
    pub fn connect(url: &str, settings: PgPoolSettings) -> Result<Self, StoreError> {
        let statement_timeout = format!("{}ms", settings.statement_timeout.as_millis());
        let options = PgConnectOptions::from_str(url)?
            .application_name("envform serve")
            .options([
                ("statement_timeout", statement_timeout.as_str()),
                // A replica that stops mid-transaction without closing its connection must not
                // hold the write lock for long.
                ("idle_in_transaction_session_timeout", "60s"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.acquire_timeout)
            .before_acquire(|connection, _| {
                // A connection whose commit or rollback failed is still inside a transaction:
                // never hand it out again (the pool closes it and opens another).
                Box::pin(async move { Ok(!connection.is_in_transaction()) })
            })
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            generation: Arc::default(),
        })
    }

    /// Brings the schema up to date. Replicas starting together are safe: sqlx's migrator takes
    /// an advisory lock of its own while it runs.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migrator().run(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; later operations fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a transaction holding the write lock, retrying a connection that fails at once.
    pub(super) async fn begin_serialized(
        &self,
    ) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        let mut attempt = 1;
        loop {
            match self.try_begin_serialized().await {
                Ok(transaction) => return Ok(transaction),
                Err(error) if attempt < BEGIN_ATTEMPTS && is_transient(&error) => {
                    tracing::debug!(%error, attempt, "starting a transaction failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn try_begin_serialized(
        &self,
    ) -> Result<sqlx::Transaction<'static, Postgres>, sqlx::Error> {
        let mut transaction = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK_KEY)
            .execute(&mut *transaction)
            .await?;
        Ok(transaction)
    }

    /// Checks that the database answers and that a write commits now: one row rewritten (a
    /// read-only standby, a full disk or an exhausted pool fails it).
    pub async fn check_ready(&self) -> Result<(), StoreError> {
        let read_only: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&self.pool)
            .await?;
        if read_only {
            return Err(StoreError::ReadOnly);
        }
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(Timestamp::now().as_microsecond())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// sqlx's migrator over the embedded PostgreSQL migrations.
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
impl Store for PgStore {
    fn write_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    async fn begin(&self) -> Result<Box<dyn StoreTransaction>, StoreError> {
        let transaction = self.begin_serialized().await?;
        Ok(Box::new(PgTransaction {
            transaction,
            generation: Arc::clone(&self.generation),
        }))
    }

    async fn check_ready(&self) -> Result<(), StoreError> {
        PgStore::check_ready(self).await
    }

    async fn database_now(&self) -> Result<Option<Timestamp>, StoreError> {
        let value: i64 = sqlx::query_scalar(DATABASE_NOW)
            .fetch_one(&self.pool)
            .await?;
        timestamp(value).map(Some)
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
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE namespace_state = $1 \
             ORDER BY id"
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
        // `$2 IS NULL` makes the status filter optional in one statement.
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE organization_id = $1 \
             AND ($2::text IS NULL OR status = $2) ORDER BY created_at, name"
        );
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization.0.as_str())
            .bind(status.map(Status::as_str));
        super::row::records_as_read(query.fetch(&self.pool), environment_from_row).await
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

/// A write transaction on PostgreSQL, holding the write lock; dropping it rolls back.
pub(super) struct PgTransaction {
    pub(super) transaction: sqlx::Transaction<'static, Postgres>,
    generation: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl StoreTransaction for PgTransaction {
    async fn database_now(&mut self) -> Result<Option<Timestamp>, StoreError> {
        let value: i64 = sqlx::query_scalar(DATABASE_NOW)
            .fetch_one(&mut *self.transaction)
            .await?;
        timestamp(value).map(Some)
    }

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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
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
            "UPDATE organizations SET namespace_state = $1, provisioning_workflow_id = $2, \
             temporal_namespace = $3, temporal_namespace_id = $4, provisioned_at = $5, \
             error_message = $6 WHERE id = $7",
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
        organization: &OrganizationId,
        claimant: &str,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        // The database's clock judges the lease, so replicas with skewed clocks agree.
        let result = sqlx::query(
            "UPDATE organizations SET provisioning_claimed_by = $2, \
             provisioning_claim_expires_at = clock_timestamp() + make_interval(secs => $3) \
             WHERE id = $1 AND (provisioning_claimed_by IS NULL OR provisioning_claimed_by = $2 \
             OR provisioning_claim_expires_at <= clock_timestamp())",
        )
        .bind(organization.0.as_str())
        .bind(claimant)
        .bind(lease.as_secs_f64())
        .execute(&mut *self.transaction)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn release_provisioning(
        &mut self,
        organization: &OrganizationId,
        claimant: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE organizations SET provisioning_claimed_by = NULL, \
             provisioning_claim_expires_at = NULL WHERE id = $1 AND provisioning_claimed_by = $2",
        )
        .bind(organization.0.as_str())
        .bind(claimant)
        .execute(&mut *self.transaction)
        .await?;
        Ok(())
    }

    async fn environments(
        &mut self,
        organization: &OrganizationId,
    ) -> Result<Vec<EnvironmentRecord>, StoreError> {
        let sql = format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE organization_id = $1 \
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
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(created_at) FROM environments WHERE organization_id = $1",
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
        let result = sqlx::query("DELETE FROM environments WHERE id = $1 AND organization_id = $2")
            .bind(id.to_string())
            .bind(organization.0.as_str())
            .execute(&mut *self.transaction)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn insert_worker_token(&mut self, record: &WorkerTokenRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO worker_tokens (token_hash, organization_id, environment_id, created_at, \
             registered_at) VALUES ($1, $2, $3, $4, $5)",
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
        self.generation.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

async fn select_organization<'c, E>(
    executor: E,
    organization: &OrganizationId,
) -> Result<Option<OrganizationRecord>, StoreError>
where
    E: Executor<'c, Database = Postgres>,
{
    let sql = format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1");
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
    E: Executor<'c, Database = Postgres>,
{
    let sql = format!(
        "SELECT {ENVIRONMENT_COLUMNS} FROM environments WHERE id = $1 AND organization_id = $2"
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
    E: Executor<'c, Database = Postgres>,
{
    sqlx::query(
        "SELECT token_hash, organization_id, environment_id, created_at, registered_at \
         FROM worker_tokens WHERE token_hash = $1",
    )
    .bind(hash.0.as_str())
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(worker_token_from_row)
    .transpose()
}

/// Inserts an environment: `id, organization_id, created_at`, then [`CHANGEABLE_COLUMNS`].
static INSERT_ENVIRONMENT: LazyLock<String> = LazyLock::new(|| {
    let placeholders: Vec<String> = (1..=3 + CHANGEABLE_COLUMNS.len())
        .map(|index| format!("${index}"))
        .collect();
    format!(
        "INSERT INTO environments (id, organization_id, created_at, {}) VALUES ({})",
        CHANGEABLE_COLUMNS.join(", "),
        placeholders.join(", ")
    )
});

/// Writes [`CHANGEABLE_COLUMNS`] of the environment with an id in an organization.
static UPDATE_ENVIRONMENT: LazyLock<String> = LazyLock::new(|| {
    let assignments: Vec<String> = CHANGEABLE_COLUMNS
        .iter()
        .zip(1..)
        .map(|(column, index)| format!("{column} = ${index}"))
        .collect();
    let next = CHANGEABLE_COLUMNS.len() + 1;
    format!(
        "UPDATE environments SET {} WHERE id = ${next} AND organization_id = ${}",
        assignments.join(", "),
        next + 1
    )
});

/// Binds `record`'s values for [`CHANGEABLE_COLUMNS`], JSON columns serialized.
fn bind_changeable<'q>(
    query: Query<'q, Postgres, PgArguments>,
    record: &EnvironmentRecord,
) -> Result<Query<'q, Postgres, PgArguments>, StoreError> {
    Ok(query
        .bind(record.name.clone())
        .bind(record.display_name.clone())
        .bind(record.description.clone())
        .bind(record.status.as_str())
        .bind(record.requested_status.as_str())
        .bind(to_json(record.configuration.as_ref())?)
        .bind(to_json(record.metadata.as_ref())?)
        .bind(to_json(record.tags.as_ref())?)
        .bind(to_json(record.settings.as_ref())?)
        .bind(to_json(record.execution_environment.as_ref())?)
        .bind(record.temporal_namespace.clone())
        .bind(record.temporal_namespace_id.clone())
        .bind(record.provisioning_workflow_id.clone())
        .bind(record.provisioned_at.map(|at| at.as_microsecond()))
        .bind(record.error_message.clone())
        .bind(record.updated_at.as_microsecond())
        .bind(record.created_by.clone()))
}

/// A failed write of `record`: its name taken when a unique constraint refused it.
fn name_taken_or(error: sqlx::Error, record: &EnvironmentRecord) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::NameTaken {
            name: record.name.clone(),
        }
    } else {
        error.into()
    }
}
