//! The desired-state file (docs/src/reference/desired-state.md): YAML → [`Desired`] with a source map, all validation and
//! diagnostics. Touches neither the network nor state.
//!
//! Reading goes text → YAML tree with spans (`node`) → shapes and values (`document`) →
//! checks across environments (`references`). Each step records problems and carries on, so a
//! file with several problems reports all of them in one [`SpecError`].

mod check;
mod compose;
mod diagnostic;
mod diagnostic_kind;
mod document;
mod limits;
mod model;
mod node;
mod options;
mod references;
mod section;
mod source;
mod split;
mod suggestion;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use crate::model::NameProblem;
pub use diagnostic::{Label, SpecDiagnostic, SpecError};
pub use diagnostic_kind::{DiagnosticKind, NodeKind, Range, RenameConflict};
pub use model::*;
pub use section::Section;
pub use source::{Location, SourceFile, SourceId, Sources};

use check::Checker;
use diagnostic::{Problem, SourceTexts};

/// The desired-state file read when `-f` is not given: `envform.yaml` in the working directory.
pub fn default_path() -> PathBuf {
    PathBuf::from("envform.yaml")
}

/// Reads and validates the desired state at `path`: a file, or a directory (see [`load_all`]).
pub fn load(path: &Path) -> Result<Desired, SpecError> {
    load_all(&[path.to_path_buf()])
}

