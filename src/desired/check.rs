//! Shape checks over the YAML tree: expected types, known keys, number ranges, names, and the
//! conversion of free-form mappings to JSON. Every check records its problem and carries on, so
//! one pass finds everything wrong with a file.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::diagnostic::Problem;
use super::diagnostic_kind::{DiagnosticKind, Range};
use super::node::{Entry, Node, Value};
use super::section::Section;
use super::source::Sources;
use super::suggestion;
use crate::model::JsonMap;
use crate::model::NameProblem;

/// Longest literal quoted in an out-of-range message.
const LITERAL_LIMIT: usize = 40;

/// Collects problems while reading values out of the tree.
pub(crate) struct Checker<'s> {
    sources: &'s Sources,
    /// Every problem found so far, in the order found.
    pub(crate) problems: Vec<Problem>,
}

impl<'s> Checker<'s> {
    /// A checker over the files of `sources`.
    pub(crate) fn new(sources: &'s Sources) -> Self {
        Self {
            sources,
            problems: Vec::new(),
        }
    }

    /// Another checker over the same files, for work done on another thread; its problems are
    /// added to this one's after.
    pub(crate) fn beside(&self) -> Checker<'s> {
        Self::new(self.sources)
    }

    /// Records a problem at `node` (and, when an alias or merge key brought it, at that too).
    pub(crate) fn report(&mut self, kind: DiagnosticKind, node: &Node) {
        self.problems.push(problem_at(kind, node));
    }

    /// Records a ready-made problem.
    pub(crate) fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The node's text as written, shortened for messages.
    pub(crate) fn literal(&self, node: &Node) -> String {
        let span = node.location.span;
        let text = self
            .sources
            .files
            .get(node.location.source.0)
            .and_then(|file| file.text.get(span.offset()..span.offset() + span.len()))
            .unwrap_or("");
        let mut shown: String = text.chars().take(LITERAL_LIMIT).collect();
        if text.chars().count() > LITERAL_LIMIT {
            shown.push('…');
        }
        shown
    }

    fn wrong_type(&mut self, key: &str, expected: &'static str, node: &Node) {
        let kind = DiagnosticKind::WrongType {
            key: key.to_owned(),
            expected,
            found: node.kind(),
        };
        self.report(kind, node);
    }

    /// A string value.
    pub(crate) fn string(&mut self, key: &str, node: &Node) -> Option<String> {
        match node.as_str() {
            Some(text) => Some(text.to_owned()),
            None => {
                self.wrong_type(key, "a string", node);
                None
            }
        }
    }

    /// A boolean value.
    pub(crate) fn boolean(&mut self, key: &str, node: &Node) -> Option<bool> {
        match node.value {
            Value::Bool(value) => Some(value),
            _ => {
                self.wrong_type(key, "a boolean (`true` or `false`)", node);
                None
            }
        }
    }

    /// A mapping's entries.
    pub(crate) fn mapping<'n>(&mut self, key: &str, node: &'n Node) -> Option<&'n [Entry]> {
        match node.entries() {
            Some(entries) => Some(entries),
            None => {
                self.wrong_type(key, "a mapping", node);
                None
            }
        }
    }

    /// A list's items.
    pub(crate) fn list<'n>(
        &mut self,
        key: &str,
        expected: &'static str,
        node: &'n Node,
    ) -> Option<&'n [Node]> {
        match &node.value {
            Value::Sequence(items) => Some(items),
            _ => {
                self.wrong_type(key, expected, node);
                None
            }
        }
    }

    /// A list of strings, each with its node; `None` if any item is not a string.
    pub(crate) fn strings<'n>(
        &mut self,
        key: &str,
        expected: &'static str,
        node: &'n Node,
    ) -> Option<Vec<(String, &'n Node)>> {
        let items = self.list(key, expected, node)?;
        let mut strings = Vec::with_capacity(items.len());
        let mut complete = true;
        for (index, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(text) => strings.push((text.to_owned(), item)),
                None => {
                    complete = false;
                    self.wrong_type(&format!("{key}[{index}]"), "a string", item);
                }
            }
        }
        complete.then_some(strings)
    }

    /// The entries of a fixed-key mapping whose keys are known, first occurrence of each;
    /// unknown and non-string keys are reported.
    pub(crate) fn known_keys<'n>(
        &mut self,
        entries: &'n [Entry],
        section: Section,
    ) -> Vec<(&'static str, &'n Node)> {
        let allowed = section.keys();
        let mut known: Vec<(&'static str, &'n Node)> = Vec::new();
        for entry in entries {
            let Some(key) = entry.key.as_str() else {
                self.wrong_type("key", "a string", &entry.key);
                continue;
            };
            if section == Section::TopLevel && key.starts_with("x-") {
                continue;
            }
            if let Some(&name) = allowed.iter().find(|&&name| name == key) {
                if !known.iter().any(|(seen, _)| *seen == name) {
                    known.push((name, &entry.value));
                }
                continue;
            }
            let is_state = matches!(
                section,
                Section::State | Section::LocalState | Section::HttpState
            );
            let kind = if is_state && key == "password" {
                DiagnosticKind::SecretInFile {
                    key: key.to_owned(),
                }
            } else {
                let suggestion =
                    if section == Section::Defaults && matches!(key, "name" | "renamed_from") {
                        None
                    } else {
                        suggestion::closest(key, allowed.iter().copied())
                    };
                DiagnosticKind::UnknownKey {
                    key: key.to_owned(),
                    section,
                    suggestion,
                }
            };
            self.report(kind, &entry.key);
        }
        known
    }

    /// An integer within `range` (`Positive` or `NonNegative`).
    pub(crate) fn integer(&mut self, key: &str, node: &Node, range: Range) -> Option<i64> {
        let (minimum, maximum): (i128, i128) = match range {
            Range::NonNegative => (0, u32::MAX.into()),
            _ => (1, i64::MAX.into()),
        };
        match node.value {
            Value::Integer(value) if (minimum..=maximum).contains(&value) => {
                i64::try_from(value).ok()
            }
            Value::Integer(_) => {
                self.out_of_range(key, node, range);
                None
            }
            // A float this large is an integer literal beyond 64 bits, not a fraction.
            Value::Float(value) if !value.is_finite() || value.abs() >= i64::MAX as f64 => {
                self.out_of_range(key, node, range);
                None
            }
            _ => {
                self.wrong_type(key, "an integer", node);
                None
            }
        }
    }

    /// A number from 0.0 to 1.0.
    pub(crate) fn fraction(&mut self, key: &str, node: &Node) -> Option<f64> {
        let value = match node.value {
            Value::Integer(value) => value as f64,
            Value::Float(value) => value,
            _ => {
                self.wrong_type(key, "a number", node);
                return None;
            }
        };
        if (0.0..=1.0).contains(&value) {
            Some(value)
        } else {
            self.out_of_range(key, node, Range::Fraction);
            None
        }
    }

    fn out_of_range(&mut self, key: &str, node: &Node, range: Range) {
        let kind = DiagnosticKind::OutOfRange {
            key: key.to_owned(),
            found: self.literal(node),
            range,
        };
        self.report(kind, node);
    }

    /// Checks an environment name against the service's rules.
    pub(crate) fn name(&mut self, name: &str, node: &Node) -> bool {
        match NameProblem::of(name) {
            None => true,
            Some(problem) => {
                let kind = DiagnosticKind::InvalidName {
                    name: name.to_owned(),
                    problem,
                };
                self.report(kind, node);
                false
            }
        }
    }

    /// A free-form mapping as a JSON object.
    pub(crate) fn json_map(&mut self, key: &str, node: &Node) -> Option<JsonMap> {
        let entries = self.mapping(key, node)?;
        let mut map = JsonMap::with_capacity(entries.len());
        let mut complete = true;
        for entry in entries {
            let Some(name) = entry.key.as_str() else {
                complete = false;
                self.wrong_type(&format!("{key} key"), "a string", &entry.key);
                continue;
            };
            // A string or boolean cannot be wrong: no path to name it by.
            let value = match &entry.value.value {
                Value::String(text) => Some(Json::String(text.clone())),
                Value::Bool(value) => Some(Json::Bool(*value)),
                _ => self.json(&format!("{key}.{name}"), &entry.value),
            };
            match value {
                Some(value) => {
                    map.insert(name.to_owned(), value);
                }
                None => complete = false,
            }
        }
        complete.then_some(map)
    }

    /// Any YAML value as JSON; numbers must fit JSON's range.
    pub(crate) fn json(&mut self, key: &str, node: &Node) -> Option<Json> {
        match &node.value {
            Value::Null => Some(Json::Null),
            Value::Bool(value) => Some(Json::Bool(*value)),
            Value::Integer(value) => {
                if let Ok(signed) = i64::try_from(*value) {
                    Some(Json::from(signed))
                } else if let Ok(unsigned) = u64::try_from(*value) {
                    Some(Json::from(unsigned))
                } else {
                    self.out_of_range(key, node, Range::JsonNumber);
                    None
                }
            }
            Value::Float(value) => match serde_json::Number::from_f64(*value) {
                Some(number) => Some(Json::Number(number)),
                None => {
                    self.out_of_range(key, node, Range::JsonNumber);
                    None
                }
            },
            Value::String(text) => Some(Json::String(text.clone())),
            Value::Sequence(items) => {
                let mut values = Vec::with_capacity(items.len());
                let mut complete = true;
                for (index, item) in items.iter().enumerate() {
                    match self.json(&format!("{key}[{index}]"), item) {
                        Some(value) => values.push(value),
                        None => complete = false,
                    }
                }
                complete.then_some(Json::Array(values))
            }
            Value::Mapping(_) => self.json_map(key, node).map(Json::Object),
        }
    }
}

