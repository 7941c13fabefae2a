//! What can be wrong with a desired-state file, worded once: every [`DiagnosticKind`] with its
//! stable code (`envform::spec::<kind>`), message, label and help. One long file because it is
//! one catalogue: keeping each kind's wording beside its code is what keeps them consistent.

use std::fmt;

use super::model::HttpBackendConfig;
use super::section::Section;
use crate::model::NameProblem;

/// Longest piece of user text quoted in a message; longer text is cut with `…`.
const QUOTE_LIMIT: usize = 40;

/// A YAML node's shape, for "expected …, found …".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// A number with a fraction or exponent.
    Float,
    /// Text.
    String,
    /// A sequence.
    List,
    /// A mapping.
    Mapping,
}

impl fmt::Display for NodeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeKind::Null => "null",
            NodeKind::Boolean => "a boolean",
            NodeKind::Integer => "an integer",
            NodeKind::Float => "a floating-point number",
            NodeKind::String => "a string",
            NodeKind::List => "a list",
            NodeKind::Mapping => "a mapping",
        })
    }
}

/// Why a `renamed_from` cannot be followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenameConflict {
    /// `renamed_from` is the environment's own name.
    OwnName,
    /// Another environment is renamed from the same name.
    SameSource,
    /// The old name is also desired as an environment of its own.
    StillDesired,
}

/// The permitted range of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// An integer from 1 to `i64::MAX`.
    Positive,
    /// An integer from 0 up.
    NonNegative,
    /// A number from 0.0 to 1.0.
    Fraction,
    /// A finite number that JSON can carry.
    JsonNumber,
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Range::Positive => f.write_str("an integer ≥ 1"),
            Range::NonNegative => f.write_str("an integer ≥ 0"),
            Range::Fraction => f.write_str("a number from 0.0 to 1.0"),
            Range::JsonNumber => f.write_str("a finite number"),
        }
    }
}

/// What went wrong, with the data the message needs. Each kind has a stable code
/// `envform::spec::<kind>`.
#[derive(Debug, Clone, PartialEq)]
pub enum DiagnosticKind {
    /// The YAML itself does not parse.
    YamlSyntax {
        /// The parser's message.
        message: String,
    },
    /// The file is not UTF-8.
    InvalidUtf8,
    /// The file holds no YAML document.
    EmptyFile,
    /// The file exceeds a size, depth or alias-expansion limit.
    TooComplex {
        /// Which limit.
        message: String,
    },
    /// An alias refers to a node that contains it.
    RecursiveAlias,
    /// A mapping has the same key twice.
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// A key that is not part of the format.
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it was found.
        section: Section,
        /// The closest valid key, if close enough.
        suggestion: Option<&'static str>,
    },
    /// A free-form key a few edits from one the service reads (a warning: the key is kept).
    NearMissKey {
        /// The key as written.
        key: String,
        /// The key the service reads.
        suggestion: &'static str,
    },
    /// A required key is absent.
    MissingKey {
        /// The key.
        key: &'static str,
        /// Where it is required.
        section: Section,
    },
    /// A value of the wrong shape.
    WrongType {
        /// What the key holds, e.g. `tags`.
        key: String,
        /// What was expected, e.g. "a list of strings".
        expected: &'static str,
        /// What was found.
        found: NodeKind,
    },
    /// `version` is not 1.
    UnsupportedVersion {
        /// The version as written.
        found: String,
    },
    /// `defaults`, `options` or `state` appears in two files.
    DuplicateSection {
        /// The section's key.
        key: &'static str,
    },
    /// Two environments have the same name.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A name the service would refuse.
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        problem: NameProblem,
    },
    /// A status other than `active` or `inactive`.
    InvalidStatus {
        /// The status as written.
        status: String,
        /// The closest valid status, if close enough.
        suggestion: Option<&'static str>,
    },
    /// A number outside its range.
    OutOfRange {
        /// The key, e.g. `max_workers`.
        key: String,
        /// The value as written (shortened).
        found: String,
        /// The permitted range.
        range: Range,
    },
    /// A value that is not one of a fixed set (e.g. a state backend).
    InvalidValue {
        /// The key.
        key: &'static str,
        /// The value as written.
        value: String,
        /// The permitted values.
        expected: &'static [&'static str],
        /// The closest permitted value, if close enough.
        suggestion: Option<&'static str>,
    },
    /// A secret written into the file.
    SecretInFile {
        /// The key.
        key: String,
    },
    /// `depends_on` names no desired environment.
    UnknownDependency {
        /// The name as written.
        name: String,
        /// The closest desired environment, if close enough.
        suggestion: Option<String>,
    },
    /// A desired environment outside the configuration's own `options.scope`.
    OutsideScope {
        /// The environment.
        name: String,
        /// What it lacks: "its name does not start with `team-a-`", "it lacks tag `team-a`".
        reason: String,
    },
    /// `depends_on` edges form a cycle.
    DependencyCycle {
        /// The names around the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// A `renamed_from` that cannot be followed.
    ConflictingRename {
        /// The old name.
        name: String,
        /// Why.
        conflict: RenameConflict,
    },
    /// An `ignore_changes` path that names no field.
    UnknownIgnorePath {
        /// The path as written.
        path: String,
        /// The closest valid path, if close enough.
        suggestion: Option<String>,
    },
}

