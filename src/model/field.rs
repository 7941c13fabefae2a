//! The registry of the fields envform manages on an environment: one entry per field says its
//! wire name and how every layer treats it (cleared when removed from the file, clearable with
//! `env update --clear`, nameable in `ignore_changes`, secret values beneath it). The desired-file
//! keys, the `ignore_changes` paths, the CLI's `--clear` values, the diff's redaction and the
//! payload setters all read this table, so adding a field starts with one entry here.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A top-level environment field that envform manages (server-managed fields never diff).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedField {
    /// `display_name`.
    DisplayName,
    /// `description`.
    Description,
    /// `status` (`active` or `inactive`).
    Status,
    /// `configuration`.
    Configuration,
    /// `metadata`.
    Metadata,
    /// `tags`.
    Tags,
    /// `settings`.
    Settings,
    /// `execution_environment` (its `env_vars` values are secret).
    ExecutionEnvironment,
}

/// How the layers treat one managed field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field.
    pub field: ManagedField,
    /// Its name on the wire, in the file and in plans.
    pub wire_name: &'static str,
    /// Whether removing it from the file clears it live (`status` goes back to the service).
    pub clears_when_removed: bool,
    /// Whether `env update --clear` may clear it.
    pub clearable: bool,
    /// Whether `lifecycle.ignore_changes` may name it.
    pub ignorable: bool,
    /// The key beneath the field whose map values are secrets (digested, never shown).
    pub secret_values_under: Option<&'static str>,
}

impl FieldSpec {
    /// An ordinary field: cleared when removed, clearable, ignorable, nothing secret.
    const fn plain(field: ManagedField, wire_name: &'static str) -> Self {
        Self {
            field,
            wire_name,
            clears_when_removed: true,
            clearable: true,
            ignorable: true,
            secret_values_under: None,
        }
    }
}

/// The registry, in display order.
const REGISTRY: [FieldSpec; 8] = [
    FieldSpec::plain(ManagedField::DisplayName, "display_name"),
    FieldSpec::plain(ManagedField::Description, "description"),
    FieldSpec {
        clears_when_removed: false,
        clearable: false,
        ..FieldSpec::plain(ManagedField::Status, "status")
    },
    FieldSpec::plain(ManagedField::Configuration, "configuration"),
    FieldSpec::plain(ManagedField::Metadata, "metadata"),
    FieldSpec::plain(ManagedField::Tags, "tags"),
    FieldSpec::plain(ManagedField::Settings, "settings"),
    FieldSpec {
        secret_values_under: Some("env_vars"),
        ..FieldSpec::plain(ManagedField::ExecutionEnvironment, "execution_environment")
    },
];

impl ManagedField {
    /// Every managed field, in display order.
    pub const ALL: [ManagedField; 8] = {
        let mut all = [ManagedField::DisplayName; 8];
        let mut index = 0;
        while index < REGISTRY.len() {
            all[index] = REGISTRY[index].field;
            index += 1;
        }
        all
    };

    /// The registry entry of every field, in display order.
    pub fn registry() -> &'static [FieldSpec] {
        &REGISTRY
    }

    /// This field's registry entry.
    pub fn spec(self) -> &'static FieldSpec {
        // The registry lists the variants in declaration order; a unit test keeps it so.
        &REGISTRY[self as usize]
    }

    /// The field's name on the wire and in the file.
    pub fn wire_name(self) -> &'static str {
        self.spec().wire_name
    }

    /// The field with this wire name.
    pub fn from_wire_name(name: &str) -> Option<Self> {
        REGISTRY
            .iter()
            .find(|spec| spec.wire_name == name)
            .map(|spec| spec.field)
    }

    /// Whether removing the field from the file clears it live. `status` cannot be cleared:
    /// removing it hands the status back to the service.
    pub fn clears_when_removed(self) -> bool {
        self.spec().clears_when_removed
    }

    /// The wire names of the fields that satisfy `keep`, in display order.
    pub fn wire_names(keep: impl Fn(&FieldSpec) -> bool) -> Vec<&'static str> {
        REGISTRY
            .iter()
            .filter(|spec| keep(spec))
            .map(|spec| spec.wire_name)
            .collect()
    }

    /// Whether the value at `path` (field wire name, then keys) is secret: each value of the
    /// map a field's [`FieldSpec::secret_values_under`] names.
    pub fn is_sensitive_path(path: &[String]) -> bool {
        match path {
            [field, map, _] => Self::secret_map(field) == Some(map.as_str()),
            _ => false,
        }
    }

    /// Whether `path` holds secrets somewhere beneath it (displays never print such a value whole).
    pub fn contains_sensitive(path: &[String]) -> bool {
        match path {
            [field] => Self::secret_map(field).is_some(),
            [field, map] => Self::secret_map(field) == Some(map.as_str()),
            _ => Self::is_sensitive_path(path),
        }
    }

    fn secret_map(wire_name: &str) -> Option<&'static str> {
        Self::from_wire_name(wire_name).and_then(|field| field.spec().secret_values_under)
    }
}

impl fmt::Display for ManagedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.wire_name())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn registry_is_in_declaration_order() {
        for (index, spec) in REGISTRY.iter().enumerate() {
            assert_eq!(spec.field as usize, index, "{}", spec.wire_name);
            assert_eq!(ManagedField::ALL[index], spec.field);
        }
    }

    #[test]
    fn wire_names_round_trip_and_match_serde() {
        for field in ManagedField::ALL {
            assert_eq!(ManagedField::from_wire_name(field.wire_name()), Some(field));
            assert_eq!(
                serde_json::to_value(field).ok(),
                Some(Value::String(field.wire_name().to_owned()))
            );
        }
        assert_eq!(ManagedField::from_wire_name("id"), None);
    }

    #[test]
    fn only_env_var_values_are_sensitive() {
        let path = |parts: &[&str]| parts.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        assert!(ManagedField::is_sensitive_path(&path(&[
            "execution_environment",
            "env_vars",
            "X"
        ])));
        assert!(!ManagedField::is_sensitive_path(&path(&[
            "execution_environment",
            "secrets"
        ])));
        assert!(!ManagedField::is_sensitive_path(&path(&[
            "metadata", "env_vars", "X"
        ])));
        assert!(ManagedField::contains_sensitive(&path(&[
            "execution_environment"
        ])));
        assert!(!ManagedField::contains_sensitive(&path(&["metadata"])));
    }

    #[test]
    fn status_is_neither_cleared_nor_clearable() {
        assert!(!ManagedField::Status.clears_when_removed());
        assert_eq!(
            ManagedField::wire_names(|spec| !spec.clearable),
            vec!["status"]
        );
    }
}
