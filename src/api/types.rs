//! Wire types of the Environments API (docs/src/concepts/service.md). Unknown fields are ignored and absent ones are
//! optional, so the SDK keeps working against a service that grows new fields.

use std::fmt;

use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::model::{
    EnvironmentId, ExecutionEnvironment, JsonMap, ManagedField, OrganizationId, Status,
    UnknownStatus,
};

/// The shape of `configuration` in a request, for the API description: the two known keys are
/// integers of at least 1 (or `null`, not set); any other key is kept as given.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Configuration {
    /// How many workers the environment's pool takes.
    #[schema(minimum = 1)]
    max_workers: Option<i64>,
    /// How long one task may run, in seconds.
    #[schema(minimum = 1)]
    timeout_seconds: Option<i64>,
}

/// An environment as the service returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Environment {
    /// Service-assigned identifier.
    pub id: EnvironmentId,
    /// The owning organization.
    #[serde(default)]
    pub organization_id: Option<OrganizationId>,
    /// Unique name within the organization.
    pub name: String,
    /// Human-facing name; defaults to `name`.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Free-form description.
    #[serde(default)]
    pub description: Option<String>,
    /// Lifecycle status.
    pub status: Status,
    /// The status a change asked for while the namespace is still provisioning: `status` says
    /// `provisioning` until then, and this one is taken when provisioning ends. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_status: Option<Status>,
    /// Known keys `max_workers` and `timeout_seconds`; others are kept as given. Written `{}`
    /// when absent (as every collection here), read from `null` too.
    #[serde(
        default,
        serialize_with = "super::wire::object_or_empty",
        deserialize_with = "crate::model::compact_object"
    )]
    #[schema(value_type = Option<Object>)]
    pub configuration: Option<JsonMap>,
    /// Free-form metadata.
    #[serde(
        default,
        serialize_with = "super::wire::object_or_empty",
        deserialize_with = "crate::model::compact_object"
    )]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    /// Tags.
    #[serde(default, serialize_with = "super::wire::list_or_empty")]
    pub tags: Option<Vec<String>>,
    /// Free-form settings.
    #[serde(
        default,
        serialize_with = "super::wire::object_or_empty",
        deserialize_with = "crate::model::compact_object"
    )]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<JsonMap>,
    /// Worker execution environment.
    // Boxed: rarely set, and four collections wide. `{}` is read as absent, which is how an
    // absent one is written.
    #[serde(
        default,
        serialize_with = "super::wire::object_or_empty",
        deserialize_with = "super::wire::present_execution"
    )]
    pub execution_environment: Option<Box<ExecutionEnvironment>>,
    /// The organization's Temporal namespace.
    #[serde(default)]
    pub temporal_namespace: Option<String>,
    /// The Temporal namespace's identifier.
    #[serde(default)]
    pub temporal_namespace_id: Option<String>,
    /// The provisioning workflow's identifier.
    #[serde(default)]
    pub provisioning_workflow_id: Option<String>,
    /// When provisioning finished.
    #[serde(default, serialize_with = "super::wire::optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub provisioned_at: Option<Timestamp>,
    /// Why provisioning failed, when `status` is `error`.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Registered workers that are alive.
    #[serde(default)]
    pub active_workers: Option<u32>,
    /// Alive workers with no task.
    #[serde(default)]
    pub idle_workers: Option<u32>,
    /// Alive workers running a task.
    #[serde(default)]
    pub busy_workers: Option<u32>,
    /// Creation time.
    #[serde(default, serialize_with = "super::wire::optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub created_at: Option<Timestamp>,
    /// Last modification time; a saved plan records it to detect concurrent changes.
    #[serde(default, serialize_with = "super::wire::optional_timestamp")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub updated_at: Option<Timestamp>,
    /// Who created the environment.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// The body of a create call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEnvironment {
    /// Unique name within the organization (2–100 characters).
    #[schema(
        min_length = 2,
        max_length = 100,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff](?:[^\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$"
    )]
    pub name: String,
    /// Human-facing name; defaults to `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = "^$|^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff](?:[^\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$"
    )]
    pub display_name: Option<String>,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `active` (default) or `inactive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // Not nullable: `null` is refused (422); leaving it out gives the default.
    #[schema(value_type = String, pattern = "^(active|inactive)$")]
    pub status: Option<Status>,
    /// Environment configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Configuration>)]
    pub configuration: Option<JsonMap>,
    /// Free-form metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<JsonMap>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Free-form settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<JsonMap>,
    /// Worker execution environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_environment: Option<ExecutionEnvironment>,
}

impl CreateEnvironment {
    /// A create payload with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// One field of a partial update: leave it alone, clear it, or set it.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Patch<T> {
    /// Not sent: the stored value is untouched.
    #[default]
    Unchanged,
    /// Sent as `null`: the stored value is cleared.
    Clear,
    /// Sent with a value that replaces the stored one whole.
    Set(T),
}

impl<T> Patch<T> {
    /// Whether the field is left alone.
    pub fn is_unchanged(&self) -> bool {
        matches!(self, Patch::Unchanged)
    }

    /// `Set(value)` for `Some`, `Clear` for `None`.
    pub fn from_option(value: Option<T>) -> Self {
        value.map_or(Patch::Clear, Patch::Set)
    }
}

impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            // Skipped by `skip_serializing_if`; serializing it anyway means "no change" = null is wrong,
            // so it is written as null only when a caller bypasses the skip.
            Patch::Unchanged | Patch::Clear => serializer.serialize_none(),
            Patch::Set(value) => value.serialize(serializer),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Reached only when the key is present (absent keys take the `Default`, `Unchanged`).
        Ok(Patch::from_option(Option::<T>::deserialize(deserializer)?))
    }
}

/// The body of a partial update: each field sent replaces the stored value whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEnvironment {
    /// New name (cannot be cleared).
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = String, min_length = 2, max_length = 100, pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff](?:[^\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$")]
    pub name: Patch<String>,
    /// New display name.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<String>, pattern = "^$|^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff](?:[^\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u00ad\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$")]
    pub display_name: Patch<String>,
    /// New description.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    /// New status (`active` or `inactive`; cannot be cleared).
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = String, pattern = "^(active|inactive)$")]
    pub status: Patch<Status>,
    /// New configuration.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<Configuration>)]
    pub configuration: Patch<JsonMap>,
    /// New metadata.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Patch<JsonMap>,
    /// New tags.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Patch<Vec<String>>,
    /// New settings.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<Object>)]
    pub settings: Patch<JsonMap>,
    /// New execution environment.
    #[serde(default, skip_serializing_if = "Patch::is_unchanged")]
    #[schema(value_type = Option<ExecutionEnvironment>)]
    pub execution_environment: Patch<ExecutionEnvironment>,
}

impl UpdateEnvironment {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Sends `null` for `field`; a field the registry marks as not clearable (`status`) is left
    /// alone, since the service owns its value once the file stops saying it.
    pub fn clear(&mut self, field: ManagedField) {
        if !field.spec().clearable {
            return;
        }
        match field {
            ManagedField::DisplayName => self.display_name = Patch::Clear,
            ManagedField::Description => self.description = Patch::Clear,
            ManagedField::Status => {}
            ManagedField::Configuration => self.configuration = Patch::Clear,
            ManagedField::Metadata => self.metadata = Patch::Clear,
            ManagedField::Tags => self.tags = Patch::Clear,
            ManagedField::Settings => self.settings = Patch::Clear,
            ManagedField::ExecutionEnvironment => self.execution_environment = Patch::Clear,
        }
    }
}

/// A worker authentication token: a secret, never printed by `Debug` or logs.
#[derive(Clone)]
pub struct WorkerToken(SecretString);

impl WorkerToken {
    /// Wraps a token string.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token itself, for the one place that must send or show it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The token with all but its first four characters masked.
    pub fn masked(&self) -> String {
        let token = self.expose();
        let shown: String = token.chars().take(4).collect();
        format!("{shown}…(masked)")
    }
}

impl fmt::Debug for WorkerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WorkerToken(<redacted>)")
    }
}

impl PartialEq for WorkerToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Serialize for WorkerToken {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for WorkerToken {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(WorkerToken::new)
    }
}

/// A worker command split as the production service splits it: `{"binary": "kubiya",
/// "subcommand": "worker start", "flags": {"--token": "…", "--environment": "staging"}}`.
/// Leading `NAME=value` environment assignments (how envform's default command passes the
/// token) are not parts: the token is the answer's `worker_token`.
#[derive(Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CommandParts {
    /// The program.
    pub binary: String,
    /// The words after the program up to the first flag, space-separated.
    pub subcommand: String,
    /// Each `--flag` with its value (`true` for a flag without one), in command order.
    #[schema(value_type = Object)]
    pub flags: JsonMap,
}

