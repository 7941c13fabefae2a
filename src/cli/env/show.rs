//! How `env` commands show what they got: tables and details for people, JSON for scripts, with
//! `env_vars` values masked unless asked for.

use crate::api::{Environment, JsonMap};
use crate::cli::output::{self, print_stdout};
use crate::model::Owner;

pub(crate) use crate::cli::output::{OutputFormat, print_json};

/// What a masked `env_vars` value shows.
const MASKED: &str = "(sensitive)";

/// Replaces every `execution_environment.env_vars` value with [`MASKED`].
pub(super) fn mask_env_vars(environment: &mut Environment) {
    if let Some(execution) = &mut environment.execution_environment {
        for value in execution.env_vars.values_mut() {
            *value = MASKED.into();
        }
    }
}

pub(super) fn print_environment(
    environment: &Environment,
    output: OutputFormat,
) -> miette::Result<()> {
    match output {
        OutputFormat::Json => print_json(environment),
        OutputFormat::Table => print_stdout(&environment_details(environment)),
    }
}

pub(super) fn environment_table(environments: &[Environment]) -> String {
    let rows: Vec<Vec<String>> = environments
        .iter()
        .map(|environment| {
            vec![
                environment.name.clone(),
                environment.status.to_string(),
                environment
                    .active_workers
                    .map_or_else(|| "-".to_owned(), |count| count.to_string()),
                owner(environment),
                environment.id.to_string(),
                environment
                    .created_at
                    .map_or_else(|| "-".to_owned(), |at| at.to_string()),
            ]
        })
        .collect();
    output::table(
        &["NAME", "STATUS", "WORKERS", "OWNER", "ID", "CREATED"],
        &rows,
    )
}

/// The lineage of the state that manages the environment (its first 8 characters, as a lock ID
/// is shown), `protected` when its configuration sets `prevent_destroy`; `-` when none does.
fn owner(environment: &Environment) -> String {
    Owner::of(environment.settings.as_ref()).map_or_else(
        || "-".to_owned(),
        |owner| {
            let lineage: String = owner.lineage.to_string().chars().take(8).collect();
            if owner.prevent_destroy {
                format!("{lineage} (protected)")
            } else {
                lineage
            }
        },
    )
}

fn environment_details(environment: &Environment) -> String {
    let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let json = |value: Option<&JsonMap>| {
        value.map_or_else(
            || "-".to_owned(),
            |map| serde_json::Value::Object(map.clone()).to_string(),
        )
    };
    let rows = vec![
        vec!["id".to_owned(), environment.id.to_string()],
        vec!["name".to_owned(), environment.name.clone()],
        vec![
            "display_name".to_owned(),
            optional(&environment.display_name),
        ],
        vec!["description".to_owned(), optional(&environment.description)],
        vec!["status".to_owned(), environment.status.to_string()],
        vec![
            "owner".to_owned(),
            Owner::of(environment.settings.as_ref())
                .map_or_else(|| "-".to_owned(), |owner| owner.to_string()),
        ],
        vec![
            "configuration".to_owned(),
            json(environment.configuration.as_ref()),
        ],
        vec!["metadata".to_owned(), json(environment.metadata.as_ref())],
        vec![
            "tags".to_owned(),
            environment
                .tags
                .as_ref()
                .map_or_else(|| "-".to_owned(), |tags| tags.join(", ")),
        ],
        vec![
            "temporal_namespace".to_owned(),
            optional(&environment.temporal_namespace),
        ],
        vec![
            "error_message".to_owned(),
            optional(&environment.error_message),
        ],
        vec![
            "created_at".to_owned(),
            environment
                .created_at
                .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        ],
        vec![
            "updated_at".to_owned(),
            environment
                .updated_at
                .map_or_else(|| "-".to_owned(), |at| at.to_string()),
        ],
    ];
    output::table(&["FIELD", "VALUE"], &rows)
}
