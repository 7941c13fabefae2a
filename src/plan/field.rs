//! The fields envform manages on an environment, their wire names, and how each is read from the
//! desired file and from live as a JSON value with every secret replaced by its digest. Plans,
//! drift and state only ever see these digested values, so no secret can leak through them.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::api::Environment;
use crate::desired::DesiredFields;
use crate::model::{DigestSalt, ExecutionEnvironment, JsonMap, ManagedField, OWNER_KEY, Owner};
use crate::state::State;

/// The prefix of a secret's digest, as stored in plans and state: HMAC-SHA256 keyed with the
/// state's salt.
pub const DIGEST_PREFIX: &str = "hmac-sha256:";

/// The prefix of an unsalted digest (plain SHA-256), as states written before digests were
/// salted hold; still recognised and compared.
pub const LEGACY_DIGEST_PREFIX: &str = "sha256:";

/// Whether `text` is a secret's digest, salted or not.
pub fn is_digest(text: &str) -> bool {
    text.starts_with(DIGEST_PREFIX) || text.starts_with(LEGACY_DIGEST_PREFIX)
}

/// How one state's secret values are digested: HMAC-SHA256 keyed with its salt, so the same
/// value digests alike in every run against that state and differently in any other state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretDigests {
    /// `None` for a state written before digests were salted, read as it is.
    salt: Option<DigestSalt>,
}

impl SecretDigests {
    /// Digests keyed with `salt`.
    pub fn keyed(salt: DigestSalt) -> Self {
        Self { salt: Some(salt) }
    }

    /// The digests of `state`: keyed with its salt (unsalted only for a state that has none).
    pub fn of(state: &State) -> Self {
        Self {
            salt: state.digest_salt,
        }
    }

    /// The digest that stands in for a secret value: `hmac-sha256:` and the hex HMAC-SHA256 of
    /// its JSON text, keyed with the salt.
    pub fn digest(&self, value: &Value) -> String {
        let Some(salt) = &self.salt else {
            return legacy_digest(value);
        };
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(salt.as_bytes()) else {
            return legacy_digest(value);
        };
        mac.update(value.to_string().as_bytes());
        format!(
            "{DIGEST_PREFIX}{}",
            hex::encode(mac.finalize().into_bytes())
        )
    }

    /// Whether `digest` stands for `value`: its salted digest, or the unsalted one a state
    /// written before digests were salted holds.
    pub fn matches(&self, value: &Value, digest: &str) -> bool {
        if digest.starts_with(DIGEST_PREFIX) {
            self.digest(value) == digest
        } else {
            digest.starts_with(LEGACY_DIGEST_PREFIX) && legacy_digest(value) == digest
        }
    }

    /// `applied` (a last-applied `execution_environment`) with each unsalted digest that stands
    /// for one of the `known` values of its key rewritten salted; `None` when there is none to
    /// rewrite. So a state written before digests were salted compares as if written now.
    pub(crate) fn upgraded(&self, applied: &Value, known: [Option<&JsonMap>; 2]) -> Option<Value> {
        self.salt?;
        let vars = applied.get("env_vars")?.as_object()?;
        let mut upgraded: Option<Map<String, Value>> = None;
        for (key, stored) in vars {
            let Some(stored) = stored
                .as_str()
                .filter(|text| text.starts_with(LEGACY_DIGEST_PREFIX))
            else {
                continue;
            };
            let found = known
                .iter()
                .flatten()
                .filter_map(|vars| vars.get(key))
                .find(|value| legacy_digest(value) == stored);
            if let Some(value) = found {
                upgraded
                    .get_or_insert_with(|| vars.clone())
                    .insert(key.clone(), Value::String(self.digest(value)));
            }
        }
        let mut whole = applied.clone();
        whole
            .as_object_mut()?
            .insert("env_vars".to_owned(), Value::Object(upgraded?));
        Some(whole)
    }
}

/// The unsalted digest of states written before digests were salted: `sha256:` and the hex
/// SHA-256 of the value's JSON text.
pub fn legacy_digest(value: &Value) -> String {
    let hash = Sha256::digest(value.to_string().as_bytes());
    format!("{LEGACY_DIGEST_PREFIX}{}", hex::encode(hash))
}

