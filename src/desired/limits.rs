//! The budgets that stop alias bombs, deep nesting and huge files with a diagnostic instead of
//! exhausting memory or the stack. Read by both YAML paths and by the messages that cite them.

/// Deepest nesting of mappings and lists.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most nodes a file may hold: a 16 MiB file of environments (about 2.4 million nodes) fits,
/// while a file of bare one-character items cannot make millions of nodes more. What aliases
/// add is budgeted apart, by [`MAX_REPLAYED_EVENTS`], so this limit never has to stop a bomb.
pub(crate) const MAX_NODES: usize = 4_000_000;
/// Most parser events replayed through aliases: anchors shorten a file, they do not multiply it.
pub(crate) const MAX_REPLAYED_EVENTS: usize = 50_000;
/// Largest file read.
pub(crate) const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
