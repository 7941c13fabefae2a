//! The audit log: entries written inside the transaction of the change they describe (so a change
//! and its entry commit together or not at all), read back oldest first. The store keeps the
//! documents it is given; redacting them is the control plane's job, done before they get here.

use jiff::Timestamp;
use serde_json::Value;

use super::StoreError;
use super::row::ReadRow;
use super::sqlite::{SqliteStore, SqliteTransaction, parse_environment_id, timestamp};
use crate::api::{AuditAction, EnvironmentId, OrganizationId};

pub(super) const AUDIT_COLUMNS: &str =
    "id, organization_id, environment_id, environment_name, actor, action, at, before, after";

/// One change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The organization it happened in.
    pub organization_id: OrganizationId,
    /// The environment concerned.
    pub environment_id: Option<EnvironmentId>,
    /// Its name at the time.
    pub environment_name: Option<String>,
    /// Who made the change.
    pub actor: String,
    /// What the change was.
    pub action: AuditAction,
    /// When.
    pub at: Timestamp,
    /// The redacted document before.
    pub before: Option<Value>,
    /// The redacted document after.
    pub after: Option<Value>,
}

/// A recorded entry with its position in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Increasing with every entry.
    pub id: u64,
    /// The entry.
    pub entry: AuditEntry,
}

/// Reads of the audit log, outside a transaction.
#[async_trait::async_trait]
pub trait AuditStore: Send + Sync {
    /// The entries of an organization (or of one of its environments) with an id above `after`,
    /// oldest first, at most `limit` of them (all without).
    async fn audit_records(
        &self,
        organization: &OrganizationId,
        environment: Option<EnvironmentId>,
        after: u64,
        limit: Option<u32>,
    ) -> Result<Vec<AuditRecord>, StoreError>;
}

/// Appends to the audit log inside a transaction.
#[async_trait::async_trait]
pub trait AuditTransaction: Send {
    /// Appends an entry; its id.
    async fn insert_audit_entry(&mut self, entry: &AuditEntry) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl AuditStore for SqliteStore {
    async fn audit_records(
        &self,
        organization: &OrganizationId,
        environment: Option<EnvironmentId>,
        after: u64,
        limit: Option<u32>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE organization_id = ?1 \
             AND (?2 IS NULL OR environment_id = ?2) AND id > ?3 ORDER BY id LIMIT ?4"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(organization.0.as_str())
            .bind(environment.map(|id| id.to_string()))
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            // A negative limit is none to SQLite.
            .bind(limit.map_or(-1, i64::from))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(audit_from_row)
            .collect()
    }
}

#[async_trait::async_trait]
impl AuditTransaction for SqliteTransaction {
    async fn insert_audit_entry(&mut self, entry: &AuditEntry) -> Result<u64, StoreError> {
        let result = sqlx::query(
            "INSERT INTO audit_events (organization_id, environment_id, environment_name, actor, \
             action, at, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(entry.organization_id.0.as_str())
        .bind(entry.environment_id.map(|id| id.to_string()))
        .bind(entry.environment_name.as_deref())
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.at.as_microsecond())
        .bind(entry.before.as_ref().map(Value::to_string))
        .bind(entry.after.as_ref().map(Value::to_string))
        .execute(&mut *self.transaction)
        .await?;
        u64::try_from(result.last_insert_rowid())
            .map_err(|_| StoreError::Corrupt("negative audit event id".to_owned()))
    }
}

pub(super) fn audit_from_row(row: &impl ReadRow) -> Result<AuditRecord, StoreError> {
    let document = |column: &'static str| -> Result<Option<Value>, StoreError> {
        row.optional_text(column)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map_err(|error| StoreError::Corrupt(format!("column `{column}`: {error}")))
            })
            .transpose()
    };
    let action = row.text("action")?;
    let id = row.integer("id")?;
    Ok(AuditRecord {
        id: u64::try_from(id).map_err(|_| StoreError::Corrupt(format!("audit event id {id}")))?,
        entry: AuditEntry {
            organization_id: OrganizationId(row.text("organization_id")?),
            environment_id: row
                .optional_text("environment_id")?
                .as_deref()
                .map(parse_environment_id)
                .transpose()?,
            environment_name: row.optional_text("environment_name")?,
            actor: row.text("actor")?,
            action: action
                .parse()
                .map_err(|error: crate::api::UnknownAuditAction| {
                    StoreError::Corrupt(error.to_string())
                })?,
            at: timestamp(row.integer("at")?)?,
            before: document("before")?,
            after: document("after")?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{OrganizationRecord, Store};

    fn entry(organization: &str, environment: Option<EnvironmentId>, at: i64) -> AuditEntry {
        AuditEntry {
            organization_id: OrganizationId(organization.to_owned()),
            environment_id: environment,
            environment_name: environment.map(|_| "pool".to_owned()),
            actor: "key:0123abcd".to_owned(),
            action: AuditAction::EnvironmentUpdate,
            at: Timestamp::from_microsecond(at).unwrap(),
            before: Some(serde_json::json!({"description": "old"})),
            after: Some(serde_json::json!({"description": "new"})),
        }
    }

    #[tokio::test]
    async fn entries_read_back_in_order_per_organization_and_environment() {
        let store = SqliteStore::in_memory().await.unwrap();
        let mut transaction = store.begin().await.unwrap();
        for organization in ["acme", "other"] {
            transaction
                .insert_organization(&OrganizationRecord::ready(
                    OrganizationId(organization.to_owned()),
                    Timestamp::from_microsecond(1).unwrap(),
                ))
                .await
                .unwrap();
        }
        let pool = EnvironmentId::new_random();
        let first = transaction
            .insert_audit_entry(&entry("acme", Some(pool), 10))
            .await
            .unwrap();
        let second = transaction
            .insert_audit_entry(&entry("acme", None, 20))
            .await
            .unwrap();
        transaction
            .insert_audit_entry(&entry("other", Some(pool), 30))
            .await
            .unwrap();
        transaction.commit().await.unwrap();
        assert!(second > first);

        let acme = OrganizationId("acme".to_owned());
        let all = store.audit_records(&acme, None, 0, None).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].id, first);
        assert_eq!(all[0].entry, entry("acme", Some(pool), 10));
        let after_first = store
            .audit_records(&acme, None, first, Some(5))
            .await
            .unwrap();
        assert_eq!(after_first.len(), 1);
        assert_eq!(after_first[0].id, second);
        let one = store.audit_records(&acme, None, 0, Some(1)).await.unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].id, first);
        let of_pool = store
            .audit_records(&acme, Some(pool), 0, None)
            .await
            .unwrap();
        assert_eq!(of_pool.len(), 1);
        assert_eq!(of_pool[0].entry.environment_name.as_deref(), Some("pool"));
    }

    #[tokio::test]
    async fn an_entry_written_in_a_dropped_transaction_is_not_kept() {
        let store = SqliteStore::in_memory().await.unwrap();
        let acme = OrganizationId("acme".to_owned());
        {
            let mut transaction = store.begin().await.unwrap();
            transaction
                .insert_organization(&OrganizationRecord::ready(
                    acme.clone(),
                    Timestamp::from_microsecond(1).unwrap(),
                ))
                .await
                .unwrap();
            transaction
                .insert_audit_entry(&entry("acme", None, 10))
                .await
                .unwrap();
        }
        assert!(
            store
                .audit_records(&acme, None, 0, None)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
