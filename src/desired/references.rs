//! Checks across environments: names are unique, `renamed_from` can be followed, `depends_on`
//! names desired environments and forms no cycle (a cycle is reported whole, every edge
//! labelled). The plan orders the graph; this module only proves it is a DAG.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use super::check::Checker;
use super::diagnostic::Problem;
use super::diagnostic_kind::{DiagnosticKind, RenameConflict, quote};
use super::model::{DesiredEnvironment, Scope};
use super::suggestion;

/// Runs every cross-environment check.
pub(crate) fn check(
    checker: &mut Checker<'_>,
    environments: &[DesiredEnvironment],
    scope: Option<&Scope>,
) {
    if let Some(scope) = scope {
        outside_scope(checker, environments, scope);
    }
    let index = first_by_name(checker, environments);
    renames(checker, environments, &index);
    let edges = dependencies(checker, environments, &index);
    cycles(checker, environments, &edges);
}

/// Every environment the configuration's own scope would hide from its plans.
fn outside_scope(checker: &mut Checker<'_>, environments: &[DesiredEnvironment], scope: &Scope) {
    for environment in environments {
        let tags = environment.fields.tags.as_deref().unwrap_or_default();
        if scope.contains(&environment.name, tags) {
            continue;
        }
        let reason = match &scope.name_prefix {
            Some(prefix) if !environment.name.starts_with(prefix.as_str()) => {
                format!("its name does not start with {}", quote(prefix))
            }
            _ => {
                let missing: Vec<String> = scope
                    .tags
                    .iter()
                    .filter(|tag| !tags.contains(tag))
                    .map(|tag| quote(tag))
                    .collect();
                format!(
                    "it lacks the tag{} {}",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", ")
                )
            }
        };
        let kind = DiagnosticKind::OutsideScope {
            name: environment.name.clone(),
            reason,
        };
        checker.push(Problem::new(kind, environment.name_location));
    }
}

/// Maps each name to its first environment, reporting later ones as duplicates.
fn first_by_name<'e>(
    checker: &mut Checker<'_>,
    environments: &'e [DesiredEnvironment],
) -> HashMap<&'e str, usize> {
    let mut index = HashMap::with_capacity(environments.len());
    for (position, environment) in environments.iter().enumerate() {
        match index.get(environment.name.as_str()) {
            Some(&first) => {
                let first: &DesiredEnvironment = &environments[first];
                let kind = DiagnosticKind::DuplicateName {
                    name: environment.name.clone(),
                };
                let problem = Problem::new(kind, environment.name_location)
                    .with_label(first.name_location, "first defined here");
                checker.push(problem);
            }
            None => {
                index.insert(environment.name.as_str(), position);
            }
        }
    }
    index
}

fn renames(
    checker: &mut Checker<'_>,
    environments: &[DesiredEnvironment],
    index: &HashMap<&str, usize>,
) {
    let mut claimed: BTreeMap<&str, &DesiredEnvironment> = BTreeMap::new();
    for environment in environments {
        let Some(old) = &environment.renamed_from else {
            continue;
        };
        let conflict = |conflict| DiagnosticKind::ConflictingRename {
            name: old.name.clone(),
            conflict,
        };
        if old.name == environment.name {
            checker.push(
                Problem::new(conflict(RenameConflict::OwnName), old.location)
                    .with_label(environment.name_location, "the environment's name"),
            );
        } else if let Some(&other) = index.get(old.name.as_str())
            // The old name may be desired again when that environment is itself renamed from
            // elsewhere (a swap or a chain): the plan frees the name first.
            && environments[other].renamed_from.is_none()
        {
            checker.push(
                Problem::new(conflict(RenameConflict::StillDesired), old.location)
                    .with_label(environments[other].name_location, "still desired here"),
            );
        }
        match claimed.get(old.name.as_str()) {
            Some(first) => {
                if let Some(first_old) = &first.renamed_from {
                    checker.push(
                        Problem::new(conflict(RenameConflict::SameSource), old.location)
                            .with_label(first_old.location, "first renamed from here"),
                    );
                }
            }
            None => {
                claimed.insert(old.name.as_str(), environment);
            }
        }
    }
}

