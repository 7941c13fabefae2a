//! The spec's complete example: one environment per stage, their worker commands, the list, and
//! each one's status.
//!     cargo run --example complete

use envform::api::{CreateEnvironment, EnvironmentError, JsonMap};
use envform::target::Target;
use serde_json::json;

fn object(value: serde_json::Value) -> Option<JsonMap> {
    value.as_object().cloned()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connection = Target::from_env()?.connect("complete-example").await?;
    let client = connection.api.as_ref();

    // 1. Create environments for each stage.
    let stages = [
        ("Development", "Development environment", 5, 1800, "dev"),
        ("Staging", "Staging environment", 10, 3600, "staging"),
        (
            "Production",
            "Production environment",
            20,
            7200,
            "production",
        ),
    ];
    let mut created = Vec::new();
    for (name, description, max_workers, timeout_seconds, stage) in stages {
        let data = CreateEnvironment {
            description: Some(description.into()),
            configuration: object(
                json!({"max_workers": max_workers, "timeout_seconds": timeout_seconds}),
            ),
            metadata: object(json!({"stage": stage})),
            ..CreateEnvironment::named(name)
        };
        let environment = match client.create(&data).await {
            Ok(environment) => environment,
            // Already there from an earlier run: use it.
            Err(EnvironmentError::Conflict { .. }) => client
                .list(None)
                .await?
                .into_iter()
                .find(|env| env.name == name)
                .ok_or("conflict reported, but the environment is not listed")?,
            Err(error) => return Err(error.into()),
        };
        println!("Created {}: {}", environment.name, environment.id);
        created.push(environment);
    }

    // 2. Get worker commands for each environment (tokens masked).
    println!("\nWorker Registration Commands:");
    for environment in &created {
        let worker = client.get_worker_command(environment.id).await?;
        println!("\n{}:\n  {}", environment.name, worker.masked_command());
    }

    // 3. List all environments.
    let all = client.list(None).await?;
    println!("\nTotal environments: {}", all.len());

    // 4. Monitor environment status.
    for environment in &created {
        let current = client.get(environment.id).await?;
        println!("{}: {}", current.name, current.status);
    }

    connection.close().await;
    Ok(())
}
