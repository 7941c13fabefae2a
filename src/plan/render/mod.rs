//! Renders a plan for people (`human`), programs (`json`) and pull requests (`markdown`). Every
//! format shows secrets as `(sensitive)`; none reads the terminal or the environment: the caller
//! decides on colour and size.

mod human;
mod json;
mod markdown;

use serde_json::Value;

pub use human::render_human;
pub use json::{render_json, write_json, write_saved_json};
pub use markdown::{DEFAULT_MARKDOWN_MAX_CHARS, render_markdown};

use super::field::is_digest;
use super::model::Plan;
use crate::model::ManagedField;

/// How a plan is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Terraform's idiom, for a terminal.
    #[default]
    Human,
    /// The versioned JSON document.
    Json,
    /// A pull-request comment.
    Markdown,
}

/// Options of the renderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Colour the human rendering (only on a terminal, never with `NO_COLOR`: the caller knows).
    pub color: bool,
    /// Largest markdown rendering, in characters.
    pub markdown_max_chars: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            color: false,
            markdown_max_chars: DEFAULT_MARKDOWN_MAX_CHARS,
        }
    }
}

/// Renders `plan` in `format`.
pub fn render(plan: &Plan, format: Format, options: &RenderOptions) -> String {
    match format {
        Format::Human => render_human(plan, options.color),
        Format::Json => render_json(plan),
        Format::Markdown => render_markdown(plan, options.markdown_max_chars),
    }
}

/// What the displays print for a secret.
const SENSITIVE: &str = "(sensitive)";
/// What the displays print for a changed secret.
const SENSITIVE_CHANGED: &str = "(sensitive value changed)";

/// Whether the values at `path` are shown as `(sensitive)`: at a secret's path, unless every value
/// there is plain. The planner leaves a value plain only for a key the file marks `nonsensitive`;
/// a secret is always its digest in a plan.
fn hides(path: &[String], values: &[Option<&Value>]) -> bool {
    let is_plain = |value: &&Value| matches!(value, Value::String(text) if !is_digest(text));
    ManagedField::is_sensitive_path(path)
        && (values.iter().all(Option::is_none) || !values.iter().flatten().all(is_plain))
}

/// A value on one line: JSON text, or `(sensitive)` where secrets are.
fn inline(path: &[String], value: &Value) -> String {
    // A whole map above the secrets is never printed inline; a secret itself unless revealed.
    let above_secrets = ManagedField::contains_sensitive(path)
        && !ManagedField::is_sensitive_path(path)
        && !is_empty_container(value);
    if above_secrets || hides(path, &[Some(value)]) {
        SENSITIVE.to_owned()
    } else {
        value.to_string()
    }
}

fn is_empty_container(value: &Value) -> bool {
    match value {
        Value::Object(object) => object.is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

/// `value` (found at `path`) with every secret replaced by `(sensitive)`.
fn redact(path: &mut Vec<String>, value: &Value) -> Value {
    if hides(path, &[Some(value)]) {
        return Value::String(SENSITIVE.to_owned());
    }
    match value {
        Value::Object(object) if ManagedField::contains_sensitive(path) => Value::Object(
            object
                .iter()
                .map(|(key, inner)| {
                    path.push(key.clone());
                    let redacted = redact(path, inner);
                    path.pop();
                    (key.clone(), redacted)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A name as the displays write it: as is when plain, JSON-quoted when it holds anything that
/// could break a line or be mistaken for markup.
fn plain_or_quoted(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        name.to_owned()
    } else {
        Value::String(name.to_owned()).to_string()
    }
}

/// An object key as shown: bare when it is an identifier, JSON-quoted otherwise.
fn key_label(key: &str) -> String {
    let bare = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
    if bare {
        key.to_owned()
    } else {
        Value::String(key.to_owned()).to_string()
    }
}

/// A line of a multi-line string with control characters made visible, so it cannot move the
/// cursor or forge output.
fn escape_line(line: &str) -> String {
    line.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
