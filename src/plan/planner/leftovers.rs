//! Phase: what no desired environment took. Live environments that state manages are deleted
//! (unmanaged ones only with `options.prune`, and never `default`); state entries whose
//! environment is gone live are forgotten.

use std::collections::BTreeSet;

use foldhash::HashSet;

use super::context::Planner;
use super::fields::Taken;
use crate::api::Environment;
use crate::model::{DEFAULT_ENVIRONMENT, ManagedField, Owner};
use crate::plan::error::{DefaultOperation, PlanError};
use crate::plan::model::{Action, FieldChange, StateRecord, Step, StepNote, Unmanaged};

impl<'a> Planner<'a> {
    /// Live environments no desired one took: deleted when state manages them (or with
    /// `options.prune`), otherwise listed as unmanaged. Returns every name accounted for.
    pub(super) fn plan_leftover_live<'n>(&mut self, taken: Taken<'n>) -> HashSet<&'n str>
    where
        'a: 'n,
    {
        let Taken {
            live: used_live,
            names: mut accounted,
        } = taken;
        let mut leftover: Vec<&Environment> = self
            .live_by_name
            .values()
            .copied()
            .filter(|live| !used_live.contains(&live.id) && self.in_scope(&live.name))
            .collect();
        leftover.sort_by(|left, right| left.name.cmp(&right.name));
        for live in leftover {
            let recorded = self
                .state
                .resources
                .get(&live.name)
                .filter(|resource| resource.id == live.id);
            // Another configuration's environment is never deleted, pruned or listed here.
            if let Some(owner) = Owner::of(live.settings.as_ref())
                && owner.lineage != self.state.lineage
            {
                if recorded.is_some() {
                    self.errors.push(PlanError::OwnedElsewhere {
                        name: live.name.clone(),
                        owner,
                        doing: "delete",
                    });
                } else {
                    self.owned_elsewhere += 1;
                }
                continue;
            }
            let note = match recorded {
                Some(resource) => {
                    if live.name == DEFAULT_ENVIRONMENT {
                        self.errors.push(PlanError::ProtectedDefault {
                            operation: DefaultOperation::Deleted,
                            source_code: None,
                            span: None,
                        });
                        continue;
                    }
                    if resource.prevent_destroy {
                        self.errors.push(PlanError::PreventDestroy {
                            name: live.name.clone(),
                            source_code: None,
                            span: None,
                        });
                        continue;
                    }
                    None
                }
                None if self.desired.options.prune && live.name != DEFAULT_ENVIRONMENT => {
                    Some(StepNote::Pruned)
                }
                None => {
                    self.unmanaged.push(Unmanaged {
                        name: live.name.clone(),
                        environment_id: live.id,
                        status: live.status,
                    });
                    continue;
                }
            };
            accounted.insert(&live.name);
            let changes = ManagedField::ALL
                .into_iter()
                .filter_map(|field| {
                    Some(FieldChange {
                        field,
                        before: Some(field.live_value(live, &BTreeSet::new(), self.digests)?),
                        after: None,
                    })
                })
                .collect();
            self.steps.push(Step {
                changes,
                notes: note.into_iter().collect(),
                ..Step::new(
                    Action::Delete,
                    &live.name,
                    Some(live.id),
                    StateRecord::Forget,
                )
            });
        }
        accounted
    }

    /// State entries nothing above used: their environment is gone live; only state changes.
    pub(super) fn plan_leftover_state(&mut self, accounted: &HashSet<&str>) {
        for (name, resource) in &self.state.resources {
            if accounted.contains(name.as_str()) || !self.in_scope(name) {
                continue;
            }
            self.steps.push(Step {
                notes: vec![StepNote::GoneOutside],
                ..Step::new(Action::NoOp, name, Some(resource.id), StateRecord::Forget)
            });
        }
    }
}
