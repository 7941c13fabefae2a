//! `envform state list | show | rm`: looking at and mending state by hand, `rm` under the lock.

use miette::IntoDiagnostic;

use super::exit::Exit;
use super::output::{self, print_stdout};

use super::args::{ConfigurationArgs, LockArgs};
use super::workspace;

/// `envform state` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum StateCommand {
    /// List the environments state manages.
    #[command(after_help = "Examples:\n  envform state list\n  envform state list -o json")]
    List {
        #[command(flatten)]
        location: ConfigurationArgs,
        /// Output format (also spelt --output).
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = output::OutputFormat::Table)]
        output: output::OutputFormat,
    },
    /// Show what state records for one environment.
    #[command(after_help = "Example:\n  envform state show production")]
    Show {
        /// The environment's name.
        name: String,
        #[command(flatten)]
        location: ConfigurationArgs,
        /// Output format (also spelt --output); the entry is a JSON document unless `table`.
        #[arg(short = 'o', long = "format", visible_alias = "output", value_enum, default_value_t = output::OutputFormat::Json)]
        output: output::OutputFormat,
    },
    /// Forget an environment (it stays live, unmanaged).
    #[command(after_help = "Example:\n  envform state rm legacy")]
    Rm {
        /// The environment's name.
        name: String,
        #[command(flatten)]
        location: ConfigurationArgs,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// Runs a `state` subcommand.
pub(crate) async fn execute(command: StateCommand) -> miette::Result<Exit> {
    match command {
        StateCommand::List { location, output } => {
            let state = read(&location).await?;
            match output {
                output::OutputFormat::Json => {
                    let entries: Vec<serde_json::Value> = state
                        .resources
                        .iter()
                        .map(|(name, resource)| {
                            serde_json::json!({"name": name, "id": resource.id.to_string()})
                        })
                        .collect();
                    output::print_json(&entries)?;
                }
                output::OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = state
                        .resources
                        .iter()
                        .map(|(name, resource)| vec![name.clone(), resource.id.to_string()])
                        .collect();
                    print_stdout(&output::table(&["NAME", "ID"], &rows))?;
                }
            }
        }
        StateCommand::Show {
            name,
            location,
            output,
        } => {
            let state = read(&location).await?;
            let resource = state
                .resources
                .get(&name)
                .ok_or_else(|| not_managed(&name))?;
            match output {
                output::OutputFormat::Json => {
                    let mut text = serde_json::to_string_pretty(resource).into_diagnostic()?;
                    text.push('\n');
                    print_stdout(&text)?;
                }
                output::OutputFormat::Table => print_stdout(&resource_table(&name, resource))?,
            }
        }
        StateCommand::Rm {
            name,
            location,
            lock,
        } => {
            let target = location.target()?.describe();
            let backend = location.state_command_backend()?;
            let handle = workspace::lock(backend.as_ref(), "state rm", &lock).await?;
            let result = async {
                let mut state = workspace::load_state(
                    backend.as_ref(),
                    &target,
                    location.state.control_plane_moved,
                )
                .await?;
                if state.resources.remove(&name).is_none() {
                    return Err(not_managed(&name));
                }
                state.serial += 1;
                backend
                    .save(&state, Some(&handle))
                    .await
                    .map_err(miette::Report::new)?;
                eprintln!("Removed `{name}` from state; it is still live, now unmanaged.");
                Ok(Exit::Success)
            }
            .await;
            workspace::unlock(backend.as_ref(), handle).await;
            return result;
        }
    }
    Ok(Exit::Success)
}

/// One state entry as `FIELD  VALUE` lines, the fields last applied as compact JSON.
fn resource_table(name: &str, resource: &crate::state::ResourceState) -> String {
    let mut rows = vec![
        vec!["name".to_owned(), name.to_owned()],
        vec!["id".to_owned(), resource.id.to_string()],
        vec![
            "prevent_destroy".to_owned(),
            resource.prevent_destroy.to_string(),
        ],
        vec!["depends_on".to_owned(), resource.depends_on.join(", ")],
    ];
    if let Some(renamed_from) = &resource.renamed_from {
        rows.push(vec!["renamed_from".to_owned(), renamed_from.clone()]);
    }
    for (field, value) in &resource.last_applied.to_map() {
        rows.push(vec![format!("last_applied.{field}"), value.to_string()]);
    }
    output::table(&["FIELD", "VALUE"], &rows)
}

/// The state the flags and the file name, read without the lock (`list` and `show` only look).
async fn read(location: &ConfigurationArgs) -> miette::Result<crate::state::State> {
    let target = location.target()?.describe();
    let backend = location.state_command_backend()?;
    workspace::load_state(
        backend.as_ref(),
        &target,
        location.state.control_plane_moved,
    )
    .await
}

fn not_managed(name: &str) -> miette::Report {
    miette::miette!(
        code = "envform::state::not_managed",
        help = "`envform state list` shows what state manages",
        "`{name}` is not in state"
    )
}