/// Reads and validates the desired state at `paths`, which form one configuration: each a file,
/// or a directory whose `*.yaml` and `*.yml` files below it (recursively, in path order, hidden
/// entries such as `.envform/` skipped) are read. A file named twice is read once.
pub fn load_all(paths: &[PathBuf]) -> Result<Desired, SpecError> {
    let mut files = Vec::new();
    for path in paths {
        let io = |source| SpecError::Io {
            path: path.clone(),
            source,
        };
        if std::fs::metadata(path).map_err(io)?.is_dir() {
            let found = files.len();
            yaml_files_below(path, &mut files, &mut HashSet::new())?;
            if files.len() == found {
                return Err(SpecError::NoFiles { path: path.clone() });
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut seen = HashSet::new();
    files.retain(|file| seen.insert(std::fs::canonicalize(file).unwrap_or_else(|_| file.clone())));

    let mut sources = Sources::default();
    let mut problems = Vec::new();
    for file_path in files {
        let (text, problem) = read_text(&file_path, SourceId(sources.files.len()))?;
        problems.extend(problem);
        sources.files.push(SourceFile {
            path: file_path,
            text,
        });
    }
    parse_with(sources, problems)
}

/// Appends the `*.yaml` and `*.yml` files below `directory`, in path order; `visited` holds the
/// directories read, so a symbolic link back up the tree is not followed round.
fn yaml_files_below(
    directory: &Path,
    files: &mut Vec<PathBuf>,
    visited: &mut HashSet<PathBuf>,
) -> Result<(), SpecError> {
    let io = |source| SpecError::Io {
        path: directory.to_path_buf(),
        source,
    };
    if !visited.insert(std::fs::canonicalize(directory).map_err(io)?) {
        return Ok(());
    }
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(directory).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if !hidden {
            entries.push(path);
        }
    }
    entries.sort();
    for path in entries {
        // `is_file` and `is_dir` follow symbolic links, so linked files and directories are read
        // like any other.
        if path.is_dir() {
            yaml_files_below(&path, files, visited)?;
        } else if path.is_file()
            && path
                .extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads a file as UTF-8; invalid bytes become U+FFFD and a problem at the first of them.
fn read_text(path: &Path, source: SourceId) -> Result<(String, Option<Problem>), SpecError> {
    let io = |error| SpecError::Io {
        path: path.to_path_buf(),
        source: error,
    };
    let length = std::fs::metadata(path).map_err(io)?.len();
    if usize::try_from(length).map_or(true, |length| length > limits::MAX_FILE_BYTES) {
        let kind = DiagnosticKind::TooComplex {
            message: format!(
                "it is {length} bytes; the limit is {} bytes",
                limits::MAX_FILE_BYTES
            ),
        };
        let location = Location {
            source,
            span: (0, 0).into(),
        };
        return Ok((String::new(), Some(Problem::new(kind, location))));
    }
    let bytes = std::fs::read(path).map_err(io)?;
    match String::from_utf8(bytes) {
        Ok(text) => Ok((text, None)),
        Err(error) => {
            let offset = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            // In the lossy text the first bad sequence is one U+FFFD, three bytes wide.
            let width = '\u{FFFD}'.len_utf8().min(text.len() - offset);
            let location = Location {
                source,
                span: (offset, width).into(),
            };
            Ok((
                text,
                Some(Problem::new(DiagnosticKind::InvalidUtf8, location)),
            ))
        }
    }
}

/// Validates already-read files (no I/O): the core of [`load`].
pub fn parse(sources: Sources) -> Result<Desired, SpecError> {
    parse_with(sources, Vec::new())
}

fn parse_with(sources: Sources, mut problems: Vec<Problem>) -> Result<Desired, SpecError> {
    let unreadable: Vec<SourceId> = problems
        .iter()
        .map(|problem| problem.location.source)
        .collect();
    let mut checker = Checker::new(&sources);
    let mut roots = Vec::new();
    for parsed in parse_files(&sources, &unreadable) {
        match parsed {
            Ok((root, duplicate_keys)) => {
                problems.extend(duplicate_keys);
                roots.push(root);
            }
            Err(problem) => problems.push(problem),
        }
    }
    let document = document::read(&mut checker, roots);
    references::check(
        &mut checker,
        &document.environments,
        document.options.scope.as_ref(),
    );
    problems.extend(checker.problems);
    let (warnings, problems): (Vec<Problem>, Vec<Problem>) = problems
        .into_iter()
        .partition(|problem| problem.kind.is_warning());

    let texts = SourceTexts::new(&sources);
    let place = |problems: Vec<Problem>| -> Vec<SpecDiagnostic> {
        order(problems)
            .into_iter()
            .map(|problem| SpecDiagnostic::new(problem, &texts))
            .collect()
    };
    if !problems.is_empty() {
        return Err(SpecError::invalid(place(problems), &sources));
    }
    let warnings = place(warnings);
    let digest = digest(
        &document.environments,
        &document.options,
        document.state.as_ref(),
    );
    Ok(Desired {
        environments: document.environments,
        options: document.options,
        state: document.state,
        warnings,
        sources,
        digest,
    })
}

/// A file's tree and the keys written twice in it.
type ParsedFile = Result<(node::Node, Vec<Problem>), Problem>;

/// Parses every readable file into a tree and checks it for duplicate keys, on threads with a
/// known stack: the files of a directory are shared among the machine's cores, and the trees come
/// back in file order.
fn parse_files(sources: &Sources, skip: &[SourceId]) -> Vec<ParsedFile> {
    let files: Vec<(SourceId, &str)> = sources
        .files
        .iter()
        .enumerate()
        .map(|(index, file)| (SourceId(index), file.text.as_str()))
        .filter(|(source, _)| !skip.contains(source))
        .collect();
    // The pool's deep stacks keep [`limits::MAX_DEPTH`] safe whatever thread (a 2 MiB test or
    // async worker thread) calls [`load`].
    crate::parallel::each(&files, |(source, text)| {
        let root = yaml::parse(*source, text)?;
        let duplicate_keys = check::duplicate_keys(&root);
        Ok((root, duplicate_keys))
    })
}

/// File order, then position; a problem found twice (through `defaults` or an alias used by
/// several environments) is kept once.
fn order(problems: Vec<Problem>) -> Vec<Problem> {
    let mut keyed: Vec<(String, Problem)> = problems
        .into_iter()
        .map(|problem| (problem.kind.to_string(), problem))
        .collect();
    keyed.sort_by(|(left_message, left), (right_message, right)| {
        let key = |problem: &Problem| {
            (
                problem.location.source,
                problem.location.span.offset(),
                problem.location.span.len(),
                problem.kind.code(),
            )
        };
        key(left)
            .cmp(&key(right))
            .then_with(|| left_message.cmp(right_message))
    });
    keyed.dedup_by(|(right_message, right), (left_message, left)| {
        left.location == right.location && left_message == right_message
    });
    keyed.into_iter().map(|(_, problem)| problem).collect()
}

/// Hex SHA-256 of what the files mean, not how they are written: comments, whitespace, key
/// order, the order of environments and which file holds one do not change it, so a saved plan
/// stays valid across such edits and goes stale on any change of meaning. The encoding is JSON
/// with every object's keys sorted; secret values enter it only inside the hash.
///
/// The environments are written in name order, as they appear in that document, straight from
/// the desired state (no JSON tree is built) and in runs on every core; the hash reads the runs.
fn digest(
    environments: &[DesiredEnvironment],
    options: &Options,
    state: Option<&StateBackendConfig>,
) -> String {
    // The order of the JSON-quoted names, as the whole document sorts them.
    let mut ordered: Vec<(String, &DesiredEnvironment)> = environments
        .iter()
        .map(|environment| {
            let quoted = serde_json::to_string(&environment.name).unwrap_or_default();
            (quoted, environment)
        })
        .collect();
    ordered.sort_by(|(left, _), (right, _)| left.cmp(right));
    // Each run of environments is written on its own core, each one after a `,`; the hash then
    // reads the runs in order.
    let runs = crate::parallel::in_runs(&ordered, ENVIRONMENTS_PER_DIGEST_RUN, |run| {
        let mut bytes = Vec::with_capacity(run.len() * 256);
        for (_, environment) in run {
            bytes.push(b',');
            // Writing into a vector cannot fail, and the meaning always serializes.
            let _ = serde_json::to_writer(&mut bytes, &Meaning::of(environment));
        }
        bytes
    });
    let mut hasher = Sha256::new();
    // `{"environments":[…],"options":…,"state":…}`: the keys in sorted order.
    hasher.update(b"{\"environments\":[");
    for (index, run) in runs.iter().enumerate() {
        // The first environment has no `,` before it.
        let skip = usize::from(index == 0);
        hasher.update(run.get(skip..).unwrap_or_default());
    }
    hasher.update(b"],");
    let rest = canonical(rest_of_meaning(options, state)).to_string();
    // The rest's object without its `{`, continuing the one opened above.
    hasher.update(rest.get(1..).unwrap_or_default().as_bytes());
    hex::encode(hasher.finalize())
}

/// Fewest environments worth a run of the digest on another thread.
const ENVIRONMENTS_PER_DIGEST_RUN: usize = 512;

/// One environment's meaning, serialized as `environment_meaning`'s canonical JSON without
/// building it: the fields are in sorted key order and borrowed, and free-form mappings are
/// written with their keys sorted.
#[derive(serde::Serialize)]
struct Meaning<'e> {
    configuration: Option<Canonical<'e>>,
    depends_on: Vec<&'e str>,
    description: &'e Option<String>,
    display_name: &'e Option<String>,
    execution_environment: Option<Value>,
    ignore_changes: Vec<String>,
    metadata: Option<Canonical<'e>>,
    name: &'e str,
    nonsensitive: &'e std::collections::BTreeSet<String>,
    prevent_destroy: bool,
    renamed_from: Option<&'e str>,
    settings: Option<Canonical<'e>>,
    status: Option<&'static str>,
    tags: &'e Option<Vec<String>>,
}

impl<'e> Meaning<'e> {
    fn of(environment: &'e DesiredEnvironment) -> Self {
        let fields = &environment.fields;
        let map = |map: &'e Option<crate::model::JsonMap>| map.as_ref().map(Canonical::Map);
        let mut depends_on: Vec<&str> = environment
            .depends_on
            .iter()
            .map(|reference| reference.name.as_str())
            .collect();
        depends_on.sort_unstable();
        Self {
            configuration: map(&fields.configuration),
            depends_on,
            description: &fields.description,
            display_name: &fields.display_name,
            // Rare and small: through a `Value`, sorted like the rest.
            execution_environment: fields
                .execution_environment
                .as_ref()
                .map(|execution| canonical(json!(execution))),
            ignore_changes: sorted(
                environment
                    .lifecycle
                    .ignore_changes
                    .iter()
                    .map(ToString::to_string),
            ),
            metadata: map(&fields.metadata),
            name: &environment.name,
            nonsensitive: &fields.nonsensitive,
            prevent_destroy: environment.lifecycle.prevent_destroy,
            renamed_from: environment
                .renamed_from
                .as_ref()
                .map(|reference| reference.name.as_str()),
            settings: map(&fields.settings),
            status: fields.status.map(|status| status.as_str()),
            tags: &fields.tags,
        }
    }
}

/// A JSON value serialized with every object's keys in sorted order, without copying it.
enum Canonical<'v> {
    Map(&'v crate::model::JsonMap),
    Value(&'v Value),
}

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Canonical::Map(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by_key(|(key, _)| *key);
                let mut object = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    object.serialize_entry(key, &Canonical::Value(value))?;
                }
                object.end()
            }
            Canonical::Value(Value::Object(map)) => Canonical::Map(map).serialize(serializer),
            Canonical::Value(Value::Array(items)) => {
                let mut array = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    array.serialize_element(&Canonical::Value(item))?;
                }
                array.end()
            }
            Canonical::Value(scalar) => scalar.serialize(serializer),
        }
    }
}

