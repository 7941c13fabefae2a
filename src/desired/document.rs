//! The file format (docs/src/reference/desired-state.md) over the YAML tree: top-level sections, environments with
//! `defaults` merged in, `options` and `state`. The files of a directory form one configuration,
//! so `defaults`, `options` and `state` may each be written once across them.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::check::Checker;
use super::diagnostic::Problem;
use super::diagnostic_kind::{DiagnosticKind, Range};
use super::model::{
    DesiredEnvironment, DesiredFields, FieldPath, HttpBackendConfig, Lifecycle, Options, Reference,
    StateBackendConfig,
};
use super::node::{Entry, Node, Value};
use super::section::{EXECUTION_ENVIRONMENT_FIELDS, IGNORABLE_FIELDS, Section};
use super::source::Location;
use super::suggestion;
use crate::model::{ExecutionEnvironment, JsonMap, Status};

/// The sections read from every file, before cross-environment checks.
#[derive(Debug, Default)]
pub(crate) struct Document {
    /// Every environment whose name could be read, in file order.
    pub(crate) environments: Vec<DesiredEnvironment>,
    /// `options`, or the defaults.
    pub(crate) options: Options,
    /// `state`, if written.
    pub(crate) state: Option<StateBackendConfig>,
}

/// Fewest environments worth a run on another thread.
const ENVIRONMENTS_PER_RUN: usize = 512;

/// A top-level section: where its key is written, and its value.
type Written<'n> = (Location, &'n Node);

/// Top-level sections of one file that apply to the whole configuration.
struct Sections<'n> {
    /// Which entry of the file's mapping holds `environments`.
    environments: Option<usize>,
    defaults: Option<Written<'n>>,
    options: Option<Written<'n>>,
    state: Option<Written<'n>>,
}

/// Reads the files' trees (in order) into a [`Document`], recording problems in `checker`. The
/// trees are consumed: each environment's tree is freed on the thread that read it.
pub(crate) fn read(checker: &mut Checker<'_>, mut roots: Vec<Node>) -> Document {
    let mut document = Document::default();
    // Where each file's `environments` list is: (file, entry of its top-level mapping).
    let mut lists: Vec<(usize, usize)> = Vec::new();
    let defaults = {
        let mut defaults: Option<Written<'_>> = None;
        let mut options: Option<Written<'_>> = None;
        let mut state: Option<Written<'_>> = None;
        for (file, root) in roots.iter().enumerate() {
            let Some(sections) = top_level(checker, root) else {
                continue;
            };
            lists.extend(sections.environments.map(|entry| (file, entry)));
            once(checker, "defaults", &mut defaults, sections.defaults);
            once(checker, "options", &mut options, sections.options);
            once(checker, "state", &mut state, sections.state);
        }
        if let Some(node) = value(options).filter(|node| !node.is_null()) {
            document.options = super::options::read(checker, node).unwrap_or_default();
        }
        if let Some(node) = value(state).filter(|node| !node.is_null()) {
            document.state = read_state(checker, node);
        }
        let defaults = value(defaults).filter(|node| !node.is_null());
        if let Some(defaults) = defaults {
            // Checked on its own too, so its problems show even with no environment to merge into.
            let mut ignored = Vec::new();
            environment(checker, defaults, Section::Defaults, &mut ignored);
        }
        // A copy, so the environment lists can be taken out of the trees below.
        defaults.cloned()
    };

    let mut entries: Vec<Node> = Vec::new();
    for (file, entry) in lists {
        let Value::Mapping(top) = &mut roots[file].value else {
            continue;
        };
        let list = &mut top[entry].value;
        if list.is_null() {
            continue;
        }
        if checker
            .list("environments", "a list of environments", list)
            .is_some()
            && let Value::Sequence(items) = &mut list.value
        {
            entries.append(items);
        }
    }
    let defaults = defaults.as_ref();
    // Each environment is read on its own: large configurations on every core.
    let runs = crate::parallel::in_owned_runs(entries, ENVIRONMENTS_PER_RUN, |run| {
        let mut run_checker = checker.beside();
        let mut environments = Vec::with_capacity(run.len());
        for entry in &run {
            let merged = match defaults {
                Some(defaults) => Cow::Owned(merge_defaults(defaults, entry)),
                None => Cow::Borrowed(entry),
            };
            environment(
                &mut run_checker,
                &merged,
                Section::Environment,
                &mut environments,
            );
        }
        (environments, run_checker.problems)
    });
    // Reserved whole: the list lives as long as the plan, so no doubling slack is kept.
    document.environments.reserve_exact(
        runs.iter()
            .map(|(environments, _)| environments.len())
            .sum(),
    );
    for (environments, problems) in runs {
        document.environments.extend(environments);
        checker.problems.extend(problems);
    }
    document
}

