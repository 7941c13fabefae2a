//! The planner's promise, checked over random desired, live and state: executing a plan's steps in
//! order (against a small in-memory model of the service, recording each step in state) makes
//! live match the file on every managed field, and planning again finds nothing to do.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use super::fixtures::*;
use crate::api::{Environment, ExecutionEnvironment, Patch, Status};
use crate::desired::{Desired, DesiredFields};
use crate::plan::tests::fixtures::resolve_payload;
use crate::plan::{Action, ManagedField, Payload, Plan, PlanError, PlanOptions, diff};
use crate::state::State;

const NAMES: [&str; 5] = ["default", "alpha", "beta", "gamma", "delta"];

fn fields() -> impl Strategy<Value = DesiredFields> {
    (
        prop::option::of(prop::sample::select(vec!["Alpha", "Beta"])),
        prop::option::of(prop::sample::select(vec!["one", "two", "two\nlines"])),
        prop::option::of(prop::sample::select(vec![Status::Active, Status::Inactive])),
        prop::option::of(1..3_u64),
        prop::option::of(prop::sample::select(vec!["platform", "data"])),
        prop::option::of(prop::sample::select(vec![vec!["a"], vec!["a", "b"]])),
        prop::option::of(prop::sample::select(vec!["secret-1", "secret-2"])),
        prop::bool::ANY,
    )
        .prop_map(
            |(display_name, description, status, workers, team, tags, secret, reveal)| {
                DesiredFields {
                    display_name: display_name.map(str::to_owned),
                    description: description.map(str::to_owned),
                    status,
                    configuration: workers.map(|workers| object(json!({"max_workers": workers}))),
                    metadata: team.map(|team| object(json!({"team": team}))),
                    tags: tags.map(|tags| tags.into_iter().map(str::to_owned).collect()),
                    settings: None,
                    execution_environment: secret.map(|secret| {
                        let mut execution = ExecutionEnvironment::default();
                        execution.env_vars.insert("TOKEN".to_owned(), json!(secret));
                        Box::new(execution)
                    }),
                    // Sometimes the file marks the key `nonsensitive`: it converges the same way.
                    nonsensitive: if reveal {
                        std::iter::once("TOKEN".to_owned()).collect()
                    } else {
                        Default::default()
                    },
                }
            },
        )
}

/// One name's part of a random world.
#[derive(Debug, Clone)]
struct Slot {
    live: Option<DesiredFields>,
    /// Recorded in state: whether with live's id, and the last-applied fields.
    state: Option<(bool, DesiredFields)>,
    /// Desired: fields, `renamed_from` (an index into `NAMES`), `depends_on` on lower indexes.
    desired: Option<(DesiredFields, Option<usize>, Vec<bool>)>,
}

fn slot(rename_weight: f64) -> impl Strategy<Value = Slot> {
    (
        prop::option::of(fields()),
        prop::option::of((any::<bool>(), fields())),
        prop::option::of((
            fields(),
            prop::option::weighted(rename_weight, 1..NAMES.len()),
            prop::collection::vec(prop::bool::weighted(0.3), NAMES.len()),
        )),
    )
        .prop_map(|(live, state, desired)| Slot {
            live,
            state,
            desired,
        })
}

fn environment_from(number: u128, name: &str, fields: &DesiredFields) -> Environment {
    let mut environment = live(number, name);
    environment.display_name = fields.display_name.clone();
    environment.description = fields.description.clone();
    environment.status = fields.status.unwrap_or(Status::Active);
    environment.configuration = fields.configuration.clone();
    environment.metadata = fields.metadata.clone();
    environment.tags = fields.tags.clone();
    environment.execution_environment = fields.execution_environment.clone();
    environment
}

fn world(slots: &[Slot]) -> (Desired, Vec<Environment>, State) {
    let mut live_environments = Vec::new();
    let mut state = state();
    let mut environments = Vec::new();
    let mut renamed_from_taken = BTreeSet::new();
    for (index, (name, slot)) in NAMES.iter().zip(slots).enumerate() {
        let number = index as u128 + 1;
        if let Some(fields) = &slot.live {
            live_environments.push(environment_from(number, name, fields));
        }
        if let Some((fields, renamed_from, depends_on)) = &slot.desired {
            let mut environment = desired_with(name, fields.clone());
            // One environment per old name, never its own, never `default` (a plan error).
            environment.renamed_from = renamed_from
                .filter(|&from| from != index && renamed_from_taken.insert(from))
                .map(|from| Box::new(reference(NAMES[from])));
            environment.depends_on = depends_on[..index]
                .iter()
                .enumerate()
                .filter(|&(other, &wanted)| wanted && slots[other].desired.is_some())
                .map(|(other, _)| reference(NAMES[other]))
                .collect();
            environments.push(environment);
        }
    }
    for (index, (name, slot)) in NAMES.iter().zip(slots).enumerate() {
        let Some((same_id, fields)) = &slot.state else {
            continue;
        };
        // State never manages `default` unless the file does (deleting it is a plan error).
        if *name == "default" && !environments.iter().any(|e| e.name == "default") {
            continue;
        }
        let number = if *same_id && slot.live.is_some() {
            index as u128 + 1
        } else {
            100 + index as u128
        };
        let recorded = desired_with(name, fields.clone());
        manage(&mut state, &live(number, name), last_applied(&recorded));
    }
    (document(environments), live_environments, state)
}

