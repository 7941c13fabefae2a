//! Problems placed in the files: each [`DiagnosticKind`] at a [`Location`], with other places it
//! points at, rendered as miette diagnostics over the files' text. All problems of a run travel
//! together in one [`SpecError`], so a user fixes a file in one pass.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceCode};

use super::diagnostic_kind::DiagnosticKind;
use super::source::{Location, Sources};

/// Everything that stopped the desired-state files from loading.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SpecError {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    #[diagnostic(code(envform::spec::io))]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A directory holds no `*.yaml` or `*.yml` file.
    #[error("no *.yaml or *.yml file in {}", path.display())]
    #[diagnostic(
        code(envform::spec::no_files),
        help("put the desired state in a file such as envform.yaml, or pass a file with -f")
    )]
    NoFiles {
        /// The directory.
        path: PathBuf,
    },
    /// The files were read but are not valid: every problem found, in file order.
    #[error("{summary}")]
    #[diagnostic(code(envform::spec::invalid))]
    Invalid {
        /// "found 3 problems in envform.yaml".
        summary: String,
        /// Every file read, in the order read.
        files: Vec<PathBuf>,
        /// Each problem, pointing into its file.
        #[related]
        diagnostics: Vec<SpecDiagnostic>,
    },
}

impl SpecError {
    /// The problems found, empty for I/O errors.
    pub fn diagnostics(&self) -> &[SpecDiagnostic] {
        match self {
            SpecError::Invalid { diagnostics, .. } => diagnostics,
            SpecError::Io { .. } | SpecError::NoFiles { .. } => &[],
        }
    }

    /// The files read before the problems were found (none when reading failed).
    pub fn files(&self) -> &[PathBuf] {
        match self {
            SpecError::Invalid { files, .. } => files,
            SpecError::Io { .. } | SpecError::NoFiles { .. } => &[],
        }
    }

    /// Bundles problems into one error (they must not be empty).
    pub(crate) fn invalid(diagnostics: Vec<SpecDiagnostic>, sources: &Sources) -> Self {
        let mut files: Vec<_> = diagnostics.iter().map(|d| d.location.source).collect();
        files.sort();
        files.dedup();
        let count = diagnostics.len();
        let problems = if count == 1 { "problem" } else { "problems" };
        let place = match files.as_slice() {
            [only] => sources
                .files
                .get(only.0)
                .map_or_else(String::new, |file| file.path.display().to_string()),
            several => format!("{} files", several.len()),
        };
        SpecError::Invalid {
            summary: format!("found {count} {problems} in {place}"),
            files: sources.files.iter().map(|file| file.path.clone()).collect(),
            diagnostics,
        }
    }
}

/// A second place a diagnostic points at.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Where.
    pub location: Location,
    /// What it says there.
    pub text: String,
}

/// One problem in a desired-state file, pointing at the offending node.
#[derive(Debug, Clone)]
pub struct SpecDiagnostic {
    /// What is wrong.
    pub kind: DiagnosticKind,
    /// The offending node.
    pub location: Location,
    /// 1-based line of the node's first character.
    pub line: usize,
    /// 1-based column of the node's first character, counted in characters.
    pub column: usize,
    /// Other places involved (the first definition of a duplicate, the edges of a cycle).
    pub labels: Vec<Label>,
    source_code: NamedSource<Arc<str>>,
    /// Labels in other files, shown as notes with their own source.
    notes: Vec<SpecNote>,
}

impl SpecDiagnostic {
    /// Byte offset of the node in its file.
    pub fn offset(&self) -> usize {
        self.location.span.offset()
    }

    /// Width of the node in bytes.
    pub fn width(&self) -> usize {
        self.location.span.len()
    }

    /// The stable code, e.g. `envform::spec::unknown_key`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// The file the problem is in, as it was named when read.
    pub fn file(&self) -> &str {
        self.source_code.name()
    }