/// A problem at a node, also labelling the alias or merge key that brought the node in.
pub(crate) fn problem_at(kind: DiagnosticKind, node: &Node) -> Problem {
    let problem = Problem::new(kind, node.location);
    if node.used_at != node.location && !node.used_at.span.is_empty() {
        problem.with_label(node.used_at, "used here")
    } else {
        problem
    }
}

/// Every key written twice in one mapping, anywhere in the tree, with both places.
pub(crate) fn duplicate_keys(node: &Node) -> Vec<Problem> {
    let mut problems = Vec::new();
    // Iterative: nesting is bounded by the parser, but a work list costs nothing.
    let mut pending = vec![node];
    while let Some(node) = pending.pop() {
        match &node.value {
            Value::Sequence(items) => pending.extend(items.iter().rev()),
            Value::Mapping(entries) => {
                for (repeated, first) in repeated_keys(entries) {
                    let kind = DiagnosticKind::DuplicateKey {
                        key: key_text(repeated),
                    };
                    let problem =
                        problem_at(kind, repeated).with_label(first.location, "first written here");
                    problems.push(problem);
                }
                pending.extend(entries.iter().rev().map(|entry| &entry.value));
            }
            _ => {}
        }
    }
    problems
}

/// Mappings up to this many entries are searched for a repeated key pair by pair, which is
/// cheaper than hashing their keys.
const PAIRWISE_KEYS: usize = 16;