impl DiagnosticKind {
    /// Whether the file is still valid with it: a warning is shown, and the file is used.
    pub fn is_warning(&self) -> bool {
        matches!(self, DiagnosticKind::NearMissKey { .. })
    }

    /// The stable code, e.g. `envform::spec::unknown_key`.
    pub fn code(&self) -> &'static str {
        match self {
            DiagnosticKind::YamlSyntax { .. } => "envform::spec::yaml_syntax",
            DiagnosticKind::InvalidUtf8 => "envform::spec::invalid_utf8",
            DiagnosticKind::EmptyFile => "envform::spec::empty_file",
            DiagnosticKind::TooComplex { .. } => "envform::spec::too_complex",
            DiagnosticKind::RecursiveAlias => "envform::spec::recursive_alias",
            DiagnosticKind::DuplicateKey { .. } => "envform::spec::duplicate_key",
            DiagnosticKind::UnknownKey { .. } => "envform::spec::unknown_key",
            DiagnosticKind::NearMissKey { .. } => "envform::spec::near_miss_key",
            DiagnosticKind::MissingKey { .. } => "envform::spec::missing_key",
            DiagnosticKind::WrongType { .. } => "envform::spec::wrong_type",
            DiagnosticKind::UnsupportedVersion { .. } => "envform::spec::unsupported_version",
            DiagnosticKind::DuplicateSection { .. } => "envform::spec::duplicate_section",
            DiagnosticKind::DuplicateName { .. } => "envform::spec::duplicate_name",
            DiagnosticKind::InvalidName { .. } => "envform::spec::invalid_name",
            DiagnosticKind::InvalidStatus { .. } => "envform::spec::invalid_status",
            DiagnosticKind::OutOfRange { .. } => "envform::spec::out_of_range",
            DiagnosticKind::InvalidValue { .. } => "envform::spec::invalid_value",
            DiagnosticKind::SecretInFile { .. } => "envform::spec::secret_in_file",
            DiagnosticKind::UnknownDependency { .. } => "envform::spec::unknown_dependency",
            DiagnosticKind::OutsideScope { .. } => "envform::spec::outside_scope",
            DiagnosticKind::DependencyCycle { .. } => "envform::spec::dependency_cycle",
            DiagnosticKind::ConflictingRename { .. } => "envform::spec::conflicting_rename",
            DiagnosticKind::UnknownIgnorePath { .. } => "envform::spec::unknown_ignore_path",
        }
    }

    /// The text under the offending node.
    pub(super) fn label(&self) -> String {
        match self {
            DiagnosticKind::YamlSyntax { .. } => "here".to_owned(),
            DiagnosticKind::InvalidUtf8 => "not UTF-8".to_owned(),
            DiagnosticKind::EmptyFile => "empty".to_owned(),
            DiagnosticKind::TooComplex { .. } => "limit reached here".to_owned(),
            DiagnosticKind::RecursiveAlias => "refers to its own anchor".to_owned(),
            DiagnosticKind::DuplicateKey { .. } => "written again here".to_owned(),
            DiagnosticKind::UnknownKey { .. } => "unknown key".to_owned(),
            DiagnosticKind::NearMissKey { suggestion, .. } => format!("not `{suggestion}`"),
            DiagnosticKind::MissingKey { key, .. } => format!("`{key}` missing here"),
            DiagnosticKind::WrongType { expected, .. } => format!("expected {expected}"),
            DiagnosticKind::UnsupportedVersion { .. } => "unsupported version".to_owned(),
            DiagnosticKind::DuplicateSection { .. } => "written again here".to_owned(),
            DiagnosticKind::DuplicateName { .. } => "defined again here".to_owned(),
            DiagnosticKind::InvalidName { .. } => "invalid name".to_owned(),
            DiagnosticKind::InvalidStatus { .. } => "not `active` or `inactive`".to_owned(),
            DiagnosticKind::OutOfRange { range, .. } => format!("expected {range}"),
            DiagnosticKind::InvalidValue { .. } => "unknown value".to_owned(),
            DiagnosticKind::SecretInFile { .. } => "secret in the file".to_owned(),
            DiagnosticKind::UnknownDependency { .. } => "no environment has this name".to_owned(),
            DiagnosticKind::OutsideScope { .. } => "outside `options.scope`".to_owned(),
            DiagnosticKind::DependencyCycle { cycle } => match cycle.as_slice() {
                [from, to, ..] => format!("{} depends on {}", quote(from), quote(to)),
                _ => "cycle".to_owned(),
            },
            DiagnosticKind::ConflictingRename { conflict, .. } => match conflict {
                RenameConflict::OwnName => "same as `name`".to_owned(),
                RenameConflict::SameSource => "renamed from again here".to_owned(),
                RenameConflict::StillDesired => "renamed from here".to_owned(),
            },
            DiagnosticKind::UnknownIgnorePath { .. } => "no such field".to_owned(),
        }
    }

    /// How to fix it, where there is something useful to say.
    pub(super) fn help(&self) -> Option<String> {
        match self {
            DiagnosticKind::YamlSyntax { message } if message.contains("tab") => {
                Some("indent with spaces: YAML does not allow tabs in indentation".to_owned())
            }
            DiagnosticKind::YamlSyntax { .. } | DiagnosticKind::DuplicateName { .. } => None,
            DiagnosticKind::InvalidUtf8 => Some("save the file as UTF-8".to_owned()),
            DiagnosticKind::EmptyFile => Some(
                "a desired-state file starts with `version: 1` and lists `environments:`"
                    .to_owned(),
            ),
            DiagnosticKind::TooComplex { .. } => Some(format!(
                "files are limited to {} levels of nesting and {} nodes, and aliases may add at most {} more",
                super::limits::MAX_DEPTH,
                super::limits::MAX_NODES,
                super::limits::MAX_REPLAYED_EVENTS
            )),
            DiagnosticKind::RecursiveAlias => {
                Some("an alias cannot refer to a node that contains it".to_owned())
            }
            DiagnosticKind::DuplicateKey { .. } => {
                Some("a key may appear once per mapping; remove one of them".to_owned())
            }
            DiagnosticKind::UnknownKey {
                key,
                section,
                suggestion,
            } => Some(unknown_key_help(key, *section, *suggestion)),
            DiagnosticKind::NearMissKey { suggestion, .. } => Some(format!(
                "did you mean `{suggestion}`? The key is sent as written, and the service does not read it"
            )),
            DiagnosticKind::MissingKey { key, .. } => Some(match *key {
                "version" => "add `version: 1`".to_owned(),
                "name" => "every environment needs a `name`: its identity".to_owned(),
                other => format!("add `{other}`"),
            }),
            DiagnosticKind::WrongType {
                key,
                expected,
                found,
            } => wrong_type_help(key, expected, *found),
            DiagnosticKind::UnsupportedVersion { .. } => {
                Some("this envform reads files with `version: 1`".to_owned())
            }
            DiagnosticKind::DuplicateSection { key } => Some(format!(
                "the files of a directory form one configuration; write `{key}` in one of them"
            )),
            DiagnosticKind::InvalidName { problem, .. } => Some(
                match problem {
                    NameProblem::TooShort | NameProblem::TooLong => {
                        "names are 2 to 100 characters long"
                    }
                    NameProblem::OuterWhitespace => "remove the leading or trailing whitespace",
                    NameProblem::ControlCharacter => {
                        "names cannot hold control characters such as newlines or tabs"
                    }
                    NameProblem::InvisibleCharacter => {
                        "names cannot hold invisible characters such as zero-width spaces or bidirectional overrides"
                    }
                }
                .to_owned(),
            ),
            DiagnosticKind::InvalidStatus { suggestion, .. } => Some(status_help(*suggestion)),
            DiagnosticKind::OutOfRange { range, .. } => Some(match range {
                Range::Positive => format!("accepted: integers from 1 to {}", i64::MAX),
                Range::NonNegative => format!("accepted: integers from 0 to {}", u32::MAX),
                Range::Fraction => "a share of the managed environments, such as 0.3".to_owned(),
                Range::JsonNumber => format!(
                    "numbers are sent as JSON: integers from {} to {}, or finite decimals",
                    i64::MIN,
                    u64::MAX
                ),
            }),
            DiagnosticKind::InvalidValue {
                expected,
                suggestion,
                ..
            } => Some(match suggestion {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!("expected one of: {}", backticked(expected)),
            }),
            DiagnosticKind::SecretInFile { .. } => Some(format!(
                "never write the password into the file; set the `{}` environment variable",
                HttpBackendConfig::PASSWORD_VARIABLE
            )),
            DiagnosticKind::UnknownDependency { suggestion, .. } => Some(match suggestion {
                Some(suggestion) => format!("did you mean {}?", quote(suggestion)),
                None => "`depends_on` names environments of this configuration".to_owned(),
            }),
            DiagnosticKind::OutsideScope { .. } => Some(
                "a configuration cannot see environments outside its scope: rename it, give it the \
                 scope's tags, or widen `options.scope`"
                    .to_owned(),
            ),
            DiagnosticKind::DependencyCycle { .. } => {
                Some("remove one of these `depends_on` entries to break the cycle".to_owned())
            }
            DiagnosticKind::ConflictingRename { conflict, .. } => Some(
                match conflict {
                    RenameConflict::OwnName => "remove `renamed_from` once the rename is applied",
                    RenameConflict::SameSource => {
                        "one environment can take over an old name; keep one `renamed_from`"
                    }
                    RenameConflict::StillDesired => {
                        "an environment cannot be renamed away while the file still wants it; \
                         remove `renamed_from` or the environment with the old name"
                    }
                }
                .to_owned(),
            ),
            DiagnosticKind::UnknownIgnorePath { suggestion, .. } => Some(match suggestion {
                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                None => format!(
                    "paths start with one of: {}; only mapping fields have deeper paths",
                    backticked(&super::section::IGNORABLE_FIELDS)
                ),
            }),
        }
    }
}

