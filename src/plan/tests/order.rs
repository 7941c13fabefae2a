//! The order (docs/src/concepts/plans.md#order): deterministic, `depends_on` (reversed for deletes), names freed before
//! they are claimed, swaps through a temporary name, the first environment, cycles reported whole.

use serde_json::json;

use super::fixtures::*;
use super::snapshots;
use crate::plan::{Action, Plan, StateRecord, StepId, SwapPart, swap_temporary_name};
use crate::state::ResourceState;

/// `name` of each step in order, with the action's symbol.
fn order(plan: &Plan) -> Vec<String> {
    plan.steps()
        .iter()
        .map(|step| format!("{} {}", step.action.symbol().trim(), step.name))
        .collect()
}

fn step_id(plan: &Plan, name: &str) -> StepId {
    plan.steps()
        .iter()
        .find(|step| step.name == name && step.swap != Some(SwapPart::ToTemporary))
        .map(|step| step.id)
        .unwrap_or_else(|| panic!("no step for {name}"))
}

#[test]
fn the_order_does_not_depend_on_input_order() {
    let (desired, live, state) = snapshots::adopt_rename_recreate();
    let plan = plan_ok(&desired, &live, &state);
    let mut shuffled_desired = desired.clone();
    shuffled_desired.environments.reverse();
    let mut shuffled_live = live.clone();
    shuffled_live.rotate_left(1);
    let again = plan_ok(&shuffled_desired, &shuffled_live, &state);
    assert_eq!(again, plan);
    assert_eq!(
        plan.to_saved().expect("saves"),
        again.to_saved().expect("saves")
    );
}

