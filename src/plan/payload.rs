//! Turns a step into the API call it stands for. The plan holds digests in place of secret
//! values; here each digest is matched back to the real value in the desired file (or, for a value
//! kept under `ignore_changes`, in live), so a plan whose secrets changed since is refused.

use std::fmt;

use serde_json::Value;

use super::field::{SecretDigests, is_digest};
use super::model::{Action, FieldChange, Step};
use crate::api::{CreateEnvironment, Environment, Patch, UpdateEnvironment};
use crate::desired::DesiredEnvironment;
use crate::model::{EnvironmentId, ExecutionEnvironment, JsonMap, ManagedField, Owner, Status};

/// The API call of a step, with real secret values.
#[derive(Clone, PartialEq)]
pub enum Payload {
    /// `POST` this body.
    Create(CreateEnvironment),
    /// `PATCH` this environment with this body.
    Update {
        /// The environment.
        id: EnvironmentId,
        /// The fields sent.
        patch: UpdateEnvironment,
    },
    /// `DELETE` this environment.
    Delete {
        /// The environment.
        id: EnvironmentId,
    },
    /// No call: the step only writes state.
    StateOnly,
}

impl fmt::Debug for Payload {
    // The bodies hold secret values: show the shape only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Create(body) => write!(f, "Create({:?})", body.name),
            Payload::Update { id, patch } => {
                let sent = serde_json::to_value(patch)
                    .ok()
                    .and_then(|value| value.as_object().map(|o| o.keys().cloned().collect()))
                    .unwrap_or_else(Vec::<String>::new);
                write!(f, "Update({id}, fields: {sent:?})")
            }
            Payload::Delete { id } => write!(f, "Delete({id})"),
            Payload::StateOnly => f.write_str("StateOnly"),
        }
    }
}

/// Why a step cannot be turned into its API call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum ResolveError {
    /// A secret's digest matches no value in the file nor live: it changed since the plan.
    #[error(
        "`execution_environment.env_vars.{key}` of `{name}` is not the value the plan was made with"
    )]
    #[diagnostic(
        code(envform::plan::secret_changed),
        help("run `envform plan` again and review the new plan")
    )]
    SecretChanged {
        /// The environment.
        name: String,
        /// The variable.
        key: String,
    },
    /// A step that acts on a live environment has no id (a damaged saved plan).
    #[error("step {step} (`{name}`) has no environment id")]
    #[diagnostic(code(envform::plan::malformed))]
    MissingId {
        /// The step's id.
        step: u32,
        /// The environment.
        name: String,
    },
    /// A value in the plan does not fit its field (a damaged saved plan).
    #[error("the planned `{field}` of `{name}` is not a valid value: {message}")]
    #[diagnostic(code(envform::plan::malformed))]
    Malformed {
        /// The environment.
        name: String,
        /// The field.
        field: ManagedField,
        /// What is wrong.
        message: String,
    },
}

/// The API call of `step` (whose digests were made with `digests`), with the real secret values
/// from its desired environment (or from its live one, for values kept under `ignore_changes`),
/// and the ownership stamp merged into the `settings` it sends.
pub fn resolve_payload(
    step: &Step,
    desired: Option<&DesiredEnvironment>,
    live: Option<&Environment>,
    digests: SecretDigests,
) -> Result<Payload, ResolveError> {
    let resolver = Resolver {
        step,
        digests,
        desired_vars: desired
            .and_then(|environment| environment.fields.execution_environment.as_ref())
            .map(|execution| &execution.env_vars),
        live_vars: live
            .and_then(|environment| environment.execution_environment.as_ref())
            .map(|execution| &execution.env_vars),
        revealed: desired.map(|environment| &environment.fields.nonsensitive),
    };
    if step.action == Action::Create {
        let mut body = CreateEnvironment::named(&step.name);
        for change in &step.changes {
            if let Some(value) = &change.after {
                resolver.set_create(&mut body, change.field, value)?;
            }
        }
        if let Some(owner) = step.owner {
            body.settings = Some(owner.stamped(body.settings.take()));
        }
        return Ok(Payload::Create(body));
    }
    if !step.calls_api() {
        return Ok(Payload::StateOnly);
    }
    let id = step.environment_id.ok_or_else(|| ResolveError::MissingId {
        step: step.id.0,
        name: step.name.clone(),
    })?;
    if step.action == Action::Delete {
        return Ok(Payload::Delete { id });
    }
    let mut patch = UpdateEnvironment::default();
    if let Some(rename) = &step.rename {
        patch.name = Patch::Set(rename.to.clone());
    }
    for change in &step.changes {
        resolver.set_update(&mut patch, change)?;
    }
    stamp_settings(&mut patch, step, live);
    Ok(Payload::Update { id, patch })
}

/// `settings` is sent whole: whenever it is sent, or the step writes a stamp, the stamp goes with
/// it (the step's new one, else the one live has), so an update never drops the ownership.
fn stamp_settings(patch: &mut UpdateEnvironment, step: &Step, live: Option<&Environment>) {
    let live_settings = live.and_then(|environment| environment.settings.as_ref());
    let Some(owner) = step.owner.or_else(|| Owner::of(live_settings)) else {
        return;
    };
    let settings = match std::mem::take(&mut patch.settings) {
        Patch::Set(settings) => Some(settings),
        Patch::Clear => None,
        Patch::Unchanged if step.owner.is_some() => Owner::unstamped(live_settings),
        Patch::Unchanged => return,
    };
    patch.settings = Patch::Set(owner.stamped(settings));
}