/// The value of a section, if written.
fn value<'n>(section: Option<Written<'n>>) -> Option<&'n Node> {
    section.map(|(_, node)| node)
}

/// Records a section, reporting it if another file already has it.
fn once<'n>(
    checker: &mut Checker<'_>,
    key: &'static str,
    first: &mut Option<Written<'n>>,
    found: Option<Written<'n>>,
) {
    let Some(found) = found else { return };
    match first {
        Some((first_key, _)) => {
            let problem = Problem::new(DiagnosticKind::DuplicateSection { key }, found.0)
                .with_label(*first_key, "first written here");
            checker.push(problem);
        }
        None => *first = Some(found),
    }
}

/// Checks a file's top level and `version`; `None` when the file cannot be read further.
fn top_level<'n>(checker: &mut Checker<'_>, root: &'n Node) -> Option<Sections<'n>> {
    if root.is_null() {
        // The parser places an empty document after any blank lines; the file starts at 0.
        let start = Location {
            source: root.location.source,
            span: (0, 0).into(),
        };
        checker.push(Problem::new(DiagnosticKind::EmptyFile, start));
        return None;
    }
    let Some(entries) = root.entries() else {
        let kind = DiagnosticKind::WrongType {
            key: "document".to_owned(),
            expected: "a mapping with `version` and `environments`",
            found: root.kind(),
        };
        checker.report(kind, root);
        return None;
    };
    let known = checker.known_keys(entries, Section::TopLevel);
    let find = |key: &str| {
        known
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| *node)
    };
    match find("version") {
        None => {
            let kind = DiagnosticKind::MissingKey {
                key: "version",
                section: Section::TopLevel,
            };
            checker.report(kind, root);
        }
        Some(version) => match version.value {
            Value::Integer(1) => {}
            Value::Integer(_) => {
                let found = checker.literal(version);
                checker.report(DiagnosticKind::UnsupportedVersion { found }, version);
                // Another version's format would only produce noise here.
                return None;
            }
            _ => {
                let kind = DiagnosticKind::WrongType {
                    key: "version".to_owned(),
                    expected: "an integer",
                    found: version.kind(),
                };
                checker.report(kind, version);
            }
        },
    }
    let written = |key: &str| {
        let value = find(key)?;
        let key_location = entries
            .iter()
            .find(|entry| entry.key.as_str() == Some(key))
            .map_or(value.location, |entry| entry.key.location);
        Some((key_location, value))
    };
    Some(Sections {
        environments: entries
            .iter()
            .position(|entry| entry.key.as_str() == Some("environments")),
        defaults: written("defaults"),
        options: written("options"),
        state: written("state"),
    })
}

/// `defaults` deep-merged under an environment entry: mappings merge key by key, the
/// environment's values win, lists and scalars are replaced. `name` and `renamed_from` are not
/// inherited.
fn merge_defaults(defaults: &Node, entry: &Node) -> Node {
    let (Some(defaults_entries), Some(_)) = (defaults.entries(), entry.entries()) else {
        return entry.clone();
    };
    let inherited: Vec<Entry> = defaults_entries
        .iter()
        .filter(|default| !matches!(default.key.as_str(), Some("name" | "renamed_from")))
        .cloned()
        .collect();
    merge_entries(&inherited, entry, false)
}

