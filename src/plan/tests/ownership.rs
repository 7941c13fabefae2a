//! Ownership: the stamp every environment envform manages carries, and the rules it enforces
//! between configurations.

use serde_json::json;
use uuid::Uuid;

use super::fixtures::{
    LINEAGE, desired, desired_with, document, live, manage, object, plan_err, plan_err_with,
    plan_ok, resolve_payload, state, unowned,
};
use crate::api::{Environment, Patch};
use crate::desired::{DesiredFields, Lifecycle};
use crate::model::{Lineage, OWNER_KEY, Owner};
use crate::plan::{Action, Payload, PlanOptions, PlanWarning, StepNote, diff};
use crate::state::State;

fn ours() -> Owner {
    Owner {
        lineage: LINEAGE,
        prevent_destroy: false,
    }
}

fn owned_by(mut environment: Environment, lineage: u128) -> Environment {
    environment.settings = Some(
        Owner {
            lineage: Lineage(Uuid::from_u128(lineage)),
            prevent_destroy: false,
        }
        .stamped(environment.settings.take()),
    );
    environment
}

fn adopting() -> PlanOptions {
    PlanOptions {
        adopt: true,
        ..PlanOptions::default()
    }
}

fn codes(errors: &crate::plan::PlanErrors) -> Vec<String> {
    errors
        .errors
        .iter()
        .map(|error| {
            miette::Diagnostic::code(error)
                .map(|code| code.to_string())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn a_create_carries_the_stamp_of_its_state_in_settings() {
    let plan = plan_ok(
        &document(vec![desired_with(
            "app",
            DesiredFields {
                settings: Some(object(json!({"region": "eu"}))),
                ..DesiredFields::default()
            },
        )]),
        &[],
        &state(),
    );
    let step = &plan.steps()[0];
    assert_eq!(step.owner, Some(ours()));
    let Payload::Create(body) = resolve_payload(step, &document(vec![]), &[]).expect("resolves")
    else {
        panic!("a create");
    };
    let settings = body.settings.expect("settings are sent");
    assert_eq!(settings["region"], json!("eu"));
    assert_eq!(Owner::of(Some(&settings)), Some(ours()));
}

#[test]
fn another_configurations_environment_is_never_adopted_changed_or_deleted() {
    let mut state = state();
    let theirs = owned_by(live(1, "shared"), 0x2222);
    let gone = owned_by(live(2, "gone-from-file"), 0x2222);
    manage(&mut state, &gone, Default::default());
    let errors = plan_err_with(
        &document(vec![desired("shared")]),
        &[theirs, gone],
        &state,
        &adopting(),
    );
    assert_eq!(
        codes(&errors),
        [
            "envform::plan::owned_elsewhere",
            "envform::plan::owned_elsewhere"
        ]
    );
    let text = errors
        .errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>();
    assert!(text[0].contains("`shared`"), "{text:?}");
    assert!(
        text[0].contains("00000000-0000-0000-0000-000000002222"),
        "{text:?}"
    );
    assert!(text.iter().any(|line| line.contains("delete")), "{text:?}");
}

#[test]
fn other_configurations_environments_are_counted_never_listed_or_pruned() {
    let mut desired = document(vec![desired("mine")]);
    desired.options.prune = true;
    let others: Vec<Environment> = (10..13)
        .map(|number| owned_by(live(number, &format!("theirs-{number}")), 0x2222))
        .collect();
    let mut all = vec![live(1, "mine")];
    all.extend(others);
    let mut state = state();
    manage(&mut state, &all[0], Default::default());
    let plan = plan_ok(&desired, &all, &state);
    assert_eq!(plan.owned_elsewhere(), 3);
    assert!(plan.unmanaged().is_empty());
    assert!(
        plan.steps()
            .iter()
            .all(|step| step.action != Action::Delete)
    );
}

#[test]
fn an_unowned_environment_with_a_desired_name_is_adopted_only_when_asked() {
    let desired = document(vec![desired("legacy")]);
    let live = [unowned(1, "legacy")];
    let errors = plan_err(&desired, &live, &state());
    assert_eq!(codes(&errors), ["envform::plan::exists_unmanaged"]);
    let help = miette::Diagnostic::help(&errors.errors[0])
        .map(|help| help.to_string())
        .unwrap_or_default();
    assert!(help.contains("envform import legacy"), "{help}");
    assert!(help.contains("--adopt"), "{help}");

    let plan = diff(&desired, &live, &state(), &adopting()).expect("adopts");
    let step = &plan.steps()[0];
    assert_eq!(step.action, Action::Adopt);
    assert_eq!(step.owner, Some(ours()));
    assert!(step.calls_api(), "the stamp is written");
    let Payload::Update { patch, .. } = resolve_payload(step, &desired, &live).expect("resolves")
    else {
        panic!("an update");
    };
    let Patch::Set(settings) = patch.settings else {
        panic!("settings carry the stamp");
    };
    assert_eq!(Owner::of(Some(&settings)), Some(ours()));
    assert!(
        plan.warnings()
            .iter()
            .any(|warning| matches!(warning, PlanWarning::AdoptsIntoNewState { count: 1 })),
        "{:?}",
        plan.warnings()
    );

    let mut in_file = desired.clone();
    in_file.options.adopt = true;
    assert_eq!(
        plan_ok(&in_file, &live, &state()).steps()[0].action,
        Action::Adopt
    );
}

#[test]
fn an_environment_stamped_by_this_state_is_adopted_without_asking() {
    // What a create that died before state was written leaves behind.
    let plan = plan_ok(&document(vec![desired("app")]), &[live(1, "app")], &state());
    let step = &plan.steps()[0];
    assert_eq!(step.action, Action::Adopt);
    assert_eq!(step.owner, None, "the stamp is already right");
    assert!(!step.calls_api());
}

#[test]
fn an_environment_managed_before_ownership_existed_is_stamped() {
    let app = unowned(1, "app");
    let mut state = state();
    manage(&mut state, &app, Default::default());
    let plan = plan_ok(
        &document(vec![desired("app")]),
        std::slice::from_ref(&app),
        &state,
    );
    let step = &plan.steps()[0];
    assert_eq!(step.action, Action::Update);
    assert_eq!(step.notes, [StepNote::Stamp]);
    assert!(step.changes.is_empty(), "the stamp is no field change");
    let Payload::Update { patch, .. } =
        resolve_payload(step, &document(vec![desired("app")]), &[app]).expect("resolves")
    else {
        panic!("an update");
    };
    assert!(matches!(patch.settings, Patch::Set(ref settings) if settings.contains_key(OWNER_KEY)));
}

#[test]
fn the_stamp_never_shows_as_a_change_and_survives_settings_updates_and_clears() {
    let mut app = live(1, "app");
    app.settings = Some(ours().stamped(Some(object(json!({"region": "eu"})))));
    let mut state = state();
    manage(
        &mut state,
        &app,
        object(json!({"settings": {"region": "eu"}})),
    );
    let same = document(vec![desired_with(
        "app",
        DesiredFields {
            settings: Some(object(json!({"region": "eu"}))),
            ..DesiredFields::default()
        },
    )]);
    assert_eq!(
        plan_ok(&same, std::slice::from_ref(&app), &state).steps()[0].action,
        Action::NoOp
    );

    let moved = document(vec![desired_with(
        "app",
        DesiredFields {
            settings: Some(object(json!({"region": "us"}))),
            ..DesiredFields::default()
        },
    )]);
    let plan = plan_ok(&moved, std::slice::from_ref(&app), &state);
    let change = &plan.steps()[0].changes[0];
    assert!(
        !change
            .after
            .as_ref()
            .expect("a value")
            .to_string()
            .contains(OWNER_KEY)
    );
    let Payload::Update { patch, .. } =
        resolve_payload(&plan.steps()[0], &moved, std::slice::from_ref(&app)).expect("resolves")
    else {
        panic!("an update");
    };
    let Patch::Set(settings) = patch.settings else {
        panic!("settings are sent");
    };
    assert_eq!(settings["region"], json!("us"));
    assert_eq!(Owner::of(Some(&settings)), Some(ours()));

    // Removing `settings` from the file clears the user's settings but keeps the stamp.
    let cleared = document(vec![desired("app")]);
    let plan = plan_ok(&cleared, std::slice::from_ref(&app), &state);
    let Payload::Update { patch, .. } =
        resolve_payload(&plan.steps()[0], &cleared, std::slice::from_ref(&app)).expect("resolves")
    else {
        panic!("an update");
    };
    let Patch::Set(settings) = patch.settings else {
        panic!("the stamp is sent instead of null");
    };
    assert_eq!(settings.len(), 1);
    assert_eq!(Owner::of(Some(&settings)), Some(ours()));
}

#[test]
fn prevent_destroy_is_recorded_in_the_stamp() {
    let app = live(1, "app");
    let mut state = state();
    manage(&mut state, &app, Default::default());
    let protected = document(vec![crate::desired::DesiredEnvironment {
        lifecycle: Lifecycle {
            prevent_destroy: true,
            ..Lifecycle::default()
        },
        ..desired("app")
    }]);
    let plan = plan_ok(&protected, &[app], &state);
    assert_eq!(
        plan.steps()[0].owner,
        Some(Owner {
            lineage: LINEAGE,
            prevent_destroy: true
        })
    );
}

#[test]
fn a_state_never_written_takes_the_lineage_its_plan_stamped() {
    let desired = document(vec![desired("app")]);
    let fresh = State::empty("embedded:test.db");
    let plan = plan_ok(&desired, &[], &fresh);
    let stamped = plan.steps()[0].owner.expect("stamped").lineage;
    // Applying the saved plan later reads state again: another fresh lineage.
    let later = State::empty("embedded:test.db");
    assert_ne!(later.lineage, stamped);
    let (_, _, bound_state) = plan
        .bind(&desired, &[], later, false)
        .expect("binds")
        .into_parts();
    assert_eq!(bound_state.lineage, stamped);
}

#[test]
fn a_converged_plan_binds_to_changing_nothing_but_a_record_to_update_is_a_change() {
    let app = live(1, "app");
    let mut state = state();
    manage(&mut state, &app, Default::default());
    let same = document(vec![desired("app")]);
    let plan = plan_ok(&same, std::slice::from_ref(&app), &state);
    assert!(!plan.has_changes());
    let bound = plan
        .bind(&same, std::slice::from_ref(&app), state.clone(), false)
        .expect("binds");
    assert!(bound.changes_nothing());

    // The file now protects it: nothing changes live, but state records it (and the stamp too).
    let protected = document(vec![crate::desired::DesiredEnvironment {
        lifecycle: Lifecycle {
            prevent_destroy: true,
            ..Lifecycle::default()
        },
        ..desired("app")
    }]);
    let plan = plan_ok(&protected, std::slice::from_ref(&app), &state);
    let bound = plan
        .bind(&protected, std::slice::from_ref(&app), state, false)
        .expect("binds");
    assert!(!bound.changes_nothing());
}
