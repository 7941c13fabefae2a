//! The YAML layer, with `compose` the only place that knows serde-saphyr: text → a tree
//! of [`Node`]s that remember where each was written. Validation walks this tree instead of
//! deserializing into typed structs, because serde stops at the first error and the file's
//! author wants all of them.
//!
//! Parser settings: duplicate keys are passed through (and reported with both places by
//! validation), only `true`/`false` are booleans, merge keys expand, and budgets stop alias
//! bombs and deep nesting with a diagnostic instead of exhausting memory or the stack.

use std::fmt;

use miette::SourceSpan;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned};

use super::diagnostic::Problem;
use super::diagnostic_kind::{DiagnosticKind, NodeKind};
use super::limits::{MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, MAX_REPLAYED_EVENTS};
use super::source::{Location, SourceId};

/// One YAML node with its place.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub(crate) value: Value,
    /// Where the node's text is; for an alias, the anchored original.
    pub(crate) location: Location,
    /// Where the node is used: the alias or merge key that brought it here, else `location`.
    pub(crate) used_at: Location,
}

/// A YAML value; scalars are typed by YAML's core schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number that fits 128 bits.
    Integer(i128),
    /// Any other number, including infinities for literals too large for `f64`.
    Float(f64),
    /// Text.
    String(String),
    /// A sequence.
    Sequence(Vec<Node>),
    /// A mapping, in written order, merge keys expanded, duplicates kept.
    Mapping(Vec<Entry>),
}

/// A key and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key.
    pub(crate) key: Node,
    /// The value.
    pub(crate) value: Node,
}

impl Node {
    /// The node's shape, for messages.
    pub(crate) fn kind(&self) -> NodeKind {
        match self.value {
            Value::Null => NodeKind::Null,
            Value::Bool(_) => NodeKind::Boolean,
            Value::Integer(_) => NodeKind::Integer,
            Value::Float(_) => NodeKind::Float,
            Value::String(_) => NodeKind::String,
            Value::Sequence(_) => NodeKind::List,
            Value::Mapping(_) => NodeKind::Mapping,
        }
    }

    /// The text of a string node.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// Whether the node is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The entries of a mapping node.
    pub(crate) fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Mapping(entries) => Some(entries),
            _ => None,
        }
    }

    /// The value under a string key of a mapping node (the first, if written twice).
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|entry| entry.key.as_str() == Some(key))
            .map(|entry| &entry.value)
    }
}

/// Parses through serde-saphyr's deserializer, which knows every YAML feature and error.
pub(super) fn deserialize(source: SourceId, text: &str) -> Result<Node, Problem> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            flow_nesting_limit: MAX_DEPTH,
            max_nodes: MAX_NODES,
            max_events: 4 * MAX_NODES,
            max_total_scalar_bytes: MAX_FILE_BYTES,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
            max_replay_stack_depth: MAX_DEPTH,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: true,
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        with_snippet: false,
    };
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options) {
        Ok(root) => Ok(convert(root, source, text)),
        Err(error) => Err(problem_from_error(&error, source, text)),
    }
}

pub(super) fn location(source: SourceId, offset: usize, len: usize) -> Location {
    Location {
        source,
        span: SourceSpan::new(offset.into(), len),
    }
}

/// A serde-saphyr span as a byte span of `text` (it gives characters when bytes are unknown).
fn byte_span(source: SourceId, text: &str, span: serde_saphyr::Span) -> Location {
    let (offset, len) = match (span.byte_offset(), span.byte_len()) {
        (Some(offset), Some(len)) => (saturate(offset), saturate(len)),
        _ => {
            let start = char_to_byte(text, saturate(span.offset()));
            let end = char_to_byte(
                text,
                saturate(span.offset()).saturating_add(saturate(span.len())),
            );
            (start, end.saturating_sub(start))
        }
    };
    let offset = offset.min(text.len());
    let len = len.min(text.len() - offset);
    location(source, offset, len)
}

