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

/// A set of managed fields, one bit each: what a step leaves unchanged, held without an allocation
/// (a plan holds a step per environment). Iterated, serialized and shown in display order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldSet(u16);

impl FieldSet {
    /// Adds `field`.
    pub fn insert(&mut self, field: ManagedField) {
        self.0 |= Self::bit(field);
    }

    /// Whether `field` is in the set.
    pub fn contains(self, field: ManagedField) -> bool {
        self.0 & Self::bit(field) != 0
    }

    /// How many fields are in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fields, in display order.
    pub fn iter(self) -> impl Iterator<Item = ManagedField> {
        ManagedField::ALL
            .into_iter()
            .filter(move |field| self.contains(*field))
    }

    fn bit(field: ManagedField) -> u16 {
        1 << (field as u16)
    }
}

impl FromIterator<ManagedField> for FieldSet {
    fn from_iter<I: IntoIterator<Item = ManagedField>>(fields: I) -> Self {
        let mut set = Self::default();
        for field in fields {
            set.insert(field);
        }
        set
    }
}

/// Written as the list of its fields' wire names, as a list of fields always was.
impl Serialize for FieldSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for FieldSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<ManagedField>::deserialize(deserializer)?
            .into_iter()
            .collect())
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
    fn a_field_set_holds_each_field_once_in_display_order() {
        let mut set = FieldSet::default();
        assert!(set.is_empty());
        for field in ManagedField::ALL.into_iter().rev() {
            set.insert(field);
            set.insert(field);
        }
        assert_eq!(set.len(), ManagedField::ALL.len());
        assert!(set.iter().eq(ManagedField::ALL));
        let some: FieldSet = [ManagedField::Tags, ManagedField::DisplayName]
            .into_iter()
            .collect();
        let written = serde_json::to_string(&some).expect("serializes");
        assert_eq!(written, r#"["display_name","tags"]"#);
        let read: FieldSet = serde_json::from_str(&written).expect("reads");
        assert_eq!(read, some);
        assert!(!read.contains(ManagedField::Status));
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
