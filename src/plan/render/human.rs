//! The human rendering, in Terraform's idiom: `+ create`, `~ update in-place`, `- destroy`,
//! `<= adopt`, `old -> new` per field, unchanged attributes counted not shown, multi-line strings
//! as a line diff, then the order and a summary line. Colour only when the caller asks.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use owo_colors::OwoColorize;
use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{SENSITIVE, SENSITIVE_CHANGED, escape_line, hides, inline, key_label, plain_or_quoted};
use crate::plan::Disruption;
use crate::plan::model::{Action, Drift, Plan, ResourceChange, StateRecord, Step, SwapPart};

/// The line shown when the plan changes nothing.
pub(crate) const NO_CHANGES: &str = "No changes. Live environments match the configuration.";

/// Widest line of the plan's own text: the order list and warnings wrap at it.
const LINE_WIDTH: usize = 80;
/// Fewest environment sections worth a run on another thread.
const SECTIONS_PER_RUN: usize = 512;

/// Renders `plan` for a terminal; `color` adds ANSI colours to the change symbols.
pub fn render_human(plan: &Plan, color: bool) -> String {
    let mut writer = Writer {
        out: String::new(),
        color,
    };
    writer.plan(plan);
    writer.out
}

struct Writer {
    out: String,
    color: bool,
}

/// Where a line's change symbol sits at a nesting depth, and where its plain lines start.
fn symbol_indent(depth: usize) -> usize {
    6 + 4 * depth
}

fn plain_indent(depth: usize) -> usize {
    8 + 4 * depth
}

impl Writer {
    fn line(&mut self, indent: usize, text: &str) {
        let _ = writeln!(self.out, "{:indent$}{text}", "");
    }

    fn symbol(&self, symbol: &str) -> String {
        if !self.color {
            return symbol.to_owned();
        }
        match symbol {
            "+" => symbol.green().to_string(),
            "-" => symbol.red().to_string(),
            "~" => symbol.yellow().to_string(),
            "<=" => symbol.cyan().to_string(),
            _ => symbol.to_owned(),
        }
    }

    fn emphasis(&self, text: &str) -> String {
        if self.color {
            text.bold().to_string()
        } else {
            text.to_owned()
        }
    }

    fn plan(&mut self, plan: &Plan) {
        if !plan.drift().is_empty() {
            self.drift(plan.drift());
        }
        let changes: Vec<ResourceChange<'_>> = plan
            .resource_changes()
            .into_iter()
            .filter(|change| change.action != Action::NoOp)
            .collect();
        if !changes.is_empty() {
            self.out
                .push_str("envform will perform the following actions:\n\n");
            // Each environment's section stands alone: large plans are written on every core.
            let sections = crate::parallel::in_runs(&changes, SECTIONS_PER_RUN, |run| {
                let mut writer = Writer {
                    out: String::new(),
                    color: self.color,
                };
                for change in run {
                    writer.resource(change, plan.disruptions());
                    writer.out.push('\n');
                }
                writer.out
            });
            self.out.extend(sections);
        }
        let forgotten: Vec<&Step> = plan
            .steps()
            .iter()
            .filter(|step| step.action == Action::NoOp && step.record == StateRecord::Forget)
            .collect();
        for step in &forgotten {
            let _ = writeln!(
                self.out,
                "Note: {} was deleted outside envform; apply removes it from state.",
                plain_or_quoted(&step.name)
            );
        }
        if !forgotten.is_empty() {
            self.out.push('\n');
        }
        if !plan.unmanaged().is_empty() {
            let count = plan.unmanaged().len();
            let _ = writeln!(
                self.out,
                "Unmanaged: {count} live environment{} in neither the configuration nor state,\n\
                 left alone ({}):",
                if count == 1 { " is" } else { "s are" },
                if plan.settings().prune {
                    "`default` is never pruned"
                } else {
                    "`options.prune: true` deletes them"
                }
            );
            for unmanaged in plan.unmanaged() {
                let _ = writeln!(
                    self.out,
                    "  - {} ({})",
                    plain_or_quoted(&unmanaged.name),
                    unmanaged.status
                );
            }
            self.out.push('\n');
        }
        if plan.owned_elsewhere() > 0 {
            let _ = writeln!(
                self.out,
                "{}\n",
                owned_elsewhere_line(plan.owned_elsewhere())
            );
        }
        for warning in plan.warnings() {
            let label = if self.color {
                "Warning:".yellow().bold().to_string()
            } else {
                "Warning:".to_owned()
            };
            // Wrapped to the 80 columns every line of the plan fits in, continuation indented.
            let text = textwrap::fill(
                &format!("Warning: {warning}"),
                textwrap::Options::new(LINE_WIDTH).subsequent_indent("  "),
            );
            let text = text.replacen("Warning:", &label, 1);
            let _ = writeln!(self.out, "{text}");
        }
        if !plan.warnings().is_empty() {
            self.out.push('\n');
        }
        if plan.has_changes() {
            self.order(plan);
            let summary = plan.summary().to_string();
            let summary = self.emphasis(&summary);
            let _ = writeln!(self.out, "{summary}");
            if plan.stopped_workers() > 0 {
                let stopping = crate::plan::disruption_summary(plan.stopped_workers());
                let _ = writeln!(self.out, "{}", self.emphasis(&stopping));
            }
        } else {
            let _ = writeln!(self.out, "{NO_CHANGES}");
        }
    }

