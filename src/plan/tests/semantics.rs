//! Plan semantics (docs/src/concepts/plans.md): three-way fields, actions, protection, thresholds, targets, drift,
//! secrets, the recorded base and what each step writes to state.

use serde_json::{Value, json};

use super::fixtures::*;
use super::snapshots;
use crate::api::{Environment, ExecutionEnvironment, Patch, Status};
use crate::desired::{DesiredFields, FieldPath, Threshold};
use crate::plan::render::{render_human, render_json, render_markdown};
use crate::plan::tests::fixtures::resolve_payload;
use crate::plan::{
    Action, BindError, DriftResolution, FieldChange, ManagedField, Payload, PlanOptions,
    PlanWarning, ResolveError, Staleness, StateRecord, Step, StepNote, diff,
};

fn only_step(plan: &crate::plan::Plan) -> &Step {
    assert_eq!(plan.steps().len(), 1, "{:#?}", plan.steps());
    &plan.steps()[0]
}

fn change(step: &Step, field: ManagedField) -> Option<&FieldChange> {
    step.changes.iter().find(|change| change.field == field)
}

fn with_description(name: &str, description: &str) -> crate::desired::DesiredEnvironment {
    desired_with(
        name,
        DesiredFields {
            description: Some(description.to_owned()),
            ..DesiredFields::default()
        },
    )
}

#[test]
fn a_field_in_the_file_is_enforced() {
    let app = with_description("app", "new");
    let mut live_app = live(1, "app");
    live_app.description = Some("changed by hand".to_owned());
    let mut state = state();
    manage(&mut state, &live_app, object(json!({"description": "old"})));
    let plan = plan_ok(&document(vec![app]), &[live_app], &state);
    let step = only_step(&plan);
    assert_eq!(step.action, Action::Update);
    let description = change(step, ManagedField::Description).expect("description changes");
    assert_eq!(description.before, Some(json!("changed by hand")));
    assert_eq!(description.after, Some(json!("new")));
}

#[test]
fn a_field_absent_from_the_file_and_from_last_applied_is_left_alone() {
    let app = desired("app");
    let mut live_app = live(1, "app");
    live_app.description = Some("someone else's".to_owned());
    live_app.metadata = Some(object(json!({"owner": "them"})));
    let mut state = state();
    manage(&mut state, &live_app, object(json!({})));
    let plan = plan_ok(&document(vec![app]), &[live_app], &state);
    assert_eq!(only_step(&plan).action, Action::NoOp);
    assert!(!plan.has_changes());
    assert!(plan.drift().is_empty());
}

#[test]
fn a_field_removed_from_the_file_since_the_last_apply_is_cleared() {
    let app = desired("app");
    let mut live_app = live(1, "app");
    live_app.metadata = Some(object(json!({"owner": "us"})));
    let mut state = state();
    manage(
        &mut state,
        &live_app,
        object(json!({"metadata": {"owner": "us"}})),
    );
    let plan = plan_ok(&document(vec![app.clone()]), &[live_app.clone()], &state);
    let step = only_step(&plan);
    let metadata = change(step, ManagedField::Metadata).expect("metadata is cleared");
    assert_eq!(metadata.after, None);
    let payload = resolve_payload(step, &document(vec![app]), &[live_app]).expect("payload");
    let Payload::Update { patch, .. } = payload else {
        panic!("expected an update, got {payload:?}");
    };
    assert_eq!(patch.metadata, Patch::Clear);
    assert!(patch.description.is_unchanged());
    // The PATCH sends `null` for a cleared field.
    assert_eq!(
        serde_json::to_value(&patch).expect("serializes"),
        json!({"metadata": null})
    );
}

#[test]
fn a_status_removed_from_the_file_is_handed_back_not_cleared() {
    let app = desired("app");
    let mut live_app = live(1, "app");
    live_app.status = Status::Inactive;
    let mut state = state();
    manage(&mut state, &live_app, object(json!({"status": "active"})));
    let plan = plan_ok(&document(vec![app]), &[live_app], &state);
    assert_eq!(only_step(&plan).action, Action::NoOp);
    // It was changed outside since the last apply, and the plan keeps live's value.
    assert_eq!(plan.drift().len(), 1);
    assert_eq!(plan.drift()[0].resolution, DriftResolution::Accepted);
}

