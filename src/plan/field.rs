//! The fields envform manages on an environment, their wire names, and how each is read from the
//! desired file and from live as a JSON value with every secret replaced by its digest. Plans,
//! drift and state only ever see these digested values, so no secret can leak through them.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::Environment;
use crate::desired::DesiredFields;
use crate::model::{ExecutionEnvironment, ManagedField, OWNER_KEY, Owner};

/// The prefix of a secret's digest, as stored in plans and state.
pub const DIGEST_PREFIX: &str = "sha256:";

impl ManagedField {
    /// The value the file asks for (secrets digested); `None` when the file does not say.
    pub(crate) fn desired_value(self, fields: &DesiredFields) -> Option<Value> {
        match self {
            ManagedField::DisplayName => fields.display_name.clone().map(Value::String),
            ManagedField::Description => fields.description.clone().map(Value::String),
            ManagedField::Status => fields
                .status
                .map(|status| Value::String(status.as_str().to_owned())),
            ManagedField::Configuration => fields.configuration.clone().map(Value::Object),
            ManagedField::Metadata => fields.metadata.clone().map(Value::Object),
            ManagedField::Tags => fields.tags.as_deref().map(string_array),
            ManagedField::Settings => fields.settings.clone().map(Value::Object),
            ManagedField::ExecutionEnvironment => fields
                .execution_environment
                .as_ref()
                .map(|execution| digested_execution_environment(execution, &fields.nonsensitive)),
        }
    }

    /// The value live has (secrets digested, but for the `revealed` `env_vars` keys); `None`
    /// when absent or null.
    pub(crate) fn live_value(
        self,
        environment: &Environment,
        revealed: &BTreeSet<String>,
    ) -> Option<Value> {
        self.live_value_as_sent(environment, revealed)
            .filter(|value| !is_empty_collection(value))
    }

    /// [`Self::live_value`] before an empty collection is taken for an absent one.
    fn live_value_as_sent(
        self,
        environment: &Environment,
        revealed: &BTreeSet<String>,
    ) -> Option<Value> {
        match self {
            ManagedField::DisplayName => environment.display_name.clone().map(Value::String),
            ManagedField::Description => environment.description.clone().map(Value::String),
            ManagedField::Status => Some(Value::String(environment.status.as_str().to_owned())),
            ManagedField::Configuration => environment.configuration.clone().map(Value::Object),
            ManagedField::Metadata => environment.metadata.clone().map(Value::Object),
            ManagedField::Tags => environment.tags.as_deref().map(string_array),
            // The ownership stamp is envform's bookkeeping, not a value a configuration sets.
            ManagedField::Settings => {
                Owner::unstamped(environment.settings.as_ref()).map(Value::Object)
            }
            ManagedField::ExecutionEnvironment => environment
                .execution_environment
                .as_ref()
                .map(|execution| digested_execution_environment(execution, revealed)),
        }
    }

    /// Whether live's value is `value`: [`Self::live_value`] compared, without copying live.
    pub(crate) fn live_equals(
        self,
        environment: &Environment,
        value: Option<&Value>,
        revealed: &BTreeSet<String>,
    ) -> bool {
        // The service writes an absent collection as `[]`/`{}`: the two are one value.
        let value = value.filter(|value| !is_empty_collection(value));
        match self {
            ManagedField::DisplayName => same_text(environment.display_name.as_deref(), value),
            ManagedField::Description => same_text(environment.description.as_deref(), value),
            ManagedField::Status => same_text(Some(environment.status.as_str()), value),
            ManagedField::Configuration => same_object(environment.configuration.as_ref(), value),
            ManagedField::Metadata => same_object(environment.metadata.as_ref(), value),
            ManagedField::Settings => same_settings(environment.settings.as_ref(), value),
            ManagedField::Tags | ManagedField::ExecutionEnvironment => {
                self.live_value(environment, revealed).as_ref() == value
            }
        }
    }
}

fn same_text(live: Option<&str>, value: Option<&Value>) -> bool {
    match (live, value) {
        (None, None) => true,
        (Some(live), Some(Value::String(value))) => live == value,
        _ => false,
    }
}

