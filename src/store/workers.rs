//! Worker registrations: the records, the [`WorkerStore`] reads and [`WorkerTransaction`] writes,
//! and their SQLite implementation. Liveness is a query over `last_heartbeat_at` at read time, so
//! no background job keeps counts up to date; the store decides nothing about what "alive" means
//! (the caller passes the moment a heartbeat must be newer than).

use std::collections::BTreeMap;

use jiff::Timestamp;
use sqlx::Row;

use super::row::ReadRow;
use super::sqlite::{
    SqliteStore, SqliteTransaction, parse_environment_id, select_worker_token, timestamp,
};
use super::{StoreError, WorkerTokenHash, WorkerTokenRecord};
use crate::api::{EnvironmentId, OrganizationId, WorkerId};

pub(super) const WORKER_COLUMNS: &str = "id, organization_id, environment_id, token_hash, hostname, \
     version, busy, registered_at, last_heartbeat_at";

/// A worker registered with an environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Its identifier.
    pub id: WorkerId,
    /// The organization of its environment.
    pub organization_id: OrganizationId,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// The digest of the token it registered with.
    pub token_hash: WorkerTokenHash,
    /// The machine it runs on.
    pub hostname: String,
    /// Its software version.
    pub version: String,
    /// Whether its last heartbeat said it runs a task.
    pub busy: bool,
    /// When it registered.
    pub registered_at: Timestamp,
    /// When its last heartbeat arrived.
    pub last_heartbeat_at: Timestamp,
}

/// How many workers of an environment are alive, and how many of those are busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Workers whose last heartbeat is recent enough.
    pub active: u32,
    /// Active workers running a task.
    pub busy: u32,
}

impl WorkerCounts {
    /// Active workers with no task.
    pub fn idle(&self) -> u32 {
        self.active.saturating_sub(self.busy)
    }
}

/// Reads of worker registrations, outside a transaction.
#[async_trait::async_trait]
pub trait WorkerStore: Send + Sync {
    /// The workers of an environment, by registration time.
    async fn workers(
        &self,
        organization: &OrganizationId,
        environment: EnvironmentId,
    ) -> Result<Vec<WorkerRecord>, StoreError>;
    /// Per environment of the organization (or only `environment`), the workers whose last
    /// heartbeat is at or after `alive_since`. Environments without any are absent.
    async fn worker_counts(
        &self,
        organization: &OrganizationId,
        environment: Option<EnvironmentId>,
        alive_since: Timestamp,
    ) -> Result<BTreeMap<EnvironmentId, WorkerCounts>, StoreError>;
}

