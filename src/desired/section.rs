//! The keys each part of the file accepts: one list per mapping, used to reject unknown keys
//! and to suggest the closest valid one.

use std::sync::LazyLock;

use crate::model::{ExecutionEnvironment, ManagedField};

/// Top-level fields of an environment that `ignore_changes` may name, from the field registry.
pub(crate) static IGNORABLE_FIELDS: LazyLock<Vec<&'static str>> =
    LazyLock::new(|| ManagedField::wire_names(|spec| spec.ignorable));

/// Fields under `execution_environment`.
pub(crate) const EXECUTION_ENVIRONMENT_FIELDS: &[&str] = ExecutionEnvironment::KEYS;

/// A mapping of the file whose keys are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The top level of a file.
    TopLevel,
    /// An entry of `environments`.
    Environment,
    /// `defaults`.
    Defaults,
    /// `options`.
    Options,
    /// `options.delete_threshold` or `options.update_threshold`.
    Threshold,
    /// `options.scope`.
    Scope,
    /// `state` with `backend: local`.
    LocalState,
    /// `state` with `backend: http`.
    HttpState,
    /// `state` before its backend is known.
    State,
    /// `lifecycle`.
    Lifecycle,
    /// `execution_environment`.
    ExecutionEnvironment,
}

/// The keys of an environment: `name`, the managed fields of the registry, the keys that relate
/// environments, and `renamed_from` last, which `defaults` lacks with `name`.
static ENVIRONMENT_KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
    let mut keys = vec!["name"];
    keys.extend(ManagedField::wire_names(|_| true));
    keys.extend(["nonsensitive", "depends_on", "lifecycle", "renamed_from"]);
    keys
});

impl Section {
    /// The keys allowed here.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Section::TopLevel => &["version", "environments", "defaults", "options", "state"],
            Section::Environment => &ENVIRONMENT_KEYS,
            // Every key of an environment but its identity: `name` and `renamed_from`.
            Section::Defaults => &ENVIRONMENT_KEYS[1..ENVIRONMENT_KEYS.len() - 1],
            Section::Options => &[
                "prune",
                "adopt",
                "scope",
                "delete_threshold",
                "update_threshold",
            ],
            Section::Scope => &["name_prefix", "tags"],
            Section::Threshold => &["max_fraction", "min_existing"],
            Section::LocalState => &["backend", "path"],
            Section::HttpState => &[
                "backend",
                "address",
                "lock_address",
                "unlock_address",
                "lock_method",
                "unlock_method",
                "username",
            ],
            Section::State => &["backend"],
            Section::Lifecycle => &["prevent_destroy", "ignore_changes"],
            Section::ExecutionEnvironment => EXECUTION_ENVIRONMENT_FIELDS,
        }
    }

    /// Where it is, as messages say it: "unknown key `x` {description}".
    pub fn description(self) -> &'static str {
        match self {
            Section::TopLevel => "at the top level",
            Section::Environment => "in an environment",
            Section::Defaults => "in `defaults`",
            Section::Options => "in `options`",
            Section::Threshold => "in a threshold",
            Section::Scope => "in `options.scope`",
            Section::LocalState => "in `state` (local backend)",
            Section::HttpState => "in `state` (http backend)",
            Section::State => "in `state`",
            Section::Lifecycle => "in `lifecycle`",
            Section::ExecutionEnvironment => "in `execution_environment`",
        }
    }
}
