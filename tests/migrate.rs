//! `envform init --from-terraform` end to end: live environments left as the Kubiya provider
//! leaves them (a `tags` change Terraform recorded as applied and never sent), the migration from
//! a `terraform.tfstate` file and from a Terraform HTTP backend (`envform serve`'s own state
//! endpoint), the first plan showing exactly that drift, apply converging; and the refusals.

use std::collections::BTreeMap;
use std::path::Path;

use envform::api::{CreateEnvironment, ExecutionEnvironment, JsonMap};
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::support::{KEY_A, Scenario};

const FIXTURE: &str = include_str!("fixtures/terraform/kubiya.tfstate");
const FORMAT_3: &str = include_str!("fixtures/terraform/format3.tfstate");

/// The fixture's ids of the environments created live, by name; `legacy-batch`'s id stays in the
/// fixture only, as an environment deleted outside Terraform.
const FIXTURE_IDS: [(&str, &str); 4] = [
    ("production", "7c1e5f3a-2b8d-4a6e-9f04-d5b3a1c7e9f2"),
    ("region-eu", "4e8a0c2f-7b1d-4d5e-a9c3-6f2e8b0d4a17"),
    ("region-us", "5f9b1d3a-8c2e-4e6f-b0d4-7a3f9c1e5b28"),
    ("staging", "2b9d6c4e-0d3a-4f7b-9a51-3c8e1f0a6b27"),
];

/// The id the fixture gives `legacy-batch`, which is not live.
const GONE_ID: &str = "0d7f2a9c-6e1b-4c3d-8f50-a2b4c6d8e0f1";

fn object(value: Value) -> JsonMap {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    envform::api::install_crypto_provider();
    tokio::runtime::Runtime::new().expect("a runtime")
}

/// What the provider sent when it created each environment. `staging`'s tags are the ones it
/// created it with: Terraform's state holds `cost:shared` too, an update it planned, reported as
/// applied and never sent.
fn as_the_provider_left_them() -> Vec<CreateEnvironment> {
    let mut staging_execution = ExecutionEnvironment::default();
    staging_execution
        .env_vars
        .insert("LOG_LEVEL".to_owned(), json!("debug"));
    staging_execution.secrets = vec!["DATABASE_URL".to_owned()];
    let production_execution = ExecutionEnvironment {
        secrets: vec!["DATABASE_URL".to_owned()],
        ..ExecutionEnvironment::default()
    };
    let region = |name: &str, where_: &str| CreateEnvironment {
        description: Some(format!("Workers in {where_}")),
        tags: Some(vec!["team:platform".to_owned()]),
        settings: Some(object(json!({"region": where_}))),
        ..CreateEnvironment::named(name)
    };
    vec![
        CreateEnvironment {
            display_name: Some("Staging".to_owned()),
            description: Some("Staging environment".to_owned()),
            configuration: Some(object(json!({"max_workers": 4}))),
            tags: Some(vec!["team:platform".to_owned(), "tier:staging".to_owned()]),
            settings: Some(object(json!({"region": "us-east-1", "retention_days": 14}))),
            execution_environment: Some(staging_execution),
            ..CreateEnvironment::named("staging")
        },
        CreateEnvironment {
            display_name: Some("Production".to_owned()),
            description: Some("Production environment".to_owned()),
            configuration: Some(object(json!({"max_workers": 20, "timeout_seconds": 7200}))),
            tags: Some(vec![
                "team:platform".to_owned(),
                "tier:production".to_owned(),
            ]),
            settings: Some(object(json!({"region": "us-east-1"}))),
            execution_environment: Some(production_execution),
            ..CreateEnvironment::named("production")
        },
        region("region-eu", "eu-west-1"),
        region("region-us", "us-east-1"),
    ]
}

/// Creates the live environments and returns the fixture with their ids in it, as the
/// provider would have written it, and the ids by name.
fn live_with_their_terraform_state(scenario: &Scenario) -> (String, BTreeMap<String, String>) {
    let client = scenario.server.client(KEY_A);
    let created = runtime().block_on(async {
        let mut created = BTreeMap::new();
        for data in as_the_provider_left_them() {
            let environment = client
                .environments()
                .create(&data)
                .await
                .expect("create a live environment");
            created.insert(environment.name.clone(), environment.id.to_string());
        }
        created
    });
    let mut tfstate = FIXTURE.to_owned();
    for (name, fixture_id) in FIXTURE_IDS {
        tfstate = tfstate.replace(fixture_id, &created[name]);
    }
    (tfstate, created)
}

