//! One step against the API: the call, the checks around it (an ambiguous create is looked up by
//! name before anything else is tried), waiting for provisioning, and checking what the service
//! kept (the environment its answer returns) against what was sent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::progress::Waiting;
use crate::api::{
    CreateEnvironment, Environment, EnvironmentError, EnvironmentId, EnvironmentsApi, Status,
};
use crate::plan::{ManagedField, Payload, Step, StepId};

/// What a step needs besides itself.
#[derive(Clone)]
pub(crate) struct StepContext {
    /// The API.
    pub(crate) api: Arc<dyn EnvironmentsApi>,
    /// How long to wait for provisioning.
    pub(crate) wait_timeout: Duration,
    /// First delay between provisioning polls (doubles up to 2 s).
    pub(crate) poll_interval: Duration,
    /// What each running step waits for, read by the executor when it reports a long wait.
    pub(crate) waits: WaitBoard,
    /// How the plan's secret values were digested (the state's salt), to read live alike.
    pub(crate) digests: crate::plan::SecretDigests,
}

/// What each running step is waiting for; a step absent from it waits for the API's answer.
#[derive(Debug, Clone, Default)]
pub(crate) struct WaitBoard(Arc<Mutex<BTreeMap<StepId, Waiting>>>);

impl WaitBoard {
    /// Notes that `step` now waits for `waiting`.
    fn set(&self, step: StepId, waiting: Waiting) {
        if let Ok(mut waits) = self.0.lock() {
            waits.insert(step, waiting);
        }
    }

    /// What `step` waits for.
    pub(crate) fn get(&self, step: StepId) -> Waiting {
        self.0
            .lock()
            .ok()
            .and_then(|waits| waits.get(&step).copied())
            .unwrap_or(Waiting::Answer)
    }

    /// Forgets a finished step.
    pub(crate) fn remove(&self, step: StepId) {
        if let Ok(mut waits) = self.0.lock() {
            waits.remove(&step);
        }
    }
}

/// A finished step.
#[derive(Debug, Default)]
pub(crate) struct StepSuccess {
    /// The environment acted on (the new id for a create).
    pub(crate) environment_id: Option<EnvironmentId>,
    /// Fields the service did not keep, and other things worth a line.
    pub(crate) warnings: Vec<String>,
    /// Fields sent with a value that came back as sent (wire names).
    pub(crate) kept: Vec<String>,
    /// Fields sent with a value that came back absent (wire names).
    pub(crate) unkept: Vec<String>,
}

/// A step that did not finish.
#[derive(Debug)]
pub(crate) enum StepFailure {
    /// Refused; nothing changed.
    Failed(String),
    /// Outcome not known.
    Unknown(String),
}

/// Runs `step` with its resolved `payload`.
pub(crate) async fn run(
    step: &Step,
    payload: Payload,
    context: &StepContext,
) -> Result<StepSuccess, StepFailure> {
    match payload {
        Payload::StateOnly => Ok(StepSuccess {
            environment_id: step.environment_id,
            ..StepSuccess::default()
        }),
        Payload::Create(body) => create(step, &body, context).await,
        Payload::Update { id, patch } => {
            if step.wait_for_provisioning {
                wait_for_provisioning(step.id, id, context).await?;
            }
            context.waits.set(step.id, Waiting::Answer);
            // The answer is the environment as the service kept it: what the check below reads.
            let environment = match context.api.update(id, &patch).await {
                Ok(environment) => environment,
                Err(error) if error.is_ambiguous() => {
                    return Err(StepFailure::Unknown(format!(
                        "{error}; the update may or may not have been applied, run `envform plan` to see"
                    )));
                }
                Err(error) => return Err(StepFailure::Failed(error.to_string())),
            };
            Ok(checked(step, &environment, Vec::new(), context.digests))
        }
        Payload::Delete { id } => match context.api.delete(id).await {
            // Already gone is what a delete wants.
            Ok(()) | Err(EnvironmentError::NotFound { .. }) => Ok(StepSuccess {
                environment_id: Some(id),
                ..StepSuccess::default()
            }),
            Err(error) if error.is_ambiguous() => match context.api.get(id).await {
                Err(EnvironmentError::NotFound { .. }) => Ok(StepSuccess {
                    environment_id: Some(id),
                    ..StepSuccess::default()
                }),
                _ => Err(StepFailure::Unknown(format!(
                    "{error}; the environment still exists"
                ))),
            },
            Err(error) => Err(StepFailure::Failed(error.to_string())),
        },
    }
}

