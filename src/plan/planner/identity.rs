//! Phase: which live environment each desired one is. Identity is the name; `renamed_from` claims
//! another live name (or the temporary name of an interrupted swap), and renames that form a cycle
//! go through a temporary name.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::context::Planner;
use crate::api::Environment;
use crate::desired::{DesiredEnvironment, Reference};
use crate::model::{DEFAULT_ENVIRONMENT, NAME_MAX_CHARS};
use crate::plan::error::{DefaultOperation, PlanError, source_of};
use crate::plan::model::StepNote;
use crate::plan::warning::PlanWarning;
use crate::state::ResourceState;

/// The temporary name a rename from `from` to `to` goes through when it is part of a swap:
/// derived from both names, so a plan made after an interrupted swap finds it again.
pub fn swap_temporary_name(from: &str, to: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(from.as_bytes());
    hasher.update([0]);
    hasher.update(to.as_bytes());
    let short = hex::encode(&hasher.finalize()[..4]);
    let suffix = format!("-envform-swap-{short}");
    let room = NAME_MAX_CHARS.saturating_sub(suffix.chars().count());
    let prefix: String = to.chars().take(room).collect();
    format!("{prefix}{suffix}")
}

/// Which live environment a desired one is, and how it was found.
pub(super) struct Identity<'a> {
    pub(super) live: Option<&'a Environment>,
    /// The live name when it is renamed.
    pub(super) renamed_from: Option<String>,
    /// The state entry, when it records this very live environment.
    pub(super) managed: Option<&'a ResourceState>,
    pub(super) notes: Vec<StepNote>,
}

impl<'a> Planner<'a> {
    /// Which live name each renamed desired environment takes over (desired name → live name).
    pub(super) fn rename_claims(&mut self) -> BTreeMap<String, String> {
        let mut renamed: Vec<(&DesiredEnvironment, &Reference)> = self
            .desired
            .environments
            .iter()
            .filter_map(|environment| Some((environment, environment.renamed_from.as_deref()?)))
            .collect();
        renamed.sort_by(|(left, _), (right, _)| left.name.cmp(&right.name));
        let mut claims: BTreeMap<String, String> = BTreeMap::new();
        for (environment, from) in renamed {
            if from.name == environment.name || !self.in_scope(&environment.name) {
                continue;
            }
            if self.rename_recorded(environment, &from.name) {
                continue;
            }
            // The temporary name of an interrupted swap first: it can only be this rename's.
            let source = [
                swap_temporary_name(&from.name, &environment.name),
                from.name.clone(),
            ]
            .into_iter()
            .find(|name| self.live_by_name.contains_key(name.as_str()));
            let Some(source) = source else {
                // Nothing to rename: done already, or the old one is gone.
                continue;
            };
            if source == DEFAULT_ENVIRONMENT {
                self.errors.push(PlanError::ProtectedDefault {
                    operation: DefaultOperation::RenamedAway,
                    source_code: source_of(&self.desired.sources, from.location),
                    span: Some(from.location.span),
                });
                continue;
            }
            claims.insert(environment.name.clone(), source);
        }

        // A renamed environment whose new name exists live, and is not itself renamed away, keeps
        // that one: the rename is done or the name is taken. Dropping a claim can free another.
        let mut ignored: BTreeSet<String> = BTreeSet::new();
        loop {
            let sources: BTreeSet<&String> = claims.values().collect();
            let keep_own: Vec<String> = claims
                .keys()
                .filter(|name| {
                    self.live_by_name.contains_key(name.as_str()) && !sources.contains(name)
                })
                .cloned()
                .collect();
            if keep_own.is_empty() {
                break;
            }
            for name in keep_own {
                claims.remove(&name);
                ignored.insert(name);
            }
        }

        // Two environments renamed from one: the first (by name) keeps it.
        let mut by_source: BTreeMap<String, String> = BTreeMap::new();
        let mut conflicts = Vec::new();
        for (name, source) in &claims {
            if let Some(first) = by_source.get(source) {
                conflicts.push((source.clone(), first.clone(), name.clone()));
            } else {
                by_source.insert(source.clone(), name.clone());
            }
        }
        for (source, first, second) in conflicts {
            claims.remove(&second);
            let location = self
                .desired
                .environment(&second)
                .and_then(|environment| environment.renamed_from.as_ref())
                .map(|from| from.location);
            self.errors.push(PlanError::RenameConflict {
                from: source,
                first,
                second,
                source_code: location.and_then(|l| source_of(&self.desired.sources, l)),
                span: location.map(|l| l.span),
            });
        }
        for name in ignored {
            if let Some(from) = self
                .desired
                .environment(&name)
                .and_then(|environment| environment.renamed_from.as_ref())
            {
                self.warnings.push(PlanWarning::RenameIgnored {
                    name: name.clone(),
                    renamed_from: from.name.clone(),
                });
            }
        }
        claims
    }

    /// Whether state records this very rename as applied to the live environment of the new name.
    pub(super) fn rename_recorded(&self, environment: &DesiredEnvironment, from: &str) -> bool {
        let Some(live) = self.live_by_name.get(environment.name.as_str()) else {
            return false;
        };
        self.state
            .resources
            .get(&environment.name)
            .is_some_and(|resource| {
                resource.id == live.id && resource.renamed_from.as_deref() == Some(from)
            })
    }

    pub(super) fn identify(
        &self,
        environment: &DesiredEnvironment,
        claims: &BTreeMap<String, String>,
    ) -> Identity<'a> {
        let name = environment.name.as_str();
        let renamed_from = claims.get(name).cloned();
        let live_name = renamed_from.as_deref().unwrap_or(name);
        // A name another environment is renamed away from is free: this one is created anew.
        let renamed_away = renamed_from.is_none() && claims.values().any(|source| source == name);
        let (live, recorded) = if renamed_away {
            (None, None)
        } else {
            (
                self.live_by_name.get(live_name).copied(),
                self.state.resources.get(live_name),
            )
        };
        let managed = match (live, recorded) {
            (Some(live), Some(recorded)) if recorded.id == live.id => Some(recorded),
            _ => None,
        };
        let mut notes = Vec::new();
        match (live, recorded, managed) {
            (None, Some(_), _) => notes.push(StepNote::Recreate),
            (Some(_), Some(_), None) => notes.push(StepNote::ReplacedOutside),
            (Some(_), None, _) if renamed_from.is_some() => notes.push(StepNote::TakenOver),
            _ => {}
        }
        Identity {
            live,
            renamed_from,
            managed,
            notes,
        }
    }
}

/// Desired names whose rename is part of a cycle (a swap): each cycle is broken at its smallest
/// name, which goes through a temporary name.
pub(super) fn swapped_renames(claims: &BTreeMap<String, String>) -> BTreeSet<String> {
    // Renames as old name → new name; each name is freed and claimed at most once.
    let next: BTreeMap<&str, &str> = claims
        .iter()
        .map(|(to, from)| (from.as_str(), to.as_str()))
        .collect();
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut broken = BTreeSet::new();
    for &start in next.keys() {
        if seen.contains(start) {
            continue;
        }
        let mut path = vec![start];
        let mut current = start;
        while let Some(&to) = next.get(current) {
            if seen.contains(to) {
                break;
            }
            if let Some(at) = path.iter().position(|&name| name == to) {
                // path[at..] is a cycle of old names; each renames to the next.
                if let Some(smallest) = path[at..].iter().filter_map(|name| next.get(name)).min() {
                    broken.insert((*smallest).to_owned());
                }
                break;
            }
            path.push(to);
            current = to;
        }
        seen.extend(path);
    }
    broken
}