#[test]
fn nested_objects_diff_key_by_key_but_are_sent_whole() {
    let app = desired_with(
        "app",
        DesiredFields {
            configuration: Some(object(json!({"max_workers": 20, "timeout_seconds": 60}))),
            ..DesiredFields::default()
        },
    );
    let mut live_app = live(1, "app");
    live_app.configuration = Some(object(json!({"max_workers": 10, "timeout_seconds": 60})));
    let mut state = state();
    manage(&mut state, &live_app, last_applied(&app));
    let desired = document(vec![app]);
    let plan = plan_ok(&desired, &[live_app.clone()], &state);
    let human = render_human(&plan, false);
    assert!(human.contains("~ max_workers = 10 -> 20"), "{human}");
    assert!(
        human.contains("# (1 unchanged attribute hidden)"),
        "{human}"
    );
    let Payload::Update { patch, .. } =
        resolve_payload(only_step(&plan), &desired, &[live_app]).expect("payload")
    else {
        panic!("expected an update");
    };
    assert_eq!(
        patch.configuration,
        Patch::Set(object(json!({"max_workers": 20, "timeout_seconds": 60})))
    );
}

#[test]
fn server_managed_fields_never_diff() {
    let (desired, live, state) = snapshots::no_changes();
    let plan = plan_ok(&desired, &live, &state);
    assert!(!plan.has_changes());
    assert!(plan.drift().is_empty());
}

#[test]
fn ignore_changes_keeps_live_values_under_the_path_and_reports_them_as_ignored_drift() {
    let (desired, live, state) = snapshots::drift_and_ignore_changes();
    let plan = plan_ok(&desired, &live, &state);
    let step = only_step(&plan);
    assert!(change(step, ManagedField::Metadata).is_none());
    let ignored: Vec<String> = plan
        .drift()
        .iter()
        .filter(|drift| drift.resolution == DriftResolution::Ignored)
        .map(|drift| drift.path.to_string())
        .collect();
    assert_eq!(ignored, ["metadata.owner"]);
    // The recorded document keeps live's owner, so the ignored drift is not reported again.
    let StateRecord::Record(recorded) = &step.record else {
        panic!("expected a record");
    };
    assert_eq!(
        recorded.last_applied["metadata"],
        json!({"owner": "bob", "team": "platform"})
    );
}

#[test]
fn an_update_of_an_ignored_field_elsewhere_keeps_the_ignored_key() {
    let mut app = desired_with(
        "app",
        DesiredFields {
            metadata: Some(object(json!({"owner": "alice", "team": "data"}))),
            ..DesiredFields::default()
        },
    );
    app.lifecycle.ignore_changes = vec![FieldPath(vec!["metadata".into(), "owner".into()])];
    let mut live_app = live(1, "app");
    live_app.metadata = Some(object(json!({"owner": "bob", "team": "platform"})));
    let mut state = state();
    manage(
        &mut state,
        &live_app,
        object(json!({"metadata": {"owner": "alice", "team": "platform"}})),
    );
    let plan = plan_ok(&document(vec![app]), &[live_app], &state);
    let metadata = change(only_step(&plan), ManagedField::Metadata).expect("team changes");
    assert_eq!(
        metadata.after,
        Some(json!({"owner": "bob", "team": "data"}))
    );
}

#[test]
fn an_environment_state_does_not_know_is_adopted() {
    let app = with_description("app", "mine now");
    let mut live_app = live(1, "app");
    live_app.description = Some("theirs".to_owned());
    let plan = plan_ok(&document(vec![app]), &[live_app], &state());
    let step = only_step(&plan);
    assert_eq!(step.action, Action::Adopt);
    assert!(change(step, ManagedField::Description).is_some());
    assert_eq!(plan.summary().adopt, 1);
    assert_eq!(plan.summary().change, 0);
}

#[test]
fn an_environment_deleted_outside_is_recreated_when_still_desired() {
    let app = with_description("app", "x");
    let mut state = state();
    manage(&mut state, &live(1, "app"), last_applied(&app));
    let plan = plan_ok(&document(vec![app]), &[], &state);
    let step = only_step(&plan);
    assert_eq!(step.action, Action::Create);
    assert_eq!(step.notes, [StepNote::Recreate]);
    assert!(render_human(&plan, false).contains("re-create: deleted outside envform"));
}

#[test]
fn an_environment_removed_from_the_file_is_deleted_and_forgotten() {
    let mut state = state();
    let gone = live(1, "gone");
    manage(&mut state, &gone, object(json!({})));
    let plan = plan_ok(&document(vec![]), std::slice::from_ref(&gone), &state);
    let step = only_step(&plan);
    assert_eq!(step.action, Action::Delete);
    assert_eq!(
        resolve_payload(step, &document(vec![]), std::slice::from_ref(&gone)),
        Ok(Payload::Delete { id: gone.id })
    );
    let mut after = state.clone();
    step.record_in(&mut after, gone.id);
    assert!(after.resources.is_empty());
}

#[test]
fn an_unmanaged_environment_is_listed_and_never_touched_without_prune() {
    let plan = plan_ok(&document(vec![]), &[live(1, "scratch")], &state());
    assert!(plan.steps().is_empty());
    assert_eq!(plan.unmanaged().len(), 1);
    assert_eq!(plan.unmanaged()[0].name, "scratch");
}