impl CommandParts {
    /// Splits an argument vector (values unquoted) into binary, subcommand and flags.
    pub fn from_words<I: IntoIterator<Item = String>>(words: I) -> Self {
        let mut words = words
            .into_iter()
            .skip_while(|word| is_assignment(word))
            .peekable();
        let binary = words.next().unwrap_or_default();
        let mut subcommand = Vec::new();
        while let Some(word) = words.next_if(|word| !word.starts_with('-')) {
            subcommand.push(word);
        }
        let mut flags = JsonMap::new();
        while let Some(word) = words.next() {
            if let Some((flag, value)) = word.split_once('=').filter(|_| word.starts_with("--")) {
                flags.insert(flag.to_owned(), value.into());
            } else if let Some(value) = words.next_if(|next| !next.starts_with('-')) {
                flags.insert(word, value.into());
            } else {
                flags.insert(word, true.into());
            }
        }
        Self {
            binary,
            subcommand: subcommand.join(" "),
            flags,
        }
    }

    /// These parts with every flag value equal to `token` masked as [`WorkerToken::masked`] does.
    pub fn masked(&self, token: &WorkerToken) -> Self {
        let mut parts = self.clone();
        for value in parts.flags.values_mut() {
            if value.as_str() == Some(token.expose()) {
                *value = token.masked().into();
            }
        }
        parts
    }
}

