//! One large file composed on every core: the lines of its top-level `environments` list are cut
//! between items into pieces composed side by side, and the pieces join into the tree
//! [`super::compose::compose`] gives for the whole file.
//!
//! The cut is read from lines alone, so every piece is checked against it: each must compose to
//! one sequence with an item starting on each of its cut lines, and the file less the pieces cut
//! off must hold the `environments` key where the cut found it. A cut inside a quoted scalar or a
//! flow collection leaves a piece that does not parse, and a block or plain scalar cannot hold a
//! line as little indented as the list's items. At any doubt this gives `None` and the file is
//! composed whole; a test checks both give the same tree, spans included.

use std::ops::Range;

use super::compose::{Offsets, Part, compose_part};
use super::limits::MAX_NODES;
use super::node::{Node, Value, collection_extent};
use super::source::SourceId;

/// Fewest bytes of environments in a piece: smaller pieces cost more to join than they save.
pub(super) const PIECE_BYTES: usize = 64 * 1024;

/// The top-level `environments` list as lines of the file.
#[derive(Debug)]
struct List {
    /// Where the `environments` key is written.
    key: usize,
    /// The start of each line where an item starts (`- ` at the items' indent).
    items: Vec<usize>,
    /// How far the items are indented.
    indent: usize,
    /// Where the list's lines end: the next line less indented, or the end of the file.
    end: usize,
}

/// The tree of `text` with its environments composed in pieces of at least `piece_bytes` on
/// every core, or `None` when the file has no list to cut into two pieces or more, or the cut
/// does not hold.
///
/// Every piece but the last is composed alone, with a line `-` after it so that the parser ends
/// its last item as it does before the next one. The last piece is composed with the rest of the
/// file around it, so whatever follows the list ends it exactly as in the whole file.
pub(super) fn compose(source: SourceId, text: &str, piece_bytes: usize) -> Option<Node> {
    let list = list_lines(text)?;
    let pieces = cut(&list, piece_bytes.max(1));
    let (last, cut_off) = pieces.split_last()?;
    if cut_off.is_empty() {
        return None;
    }
    // Task `i` composes piece `i`; the last task composes the rest of the file.
    let tasks: Vec<usize> = (0..pieces.len()).collect();
    let mut composed = crate::parallel::each(&tasks, |&task| match cut_off.get(task) {
        Some(piece) => compose_piece(source, text, &list, piece),
        None => compose_rest(source, text, &list, last),
    });
    let (mut root, mut events) = composed.pop()??;
    let mut items = Vec::with_capacity(list.items.len());
    let mut sequence_start = None;
    for piece in composed {
        let (sequence, piece_events) = piece?;
        events += piece_events;
        sequence_start.get_or_insert(sequence.used_at);
        if let Value::Sequence(piece_items) = sequence.value {
            items.extend(piece_items);
        }
    }
    // The whole-file compose gives up this early too, so serde-saphyr alone decides near the budget.
    if events >= MAX_NODES {
        return None;
    }
    let sequence_start = sequence_start?;
    let sequence = environments_value(&mut root, &list)?;
    if let Value::Sequence(last_items) = &mut sequence.value {
        items.append(last_items);
    }
    let value = Value::Sequence(items);
    *sequence = Node {
        location: collection_extent(&value, sequence_start, text),
        used_at: sequence_start,
        value,
    };
    Some(root)
}

/// Composes the items of `piece` as one sequence, followed by a line `-` at their indent whose
/// item is then dropped; `None` unless each item starts on its line.
fn compose_piece(
    source: SourceId,
    text: &str,
    list: &List,
    piece: &Range<usize>,
) -> Option<(Node, usize)> {
    let first = *list.items.get(piece.start)?;
    let next = *list.items.get(piece.end)?;
    let piece_text = [text.get(first..next + list.indent)?, "-\n"].concat();
    let part = Part {
        text: &piece_text,
        offsets: Offsets::starting_at(first),
        // Inside the root mapping.
        depth: 1,
    };
    let (mut sequence, events) = compose_part(source, text, &part)?;
    let Value::Sequence(items) = &mut sequence.value else {
        return None;
    };
    items.pop();
    on_their_lines(items, list, piece).then_some((sequence, events))
}

