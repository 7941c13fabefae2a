//! Why a plan cannot be made. Each kind has a stable code and points at the file where there is a
//! place to point at; the planner reports every problem it finds at once.

use std::fmt;

use miette::{LabeledSpan, NamedSource, SourceSpan};

use crate::desired::{Location, Sources};
use crate::model::Owner;

/// Every problem found while planning.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{}", summary(.errors))]
#[diagnostic(code(envform::plan::failed))]
pub struct PlanErrors {
    /// The problems, in a deterministic order.
    #[related]
    pub errors: Vec<PlanError>,
}

fn summary(errors: &[PlanError]) -> String {
    match errors.len() {
        1 => "cannot make the plan (1 problem)".to_owned(),
        count => format!("cannot make the plan ({count} problems)"),
    }
}

/// One reason the plan cannot be made.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PlanError {
    /// The plan would delete an environment with `lifecycle.prevent_destroy`.
    #[error("`{name}` has `lifecycle.prevent_destroy`, and this plan would delete it")]
    #[diagnostic(
        code(envform::plan::prevent_destroy),
        help(
            "to delete it, first set `lifecycle.prevent_destroy: false` on it and apply, \
             then remove it from the file"
        )
    )]
    PreventDestroy {
        /// The environment.
        name: String,
        /// The file, when the protection is written in it.
        #[source_code]
        source_code: Option<NamedSource<String>>,
        /// Where.
        #[label("protected here")]
        span: Option<SourceSpan>,
    },
    /// The plan would delete or rename away the `default` environment.
    #[error("the `default` environment cannot be {operation}")]
    #[diagnostic(
        code(envform::plan::protected_default),
        help(
            "every organization keeps its `default` environment; remove it from state \
             or add it back to the file"
        )
    )]
    ProtectedDefault {
        /// What the plan would do to it.
        operation: DefaultOperation,
        /// The file, when the cause is written in it.
        #[source_code]
        source_code: Option<NamedSource<String>>,
        /// Where.
        #[label("renamed away here")]
        span: Option<SourceSpan>,
    },
    /// Too many deletes or updates at once without `--force`.
    #[error(
        "this plan would {kind} {count} of {managed} managed environments, more than {percent}%",
        percent = percent(*.max_fraction)
    )]
    #[diagnostic(
        code(envform::plan::threshold),
        help(
            "review the plan, then run again with --force to allow it \
             (or raise options.{kind}_threshold)"
        )
    )]
    Threshold {
        /// Deletes or updates.
        kind: ThresholdKind,
        /// How many the plan makes.
        count: usize,
        /// How many environments state manages.
        managed: usize,
        /// The share allowed.
        max_fraction: f64,
    },
    /// The steps cannot be ordered.
    #[error("dependency cycle: {cycle}")]
    #[diagnostic(
        code(envform::plan::dependency_cycle),
        help("break the cycle by removing one of these dependencies")
    )]
    DependencyCycle {
        /// The environments around the cycle, the first repeated at the end (`a → b → a`).
        cycle: String,
        /// The file the `depends_on` entries are in.
        #[source_code]
        source_code: Option<NamedSource<String>>,
        /// The `depends_on` entries that close the cycle.
        #[label(collection)]
        labels: Vec<LabeledSpan>,
    },
    /// The plan would stop active workers without `--allow-disruption`.
    #[error("{doing} `{name}`: {stopping}")]
    #[diagnostic(
        code(envform::plan::disruption),
        help(
            "review the plan, then run again with --allow-disruption to let the workers stop \
             (nothing was applied)"
        )
    )]
    Disruption {
        /// The environment.
        name: String,
        /// What the plan does to it: "deleting" or "deactivating".
        doing: &'static str,
        /// "2 active workers will stop".
        stopping: String,
    },
    /// The plan would take or change an environment another configuration owns.
    #[error("`{name}` is owned by another configuration ({owner}); this plan would {doing} it")]
    #[diagnostic(
        code(envform::plan::owned_elsewhere),
        help(
            "leave it to its configuration, or move it here on purpose with \
             `envform import {name} --take-over`"
        )
    )]
    OwnedElsewhere {
        /// The environment.
        name: String,
        /// Its stamp.
        owner: Owner,
        /// What the plan would do: "adopt", "update", "rename", "delete".
        doing: &'static str,
    },
    /// A live environment nothing owns has a desired name, and adoption was not asked for.
    #[error("`{name}` already exists live and no configuration owns it")]
    #[diagnostic(
        code(envform::plan::exists_unmanaged),
        help(
            "take it under management with `envform import {name}`, or adopt every such \
             environment with --adopt (or `options.adopt: true`)"
        )
    )]
    ExistsUnmanaged {
        /// The environment.
        name: String,
    },
    /// `--target` names nothing.
    #[error("--target `{name}` names no environment in the file, in state or live")]
    #[diagnostic(code(envform::plan::unknown_target))]
    UnknownTarget {
        /// The name given.
        name: String,
        /// A close name, as a hint.
        #[help]
        help: Option<String>,
    },
    /// Two environments are renamed from the same one.
    #[error("`{from}` is the `renamed_from` of both `{first}` and `{second}`")]
    #[diagnostic(code(envform::plan::rename_conflict))]
    RenameConflict {
        /// The old name.
        from: String,
        /// One environment.
        first: String,
        /// The other.
        second: String,
        /// The file.
        #[source_code]
        source_code: Option<NamedSource<String>>,
        /// The second `renamed_from`.
        #[label("also renamed from here")]
        span: Option<SourceSpan>,
    },
}

/// What the plan would do to the `default` environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultOperation {
    /// Delete it.
    Deleted,
    /// Rename it to another name.
    RenamedAway,
}

impl fmt::Display for DefaultOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefaultOperation::Deleted => "deleted",
            DefaultOperation::RenamedAway => "renamed",
        })
    }
}

/// Which safety threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdKind {
    /// `options.delete_threshold`.
    Delete,
    /// `options.update_threshold`.
    Update,
}

impl fmt::Display for ThresholdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThresholdKind::Delete => "delete",
            ThresholdKind::Update => "update",
        })
    }
}

fn percent(fraction: f64) -> String {
    let value = fraction * 100.0;
    if (value - value.round()).abs() < 1e-9 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The miette source of a location's file, if the location is in `sources`.
pub(crate) fn source_of(sources: &Sources, location: Location) -> Option<NamedSource<String>> {
    let file = sources.files.get(location.source.0)?;
    Some(NamedSource::new(
        file.path.display().to_string(),
        file.text.clone(),
    ))
}