#[test]
fn ties_are_broken_by_name_and_ids_follow_the_order() {
    let desired = document(vec![desired("zeta"), desired("alpha"), desired("mid")]);
    let plan = plan_ok(&desired, &[live(1, "default")], &state());
    assert_eq!(order(&plan), ["+ alpha", "+ mid", "+ zeta"]);
    let ids: Vec<u32> = plan.steps().iter().map(|step| step.id.0).collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn creates_follow_their_dependencies() {
    let mut api = desired("api");
    api.depends_on = vec![reference("zdatabase")];
    let desired = document(vec![api, desired("zdatabase")]);
    let plan = plan_ok(&desired, &[live(1, "default")], &state());
    assert_eq!(order(&plan), ["+ zdatabase", "+ api"]);
    assert_eq!(plan.steps()[1].depends_on, [plan.steps()[0].id]);
}

#[test]
fn deletes_run_in_reverse_dependency_order() {
    // `api` depended on `database` when applied: delete `api` first.
    let mut state = state();
    let api = live(1, "api");
    let database = live(2, "database");
    state.resources.insert(
        "api".to_owned(),
        ResourceState {
            id: api.id,
            last_applied: object(json!({})).into(),
            prevent_destroy: false,
            depends_on: vec!["database".to_owned()],
            renamed_from: None,
        },
    );
    manage(&mut state, &database, object(json!({})));
    let plan = plan_ok(&document(vec![]), &[api, database], &state);
    assert_eq!(order(&plan), ["- api", "- database"]);
    assert_eq!(plan.steps()[1].depends_on, [plan.steps()[0].id]);

    // Without the recorded dependency, name order would put them the same way; reverse names
    // to prove the edge decides.
    let mut state = crate::plan::tests::fixtures::state();
    let zapi = live(1, "zapi");
    let database = live(2, "database");
    state.resources.insert(
        "zapi".to_owned(),
        ResourceState {
            id: zapi.id,
            last_applied: object(json!({})).into(),
            prevent_destroy: false,
            depends_on: vec!["database".to_owned()],
            renamed_from: None,
        },
    );
    manage(&mut state, &database, object(json!({})));
    let plan = plan_ok(&document(vec![]), &[zapi, database], &state);
    assert_eq!(order(&plan), ["- zapi", "- database"]);
}

#[test]
fn a_name_is_freed_before_it_is_claimed() {
    // `api` is renamed to `service`, and a new `api` is created: the rename goes first although
    // `api` sorts before `service`.
    let mut service = desired("service");
    service.renamed_from = Some(Box::new(reference("api")));
    let desired = document(vec![desired("api"), service]);
    let live_api = live(1, "api");
    let mut state = state();
    manage(&mut state, &live_api, object(json!({})));
    let plan = plan_ok(&desired, &[live_api], &state);
    assert_eq!(order(&plan), ["~ service", "+ api"]);
    assert_eq!(plan.steps()[1].depends_on, [plan.steps()[0].id]);
}

#[test]
fn a_rename_chain_runs_from_its_end() {
    // a → b and b → c: `b` must become `c` before `a` can become `b`.
    let mut b = desired("b");
    b.renamed_from = Some(Box::new(reference("a")));
    let mut c = desired("c");
    c.renamed_from = Some(Box::new(reference("b")));
    let mut state = state();
    let (live_a, live_b) = (live(1, "a"), live(2, "b"));
    manage(&mut state, &live_a, object(json!({})));
    manage(&mut state, &live_b, object(json!({})));
    let plan = plan_ok(&document(vec![b, c]), &[live_a, live_b], &state);
    let renames: Vec<(String, String)> = plan
        .steps()
        .iter()
        .filter_map(|step| step.rename.clone())
        .map(|rename| (rename.from, rename.to))
        .collect();
    assert_eq!(
        renames,
        [
            ("b".to_owned(), "c".to_owned()),
            ("a".to_owned(), "b".to_owned())
        ]
    );
}

#[test]
fn a_swap_goes_through_a_temporary_name_in_three_steps() {
    let (desired, live, state) = snapshots::swap();
    let plan = plan_ok(&desired, &live, &state);
    let temporary = swap_temporary_name("green", "blue");
    assert!(temporary.starts_with("blue-envform-swap-"));
    let renames: Vec<(String, String, Option<SwapPart>)> = plan
        .steps()
        .iter()
        .map(|step| {
            let rename = step.rename.clone().expect("every step renames");
            (rename.from, rename.to, step.swap)
        })
        .collect();
    assert_eq!(
        renames,
        [
            (
                "green".to_owned(),
                temporary.clone(),
                Some(SwapPart::ToTemporary)
            ),
            ("blue".to_owned(), "green".to_owned(), None),
            (temporary, "blue".to_owned(), Some(SwapPart::FromTemporary)),
        ]
    );
    assert_eq!(plan.steps()[0].record, StateRecord::Carry);
    assert_eq!(plan.steps()[1].depends_on, [StepId(1)]);
    assert_eq!(plan.steps()[2].depends_on, [StepId(1), StepId(2)]);
    // Only the last half carries the field changes; the summary counts two environments.
    assert!(plan.steps()[0].changes.is_empty());
    assert_eq!(plan.steps()[2].changes.len(), 1);
    assert_eq!(plan.summary().change, 2);
}

#[test]
fn an_interrupted_swap_is_finished_by_the_next_plan() {
    let (desired, live, state) = snapshots::swap();
    let plan = plan_ok(&desired, &live, &state);
    // Run the first half only: `green` (id 2) now has the temporary name.
    let mut live_after = live.clone();
    let mut state_after = state.clone();
    let first = &plan.steps()[0];
    let rename = first.rename.clone().expect("renames");
    for environment in &mut live_after {
        if environment.name == rename.from {
            environment.name = rename.to.clone();
        }
    }
    first.record_in(&mut state_after, id(2));
    let resumed = plan_ok(&desired, &live_after, &state_after);
    let renames: Vec<(String, String)> = resumed
        .steps()
        .iter()
        .filter_map(|step| step.rename.clone())
        .map(|rename| (rename.from, rename.to))
        .collect();
    assert_eq!(
        renames,
        [
            ("blue".to_owned(), "green".to_owned()),
            (rename.to, "blue".to_owned())
        ]
    );
    assert!(
        resumed
            .steps()
            .iter()
            .all(|step| step.action != Action::Delete)
    );
}

#[test]
fn the_first_environment_of_an_organization_precedes_every_other_create() {
    let (desired, live, state) = snapshots::first_environment();
    let plan = plan_ok(&desired, &live, &state);
    assert_eq!(order(&plan), ["+ beta", "+ alpha", "+ gamma"]);
    let first = plan.steps()[0].id;
    assert!(plan.steps()[0].wait_for_provisioning);
    assert!(
        plan.steps()[1..]
            .iter()
            .all(|step| step.depends_on.contains(&first))
    );
    assert!(
        plan.steps()[1..]
            .iter()
            .all(|step| !step.wait_for_provisioning)
    );
    // With any environment live, the organization is provisioned: no such edge.
    let plan = plan_ok(&desired, &[live_default()], &state);
    assert!(plan.steps().iter().all(|step| !step.wait_for_provisioning));
    assert!(
        plan.steps()[step_id(&plan, "gamma").0 as usize - 1]
            .depends_on
            .is_empty()
    );
}

fn live_default() -> crate::api::Environment {
    live(99, "default")
}

#[test]
fn a_cycle_through_names_and_depends_on_is_reported_whole() {
    // `api` (renamed to `service`) depends on a new `api`, which needs the name freed first.
    let mut service = desired("service");
    service.renamed_from = Some(Box::new(reference("api")));
    service.depends_on = vec![reference("api")];
    let desired = document(vec![desired("api"), service]);
    let live_api = live(1, "api");
    let mut state = state();
    manage(&mut state, &live_api, object(json!({})));
    let errors = plan_err(&desired, &[live_api], &state);
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(
        errors.errors[0].to_string(),
        "dependency cycle: api → service (frees the name `api`) → api"
    );
}

#[test]
fn independent_cycles_are_each_reported() {
    let mut a = desired("a");
    a.depends_on = vec![reference("b")];
    let mut b = desired("b");
    b.depends_on = vec![reference("a")];
    let mut x = desired("x");
    x.depends_on = vec![reference("y")];
    let mut y = desired("y");
    y.depends_on = vec![reference("x")];
    let mut z = desired("z");
    z.depends_on = vec![reference("z")];
    // `after` depends on a cycle: it is behind it, not part of it.
    let mut after = desired("after");
    after.depends_on = vec![reference("a")];
    let desired = document(vec![a, b, x, y, z, after, desired("free")]);
    let errors = plan_err(&desired, &[live_default()], &state());
    let messages: Vec<String> = errors.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        [
            "dependency cycle: a → b → a",
            "dependency cycle: x → y → x",
            "dependency cycle: z → z",
        ]
    );
}

#[test]
fn a_swap_once_applied_is_not_made_again() {
    let (desired, live, state) = snapshots::swap();
    let plan = plan_ok(&desired, &live, &state);
    // Apply the three renames.
    let mut live_after = live.clone();
    let mut state_after = state.clone();
    for step in plan.steps() {
        let rename = step.rename.clone().expect("renames");
        let environment_id = step.environment_id.expect("existing");
        for environment in &mut live_after {
            if environment.id == environment_id {
                environment.name = rename.to.clone();
                if let Some(change) = step.changes.first() {
                    environment.description = change
                        .after
                        .as_ref()
                        .and_then(|v| v.as_str())
                        .map(str::to_owned);
                }
            }
        }
        step.record_in(&mut state_after, environment_id);
    }
    let again = plan_ok(&desired, &live_after, &state_after);
    assert!(!again.has_changes(), "{:#?}", again.steps());
}
