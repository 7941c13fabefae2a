//! [`StateStore`] for [`SqliteStore`]: the HTTP state backend's documents, locks, fencing
//! counters and lock event log (migration `0002_state.sql`).
//!
//! It decides nothing: the rules are [`crate::control_plane::state_service::StateService`]'s. Each service operation
//! runs in one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before the first
//! read, so a lock's check and its grant cannot interleave with another request's.

use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::Sqlite;

use super::SqliteStore;
use super::row::ReadRow;
use super::state::{
    LockEvent, LockEventKind, LockRecord, RecordedLockEvent, StateStore, StateStoreError,
    StateTransaction, StoredDocument, Workspace, WriteRefusal,
};
use crate::state::{FencingToken, LockInfo};

#[async_trait::async_trait]
impl StateStore for SqliteStore {
    async fn begin_state(&self) -> Result<Box<dyn StateTransaction>, StateStoreError> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that read and then
        // writes can fail with SQLITE_BUSY when another connection wrote meanwhile.
        let transaction = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(database("begin a transaction"))?;
        Ok(Box::new(SqliteStateTransaction { transaction }))
    }

    async fn state_document(
        &self,
        workspace: &Workspace,
    ) -> Result<Option<StoredDocument>, StateStoreError> {
        let row = sqlx::query(
            "SELECT document, updated_at FROM state_documents \
             WHERE organization_id = ? AND workspace = ?",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(database("read the state document"))?;
        row.map(|row| {
            Ok(StoredDocument {
                document: row
                    .try_get("document")
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
             WHERE organization_id = ? AND workspace = ? AND sequence > ? ORDER BY sequence \
             LIMIT ?",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .bind(after)
        // A negative limit is none to SQLite.
        .bind(limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(database("read the lock event log"))?
        .iter()
        .map(event_from_row)
        .collect()
    }

    async fn prune_lock_events(&self, before: Timestamp) -> Result<u64, StateStoreError> {
        let result = sqlx::query("DELETE FROM state_lock_events WHERE at < ?")
            .bind(before.as_microsecond())
            .execute(&self.pool)
            .await
            .map_err(database("prune the lock event log"))?;
        Ok(result.rows_affected())
    }
}

/// One `BEGIN IMMEDIATE` transaction; dropping it rolls back.
struct SqliteStateTransaction {
    transaction: sqlx::Transaction<'static, Sqlite>,
}

#[async_trait::async_trait]
impl StateTransaction for SqliteStateTransaction {
    async fn lock(&mut self, workspace: &Workspace) -> Result<Option<LockRecord>, StateStoreError> {
        let row = sqlx::query(
            "SELECT info, fencing_token, lease_expires_at, acquired_at, holder_key FROM state_locks \
             WHERE organization_id = ? AND workspace = ?",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_optional(&mut *self.transaction)
        .await
        .map_err(database("read the state lock"))?;
        row.as_ref().map(lock_from_row).transpose()
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
             lease_expires_at, acquired_at, holder_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
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
        sqlx::query("DELETE FROM state_locks WHERE organization_id = ? AND workspace = ?")
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
        let row = sqlx::query(
            "SELECT last_token FROM state_fencing_tokens \
             WHERE organization_id = ? AND workspace = ?",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_optional(&mut *self.transaction)
        .await
        .map_err(database("read the fencing token"))?;
        row.map(|row| token(row.try_get("last_token"))).transpose()
    }

    async fn next_fencing_token(
        &mut self,
        workspace: &Workspace,
    ) -> Result<FencingToken, StateStoreError> {
        let row = sqlx::query(
            "INSERT INTO state_fencing_tokens (organization_id, workspace, last_token) \
             VALUES (?, ?, 1) ON CONFLICT (organization_id, workspace) \
             DO UPDATE SET last_token = last_token + 1 RETURNING last_token",
        )
        .bind(workspace.organization.as_str())
        .bind(workspace.name.as_str())
        .fetch_one(&mut *self.transaction)
        .await
        .map_err(database("issue a fencing token"))?;
        token(row.try_get("last_token"))
    }

    async fn write_document(
        &mut self,
        workspace: &Workspace,
        document: &str,
        at: Timestamp,
    ) -> Result<(), StateStoreError> {
        sqlx::query(
            "INSERT INTO state_documents (organization_id, workspace, document, updated_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (organization_id, workspace) \
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
             holder_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

/// A lock record from a `state_locks` row.
pub(super) fn lock_from_row(row: &impl ReadRow) -> Result<LockRecord, StateStoreError> {
    let info = row.text("info").map_err(database("read the state lock"))?;
    let info: LockInfo = serde_json::from_str(&info)
        .map_err(|error| StateStoreError::corrupt(format!("stored lock information: {error}")))?;
    Ok(LockRecord {
        info,
        fencing_token: token(row.integer("fencing_token"))?,
        lease_expires_at: timestamp(row, "lease_expires_at")?,
        acquired_at: timestamp(row, "acquired_at")?,
        holder_key: row
            .optional_text("holder_key")
            .map_err(database("read the state lock"))?,
    })
}

/// A lock event from a `state_lock_events` row.
pub(super) fn event_from_row(row: &impl ReadRow) -> Result<RecordedLockEvent, StateStoreError> {
    let read = database("read the lock event log");
    let kind = row.text("kind").map_err(&read)?;
    let kind = LockEventKind::parse(&kind)
        .ok_or_else(|| StateStoreError::corrupt(format!("unknown lock event kind `{kind}`")))?;
    let refusal = row
        .optional_text("refusal")
        .map_err(&read)?
        .map(|text| {
            WriteRefusal::parse(&text)
                .ok_or_else(|| StateStoreError::corrupt(format!("unknown write refusal `{text}`")))
        })
        .transpose()?;
    let fencing_token = row
        .optional_integer("fencing_token")
        .map_err(&read)?
        .map(|value| token(Ok(value)))
        .transpose()?;
    let lease_expires_at = row
        .optional_integer("lease_expires_at")
        .map_err(&read)?
        .map(microseconds)
        .transpose()?;
    Ok(RecordedLockEvent {
        sequence: row.integer("sequence").map_err(&read)?,
        event: LockEvent {
            at: timestamp(row, "at")?,
            kind,
            lock_id: row.optional_text("lock_id").map_err(&read)?,
            who: row.optional_text("who").map_err(&read)?,
            operation: row.optional_text("operation").map_err(&read)?,
            fencing_token,
            lease_expires_at,
            holder_lock_id: row.optional_text("holder_lock_id").map_err(&read)?,
            refusal,
            key: row.optional_text("caller_key").map_err(&read)?,
            holder_key: row.optional_text("holder_key").map_err(&read)?,
        },
    })
}

/// Maps a database error to a store error saying what was being done.
pub(super) fn database(action: &'static str) -> impl Fn(sqlx::Error) -> StateStoreError {
    move |error| StateStoreError::new(format!("cannot {action}"), error)
}

pub(super) fn timestamp(
    row: &impl ReadRow,
    column: &'static str,
) -> Result<Timestamp, StateStoreError> {
    let value = row.integer(column).map_err(database("read a timestamp"))?;
    microseconds(value)
}

pub(super) fn microseconds(value: i64) -> Result<Timestamp, StateStoreError> {
    Timestamp::from_microsecond(value)
        .map_err(|error| StateStoreError::corrupt(format!("timestamp {value}: {error}")))
}

pub(super) fn token(value: Result<i64, sqlx::Error>) -> Result<FencingToken, StateStoreError> {
    let value = value.map_err(database("read a fencing token"))?;
    u64::try_from(value)
        .map(FencingToken)
        .map_err(|_| StateStoreError::corrupt(format!("fencing token {value} is negative")))
}

pub(super) fn token_column(token: FencingToken) -> Result<i64, StateStoreError> {
    i64::try_from(token.0).map_err(|_| {
        StateStoreError::corrupt(format!("fencing token {token} is too large to store"))
    })
}