    fn drift(&mut self, drift: &[Drift]) {
        self.out
            .push_str("Note: objects have changed outside of envform since the last apply:\n");
        let mut current: Option<&str> = None;
        for entry in drift {
            if current != Some(entry.name.as_str()) {
                current = Some(&entry.name);
                let _ = writeln!(self.out, "\n  # {}", plain_or_quoted(&entry.name));
            }
            let path = &entry.path.0;
            let shown = entry.path.to_string();
            let text = match (&entry.last_applied, &entry.live) {
                (then, now) if hides(path, &[then.as_ref(), now.as_ref()]) => {
                    format!("{} {shown} = {SENSITIVE_CHANGED}", self.symbol("~"))
                }
                (None, Some(now)) => {
                    format!("{} {shown} = {}", self.symbol("+"), inline(path, now))
                }
                (Some(then), None) => format!(
                    "{} {shown} = {} -> null",
                    self.symbol("-"),
                    inline(path, then)
                ),
                (Some(then), Some(now)) => format!(
                    "{} {shown} = {} -> {}",
                    self.symbol("~"),
                    inline(path, then),
                    inline(path, now)
                ),
                (None, None) => continue,
            };
            let _ = writeln!(
                self.out,
                "{:6}{text}  # {}",
                "",
                entry.resolution.describe()
            );
        }
        self.out.push('\n');
    }

    fn resource(&mut self, change: &ResourceChange<'_>, disruptions: &[Disruption]) {
        let main = change.main;
        let name = plain_or_quoted(change.name);
        let mut header = match change.action {
            Action::Create => format!("{name} will be created"),
            Action::Update => format!("{name} will be updated in-place"),
            Action::Delete => format!("{name} will be destroyed"),
            Action::Adopt if main.changes.is_empty() => format!("{name} will be adopted"),
            Action::Adopt => format!("{name} will be adopted and updated in-place"),
            Action::Rename => {
                let from = plain_or_quoted(change.previous_name.unwrap_or_default());
                if main.changes.is_empty() {
                    format!("{name} will be renamed from {from}")
                } else {
                    format!("{name} will be renamed from {from} and updated in-place")
                }
            }
            Action::NoOp => return,
        };
        for note in &main.notes {
            let _ = write!(header, " ({})", note.describe());
        }
        if main.wait_for_provisioning {
            header.push_str(" (waits for provisioning)");
        }
        if let Some(disruption) = disruptions
            .iter()
            .find(|disruption| disruption.name == change.name)
        {
            let _ = write!(header, " ({})", disruption.describe());
        }
        self.line(2, &format!("# {header}"));
        let symbol = main.action.symbol();
        let indent = if symbol.len() == 1 { 2 } else { 1 };
        let opener = format!(
            "{} environment {} {{",
            self.symbol(symbol),
            Value::String(change.name.to_owned())
        );
        self.line(indent, &opener);

        let mut rows: Vec<(&str, Option<&Value>, Option<&Value>)> = main
            .changes
            .iter()
            .map(|field| {
                (
                    field.field.wire_name(),
                    field.before.as_ref(),
                    field.after.as_ref(),
                )
            })
            .collect();
        let rename_values = change.previous_name.map(|from| {
            (
                Value::String(from.to_owned()),
                Value::String(change.name.to_owned()),
            )
        });
        let name_value = Value::String(change.name.to_owned());
        match (&rename_values, change.action) {
            (Some((from, to)), _) => rows.insert(0, ("name", Some(from), Some(to))),
            (None, Action::Create) => rows.insert(0, ("name", None, Some(&name_value))),
            (None, Action::Delete) => rows.insert(0, ("name", Some(&name_value), None)),
            _ => {}
        }
        let width = rows.iter().map(|(key, _, _)| key.len()).max().unwrap_or(0);
        for (key, before, after) in rows {
            let path = vec![key.to_owned()];
            self.attribute(0, key, width, &path, before, after);
        }
        if let Some(temporary) = change.temporary_name {
            self.line(
                plain_indent(0),
                &format!(
                    "# through the temporary name {}",
                    Value::String(temporary.to_owned())
                ),
            );
        }
        if !main.unchanged.is_empty() {
            self.hidden(0, main.unchanged.len());
        }
        self.line(4, "}");
    }

