//! The spec's provisioning monitor: create an environment and poll until it is ready or failed.
//!     cargo run --example monitor_provisioning

use std::time::Duration;

use envform::api::{CreateEnvironment, Status};
use envform::target::Target;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let connection = Target::from_env()?.connect("monitor-example").await?;
    let client = connection.api.as_ref();

    let name = format!("new-environment-{}", std::process::id());
    let data = CreateEnvironment {
        description: Some("Newly provisioned environment".into()),
        ..CreateEnvironment::named(name)
    };
    let environment = client.create(&data).await?;

    println!("Waiting for environment provisioning...");
    let mut delay = Duration::from_millis(100);
    loop {
        let current = client.get(environment.id).await?;
        println!("Status: {}", current.status);
        match current.status {
            Status::Ready | Status::Active => {
                println!("Environment ready!");
                break;
            }
            Status::Error => {
                println!(
                    "Provisioning failed: {}",
                    current.error_message.as_deref().unwrap_or("no message")
                );
                break;
            }
            Status::Provisioning | Status::Inactive => {}
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }

    // Clean up, like the spec's ephemeral test environment.
    client.delete(environment.id).await?;
    connection.close().await;
    Ok(())
}