/// `node`'s mapping over `defaults`, key by key. Inside a field (`nested`), `key: null` drops the
/// default's key rather than keeping a `null` to send: that is what it says in the file.
fn merge_entries(defaults: &[Entry], node: &Node, nested: bool) -> Node {
    let Some(entries) = node.entries() else {
        return node.clone();
    };
    // Keyed lookups keep merging linear in the size of both mappings.
    let mut defaults_by_key: HashMap<&str, &Entry> = HashMap::new();
    for default in defaults {
        if let Some(key) = default.key.as_str() {
            defaults_by_key.entry(key).or_insert(default);
        }
    }
    let written: HashSet<&str> = entries
        .iter()
        .filter_map(|entry| entry.key.as_str())
        .collect();
    let mut merged: Vec<Entry> = entries
        .iter()
        .filter(|entry| {
            let drops_default = entry.value.is_null()
                && entry
                    .key
                    .as_str()
                    .is_some_and(|key| defaults_by_key.contains_key(key));
            !(nested && drops_default)
        })
        .map(|entry| {
            let default = entry
                .key
                .as_str()
                .and_then(|key| defaults_by_key.get(key))
                .and_then(|default| default.value.entries());
            match default {
                Some(default_entries) if entry.value.entries().is_some() => Entry {
                    key: entry.key.clone(),
                    value: merge_entries(default_entries, &entry.value, true),
                },
                _ => entry.clone(),
            }
        })
        .collect();
    merged.extend(
        defaults
            .iter()
            .filter(|default| {
                default
                    .key
                    .as_str()
                    .is_some_and(|key| !written.contains(key))
            })
            .cloned(),
    );
    Node {
        value: Value::Mapping(merged),
        location: node.location,
        used_at: node.used_at,
    }
}

/// Reads one environment entry (or `defaults`), pushing it to `environments` when its name is
/// readable.
fn environment(
    checker: &mut Checker<'_>,
    node: &Node,
    section: Section,
    environments: &mut Vec<DesiredEnvironment>,
) {
    let key = if section == Section::Defaults {
        "defaults"
    } else {
        "environments[]"
    };
    let Some(entries) = checker.mapping(key, node) else {
        return;
    };
    let mut fields = DesiredFields::default();
    let mut name = None;
    let mut depends_on = Vec::new();
    let mut lifecycle = Lifecycle::default();
    let mut renamed_from = None;
    for (key, value) in checker.known_keys(entries, section) {
        // An explicit null means "not in the file", and also drops a default.
        if value.is_null() && key != "name" {
            continue;
        }
        match key {
            "name" => {
                if let Some(text) = checker.string("name", value) {
                    checker.name(&text, value);
                    name = Some((text, value.location));
                }
            }
            "display_name" => fields.display_name = checker.string(key, value),
            "description" => fields.description = checker.string(key, value),
            "status" => fields.status = status(checker, value),
            "configuration" => fields.configuration = configuration(checker, value),
            "metadata" | "settings" => {
                let map = checker.json_map(key, value);
                if key == "metadata" {
                    fields.metadata = map;
                } else {
                    fields.settings = map;
                }
            }
            "tags" => {
                fields.tags = checker
                    .strings(key, "a list of strings", value)
                    .map(|tags| tags.into_iter().map(|(tag, _)| tag).collect());
            }
            "execution_environment" => {
                fields.execution_environment = execution_environment(checker, value).map(Box::new);
            }
            "nonsensitive" => {
                if let Some(keys) = checker.strings(key, "a list of `env_vars` keys", value) {
                    fields.nonsensitive = keys.into_iter().map(|(key, _)| key).collect();
                }
            }
            "depends_on" => {
                if let Some(names) = checker.strings(key, "a list of environment names", value) {
                    depends_on = names
                        .into_iter()
                        .map(|(name, node)| Reference {
                            name,
                            location: node.location,
                        })
                        .collect();
                }
            }
            "lifecycle" => lifecycle = read_lifecycle(checker, value),
            "renamed_from" => {
                if let Some(text) = checker.string(key, value)
                    && checker.name(&text, value)
                {
                    renamed_from = Some(Reference {
                        name: text,
                        location: value.location,
                    });
                }
            }
            _ => {}
        }
    }
    if section == Section::Defaults {
        return;
    }
    let Some((name, name_location)) = name else {
        if node.get("name").is_none() {
            let kind = DiagnosticKind::MissingKey {
                key: "name",
                section: Section::Environment,
            };
            checker.report(kind, node);
        }
        return;
    };
    environments.push(DesiredEnvironment {
        name,
        fields,
        depends_on,
        lifecycle,
        renamed_from: renamed_from.map(Box::new),
        location: node.location,
        name_location,
    });
}

fn status(checker: &mut Checker<'_>, node: &Node) -> Option<Status> {
    let text = checker.string("status", node)?;
    match text.parse::<Status>() {
        Ok(status) if status.is_user_settable() => Some(status),
        _ => {
            let suggestion = suggestion::closest(&text, ["active", "inactive"]);
            checker.report(
                DiagnosticKind::InvalidStatus {
                    status: text,
                    suggestion,
                },
                node,
            );
            None
        }
    }
}

