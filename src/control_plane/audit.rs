//! The audit log's rules: which documents an entry holds and how they are redacted. Every change
//! (create, update, delete, token issue and rotation, worker registration) writes its entry in
//! the transaction of the change itself, so the log and the data never disagree.
//!
//! Redaction happens here, before anything reaches the store: `execution_environment.env_vars`
//! values become `(sensitive)` (or `(sensitive value changed)` where an update changed one), and
//! no token, digest or key is ever part of a document.

use serde_json::{Map, Value, json};

use super::internal;
use crate::api::{AuditAction, AuditEvent, EnvironmentError, OrganizationId};
use crate::store::{AuditEntry, AuditRecord, EnvironmentRecord, StoreTransaction};

/// What a redacted secret value is recorded as.
pub(crate) const SENSITIVE: &str = "(sensitive)";
/// What a secret value an update changed is recorded as.
pub(crate) const SENSITIVE_CHANGED: &str = "(sensitive value changed)";
/// The actor of changes the service makes itself (the `default` environment).
pub(crate) const SERVICE_ACTOR: &str = "envform";

/// The environment as the audit log records it: the fields users set, secrets redacted. With
/// `previous`, a secret whose value differs from the previous one says so.
pub(crate) fn environment_document(
    record: &EnvironmentRecord,
    previous: Option<&EnvironmentRecord>,
) -> Value {
    let mut document = Map::new();
    document.insert("name".to_owned(), json!(record.name));
    document.insert("display_name".to_owned(), json!(record.display_name));
    document.insert("description".to_owned(), json!(record.description));
    document.insert("status".to_owned(), json!(record.status));
    document.insert("configuration".to_owned(), json!(record.configuration));
    document.insert("metadata".to_owned(), json!(record.metadata));
    document.insert("tags".to_owned(), json!(record.tags));
    document.insert("settings".to_owned(), json!(record.settings));
    let execution = record.execution_environment.as_ref().map(|execution| {
        let previous_vars = previous
            .and_then(|previous| previous.execution_environment.as_ref())
            .map(|previous| &previous.env_vars);
        let env_vars: Map<String, Value> = execution
            .env_vars
            .iter()
            .map(|(name, value)| {
                let changed =
                    previous_vars.is_some_and(|vars| vars.get(name).is_none_or(|old| old != value));
                let shown = if changed {
                    SENSITIVE_CHANGED
                } else {
                    SENSITIVE
                };
                (name.clone(), json!(shown))
            })
            .collect();
        json!({
            "env_vars": env_vars,
            "secrets": execution.secrets,
            "integration_ids": execution.integration_ids,
            "mcp_servers": execution.mcp_servers,
        })
    });
    document.insert(
        "execution_environment".to_owned(),
        execution.unwrap_or(Value::Null),
    );
    Value::Object(document)
}

/// An entry about `environment`, made now.
pub(crate) fn entry(
    organization: &OrganizationId,
    actor: &str,
    action: AuditAction,
    environment: &EnvironmentRecord,
    before: Option<Value>,
    after: Option<Value>,
) -> AuditEntry {
    AuditEntry {
        organization_id: organization.clone(),
        environment_id: Some(environment.id),
        environment_name: Some(environment.name.clone()),
        actor: actor.to_owned(),
        action,
        at: super::clock::now(),
        before,
        after,
    }
}

/// Writes an entry in the caller's transaction.
pub(crate) async fn record(
    transaction: &mut dyn StoreTransaction,
    entry: &AuditEntry,
) -> Result<(), EnvironmentError> {
    transaction
        .insert_audit_entry(entry)
        .await
        .map(drop)
        .map_err(internal)
}

/// The wire form of a recorded entry.
pub(crate) fn to_event(record: AuditRecord) -> AuditEvent {
    let AuditRecord { id, entry } = record;
    AuditEvent {
        id,
        at: entry.at,
        actor: entry.actor,
        action: entry.action,
        environment_id: entry.environment_id,
        environment_name: entry.environment_name,
        before: entry.before,
        after: entry.after,
    }
}

/// Who a worker acts as in the log: the first 8 hex digits of its token's digest, which name
/// the token without revealing anything about it.
pub(crate) fn worker_actor(token_hash: &crate::store::WorkerTokenHash) -> String {
    let short: String = token_hash.0.chars().take(8).collect();
    format!("worker-token:{short}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    use crate::api::ExecutionEnvironment;

    fn record(env_vars: &[(&str, &str)]) -> EnvironmentRecord {
        let mut execution = ExecutionEnvironment::default();
        for (name, value) in env_vars {
            execution.env_vars.insert((*name).to_owned(), json!(value));
        }
        execution.secrets.push("db-password".to_owned());
        let at = Timestamp::from_microsecond(1).unwrap();
        EnvironmentRecord {
            display_name: Some("Prod".to_owned()),
            configuration: Some(json!({"max_workers": 2}).as_object().unwrap().clone()),
            execution_environment: Some(execution),
            ..EnvironmentRecord::new(OrganizationId("acme".to_owned()), "prod", at)
        }
    }

    #[test]
    fn secret_values_never_reach_the_document() {
        let before = record(&[("API_TOKEN", "hunter2-old"), ("REGION", "eu")]);
        let mut after = record(&[("API_TOKEN", "hunter2-new"), ("REGION", "eu"), ("NEW", "x")]);
        after.id = before.id;
        let created = environment_document(&before, None);
        let updated = environment_document(&after, Some(&before));
        let text = format!("{created}{updated}");
        for secret in ["hunter2-old", "hunter2-new", "\"eu\"", "\"x\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(
            created["execution_environment"]["env_vars"]["API_TOKEN"],
            SENSITIVE
        );
        assert_eq!(
            updated["execution_environment"]["env_vars"]["API_TOKEN"],
            SENSITIVE_CHANGED
        );
        assert_eq!(
            updated["execution_environment"]["env_vars"]["REGION"],
            SENSITIVE
        );
        assert_eq!(
            updated["execution_environment"]["env_vars"]["NEW"],
            SENSITIVE_CHANGED
        );
        // Names of secrets, and everything that is not a secret, are kept.
        assert_eq!(
            updated["execution_environment"]["secrets"],
            json!(["db-password"])
        );
        assert_eq!(updated["configuration"], json!({"max_workers": 2}));
        assert_eq!(updated["status"], json!("active"));
    }

    #[test]
    fn a_worker_is_named_by_a_short_digest() {
        let hash = crate::store::WorkerTokenHash("ab12cd34".repeat(8));
        assert_eq!(worker_actor(&hash), "worker-token:ab12cd34");
    }
}