struct Resolver<'a> {
    step: &'a Step,
    /// How the plan's digests were made (the state's salt).
    digests: SecretDigests,
    desired_vars: Option<&'a JsonMap>,
    live_vars: Option<&'a JsonMap>,
    /// The keys the file marks `nonsensitive`: the plan holds their values, not digests.
    revealed: Option<&'a std::collections::BTreeSet<String>>,
}

impl Resolver<'_> {
    fn set_create(
        &self,
        body: &mut CreateEnvironment,
        field: ManagedField,
        value: &Value,
    ) -> Result<(), ResolveError> {
        match field {
            ManagedField::DisplayName => body.display_name = Some(self.string(field, value)?),
            ManagedField::Description => body.description = Some(self.string(field, value)?),
            ManagedField::Status => body.status = Some(self.status(value)?),
            ManagedField::Configuration => body.configuration = Some(self.object(field, value)?),
            ManagedField::Metadata => body.metadata = Some(self.object(field, value)?),
            ManagedField::Tags => body.tags = Some(self.strings(field, value)?),
            ManagedField::Settings => body.settings = Some(self.object(field, value)?),
            ManagedField::ExecutionEnvironment => {
                body.execution_environment = Some(self.execution(value)?);
            }
        }
        Ok(())
    }

    fn set_update(
        &self,
        patch: &mut UpdateEnvironment,
        change: &FieldChange,
    ) -> Result<(), ResolveError> {
        let Some(value) = &change.after else {
            patch.clear(change.field);
            return Ok(());
        };
        let field = change.field;
        match field {
            ManagedField::DisplayName => {
                patch.display_name = Patch::Set(self.string(field, value)?);
            }
            ManagedField::Description => {
                patch.description = Patch::Set(self.string(field, value)?);
            }
            ManagedField::Status => patch.status = Patch::Set(self.status(value)?),
            ManagedField::Configuration => {
                patch.configuration = Patch::Set(self.object(field, value)?);
            }
            ManagedField::Metadata => patch.metadata = Patch::Set(self.object(field, value)?),
            ManagedField::Tags => patch.tags = Patch::Set(self.strings(field, value)?),
            ManagedField::Settings => patch.settings = Patch::Set(self.object(field, value)?),
            ManagedField::ExecutionEnvironment => {
                patch.execution_environment = Patch::Set(self.execution(value)?);
            }
        }
        Ok(())
    }

    fn malformed(&self, field: ManagedField, message: impl Into<String>) -> ResolveError {
        ResolveError::Malformed {
            name: self.step.name.clone(),
            field,
            message: message.into(),
        }
    }

    fn string(&self, field: ManagedField, value: &Value) -> Result<String, ResolveError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.malformed(field, "expected a string"))
    }

    fn status(&self, value: &Value) -> Result<Status, ResolveError> {
        self.string(ManagedField::Status, value)?.parse().map_err(
            |error: crate::api::UnknownStatus| {
                self.malformed(ManagedField::Status, error.to_string())
            },
        )
    }

    fn object(&self, field: ManagedField, value: &Value) -> Result<JsonMap, ResolveError> {
        value
            .as_object()
            .cloned()
            .ok_or_else(|| self.malformed(field, "expected an object"))
    }

    fn strings(&self, field: ManagedField, value: &Value) -> Result<Vec<String>, ResolveError> {
        value
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .map(|item| item.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| self.malformed(field, "expected a list of strings"))
    }

    /// The execution environment with each digest replaced by the value it stands for.
    fn execution(&self, value: &Value) -> Result<ExecutionEnvironment, ResolveError> {
        let field = ManagedField::ExecutionEnvironment;
        let mut object = self.object(field, value)?;
        if let Some(vars) = object.get_mut("env_vars") {
            let Value::Object(vars) = vars else {
                return Err(self.malformed(field, "`env_vars` is not an object"));
            };
            for (key, slot) in vars.iter_mut() {
                *slot = self.secret(key, slot)?;
            }
        }
        serde_json::from_value(Value::Object(object))
            .map_err(|error| self.malformed(field, error.to_string()))
    }

    fn secret(&self, key: &str, digest: &Value) -> Result<Value, ResolveError> {
        let changed = || ResolveError::SecretChanged {
            name: self.step.name.clone(),
            key: key.to_owned(),
        };
        let plain = digest.as_str().is_some_and(|text| !is_digest(text));
        if plain && self.revealed.is_some_and(|revealed| revealed.contains(key)) {
            return Ok(digest.clone());
        }
        let digest = digest
            .as_str()
            .filter(|text| is_digest(text))
            .ok_or_else(changed)?;
        [self.desired_vars, self.live_vars]
            .into_iter()
            .flatten()
            .filter_map(|vars| vars.get(key))
            .find(|value| self.digests.matches(value, digest))
            .cloned()
            .ok_or_else(changed)
    }
}