async fn create(
    step: &Step,
    body: &CreateEnvironment,
    context: &StepContext,
) -> Result<StepSuccess, StepFailure> {
    let mut warnings = Vec::new();
    let created = match context.api.create(body).await {
        Ok(environment) => environment,
        // The POST may have been committed before the answer was lost: look before acting again.
        Err(error) if error.is_ambiguous() => match find_by_name(&body.name, context).await {
            Some(environment) => {
                warnings.push(format!(
                    "the create's answer was lost ({error}); adopted the environment the service made"
                ));
                environment
            }
            None => {
                return Err(StepFailure::Failed(format!(
                    "{error}; the service has no `{}`, so nothing was created",
                    body.name
                )));
            }
        },
        Err(error) => return Err(StepFailure::Failed(error.to_string())),
    };
    let environment = match created.status {
        // Read again until provisioning ends; `error` (also answered at once, when the namespace
        // failed before) fails the step.
        Status::Provisioning | Status::Error => {
            wait_for_provisioning(step.id, created.id, context).await?
        }
        _ => created,
    };
    Ok(checked(step, &environment, warnings, context.digests))
}

/// The success of `step`, with what the service kept of what it was sent (read from
/// `environment`, the service's answer).
fn checked(
    step: &Step,
    environment: &Environment,
    mut warnings: Vec<String>,
    digests: crate::plan::SecretDigests,
) -> StepSuccess {
    let mut success = StepSuccess {
        environment_id: Some(environment.id),
        ..StepSuccess::default()
    };
    for (field, kept) in kept_fields(step, environment, digests) {
        let name = field.wire_name().to_owned();
        match kept {
            Kept::AsSent => success.kept.push(name),
            Kept::Absent => {
                warnings.push(format!(
                    "the service did not keep `{field}` (it is absent); this control plane is \
                     recorded as not keeping it, and later plans leave it alone"
                ));
                success.unkept.push(name);
            }
            Kept::Different => warnings.push(format!(
                "the service did not keep `{field}` as sent (it is different)"
            )),
        }
    }
    success.warnings = warnings;
    success
}

async fn find_by_name(name: &str, context: &StepContext) -> Option<Environment> {
    context
        .api
        .list(None)
        .await
        .ok()?
        .into_iter()
        .find(|environment| environment.name == name)
}

async fn read_back(id: EnvironmentId, context: &StepContext) -> Result<Environment, StepFailure> {
    context.api.get(id).await.map_err(|error| {
        StepFailure::Unknown(format!(
            "the change was sent, but reading it back failed: {error}"
        ))
    })
}

/// Polls until the environment has left `provisioning`, with growing pauses; `error` fails the
/// step with the service's message.
async fn wait_for_provisioning(
    step: StepId,
    id: EnvironmentId,
    context: &StepContext,
) -> Result<Environment, StepFailure> {
    context.waits.set(step, Waiting::Provisioning);
    let deadline = Instant::now() + context.wait_timeout;
    let mut delay = context.poll_interval;
    loop {
        let environment = read_back(id, context).await?;
        match environment.status {
            Status::Provisioning => {}
            Status::Error => {
                return Err(StepFailure::Failed(format!(
                    "provisioning failed: {}",
                    environment
                        .error_message
                        .as_deref()
                        .unwrap_or("the service gave no message")
                )));
            }
            _ => return Ok(environment),
        }
        if Instant::now() + delay > deadline {
            return Err(StepFailure::Failed(format!(
                "still provisioning after {:.0?} (--wait-timeout)",
                context.wait_timeout
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// The `env_vars` keys of a sent execution environment whose values the plan holds plain (the
/// file's `nonsensitive`), so live is compared in the same form.
fn revealed_keys(sent: &serde_json::Value) -> std::collections::BTreeSet<String> {
    sent.get("env_vars")
        .and_then(serde_json::Value::as_object)
        .map(|vars| {
            vars.iter()
                .filter(|(_, value)| {
                    value
                        .as_str()
                        .is_some_and(|text| !crate::plan::is_digest(text))
                })
                .map(|(key, _)| key.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// What the service did with one field it was sent.
enum Kept {
    /// It came back as sent.
    AsSent,
    /// It came back absent (docs/src/reference/compatibility.md: the production service drops
    /// `configuration` and `metadata`).
    Absent,
    /// It came back with another value.
    Different,
}

/// Each field the step sent a value for (not the status, which waits for provisioning and which
/// the service sets itself meanwhile), and what came back.
fn kept_fields(
    step: &Step,
    environment: &Environment,
    digests: crate::plan::SecretDigests,
) -> Vec<(ManagedField, Kept)> {
    step.changes
        .iter()
        .filter_map(|change| {
            let sent = change.after.as_ref()?;
            // An empty collection comes back as absent: the service writes both as `[]`/`{}`.
            if change.field == ManagedField::Status || crate::plan::is_empty_collection(sent) {
                return None;
            }
            let kept = match change
                .field
                .live_value(environment, &revealed_keys(sent), digests)
            {
                None => Kept::Absent,
                Some(value) if &value == sent => Kept::AsSent,
                Some(_) => Kept::Different,
            };
            Some((change.field, kept))
        })
        .collect()
}
