//! Finding an environment by id, or by name with one list call.

use crate::api::{Environment, EnvironmentId, EnvironmentsApi};

/// Finds an environment by id, or by name with one list call.
pub(crate) async fn resolve(
    api: &dyn EnvironmentsApi,
    reference: &str,
) -> miette::Result<Environment> {
    if let Ok(id) = reference.parse::<EnvironmentId>() {
        return api.get(id).await.map_err(miette::Report::new);
    }
    let environments = api.list(None).await.map_err(miette::Report::new)?;
    let names: Vec<&str> = environments.iter().map(|env| env.name.as_str()).collect();
    let suggestion = names
        .iter()
        .copied()
        .filter(|name| strsim::levenshtein(name, reference) < 3)
        .min_by_key(|name| strsim::levenshtein(name, reference));
    environments
        .iter()
        .find(|environment| environment.name == reference)
        .cloned()
        .ok_or_else(|| match suggestion {
            Some(name) => miette::miette!(
                code = "envform::cli::unknown_environment",
                help = format!("did you mean `{name}`?"),
                "no environment named `{reference}`"
            ),
            None => miette::miette!(
                code = "envform::cli::unknown_environment",
                help = "`envform env list` shows the environments",
                "no environment named `{reference}`"
            ),
        })
}