    /// What to do about it, when there is something to say.
    pub fn help_text(&self) -> Option<String> {
        self.kind.help()
    }

    /// Places the problem in `sources`, computing line and column.
    pub(crate) fn new(problem: Problem, sources: &SourceTexts) -> Self {
        let Problem {
            kind,
            location,
            labels,
        } = problem;
        let (line, column) = sources.line_column(location);
        let notes = labels
            .iter()
            .filter(|label| label.location.source != location.source)
            .map(|label| SpecNote {
                text: label.text.clone(),
                location: label.location,
                source_code: sources.named(label.location.source),
            })
            .collect();
        Self {
            kind,
            location,
            line,
            column,
            labels,
            source_code: sources.named(location.source),
            notes,
        }
    }
}

impl fmt::Display for SpecDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for SpecDiagnostic {}

impl Diagnostic for SpecDiagnostic {
    fn severity(&self) -> Option<Severity> {
        Some(if self.kind.is_warning() {
            Severity::Warning
        } else {
            Severity::Error
        })
    }

    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.kind
            .help()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let primary =
            LabeledSpan::new_primary_with_span(Some(self.kind.label()), self.location.span);
        let secondary = self
            .labels
            .iter()
            .filter(|label| label.location.source == self.location.source)
            .map(|label| LabeledSpan::new_with_span(Some(label.text.clone()), label.location.span));
        Some(Box::new(std::iter::once(primary).chain(secondary)))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        if self.notes.is_empty() {
            return None;
        }
        Some(Box::new(
            self.notes.iter().map(|note| note as &dyn Diagnostic),
        ))
    }
}

/// A label that lives in another file than its diagnostic, rendered as an advice.
#[derive(Debug, Clone)]
struct SpecNote {
    text: String,
    location: Location,
    source_code: NamedSource<Arc<str>>,
}

impl fmt::Display for SpecNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for SpecNote {}

impl Diagnostic for SpecNote {
    fn severity(&self) -> Option<Severity> {
        Some(Severity::Advice)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source_code)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(None, self.location.span),
        )))
    }
}

/// A problem before it is placed: kind, node and other places.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Problem {
    pub(crate) kind: DiagnosticKind,
    pub(crate) location: Location,
    pub(crate) labels: Vec<Label>,
}

impl Problem {
    /// A problem at one node.
    pub(crate) fn new(kind: DiagnosticKind, location: Location) -> Self {
        Self {
            kind,
            location,
            labels: Vec::new(),
        }
    }

    /// Adds another place.
    pub(crate) fn with_label(mut self, location: Location, text: impl Into<String>) -> Self {
        self.labels.push(Label {
            location,
            text: text.into(),
        });
        self
    }
}

/// The files' texts shared by every diagnostic that points into them.
pub(crate) struct SourceTexts {
    files: Vec<(String, Arc<str>)>,
}

impl SourceTexts {
    /// Shares the texts of `sources`.
    pub(crate) fn new(sources: &Sources) -> Self {
        Self {
            files: sources
                .files
                .iter()
                .map(|file| {
                    (
                        file.path.display().to_string(),
                        Arc::from(file.text.as_str()),
                    )
                })
                .collect(),
        }
    }

    fn named(&self, source: super::source::SourceId) -> NamedSource<Arc<str>> {
        match self.files.get(source.0) {
            Some((name, text)) => NamedSource::new(name.clone(), Arc::clone(text)),
            None => NamedSource::new(String::new(), Arc::from("")),
        }
    }

    /// 1-based line and character column of a location's start.
    fn line_column(&self, location: Location) -> (usize, usize) {
        let text = self
            .files
            .get(location.source.0)
            .map_or("", |(_, text)| text.as_ref());
        let offset = location.span.offset().min(text.len());
        let before = text.get(..offset).unwrap_or("");
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |index| index + 1);
        let column = before
            .get(line_start..)
            .map_or(0, |rest| rest.chars().count())
            + 1;
        (line, column)
    }
}
