//! `env list` and `env get`.

use super::lookup::resolve;
use super::show::{OutputFormat, environment_table, mask_env_vars, print_environment, print_json};
use crate::api::{EnvironmentsApi, Status};
use crate::cli::output::print_stdout;

/// `env list`.
pub(super) async fn list(
    api: &dyn EnvironmentsApi,
    status: Option<Status>,
    output: OutputFormat,
    reveal: bool,
) -> miette::Result<()> {
    let mut environments = api.list(status).await.map_err(miette::Report::new)?;
    if !reveal {
        environments.iter_mut().for_each(mask_env_vars);
    }
    match output {
        OutputFormat::Json => print_json(&environments)?,
        OutputFormat::Table => print_stdout(&environment_table(&environments))?,
    }
    Ok(())
}

/// `env get`.
pub(super) async fn get(
    api: &dyn EnvironmentsApi,
    environment: &str,
    output: OutputFormat,
    reveal: bool,
) -> miette::Result<()> {
    let mut environment = resolve(api, environment).await?;
    if !reveal {
        mask_env_vars(&mut environment);
    }
    print_environment(&environment, output)?;
    Ok(())
}
