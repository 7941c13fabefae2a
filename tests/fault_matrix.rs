//! The fault matrix: `envform apply` against `envform serve` whose fault layer fails a share of
//! requests (503s, connection resets, added latency, failures after the write was committed) at
//! 5%, 20% and 50%. Apply is rerun until it converges; then there are no duplicates, no orphans,
//! and state equals live. The counts are printed (`-- --nocapture`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::Server;

const ENVIRONMENTS: usize = 8;
const MOST_ATTEMPTS: usize = 12;

fn kinds() -> [(&'static str, &'static str); 5] {
    [
        ("503 before", "status=503"),
        ("reset before", "reset=true"),
        ("latency 50ms", "latency_ms=50"),
        ("500 after commit", "status=500,when=after"),
        ("reset after commit", "reset=true,when=after"),
    ]
}

fn live_by_name(server: &Server, dir: &std::path::Path) -> Vec<(String, String)> {
    // Read through a server without faults would be ideal; the CLI retries reads, so ask until
    // an answer comes.
    for _ in 0..20 {
        let output = server
            .envform(dir)
            .args(["env", "list", "-o", "json"])
            .output()
            .unwrap();
        if output.status.success() {
            let list: Value = serde_json::from_slice(&output.stdout).unwrap();
            return list
                .as_array()
                .unwrap()
                .iter()
                .map(|env| {
                    (
                        env["name"].as_str().unwrap().to_owned(),
                        env["id"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
        }
    }
    panic!("the list never got through");
}

#[test]
fn apply_converges_under_every_fault_and_rate() {
    let mut report = Vec::new();
    for (kind, rule) in kinds() {
        for rate in ["0.05", "0.2", "0.5"] {
            let dir = tempfile::tempdir().unwrap();
            let faults = format!("{rule},rate={rate},path=/api/v1/environments");
            let server = Server::start(&dir.path().join("serve.db"), &["--faults", &faults]);
            let names: Vec<String> = (0..ENVIRONMENTS)
                .map(|index| format!("f-{index}"))
                .collect();
            let yaml: String = names
                .iter()
                .map(|name| format!("  - name: {name}\n    description: under faults\n"))
                .collect();
            std::fs::write(
                dir.path().join("envform.yaml"),
                format!("version: 1\nenvironments:\n{yaml}"),
            )
            .unwrap();
            let mut attempts = 0;
            loop {
                attempts += 1;
                let output = server
                    .envform(dir.path())
                    .args(["apply", "--auto-approve", "--request-timeout", "5s"])
                    .output()
                    .unwrap();
                if output.status.success() {
                    let plan = server
                        .envform(dir.path())
                        .args(["plan", "--detailed-exitcode"])
                        .output()
                        .unwrap();
                    if plan.status.code() == Some(0) {
                        break;
                    }
                }
                assert!(
                    attempts < MOST_ATTEMPTS,
                    "{kind} at {rate}: no convergence after {attempts} applies: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let live = live_by_name(&server, dir.path());
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (name, _) in &live {
                *counts.entry(name.as_str()).or_default() += 1;
            }
            let duplicates = counts.values().filter(|count| **count > 1).count();
            let state: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.path().join(".envform/state.json")).unwrap(),
            )
            .unwrap();
            let resources = state["resources"].as_object().unwrap();
            let orphans = live
                .iter()
                .filter(|(name, _)| name != "default" && !resources.contains_key(name))
                .count();
            let mismatched = resources
                .iter()
                .filter(|(name, resource)| {
                    !live
                        .iter()
                        .any(|(live_name, id)| live_name == *name && resource["id"] == *id)
                })
                .count();
            let injected: u64 = reqwest_blocking_faults(&server);
            report.push(format!(
                "{kind:>20} @ {rate:>4}: {attempts} apply run(s), {injected} faults injected, {duplicates} duplicates, {orphans} orphans, {mismatched} state≠live"
            ));
            assert_eq!(duplicates, 0, "{kind} at {rate}");
            assert_eq!(orphans, 0, "{kind} at {rate}");
            assert_eq!(mismatched, 0, "{kind} at {rate}");
            assert_eq!(resources.len(), ENVIRONMENTS, "{kind} at {rate}");
        }
    }
    eprintln!("fault matrix:\n{}", report.join("\n"));
}

/// The number of faults the server injected, from `GET /_faults`.
fn reqwest_blocking_faults(server: &Server) -> u64 {
    envform::api::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let report: Value = reqwest::get(format!("{}/_faults", server.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        report["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rule| rule["injected"].as_u64().unwrap_or(0))
            .sum()
    })
}
