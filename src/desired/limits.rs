//! The budgets that stop alias bombs, deep nesting and huge files with a diagnostic instead of
//! exhausting memory or the stack. Read by both YAML paths and by the messages that cite them.

/// Deepest nesting of mappings and lists.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes a file may hold, counting each alias expansion.
pub(crate) const MAX_NODES: usize = 200_000;
/// Most parser events replayed through aliases: anchors shorten a file, they do not multiply it.
pub(crate) const MAX_REPLAYED_EVENTS: usize = 50_000;
/// Largest file read.
pub(crate) const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
