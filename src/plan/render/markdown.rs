//! The markdown rendering, for a pull-request comment: the summary, a table of environments, one
//! collapsible section per environment. Names and values never break out of their cell, tag or
//! code block. The comment stays under a size limit: the summary and destructive changes always
//! show; the other sections follow while they fit, then a line says how much was left out.

use std::fmt::Write as _;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::{SENSITIVE, SENSITIVE_CHANGED, escape_line, hides, inline, key_label, plain_or_quoted};
use crate::plan::model::{Action, Plan, ResourceChange, StateRecord};
use crate::plan::value::leaf_differences;

/// The default size limit, under the 65,536 characters a GitHub comment may hold.
pub const DEFAULT_MARKDOWN_MAX_CHARS: usize = 60_000;

/// Room kept for the lines that say what was left out.
const CUT_ROOM: usize = 300;

/// Renders `plan` as a pull-request comment of at most about `max_chars` characters (the summary
/// and destructive changes are kept even if they alone are longer).
pub fn render_markdown(plan: &Plan, max_chars: usize) -> String {
    let changes: Vec<ResourceChange<'_>> = plan
        .resource_changes()
        .into_iter()
        .filter(|change| change.action != Action::NoOp)
        .collect();

    let mut top = String::from("### envform plan\n\n");
    for refusal in plan.refusals() {
        let _ = writeln!(
            top,
            "> **Refused:** {} Nothing will be applied without `--force`.\n",
            html(&refusal.error().to_string())
        );
    }
    if plan.has_changes() {
        let _ = writeln!(top, "**{}**\n", plan.summary());
        if plan.stopped_workers() > 0 {
            let stopping = crate::plan::disruption_summary(plan.stopped_workers());
            let _ = writeln!(top, "**{stopping}**\n");
        }
    } else {
        top.push_str("**No changes.** Live environments match the configuration.\n\n");
    }
    let mut warnings = String::new();
    if !plan.warnings().is_empty() {
        warnings.push_str("**Warnings**\n\n");
        for warning in plan.warnings() {
            let _ = writeln!(warnings, "- {}", html(&warning.to_string()));
        }
        warnings.push('\n');
    }
    let table_header = "| | Environment | Action | Changes |\n|---|---|---|---|\n";
    // (row, destructive) in name order; then the sections, destructive ones apart.
    let rows: Vec<(String, bool)> = changes
        .iter()
        .map(|change| {
            let row = format!(
                "| `{}` | {} | {} | {} |\n",
                change.action.symbol(),
                code(change.name),
                action_words(change),
                details(change, plan.disruptions())
            );
            (row, change.action == Action::Delete)
        })
        .collect();
    let mut always = Vec::new();
    let mut rest = Vec::new();
    for change in &changes {
        let destructive = change.action == Action::Delete;
        let section = environment_section(change, destructive);
        if destructive {
            always.push(section);
        } else {
            rest.push(section);
        }
    }
    if !plan.drift().is_empty() {
        rest.push(drift_section(plan));
    }
    if !plan.unmanaged().is_empty() {
        rest.push(unmanaged_section(plan));
    }
    if plan.owned_elsewhere() > 0 {
        rest.push(format!(
            "{}\n",
            super::human::owned_elsewhere_line(plan.owned_elsewhere())
        ));
    }
    if plan.steps().iter().any(is_forget) {
        rest.push(forget_section(plan));
    }
    if plan.has_changes() {
        rest.push(order_section(plan));
    }

    // What always shows, then what fits of the rest: table rows first, then sections.
    let size = |text: &str| text.chars().count();
    let fixed = size(&top)
        + size(&warnings)
        + if rows.is_empty() {
            0
        } else {
            size(table_header) + 1
        }
        + rows
            .iter()
            .filter(|(_, destructive)| *destructive)
            .map(|(row, _)| size(row))
            .sum::<usize>()
        + always.iter().map(|section| size(section)).sum::<usize>();
    let rest_size: usize = rows
        .iter()
        .filter(|(_, destructive)| !*destructive)
        .map(|(row, _)| size(row))
        .sum::<usize>()
        + rest.iter().map(|section| size(section)).sum::<usize>();
    let whole = fixed + rest_size <= max_chars;
    let mut budget = max_chars.saturating_sub(fixed + if whole { 0 } else { CUT_ROOM });

    let mut out = top;
    let mut rows_left_out = 0;
    if !rows.is_empty() {
        out.push_str(table_header);
        for (row, destructive) in &rows {
            if *destructive {
                out.push_str(row);
            } else if rows_left_out == 0 && size(row) <= budget {
                out.push_str(row);
                budget -= size(row);
            } else {
                rows_left_out += 1;
            }
        }
        if rows_left_out > 0 {
            let _ = writeln!(out, "| | … | {rows_left_out} more | |");
        }
        out.push('\n');
    }
    out.push_str(&warnings);
    for section in &always {
        out.push_str(section);
    }
    let mut shown = 0;
    for section in &rest {
        if size(section) > budget {
            break;
        }
        out.push_str(section);
        budget -= size(section);
        shown += 1;
    }
    let left: &[String] = &rest[shown..];
    if !left.is_empty() || rows_left_out > 0 {
        let characters: usize = left.iter().map(|section| size(section)).sum();
        let _ = writeln!(
            out,
            "_{} more section{} ({characters} characters) and {rows_left_out} table row{} left \
             out to keep this comment under {max_chars} characters; run `envform plan` to see \
             the whole plan._",
            left.len(),
            if left.len() == 1 { "" } else { "s" },
            if rows_left_out == 1 { "" } else { "s" },
        );
    }
    out
}

