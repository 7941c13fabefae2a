//! Worker registrations and the audit log on [`PgStore`]: the same reads and writes as the
//! SQLite store's (`workers.rs`, `audit.rs`), in PostgreSQL's dialect. Liveness is still judged
//! against the `alive_since` the caller passes, from heartbeat times stored in the database.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;
use sqlx::Row;

use super::audit::{AUDIT_COLUMNS, audit_from_row};
use super::postgres::{PgStore, PgTransaction, select_worker_token};
use super::sqlite::parse_environment_id;
use super::workers::{WORKER_COLUMNS, count, worker_from_row};
use super::{
    AuditEntry, AuditRecord, AuditStore, AuditTransaction, StoreError, WorkerCounts, WorkerRecord,
    WorkerStore, WorkerTokenHash, WorkerTokenRecord, WorkerTransaction,
};
use crate::api::{EnvironmentId, OrganizationId, WorkerId};

#[async_trait::async_trait]
impl WorkerStore for PgStore {
    async fn workers(
        &self,
        organization: &OrganizationId,
        environment: EnvironmentId,
    ) -> Result<Vec<WorkerRecord>, StoreError> {
        let sql = format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE organization_id = $1 \
             AND environment_id = $2 ORDER BY registered_at, id"
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
        let rows = sqlx::query(
            "SELECT environment_id, count(*) AS active, count(*) FILTER (WHERE busy) AS busy \
             FROM workers WHERE organization_id = $1 AND last_heartbeat_at >= $2 \
             AND ($3::text IS NULL OR environment_id = $3) GROUP BY environment_id",
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
impl WorkerTransaction for PgTransaction {
    async fn worker(&mut self, id: WorkerId) -> Result<Option<WorkerRecord>, StoreError> {
        let sql = format!("SELECT {WORKER_COLUMNS} FROM workers WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.transaction)
            .await?
            .as_ref()
            .map(worker_from_row)
            .transpose()
    }

    async fn insert_worker(&mut self, record: &WorkerRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO workers ({WORKER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(record.id.to_string())
            .bind(record.organization_id.0.as_str())
            .bind(record.environment_id.to_string())
            .bind(record.token_hash.0.as_str())
            .bind(record.hostname.as_str())
            .bind(record.version.as_str())
            .bind(record.busy)
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
        let result =
            sqlx::query("UPDATE workers SET last_heartbeat_at = $1, busy = $2 WHERE id = $3")
                .bind(at.as_microsecond())
                .bind(busy)
                .bind(id.to_string())
                .execute(&mut *self.transaction)
                .await?;
        Ok(result.rows_affected() > 0)
    }

    async fn delete_worker(&mut self, id: WorkerId) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM workers WHERE id = $1")
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
            "SELECT count(*) FROM workers WHERE environment_id = $1 AND last_heartbeat_at >= $2",
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
        let result = sqlx::query(
            "DELETE FROM workers WHERE organization_id = $1 AND last_heartbeat_at < $2",
        )
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
            "DELETE FROM worker_tokens WHERE organization_id = $1 AND environment_id = $2",
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
            "UPDATE worker_tokens SET registered_at = coalesce(registered_at, $1) \
             WHERE token_hash = $2",
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
        // Writers hold the store's write lock, so no other replica issues or registers a token
        // of this environment between the count and the delete.
        let result = sqlx::query(
            "DELETE FROM worker_tokens WHERE environment_id = $1 AND registered_at IS NULL \
             AND (created_at < $2 OR issue_order NOT IN (SELECT issue_order FROM worker_tokens \
             WHERE environment_id = $1 AND registered_at IS NULL \
             ORDER BY issue_order DESC LIMIT $3))",
        )
        .bind(environment.to_string())
        .bind(issued_before.as_microsecond())
        .bind(i64::from(keep))
        .execute(&mut *self.transaction)
        .await?;
        Ok(result.rows_affected())
    }
}

#[async_trait::async_trait]
impl AuditStore for PgStore {
    async fn audit_records(
        &self,
        organization: &OrganizationId,
        environment: Option<EnvironmentId>,
        after: u64,
        limit: Option<u32>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE organization_id = $1 \
             AND ($2::text IS NULL OR environment_id = $2) AND id > $3 ORDER BY id LIMIT $4"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization.0.as_str())
            .bind(environment.map(|id| id.to_string()))
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            // A null limit is none to PostgreSQL.
            .bind(limit.map(i64::from))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }
}

#[async_trait::async_trait]
impl AuditTransaction for PgTransaction {
    async fn insert_audit_entry(&mut self, entry: &AuditEntry) -> Result<u64, StoreError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_events (organization_id, environment_id, environment_name, actor, \
             action, at, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(entry.organization_id.0.as_str())
        .bind(entry.environment_id.map(|id| id.to_string()))
        .bind(entry.environment_name.as_deref())
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.at.as_microsecond())
        .bind(entry.before.as_ref().map(Value::to_string))
        .bind(entry.after.as_ref().map(Value::to_string))
        .fetch_one(&mut *self.transaction)
        .await?;
        u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("audit event id {id}")))
    }
}