#[test]
fn prune_deletes_unmanaged_environments_but_never_default() {
    let (desired, live, state) = snapshots::prune();
    let plan = plan_ok(&desired, &live, &state);
    let deleted: Vec<&str> = plan
        .steps()
        .iter()
        .filter(|step| step.action == Action::Delete)
        .map(|step| step.name.as_str())
        .collect();
    assert_eq!(deleted, ["scratch"]);
    assert_eq!(plan.unmanaged()[0].name, "default");
}

#[test]
fn deleting_default_is_an_error() {
    let mut state = state();
    let default = live(1, "default");
    manage(&mut state, &default, object(json!({})));
    let errors = plan_err(&document(vec![]), &[default], &state);
    assert_eq!(
        errors.errors[0].to_string(),
        "the `default` environment cannot be deleted"
    );
}

#[test]
fn renaming_default_away_is_an_error_pointing_at_renamed_from() {
    let text = "environments:\n  - name: primary\n    renamed_from: default\n";
    let mut primary = desired("primary");
    primary.renamed_from = Some(Box::new(crate::desired::Reference {
        name: "default".to_owned(),
        location: find(text, "default", 0),
    }));
    let desired = located_document(text, vec![primary]);
    let errors = plan_err(&desired, &[live(1, "default")], &state());
    let rendered = render_errors(&errors);
    assert!(
        rendered.contains("envform::plan::protected_default"),
        "{rendered}"
    );
    assert!(rendered.contains("renamed away here"), "{rendered}");
    assert!(rendered.contains("environments.yaml:3:19"), "{rendered}");
}

#[test]
fn prevent_destroy_recorded_in_state_stops_a_delete() {
    let mut state = state();
    let vault = live(1, "vault");
    manage(&mut state, &vault, object(json!({})));
    if let Some(resource) = state.resources.get_mut("vault") {
        resource.prevent_destroy = true;
    }
    let errors = plan_err(&document(vec![]), &[vault], &state);
    assert_eq!(errors.errors.len(), 1);
    assert!(errors.errors[0].to_string().contains("prevent_destroy"));
    // `--force` does not lift it: only the file can.
    let forced = PlanOptions {
        force: true,
        ..PlanOptions::default()
    };
    let errors = plan_err_with(&document(vec![]), &[live(1, "vault")], &state, &forced);
    assert_eq!(errors.errors.len(), 1);
}

#[test]
fn prevent_destroy_is_recorded_for_later() {
    let mut vault = desired("vault");
    vault.lifecycle.prevent_destroy = true;
    let plan = plan_ok(&document(vec![vault]), &[], &state());
    let mut after = state();
    only_step(&plan).record_in(&mut after, crate::plan::tests::fixtures::id(9));
    assert!(after.resources["vault"].prevent_destroy);
}

fn managed_fleet(count: u128) -> (Vec<Environment>, crate::state::State) {
    let mut state = state();
    let live: Vec<Environment> = (1..=count)
        .map(|number| {
            let mut environment = live(number, &format!("service-{number:02}"));
            environment.description = Some("x".to_owned());
            environment
        })
        .collect();
    for environment in &live {
        manage(&mut state, environment, object(json!({"description": "x"})));
    }
    (live, state)
}

#[test]
fn a_no_op_keeps_the_state_entry_that_holds_it_and_records_one_that_differs() {
    let (live, state) = managed_fleet(2);
    let mut second = with_description("service-02", "x");
    second.depends_on = vec![reference("service-01")];
    let files = document(vec![with_description("service-01", "x"), second]);
    let plan = plan_ok(&files, &live, &state);
    let step = |name: &str| {
        plan.steps()
            .iter()
            .find(|step| step.name == name)
            .expect("a step")
    };
    assert_eq!(step("service-01").action, Action::NoOp);
    assert_eq!(step("service-01").record, StateRecord::Keep);
    assert_eq!(step("service-02").action, Action::NoOp);
    let StateRecord::Record(recorded) = &step("service-02").record else {
        panic!(
            "the new depends_on is recorded: {:?}",
            step("service-02").record
        );
    };
    assert_eq!(recorded.depends_on, ["service-01".to_owned()]);

    let mut after = state.clone();
    for step in plan.steps() {
        let id = step.environment_id.expect("live");
        step.record_in(&mut after, id);
    }
    assert_eq!(after.resources["service-01"], state.resources["service-01"]);
    assert_eq!(after.resources["service-02"].depends_on, ["service-01"]);
    assert_eq!(
        after.resources["service-02"].last_applied,
        state.resources["service-02"].last_applied
    );
}