fn is_forget(step: &crate::plan::model::Step) -> bool {
    step.action == Action::NoOp && step.record == StateRecord::Forget
}

fn action_words(change: &ResourceChange<'_>) -> &'static str {
    let updated = !change.main.changes.is_empty();
    match change.action {
        Action::Create => "create",
        Action::Update => "update in-place",
        Action::Delete => "destroy",
        Action::Adopt if updated => "adopt and update",
        Action::Adopt => "adopt",
        Action::Rename if updated => "rename and update",
        Action::Rename => "rename",
        Action::NoOp => "no-op",
    }
}

fn details(change: &ResourceChange<'_>, disruptions: &[crate::plan::Disruption]) -> String {
    let mut parts = Vec::new();
    if let Some(previous) = change.previous_name {
        parts.push(format!("from {}", code(previous)));
    }
    let fields: Vec<&str> = change
        .main
        .changes
        .iter()
        .map(|field| field.field.wire_name())
        .collect();
    if !fields.is_empty() {
        parts.push(fields.join(", "));
    }
    parts.extend(
        change
            .main
            .notes
            .iter()
            .map(|note| note.describe().to_owned()),
    );
    parts.extend(
        disruptions
            .iter()
            .filter(|disruption| disruption.name == change.name)
            .map(|disruption| disruption.describe()),
    );
    if parts.is_empty() {
        "—".to_owned()
    } else {
        parts.join("; ")
    }
}

fn environment_section(change: &ResourceChange<'_>, open: bool) -> String {
    let mut lines: Vec<String> = Vec::new();
    // A create names what it creates, as the human rendering does, so its block is never empty.
    if change.action == Action::Create {
        lines.push(format!(
            "+ name = {}",
            Value::String(change.name.to_owned())
        ));
    }
    if let Some(previous) = change.previous_name {
        lines.push(format!(
            "! name = {} -> {}",
            Value::String(previous.to_owned()),
            Value::String(change.name.to_owned())
        ));
    }
    if let Some(temporary) = change.temporary_name {
        lines.push(format!(
            "  # through the temporary name {}",
            Value::String(temporary.to_owned())
        ));
    }
    for field in &change.main.changes {
        let root = vec![field.field.wire_name().to_owned()];
        for difference in leaf_differences(field.before.as_ref(), field.after.as_ref()) {
            let mut path = root.clone();
            path.extend(difference.path);
            leaf_lines(
                &mut lines,
                &path,
                difference.before.as_ref(),
                difference.after.as_ref(),
            );
        }
    }
    let hidden = change.main.unchanged.len();
    if hidden > 0 {
        lines.push(format!(
            "  # ({hidden} unchanged attribute{} hidden)",
            if hidden == 1 { "" } else { "s" }
        ));
    }
    let body = lines.join("\n");
    let fence = fence_for(&body);
    format!(
        "<details{}><summary><code>{}</code> {} {}</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n\n",
        if open { " open" } else { "" },
        html(change.action.symbol()),
        html(action_words(change)),
        code(change.name),
    )
}

/// The lines of one difference; a whole object appearing or going is spelled out leaf by leaf.
fn leaf_lines(
    lines: &mut Vec<String>,
    path: &[String],
    before: Option<&Value>,
    after: Option<&Value>,
) {
    let shown = path_label(path);
    if hides(path, &[before, after]) {
        match (before, after) {
            (None, Some(_)) => lines.push(format!("+ {shown} = {SENSITIVE}")),
            (Some(_), None) => lines.push(format!("- {shown} = {SENSITIVE}")),
            _ => lines.push(format!("! {shown} = {SENSITIVE_CHANGED}")),
        }
        return;
    }
    match (before, after) {
        (None, Some(Value::Object(object))) | (Some(Value::Object(object)), None)
            if !object.is_empty() =>
        {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            for key in keys {
                let mut child = path.to_vec();
                child.push(key.clone());
                let value = object.get(key);
                if before.is_some() {
                    leaf_lines(lines, &child, value, None);
                } else {
                    leaf_lines(lines, &child, None, value);
                }
            }
        }
        (left, right) if is_multiline(left) || is_multiline(right) => {
            let old = left.and_then(Value::as_str).unwrap_or_default();
            let new = right.and_then(Value::as_str).unwrap_or_default();
            let sign = match (left, right) {
                (None, _) => '+',
                (_, None) => '-',
                _ => '!',
            };
            lines.push(format!("{sign} {shown} = <<-EOT"));
            for change in TextDiff::from_lines(old, new).iter_all_changes() {
                let text = escape_line(change.value().trim_end_matches(['\n', '\r']));
                let sign = match change.tag() {
                    ChangeTag::Equal => ' ',
                    ChangeTag::Delete => '-',
                    ChangeTag::Insert => '+',
                };
                lines.push(format!("{sign}     {text}"));
            }
            lines.push("  EOT".to_owned());
        }
        (None, Some(value)) => lines.push(format!("+ {shown} = {}", inline(path, value))),
        (Some(value), None) => lines.push(format!("- {shown} = {}", inline(path, value))),
        (Some(left), Some(right)) => lines.push(format!(
            "! {shown} = {} -> {}",
            inline(path, left),
            inline(path, right)
        )),
        (None, None) => {}
    }
}

fn is_multiline(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .is_some_and(|text| text.contains('\n'))
}

fn path_label(path: &[String]) -> String {
    path.iter()
        .map(|key| key_label(key))
        .collect::<Vec<_>>()
        .join(".")
}

fn drift_section(plan: &Plan) -> String {
    let mut lines = Vec::new();
    for entry in plan.drift() {
        let shown = format!(
            "{}: {}",
            plain_or_quoted(&entry.name),
            path_label(&entry.path.0)
        );
        let path = &entry.path.0;
        let line = match (&entry.last_applied, &entry.live) {
            (then, now) if hides(path, &[then.as_ref(), now.as_ref()]) => {
                format!("! {shown} = {SENSITIVE_CHANGED}")
            }
            (None, Some(now)) => format!("+ {shown} = {}", inline(path, now)),
            (Some(then), None) => format!("- {shown} = {}", inline(path, then)),
            (Some(then), Some(now)) => {
                format!(
                    "! {shown} = {} -> {}",
                    inline(path, then),
                    inline(path, now)
                )
            }
            (None, None) => continue,
        };
        lines.push(format!("{line}  # {}", entry.resolution.describe()));
    }
    let body = lines.join("\n");
    let fence = fence_for(&body);
    format!(
        "<details><summary>Drift: {} value{} changed outside envform since the last apply</summary>\n\n{fence}diff\n{body}\n{fence}\n\n</details>\n\n",
        plan.drift().len(),
        if plan.drift().len() == 1 { "" } else { "s" },
    )
}

fn unmanaged_section(plan: &Plan) -> String {
    let mut out = format!(
        "<details><summary>Unmanaged: {} live environment{} in neither the configuration nor state</summary>\n\n",
        plan.unmanaged().len(),
        if plan.unmanaged().len() == 1 { "" } else { "s" },
    );
    for unmanaged in plan.unmanaged() {
        let _ = writeln!(out, "- {} ({})", code(&unmanaged.name), unmanaged.status);
    }
    out.push_str("\n</details>\n\n");
    out
}

fn forget_section(plan: &Plan) -> String {
    let mut out = String::from(
        "<details><summary>State only: deleted outside envform, removed from state</summary>\n\n",
    );
    for step in plan.steps().iter().filter(|step| is_forget(step)) {
        let _ = writeln!(out, "- {}", code(&step.name));
    }
    out.push_str("\n</details>\n\n");
    out
}

fn order_section(plan: &Plan) -> String {
    let mut out = String::from("<details><summary>Order</summary>\n\n");
    let steps = plan
        .steps()
        .iter()
        .filter(|step| step.action != Action::NoOp);
    for (position, step) in steps.enumerate() {
        let mut line = format!(
            "{}. `{}` {}",
            position + 1,
            step.action.symbol(),
            code(&step.name)
        );
        if let Some(rename) = &step.rename {
            let _ = write!(line, " ({} → {})", code(&rename.from), code(&rename.to));
        }
        if step.wait_for_provisioning {
            line.push_str(" (waits for provisioning)");
        }
        let _ = writeln!(out, "{line}");
    }
    out.push_str("\n</details>\n\n");
    out
}

/// Text inside HTML (a table cell, a summary): markup, table pipes, code ticks and line breaks
/// become entities, so the text stays in its place.
fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '|' => out.push_str("&#124;"),
            '`' => out.push_str("&#96;"),
            '*' | '_' | '[' | ']' | '\\' | '~' | '#' | '!' => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            '\n' => out.push_str("&#10;"),
            c if c.is_control() => {
                let _ = write!(out, "&#{};", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// A name as inline code that survives any content.
fn code(name: &str) -> String {
    format!("<code>{}</code>", html(name))
}

/// A code fence longer than any run of backticks in `body`.
fn fence_for(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}
