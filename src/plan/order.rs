//! The order (docs/src/concepts/plans.md#order): a plan's steps as a DAG, then one flat order by Kahn's algorithm with
//! ties broken by name, so the same inputs always give the same plan. Edges: `depends_on`
//! (reversed between deletes), a name freed before it is claimed, the halves of a swap, and the
//! organization's first environment before every other create. A cycle is reported whole.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use foldhash::{HashMap, HashMapExt};
use miette::LabeledSpan;

use super::error::{PlanError, source_of};
use super::model::{Action, Step, StepId, SwapPart};
use crate::desired::{Desired, Location};
use crate::state::State;

/// Why one step waits for another.
#[derive(Debug, Clone, PartialEq)]
enum EdgeReason {
    /// A `depends_on` entry (its place in the file, when it is in the file rather than in state).
    DependsOn(Option<Location>),
    /// The other step frees this name.
    NameFreed(String),
    /// The second half of a swap waits for the first.
    Swap,
    /// Every create waits for the organization's first environment.
    FirstEnvironment,
}

/// Edges keyed by (dependent, prerequisite), as indexes into the step list.
type Edges = BTreeMap<(usize, usize), EdgeReason>;

/// Orders `steps` (ids not yet assigned) and links them; `first_environment` says live has no
/// environment at all, so the first create provisions the organization.
pub(crate) fn schedule(
    mut steps: Vec<Step>,
    desired: &Desired,
    state: &State,
    first_environment: bool,
) -> Result<Vec<Step>, Vec<PlanError>> {
    let mut edges = edges(&steps, desired, state);
    let mut order = kahn(&steps, &edges);
    if first_environment && order.leftover.is_empty() {
        let first_create = order
            .order
            .iter()
            .copied()
            .find(|&index| steps[index].action == Action::Create);
        if let Some(first) = first_create {
            steps[first].wait_for_provisioning = true;
            for (index, step) in steps.iter().enumerate() {
                if index != first && step.action == Action::Create {
                    edges
                        .entry((index, first))
                        .or_insert(EdgeReason::FirstEnvironment);
                }
            }
            // The first create has no create before it, so these edges cannot close a cycle.
            order = kahn(&steps, &edges);
        }
    }
    if !order.leftover.is_empty() {
        return Err(cycles(&steps, &edges, &order.leftover)
            .iter()
            .map(|cycle| cycle_error(cycle, &steps, &edges, desired))
            .collect());
    }

    let mut position = vec![0_usize; steps.len()];
    for (rank, &index) in order.order.iter().enumerate() {
        position[index] = rank;
    }
    let id_of = |index: usize| StepId(u32::try_from(position[index] + 1).unwrap_or(u32::MAX));
    let mut prerequisites: Vec<BTreeSet<StepId>> = vec![BTreeSet::new(); steps.len()];
    for &(dependent, prerequisite) in edges.keys() {
        prerequisites[dependent].insert(id_of(prerequisite));
    }
    for (index, step) in steps.iter_mut().enumerate() {
        step.id = id_of(index);
        step.depends_on = prerequisites[index].iter().copied().collect();
    }
    // Ids are unique, so an unstable sort orders the same, and needs no scratch copy.
    steps.sort_unstable_by_key(|step| step.id);
    Ok(steps)
}

/// Every edge between the steps.
fn edges(steps: &[Step], desired: &Desired, state: &State) -> Edges {
    let mut edges = Edges::new();
    // The step that carries each environment's changes (only looked up: hashed), and each
    // delete and first half of a swap, by name.
    let mut main_by_name: HashMap<&str, usize> = HashMap::with_capacity(steps.len());
    let mut delete_by_name: BTreeMap<&str, usize> = BTreeMap::new();
    let mut first_half: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, step) in steps.iter().enumerate() {
        match (step.action, step.swap) {
            (Action::Delete, _) => {
                delete_by_name.insert(&step.name, index);
            }
            (_, Some(SwapPart::ToTemporary)) => {
                first_half.insert(&step.name, index);
            }
            _ => {
                main_by_name.insert(&step.name, index);
            }
        }
    }

    // Creates and updates after what they depend on.
    for environment in &desired.environments {
        let Some(&dependent) = main_by_name.get(environment.name.as_str()) else {
            continue;
        };
        for reference in &environment.depends_on {
            if let Some(&prerequisite) = main_by_name.get(reference.name.as_str()) {
                edges
                    .entry((dependent, prerequisite))
                    .or_insert(EdgeReason::DependsOn(Some(reference.location)));
            }
        }
    }
    // Deletes before what they depended on (as recorded in state): the reverse.
    for (&name, &delete) in &delete_by_name {
        let Some(resource) = state.resources.get(name) else {
            continue;
        };
        for dependency in &resource.depends_on {
            if let Some(&other) = delete_by_name.get(dependency.as_str()) {
                edges
                    .entry((other, delete))
                    .or_insert(EdgeReason::DependsOn(None));
            }
        }
    }
    // A name is freed (delete, rename away) before it is claimed (create, rename to). The
    // temporary name of a swap is left out: its two halves are linked directly.
    let mut freed_by: HashMap<&str, usize> = HashMap::new();
    let mut claims: Vec<(&str, usize)> = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        match (step.action, &step.rename) {
            (Action::Delete, _) => {
                freed_by.insert(&step.name, index);
            }
            (Action::Create, _) => claims.push((&step.name, index)),
            (_, Some(rename)) => {
                if step.swap != Some(SwapPart::FromTemporary) {
                    freed_by.insert(&rename.from, index);
                }
                if step.swap != Some(SwapPart::ToTemporary) {
                    claims.push((&rename.to, index));
                }
            }
            _ => {}
        }
    }
    for (name, claimer) in claims {
        if let Some(&freer) = freed_by.get(name)
            && freer != claimer
        {
            edges
                .entry((claimer, freer))
                .or_insert_with(|| EdgeReason::NameFreed(name.to_owned()));
        }
    }
    for (&name, &first) in &first_half {
        if let Some(&second) = main_by_name.get(name) {
            edges.entry((second, first)).or_insert(EdgeReason::Swap);
        }
    }
    edges
}