#[test]
fn deletes_above_the_threshold_need_force() {
    let (live, state) = managed_fleet(10);
    // Keep 6 of 10: 4 deletes is 40% > 30%.
    let kept: Vec<_> = live[..6]
        .iter()
        .map(|environment| with_description(&environment.name, "x"))
        .collect();
    let desired = document(kept);
    // The plan is made whole, for review, and records that it is refused.
    let refused = plan_ok(&desired, &live, &state);
    assert_eq!(refused.summary().destroy, 4);
    let errors = refused.refused().expect("refused");
    assert_eq!(
        errors.errors[0].to_string(),
        "this plan would delete 4 of 10 managed environments, more than 30%"
    );
    assert!(matches!(
        refused.clone().bind(&desired, &live, state.clone(), false),
        Err(crate::plan::BindError::Refused(_))
    ));
    let forced = PlanOptions {
        force: true,
        ..PlanOptions::default()
    };
    let plan = diff(&desired, &live, &state, &forced).expect("--force allows it");
    assert_eq!(plan.summary().destroy, 4);
    assert!(plan.refused().is_none());
    assert!(plan.settings().force, "a saved plan carries the approval");
    // Exactly 30% is allowed.
    let kept: Vec<_> = live[..7]
        .iter()
        .map(|environment| with_description(&environment.name, "x"))
        .collect();
    assert_eq!(plan_ok(&document(kept), &live, &state).summary().destroy, 3);
}

#[test]
fn updates_above_the_threshold_need_force_and_small_fleets_are_exempt() {
    let (live, state) = managed_fleet(10);
    let changed: Vec<_> = live
        .iter()
        .map(|environment| with_description(&environment.name, "y"))
        .collect();
    let errors = plan_ok(&document(changed), &live, &state)
        .refused()
        .expect("refused");
    assert!(errors.errors[0].to_string().contains("update 10 of 10"));

    let (live, state) = managed_fleet(9);
    let changed: Vec<_> = live
        .iter()
        .map(|environment| with_description(&environment.name, "y"))
        .collect();
    assert_eq!(
        plan_ok(&document(changed), &live, &state).summary().change,
        9
    );

    let (live, state) = managed_fleet(4);
    let mut desired = document(
        live.iter()
            .map(|environment| with_description(&environment.name, "y"))
            .collect(),
    );
    desired.options.update_threshold = Threshold {
        max_fraction: 0.5,
        min_existing: 2,
    };
    assert!(plan_ok(&desired, &live, &state).refused().is_some());
}

#[test]
fn targets_limit_the_plan_to_them_and_their_dependencies() {
    let mut api = desired("api");
    api.depends_on = vec![reference("database")];
    let desired = document(vec![api, desired("database"), desired("frontend")]);
    let options = PlanOptions {
        force: false,
        targets: vec!["api".to_owned()],
        ..PlanOptions::default()
    };
    let plan = diff(&desired, &[live(9, "scratch")], &state(), &options).expect("plan");
    let names: Vec<&str> = plan.steps().iter().map(|step| step.name.as_str()).collect();
    assert_eq!(names, ["database", "api"]);
    assert!(plan.unmanaged().is_empty());
    assert!(matches!(plan.warnings(), [PlanWarning::Targeted { .. }]));
}