/// The `configuration` keys the service reads; the rest is free-form.
const READ_CONFIGURATION_KEYS: [&str; 2] = ["max_workers", "timeout_seconds"];

/// `configuration`: free-form, except `max_workers` and `timeout_seconds` are integers ≥ 1.
fn configuration(checker: &mut Checker<'_>, node: &Node) -> Option<JsonMap> {
    let entries = checker.mapping("configuration", node)?;
    let mut map = JsonMap::new();
    let mut complete = true;
    for entry in entries {
        let Some(key) = entry.key.as_str() else {
            complete = false;
            let kind = DiagnosticKind::WrongType {
                key: "configuration key".to_owned(),
                expected: "a string",
                found: entry.key.kind(),
            };
            checker.report(kind, &entry.key);
            continue;
        };
        let value = match key {
            "max_workers" => checker
                .integer("configuration.max_workers", &entry.value, Range::Positive)
                .map(serde_json::Value::from),
            "timeout_seconds" => checker
                .integer(
                    "configuration.timeout_seconds",
                    &entry.value,
                    Range::Positive,
                )
                .map(serde_json::Value::from),
            _ => {
                if let Some(suggestion) = super::suggestion::closest(key, READ_CONFIGURATION_KEYS) {
                    let kind = DiagnosticKind::NearMissKey {
                        key: key.to_owned(),
                        suggestion,
                    };
                    checker.report(kind, &entry.key);
                }
                checker.json(&format!("configuration.{key}"), &entry.value)
            }
        };
        match value {
            Some(value) => {
                map.insert(key.to_owned(), value);
            }
            None => complete = false,
        }
    }
    complete.then_some(map)
}

fn execution_environment(checker: &mut Checker<'_>, node: &Node) -> Option<ExecutionEnvironment> {
    let entries = checker.mapping("execution_environment", node)?;
    let mut result = ExecutionEnvironment::default();
    let mut complete = true;
    for (key, value) in checker.known_keys(entries, Section::ExecutionEnvironment) {
        let path = format!("execution_environment.{key}");
        let ok = match key {
            "env_vars" => env_vars(checker, value).map(|vars| result.env_vars = vars),
            "secrets" => checker
                .strings(&path, "a list of strings", value)
                .map(|names| result.secrets = names.into_iter().map(|(name, _)| name).collect()),
            "integration_ids" => checker
                .strings(&path, "a list of strings", value)
                .map(|ids| result.integration_ids = ids.into_iter().map(|(id, _)| id).collect()),
            "mcp_servers" => checker
                .json_map(&path, value)
                .map(|servers| result.mcp_servers = servers),
            _ => Some(()),
        };
        complete &= ok.is_some();
    }
    complete.then_some(result)
}

/// `env_vars`: names to string values. Messages name the variable, never quote its value.
fn env_vars(checker: &mut Checker<'_>, node: &Node) -> Option<JsonMap> {
    let entries = checker.mapping("execution_environment.env_vars", node)?;
    let mut vars = JsonMap::new();
    let mut complete = true;
    for entry in entries {
        let Some(name) = entry.key.as_str() else {
            complete = false;
            let kind = DiagnosticKind::WrongType {
                key: "env_vars key".to_owned(),
                expected: "a string",
                found: entry.key.kind(),
            };
            checker.report(kind, &entry.key);
            continue;
        };
        match entry.value.as_str() {
            Some(text) => {
                vars.insert(name.to_owned(), serde_json::Value::String(text.to_owned()));
            }
            None => {
                complete = false;
                let kind = DiagnosticKind::WrongType {
                    key: format!("env_vars.{name}"),
                    expected: "a string",
                    found: entry.value.kind(),
                };
                checker.report(kind, &entry.value);
            }
        }
    }
    complete.then_some(vars)
}

fn read_lifecycle(checker: &mut Checker<'_>, node: &Node) -> Lifecycle {
    let mut lifecycle = Lifecycle::default();
    let Some(entries) = checker.mapping("lifecycle", node) else {
        return lifecycle;
    };
    for (key, value) in checker.known_keys(entries, Section::Lifecycle) {
        if value.is_null() {
            continue;
        }
        match key {
            "prevent_destroy" => {
                lifecycle.prevent_destroy = checker
                    .boolean("lifecycle.prevent_destroy", value)
                    .unwrap_or(false);
            }
            "ignore_changes" => {
                let paths = checker
                    .strings("lifecycle.ignore_changes", "a list of field paths", value)
                    .unwrap_or_default();
                lifecycle.ignore_changes = paths
                    .into_iter()
                    .filter_map(|(path, node)| ignore_path(checker, &path, node))
                    .collect();
            }
            _ => {}
        }
    }
    lifecycle
}