/// One resolved `depends_on` entry: environment `from` lists `to` at `depends_on[entry]`.
#[derive(Debug, Clone, Copy)]
struct Edge {
    to: usize,
    entry: usize,
}

/// Resolves `depends_on` entries to environment indexes, reporting unknown names.
fn dependencies(
    checker: &mut Checker<'_>,
    environments: &[DesiredEnvironment],
    index: &HashMap<&str, usize>,
) -> Vec<Vec<Edge>> {
    let mut edges = vec![Vec::new(); environments.len()];
    // Suggestions look through the names in order, so ties resolve the same way every time.
    let mut sorted_names: Option<Vec<&str>> = None;
    for (from, environment) in environments.iter().enumerate() {
        // A duplicate's edges are left out of the graph: its name already stands for the first.
        let in_graph = index.get(environment.name.as_str()) == Some(&from);
        for (entry, dependency) in environment.depends_on.iter().enumerate() {
            match index.get(dependency.name.as_str()) {
                Some(&to) if in_graph => edges[from].push(Edge { to, entry }),
                Some(_) => {}
                None => {
                    let names = sorted_names.get_or_insert_with(|| {
                        let mut names: Vec<&str> = index.keys().copied().collect();
                        names.sort_unstable();
                        names
                    });
                    let suggestion = suggestion::closest(&dependency.name, names.iter().copied())
                        .map(str::to_owned);
                    let kind = DiagnosticKind::UnknownDependency {
                        name: dependency.name.clone(),
                        suggestion,
                    };
                    checker.push(Problem::new(kind, dependency.location));
                }
            }
        }
    }
    edges
}

/// Depth-first search in file order; every edge back into the current path closes a cycle.
fn cycles(checker: &mut Checker<'_>, environments: &[DesiredEnvironment], edges: &[Vec<Edge>]) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; environments.len()];
    for start in 0..environments.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Most environments depend on nothing: no path to walk.
        if edges[start].is_empty() {
            marks[start] = Mark::Done;
            continue;
        }
        // The current path: (environment, next edge to follow, edge that led here).
        let mut path: Vec<(usize, usize, Option<Edge>)> = vec![(start, 0, None)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next, _)) = path.last_mut() {
            let Some(&edge) = edges[node].get(*next) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            match marks[edge.to] {
                Mark::New => {
                    marks[edge.to] = Mark::OnPath;
                    path.push((edge.to, 0, Some(edge)));
                }
                Mark::OnPath => {
                    let begin = path
                        .iter()
                        .position(|(on_path, _, _)| *on_path == edge.to)
                        .unwrap_or(0);
                    // Edges around the cycle as (from, edge), the closing edge last.
                    let mut cycle: Vec<(usize, Edge)> = path[begin..]
                        .windows(2)
                        .filter_map(|pair| pair[1].2.map(|into| (pair[0].0, into)))
                        .collect();
                    cycle.push((node, edge));
                    report_cycle(checker, environments, cycle);
                }
                Mark::Done => {}
            }
        }
    }
}

fn report_cycle(
    checker: &mut Checker<'_>,
    environments: &[DesiredEnvironment],
    mut cycle: Vec<(usize, Edge)>,
) {
    // Start at the environment written first, so the report reads the same every time.
    if let Some(first) = (0..cycle.len()).min_by_key(|&position| cycle[position].0) {
        cycle.rotate_left(first);
    }
    let reference = |(from, edge): (usize, Edge)| &environments[from].depends_on[edge.entry];
    let mut names: Vec<String> = cycle
        .iter()
        .map(|(from, _)| environments[*from].name.clone())
        .collect();
    names.push(names[0].clone());
    let Some(&first_edge) = cycle.first() else {
        return;
    };
    let mut problem = Problem::new(
        DiagnosticKind::DependencyCycle {
            cycle: names.clone(),
        },
        reference(first_edge).location,
    );
    for (position, &edge) in cycle.iter().enumerate().skip(1) {
        let text = format!(
            "{} depends on {}",
            quote(&names[position]),
            quote(&names[position + 1])
        );
        problem = problem.with_label(reference(edge).location, text);
    }
    checker.push(problem);
}