fn saturate(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn char_to_byte(text: &str, chars: usize) -> usize {
    text.char_indices()
        .nth(chars)
        .map_or(text.len(), |(index, _)| index)
}

fn convert(raw: Spanned<Raw>, source: SourceId, text: &str) -> Node {
    let location = byte_span(source, text, raw.defined.span());
    let used_at = byte_span(source, text, raw.referenced.span());
    let value = match raw.value {
        Raw::Null => Value::Null,
        Raw::Bool(value) => Value::Bool(value),
        Raw::Integer(value) => Value::Integer(value),
        Raw::Float(value) => Value::Float(value),
        Raw::String(value) => Value::String(value),
        Raw::Sequence(items) => Value::Sequence(
            items
                .into_iter()
                .map(|item| convert(item, source, text))
                .collect(),
        ),
        Raw::Mapping(entries) => Value::Mapping(
            entries
                .into_iter()
                .map(|(key, value)| Entry {
                    key: convert(key, source, text),
                    value: convert(value, source, text),
                })
                .collect(),
        ),
    };
    let location = match &value {
        Value::Sequence(_) | Value::Mapping(_) => collection_extent(&value, location, text),
        _ => location,
    };
    Node {
        value,
        location,
        used_at,
    }
}

/// The parser places a collection at its first character only; labels read better over the
/// collection's first line (and a whole one-line flow collection, brackets included).
pub(super) fn collection_extent(value: &Value, start: Location, text: &str) -> Location {
    let begin = start.span.offset();
    let mut end = begin + start.span.len();
    let mut extend = |node: &Node| {
        for place in [node.location, node.used_at] {
            if place.source == start.source && place.span.offset() >= begin {
                end = end.max(place.span.offset() + place.span.len());
            }
        }
    };
    match value {
        Value::Sequence(items) => items.iter().for_each(&mut extend),
        Value::Mapping(entries) => entries.iter().for_each(|entry| {
            extend(&entry.key);
            extend(&entry.value);
        }),
        _ => {}
    }
    let line_end = text
        .get(begin..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |index| begin + index);
    let mut end = end.min(line_end);
    if matches!(text.get(begin..begin + 1), Some("{" | "[")) {
        let rest = text.get(end..line_end).unwrap_or("");
        let trimmed = rest.trim_start_matches([' ', ',']);
        if trimmed.starts_with(['}', ']']) {
            end += rest.len() - trimmed.len() + 1;
        }
    }
    location(start.source, begin, end.saturating_sub(begin))
}

fn problem_from_error(error: &serde_saphyr::Error, source: SourceId, text: &str) -> Problem {
    use serde_saphyr::Error;
    let mut inner = error.without_snippet();
    while let Error::AliasError { error, .. } = inner {
        inner = error.without_snippet();
    }
    let message = || sanitize(&serde_saphyr::UserMessageFormatter.format_message(inner));
    let kind = match inner {
        Error::Budget { breach, .. } => DiagnosticKind::TooComplex {
            message: budget_message(breach),
        },
        Error::AliasReplayLimitExceeded { .. }
        | Error::AliasExpansionLimitExceeded { .. }
        | Error::AliasReplayStackDepthExceeded { .. }
        | Error::AliasReplayCounterOverflow { .. } => DiagnosticKind::TooComplex {
            message: "aliases expand to too many nodes".to_owned(),
        },
        Error::RecursiveReferencesRequireWeakTypes { .. } => DiagnosticKind::RecursiveAlias,
        Error::DuplicateMappingKey { key, .. } => DiagnosticKind::DuplicateKey {
            key: key.clone().unwrap_or_default(),
        },
        Error::MultipleDocuments { .. } => DiagnosticKind::YamlSyntax {
            message: "a file holds one YAML document; split the others into their own files"
                .to_owned(),
        },
        _ => {
            let message = message();
            if message.contains("recursion limit") {
                DiagnosticKind::TooComplex {
                    message: format!("nested deeper than {MAX_DEPTH} levels"),
                }
            } else {
                DiagnosticKind::YamlSyntax { message }
            }
        }
    };
    let mut place = error.location().map_or_else(
        || location(source, 0, 0),
        |found| byte_span(source, text, found.span()),
    );
    // The parser reports a tab in indentation just after it; point at the tab itself.
    let offset = place.span.offset();
    if offset > 0
        && text.as_bytes().get(offset - 1) == Some(&b'\t')
        && matches!(&kind, DiagnosticKind::YamlSyntax { message } if message.contains("tab"))
    {
        place = location(source, offset - 1, 1);
    }
    Problem::new(kind, place)
}

fn budget_message(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    match breach {
        BudgetBreach::Depth { .. } => format!("nested deeper than {MAX_DEPTH} levels"),
        BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
            format!("more than {MAX_NODES} nodes")
        }
        BudgetBreach::Aliases { .. }
        | BudgetBreach::AliasAnchorRatio { .. }
        | BudgetBreach::RecordedAnchorEvents { .. }
        | BudgetBreach::RecordedAnchorBytes { .. } => "aliases expand to too many nodes".to_owned(),
        BudgetBreach::ScalarBytes { .. } | BudgetBreach::InputBytes { .. } => {
            format!("more than {MAX_FILE_BYTES} bytes of text")
        }
        other => format!("{other:?}"),
    }
}

/// Parser messages can quote input; keep control characters out of the terminal.
fn sanitize(message: &str) -> String {
    let mut clean = String::with_capacity(message.len());
    for character in message.chars() {
        if character.is_control() {
            clean.extend(character.escape_debug());
        } else {
            clean.push(character);
        }
    }
    clean
}

/// The deserialization target: any YAML value, each child wrapped in `Spanned` to keep its place.
#[derive(Debug)]
enum Raw {
    Null,
    Bool(bool),
    Integer(i128),
    Float(f64),
    String(String),
    Sequence(Vec<Spanned<Raw>>),
    Mapping(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any YAML value")
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        Raw::deserialize(deserializer)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Raw, E> {
        Ok(Raw::Integer(value.into()))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Raw, E> {
        Ok(Raw::Integer(value.into()))
    }

    fn visit_i128<E>(self, value: i128) -> Result<Raw, E> {
        Ok(Raw::Integer(value))
    }

    fn visit_u128<E>(self, value: u128) -> Result<Raw, E> {
        // Beyond i128 only the magnitude matters: it is out of every range.
        Ok(i128::try_from(value).map_or(Raw::Float(f64::INFINITY), Raw::Integer))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Raw, E> {
        Ok(Raw::Float(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Raw, E> {
        Ok(Raw::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Raw, E> {
        Ok(Raw::String(value))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<Raw, E> {
        String::from_utf8(value.to_vec())
            .map(Raw::String)
            .map_err(|_| E::custom("binary values are not supported"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = sequence.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Sequence(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut mapping: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = mapping.next_key::<Spanned<Raw>>()? {
            let value = mapping.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Mapping(entries))
    }
}