/// The plan as JSON.
fn plan_json(scenario: &Scenario) -> Value {
    plan_json_of(scenario.plan())
}

/// The JSON plan `plan` (an `envform plan` command) prints.
fn plan_json_of(mut plan: assert_cmd::Command) -> Value {
    let output = plan
        .args(["--format", "json"])
        .output()
        .expect("run envform plan");
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).expect("the plan is JSON")
}

/// Asserts the first plan after a migration: exactly the drift Terraform's state hid (staging's
/// tags, set back to Terraform's claim) and the create of the environment gone outside it.
fn assert_first_plan(scenario: &Scenario) {
    assert_first_plan_is(&plan_json(scenario));
}

/// [`assert_first_plan`] of a plan already printed.
fn assert_first_plan_is(plan: &Value) {
    assert_eq!(
        plan["drift"],
        json!([{
            "name": "staging",
            "path": ["tags"],
            "last_applied": ["team:platform", "tier:staging", "cost:shared"],
            "live": ["team:platform", "tier:staging"],
            "resolution": "overwritten",
        }]),
        "{plan:#}"
    );
    let steps: Vec<(String, String, Value)> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|step| step["action"] != "no-op")
        .map(|step| {
            (
                step["name"].as_str().unwrap_or_default().to_owned(),
                step["action"].as_str().unwrap_or_default().to_owned(),
                step["fields"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps
            .iter()
            .map(|(name, action, _)| (name.as_str(), action.as_str()))
            .collect::<Vec<_>>(),
        [("legacy-batch", "create"), ("staging", "update")],
        "{plan:#}"
    );
    assert_eq!(steps[1].2, json!(["tags"]), "{plan:#}");
}

/// The migration's volatile parts (ids, the state's lineage, the temporary directory) named.
fn stable(text: &str, dir: &Path, ids: &BTreeMap<String, String>) -> String {
    let mut text = text.replace(&dir.display().to_string(), "[DIR]");
    for (name, id) in ids {
        text = text.replace(id, &format!("[{name} id]"));
    }
    text
}

#[test]
fn a_terraform_state_file_migrates_and_the_first_plan_shows_what_terraform_never_sent() {
    let scenario = Scenario::new();
    let (tfstate, ids) = live_with_their_terraform_state(&scenario);
    let tfstate_path = scenario.write_file("terraform.tfstate", &tfstate);

    let output = scenario
        .envform()
        .args(["init", "--from-terraform", "terraform.tfstate"])
        .output()
        .expect("run envform init");
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8(output.stderr).expect("UTF-8");
    let written = std::fs::read_to_string(scenario.file()).expect("the desired file");
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/migrate"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("desired_file", stable(&written, scenario.path(), &ids));
        insta::assert_snapshot!("summary", stable(&summary, scenario.path(), &ids));
    });
    assert!(
        summary.contains("4 environment(s) migrated")
            && summary.contains("3 skipped")
            && summary.contains("1 field(s) where Terraform's state and live disagree")
            && summary.contains("  staging: tags"),
        "{summary}"
    );
    assert!(
        !written.contains("debug"),
        "an env_vars value was written:\n{written}"
    );

    // Imported by id, not re-created; stamped with the new state's lineage.
    let state = scenario.state();
    let imported: BTreeMap<String, String> = scenario.state_ids();
    assert_eq!(imported, ids);
    assert!(!state.to_string().contains("\"debug\""), "{state}");
    let live = scenario.server.client(KEY_A);
    let staging_id = ids["staging"].parse().expect("an id");
    let staging = runtime()
        .block_on(live.environments().get(staging_id))
        .expect("staging is live");
    assert_eq!(
        staging
            .settings
            .as_ref()
            .and_then(|settings| settings.get("envform_owner")),
        Some(&json!({"lineage": state["lineage"]})),
    );

    assert_first_plan(&scenario);
    scenario.apply_ok();
    assert_eq!(scenario.plan_exit_code(), 0);
    let mut expected: Vec<&str> = ids.keys().map(String::as_str).collect();
    expected.push("legacy-batch");
    scenario.assert_converged(&expected);
    let live = scenario.live();
    for (name, id) in &ids {
        assert_eq!(&live[name], id, "`{name}` was re-created");
    }
    assert_ne!(live["legacy-batch"], GONE_ID);
    // Terraform's state was only read.
    assert_eq!(
        std::fs::read_to_string(&tfstate_path).expect("the tfstate"),
        tfstate
    );
}

