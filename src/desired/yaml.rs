//! Text → tree: a large file's environments composed on every core, the fast composer for the
//! rest of plain YAML, serde-saphyr's deserializer for everything else, and the file-size budget
//! checked before any.

use super::diagnostic::Problem;
use super::diagnostic_kind::DiagnosticKind;
use super::limits::MAX_FILE_BYTES;
use super::node::{Node, deserialize, location};
use super::source::SourceId;

/// Parses one file's text into a tree.
pub(crate) fn parse(source: SourceId, text: &str) -> Result<Node, Problem> {
    if text.len() > MAX_FILE_BYTES {
        let kind = DiagnosticKind::TooComplex {
            message: format!(
                "it is {} bytes; the limit is {} bytes",
                text.len(),
                MAX_FILE_BYTES
            ),
        };
        return Err(Problem::new(kind, location(source, 0, 0)));
    }
    super::split::compose(source, text, super::split::PIECE_BYTES)
        .or_else(|| super::compose::compose(source, text))
        .map_or_else(|| deserialize(source, text), Ok)
}
