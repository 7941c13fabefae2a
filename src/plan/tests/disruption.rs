//! Plans that stop active workers: what counts as a disruption, the three policies, and saved
//! plans checked again against live at apply time.

use super::fixtures::*;
use super::snapshots::disruption;
use crate::plan::disruption_check::check_saved as check_saved_disruptions;
use crate::plan::{DisruptionCause, DisruptionPolicy, Plan, PlanOptions, PlanWarning, diff};

fn options(disruption: DisruptionPolicy) -> PlanOptions {
    PlanOptions {
        force: true,
        disruption,
        ..PlanOptions::default()
    }
}

#[test]
fn only_deletes_and_deactivations_of_environments_with_active_workers_count() {
    let (desired, live, state) = disruption();
    let plan = diff(&desired, &live, &state, &options(DisruptionPolicy::Allow)).unwrap();
    let found: Vec<(&str, DisruptionCause, u32)> = plan
        .disruptions()
        .iter()
        .map(|entry| (entry.name.as_str(), entry.cause, entry.active_workers))
        .collect();
    assert_eq!(
        found,
        [
            ("api", DisruptionCause::Delete, 2),
            ("batch", DisruptionCause::Deactivate, 1),
        ]
    );
    assert_eq!(plan.stopped_workers(), 3);
    assert!(plan.settings().allow_disruption);
    // Allowed: neither an error nor a warning.
    assert!(plan.warnings().is_empty(), "{:?}", plan.warnings());
}

#[test]
fn refuse_is_the_default_and_reports_every_disruption() {
    let (desired, live, state) = disruption();
    let errors = plan_err_with(
        &desired,
        &live,
        &state,
        &PlanOptions {
            force: true,
            ..PlanOptions::default()
        },
    );
    let rendered = render_errors(&errors);
    assert_eq!(errors.errors.len(), 2, "{rendered}");
    assert!(rendered.contains("envform::plan::disruption"), "{rendered}");
    assert!(rendered.contains("--allow-disruption"), "{rendered}");

    let warned = diff(&desired, &live, &state, &options(DisruptionPolicy::Warn)).unwrap();
    assert!(!warned.settings().allow_disruption);
    assert!(matches!(
        warned.warnings(),
        [
            PlanWarning::Disruption {
                active_workers: 2,
                ..
            },
            PlanWarning::Disruption {
                active_workers: 1,
                ..
            }
        ]
    ));
}

#[test]
fn a_plan_without_workers_has_no_disruption() {
    let (desired, mut live, state) = disruption();
    for environment in &mut live {
        environment.active_workers = Some(0);
    }
    let plan = diff(
        &desired,
        &live,
        &state,
        &PlanOptions {
            force: true,
            ..PlanOptions::default()
        },
    )
    .expect("nothing to refuse");
    assert!(plan.disruptions().is_empty());
    assert!(check_saved_disruptions(&plan, &live, false).is_ok());
}

#[test]
fn a_saved_plan_is_checked_against_the_workers_live_has_at_apply_time() {
    let (desired, mut live, state) = disruption();
    let quiet: Vec<_> = live
        .iter()
        .cloned()
        .map(|mut environment| {
            environment.active_workers = Some(0);
            environment
        })
        .collect();
    // Made while no worker ran, then saved and read back.
    let plan = diff(&desired, &quiet, &state, &options(DisruptionPolicy::Refuse)).unwrap();
    let saved = Plan::from_saved(&plan.to_saved().unwrap()).unwrap();
    assert_eq!(saved, plan);
    assert!(check_saved_disruptions(&saved, &quiet, false).is_ok());
    // Workers registered since: refused unless allowed now.
    let errors = check_saved_disruptions(&saved, &live, false).unwrap_err();
    assert_eq!(errors.errors.len(), 2);
    assert!(check_saved_disruptions(&saved, &live, true).is_ok());
    // A plan made with --allow-disruption carries the permission.
    live[0].active_workers = Some(5);
    let allowed = diff(&desired, &live, &state, &options(DisruptionPolicy::Allow)).unwrap();
    let allowed = Plan::from_saved(&allowed.to_saved().unwrap()).unwrap();
    assert!(check_saved_disruptions(&allowed, &live, false).is_ok());
    assert_eq!(allowed.disruptions()[0].active_workers, 5);
}

#[test]
fn plans_saved_before_workers_were_tracked_still_load() {
    let (desired, live, state) = disruption();
    let plan = diff(&desired, &live, &state, &options(DisruptionPolicy::Allow)).unwrap();
    // The first format saved the plan alone.
    let mut document = serde_json::to_value(&plan).unwrap();
    let object = document.as_object_mut().unwrap();
    object.insert("format_version".into(), "1.0".into());
    object.remove("disruptions");
    object["settings"]
        .as_object_mut()
        .unwrap()
        .remove("allow_disruption");
    let old = Plan::from_saved(&document.to_string()).unwrap();
    assert!(old.disruptions().is_empty());
    assert!(!old.settings().allow_disruption);
    // Checked against live, it is refused like any other.
    assert!(check_saved_disruptions(&old, &live, false).is_err());
}