/// Composes the file without the pieces before `last`: the rest's `environments` holds the last
/// piece's items, written where the cut found them.
fn compose_rest(
    source: SourceId,
    text: &str,
    list: &List,
    last: &Range<usize>,
) -> Option<(Node, usize)> {
    let start = *list.items.first()?;
    let kept = *list.items.get(last.start)?;
    let rest_text = [&text[..start], &text[kept..]].concat();
    let rest = Part {
        text: &rest_text,
        offsets: Offsets {
            start: 0,
            gap_at: start,
            gap_len: kept - start,
        },
        depth: 0,
    };
    let (mut root, events) = compose_part(source, text, &rest)?;
    let sequence = environments_value(&mut root, list)?;
    match &sequence.value {
        Value::Sequence(items) if on_their_lines(items, list, last) => Some((root, events)),
        _ => None,
    }
}

/// The value of the root's `environments` key, written where the cut found it.
fn environments_value<'n>(root: &'n mut Node, list: &List) -> Option<&'n mut Node> {
    let Value::Mapping(entries) = &mut root.value else {
        return None;
    };
    let entry = entries
        .iter_mut()
        .find(|entry| entry.key.location.span.offset() == list.key)?;
    (entry.key.as_str() == Some("environments")).then_some(&mut entry.value)
}

/// Whether `items` are the items of `piece`, each starting on its line.
fn on_their_lines(items: &[Node], list: &List, piece: &Range<usize>) -> bool {
    let Some(starts) = list.items.get(piece.clone()) else {
        return false;
    };
    let ends = starts.iter().skip(1).copied().chain([usize::MAX]);
    items.len() == starts.len()
        && items
            .iter()
            .zip(starts)
            .zip(ends)
            .all(|((item, &line), next)| {
                let offset = item.used_at.span.offset();
                line <= offset && offset < next
            })
}

/// The list's items in pieces (ranges of item indexes) of at least `piece_bytes` each, the last
/// taking the remainder.
fn cut(list: &List, piece_bytes: usize) -> Vec<Range<usize>> {
    let mut pieces = Vec::new();
    let mut first = 0;
    for (index, &start) in list.items.iter().enumerate().skip(1) {
        if start - list.items[first] >= piece_bytes {
            pieces.push(first..index);
            first = index;
        }
    }
    if first < list.items.len() {
        pieces.push(first..list.items.len());
    }
    // A short last piece joins the one before it.
    if pieces.len() >= 2 && list.end - list.items[first] < piece_bytes / 2 {
        pieces.pop();
        if let Some(before) = pieces.last_mut() {
            before.end = list.items.len();
        }
    }
    pieces
}

/// Finds the one line `environments:` at the file's left edge and the lines of the block list
/// below it, in one pass over the lines; `None` when there is no such line, or more than one, or
/// no block list under it.
fn list_lines(text: &str) -> Option<List> {
    let mut key = None;
    let mut items = Vec::new();
    let mut indent = None;
    let mut end = None;
    let mut next_start = 0;
    for line in text.split_inclusive('\n') {
        let start = next_start;
        next_start += line.len();
        if is_environments_key(line) {
            if key.replace(start).is_some() {
                return None;
            }
            continue;
        }
        if key.is_none() || end.is_some() {
            continue;
        }
        let content = line.trim_start_matches(' ');
        if content.trim_end_matches(['\n', '\r', ' ']).is_empty() || content.starts_with('#') {
            continue;
        }
        let depth = line.len() - content.len();
        let list_indent = *indent.get_or_insert(depth);
        if depth > list_indent {
            continue;
        }
        if depth == list_indent && is_item(content) {
            items.push(start);
        } else {
            end = Some(start);
        }
    }
    // A list written at the key's own indent starts, for the parser, after its first `- `;
    // such lists are left whole.
    if items.is_empty() || indent == Some(0) {
        return None;
    }
    Some(List {
        key: key?,
        items,
        indent: indent?,
        end: end.unwrap_or(text.len()),
    })
}

/// Whether `line` is `environments:` with nothing after it but blanks and a comment.
fn is_environments_key(line: &str) -> bool {
    line.strip_prefix("environments:").is_some_and(|rest| {
        let rest = rest.trim_end_matches(['\n', '\r']);
        let trimmed = rest.trim_start_matches([' ', '\t']);
        trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len())
    })
}

/// Whether a line's content (after its indent) starts a block sequence item.
fn is_item(content: &str) -> bool {
    content
        .strip_prefix('-')
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}