/// A dotted path into an environment's managed fields; deeper segments only inside mappings.
fn ignore_path(checker: &mut Checker<'_>, path: &str, node: &Node) -> Option<FieldPath> {
    let segments: Vec<&str> = path.split('.').collect();
    let valid = match segments.as_slice() {
        [] => false,
        segments if segments.iter().any(|segment| segment.is_empty()) => false,
        [field, rest @ ..] => {
            IGNORABLE_FIELDS.contains(field)
                && match (*field, rest) {
                    (_, []) => true,
                    ("configuration" | "metadata" | "settings", _) => true,
                    ("execution_environment", [inner, deeper @ ..]) => {
                        EXECUTION_ENVIRONMENT_FIELDS.contains(inner)
                            && matches!(
                                (*inner, deeper),
                                (_, []) | ("env_vars", [_]) | ("mcp_servers", _)
                            )
                    }
                    _ => false,
                }
        }
    };
    if valid {
        return Some(FieldPath(segments.into_iter().map(str::to_owned).collect()));
    }
    let first = segments.first().copied().unwrap_or("");
    let suggestion = if IGNORABLE_FIELDS.contains(&first) {
        None
    } else {
        suggestion::closest(first, IGNORABLE_FIELDS.iter().copied()).map(|field| {
            let mut fixed = vec![field];
            fixed.extend(segments.iter().skip(1));
            fixed.join(".")
        })
    };
    checker.report(
        DiagnosticKind::UnknownIgnorePath {
            path: path.to_owned(),
            suggestion,
        },
        node,
    );
    None
}

const BACKENDS: &[&str] = &["local", "http"];

fn read_state(checker: &mut Checker<'_>, node: &Node) -> Option<StateBackendConfig> {
    let entries = checker.mapping("state", node)?;
    let Some(backend_node) = node.get("backend") else {
        // Which keys are valid depends on the backend; only a password is wrong for both.
        secrets(checker, entries);
        let kind = DiagnosticKind::MissingKey {
            key: "backend",
            section: Section::State,
        };
        checker.report(kind, node);
        return None;
    };
    let backend = checker.string("state.backend", backend_node)?;
    let section = match backend.as_str() {
        "local" => Section::LocalState,
        "http" => Section::HttpState,
        _ => {
            let suggestion = suggestion::closest(&backend, BACKENDS.iter().copied());
            let kind = DiagnosticKind::InvalidValue {
                key: "backend",
                value: backend,
                expected: BACKENDS,
                suggestion,
            };
            checker.report(kind, backend_node);
            secrets(checker, entries);
            return None;
        }
    };
    let known = checker.known_keys(entries, section);
    let strings = |checker: &mut Checker<'_>, key: &str| -> Option<String> {
        let value = known
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, node)| *node)?;
        if value.is_null() {
            return None;
        }
        checker.string(&format!("state.{key}"), value)
    };
    if section == Section::LocalState {
        return Some(StateBackendConfig::Local {
            path: strings(checker, "path").map(PathBuf::from),
        });
    }
    let address = strings(checker, "address");
    let config = HttpBackendConfig {
        address: address.clone().unwrap_or_default(),
        lock_address: strings(checker, "lock_address"),
        unlock_address: strings(checker, "unlock_address"),
        lock_method: strings(checker, "lock_method"),
        unlock_method: strings(checker, "unlock_method"),
        username: strings(checker, "username"),
    };
    if node.get("address").is_none() {
        let kind = DiagnosticKind::MissingKey {
            key: "address",
            section: Section::HttpState,
        };
        checker.report(kind, node);
    }
    address.map(|_| StateBackendConfig::Http(config))
}

/// Reports a password written into `state`, whatever the backend.
fn secrets(checker: &mut Checker<'_>, entries: &[Entry]) {
    for entry in entries {
        if entry.key.as_str() == Some("password") {
            let kind = DiagnosticKind::SecretInFile {
                key: "password".to_owned(),
            };
            checker.report(kind, &entry.key);
        }
    }
}