/// [`same_object`] for `settings`, whose ownership stamp is not compared (nor copied).
fn same_settings(live: Option<&Map<String, Value>>, value: Option<&Value>) -> bool {
    let Some(live) = live else {
        return value.is_none();
    };
    let compared = live.len() - usize::from(live.contains_key(OWNER_KEY));
    match value {
        None => compared == 0,
        Some(Value::Object(value)) => {
            value.len() == compared
                && value
                    .iter()
                    .all(|(key, value)| key != OWNER_KEY && live.get(key) == Some(value))
        }
        Some(_) => false,
    }
}

/// Whether `value` is `[]` or `{}`, which the service answers for an absent collection.
pub(crate) fn is_empty_collection(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn same_object(live: Option<&Map<String, Value>>, value: Option<&Value>) -> bool {
    match (live.filter(|live| !live.is_empty()), value) {
        (None, None) => true,
        (Some(live), Some(Value::Object(value))) => live == value,
        _ => false,
    }
}

/// The digest that stands in for a secret value: `sha256:` and the hex SHA-256 of its JSON text.
pub fn secret_digest(value: &Value) -> String {
    let hash = Sha256::digest(value.to_string().as_bytes());
    format!("{DIGEST_PREFIX}{}", hex::encode(hash))
}

/// An execution environment as a JSON value, each `env_vars` value replaced by its digest but for
/// the `revealed` keys (`nonsensitive` in the file). Built by hand to mirror the wire form (empty
/// parts omitted) without a fallible serialization.
pub(crate) fn digested_execution_environment(
    execution: &ExecutionEnvironment,
    revealed: &BTreeSet<String>,
) -> Value {
    let mut object = Map::new();
    if !execution.env_vars.is_empty() {
        let vars = execution
            .env_vars
            .iter()
            .map(|(key, value)| {
                let shown = if revealed.contains(key) {
                    value.clone()
                } else {
                    Value::String(secret_digest(value))
                };
                (key.clone(), shown)
            })
            .collect();
        object.insert("env_vars".to_owned(), Value::Object(vars));
    }
    if !execution.secrets.is_empty() {
        object.insert("secrets".to_owned(), string_array(&execution.secrets));
    }
    if !execution.integration_ids.is_empty() {
        object.insert(
            "integration_ids".to_owned(),
            string_array(&execution.integration_ids),
        );
    }
    if !execution.mcp_servers.is_empty() {
        object.insert(
            "mcp_servers".to_owned(),
            Value::Object(execution.mcp_servers.clone()),
        );
    }
    Value::Object(object)
}

fn string_array(items: &[String]) -> Value {
    Value::Array(items.iter().cloned().map(Value::String).collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn live_equals_agrees_with_live_value() {
        let environment: Environment = serde_json::from_value(json!({
            "id": "0b5c4f0e-3c1a-4a57-9d0e-4f6e8f1a2b3c",
            "name": "prod",
            "display_name": "Production",
            "status": "active",
            "configuration": {"max_workers": 3},
            "metadata": {"team": "a"},
            "tags": ["x"],
            "execution_environment": {"env_vars": {"K": "v"}}
        }))
        .expect("environment");
        let other = json!({"team": "b"});
        let none = BTreeSet::new();
        for field in ManagedField::ALL {
            let live = field.live_value(&environment, &none);
            assert!(
                field.live_equals(&environment, live.as_ref(), &none),
                "{field}"
            );
            assert!(
                !field.live_equals(&environment, Some(&other), &none),
                "{field}"
            );
            assert_eq!(
                field.live_equals(&environment, None, &none),
                live.is_none(),
                "{field}"
            );
        }
    }

    #[test]
    fn env_var_values_are_digested_and_nothing_else() {
        let mut execution = ExecutionEnvironment::default();
        execution
            .env_vars
            .insert("API_KEY".to_owned(), json!("hunter2"));
        execution.secrets.push("vault-secret".to_owned());
        let value = digested_execution_environment(&execution, &BTreeSet::new());
        let text = value.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("vault-secret"));
        assert_eq!(
            value["env_vars"]["API_KEY"],
            json!(secret_digest(&json!("hunter2")))
        );
        assert!(secret_digest(&json!("hunter2")).starts_with("sha256:"));
        assert_ne!(secret_digest(&json!("1")), secret_digest(&json!(1)));
    }
}