/// Applies one step to the model of the service and records it in state, as apply would.
fn execute(
    plan: &Plan,
    desired: &Desired,
    live: &mut Vec<Environment>,
    state: &mut State,
) -> Result<(), TestCaseError> {
    let mut next_id = 1_000_u128;
    for step in plan.steps() {
        for dependency in &step.depends_on {
            prop_assert!(
                *dependency < step.id,
                "step {} runs before {}",
                step.id,
                dependency
            );
        }
        let payload = resolve_payload(step, desired, live)
            .map_err(|error| TestCaseError::fail(error.to_string()))?;
        let acted_on = match payload {
            Payload::Create(body) => {
                prop_assert!(
                    !live.iter().any(|environment| environment.name == body.name),
                    "create of a taken name {}",
                    body.name
                );
                next_id += 1;
                let mut environment = super::fixtures::live(next_id, &body.name);
                environment.display_name = Some(body.display_name.unwrap_or(body.name.clone()));
                environment.description = body.description;
                environment.status = body.status.unwrap_or(Status::Active);
                environment.configuration = body.configuration;
                environment.metadata = body.metadata;
                environment.tags = body.tags;
                environment.settings = body.settings;
                environment.execution_environment = body.execution_environment.map(Box::new);
                let id = environment.id;
                live.push(environment);
                id
            }
            Payload::Update { id, patch } => {
                if let Patch::Set(name) = &patch.name {
                    prop_assert!(
                        !live.iter().any(|environment| &environment.name == name),
                        "rename to a taken name {name}"
                    );
                }
                let environment = live
                    .iter_mut()
                    .find(|environment| environment.id == id)
                    .ok_or_else(|| TestCaseError::fail(format!("update of a missing {id}")))?;
                if let Patch::Set(name) = patch.name {
                    environment.name = name;
                }
                if let Patch::Set(status) = patch.status {
                    environment.status = status;
                }
                apply(&mut environment.display_name, patch.display_name);
                apply(&mut environment.description, patch.description);
                apply(&mut environment.configuration, patch.configuration);
                apply(&mut environment.metadata, patch.metadata);
                apply(&mut environment.tags, patch.tags);
                apply(&mut environment.settings, patch.settings);
                let execution = match patch.execution_environment {
                    Patch::Unchanged => Patch::Unchanged,
                    Patch::Clear => Patch::Clear,
                    Patch::Set(execution) => Patch::Set(Box::new(execution)),
                };
                apply(&mut environment.execution_environment, execution);
                id
            }
            Payload::Delete { id } => {
                let position = live
                    .iter()
                    .position(|environment| environment.id == id)
                    .ok_or_else(|| TestCaseError::fail(format!("delete of a missing {id}")))?;
                prop_assert_ne!(live[position].name.as_str(), "default");
                live.remove(position);
                id
            }
            Payload::StateOnly => step
                .environment_id
                .ok_or_else(|| TestCaseError::fail("a state-only step without an id"))?,
        };
        step.record_in(state, acted_on);
    }
    Ok(())
}

fn apply<T>(slot: &mut Option<T>, patch: Patch<T>) {
    match patch {
        Patch::Unchanged => {}
        Patch::Clear => *slot = None,
        Patch::Set(value) => *slot = Some(value),
    }
}

fn check(slots: &[Slot]) -> Result<(), TestCaseError> {
    let (desired, mut live, mut state) = world(slots);
    let options = PlanOptions {
        force: true,
        ..PlanOptions::default()
    };
    let plan = match diff(&desired, &live, &state, &options) {
        Ok(plan) => plan,
        Err(errors) => {
            // Renames and dependencies can knot into a cycle; that is the only refusal allowed.
            for error in &errors.errors {
                prop_assert!(
                    matches!(error, PlanError::DependencyCycle { .. }),
                    "unexpected plan error: {error}"
                );
            }
            return Ok(());
        }
    };
    // The summary counts main steps; it must agree with the plan grouped per environment.
    let changes = plan.resource_changes();
    let count = |actions: &[Action]| {
        changes
            .iter()
            .filter(|change| actions.contains(&change.action))
            .count()
    };
    let summary = plan.summary();
    prop_assert_eq!(summary.add, count(&[Action::Create]));
    prop_assert_eq!(summary.change, count(&[Action::Update, Action::Rename]));
    prop_assert_eq!(summary.destroy, count(&[Action::Delete]));
    prop_assert_eq!(summary.adopt, count(&[Action::Adopt]));
    execute(&plan, &desired, &mut live, &mut state)?;

    for environment in &desired.environments {
        let found = live
            .iter()
            .find(|candidate| candidate.name == environment.name)
            .ok_or_else(|| TestCaseError::fail(format!("{} is missing", environment.name)))?;
        for field in ManagedField::ALL {
            if let Some(wanted) = field.desired_value(&environment.fields, digests()) {
                let actual = field.live_value(found, &environment.fields.nonsensitive, digests());
                prop_assert_eq!(
                    Some(&wanted),
                    actual.as_ref(),
                    "{}.{}",
                    environment.name,
                    field
                );
            }
        }
        prop_assert_eq!(
            state
                .resources
                .get(&environment.name)
                .map(|resource| resource.id),
            Some(found.id)
        );
    }

    let again = diff(&desired, &live, &state, &options)
        .map_err(|errors| TestCaseError::fail(errors.to_string()))?;
    prop_assert!(!again.has_changes(), "{:#?}", again.steps());
    prop_assert!(again.drift().is_empty(), "{:#?}", again.drift());
    for step in again.steps() {
        prop_assert_eq!(step.action, Action::NoOp);
        prop_assert!(step.changes.is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn applying_a_plan_converges_and_a_second_plan_is_empty(
        slots in prop::collection::vec(slot(0.3), NAMES.len())
    ) {
        check(&slots)?;
    }

    /// Mostly renames, so chains, swaps and rename-versus-create knots come up often.
    #[test]
    fn applying_a_rename_heavy_plan_converges(
        slots in prop::collection::vec(slot(0.9), NAMES.len())
    ) {
        check(&slots)?;
    }
}