/// `NAME=value` with an upper-case shell variable name.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    })
}

impl fmt::Debug for CommandParts {
    // Flag values may hold the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandParts")
            .field("binary", &self.binary)
            .field("subcommand", &self.subcommand)
            .field("flags", &self.flags.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'de> Deserialize<'de> for CommandParts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Every shape `command_parts` has had: the production object, envform's older argument
        /// vector, and `null`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Object {
                #[serde(default)]
                binary: Option<String>,
                #[serde(default)]
                subcommand: Option<String>,
                #[serde(default)]
                flags: Option<JsonMap>,
            },
            Words(Vec<String>),
        }
        Ok(match Option::<Shape>::deserialize(deserializer)? {
            None => Self::default(),
            Some(Shape::Words(words)) => Self::from_words(words),
            Some(Shape::Object {
                binary,
                subcommand,
                flags,
            }) => Self {
                binary: binary.unwrap_or_default(),
                subcommand: subcommand.unwrap_or_default(),
                flags: flags.unwrap_or_default(),
            },
        })
    }
}

/// The command workers run to register with an environment.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkerCommand {
    /// The full command line, token included (as an environment variable with envform's
    /// default command, which keeps it off the worker's argument vector).
    pub command: String,
    /// The worker authentication token.
    #[schema(value_type = String)]
    pub worker_token: WorkerToken,
    /// The organization's Temporal namespace.
    #[serde(default)]
    pub temporal_namespace: Option<String>,
    /// The environment's name.
    pub environment_name: String,
    /// The command's parts: binary, subcommand and flags.
    #[serde(default)]
    pub command_parts: CommandParts,
    /// The environment's status (the production service's meaning of the name).
    #[serde(default)]
    pub namespace_status: Option<String>,
    /// Whether workers can register now (the environment is `ready` or `active`).
    #[serde(default)]
    pub can_register: bool,
    /// The provisioning workflow's identifier.
    #[serde(default)]
    pub provisioning_workflow_id: Option<String>,
}

impl fmt::Debug for WorkerCommand {
    // `command` and `command_parts` may hold the token: show them masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerCommand")
            .field("command", &self.masked_command())
            .field("worker_token", &self.worker_token)
            .field("temporal_namespace", &self.temporal_namespace)
            .field("environment_name", &self.environment_name)
            .field("command_parts", &self.command_parts)
            .field("namespace_status", &self.namespace_status)
            .field("can_register", &self.can_register)
            .field("provisioning_workflow_id", &self.provisioning_workflow_id)
            .finish_non_exhaustive()
    }
}

