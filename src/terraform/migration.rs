//! Every `controlplane_environment` instance of a Terraform state as an environment: the fields
//! the provider keeps (its JSON-string attributes parsed), and `depends_on` from the instances'
//! `dependencies` where both ends are environments. Everything else in the state is listed as
//! skipped, with why.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::TerraformError;
use super::document::{Instance, ResourceMode, TerraformState, address_without_keys};
use crate::model::{EnvironmentId, ExecutionEnvironment, JsonMap, ManagedField};

/// The environment resource types of the Kubiya control-plane provider: `controlplane_` is its
/// name as `kubiya/control-plane`, `kubiya_control_plane_` the one its earlier releases used.
pub const ENVIRONMENT_TYPES: [&str; 2] = [
    "controlplane_environment",
    "kubiya_control_plane_environment",
];

/// What a Terraform state gives a migration.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The environment instances, sorted by name.
    pub environments: Vec<TerraformEnvironment>,
    /// Every other resource instance, in the state's order.
    pub skipped: Vec<SkippedResource>,
}

/// One `controlplane_environment` instance, as the desired-state file will say it.
#[derive(Debug, Clone, PartialEq)]
pub struct TerraformEnvironment {
    /// Its Terraform address, e.g. `module.regions["eu"].controlplane_environment.this`.
    pub address: String,
    /// Its resource type, one of [`ENVIRONMENT_TYPES`].
    pub resource_type: String,
    /// The live environment Terraform created.
    pub id: EnvironmentId,
    /// Its name: envform's identity.
    pub name: String,
    /// The managed fields Terraform's state claims, in display order; `execution_environment`
    /// without its `env_vars` (their values are secrets, and stay out of files).
    pub fields: Vec<(ManagedField, Value)>,
    /// The names of the `env_vars` Terraform's state holds (never their values).
    pub env_var_names: Vec<String>,
    /// The environments it depends on, by name, sorted.
    pub depends_on: Vec<String>,
}

/// A resource instance that is not migrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedResource {
    /// Its Terraform address.
    pub address: String,
    /// Its resource type.
    pub resource_type: String,
    /// Why.
    pub reason: SkipReason,
}

/// Why a resource instance is not migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// Not an environment of the Kubiya control-plane provider.
    OtherType,
    /// A data source: Terraform only reads it, so there is nothing to take over.
    DataSource,
    /// A deposed object: replaced already, and left for Terraform to destroy.
    Deposed,
}

impl Migration {
    /// The environments and the skipped instances of `state`; `file` names it in errors.
    pub fn from_state(state: &TerraformState, file: &str) -> Result<Self, TerraformError> {
        let mut environments = Vec::new();
        let mut skipped = Vec::new();
        // Configuration address (as `dependencies` name it) → the names of its instances.
        let mut by_resource: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut dependencies: Vec<Vec<String>> = Vec::new();
        for resource in &state.resources {
            let is_environment = ENVIRONMENT_TYPES.contains(&resource.resource_type.as_str());
            for instance in &resource.instances {
                let address = resource.instance_address(instance);
                let reason = match resource.mode {
                    ResourceMode::Data => Some(SkipReason::DataSource),
                    ResourceMode::Managed if !is_environment => Some(SkipReason::OtherType),
                    ResourceMode::Managed if instance.deposed.is_some() => {
                        Some(SkipReason::Deposed)
                    }
                    ResourceMode::Managed => None,
                };
                if let Some(reason) = reason {
                    skipped.push(SkippedResource {
                        address,
                        resource_type: resource.resource_type.clone(),
                        reason,
                    });
                    continue;
                }
                let mut environment = environment(instance, address, file)?;
                environment
                    .resource_type
                    .clone_from(&resource.resource_type);
                by_resource
                    .entry(address_without_keys(&resource.address()))
                    .or_default()
                    .push(environment.name.clone());
                dependencies.push(instance.dependencies.clone());
                environments.push(environment);
            }
        }
        for (environment, dependencies) in environments.iter_mut().zip(dependencies) {
            let names: BTreeSet<&String> = dependencies
                .iter()
                .filter_map(|dependency| by_resource.get(&address_without_keys(dependency)))
                .flatten()
                .filter(|name| **name != environment.name)
                .collect();
            environment.depends_on = names.into_iter().cloned().collect();
        }
        let mut by_id: BTreeMap<EnvironmentId, &str> = BTreeMap::new();
        for environment in &environments {
            if let Some(first) = by_id.insert(environment.id, &environment.address) {
                return Err(TerraformError::DuplicateId {
                    file: file.to_owned(),
                    id: environment.id.to_string(),
                    first: first.to_owned(),
                    second: environment.address.clone(),
                });
            }
        }
        environments.sort_by(|left, right| left.name.cmp(&right.name));
        for pair in environments.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(TerraformError::DuplicateName {
                    file: file.to_owned(),
                    name: pair[0].name.clone(),
                    first: pair[0].address.clone(),
                    second: pair[1].address.clone(),
                });
            }
        }
        Ok(Self {
            environments,
            skipped,
        })
    }
}