impl fmt::Display for DiagnosticKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiagnosticKind::YamlSyntax { message } => write!(f, "invalid YAML: {message}"),
            DiagnosticKind::InvalidUtf8 => f.write_str("the file is not valid UTF-8"),
            DiagnosticKind::EmptyFile => f.write_str("the file is empty"),
            DiagnosticKind::TooComplex { message } => {
                write!(f, "the file is too complex: {message}")
            }
            DiagnosticKind::RecursiveAlias => f.write_str("an alias refers to itself"),
            DiagnosticKind::DuplicateKey { key } => write!(f, "duplicate key {}", quote(key)),
            DiagnosticKind::UnknownKey { key, section, .. } => {
                write!(f, "unknown key {} {}", quote(key), section.description())
            }
            DiagnosticKind::NearMissKey { key, .. } => {
                write!(
                    f,
                    "{} in `configuration` is close to a key the service reads",
                    quote(key)
                )
            }
            DiagnosticKind::MissingKey { key, section } => {
                write!(f, "missing key `{key}` {}", section.description())
            }
            DiagnosticKind::WrongType {
                key,
                expected,
                found,
            } => write!(f, "{} must be {expected}, found {found}", quote(key)),
            DiagnosticKind::UnsupportedVersion { found } => {
                write!(f, "unsupported version {}", quote(found))
            }
            DiagnosticKind::DuplicateSection { key } => {
                write!(f, "`{key}` is written in more than one place")
            }
            DiagnosticKind::DuplicateName { name } => {
                write!(f, "environment {} is defined twice", quote(name))
            }
            DiagnosticKind::InvalidName { name, problem } => {
                let count = name.chars().count();
                let why = match problem {
                    NameProblem::TooShort if count == 1 => "1 character, fewer than 2".to_owned(),
                    NameProblem::TooShort => format!("{count} characters, fewer than 2"),
                    NameProblem::TooLong => format!("{count} characters, more than 100"),
                    NameProblem::OuterWhitespace => "leading or trailing whitespace".to_owned(),
                    NameProblem::ControlCharacter => "a control character".to_owned(),
                    NameProblem::InvisibleCharacter => "an invisible character".to_owned(),
                };
                write!(f, "invalid environment name {}: {why}", quote(name))
            }
            DiagnosticKind::InvalidStatus { status, .. } => {
                write!(f, "invalid status {}", quote(status))
            }
            DiagnosticKind::OutOfRange { key, found, range } => {
                write!(
                    f,
                    "{} is out of range: {found} (expected {range})",
                    quote(key)
                )
            }
            DiagnosticKind::InvalidValue { key, value, .. } => {
                write!(f, "invalid value {} for `{key}`", quote(value))
            }
            DiagnosticKind::SecretInFile { key } => {
                write!(f, "{} does not belong in the file", quote(key))
            }
            DiagnosticKind::UnknownDependency { name, .. } => {
                write!(f, "`depends_on` names unknown environment {}", quote(name))
            }
            DiagnosticKind::OutsideScope { name, reason } => write!(
                f,
                "environment {} is outside this configuration's `options.scope`: {reason}",
                quote(name)
            ),
            DiagnosticKind::DependencyCycle { cycle } => {
                let names: Vec<String> = cycle.iter().map(|name| quote(name)).collect();
                write!(f, "dependency cycle: {}", names.join(" → "))
            }
            DiagnosticKind::ConflictingRename { name, conflict } => {
                let why = match conflict {
                    RenameConflict::OwnName => "is the environment's own name",
                    RenameConflict::SameSource => "is claimed by two environments",
                    RenameConflict::StillDesired => "is also a desired environment",
                };
                write!(f, "`renamed_from` {} {why}", quote(name))
            }
            DiagnosticKind::UnknownIgnorePath { path, .. } => {
                write!(f, "`ignore_changes` path {} names no field", quote(path))
            }
        }
    }
}