/// What the files mean besides their environments: the options and where state is.
fn rest_of_meaning(options: &Options, state: Option<&StateBackendConfig>) -> Value {
    let scope = options.scope.as_ref().map(|scope| {
        json!({"name_prefix": scope.name_prefix, "tags": sorted(scope.tags.iter().cloned())})
    });
    let threshold = |threshold: &Threshold| json!({"max_fraction": threshold.max_fraction, "min_existing": threshold.min_existing});
    let state = state.map(|state| match state {
        StateBackendConfig::Local { path } => {
            json!({"backend": "local", "path": path.as_ref().map(|path| path.display().to_string())})
        }
        StateBackendConfig::Http(config) => json!({
            "backend": "http",
            "address": config.address,
            "lock_address": config.lock_address,
            "unlock_address": config.unlock_address,
            "lock_method": config.lock_method,
            "unlock_method": config.unlock_method,
            "username": config.username,
        }),
    });
    json!({
        "options": {
            "prune": options.prune,
            "adopt": options.adopt,
            "scope": scope,
            "delete_threshold": threshold(&options.delete_threshold),
            "update_threshold": threshold(&options.update_threshold),
        },
        "state": state,
    })
}

/// One environment's meaning: its fields as the file sets them, and how it relates to others.
/// [`Meaning`] writes the same without building it; this form checks it.
#[cfg(test)]
fn environment_meaning(environment: &DesiredEnvironment) -> Value {
    let fields = &environment.fields;
    json!({
        "name": environment.name,
        "display_name": fields.display_name,
        "description": fields.description,
        "status": fields.status.map(|status| status.as_str()),
        "configuration": fields.configuration,
        "metadata": fields.metadata,
        "tags": fields.tags,
        "settings": fields.settings,
        "execution_environment": fields.execution_environment,
        "nonsensitive": fields.nonsensitive,
        "depends_on": sorted(environment.depends_on.iter().map(|reference| reference.name.clone())),
        "prevent_destroy": environment.lifecycle.prevent_destroy,
        "ignore_changes": sorted(environment.lifecycle.ignore_changes.iter().map(ToString::to_string)),
        "renamed_from": environment.renamed_from.as_ref().map(|reference| reference.name.clone()),
    })
}

fn sorted(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.collect();
    items.sort();
    items
}

/// `value` with every object's keys in sorted order.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|(left, _), (right, _)| left.cmp(right));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(key, value)| (key, canonical(value)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}