    fn hidden(&mut self, depth: usize, count: usize) {
        let noun = if count == 1 {
            "attribute"
        } else {
            "attributes"
        };
        self.line(
            plain_indent(depth),
            &format!("# ({count} unchanged {noun} hidden)"),
        );
    }

    /// One attribute's change at `depth`, `key` padded to `width`.
    fn attribute(
        &mut self,
        depth: usize,
        key: &str,
        width: usize,
        path: &[String],
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        let at = symbol_indent(depth);
        let label = format!("{key:width$}");
        if hides(path, &[before, after]) {
            let text = match (before, after) {
                (None, Some(_)) => format!("{} {label} = {SENSITIVE}", self.symbol("+")),
                (Some(_), None) => format!("{} {label} = {SENSITIVE} -> null", self.symbol("-")),
                (Some(left), Some(right)) if left != right => {
                    format!("{} {label} = {SENSITIVE_CHANGED}", self.symbol("~"))
                }
                _ => return,
            };
            self.line(at, &text);
            return;
        }
        match (before, after) {
            (None, Some(value)) => self.whole(depth, &label, path, value, "+"),
            (Some(value), None) => self.whole(depth, &label, path, value, "-"),
            (Some(left), Some(right)) if left == right => {}
            (Some(Value::Object(left)), Some(Value::Object(right))) => {
                self.line(at, &format!("{} {label} = {{", self.symbol("~")));
                let keys: BTreeSet<&String> = left.keys().chain(right.keys()).collect();
                let shown: Vec<&String> = keys
                    .iter()
                    .copied()
                    .filter(|key| left.get(*key) != right.get(*key))
                    .collect();
                let inner = shown
                    .iter()
                    .map(|key| key_label(key).len())
                    .max()
                    .unwrap_or(0);
                for key in &shown {
                    let mut child = path.to_vec();
                    child.push((*key).clone());
                    self.attribute(
                        depth + 1,
                        &key_label(key),
                        inner,
                        &child,
                        left.get(*key),
                        right.get(*key),
                    );
                }
                let hidden = keys.len() - shown.len();
                if hidden > 0 {
                    self.hidden(depth + 1, hidden);
                }
                self.line(plain_indent(depth), "}");
            }
            (Some(Value::Array(left)), Some(Value::Array(right))) => {
                self.line(at, &format!("{} {label} = [", self.symbol("~")));
                let left: Vec<String> = left.iter().map(Value::to_string).collect();
                let right: Vec<String> = right.iter().map(Value::to_string).collect();
                let diff = similar::capture_diff_slices(similar::Algorithm::Myers, &left, &right);
                for operation in &diff {
                    for change in operation.iter_changes(&left, &right) {
                        let item = change.value();
                        let (symbol, indent) = match change.tag() {
                            ChangeTag::Equal => (None, plain_indent(depth + 1)),
                            ChangeTag::Delete => (Some("-"), symbol_indent(depth + 1)),
                            ChangeTag::Insert => (Some("+"), symbol_indent(depth + 1)),
                        };
                        let text = match symbol {
                            Some(symbol) => format!("{} {item},", self.symbol(symbol)),
                            None => format!("{item},"),
                        };
                        self.line(indent, &text);
                    }
                }
                self.line(plain_indent(depth), "]");
            }
            (Some(Value::String(left)), Some(Value::String(right)))
                if left.contains('\n') || right.contains('\n') =>
            {
                self.line(at, &format!("{} {label} = <<-EOT", self.symbol("~")));
                let diff = TextDiff::from_lines(left.as_str(), right.as_str());
                for change in diff.iter_all_changes() {
                    let text = change.value().trim_end_matches(['\n', '\r']);
                    let text = escape_line(text);
                    match change.tag() {
                        ChangeTag::Equal => self.line(plain_indent(depth + 1), &text),
                        ChangeTag::Delete => {
                            let symbol = self.symbol("-");
                            self.line(symbol_indent(depth + 1), &format!("{symbol} {text}"));
                        }
                        ChangeTag::Insert => {
                            let symbol = self.symbol("+");
                            self.line(symbol_indent(depth + 1), &format!("{symbol} {text}"));
                        }
                    }
                }
                self.line(plain_indent(depth), "EOT");
            }
            (Some(left), Some(right)) => {
                let text = format!(
                    "{} {label} = {} -> {}",
                    self.symbol("~"),
                    inline(path, left),
                    inline(path, right)
                );
                self.line(at, &text);
            }
            (None, None) => {}
        }
    }