fn unknown_key_help(key: &str, section: Section, suggestion: Option<&'static str>) -> String {
    if section == Section::Defaults && matches!(key, "name" | "renamed_from") {
        return format!("`{key}` belongs to each environment and cannot have a default");
    }
    if section == Section::TopLevel {
        if let Some(suggestion) = suggestion {
            return format!("did you mean `{suggestion}`?");
        }
        return format!(
            "expected one of: {}; keys starting with `x-` are ignored and can hold anchors",
            backticked(section.keys())
        );
    }
    match suggestion {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None => format!("expected one of: {}", backticked(section.keys())),
    }
}

fn wrong_type_help(key: &str, expected: &str, found: NodeKind) -> Option<String> {
    let wants_text = expected.contains("string") || expected.contains("name");
    match found {
        NodeKind::Integer | NodeKind::Float | NodeKind::Boolean if wants_text => {
            if key.starts_with("env_vars.") {
                Some("environment variable values are strings: quote the value".to_owned())
            } else {
                Some("quote the value to make it a string".to_owned())
            }
        }
        NodeKind::String if expected.contains("integer") || expected.contains("number") => {
            Some("write the number without quotes".to_owned())
        }
        NodeKind::String if expected.contains("boolean") => {
            Some("write `true` or `false` without quotes".to_owned())
        }
        NodeKind::Null => Some("give it a value, or remove the key".to_owned()),
        _ => None,
    }
}

fn status_help(suggestion: Option<&'static str>) -> String {
    match suggestion {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None => "a file may ask for `active` or `inactive`; the service sets `provisioning`, \
                 `ready` and `error` itself"
            .to_owned(),
    }
}

fn backticked(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// User text in backticks, control characters escaped and long text shortened.
pub(crate) fn quote(text: &str) -> String {
    let mut shown: String = text
        .chars()
        .take(QUOTE_LIMIT)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > QUOTE_LIMIT {
        shown.push('…');
    }
    // A backtick inside the text would end the quote early.
    format!("`{}`", shown.replace('`', "'"))
}
