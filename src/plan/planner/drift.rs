//! Phase: drift, every leaf of a last-applied field that live no longer has, and what the plan
//! does about it (overwrite, accept, ignore).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::Environment;
use crate::model::{JsonMap, ManagedField, Status};
use crate::plan::field::SecretDigests;
use crate::plan::model::{Drift, DriftResolution};
use crate::plan::value::{self, ValuePath};

/// One managed field of a desired environment set beside live.
pub(super) struct Compared {
    pub(super) field: ManagedField,
    /// Whether the desired file sets the field (else it is cleared, or ignored).
    pub(super) in_file: bool,
    /// Live's value, when it is not `after`.
    pub(super) live_if_different: Option<Option<Value>>,
    /// The value the plan leaves.
    pub(super) after: Option<Value>,
}

/// What the drift of one environment is found from.
pub(super) struct DriftInputs<'a> {
    /// The live environment.
    pub(super) live: &'a Environment,
    /// What state recorded as last applied to it.
    pub(super) applied: &'a JsonMap,
    /// The `env_vars` the file sets (to read digests recorded before digests were salted).
    pub(super) desired_vars: Option<&'a JsonMap>,
    /// Each field compared against live.
    pub(super) compared: &'a [Compared],
    /// The `ignore_changes` paths.
    pub(super) ignored: &'a [Vec<String>],
    /// The `env_vars` keys shown plain.
    pub(super) revealed: &'a BTreeSet<String>,
    /// Fields the control plane does not keep.
    pub(super) not_kept: &'a [ManagedField],
    /// How secret values are digested.
    pub(super) digests: SecretDigests,
}

/// Drift: every leaf of a last-applied field that live no longer has.
pub(super) fn record_drift(drift: &mut Vec<Drift>, inputs: DriftInputs<'_>) {
    let DriftInputs {
        live,
        applied: last_applied,
        desired_vars,
        compared,
        ignored,
        revealed,
        not_kept,
        digests,
    } = inputs;
    let live_vars = live
        .execution_environment
        .as_ref()
        .map(|execution| &execution.env_vars);
    for (wire_name, applied) in last_applied {
        let Some(field) = ManagedField::from_wire_name(wire_name) else {
            continue;
        };
        // The control plane never kept it: its absence is no one's change.
        if not_kept.contains(&field) {
            continue;
        }
        // `provisioning` is the service's own transition, not a change made by someone.
        if field == ManagedField::Status && live.status == Status::Provisioning {
            continue;
        }
        // A digest recorded before digests were salted reads as the salted one of the value it
        // stands for, so the upgrade shows no drift.
        let upgraded = (field == ManagedField::ExecutionEnvironment)
            .then(|| digests.upgraded(applied, [desired_vars, live_vars]))
            .flatten();
        let applied = upgraded.as_ref().unwrap_or(applied);
        let applied = (!applied.is_null()).then_some(applied);
        let found = compared.iter().find(|compared| compared.field == field);
        let now_owned;
        let (now, after) = match found {
            Some(compared) => {
                let after = compared.after.as_ref();
                let now = compared
                    .live_if_different
                    .as_ref()
                    .map_or(after, Option::as_ref);
                (now, after)
            }
            // A field left alone stays as live has it.
            None => {
                now_owned = field.live_value(live, revealed, digests);
                (now_owned.as_ref(), now_owned.as_ref())
            }
        };
        for difference in value::leaf_differences(applied, now) {
            let mut path = vec![wire_name.clone()];
            path.extend(difference.path.iter().cloned());
            let resolution = if ignored.iter().any(|prefix| path.starts_with(prefix)) {
                DriftResolution::Ignored
            } else if value::get(after, &difference.path) == difference.after.as_ref() {
                DriftResolution::Accepted
            } else {
                DriftResolution::Overwritten
            };
            drift.push(Drift {
                name: live.name.clone(),
                path: ValuePath(path),
                last_applied: difference.before,
                live: difference.after,
                resolution,
            });
        }
    }
}