/// Writes (and the reads they depend on) of worker registrations, inside a transaction.
#[async_trait::async_trait]
pub trait WorkerTransaction: Send {
    /// One worker, in any organization.
    async fn worker(&mut self, id: WorkerId) -> Result<Option<WorkerRecord>, StoreError>;
    /// Registers a worker.
    async fn insert_worker(&mut self, record: &WorkerRecord) -> Result<(), StoreError>;
    /// Records a heartbeat; whether the worker exists.
    async fn record_heartbeat(
        &mut self,
        id: WorkerId,
        at: Timestamp,
        busy: bool,
    ) -> Result<bool, StoreError>;
    /// Removes a worker; whether it existed.
    async fn delete_worker(&mut self, id: WorkerId) -> Result<bool, StoreError>;
    /// How many workers of the environment sent a heartbeat at or after `alive_since`.
    async fn active_worker_count(
        &mut self,
        environment: EnvironmentId,
        alive_since: Timestamp,
    ) -> Result<u32, StoreError>;
    /// Removes the workers of the organization (of any environment, deleted ones included)
    /// silent since before `before`; how many.
    async fn delete_silent_workers(
        &mut self,
        organization: &OrganizationId,
        before: Timestamp,
    ) -> Result<u64, StoreError>;
    /// The worker token with this digest, as the transaction sees it.
    async fn worker_token(
        &mut self,
        hash: &WorkerTokenHash,
    ) -> Result<Option<WorkerTokenRecord>, StoreError>;
    /// Revokes every worker token of an environment; how many there were.
    async fn delete_worker_tokens(
        &mut self,
        organization: &OrganizationId,
        environment: EnvironmentId,
    ) -> Result<u64, StoreError>;
    /// Marks a worker token as having registered a worker at `at` (unless it already had);
    /// whether the token exists.
    async fn mark_worker_token_registered(
        &mut self,
        hash: &WorkerTokenHash,
        at: Timestamp,
    ) -> Result<bool, StoreError>;
    /// Revokes, in one statement, the environment's tokens that never registered a worker and
    /// were issued before `issued_before` or are older than its `keep` newest such tokens; how
    /// many.
    async fn revoke_unused_worker_tokens(
        &mut self,
        environment: EnvironmentId,
        issued_before: Timestamp,
        keep: u32,
    ) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl WorkerStore for SqliteStore {
    async fn workers(
        &self,
        organization: &OrganizationId,
        environment: EnvironmentId,
    ) -> Result<Vec<WorkerRecord>, StoreError> {
        let sql = format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE organization_id = ? AND environment_id = ? \
             ORDER BY registered_at, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization.0.as_str())
            .bind(environment.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(worker_from_row)
            .collect()
    }

    async fn worker_counts(
        &self,
        organization: &OrganizationId,
        environment: Option<EnvironmentId>,
        alive_since: Timestamp,
    ) -> Result<BTreeMap<EnvironmentId, WorkerCounts>, StoreError> {
        // `?3 IS NULL` makes the environment filter optional in one statement.
        let rows = sqlx::query(
            "SELECT environment_id, count(*) AS active, coalesce(sum(busy), 0) AS busy \
             FROM workers WHERE organization_id = ?1 AND last_heartbeat_at >= ?2 \
             AND (?3 IS NULL OR environment_id = ?3) GROUP BY environment_id",
        )
        .bind(organization.0.as_str())
        .bind(alive_since.as_microsecond())
        .bind(environment.map(|id| id.to_string()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id = parse_environment_id(&row.try_get::<String, _>("environment_id")?)?;
                let counts = WorkerCounts {
                    active: count(row.try_get("active")?)?,
                    busy: count(row.try_get("busy")?)?,
                };
                Ok((id, counts))
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl WorkerTransaction for SqliteTransaction {
    async fn worker(&mut self, id: WorkerId) -> Result<Option<WorkerRecord>, StoreError> {
        let sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.transaction)
            .await?
            .as_ref()
            .map(worker_from_row)
            .transpose()
    }

    async fn insert_worker(&mut self, record: &WorkerRecord) -> Result<(), StoreError> {
        let sql =
            format!("INSERT INTO workers ({WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(record.id.to_string())
            .bind(record.organization_id.0.as_str())
            .bind(record.environment_id.to_string())
            .bind(record.token_hash.0.as_str())
            .bind(record.hostname.as_str())
            .bind(record.version.as_str())
            .bind(i64::from(record.busy))
            .bind(record.registered_at.as_microsecond())
            .bind(record.last_heartbeat_at.as_microsecond())
            .execute(&mut *self.transaction)
            .await?;
        Ok(())
    }

    async fn record_heartbeat(
        &mut self,
        id: WorkerId,
        at: Timestamp,
        busy: bool,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE workers SET last_heartbeat_at = ?, busy = ? WHERE id = ?")
            .bind(at.as_microsecond())
            .bind(i64::from(busy))
            .bind(id.to_string())
            .execute(&mut *self.transaction)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_worker(&mut self, id: WorkerId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM workers WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *self.transaction)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn active_worker_count(
        &mut self,
        environment: EnvironmentId,
        alive_since: Timestamp,
    ) -> Result<u32, StoreError> {
        let active: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM workers WHERE environment_id = ? AND last_heartbeat_at >= ?",
        )
        .bind(environment.to_string())
        .bind(alive_since.as_microsecond())
        .fetch_one(&mut *self.transaction)
        .await?;
        count(active)
    }

    async fn delete_silent_workers(
        &mut self,
        organization: &OrganizationId,
        before: Timestamp,
    ) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM workers WHERE organization_id = ? AND last_heartbeat_at < ?")
                .bind(organization.0.as_str())
                .bind(before.as_microsecond())
                .execute(&mut *self.transaction)
                .await?;
        Ok(result.rows_affected())
    }

    async fn worker_token(
        &mut self,
        hash: &WorkerTokenHash,
    ) -> Result<Option<WorkerTokenRecord>, StoreError> {
        select_worker_token(&mut *self.transaction, hash).await
    }

    async fn delete_worker_tokens(
        &mut self,
        organization: &OrganizationId,
        environment: EnvironmentId,
    ) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "DELETE FROM worker_tokens WHERE organization_id = ? AND environment_id = ?",
        )
        .bind(organization.0.as_str())
        .bind(environment.to_string())
        .execute(&mut *self.transaction)
        .await?;
        Ok(result.rows_affected())
    }

    async fn mark_worker_token_registered(
        &mut self,
        hash: &WorkerTokenHash,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE worker_tokens SET registered_at = coalesce(registered_at, ?) \
             WHERE token_hash = ?",
        )
        .bind(at.as_microsecond())
        .bind(hash.0.as_str())
        .execute(&mut *self.transaction)
        .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn revoke_unused_worker_tokens(
        &mut self,
        environment: EnvironmentId,
        issued_before: Timestamp,
        keep: u32,
    ) -> Result<u64, StoreError> {
        // The rowid is the issue order: a new row gets one more than the largest there is.
        let result = sqlx::query(
            "DELETE FROM worker_tokens WHERE environment_id = ?1 AND registered_at IS NULL \
             AND (created_at < ?2 OR rowid NOT IN (SELECT rowid FROM worker_tokens \
             WHERE environment_id = ?1 AND registered_at IS NULL ORDER BY rowid DESC LIMIT ?3))",
        )
        .bind(environment.to_string())
        .bind(issued_before.as_microsecond())
        .bind(i64::from(keep))
        .execute(&mut *self.transaction)
        .await?;
        Ok(result.rows_affected())
    }
}

pub(super) fn worker_from_row(row: &impl ReadRow) -> Result<WorkerRecord, StoreError> {
    let id = row.text("id")?;
    Ok(WorkerRecord {
        id: id
            .parse()
            .map_err(|error| StoreError::Corrupt(format!("worker id `{id}`: {error}")))?,
        organization_id: OrganizationId(row.text("organization_id")?),
        environment_id: parse_environment_id(&row.text("environment_id")?)?,
        token_hash: WorkerTokenHash(row.text("token_hash")?),
        hostname: row.text("hostname")?,
        version: row.text("version")?,
        busy: row.flag("busy")?,
        registered_at: timestamp(row.integer("registered_at")?)?,
        last_heartbeat_at: timestamp(row.integer("last_heartbeat_at")?)?,
    })
}

pub(super) fn count(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("worker count {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EnvironmentRecord, OrganizationRecord, Store};

    fn at(microseconds: i64) -> Timestamp {
        Timestamp::from_microsecond(microseconds).unwrap()
    }

    fn environment(organization: &str, name: &str) -> EnvironmentRecord {
        EnvironmentRecord {
            display_name: None,
            ..EnvironmentRecord::new(OrganizationId(organization.to_owned()), name, at(1))
        }
    }

    fn worker(environment: &EnvironmentRecord, last_heartbeat: i64, busy: bool) -> WorkerRecord {
        WorkerRecord {
            id: WorkerId::new_random(),
            organization_id: environment.organization_id.clone(),
            environment_id: environment.id,
            token_hash: WorkerTokenHash("cd".repeat(32)),
            hostname: "host-1".to_owned(),
            version: "1.0.0".to_owned(),
            busy,
            registered_at: at(last_heartbeat),
            last_heartbeat_at: at(last_heartbeat),
        }
    }

    async fn store_with(environments: &[&EnvironmentRecord]) -> SqliteStore {
        let store = SqliteStore::in_memory().await.unwrap();
        let mut transaction = store.begin().await.unwrap();
        let mut organizations: Vec<&OrganizationId> = environments
            .iter()
            .map(|environment| &environment.organization_id)
            .collect();
        organizations.dedup();
        for organization in organizations {
            transaction
                .insert_organization(&OrganizationRecord::ready(organization.clone(), at(1)))
                .await
                .unwrap();
        }
        for environment in environments {
            transaction.insert_environment(environment).await.unwrap();
        }
        transaction.commit().await.unwrap();
        store
    }

    #[tokio::test]
    async fn counts_only_workers_heard_from_since_the_cutoff() {
        let pool = environment("acme", "pool");
        let other = environment("acme", "other");
        let store = store_with(&[&pool, &other]).await;
        let fresh_idle = worker(&pool, 1_000, false);
        let fresh_busy = worker(&pool, 1_500, true);
        let silent = worker(&pool, 100, false);
        let elsewhere = worker(&other, 2_000, true);
        let mut transaction = store.begin().await.unwrap();
        for record in [&fresh_idle, &fresh_busy, &silent, &elsewhere] {
            transaction.insert_worker(record).await.unwrap();
        }
        assert_eq!(
            transaction
                .active_worker_count(pool.id, at(1_000))
                .await
                .unwrap(),
            2
        );
        transaction.commit().await.unwrap();

        let organization = OrganizationId("acme".into());
        let counts = store
            .worker_counts(&organization, None, at(1_000))
            .await
            .unwrap();
        assert_eq!(counts[&pool.id], WorkerCounts { active: 2, busy: 1 });
        assert_eq!(counts[&pool.id].idle(), 1);
        assert_eq!(counts[&other.id], WorkerCounts { active: 1, busy: 1 });
        let only_other = store
            .worker_counts(&organization, Some(other.id), at(0))
            .await
            .unwrap();
        assert_eq!(only_other.keys().collect::<Vec<_>>(), [&other.id]);
        let listed = store.workers(&organization, pool.id).await.unwrap();
        assert_eq!(listed, [silent.clone(), fresh_idle.clone(), fresh_busy]);
        // Another organization sees nothing.
        let stranger = OrganizationId("stranger".into());
        assert!(store.workers(&stranger, pool.id).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn heartbeats_move_workers_and_deletes_remove_them() {
        let pool = environment("acme", "pool");
        let store = store_with(&[&pool]).await;
        let record = worker(&pool, 100, false);
        let silent = worker(&pool, 50, false);
        let mut transaction = store.begin().await.unwrap();
        transaction.insert_worker(&record).await.unwrap();
        transaction.insert_worker(&silent).await.unwrap();
        assert!(
            transaction
                .record_heartbeat(record.id, at(900), true)
                .await
                .unwrap()
        );
        assert!(
            !transaction
                .record_heartbeat(WorkerId::new_random(), at(900), true)
                .await
                .unwrap()
        );
        let read = transaction.worker(record.id).await.unwrap().unwrap();
        assert_eq!(read.last_heartbeat_at, at(900));
        assert!(read.busy);
        assert_eq!(
            transaction
                .delete_silent_workers(&pool.organization_id, at(100))
                .await
                .unwrap(),
            1
        );
        assert!(transaction.worker(silent.id).await.unwrap().is_none());
        assert!(transaction.delete_worker(record.id).await.unwrap());
        assert!(!transaction.delete_worker(record.id).await.unwrap());
        transaction.commit().await.unwrap();
    }

    #[tokio::test]
    async fn tokens_can_be_revoked_and_workers_outlive_their_environment() {
        let pool = environment("acme", "pool");
        let store = store_with(&[&pool]).await;
        let organization = OrganizationId("acme".into());
        let record = worker(&pool, 100, false);
        let token = |byte: &str| WorkerTokenRecord {
            hash: WorkerTokenHash(byte.repeat(32)),
            organization_id: organization.clone(),
            environment_id: pool.id,
            created_at: at(5),
            registered_at: None,
        };
        let mut transaction = store.begin().await.unwrap();
        transaction.insert_worker(&record).await.unwrap();
        transaction.insert_worker_token(&token("aa")).await.unwrap();
        transaction.insert_worker_token(&token("bb")).await.unwrap();
        assert_eq!(
            transaction.worker_token(&token("aa").hash).await.unwrap(),
            Some(token("aa"))
        );
        assert_eq!(
            transaction
                .delete_worker_tokens(&organization, pool.id)
                .await
                .unwrap(),
            2
        );
        assert_eq!(
            transaction.worker_token(&token("aa").hash).await.unwrap(),
            None
        );
        // The worker stays registered: its next heartbeat learns of the rotation, and after the
        // environment is gone, of that.
        assert!(transaction.worker(record.id).await.unwrap().is_some());
        transaction
            .delete_environment(&organization, pool.id)
            .await
            .unwrap();
        assert!(transaction.worker(record.id).await.unwrap().is_some());
        transaction.commit().await.unwrap();
    }
}