/// One environment instance's attributes, read as the provider stores them.
fn environment(
    instance: &Instance,
    address: String,
    file: &str,
) -> Result<TerraformEnvironment, TerraformError> {
    let attributes = Attributes {
        attributes: &instance.attributes,
        address: &address,
        file,
    };
    let id = attributes
        .text("id")?
        .ok_or_else(|| attributes.invalid("id", "is missing"))?;
    let id = id
        .parse::<EnvironmentId>()
        .map_err(|_| attributes.invalid("id", "is not an environment id (a UUID)"))?;
    let name = attributes
        .text("name")?
        .ok_or_else(|| attributes.invalid("name", "is missing"))?;
    let mut fields = Vec::new();
    let mut env_var_names = Vec::new();
    for field in ManagedField::ALL {
        let value = match field {
            ManagedField::DisplayName | ManagedField::Description => {
                attributes.text(field.wire_name())?.map(Value::String)
            }
            ManagedField::Tags => attributes.tags()?,
            ManagedField::Configuration | ManagedField::Metadata | ManagedField::Settings => {
                attributes.object(field.wire_name())?.map(Value::Object)
            }
            ManagedField::ExecutionEnvironment => {
                let Some(object) = attributes.object(field.wire_name())? else {
                    continue;
                };
                let mut execution: ExecutionEnvironment =
                    serde_json::from_value(Value::Object(object)).map_err(|error| {
                        attributes.invalid(
                            "execution_environment",
                            format!("is not an execution environment ({})", error_kind(&error)),
                        )
                    })?;
                env_var_names = execution.env_vars.keys().cloned().collect();
                execution.env_vars.clear();
                // Kept even when only `env_vars` were set (as `{}`): Terraform manages the field,
                // and the file then leaves the variables' values live.
                serde_json::to_value(&execution).ok().filter(|value| {
                    !env_var_names.is_empty()
                        || value.as_object().is_some_and(|object| !object.is_empty())
                })
            }
            // The provider's `status` is read-only: the service's own (and, as Terraform never
            // waits for provisioning, often stale), never something the configuration set.
            ManagedField::Status => None,
        };
        if let Some(value) = value {
            fields.push((field, value));
        }
    }
    Ok(TerraformEnvironment {
        address,
        resource_type: String::new(),
        id,
        name,
        fields,
        env_var_names,
        depends_on: Vec::new(),
    })
}

/// The attributes of one instance, read with errors that name it.
struct Attributes<'a> {
    attributes: &'a JsonMap,
    address: &'a str,
    file: &'a str,
}

impl Attributes<'_> {
    fn invalid(&self, attribute: &'static str, problem: impl Into<String>) -> TerraformError {
        TerraformError::InvalidAttribute {
            file: self.file.to_owned(),
            address: self.address.to_owned(),
            attribute,
            problem: problem.into(),
        }
    }

    /// A string attribute; `None` when absent, null or empty.
    fn text(&self, attribute: &'static str) -> Result<Option<String>, TerraformError> {
        match self.attributes.get(attribute) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => {
                Err(self.invalid(attribute, format!("is {}, not a string", kind(other))))
            }
        }
    }

    /// `tags`: a list (or set) of strings; `None` when absent, null or empty.
    fn tags(&self) -> Result<Option<Value>, TerraformError> {
        match self.attributes.get("tags") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(tags)) if tags.is_empty() => Ok(None),
            Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => {
                Ok(Some(Value::Array(tags.clone())))
            }
            Some(_) => Err(self.invalid("tags", "is not a list of strings")),
        }
    }

    /// An object attribute, stored by the provider as a JSON string (a JSON object is taken
    /// too); `None` when absent, null, empty or `{}`.
    fn object(&self, attribute: &'static str) -> Result<Option<JsonMap>, TerraformError> {
        let value = match self.attributes.get(attribute) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => return Ok(None),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|error| {
                self.invalid(
                    attribute,
                    format!("is a string that is not JSON ({})", error_kind(&error)),
                )
            })?,
            Some(other) => other.clone(),
        };
        match value {
            Value::Null => Ok(None),
            Value::Object(object) if object.is_empty() => Ok(None),
            Value::Object(object) => Ok(Some(object)),
            other => Err(self.invalid(
                attribute,
                format!("holds {}, not a JSON object", kind(&other)),
            )),
        }
    }
}

/// What a JSON error is about, without the text it quotes (the value may be secret).
fn error_kind(error: &serde_json::Error) -> String {
    format!(
        "{:?} error at line {} column {}",
        error.classify(),
        error.line(),
        error.column()
    )
    .to_lowercase()
}

/// A JSON value's kind, for messages that must not quote it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
