//! Phase: drift, every leaf of a last-applied field that live no longer has, and what the plan
//! does about it (overwrite, accept, ignore).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::api::Environment;
use crate::model::{ManagedField, Status};
use crate::plan::model::{Drift, DriftResolution};
use crate::plan::value::{self, ValuePath};
use crate::state::ResourceState;

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

/// Drift: every leaf of a last-applied field that live no longer has.
pub(super) fn record_drift(
    drift: &mut Vec<Drift>,
    live: &Environment,
    resource: &ResourceState,
    compared: &[Compared],
    ignored: &[Vec<String>],
    revealed: &BTreeSet<String>,
    not_kept: &[ManagedField],
) {
    for (wire_name, applied) in &resource.last_applied {
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
                now_owned = field.live_value(live, revealed);
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