/// Each key of a mapping that an earlier entry already has, with that first key.
fn repeated_keys(entries: &[Entry]) -> Vec<(&Node, &Node)> {
    let mut repeated = Vec::new();
    if entries.len() <= PAIRWISE_KEYS {
        for (index, entry) in entries.iter().enumerate() {
            let Some(key) = ScalarKey::of(&entry.key) else {
                continue;
            };
            let first = entries[..index]
                .iter()
                .find(|earlier| ScalarKey::of(&earlier.key).as_ref() == Some(&key));
            if let Some(first) = first {
                repeated.push((&entry.key, &first.key));
            }
        }
        return repeated;
    }
    let mut first_by_key: HashMap<ScalarKey<'_>, &Node> = HashMap::new();
    for entry in entries {
        let Some(key) = ScalarKey::of(&entry.key) else {
            continue;
        };
        match first_by_key.entry(key) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(&entry.key);
            }
            std::collections::hash_map::Entry::Occupied(first) => {
                repeated.push((&entry.key, *first.get()));
            }
        }
    }
    repeated
}

/// A scalar mapping key, compared by value (collections and floats are not compared).
#[derive(PartialEq, Eq, Hash)]
enum ScalarKey<'n> {
    String(&'n str),
    Integer(i128),
    Bool(bool),
    Null,
}

impl<'n> ScalarKey<'n> {
    fn of(node: &'n Node) -> Option<Self> {
        match &node.value {
            Value::String(text) => Some(ScalarKey::String(text)),
            Value::Integer(value) => Some(ScalarKey::Integer(*value)),
            Value::Bool(value) => Some(ScalarKey::Bool(*value)),
            Value::Null => Some(ScalarKey::Null),
            _ => None,
        }
    }
}

fn key_text(node: &Node) -> String {
    match &node.value {
        Value::String(text) => text.clone(),
        Value::Integer(value) => value.to_string(),
        Value::Bool(value) => value.to_string(),
        Value::Null => "null".to_owned(),
        _ => String::new(),
    }
}
