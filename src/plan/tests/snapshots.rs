//! The scenario set rendered in all three formats, kept as insta snapshots in `snapshots/plan/`,
//! and the plan errors rendered with a fixed colourless theme at width 100.

use serde_json::json;

use super::fixtures::*;
use crate::api::{Environment, ExecutionEnvironment, JsonMap, Status};
use crate::desired::{Desired, DesiredFields, FieldPath};
use crate::plan::render::{DEFAULT_MARKDOWN_MAX_CHARS, render_human, render_json, render_markdown};
use crate::plan::{Plan, PlanErrors};
use crate::state::State;

macro_rules! plan_snapshots {
    ($body:block) => {
        insta::with_settings!({
            snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots/plan"),
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, $body)
    };
}

fn snapshot_plan(name: &str, plan: &Plan) {
    plan_snapshots!({
        insta::assert_snapshot!(format!("{name}_human"), render_human(plan, false));
        insta::assert_snapshot!(format!("{name}_json"), render_json(plan));
        insta::assert_snapshot!(
            format!("{name}_markdown"),
            render_markdown(plan, DEFAULT_MARKDOWN_MAX_CHARS)
        );
    });
}

fn snapshot_errors(name: &str, errors: &PlanErrors) {
    plan_snapshots!({
        insta::assert_snapshot!(name.to_owned(), render_errors(errors));
    });
}

/// A plan of every kind of step (docs/src/concepts/plans.md): create `staging`, update `production` (after `staging`),
/// destroy `old`, leave `default` unmanaged.
pub(crate) fn create_update_delete() -> (Desired, Vec<Environment>, State) {
    let staging = desired_with(
        "staging",
        DesiredFields {
            description: Some("Staging environment".to_owned()),
            configuration: Some(object(json!({"max_workers": 10, "timeout_seconds": 3600}))),
            ..DesiredFields::default()
        },
    );
    let mut production = desired_with(
        "production",
        DesiredFields {
            description: Some("Production environment".to_owned()),
            status: Some(Status::Active),
            configuration: Some(object(json!({"max_workers": 20, "timeout_seconds": 7200}))),
            metadata: Some(object(json!({"stage": "production", "team": "platform"}))),
            ..DesiredFields::default()
        },
    );
    production.depends_on = vec![reference("staging")];

    let mut live_production = live(1, "production");
    live_production.description = Some("Production environment".to_owned());
    live_production.configuration =
        Some(object(json!({"max_workers": 10, "timeout_seconds": 7200})));
    live_production.metadata = Some(object(json!({"stage": "production", "team": "platform"})));
    let mut live_old = live(3, "old");
    live_old.description = Some("Old environment".to_owned());
    live_old.configuration = Some(object(json!({"max_workers": 2})));
    let live_default = live(9, "default");

    let mut state = state();
    let mut applied_production = production.clone();
    applied_production.fields.configuration =
        Some(object(json!({"max_workers": 10, "timeout_seconds": 7200})));
    manage(
        &mut state,
        &live_production,
        last_applied(&applied_production),
    );
    manage(
        &mut state,
        &live_old,
        object(json!({"description": "Old environment", "configuration": {"max_workers": 2}})),
    );
    (
        document(vec![staging, production]),
        vec![live_default, live_production, live_old],
        state,
    )
}

/// Adopt (with an update and a multi-line description), rename, re-create, no-op, and a state
/// entry whose environment is gone.
pub(crate) fn adopt_rename_recreate() -> (Desired, Vec<Environment>, State) {
    let legacy = desired_with(
        "legacy",
        DesiredFields {
            description: Some(
                "Legacy workloads.\nOwned by the platform team.\nDo not scale.".to_owned(),
            ),
            tags: Some(vec!["legacy".to_owned(), "platform".to_owned()]),
            ..DesiredFields::default()
        },
    );
    let mut api = desired_with(
        "api",
        DesiredFields {
            configuration: Some(object(json!({"max_workers": 8}))),
            ..DesiredFields::default()
        },
    );
    api.renamed_from = Some(Box::new(reference("api-old")));
    let batch = desired_with(
        "batch",
        DesiredFields {
            description: Some("Nightly batch jobs".to_owned()),
            ..DesiredFields::default()
        },
    );
    let stable = desired_with(
        "stable",
        DesiredFields {
            description: Some("Stable".to_owned()),
            ..DesiredFields::default()
        },
    );

    let mut live_legacy = live(1, "legacy");
    live_legacy.description =
        Some("Legacy workloads.\nOwned by the data team.\nDo not scale.".to_owned());
    live_legacy.tags = Some(vec!["legacy".to_owned()]);
    let mut live_api = live(2, "api-old");
    live_api.configuration = Some(object(json!({"max_workers": 4})));
    let mut live_stable = live(4, "stable");
    live_stable.description = Some("Stable".to_owned());

    let mut state = state();
    manage(
        &mut state,
        &live_api,
        object(json!({"configuration": {"max_workers": 4}})),
    );
    manage(&mut state, &live_stable, last_applied(&stable));
    // `batch` and `cache` were applied once and deleted outside envform since.
    manage(&mut state, &live(5, "batch"), last_applied(&batch));
    manage(&mut state, &live(6, "cache"), object(json!({})));
    (
        document(vec![legacy, api, batch, stable]),
        vec![live_legacy, live_api, live_stable],
        state,
    )
}

/// Drift in three fields, one of them under `ignore_changes`, and a field removed from the file.
pub(crate) fn drift_and_ignore_changes() -> (Desired, Vec<Environment>, State) {
    let mut production = desired_with(
        "production",
        DesiredFields {
            configuration: Some(object(json!({"max_workers": 20}))),
            metadata: Some(object(json!({"owner": "alice", "team": "platform"}))),
            tags: Some(vec!["a".to_owned(), "b".to_owned()]),
            ..DesiredFields::default()
        },
    );
    production.lifecycle.ignore_changes =
        vec![FieldPath(vec!["metadata".to_owned(), "owner".to_owned()])];

    let mut live_production = live(1, "production");
    live_production.description = Some("Prod".to_owned());
    live_production.configuration = Some(object(json!({"max_workers": 25})));
    live_production.metadata = Some(object(json!({"owner": "bob", "team": "platform"})));
    live_production.tags = Some(vec!["a".to_owned(), "c".to_owned()]);

    let mut state = state();
    manage(
        &mut state,
        &live_production,
        object(json!({
            "description": "Prod",
            "configuration": {"max_workers": 20},
            "metadata": {"owner": "alice", "team": "platform"},
            "tags": ["a", "b"],
        })),
    );
    (document(vec![production]), vec![live_production], state)
}

/// Raw secret values used by the secrets scenario; no rendering may contain them.
pub(crate) const SECRET_VALUES: [&str; 4] =
    ["s3cr3t-create", "s3cr3t-new", "s3cr3t-old", "s3cr3t-gone"];

/// Secrets added on a create, changed, kept and removed on an update.
pub(crate) fn secrets() -> (Desired, Vec<Environment>, State) {
    let mut create_execution = ExecutionEnvironment::default();
    create_execution
        .env_vars
        .insert("API_KEY".to_owned(), json!(SECRET_VALUES[0]));
    create_execution.secrets = vec!["vault-token".to_owned()];
    let staging = desired_with(
        "staging",
        DesiredFields {
            execution_environment: Some(Box::new(create_execution)),
            ..DesiredFields::default()
        },
    );
    let mut update_execution = ExecutionEnvironment::default();
    update_execution
        .env_vars
        .insert("API_KEY".to_owned(), json!(SECRET_VALUES[1]));
    update_execution
        .env_vars
        .insert("REGION".to_owned(), json!("eu-west-1"));
    let production = desired_with(
        "production",
        DesiredFields {
            execution_environment: Some(Box::new(update_execution)),
            ..DesiredFields::default()
        },
    );

    let mut live_execution = ExecutionEnvironment::default();
    live_execution
        .env_vars
        .insert("API_KEY".to_owned(), json!(SECRET_VALUES[2]));
    live_execution
        .env_vars
        .insert("REGION".to_owned(), json!("eu-west-1"));
    live_execution
        .env_vars
        .insert("LEGACY_TOKEN".to_owned(), json!(SECRET_VALUES[3]));
    let mut live_production = live(1, "production");
    live_production.execution_environment = Some(Box::new(live_execution.clone()));

    let mut state = state();
    let mut applied = production.clone();
    applied.fields.execution_environment = Some(Box::new(live_execution));
    manage(&mut state, &live_production, last_applied(&applied));
    (
        document(vec![staging, production]),
        vec![live_production],
        state,
    )
}

/// `options.prune`: an unmanaged environment is deleted, `default` is left alone.
pub(crate) fn prune() -> (Desired, Vec<Environment>, State) {
    let app = desired_with(
        "app",
        DesiredFields {
            description: Some("App".to_owned()),
            ..DesiredFields::default()
        },
    );
    let mut live_app = live(1, "app");
    live_app.description = Some("App".to_owned());
    let mut state = state();
    manage(&mut state, &live_app, last_applied(&app));
    let mut desired = document(vec![app]);
    desired.options.prune = true;
    (
        desired,
        vec![live(2, "default"), live_app, live(3, "scratch")],
        state,
    )
}

/// Two environments swap names: three steps through a temporary name.
pub(crate) fn swap() -> (Desired, Vec<Environment>, State) {
    let mut blue = desired_with(
        "blue",
        DesiredFields {
            description: Some("Serves all traffic".to_owned()),
            ..DesiredFields::default()
        },
    );
    blue.renamed_from = Some(Box::new(reference("green")));
    let mut green = desired_with(
        "green",
        DesiredFields {
            description: Some("Idle".to_owned()),
            ..DesiredFields::default()
        },
    );
    green.renamed_from = Some(Box::new(reference("blue")));
    // Before the swap, live `green` serves traffic and live `blue` is idle.
    let mut live_blue = live(1, "blue");
    live_blue.description = Some("Idle".to_owned());
    let mut live_green = live(2, "green");
    live_green.description = Some("Serves traffic".to_owned());
    let mut state = state();
    manage(
        &mut state,
        &live_blue,
        object(json!({"description": "Idle"})),
    );
    manage(
        &mut state,
        &live_green,
        object(json!({"description": "Serves traffic"})),
    );
    (
        document(vec![blue, green]),
        vec![live_blue, live_green],
        state,
    )
}

/// Nothing live at all: the first create provisions the organization; the others wait for it.
pub(crate) fn first_environment() -> (Desired, Vec<Environment>, State) {
    let mut alpha = desired("alpha");
    alpha.depends_on = vec![reference("beta")];
    let beta = desired_with(
        "beta",
        DesiredFields {
            status: Some(Status::Inactive),
            ..DesiredFields::default()
        },
    );
    let gamma = desired("gamma");
    (
        document(vec![alpha, beta, gamma]),
        Vec::new(),
        // Never written, with a lineage fixed for the snapshots.
        crate::state::State {
            lineage: super::fixtures::LINEAGE,
            digest_salt: Some(super::fixtures::SALT),
            ..crate::state::State::empty("embedded:x")
        },
    )
}

/// Live matches the file; `default` is unmanaged.
pub(crate) fn no_changes() -> (Desired, Vec<Environment>, State) {
    let app = desired_with(
        "app",
        DesiredFields {
            description: Some("App".to_owned()),
            configuration: Some(object(json!({"max_workers": 3}))),
            ..DesiredFields::default()
        },
    );
    let mut live_app = live(1, "app");
    live_app.description = Some("App".to_owned());
    live_app.configuration = Some(object(json!({"max_workers": 3})));
    // Server-managed fields differ from anything in state: they never diff.
    live_app.active_workers = Some(40);
    live_app.temporal_namespace = Some("elsewhere".to_owned());
    let mut state = state();
    manage(&mut state, &live_app, last_applied(&app));
    (
        document(vec![app]),
        vec![live(2, "default"), live_app],
        state,
    )
}

#[test]
fn scenario_create_update_delete() {
    let (desired, live, state) = create_update_delete();
    snapshot_plan("create_update_delete", &plan_ok(&desired, &live, &state));
}

#[test]
fn scenario_adopt_rename_recreate() {
    let (desired, live, state) = adopt_rename_recreate();
    snapshot_plan("adopt_rename_recreate", &plan_ok(&desired, &live, &state));
}

#[test]
fn scenario_drift_and_ignore_changes() {
    let (desired, live, state) = drift_and_ignore_changes();
    snapshot_plan(
        "drift_and_ignore_changes",
        &plan_ok(&desired, &live, &state),
    );
}

#[test]
fn scenario_secrets() {
    let (desired, live, state) = secrets();
    let plan = plan_ok(&desired, &live, &state);
    snapshot_plan("secrets", &plan);
}

#[test]
fn scenario_prune() {
    let (desired, live, state) = prune();
    snapshot_plan("prune", &plan_ok(&desired, &live, &state));
}

#[test]
fn scenario_swap() {
    let (desired, live, state) = swap();
    snapshot_plan("swap", &plan_ok(&desired, &live, &state));
}

#[test]
fn scenario_first_environment() {
    let (desired, live, state) = first_environment();
    snapshot_plan("first_environment", &plan_ok(&desired, &live, &state));
}

#[test]
fn scenario_no_changes() {
    let (desired, live, state) = no_changes();
    snapshot_plan("no_changes", &plan_ok(&desired, &live, &state));
}

/// `default` and a `prevent_destroy` environment dropped from the file, and too many deletes:
/// three errors reported at once.
pub(crate) fn protection() -> (Desired, Vec<Environment>, State) {
    let mut state = state();
    let mut live_environments = Vec::new();
    let mut kept = Vec::new();
    for number in 0..12_u128 {
        let name = match number {
            0 => "default".to_owned(),
            1 => "vault".to_owned(),
            other => format!("service-{other:02}"),
        };
        let environment = live(number + 1, &name);
        manage(&mut state, &environment, object(json!({})));
        // Keep six services; drop four, plus `default` and `vault`.
        if (2..8).contains(&number) {
            kept.push(desired(&name));
        }
        live_environments.push(environment);
    }
    if let Some(vault) = state.resources.get_mut("vault") {
        vault.prevent_destroy = true;
    }
    (document(kept), live_environments, state)
}

#[test]
fn scenario_protection_errors() {
    let (desired, live, state) = protection();
    let errors = plan_err(&desired, &live, &state);
    let codes: Vec<String> = errors
        .errors
        .iter()
        .filter_map(|error| miette::Diagnostic::code(error).map(|code| code.to_string()))
        .collect();
    assert_eq!(
        codes,
        [
            "envform::plan::protected_default",
            "envform::plan::prevent_destroy",
            "envform::plan::threshold",
        ]
    );
    snapshot_errors("protection_errors", &errors);
}

const CYCLE_FILE: &str = "\
version: 1
environments:
  - name: a
    depends_on: [b]
  - name: b
    depends_on: [c]
  - name: c
    depends_on: [a]
  - name: d
";

#[test]
fn scenario_dependency_cycle() {
    let depends_on = |name: &str| {
        // The name inside `[name]`.
        let list = find(CYCLE_FILE, &format!("[{name}]"), 0);
        crate::desired::Reference {
            name: name.to_owned(),
            location: crate::desired::Location {
                span: (list.span.offset() + 1, name.len()).into(),
                ..list
            },
        }
    };
    let mut a = desired("a");
    a.depends_on = vec![depends_on("b")];
    let mut b = desired("b");
    b.depends_on = vec![depends_on("c")];
    let mut c = desired("c");
    c.depends_on = vec![depends_on("a")];
    let desired = located_document(CYCLE_FILE, vec![a, b, c, desired("d")]);
    let errors = plan_err(&desired, &[], &state());
    assert_eq!(errors.errors.len(), 1);
    assert!(
        errors.errors[0].to_string().contains("a → b → c → a"),
        "{}",
        errors.errors[0]
    );
    snapshot_errors("dependency_cycle", &errors);
}

/// Workers stop: `api` (2 active workers) leaves the file and is deleted, `batch` (1) is made
/// inactive; `idle` is deleted with none, and `paused` is inactive already: neither disrupts.
pub(crate) fn disruption() -> (Desired, Vec<Environment>, State) {
    let batch = desired_with(
        "batch",
        DesiredFields {
            status: Some(Status::Inactive),
            ..DesiredFields::default()
        },
    );
    let paused = desired_with(
        "paused",
        DesiredFields {
            status: Some(Status::Inactive),
            ..DesiredFields::default()
        },
    );
    let mut live_api = live(1, "api");
    live_api.active_workers = Some(2);
    let mut live_batch = live(2, "batch");
    live_batch.active_workers = Some(1);
    let live_idle = live(3, "idle");
    let mut live_paused = live(4, "paused");
    live_paused.status = Status::Inactive;
    live_paused.active_workers = Some(3);
    let mut state = state();
    manage(&mut state, &live_api, JsonMap::new());
    manage(&mut state, &live_batch, JsonMap::new());
    manage(&mut state, &live_idle, JsonMap::new());
    manage(&mut state, &live_paused, last_applied(&paused));
    (
        document(vec![batch, paused]),
        vec![live_api, live_batch, live_idle, live_paused],
        state,
    )
}

#[test]
fn scenario_disruption() {
    let (desired, live, state) = disruption();
    let warned = crate::plan::PlanOptions {
        force: true,
        disruption: crate::plan::DisruptionPolicy::Warn,
        ..crate::plan::PlanOptions::default()
    };
    let plan = crate::plan::diff(&desired, &live, &state, &warned).expect("a warned plan");
    snapshot_plan("disruption", &plan);

    let refused = crate::plan::PlanOptions {
        force: true,
        ..crate::plan::PlanOptions::default()
    };
    let errors = plan_err_with(&desired, &live, &state, &refused);
    snapshot_errors("disruption_errors", &errors);
}