#[test]
fn a_terraform_http_backend_is_read_with_the_http_state_credentials() {
    let scenario = Scenario::new();
    let (tfstate, ids) = live_with_their_terraform_state(&scenario);
    // Terraform's state where its HTTP backend keeps it: `envform serve`'s own state endpoint.
    let address = format!("{}/api/v1/state/terraform-prod", scenario.server.url());
    let runtime = runtime();
    let http = reqwest::Client::new();
    let uploaded = runtime
        .block_on(
            http.post(&address)
                .basic_auth("terraform", Some(KEY_A))
                .body(tfstate.clone())
                .send(),
        )
        .expect("upload the Terraform state");
    assert!(uploaded.status().is_success(), "{uploaded:?}");

    // Without the password, the backend refuses, and nothing is written.
    scenario
        .envform()
        .args(["init", "--from-terraform", &address])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("envform::state::unauthorized"));
    assert!(!scenario.file().exists());

    let output = scenario
        .envform()
        .args(["init", "--from-terraform", &address])
        .env("ENVFORM_STATE_USERNAME", "terraform")
        .env("ENVFORM_STATE_PASSWORD", KEY_A)
        .output()
        .expect("run envform init");
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(summary.contains(&format!("Read {address} ")), "{summary}");
    assert!(
        std::fs::read_to_string(scenario.file())
            .expect("the desired file")
            .contains(&format!("from {address}\n")),
    );
    assert_eq!(scenario.state_ids(), ids);

    assert_first_plan(&scenario);
    scenario.apply_ok();
    assert_eq!(scenario.plan_exit_code(), 0);
    // The served Terraform state is as uploaded.
    let served = runtime
        .block_on(async {
            http.get(&address)
                .bearer_auth(KEY_A)
                .send()
                .await?
                .text()
                .await
        })
        .expect("read the Terraform state back");
    assert_eq!(served, tfstate);
}

#[test]
fn a_state_of_another_format_is_refused_and_nothing_is_written() {
    let scenario = Scenario::new();
    scenario.write_file("old.tfstate", FORMAT_3);
    scenario
        .envform()
        .args(["init", "--from-terraform", "old.tfstate"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("envform::terraform::unsupported_version").and(
                predicate::str::contains("old.tfstate is Terraform state format 3"),
            ),
        );
    assert!(!scenario.file().exists());
    assert!(!scenario.state_path().exists());
}

#[test]
fn an_environment_another_configuration_owns_is_refused_and_left_alone() {
    let scenario = Scenario::new();
    let (tfstate, ids) = live_with_their_terraform_state(&scenario);
    scenario.write_file("terraform.tfstate", &tfstate);
    // Another configuration took `staging` already.
    std::fs::create_dir(scenario.path().join("other")).expect("a directory");
    scenario.write_file(
        "other/envform.yaml",
        "version: 1\nenvironments:\n  - name: staging\n",
    );
    scenario
        .envform()
        .args(["import", "staging", "-f", "other/envform.yaml"])
        .assert()
        .success();
    let other_lineage =
        crate::support::read_state(&scenario.path().join("other/.envform/state.json"))["lineage"]
            .clone();

    scenario
        .envform()
        .args(["init", "--from-terraform", "terraform.tfstate"])
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("envform::init::owned_elsewhere")
                .and(predicate::str::contains(format!(
                    "`staging` (controlplane_environment.staging, id {})",
                    ids["staging"]
                )))
                .and(predicate::str::contains(
                    other_lineage.as_str().expect("a lineage"),
                )),
        );
    assert!(!scenario.file().exists());
    assert!(!scenario.state_path().exists());
    // The others were not stamped either.
    let production = runtime()
        .block_on(
            scenario
                .server
                .client(KEY_A)
                .environments()
                .get(ids["production"].parse().expect("an id")),
        )
        .expect("production is live");
    assert!(
        production
            .settings
            .as_ref()
            .is_none_or(|settings| !settings.contains_key("envform_owner")),
        "{production:?}"
    );
}

