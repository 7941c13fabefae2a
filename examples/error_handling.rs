//! The spec's error handling: every failure is a typed `EnvironmentError`.
//!     cargo run --example error_handling

use envform::api::{EnvironmentError, EnvironmentId};
use envform::target::Target;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connection = Target::from_env()?.connect("error-example").await?;
    let client = connection.api.as_ref();

    // An id that names no environment in this organization.
    match client.get(EnvironmentId::new_random()).await {
        Ok(environment) => println!("unexpectedly found {}", environment.name),
        Err(EnvironmentError::NotFound { detail }) => println!("Environment error: {detail}"),
        Err(error) => println!("Unexpected error: {error}"),
    }

    // The default environment cannot be deleted.
    let environments = client.list(None).await?;
    if let Some(default) = environments.iter().find(|env| env.name == "default") {
        match client.delete(default.id).await {
            Err(EnvironmentError::Api { status, detail }) => {
                println!("Environment error ({status}): {detail}")
            }
            Err(error) => println!("Environment error: {error}"),
            Ok(()) => println!("unexpectedly deleted the default environment"),
        }
    }

    connection.close().await;
    Ok(())
}
