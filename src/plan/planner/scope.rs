//! Phase: the names `--target` reaches. Everything outside them is invisible to the later phases.

use std::collections::BTreeSet;

use super::context::Planner;
use super::identity::swap_temporary_name;
use crate::plan::error::PlanError;
use crate::plan::warning::PlanWarning;

impl<'a> Planner<'a> {
    /// The names `--target` reaches: the targets, what they depend on, the renames they are part
    /// of, and, for a target that is deleted, what depends on it. `None` when there are no
    /// targets.
    pub(super) fn scope(&mut self) -> Option<BTreeSet<String>> {
        if self.options.targets.is_empty() {
            return None;
        }
        let known: BTreeSet<&str> = self
            .desired
            .environments
            .iter()
            .map(|environment| environment.name.as_str())
            .chain(self.state.resources.keys().map(String::as_str))
            .chain(self.live_by_name.keys().copied())
            .collect();
        let mut pending: Vec<String> = Vec::new();
        for target in &self.options.targets {
            if known.contains(target.as_str()) {
                pending.push(target.clone());
            } else {
                let help = known
                    .iter()
                    .filter(|name| strsim::levenshtein(name, target) <= 2)
                    .min_by_key(|name| strsim::levenshtein(name, target))
                    .map(|name| format!("did you mean `{name}`?"));
                self.errors.push(PlanError::UnknownTarget {
                    name: target.clone(),
                    help,
                });
            }
        }
        let mut scope = BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !scope.insert(name.clone()) {
                continue;
            }
            // A target that goes (gone from the file, or `destroy`) takes with it what depends
            // on it and goes too, as Terraform does: none of them may outlive it.
            if self.desired.environment(&name).is_none() {
                pending.extend(
                    self.state
                        .resources
                        .iter()
                        .filter(|(dependent, resource)| {
                            resource.depends_on.contains(&name)
                                && self.desired.environment(dependent).is_none()
                        })
                        .map(|(dependent, _)| dependent.clone()),
                );
            }
            for environment in &self.desired.environments {
                let renamed_from = environment.renamed_from.as_ref();
                if environment.name == name {
                    pending.extend(environment.depends_on.iter().map(|r| r.name.clone()));
                    if let Some(from) = renamed_from {
                        pending.push(from.name.clone());
                        pending.push(swap_temporary_name(&from.name, &name));
                    }
                } else if renamed_from.is_some_and(|from| from.name == name) {
                    pending.push(environment.name.clone());
                }
            }
        }
        self.warnings.push(PlanWarning::Targeted {
            targets: self.options.targets.clone(),
        });
        Some(scope)
    }
}
