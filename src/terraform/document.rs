//! The Terraform state document, format version 4 (what Terraform 0.12 and later write): its
//! header and `resources[]`, each with `mode`, `type`, `name`, `module` and `instances[]` (with
//! `index_key`, `attributes` and `dependencies`). Everything else in it is ignored.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use serde::Deserialize;
use serde_json::Value;

use super::TerraformError;
use crate::model::JsonMap;

/// The one format version read.
const FORMAT_VERSION: u64 = 4;

/// A Terraform state, as far as a migration needs it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TerraformState {
    /// The format version (always 4 once parsed).
    pub version: u64,
    /// The Terraform version that wrote it.
    #[serde(default)]
    pub terraform_version: Option<String>,
    /// Incremented by Terraform on every write.
    #[serde(default)]
    pub serial: u64,
    /// The state's history.
    #[serde(default)]
    pub lineage: String,
    /// Every resource, in the document's order.
    #[serde(default)]
    pub resources: Vec<Resource>,
}

/// Whether a resource is managed by Terraform or only read (a data source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceMode {
    /// A `resource` block.
    Managed,
    /// A `data` block.
    Data,
}

/// One resource block (in one module instance), with its instances.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Resource {
    /// The module instance, e.g. `module.regions["eu"]`; `None` in the root module.
    #[serde(default)]
    pub module: Option<String>,
    /// Managed or data.
    pub mode: ResourceMode,
    /// The resource type, e.g. `controlplane_environment`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The block's name.
    pub name: String,
    /// Its instances (several with `count` or `for_each`).
    #[serde(default)]
    pub instances: Vec<Instance>,
}

/// One instance of a resource.
#[derive(Clone, PartialEq, Deserialize)]
pub struct Instance {
    /// The `count` index or `for_each` key; `None` for a single instance.
    #[serde(default)]
    pub index_key: Option<Value>,
    /// The provider's attributes.
    #[serde(default)]
    pub attributes: JsonMap,
    /// The resources it depends on, by configuration address (no instance keys).
    #[serde(default)]
    pub dependencies: Vec<String>,
    /// Set on an object `create_before_destroy` replaced and Terraform still has to destroy.
    #[serde(default)]
    pub deposed: Option<String>,
}

impl std::fmt::Debug for Instance {
    // Attribute values can be secrets (`execution_environment`'s `env_vars`): names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("index_key", &self.index_key)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .field("dependencies", &self.dependencies)
            .field("deposed", &self.deposed)
            .finish()
    }
}

/// Only the version, read first: other formats have other shapes, and deserve a clear refusal
/// rather than an error about a missing field.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    version: Option<Value>,
}

impl TerraformState {
    /// Parses a state document; `file` names it in errors. Refuses any format but 4.
    pub fn parse(text: &str, file: &str) -> Result<Self, TerraformError> {
        let invalid = |error: serde_json::Error| {
            let span =
                offset(text, error.line(), error.column()).map(|at| SourceSpan::from(at..at));
            TerraformError::InvalidDocument {
                file: file.to_owned(),
                message: error.to_string(),
                source_code: span.map(|_| Arc::new(NamedSource::new(file, text.to_owned()))),
                span,
            }
        };
        let header: Header = serde_json::from_str(text).map_err(invalid)?;
        match header.version {
            Some(Value::Number(number)) if number.as_u64() == Some(FORMAT_VERSION) => {}
            other => {
                return Err(TerraformError::UnsupportedVersion {
                    file: file.to_owned(),
                    version: other.map_or_else(|| "none".to_owned(), |value| value.to_string()),
                });
            }
        }
        serde_json::from_str(text).map_err(invalid)
    }
}

impl Resource {
    /// The resource's address without an instance key, e.g.
    /// `module.regions["eu"].controlplane_environment.this` or `data.controlplane_project.main`.
    pub fn address(&self) -> String {
        let mut address = String::new();
        if let Some(module) = self.module.as_deref().filter(|module| !module.is_empty()) {
            address.push_str(module);
            address.push('.');
        }
        if self.mode == ResourceMode::Data {
            address.push_str("data.");
        }
        address.push_str(&self.resource_type);
        address.push('.');
        address.push_str(&self.name);
        address
    }

    /// One instance's address: [`Resource::address`] and its key, as Terraform writes it
    /// (`[0]`, `["eu"]`), so that `terraform state rm` takes it as printed.
    pub fn instance_address(&self, instance: &Instance) -> String {
        let mut address = self.address();
        match &instance.index_key {
            None | Some(Value::Null) => {}
            Some(Value::String(key)) => {
                address.push('[');
                address.push_str(&Value::String(key.clone()).to_string());
                address.push(']');
            }
            Some(other) => {
                address.push('[');
                address.push_str(&other.to_string());
                address.push(']');
            }
        }
        address
    }
}

/// A resource address as the `dependencies` of an instance name it: module instance keys
/// removed (`module.regions["eu"].x.y` → `module.regions.x.y`).
pub fn address_without_keys(address: &str) -> String {
    let mut plain = String::with_capacity(address.len());
    let mut depth = 0_usize;
    let mut in_string = false;
    let mut escaped = false;
    for character in address.chars() {
        if depth > 0 {
            // Inside a key: skip it, minding quoted keys that contain brackets.
            match character {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '[' if !in_string => depth += 1,
                ']' if !in_string => depth -= 1,
                _ => {}
            }
            continue;
        }
        if character == '[' {
            depth = 1;
        } else {
            plain.push(character);
        }
    }
    plain
}

/// The byte offset of a 1-based line and column.
fn offset(text: &str, line: usize, column: usize) -> Option<usize> {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    Some((start + column.saturating_sub(1)).min(text.len()))
}
