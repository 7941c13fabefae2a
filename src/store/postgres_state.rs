//! [`StateStore`] for [`PgStore`]: the HTTP state backend's documents, locks, fencing counters
//! and lock event log on PostgreSQL.
//!
//! Each service operation runs in one transaction that takes the store's write lock first (see
//! `postgres.rs`), so a lock's check and its grant cannot interleave with another request's, on
//! any replica. Fencing tokens come from a counter row updated under that lock, so they only grow;
//! the lock event log's sequence is an identity column assigned in that same order. Lease expiry
//! is judged by the database's clock ([`StateTransaction::database_now`]), which every replica
//! shares.

use jiff::Timestamp;
use sqlx::postgres::Postgres;

use super::PgStore;
use super::sqlite_state::{
    database, event_from_row, lock_from_row, microseconds, timestamp, token, token_column,
};
use super::state::{
    LockEvent, LockRecord, RecordedLockEvent, StateStore, StateStoreError, StateTransaction,
    StoredDocument, Workspace, WriteRefusal,
};
use crate::state::FencingToken;

#[async_trait::async_trait]
impl StateStore for PgStore {
    async fn begin_state(&self) -> Result<Box<dyn StateTransaction>, StateStoreError> {
        let transaction = self
            .begin_serialized()
            .await
            .map_err(database("begin a transaction"))?;
        Ok(Box::new(PgStateTransaction { transaction }))
    }