impl WorkerCommand {
    /// The command line with the token masked, for display.
    pub fn masked_command(&self) -> String {
        self.command
            .replace(self.worker_token.expose(), &self.worker_token.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_command_debug_never_shows_the_token() {
        let token = "efw_0123456789abcdef0123456789abcdef";
        let command = WorkerCommand {
            command: format!("envform worker start --token {token} --environment prod"),
            worker_token: WorkerToken::new(token),
            temporal_namespace: None,
            environment_name: "prod".into(),
            command_parts: CommandParts::from_words(["w", "--token", token].map(String::from)),
            namespace_status: None,
            can_register: true,
            provisioning_workflow_id: None,
        };
        let debug = format!("{command:?}");
        assert!(!debug.contains(token), "{debug}");
        assert!(debug.contains("--environment prod"));
    }

    #[test]
    fn patch_distinguishes_absent_null_and_value() {
        let patch: UpdateEnvironment =
            serde_json::from_str(r#"{"description": null, "name": "x"}"#).unwrap();
        assert_eq!(patch.description, Patch::Clear);
        assert_eq!(patch.name, Patch::Set("x".into()));
        assert_eq!(patch.metadata, Patch::Unchanged);
        let body = serde_json::to_value(&patch).unwrap();
        assert_eq!(body, serde_json::json!({"name": "x", "description": null}));
    }

    #[test]
    fn unknown_fields_are_ignored_and_absent_ones_optional() {
        let environment: Environment = serde_json::from_str(
            r#"{"id":"550e8400-e29b-41d4-a716-446655440000","name":"p","status":"active","brand_new":1}"#,
        )
        .unwrap();
        assert_eq!(environment.name, "p");
        assert!(environment.configuration.is_none());
    }

    #[test]
    fn command_parts_read_every_shape_and_write_the_object() {
        let production = serde_json::json!({"binary": "kubiya", "subcommand": "worker start",
            "flags": {"--token": "t", "--environment": "staging"}});
        let parts: CommandParts = serde_json::from_value(production.clone()).unwrap();
        assert_eq!(serde_json::to_value(&parts).unwrap(), production);
        let older: CommandParts = serde_json::from_value(serde_json::json!([
            "kubiya",
            "worker",
            "start",
            "--token",
            "t",
            "--environment",
            "staging"
        ]))
        .unwrap();
        assert_eq!(older, parts);
        let none: CommandParts = serde_json::from_value(serde_json::Value::Null).unwrap();
        assert_eq!(none, CommandParts::default());
    }

    #[test]
    fn command_parts_skip_assignments_and_keep_flag_forms() {
        let parts = CommandParts::from_words(
            [
                "ENVFORM_WORKER_TOKEN=efw_x",
                "envform",
                "worker",
                "start",
                "--environment=it's prod",
                "--verbose",
                "--api-url",
                "http://h",
            ]
            .map(String::from),
        );
        assert_eq!(parts.binary, "envform");
        assert_eq!(parts.subcommand, "worker start");
        assert_eq!(
            serde_json::Value::Object(parts.flags),
            serde_json::json!({"--environment": "it's prod", "--verbose": true, "--api-url": "http://h"})
        );
    }

    #[test]
    fn environments_write_empty_collections_and_offset_timestamps() {
        let environment: Environment = serde_json::from_value(serde_json::json!({
            "id": "550e8400-e29b-41d4-a716-446655440000", "name": "p", "status": "active",
            "tags": null, "settings": null, "created_at": "2026-11-28T20:05:22.314074Z"
        }))
        .unwrap();
        let written = serde_json::to_value(&environment).unwrap();
        assert_eq!(written["tags"], serde_json::json!([]));
        for field in [
            "settings",
            "configuration",
            "metadata",
            "execution_environment",
        ] {
            assert_eq!(written[field], serde_json::json!({}), "{field}");
        }
        assert_eq!(written["created_at"], "2026-11-28T20:05:22.314074+00:00");
        assert!(written.get("requested_status").is_none());
        let read: Environment = serde_json::from_value(written).unwrap();
        assert_eq!(read.created_at, environment.created_at);
    }
}