impl ManagedField {
    /// The value the file asks for (secrets digested); `None` when the file does not say.
    pub(crate) fn desired_value(
        self,
        fields: &DesiredFields,
        digests: SecretDigests,
    ) -> Option<Value> {
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
            ManagedField::ExecutionEnvironment => {
                fields.execution_environment.as_ref().map(|execution| {
                    digested_execution_environment(execution, &fields.nonsensitive, digests)
                })
            }
        }
    }

    /// The value live has (secrets digested, but for the `revealed` `env_vars` keys); `None`
    /// when absent or null.
    pub(crate) fn live_value(
        self,
        environment: &Environment,
        revealed: &BTreeSet<String>,
        digests: SecretDigests,
    ) -> Option<Value> {
        self.live_value_as_sent(environment, revealed, digests)
            .filter(|value| !is_empty_collection(value))
    }

    /// [`Self::live_value`] before an empty collection is taken for an absent one.
    fn live_value_as_sent(
        self,
        environment: &Environment,
        revealed: &BTreeSet<String>,
        digests: SecretDigests,
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
                .map(|execution| digested_execution_environment(execution, revealed, digests)),
        }
    }

    /// Whether live's value is `value`: [`Self::live_value`] compared, without copying live.
    pub(crate) fn live_equals(
        self,
        environment: &Environment,
        value: Option<&Value>,
        revealed: &BTreeSet<String>,
        digests: SecretDigests,
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
                self.live_value(environment, revealed, digests).as_ref() == value
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

/// An execution environment as a JSON value, each `env_vars` value replaced by its digest but for
/// the `revealed` keys (`nonsensitive` in the file). Built by hand to mirror the wire form (empty
/// parts omitted) without a fallible serialization.
pub(crate) fn digested_execution_environment(
    execution: &ExecutionEnvironment,
    revealed: &BTreeSet<String>,
    digests: SecretDigests,
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
                    Value::String(digests.digest(value))
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
        let digests = SecretDigests::keyed(DigestSalt::random());
        for field in ManagedField::ALL {
            let live = field.live_value(&environment, &none, digests);
            assert!(
                field.live_equals(&environment, live.as_ref(), &none, digests),
                "{field}"
            );
            assert!(
                !field.live_equals(&environment, Some(&other), &none, digests),
                "{field}"
            );
            assert_eq!(
                field.live_equals(&environment, None, &none, digests),
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
        let digests = SecretDigests::keyed(DigestSalt::random());
        let value = digested_execution_environment(&execution, &BTreeSet::new(), digests);
        let text = value.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("vault-secret"));
        assert_eq!(
            value["env_vars"]["API_KEY"],
            json!(digests.digest(&json!("hunter2")))
        );
        assert!(
            digests
                .digest(&json!("hunter2"))
                .starts_with("hmac-sha256:")
        );
        assert_ne!(digests.digest(&json!("1")), digests.digest(&json!(1)));
    }

    #[test]
    fn digests_are_stable_within_a_salt_and_differ_across_salts() {
        let value = json!("info");
        let salt = DigestSalt::random();
        let one = SecretDigests::keyed(salt);
        let again = SecretDigests::keyed(salt);
        let other = SecretDigests::keyed(DigestSalt::random());
        assert_eq!(one.digest(&value), again.digest(&value));
        assert_ne!(one.digest(&value), other.digest(&value));
        assert_ne!(one.digest(&value), one.digest(&json!("debug")));
        // Not the plain SHA-256 of the value, which anyone can compute from a guess.
        let plain = hex::encode(Sha256::digest(b"\"info\""));
        assert!(!one.digest(&value).contains(&plain));
        assert_eq!(legacy_digest(&value), format!("sha256:{plain}"));
        assert_eq!(one.digest(&value).len(), DIGEST_PREFIX.len() + 64);
        // The HMAC of the value's JSON text keyed with the salt (RFC 2104, as the `hmac` crate
        // computes it), not some other keyed construction.
        let mut mac = Hmac::<Sha256>::new_from_slice(salt.as_bytes()).expect("any key length");
        mac.update(b"\"info\"");
        assert_eq!(
            one.digest(&value),
            format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    #[test]
    fn unsalted_digests_are_still_recognised_and_upgraded() {
        let digests = SecretDigests::keyed(DigestSalt::random());
        let old = legacy_digest(&json!("info"));
        assert!(is_digest(&old) && is_digest(&digests.digest(&json!("info"))));
        assert!(!is_digest("info"));
        assert!(digests.matches(&json!("info"), &old));
        assert!(digests.matches(&json!("info"), &digests.digest(&json!("info"))));
        assert!(!digests.matches(&json!("debug"), &old));
        assert!(!digests.matches(&json!("info"), "info"));
        // Another state's salted digest is not this state's.
        let elsewhere = SecretDigests::keyed(DigestSalt::random()).digest(&json!("info"));
        assert!(!digests.matches(&json!("info"), &elsewhere));

        let applied = json!({
            "env_vars": {"LEVEL": old, "GONE": legacy_digest(&json!("x")), "SHOWN": "plain"},
            "secrets": ["s"]
        });
        let desired: JsonMap = [("LEVEL".to_owned(), json!("info"))].into_iter().collect();
        let upgraded = digests
            .upgraded(&applied, [Some(&desired), None])
            .expect("one to upgrade");
        assert_eq!(
            upgraded["env_vars"]["LEVEL"],
            json!(digests.digest(&json!("info")))
        );
        // A digest no known value stands for stays as it was: that value changed.
        assert_eq!(upgraded["env_vars"]["GONE"], applied["env_vars"]["GONE"]);
        assert_eq!(upgraded["env_vars"]["SHOWN"], json!("plain"));
        assert_eq!(upgraded["secrets"], json!(["s"]));
        assert!(
            digests
                .upgraded(&upgraded, [Some(&desired), None])
                .is_none()
        );
        // A state that has no salt compares as it always did.
        let unsalted = SecretDigests { salt: None };
        assert_eq!(unsalted.digest(&json!("info")), old);
        assert!(
            unsalted
                .upgraded(&applied, [Some(&desired), None])
                .is_none()
        );
    }
}
