//! Builders for desired, live and state values, so each test states only what matters to it.

use std::path::PathBuf;

use jiff::Timestamp;
use serde_json::Value;
use uuid::Uuid;

use crate::api::{Environment, EnvironmentId, JsonMap, OrganizationId, Status};
use crate::desired::{
    Desired, DesiredEnvironment, DesiredFields, Lifecycle, Location, Reference, SourceFile,
    SourceId, Sources,
};
use crate::model::Owner;
use crate::plan::{self, Plan, PlanErrors, PlanOptions};
use crate::state::{Lineage, ResourceState, STATE_VERSION, State};

/// A JSON object literal as a map.
pub(crate) fn object(value: Value) -> JsonMap {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// A location nowhere in particular (for desired values built by hand).
pub(crate) fn nowhere() -> Location {
    Location {
        source: SourceId(0),
        span: (0, 0).into(),
    }
}

/// A fixed environment id.
pub(crate) fn id(number: u128) -> EnvironmentId {
    EnvironmentId(Uuid::from_u128(number))
}

/// A desired environment with no fields.
pub(crate) fn desired(name: &str) -> DesiredEnvironment {
    DesiredEnvironment {
        name: name.to_owned(),
        fields: DesiredFields::default(),
        depends_on: Vec::new(),
        lifecycle: Lifecycle::default(),
        renamed_from: None,
        location: nowhere(),
        name_location: nowhere(),
    }
}

/// A desired environment with these fields.
pub(crate) fn desired_with(name: &str, fields: DesiredFields) -> DesiredEnvironment {
    DesiredEnvironment {
        fields,
        ..desired(name)
    }
}

/// A reference to `name` written nowhere in particular.
pub(crate) fn reference(name: &str) -> Reference {
    Reference {
        name: name.to_owned(),
        location: nowhere(),
    }
}

/// The lineage of [`state`], which the live environments of the fixtures carry as their owner.
pub(crate) const LINEAGE: Lineage = Lineage(Uuid::from_u128(0x1111));

/// The digest salt of the fixture state, fixed so the snapshots' digests are too.
pub(crate) const SALT: crate::model::DigestSalt = crate::model::DigestSalt::from_bytes([0x5a; 32]);

/// How the fixture state digests secret values.
pub(crate) fn digests() -> crate::plan::SecretDigests {
    crate::plan::SecretDigests::keyed(SALT)
}

/// The last-applied document of `environment`, digested with the fixture state's salt.
pub(crate) fn last_applied(environment: &DesiredEnvironment) -> JsonMap {
    crate::plan::last_applied(environment, digests())
}

/// The digest of `value` with the fixture state's salt.
pub(crate) fn secret_digest(value: &Value) -> String {
    digests().digest(value)
}

/// A live, active environment with fixed timestamps and no managed fields set, owned by the
/// configuration of [`state`].
pub(crate) fn live(number: u128, name: &str) -> Environment {
    Environment {
        settings: Some(
            Owner {
                lineage: LINEAGE,
                prevent_destroy: false,
            }
            .stamped(None),
        ),
        ..unowned(number, name)
    }
}

/// A live, active environment that no configuration owns.
pub(crate) fn unowned(number: u128, name: &str) -> Environment {
    let created = Timestamp::from_second(1_700_000_000).expect("valid timestamp");
    let updated = Timestamp::from_second(1_700_000_000 + i64::try_from(number).unwrap_or(0))
        .expect("valid timestamp");
    Environment {
        id: id(number),
        organization_id: Some(OrganizationId("org-1".to_owned())),
        name: name.to_owned(),
        display_name: Some(name.to_owned()),
        description: None,
        status: Status::Active,
        requested_status: None,
        configuration: None,
        metadata: None,
        tags: None,
        settings: None,
        execution_environment: None,
        temporal_namespace: Some("org-1.namespace".to_owned()),
        temporal_namespace_id: Some("ns-1".to_owned()),
        provisioning_workflow_id: Some("wf-1".to_owned()),
        provisioned_at: Some(created),
        error_message: None,
        // No workers: a test of disruption gives an environment some.
        active_workers: Some(0),
        idle_workers: Some(0),
        busy_workers: Some(0),
        created_at: Some(created),
        updated_at: Some(updated),
        created_by: Some("someone".to_owned()),
    }
}

/// An empty state with a fixed lineage, as if written once.
pub(crate) fn state() -> State {
    State {
        version: STATE_VERSION,
        lineage: LINEAGE,
        digest_salt: Some(SALT),
        digest_salt_unsaved: false,
        serial: 7,
        envform_version: "0.1.0".to_owned(),
        target: "embedded:test.db".to_owned(),
        resources: Default::default(),
        intents: Default::default(),
        unkept_fields: Default::default(),
    }
}

/// Records `environment` in `state` as managed with this last-applied document.
pub(crate) fn manage(state: &mut State, environment: &Environment, last_applied: JsonMap) {
    state.resources.insert(
        environment.name.clone(),
        ResourceState {
            id: environment.id,
            last_applied: last_applied.into(),
            prevent_destroy: false,
            depends_on: Vec::new(),
            renamed_from: None,
        },
    );
}

/// A desired document of these environments, digest fixed.
pub(crate) fn document(environments: Vec<DesiredEnvironment>) -> Desired {
    Desired {
        environments,
        digest: "0123456789abcdef".to_owned(),
        ..Desired::default()
    }
}

/// A desired document backed by a file text, for diagnostics that point into it.
pub(crate) fn located_document(text: &str, environments: Vec<DesiredEnvironment>) -> Desired {
    Desired {
        sources: Sources {
            files: vec![SourceFile {
                path: PathBuf::from("environments.yaml"),
                text: text.to_owned(),
            }],
        },
        ..document(environments)
    }
}

/// Where the `occurrence`-th (from 0) `needle` is in `text`.
pub(crate) fn find(text: &str, needle: &str, occurrence: usize) -> Location {
    let start = text
        .match_indices(needle)
        .nth(occurrence)
        .map(|(at, _)| at)
        .unwrap_or_else(|| panic!("`{needle}` #{occurrence} not in the text"));
    Location {
        source: SourceId(0),
        span: (start, needle.len()).into(),
    }
}

/// Plans with default options, failing the test on a plan error.
pub(crate) fn plan_ok(desired: &Desired, live: &[Environment], state: &State) -> Plan {
    match plan::diff(desired, live, state, &PlanOptions::default()) {
        Ok(plan) => plan,
        Err(errors) => panic!("unexpected plan errors: {}", render_errors(&errors)),
    }
}

/// Plans with default options, failing the test if the plan succeeds.
pub(crate) fn plan_err(desired: &Desired, live: &[Environment], state: &State) -> PlanErrors {
    plan_err_with(desired, live, state, &PlanOptions::default())
}

/// Plans with these options, failing the test if the plan succeeds.
pub(crate) fn plan_err_with(
    desired: &Desired,
    live: &[Environment],
    state: &State,
    options: &PlanOptions,
) -> PlanErrors {
    match plan::diff(desired, live, state, options) {
        Ok(plan) => panic!(
            "expected errors, got a plan:\n{}",
            plan::render::render_human(&plan, false)
        ),
        Err(errors) => errors,
    }
}

/// A diagnostic as the fixed colourless theme at width 100 renders it.
pub(crate) fn render_errors(errors: &PlanErrors) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(100);
    let mut out = String::new();
    handler
        .render_report(&mut out, errors)
        .expect("rendering to a string cannot fail");
    out
}

/// The API call of `step`, its desired and live environments looked up by name and id.
pub(crate) fn resolve_payload(
    step: &crate::plan::Step,
    desired: &Desired,
    live: &[Environment],
) -> Result<crate::plan::Payload, crate::plan::ResolveError> {
    let live = step
        .environment_id
        .and_then(|id| live.iter().find(|environment| environment.id == id));
    crate::plan::payload::resolve_payload(step, desired.environment(&step.name), live, digests())
}
