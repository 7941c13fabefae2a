//! The spec's quick start with the Rust SDK: list, get, create, worker command.
//!
//! Runs against the embedded control plane (`.envform/control-plane.db`) unless
//! `KUBIYA_CONTROL_PLANE_URL` (and `KUBIYA_API_KEY`) name a service:
//!     cargo run --example quick_start

use envform::api::{CreateEnvironment, Status};
use envform::target::Target;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connection = Target::from_env()?.connect("quick-start").await?;
    let environments = connection.api.as_ref();

    // List all environments.
    let all = environments.list(None).await?;
    println!("{} environments", all.len());

    // Create a new environment (or reuse it when the example runs again).
    let name = "Production";
    let environment = match all.into_iter().find(|env| env.name == name) {
        Some(existing) => existing,
        None => {
            let data = CreateEnvironment {
                description: Some("Production environment".into()),
                status: Some(Status::Active),
                ..CreateEnvironment::named(name)
            };
            environments.create(&data).await?
        }
    };

    // Get a specific environment.
    let environment = environments.get(environment.id).await?;
    println!("Environment: {}", environment.name);
    println!("Status: {}", environment.status);
    println!(
        "Namespace: {}",
        environment.temporal_namespace.as_deref().unwrap_or("N/A")
    );

    // Get the worker registration command; the token is a secret, so it is shown masked.
    let worker = environments.get_worker_command(environment.id).await?;
    println!("Worker command: {}", worker.masked_command());

    connection.close().await;
    Ok(())
}