    async fn state_document(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<StoredDocument>, StateStoreError> {
        let row = sqlx::query(
            "SELECT document, updated_at FROM state_documents \
             WHERE organization_id = $1 AND workspace = $2",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(database("read the state document"))?;
        row.map(|row| {
            Ok(StoredDocument {
                document: super::row::ReadRow::text(&row, "document")
                    .map_err(database("read the state document"))?,
                updated_at: timestamp(&row, "updated_at")?,
            })
        })
        .transpose()
    }

    async fn lock_events(
        &self,
        workspace: &Workspace,
        after: i64,
        limit: Option<u32>,
    ) -> Result<Vec<RecordedLockEvent>, StateStoreError> {
        sqlx::query(
            "SELECT sequence, at, kind, lock_id, who, operation, fencing_token, \
             lease_expires_at, holder_lock_id, refusal, caller_key, holder_key FROM state_lock_events \
             WHERE organization_id = $1 AND workspace = $2 AND sequence > $3 \
             ORDER BY sequence LIMIT $4",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .bind(after)
        // A null limit is none to PostgreSQL.
        .bind(limit.map(i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(database("read the lock event log"))?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn prune_lock_events(&self, before: Timestamp) -> Result<u64, StateStoreError> {
        let result = sqlx::query("DELETE FROM state_lock_events WHERE at < $1")
            .bind(before.as_microsecond())
            .execute(&self.pool)
            .await
            .map_err(database("prune the lock event log"))?;
        Ok(result.rows_affected())
    }
}

/// One transaction holding the write lock; dropping it rolls back.
struct PgStateTransaction {
    transaction: sqlx::Transaction<'static, Postgres>,
}

#[async_trait::async_trait]
impl StateTransaction for PgStateTransaction {
    async fn database_now(&mut self) -> Result<Option<Timestamp>, StateStoreError> {
        let value: i64 = sqlx::query_scalar(super::postgres::DATABASE_NOW)
            .fetch_one(&mut *self.transaction)
            .await
            .map_err(database("read the database clock"))?;
        microseconds(value).map(Some)
    }

    async fn lock(&mut self, workspace: &Workspace) -> Result<Option<LockRecord>, StateStoreError> {
        sqlx::query(
            "SELECT info, fencing_token, lease_expires_at, acquired_at, holder_key FROM state_locks \
             WHERE organization_id = $1 AND workspace = $2",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_optional(&mut *self.transaction)
        .await
        .map_err(database("read the state lock"))?
        .as_ref()
        .map(lock_from_row)
        .transpose()
    }

    async fn put_lock(
        &mut self,
        workspace: &Workspace,
        record: &LockRecord,
    ) -> Result<(), StateStoreError> {
        let info = serde_json::to_string(&record.info)
            .map_err(|error| StateStoreError::new("serialize the lock information", error))?;
        sqlx::query(
            "INSERT INTO state_locks (organization_id, workspace, lock_id, info, fencing_token, \
             lease_expires_at, acquired_at, holder_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (organization_id, workspace) DO UPDATE SET lock_id = excluded.lock_id, \
             info = excluded.info, fencing_token = excluded.fencing_token, \
             lease_expires_at = excluded.lease_expires_at, acquired_at = excluded.acquired_at, \
             holder_key = excluded.holder_key",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .bind(record.info.id.as_str())
        .bind(info)
        .bind(token_column(record.fencing_token)?)
        .bind(record.lease_expires_at.as_microsecond())
        .bind(record.acquired_at.as_microsecond())
        .bind(record.holder_key.as_deref())
        .execute(&mut *self.transaction)
        .await
        .map_err(database("write the state lock"))?;
        Ok(())
    }

    async fn delete_lock(&mut self, workspace: &Workspace) -> Result<(), StateStoreError> {
        sqlx::query("DELETE FROM state_locks WHERE organization_id = $1 AND workspace = $2")
            .bind(workspace.organization.as_str())
            .bind(workspace.name.as_str())
            .execute(&mut *self.transaction)
            .await
            .map_err(database("remove the state lock"))?;
        Ok(())
    }

    async fn fencing_token(
        &mut self,
        workspace: &Workspace,
    ) -> Result<Option<FencingToken>, StateStoreError> {
        let value: Option<i64> = sqlx::query_scalar(
            "SELECT last_token FROM state_fencing_tokens \
             WHERE organization_id = $1 AND workspace = $2",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_optional(&mut *self.transaction)
        .await
        .map_err(database("read the fencing token"))?;
        value.map(|value| token(Ok(value))).transpose()
    }

    async fn next_fencing_token(
        &mut self,
        workspace: &Workspace,
    ) -> Result<FencingToken, StateStoreError> {
        let value: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO state_fencing_tokens (organization_id, workspace, last_token) \
             VALUES ($1, $2, 1) ON CONFLICT (organization_id, workspace) \
             DO UPDATE SET last_token = state_fencing_tokens.last_token + 1 RETURNING last_token",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_one(&mut *self.transaction)
        .await;
        token(value)
    }

    async fn write_document(
        &mut self,
        workspace: &Workspace,
        document: &str,
        at: Timestamp,
    ) -> Result<(), StateStoreError> {
        sqlx::query(
            "INSERT INTO state_documents (organization_id, workspace, document, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (organization_id, workspace) \
             DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .bind(document)
        .bind(at.as_microsecond())
        .execute(&mut *self.transaction)
        .await
        .map_err(database("write the state document"))?;
        Ok(())
    }

    async fn append_event(
        &mut self,
        workspace: &Workspace,
        event: &LockEvent,
    ) -> Result<(), StateStoreError> {
        sqlx::query(
            "INSERT INTO state_lock_events (organization_id, workspace, at, kind, lock_id, who, \
             operation, fencing_token, lease_expires_at, holder_lock_id, refusal, caller_key, \
             holder_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .bind(event.at.as_microsecond())
        .bind(event.kind.as_str())
        .bind(event.lock_id.as_deref())
        .bind(event.who.as_deref())
        .bind(event.operation.as_deref())
        .bind(event.fencing_token.map(token_column).transpose()?)
        .bind(event.lease_expires_at.map(|at| at.as_microsecond()))
        .bind(event.holder_lock_id.as_deref())
        .bind(event.refusal.map(WriteRefusal::as_str))
        .bind(event.key.as_deref())
        .bind(event.holder_key.as_deref())
        .execute(&mut *self.transaction)
        .await
        .map_err(database("append to the lock event log"))?;
        Ok(())
    }

    async fn commit(self: Box<Self>) -> Result<(), StateStoreError> {
        self.transaction
            .commit()
            .await
            .map_err(database("commit a transaction"))
    }
}
