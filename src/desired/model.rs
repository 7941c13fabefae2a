//! The validated desired state: what the file asks for, with where each part was written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::source::{Location, Sources};
pub use crate::model::HttpBackendConfig;
use crate::model::{ExecutionEnvironment, JsonMap, Status};

/// The validated contents of the desired-state files.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// The environments, in file order.
    pub environments: Vec<DesiredEnvironment>,
    /// Top-level `options`.
    pub options: Options,
    /// Top-level `state` (backend configuration), if present.
    pub state: Option<StateBackendConfig>,
    /// Things worth fixing that do not make the files invalid (a near-miss key), in file order.
    pub warnings: Vec<super::SpecDiagnostic>,
    /// The files read.
    pub sources: Sources,
    /// SHA-256 of the files' paths and contents, hex; a saved plan records it.
    pub digest: String,
}

impl Desired {
    /// The environment with this name.
    pub fn environment(&self, name: &str) -> Option<&DesiredEnvironment> {
        self.environments
            .iter()
            .find(|environment| environment.name == name)
    }

    /// Each environment's name mapped to its index in [`Desired::environments`].
    pub fn name_index(&self) -> NameIndex {
        self.environments
            .iter()
            .enumerate()
            .map(|(index, environment)| (environment.name.clone(), index))
            .collect()
    }
}

/// Top-level `options`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Options {
    /// Delete live environments that are neither in the file nor in state.
    pub prune: bool,
    /// Adopt live environments no configuration owns when the file names them.
    pub adopt: bool,
    /// The part of the organization this configuration sees; `None`: all of it.
    pub scope: Option<Scope>,
    /// Deletes above this share of managed environments need `--force`.
    pub delete_threshold: Threshold,
    /// Updates above this share of managed environments need `--force`.
    pub update_threshold: Threshold,
}

/// `options.scope`: the environments a configuration sees. Live environments outside it are
/// invisible to its plans (never listed, adopted or pruned), so configurations that split one
/// organization by a name prefix or a tag cannot reach each other's.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    /// Names start with this.
    pub name_prefix: Option<String>,
    /// Environments carry every one of these tags.
    pub tags: Vec<String>,
}

impl Scope {
    /// Whether an environment of this name and these tags is in scope.
    pub fn contains(&self, name: &str, tags: &[String]) -> bool {
        self.name_prefix
            .as_deref()
            .is_none_or(|prefix| name.starts_with(prefix))
            && self.tags.iter().all(|tag| tags.contains(tag))
    }
}

/// An octoDNS-style safety threshold: more than `max_fraction` of at least `min_existing`
/// managed environments.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    /// Share of managed environments (0.0–1.0) above which `--force` is needed.
    pub max_fraction: f64,
    /// The threshold applies only when at least this many environments are managed.
    pub min_existing: usize,
}

impl Default for Threshold {
    fn default() -> Self {
        Self {
            max_fraction: 0.3,
            min_existing: 10,
        }
    }
}

/// Top-level `state`: where state is kept.
#[derive(Debug, Clone, PartialEq)]
pub enum StateBackendConfig {
    /// `.envform/state.json` beside the config (or `path`).
    Local {
        /// Override of the state file path.
        path: Option<PathBuf>,
    },
    /// Terraform's HTTP backend protocol.
    Http(HttpBackendConfig),
}

/// One desired environment.
#[derive(Debug, Clone)]
pub struct DesiredEnvironment {
    /// The environment's name: its identity.
    pub name: String,
    /// The managed fields, with `defaults` merged in; `None` means "not in the file".
    pub fields: DesiredFields,
    /// Environments to apply before this one (and destroy after it).
    pub depends_on: Vec<Reference>,
    /// `lifecycle` settings.
    pub lifecycle: Lifecycle,
    /// The name this environment had before: rename in place instead of delete + create (boxed:
    /// rare).
    pub renamed_from: Option<Box<Reference>>,
    /// Where the environment's entry is.
    pub location: Location,
    /// Where its `name` value is.
    pub name_location: Location,
}

/// The fields of an environment that envform manages (server-managed ones are not here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredFields {
    /// `display_name`.
    pub display_name: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `status`: only `active` or `inactive` pass validation.
    pub status: Option<Status>,
    /// `configuration`.
    pub configuration: Option<JsonMap>,
    /// `metadata`.
    pub metadata: Option<JsonMap>,
    /// `tags`.
    pub tags: Option<Vec<String>>,
    /// `settings`.
    pub settings: Option<JsonMap>,
    /// `execution_environment` (boxed: rarely set, and four collections wide).
    pub execution_environment: Option<Box<ExecutionEnvironment>>,
    /// `nonsensitive`: the `env_vars` keys whose values plans and state show instead of a digest.
    pub nonsensitive: BTreeSet<String>,
}

/// A name written in the file, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The name.
    pub name: String,
    /// Where it was written.
    pub location: Location,
}

/// `lifecycle` of an environment.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// The plan fails rather than delete the environment.
    pub prevent_destroy: bool,
    /// Field paths whose live changes are not reverted.
    pub ignore_changes: Vec<FieldPath>,
}

/// A dotted field path such as `metadata.owner` or `configuration`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<String>);

impl std::fmt::Display for FieldPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

/// Names mapped to the index of their environment in [`Desired::environments`].
pub type NameIndex = BTreeMap<String, usize>;