    /// A value added (`+`) or removed (`-`) whole, spelled out key by key.
    fn whole(&mut self, depth: usize, label: &str, path: &[String], value: &Value, symbol: &str) {
        let at = symbol_indent(depth);
        let sign = self.symbol(symbol);
        let tail = if symbol == "-" { " -> null" } else { "" };
        match value {
            Value::Object(object) if !object.is_empty() => {
                self.line(at, &format!("{sign} {label} = {{"));
                let mut keys: Vec<&String> = object.keys().collect();
                keys.sort();
                let inner = keys
                    .iter()
                    .map(|key| key_label(key).len())
                    .max()
                    .unwrap_or(0);
                for key in keys {
                    let mut child = path.to_vec();
                    child.push(key.clone());
                    let (before, after) = if symbol == "-" {
                        (object.get(key), None)
                    } else {
                        (None, object.get(key))
                    };
                    self.attribute(depth + 1, &key_label(key), inner, &child, before, after);
                }
                self.line(plain_indent(depth), &format!("}}{tail}"));
            }
            Value::Array(items) if !items.is_empty() => {
                self.line(at, &format!("{sign} {label} = ["));
                for item in items {
                    self.line(symbol_indent(depth + 1), &format!("{sign} {item},"));
                }
                self.line(plain_indent(depth), &format!("]{tail}"));
            }
            Value::String(text) if text.contains('\n') => {
                self.line(at, &format!("{sign} {label} = <<-EOT"));
                for line in text.lines() {
                    self.line(plain_indent(depth + 1), &escape_line(line));
                }
                self.line(plain_indent(depth), &format!("EOT{tail}"));
            }
            other => {
                let text = format!("{sign} {label} = {}{tail}", inline(path, other));
                self.line(at, &text);
            }
        }
    }

    fn order(&mut self, plan: &Plan) {
        let entries: Vec<String> = plan
            .steps()
            .iter()
            .filter(|step| step.action != Action::NoOp)
            .enumerate()
            .map(|(position, step)| {
                let mut entry = format!("{}. {}", position + 1, plain_or_quoted(&step.name));
                match (step.swap, &step.rename) {
                    (Some(SwapPart::ToTemporary), Some(rename)) => {
                        let _ = write!(entry, " (to {})", plain_or_quoted(&rename.to));
                    }
                    (Some(SwapPart::FromTemporary), Some(rename)) => {
                        let _ = write!(entry, " (from {})", plain_or_quoted(&rename.from));
                    }
                    _ => {}
                }
                if step.action == Action::Delete {
                    entry.push_str(" (destroy)");
                }
                if step.wait_for_provisioning {
                    entry.push_str(" (waits for provisioning)");
                }
                entry
            })
            .collect();
        let mut line = String::from("Order:");
        let mut fresh = true;
        for entry in entries {
            if !fresh && line.chars().count() + 2 + entry.chars().count() > LINE_WIDTH {
                let _ = writeln!(self.out, "{line}");
                // Continuation lines start under the first entry.
                line = " ".repeat("Order:".len());
                fresh = true;
            }
            line.push_str(if fresh { " " } else { "  " });
            line.push_str(&entry);
            fresh = false;
        }
        let _ = writeln!(self.out, "{line}");
    }
}

/// What the plans say of the live environments other configurations own (never touched).
pub(crate) fn owned_elsewhere_line(count: usize) -> String {
    if count == 1 {
        "Owned elsewhere: 1 live environment belongs to another configuration,\n\
         left out of this plan."
            .to_owned()
    } else {
        format!(
            "Owned elsewhere: {count} live environments belong to other configurations,\n\
             left out of this plan."
        )
    }
}
