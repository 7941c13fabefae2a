//! The fast path of the YAML layer: a file of plain YAML composed straight from the parser's
//! events, without serde-saphyr's deserializer. Most desired-state files use nothing else, and
//! spans through `Spanned<T>` cost about as much again as the parse itself.
//!
//! It gives up (returns `None`) on anything it does not reproduce exactly: anchors, aliases,
//! merge keys, tags, numbers other than plain decimals (`12`, `-0.5`), complex keys, more than one
//! document, sizes near the budgets, and every parse error. [`super::yaml::parse`] then hands the
//! file to serde-saphyr, which decides and reports. A test checks that both give the same tree.

use std::borrow::Cow;

use serde_saphyr::granit_parser::{self, Event, Parser, ScalarStyle, Span};

use super::limits::{MAX_DEPTH, MAX_NODES};
use super::node::{Entry, Node, Value, collection_extent, location};
use super::source::{Location, SourceId};

/// A collection being composed.
enum Open {
    Sequence {
        start: Location,
        items: Vec<Node>,
    },
    Mapping {
        start: Location,
        entries: Vec<Entry>,
        key: Option<Node>,
    },
}

/// The tree of `text`, or `None` when serde-saphyr must decide.
pub(super) fn compose(source: SourceId, text: &str) -> Option<Node> {
    let whole = Part {
        text,
        offsets: Offsets::starting_at(0),
        depth: 0,
    };
    compose_part(source, text, &whole).map(|(root, _)| root)
}

/// A stretch of a file composed apart from the rest of it.
pub(super) struct Part<'t> {
    /// The stretch's text.
    pub(super) text: &'t str,
    /// Where its bytes are in the file.
    pub(super) offsets: Offsets,
    /// How many collections enclose its root in the file's tree.
    pub(super) depth: usize,
}

/// Where a part's bytes are in the file: from `start`, less a gap left out at `gap_at`.
#[derive(Clone, Copy)]
pub(super) struct Offsets {
    /// The file offset of the part's first byte.
    pub(super) start: usize,
    /// The file offset where bytes were left out of the part.
    pub(super) gap_at: usize,
    /// How many bytes were left out there.
    pub(super) gap_len: usize,
}

impl Offsets {
    /// A part that is the file's bytes from `start` on, with none left out.
    pub(super) fn starting_at(start: usize) -> Self {
        Self {
            start,
            gap_at: usize::MAX,
            gap_len: 0,
        }
    }

    /// The file offset of the part's byte `offset`.
    fn in_file(self, offset: usize) -> usize {
        let offset = self.start + offset;
        if offset >= self.gap_at {
            offset + self.gap_len
        } else {
            offset
        }
    }
}

/// The tree of `part` of the file `text`, with every place in file offsets, and how many parser
/// events it took; `None` when serde-saphyr must decide.
pub(super) fn compose_part(source: SourceId, text: &str, part: &Part<'_>) -> Option<(Node, usize)> {
    // The parser settings serde-saphyr derives from `node::deserialize`'s budget.
    let block_nesting_limit = granit_parser::Options::default()
        .block_nesting_limit
        .max(MAX_DEPTH + 1);
    let options = granit_parser::options! {
        flow_nesting_limit: MAX_DEPTH,
        block_nesting_limit: block_nesting_limit,
        emit_comments: false,
    };
    let mut open: Vec<Open> = Vec::new();
    let mut root = None;
    let mut documents = 0_usize;
    let mut count = 0;
    for (events, item) in Parser::new_from_str_with_options(part.text, options).enumerate() {
        count = events + 1;
        // Well inside the node budget, so serde-saphyr alone decides near it.
        if events >= MAX_NODES {
            return None;
        }
        let (event, span) = item.ok()?;
        let node = match event {
            Event::StreamStart | Event::DocumentEnd => continue,
            Event::StreamEnd => break,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return None;
                }
                continue;
            }
            Event::Scalar(value, style, anchor, tag) => {
                if anchor != 0 || tag.is_some() {
                    return None;
                }
                let place = place(source, part.offsets, span)?;
                Node {
                    value: scalar(value, style)?,
                    location: place,
                    used_at: place,
                }
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if anchor != 0 || tag.is_some() || part.depth + open.len() + 1 >= MAX_DEPTH {
                    return None;
                }
                let start = place(source, part.offsets, span)?;
                open.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Sequence {
                        start,
                        items: Vec::new(),
                    }
                } else {
                    Open::Mapping {
                        start,
                        entries: Vec::new(),
                        key: None,
                    }
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop()? {
                Open::Sequence { start, items } => collection(Value::Sequence(items), start, text),
                Open::Mapping {
                    start,
                    entries,
                    key: None,
                } => collection(Value::Mapping(entries), start, text),
                Open::Mapping { key: Some(_), .. } => return None,
            },
            _ => return None,
        };
        match open.last_mut() {
            None if root.is_none() => root = Some(node),
            None => return None,
            Some(Open::Sequence { items, .. }) => items.push(node),
            Some(Open::Mapping { entries, key, .. }) => match key.take() {
                Some(key) => entries.push(Entry { key, value: node }),
                // A merge key or a collection as a key: serde-saphyr's rules.
                None if node.as_str() == Some("<<") || !is_scalar(&node) => return None,
                None => *key = Some(node),
            },
        }
    }
    if open.is_empty() {
        root.map(|root| (root, count))
    } else {
        None
    }
}

fn place(source: SourceId, offsets: Offsets, span: Span) -> Option<Location> {
    let start = offsets.in_file(span.start.byte_offset()?);
    let end = offsets.in_file(span.end.byte_offset()?);
    Some(location(source, start, end.checked_sub(start)?))
}

fn collection(value: Value, start: Location, text: &str) -> Node {
    Node {
        location: collection_extent(&value, start, text),
        used_at: start,
        value,
    }
}

fn is_scalar(node: &Node) -> bool {
    !matches!(node.value, Value::Sequence(_) | Value::Mapping(_))
}

/// A scalar typed as serde-saphyr types it (YAML 1.2 core schema, strict booleans), or `None`
/// for a number it should decide.
fn scalar(text: Cow<'_, str>, style: ScalarStyle) -> Option<Value> {
    if style != ScalarStyle::Plain {
        return Some(Value::String(text.into_owned()));
    }
    Some(match text.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        plain => match plain.as_bytes() {
            [b'0'..=b'9' | b'+' | b'-' | b'.', ..] => match number(plain) {
                Some(value) => value,
                // Text a number parser may still read (`0x1F`, `1e3`, `.inf`, `1_000`).
                None if plain.chars().all(numeric) => return None,
                // A path such as `.envform/state.json`, a version such as `1.0.0-beta`.
                None => Value::String(text.into_owned()),
            },
            _ => Value::String(text.into_owned()),
        },
    })
}

/// Whether `character` can be part of a number in any notation YAML or serde-saphyr reads.
fn numeric(character: char) -> bool {
    character.is_ascii_hexdigit() || "+-._xXoOiInN".contains(character)
}

/// A plain decimal number: digits, with a `-` before and a fraction after if any; no `+`, no
/// exponent, no leading zero before an integer's other digits, at most 18 digits a part.
fn number(text: &str) -> Option<Value> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |part: &str| {
        !part.is_empty() && part.len() <= 18 && part.bytes().all(|byte| byte.is_ascii_digit())
    };
    match fraction {
        None if digits(whole) && (whole.len() == 1 || !whole.starts_with('0')) => {
            text.parse().ok().map(Value::Integer)
        }
        Some(fraction) if digits(whole) && digits(fraction) => text.parse().ok().map(Value::Float),
        _ => None,
    }
}