/// Kahn's algorithm over the edges, taking the ready step with the smallest name first.
struct Kahn {
    /// Step indexes in execution order.
    order: Vec<usize>,
    /// Steps that could not be ordered (they are on or behind a cycle).
    leftover: BTreeSet<usize>,
}

fn tie_key(step: &Step, index: usize) -> (&str, u8, usize) {
    let half = u8::from(step.swap != Some(SwapPart::ToTemporary));
    (step.name.as_str(), half, index)
}

fn kahn(steps: &[Step], edges: &Edges) -> Kahn {
    let mut waiting = vec![0_usize; steps.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    for &(dependent, prerequisite) in edges.keys() {
        waiting[dependent] += 1;
        dependents[prerequisite].push(dependent);
    }
    // Ties are broken by each step's rank in name order, computed once: the ready queue then
    // compares integers instead of names.
    let mut by_name: Vec<usize> = (0..steps.len()).collect();
    by_name.sort_unstable_by(|&left, &right| {
        tie_key(&steps[left], left).cmp(&tie_key(&steps[right], right))
    });
    let mut rank = vec![0_usize; steps.len()];
    for (position, &index) in by_name.iter().enumerate() {
        rank[index] = position;
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..steps.len())
        .filter(|&index| waiting[index] == 0)
        .map(|index| Reverse(rank[index]))
        .collect();
    let mut order = Vec::with_capacity(steps.len());
    while let Some(Reverse(first)) = ready.pop() {
        let index = by_name[first];
        order.push(index);
        for &dependent in &dependents[index] {
            waiting[dependent] -= 1;
            if waiting[dependent] == 0 {
                ready.push(Reverse(rank[dependent]));
            }
        }
    }
    let leftover = (0..steps.len())
        .filter(|&index| waiting[index] > 0)
        .collect();
    Kahn { order, leftover }
}

/// One cycle per independent knot among the steps Kahn could not order, each closed (the first
/// step repeated at the end) and starting at its smallest name.
fn cycles(steps: &[Step], edges: &Edges, leftover: &BTreeSet<usize>) -> Vec<Vec<usize>> {
    let mut remaining = leftover.clone();
    let mut found = Vec::new();
    while let Some(start) = remaining
        .iter()
        .copied()
        .min_by_key(|&index| tie_key(&steps[index], index))
    {
        // Every step left has a prerequisite left, so walking prerequisites must loop.
        let mut walk = vec![start];
        let cycle = loop {
            let Some(&current) = walk.last() else {
                break None;
            };
            let next = edges
                .keys()
                .filter(|&&(dependent, prerequisite)| {
                    dependent == current && remaining.contains(&prerequisite)
                })
                .map(|&(_, prerequisite)| prerequisite)
                .min_by_key(|&index| tie_key(&steps[index], index));
            let Some(next) = next else { break None };
            if let Some(at) = walk.iter().position(|&index| index == next) {
                break Some(walk[at..].to_vec());
            }
            walk.push(next);
        };
        let Some(mut cycle) = cycle else { break };
        let smallest = cycle
            .iter()
            .enumerate()
            .min_by_key(|&(_, &index)| tie_key(&steps[index], index))
            .map_or(0, |(at, _)| at);
        cycle.rotate_left(smallest);
        if let Some(&first) = cycle.first() {
            cycle.push(first);
        }
        // Drop the cycle and everything behind it; what is left is behind other cycles only.
        let mut behind: Vec<usize> = cycle.clone();
        while let Some(index) = behind.pop() {
            if remaining.remove(&index) {
                behind.extend(
                    edges
                        .keys()
                        .filter(|&&(_, prerequisite)| prerequisite == index)
                        .map(|&(dependent, _)| dependent),
                );
            }
        }
        found.push(cycle);
    }
    found
}

fn cycle_error(cycle: &[usize], steps: &[Step], edges: &Edges, desired: &Desired) -> PlanError {
    let mut text = cycle
        .first()
        .map(|&index| steps[index].name.clone())
        .unwrap_or_default();
    let mut located: Vec<(Location, String)> = Vec::new();
    for pair in cycle.windows(2) {
        let (dependent, prerequisite) = (pair[0], pair[1]);
        let (from, to) = (&steps[dependent].name, &steps[prerequisite].name);
        text.push_str(" → ");
        text.push_str(to);
        match edges.get(&(dependent, prerequisite)) {
            Some(EdgeReason::DependsOn(Some(location))) => {
                located.push((*location, format!("`{from}` depends on `{to}`")));
            }
            Some(EdgeReason::NameFreed(name)) => {
                text.push_str(&format!(" (frees the name `{name}`)"));
            }
            _ => {}
        }
    }
    // Labels go on the file of the first located entry (a diagnostic shows one file).
    let source = located.first().and_then(|(location, _)| {
        source_of(&desired.sources, *location).map(|named| (location.source, named))
    });
    let (source_code, labels) = match source {
        Some((id, named)) => (
            Some(named),
            located
                .into_iter()
                .filter(|(location, _)| location.source == id)
                .map(|(location, label)| LabeledSpan::new_with_span(Some(label), location.span))
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    PlanError::DependencyCycle {
        cycle: text,
        source_code,
        labels,
    }
}
