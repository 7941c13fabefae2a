//! The files a configuration was read from, and places in them: what every diagnostic and the
//! validated model point into.

use std::path::PathBuf;

use miette::{NamedSource, SourceSpan};

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub usize);

/// A place in a desired-state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Which file.
    pub source: SourceId,
    /// Byte span of the node.
    pub span: SourceSpan,
}

/// One desired-state file as read.
#[derive(Clone)]
pub struct SourceFile {
    /// The path as given (relative paths stay relative, so output is stable).
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
}

impl std::fmt::Debug for SourceFile {
    // The text can hold `env_vars` values, which are secret: show its size only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .field("text", &format_args!("<{} bytes>", self.text.len()))
            .finish()
    }
}

/// Every file that went into a [`Desired`](super::Desired), for diagnostics and the plan's digest.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The files, in the order they were read (sorted by path for a directory).
    pub files: Vec<SourceFile>,
}

impl Sources {
    /// The file behind an id, as a miette source.
    pub fn named_source(&self, id: SourceId) -> NamedSource<String> {
        let file = &self.files[id.0];
        NamedSource::new(file.path.display().to_string(), file.text.clone())
    }
}