#[test]
fn an_environment_renamed_outside_terraform_is_renamed_back_in_place() {
    let scenario = Scenario::new();
    let client = scenario.server.client(KEY_A);
    let live = runtime()
        .block_on(
            client
                .environments()
                .create(&CreateEnvironment::named("renamed-by-hand")),
        )
        .expect("create a live environment");
    let tfstate = json!({
        "version": 4, "terraform_version": "1.9.8", "serial": 5, "lineage": "3a0e",
        "resources": [{
            "mode": "managed", "type": "controlplane_environment", "name": "api",
            "provider": "provider[\"registry.terraform.io/kubiya/control-plane\"]",
            "instances": [{"schema_version": 0, "attributes": {
                "id": live.id.to_string(), "name": "api", "description": null,
                "configuration": "", "settings": null, "execution_environment": null,
                "status": "ready", "tags": null
            }}]
        }]
    });
    scenario.write_file("terraform.tfstate", &tfstate.to_string());
    let output = scenario
        .envform()
        .args(["init", "--from-terraform", "terraform.tfstate"])
        .output()
        .expect("run envform init");
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(
        summary.contains("1 field(s) where Terraform's state and live disagree")
            && summary.contains("  api: name"),
        "{summary}"
    );
    let plan = plan_json(&scenario);
    let renames: Vec<&Value> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|step| step["action"] != "no-op")
        .collect();
    assert_eq!(renames.len(), 1, "{plan:#}");
    assert_eq!(renames[0]["action"], "rename", "{plan:#}");
    assert_eq!(
        renames[0]["rename"],
        json!({"from": "renamed-by-hand", "to": "api"})
    );
    scenario.apply_ok();
    assert_eq!(scenario.plan_exit_code(), 0);
    assert_eq!(scenario.live()["api"], live.id.to_string());
}

#[test]
fn terraform_state_and_envform_state_both_on_a_served_http_backend() {
    let scenario = Scenario::new();
    let (tfstate, ids) = live_with_their_terraform_state(&scenario);
    let workspace = |name: &str| format!("{}/api/v1/state/{name}", scenario.server.url());
    let terraform = workspace("terraform-prod");
    let runtime = runtime();
    let uploaded = runtime
        .block_on(
            reqwest::Client::new()
                .post(&terraform)
                .bearer_auth(KEY_A)
                .body(tfstate)
                .send(),
        )
        .expect("upload the Terraform state");
    assert!(uploaded.status().is_success(), "{uploaded:?}");
    // Every command keeps envform's state in another workspace of the same server.
    let on_http = |mut command: assert_cmd::Command| {
        command
            .env("ENVFORM_STATE_ADDRESS", workspace("envform-prod"))
            .env("ENVFORM_STATE_USERNAME", "ci")
            .env("ENVFORM_STATE_PASSWORD", KEY_A);
        command
    };
    let mut init = on_http(scenario.envform());
    init.args(["init", "--from-terraform", &terraform])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "imported 4 into {}",
            workspace("envform-prod")
        )));
    assert!(!scenario.state_path().exists());
    let mut list = on_http(scenario.envform());
    let listed = list
        .args(["state", "list", "-o", "json"])
        .output()
        .expect("run envform state list");
    assert!(listed.status.success(), "{listed:?}");
    let listed = String::from_utf8(listed.stdout).expect("UTF-8");
    for id in ids.values() {
        assert!(listed.contains(id.as_str()), "{id} not in state:\n{listed}");
    }

    assert_first_plan_is(&plan_json_of(on_http(scenario.plan())));
    on_http(scenario.apply()).assert().success();
    on_http(scenario.plan())
        .arg("--detailed-exitcode")
        .assert()
        .code(0);
}