#[test]
fn destroying_a_target_destroys_what_depends_on_it_first() {
    let mut state = state();
    let live: Vec<Environment> = ["dev-eu", "staging-eu", "prod-eu", "other"]
        .iter()
        .zip(1..)
        .map(|(name, number)| live(number, name))
        .collect();
    for environment in &live {
        manage(&mut state, environment, Default::default());
    }
    for dependent in ["staging-eu", "prod-eu"] {
        if let Some(resource) = state.resources.get_mut(dependent) {
            resource.depends_on = vec!["dev-eu".to_owned()];
        }
    }
    let options = PlanOptions {
        targets: vec!["dev-eu".to_owned()],
        force: true,
        ..PlanOptions::default()
    };
    // `destroy` plans against a file with no environments.
    let plan = diff(&document(vec![]), &live, &state, &options).expect("plan");
    let names: Vec<&str> = plan.steps().iter().map(|step| step.name.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(
        names.last(),
        Some(&"dev-eu"),
        "dependents go first: {names:?}"
    );
    assert!(!names.contains(&"other"));
}

#[test]
fn an_unknown_target_is_an_error_with_a_suggestion() {
    let desired = document(vec![desired("production")]);
    let options = PlanOptions {
        force: false,
        targets: vec!["prodution".to_owned(), "nothing-like-it".to_owned()],
        ..PlanOptions::default()
    };
    let errors = plan_err_with(&desired, &[], &state(), &options);
    assert_eq!(errors.errors.len(), 2);
    let rendered = render_errors(&errors);
    assert!(
        rendered.contains("envform::plan::unknown_target"),
        "{rendered}"
    );
    assert!(
        rendered.contains("did you mean `production`?"),
        "{rendered}"
    );
}

#[test]
fn renamed_from_renames_in_place_and_moves_the_state_entry() {
    let mut api = with_description("api", "API");
    api.renamed_from = Some(Box::new(reference("api-old")));
    let mut live_api = live(1, "api-old");
    live_api.description = Some("API".to_owned());
    let mut state = state();
    manage(&mut state, &live_api, last_applied(&api));
    let desired = document(vec![api]);
    let plan = plan_ok(&desired, &[live_api.clone()], &state);
    let step = only_step(&plan);
    assert_eq!(step.action, Action::Rename);
    assert!(step.changes.is_empty());
    let Payload::Update { id, patch } =
        resolve_payload(step, &desired, &[live_api.clone()]).expect("payload")
    else {
        panic!("expected an update");
    };
    assert_eq!(id, live_api.id);
    assert_eq!(patch.name, Patch::Set("api".to_owned()));
    let mut after = state.clone();
    step.record_in(&mut after, live_api.id);
    assert_eq!(after.resources.keys().collect::<Vec<_>>(), ["api"]);
    // Once renamed, the same file plans nothing.
    let mut renamed = live_api;
    renamed.name = "api".to_owned();
    assert!(!plan_ok(&desired, &[renamed], &after).has_changes());
}

#[test]
fn renamed_from_is_ignored_with_a_warning_when_the_new_name_exists() {
    let mut api = desired("api");
    api.renamed_from = Some(Box::new(reference("api-old")));
    let mut state = state();
    let live_api = live(1, "api");
    let live_old = live(2, "api-old");
    manage(&mut state, &live_api, object(json!({})));
    let plan = plan_ok(&document(vec![api]), &[live_api, live_old], &state);
    assert!(matches!(
        plan.warnings(),
        [PlanWarning::RenameIgnored { name, renamed_from }] if name == "api" && renamed_from == "api-old"
    ));
    assert_eq!(plan.unmanaged()[0].name, "api-old");
}

#[test]
fn a_state_entry_gone_live_and_from_the_file_is_forgotten() {
    let mut state = state();
    manage(&mut state, &live(1, "gone"), object(json!({})));
    let plan = plan_ok(&document(vec![]), &[], &state);
    let step = only_step(&plan);
    assert_eq!(step.action, Action::NoOp);
    assert_eq!(step.record, StateRecord::Forget);
    assert!(!plan.has_changes());
    let mut after = state.clone();
    step.record_in(&mut after, crate::plan::tests::fixtures::id(1));
    assert!(after.resources.is_empty());
}

#[test]
fn a_live_environment_replaced_outside_is_adopted() {
    let app = desired("app");
    let mut state = state();
    manage(&mut state, &live(1, "app"), object(json!({})));
    let plan = plan_ok(&document(vec![app]), &[live(2, "app")], &state);
    let step = only_step(&plan);
    assert_eq!(step.action, Action::Adopt);
    assert_eq!(step.notes, [StepNote::ReplacedOutside]);
    assert_eq!(
        step.environment_id,
        Some(crate::plan::tests::fixtures::id(2))
    );
}

#[test]
fn secrets_never_appear_in_a_plan_or_any_rendering() {
    let (desired, live, state) = snapshots::secrets();
    let plan = plan_ok(&desired, &live, &state);
    let outputs = [
        plan.to_saved().expect("saves"),
        render_human(&plan, false),
        render_human(&plan, true),
        render_json(&plan),
        render_markdown(&plan, 60_000),
        format!("{plan:?}"),
    ];
    for output in &outputs {
        for secret in snapshots::SECRET_VALUES {
            assert!(
                !output.contains(secret),
                "`{secret}` leaked into:\n{output}"
            );
        }
    }
    // The saved plan holds digests, which the payload resolves back to the values.
    assert!(outputs[0].contains(&secret_digest(&json!(snapshots::SECRET_VALUES[1]))));
    for output in &outputs[1..5] {
        assert!(!output.contains("sha256:"), "a digest shown in:\n{output}");
    }
    let human = &outputs[1];
    assert!(
        human.contains("API_KEY      = (sensitive value changed)"),
        "{human}"
    );
    assert!(human.contains("+ API_KEY = (sensitive)"), "{human}");
}

#[test]
fn payloads_carry_real_secret_values_and_debug_hides_them() {
    let (desired, live, state) = snapshots::secrets();
    let plan = plan_ok(&desired, &live, &state);
    let create = create_step(&plan);
    let payload = resolve_payload(create, &desired, &live).expect("resolves");
    let Payload::Create(body) = &payload else {
        panic!("expected a create");
    };
    let execution = body.execution_environment.as_ref().expect("sent");
    assert_eq!(
        execution.env_vars["API_KEY"],
        json!(snapshots::SECRET_VALUES[0])
    );
    assert!(!format!("{payload:?}").contains(snapshots::SECRET_VALUES[0]));

    let update = plan
        .steps()
        .iter()
        .find(|step| step.action == Action::Update)
        .expect("production is updated");
    let Payload::Update { patch, .. } = resolve_payload(update, &desired, &live).expect("resolves")
    else {
        panic!("expected an update");
    };
    let Patch::Set(execution) = patch.execution_environment else {
        panic!("execution environment is sent whole");
    };
    let expected: ExecutionEnvironment = serde_json::from_value(json!({
        "env_vars": {"API_KEY": snapshots::SECRET_VALUES[1], "REGION": "eu-west-1"}
    }))
    .expect("valid");
    assert_eq!(execution, expected);
}

/// The create step of the `secrets` fixture's plan (`staging`).
fn create_step(plan: &crate::plan::Plan) -> &Step {
    plan.steps()
        .iter()
        .find(|step| step.action == Action::Create)
        .expect("staging is created")
}

/// Changes the secret of the first desired environment of the `secrets` fixture.
fn rotate_secret(desired: &mut crate::desired::Desired) {
    if let Some(execution) = desired.environments[0]
        .fields
        .execution_environment
        .as_mut()
    {
        execution
            .env_vars
            .insert("API_KEY".to_owned(), json!("rotated"));
    }
}

#[test]
fn a_secret_changed_since_the_plan_is_refused() {
    let (mut desired, live, state) = snapshots::secrets();
    let plan = plan_ok(&desired, &live, &state);
    let create = create_step(&plan);
    rotate_secret(&mut desired);
    assert_eq!(
        resolve_payload(create, &desired, &live),
        Err(ResolveError::SecretChanged {
            name: "staging".to_owned(),
            key: "API_KEY".to_owned()
        })
    );
}

#[test]
fn the_base_records_what_the_plan_was_computed_against() {
    let (desired, live, state) = snapshots::create_update_delete();
    let plan = plan_ok(&desired, &live, &state);
    let base = plan.base();
    assert_eq!(base.lineage, Some(state.lineage));
    assert_eq!(base.serial, 7);
    assert_eq!(base.desired_digest, desired.digest);
    assert_eq!(
        base.touched.keys().collect::<Vec<_>>(),
        ["old", "production"]
    );
    assert_eq!(base.absent.iter().collect::<Vec<_>>(), ["staging"]);
    assert_eq!(base.check(&state, &desired, &live), Ok(()));

    let mut moved_state = state.clone();
    moved_state.serial += 1;
    let mut moved_live = live.clone();
    moved_live[1].updated_at = None;
    moved_live.push(crate::plan::tests::fixtures::live(20, "staging"));
    let mut moved_desired = desired.clone();
    moved_desired.digest = "other".to_owned();
    let stale = base
        .check(&moved_state, &moved_desired, &moved_live)
        .expect_err("everything moved");
    assert_eq!(
        stale.reasons,
        [
            Staleness::Serial {
                planned: 7,
                current: 8
            },
            Staleness::Desired,
            Staleness::Changed {
                name: "production".to_owned()
            },
            Staleness::Taken {
                name: "staging".to_owned()
            },
        ]
    );
}

#[test]
fn binding_refuses_a_plan_whose_base_moved_and_resolves_every_call_otherwise() {
    let (desired, live, state) = snapshots::create_update_delete();
    let plan = plan_ok(&desired, &live, &state);
    let mut moved = state.clone();
    moved.serial += 1;
    let refused = plan
        .clone()
        .bind(&desired, &live, moved, false)
        .expect_err("state moved");
    assert!(
        matches!(&refused, BindError::Stale(stale) if stale.reasons.len() == 1),
        "{refused:?}"
    );
    let steps = plan.steps().len();
    let bound = plan
        .bind(&desired, &live, state, false)
        .expect("nothing moved");
    let (plan, payloads, bound_state) = bound.into_parts();
    assert_eq!(payloads.len(), steps);
    assert_eq!(bound_state.serial, 7);
    assert!(
        plan.steps()
            .iter()
            .all(|step| payloads.contains_key(&step.id))
    );
}

#[test]
fn a_bound_plan_never_shows_a_secret() {
    let (desired, live, state) = snapshots::secrets();
    let plan = plan_ok(&desired, &live, &state);
    let bound = plan.bind(&desired, &live, state, false).expect("binds");
    let debug = format!("{bound:?}");
    for secret in snapshots::SECRET_VALUES {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(debug.contains("Create(\"staging\")"), "{debug}");
}

#[test]
fn binding_refuses_a_plan_whose_secret_changed() {
    let (mut desired, live, state) = snapshots::secrets();
    let plan = plan_ok(&desired, &live, &state);
    rotate_secret(&mut desired);
    // The digest of the files moves with the secret, so the base check refuses it first.
    desired.digest = plan.base().desired_digest.clone();
    let refused = plan
        .bind(&desired, &live, state, false)
        .expect_err("secret changed");
    assert!(
        matches!(
            refused,
            BindError::Resolve(ResolveError::SecretChanged { .. })
        ),
        "{refused:?}"
    );
}

#[test]
fn a_plan_against_a_fresh_state_records_no_lineage() {
    let (desired, live, state) = snapshots::first_environment();
    let plan = plan_ok(&desired, &live, &state);
    assert_eq!(plan.base().lineage, None);
    // Another fresh state (new lineage) is the same base; a written one is not.
    let fresh = crate::state::State::empty("embedded:x");
    assert_eq!(plan.base().check(&fresh, &desired, &live), Ok(()));
    let mut written = fresh;
    written.serial = 1;
    assert!(plan.base().check(&written, &desired, &live).is_err());
}

#[test]
fn a_saved_plan_loads_back_equal_and_refuses_other_versions() {
    let (desired, live, state) = snapshots::swap();
    let plan = plan_ok(&desired, &live, &state);
    let saved = plan.to_saved().expect("saves");
    assert_eq!(crate::plan::Plan::from_saved(&saved).expect("loads"), plan);
    let other = saved.replacen(
        "\"format_version\": \"1.1\"",
        "\"format_version\": \"9.0\"",
        1,
    );
    assert!(matches!(
        crate::plan::Plan::from_saved(&other),
        Err(crate::plan::PlanLoadError::FormatVersion { found }) if found == "9.0"
    ));
    // The saved file is the JSON rendering plus the plan; the rendering alone is refused.
    let document: Value = serde_json::from_str(&saved).expect("valid JSON");
    let rendered: Value = serde_json::from_str(&render_json(&plan)).expect("valid JSON");
    for (key, value) in rendered.as_object().expect("object") {
        assert_eq!(&document[key], value, "{key}");
    }
    assert!(matches!(
        crate::plan::Plan::from_saved(&render_json(&plan)),
        Err(crate::plan::PlanLoadError::NotSaved)
    ));
}

#[test]
fn the_json_rendering_is_versioned_and_lists_actions() {
    let (desired, live, state) = snapshots::adopt_rename_recreate();
    let plan = plan_ok(&desired, &live, &state);
    let document: Value = serde_json::from_str(&render_json(&plan)).expect("valid JSON");
    assert_eq!(document["format_version"], "1.1");
    let actions: Vec<(String, Value)> = document["resource_changes"]
        .as_array()
        .expect("array")
        .iter()
        .map(|change| {
            (
                change["name"].as_str().unwrap_or_default().to_owned(),
                change["change"]["actions"].clone(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("api".to_owned(), json!(["rename", "update"])),
            ("batch".to_owned(), json!(["create"])),
            ("cache".to_owned(), json!(["no-op"])),
            ("legacy".to_owned(), json!(["adopt", "update"])),
            ("stable".to_owned(), json!(["no-op"])),
        ]
    );
}

#[test]
fn colour_only_when_asked() {
    let (desired, live, state) = snapshots::create_update_delete();
    let plan = plan_ok(&desired, &live, &state);
    assert!(!render_human(&plan, false).contains('\u{1b}'));
    let coloured = render_human(&plan, true);
    assert!(coloured.contains("\u{1b}[32m+\u{1b}[39m"), "{coloured}");
    assert!(coloured.contains("\u{1b}[31m-\u{1b}[39m"), "{coloured}");
}

#[test]
fn wait_for_provisioning_before_a_status_change_of_a_provisioning_environment() {
    let app = desired_with(
        "app",
        DesiredFields {
            status: Some(Status::Inactive),
            ..DesiredFields::default()
        },
    );
    let mut live_app = live(1, "app");
    live_app.status = Status::Provisioning;
    let mut state = state();
    manage(&mut state, &live_app, object(json!({"status": "active"})));
    let plan = plan_ok(&document(vec![app]), &[live_app], &state);
    let step = only_step(&plan);
    assert!(step.wait_for_provisioning);
    assert_eq!(step.new_status(), Some(Status::Inactive));
    // `provisioning` is the service's transition, not drift.
    assert!(plan.drift().is_empty());
}

#[test]
fn a_plan_large_enough_for_several_threads_is_each_environment_planned_in_name_order() {
    // 2,000 environments: planned in runs on as many threads as there are cores.
    let count: u128 = 2_000;
    let mut environments = Vec::new();
    let mut live_list = Vec::new();
    let mut recorded = state();
    for number in 0..count {
        let name = format!("env-{number:04}");
        let mut environment = desired_with(
            &name,
            DesiredFields {
                description: Some("wanted".to_owned()),
                ..DesiredFields::default()
            },
        );
        if number % 7 == 0 {
            environment.lifecycle.ignore_changes = vec![FieldPath(vec!["colour".to_owned()])];
        }
        environments.push(environment);
        if number % 3 != 0 {
            let mut environment = live(number + 1, &name);
            // Every third is created; of the rest, half are changed outside envform (drift).
            environment.description =
                Some(if number % 3 == 1 { "wanted" } else { "edited" }.to_owned());
            manage(
                &mut recorded,
                &environment,
                object(json!({"description": "wanted"})),
            );
            live_list.push(environment);
        }
    }
    environments.reverse();
    let options = PlanOptions {
        force: true,
        ..PlanOptions::default()
    };
    let plan = diff(&document(environments), &live_list, &recorded, &options).unwrap();

    let expected = |number: u128| match number % 3 {
        0 => Action::Create,
        1 => Action::NoOp,
        _ => Action::Update,
    };
    assert_eq!(plan.steps().len(), usize::try_from(count).unwrap());
    for step in plan.steps() {
        let number: u128 = step.name["env-".len()..].parse().unwrap();
        assert_eq!(step.action, expected(number), "{}", step.name);
    }
    let drifted: Vec<&str> = plan
        .drift()
        .iter()
        .map(|drift| drift.name.as_str())
        .collect();
    let expected_drift: Vec<String> = (0..count)
        .filter(|number| number % 3 == 2)
        .map(|number| format!("env-{number:04}"))
        .collect();
    assert_eq!(drifted, expected_drift);
    let warned: Vec<String> = plan
        .warnings()
        .iter()
        .filter_map(|warning| match warning {
            PlanWarning::UnknownIgnorePath { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    let expected_warnings: Vec<String> = (0..count)
        .filter(|number| number % 7 == 0)
        .map(|number| format!("env-{number:04}"))
        .collect();
    assert_eq!(
        warned, expected_warnings,
        "in name order, whatever thread found them"
    );

    // The human rendering writes the sections on several threads too: each once, in name order.
    let text = render_human(&plan, false);
    let headers: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("# "))
        .filter_map(|header| header.split_once(" will be "))
        .map(|(name, _)| name)
        .collect();
    let changed: Vec<String> = (0..count)
        .filter(|number| number % 3 != 1)
        .map(|number| format!("env-{number:04}"))
        .collect();
    assert_eq!(headers, changed);
}

#[test]
fn a_state_with_unsalted_digests_plans_no_change_and_records_salted_ones() {
    let mut execution = ExecutionEnvironment::default();
    execution
        .env_vars
        .insert("API_KEY".to_owned(), json!(snapshots::SECRET_VALUES[1]));
    execution
        .env_vars
        .insert("LOG_LEVEL".to_owned(), json!("info"));
    let app = desired_with(
        "app",
        DesiredFields {
            execution_environment: Some(Box::new(execution.clone())),
            ..DesiredFields::default()
        },
    );
    let mut live_app = live(1, "app");
    live_app.execution_environment = Some(Box::new(execution));
    // Written before digests were salted: no salt, plain SHA-256 digests.
    let mut legacy = state();
    legacy.digest_salt = None;
    let unsalted = crate::plan::SecretDigests::of(&legacy);
    manage(
        &mut legacy,
        &live_app,
        crate::plan::last_applied(&app, unsalted),
    );
    let recorded = legacy.resources["app"].last_applied.to_map();
    assert_eq!(
        recorded["execution_environment"]["env_vars"]["LOG_LEVEL"],
        json!(crate::plan::legacy_digest(&json!("info")))
    );
    let state = crate::state::State::for_target(Some(legacy.clone()), &legacy.target, false)
        .expect("same target");
    assert!(state.digest_salt.is_some() && state.digest_salt_is_new());
    let desired = document(vec![app]);
    let live = vec![live_app];
    let plan = plan_ok(&desired, &live, &state);
    assert!(!plan.has_changes(), "{:?}", plan.steps());
    assert!(plan.drift().is_empty(), "{:?}", plan.drift());
    // The step records the digests salted; the plan carries the salt for apply to store.
    let salted = crate::plan::SecretDigests::of(&state);
    let StateRecord::Record(recorded) = &plan.steps()[0].record else {
        panic!("a record");
    };
    assert_eq!(
        recorded.last_applied["execution_environment"]["env_vars"]["LOG_LEVEL"],
        json!(salted.digest(&json!("info")))
    );
    assert_eq!(plan.base().digest_salt, state.digest_salt);
    // Read again for apply, the state gets another salt for the run: binding gives it the plan's.
    let again = crate::state::State::for_target(Some(legacy.clone()), &legacy.target, false)
        .expect("same target");
    assert_ne!(again.digest_salt, state.digest_salt);
    let bound = plan.bind(&desired, &live, again, false).expect("binds");
    assert!(!bound.changes_nothing(), "the upgrade is saved");
    let (_, _, bound_state) = bound.into_parts();
    assert_eq!(bound_state.digest_salt, state.digest_salt);
    assert!(bound_state.digest_salt_unsaved);

    // Against a state that stores its salt, a plan carries none.
    let plan = plan_ok(&desired, &live, &super::fixtures::state());
    assert_eq!(plan.base().digest_salt, None);
    assert!(!plan.to_saved().expect("saves").contains("digest_salt"));
}
