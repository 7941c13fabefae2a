//! Markdown that hostile names and descriptions cannot break, and its size limit.

use serde_json::json;

use super::fixtures::*;
use crate::api::Environment;
use crate::desired::DesiredFields;
use crate::plan::render::{Format, RenderOptions, render, render_markdown};

const HOSTILE_NAMES: [&str; 6] = [
    "pipe|name",
    "<script>alert(1)</script>",
    "tick`s```fence",
    "new\nline",
    "**bold**_[link](x)",
    "</details><details open>",
];

const HOSTILE_DESCRIPTION: &str =
    "a | b\n```\n</details>\n<img src=x onerror=alert(1)>\n````\n`code`";

fn hostile_plan() -> crate::plan::Plan {
    let environments = HOSTILE_NAMES
        .iter()
        .map(|name| {
            desired_with(
                name,
                DesiredFields {
                    description: Some(HOSTILE_DESCRIPTION.to_owned()),
                    metadata: Some(object(json!({"we|ird\nkey`": "<b>|</b>"}))),
                    ..DesiredFields::default()
                },
            )
        })
        .collect();
    let mut state = state();
    let doomed = live(50, "doomed|<i>`x`</i>\nname");
    manage(&mut state, &doomed, object(json!({})));
    plan_ok(&document(environments), &[doomed], &state)
}

/// Checks the structure a renderer of GitHub markdown sees: table rows keep their cells, code
/// fences close where they should, every `<details>` closes outside code.
fn assert_well_formed(markdown: &str, table_rows: usize) {
    let lines: Vec<&str> = markdown.lines().collect();
    let header = lines
        .iter()
        .position(|line| line.starts_with("| | Environment"))
        .expect("a table");
    let rows: Vec<&str> = lines[header + 2..]
        .iter()
        .take_while(|line| !line.is_empty())
        .copied()
        .collect();
    assert_eq!(rows.len(), table_rows, "{markdown}");
    for row in rows {
        assert!(row.starts_with("| ") && row.ends_with(" |"), "{row}");
        assert_eq!(row.matches('|').count(), 5, "a cell broke: {row}");
    }

    let mut fence: Option<String> = None;
    let mut open_details = 0_i32;
    for line in &lines {
        match &fence {
            Some(opening) => {
                if line.trim_end() == opening {
                    fence = None;
                } else {
                    // Nothing inside may close the fence early.
                    assert!(!line.trim_start().starts_with(opening.as_str()), "{line}");
                }
            }
            None => {
                if line.starts_with("```") {
                    let ticks: String = line.chars().take_while(|c| *c == '`').collect();
                    fence = Some(ticks);
                    continue;
                }
                open_details += i32::try_from(line.matches("<details").count()).unwrap_or(0);
                open_details -= i32::try_from(line.matches("</details>").count()).unwrap_or(0);
                assert!(open_details >= 0, "unbalanced details at: {line}");
                assert!(!line.contains("<script"), "{line}");
                assert!(!line.contains("<img"), "{line}");
                assert!(!line.contains("<i>"), "{line}");
            }
        }
    }
    assert!(fence.is_none(), "a code fence is left open");
    assert_eq!(open_details, 0);
}

#[test]
fn hostile_names_and_descriptions_cannot_break_the_markdown() {
    let plan = hostile_plan();
    let markdown = render_markdown(&plan, 60_000);
    assert_well_formed(&markdown, HOSTILE_NAMES.len() + 1);
    assert!(
        markdown.contains("<code>pipe&#124;name</code>"),
        "{markdown}"
    );
    assert!(markdown.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"));
    assert!(markdown.contains("<code>tick&#96;s&#96;&#96;&#96;fence</code>"));
    assert!(markdown.contains("<code>new&#10;line</code>"));
    // The description's lines are in a code block whose fence is longer than any run inside.
    assert!(markdown.contains("`````diff"), "{markdown}");
}

#[test]
fn hostile_names_stay_on_their_line_in_the_human_rendering() {
    let plan = hostile_plan();
    let human = render(&plan, Format::Human, &RenderOptions::default());
    assert!(human.contains("+ environment \"new\\nline\" {"), "{human}");
    assert!(
        human.contains("# \"new\\nline\" will be created"),
        "{human}"
    );
    assert!(!human.contains("new\nline"));
}

fn large_plan(creates: usize, deletes: usize) -> crate::plan::Plan {
    let environments = (0..creates)
        .map(|number| {
            desired_with(
                &format!("service-{number:04}"),
                DesiredFields {
                    description: Some(format!("Service number {number}, with a description.")),
                    configuration: Some(object(json!({
                        "max_workers": number + 1,
                        "timeout_seconds": 600,
                        "queue": format!("queue-{number}"),
                    }))),
                    ..DesiredFields::default()
                },
            )
        })
        .collect();
    let mut state = state();
    let doomed: Vec<Environment> = (0..deletes)
        .map(|number| {
            let mut environment = live(10_000 + number as u128, &format!("old-{number}"));
            environment.description = Some("going away".to_owned());
            environment
        })
        .collect();
    for environment in &doomed {
        manage(&mut state, environment, object(json!({})));
    }
    let mut desired = document(environments);
    desired.options.delete_threshold.max_fraction = 1.0;
    plan_ok(&desired, &doomed, &state)
}

#[test]
fn markdown_stays_under_its_limit_and_says_what_was_left_out() {
    let plan = large_plan(300, 5);
    let limit = 20_000;
    let markdown = render_markdown(&plan, limit);
    let size = markdown.chars().count();
    assert!(size <= limit, "{size} characters");
    // The summary and every destructive change are there.
    assert!(markdown.contains("**Plan: 300 to add, 0 to change, 5 to destroy, 0 to adopt.**"));
    assert_eq!(markdown.matches("<details open>").count(), 5);
    for number in 0..5 {
        assert!(markdown.contains(&format!("destroy <code>old-{number}</code>")));
    }
    // The rest is cut, and the cut is counted: shown + left out = all sections.
    let shown = markdown.matches("<details><summary>").count();
    let left_out: usize = markdown
        .lines()
        .find_map(|line| line.strip_prefix('_')?.split(' ').next()?.parse().ok())
        .expect("a line says how many sections were left out");
    // 300 creates, plus the order section.
    assert_eq!(shown + left_out, 301);
    assert!(left_out > 0);
    // The table keeps the destructive rows, what fits of the others, and a row counting the rest.
    let rows_left_out: usize = markdown
        .lines()
        .find_map(|line| {
            line.strip_prefix("| | … | ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("a row counts the rows left out");
    let table_rows = markdown
        .lines()
        .filter(|line| line.starts_with("| `"))
        .count();
    assert_eq!(table_rows + rows_left_out, 305);
    assert_well_formed(&markdown, table_rows + 1);
}

#[test]
fn markdown_under_the_limit_is_whole() {
    let plan = large_plan(3, 1);
    let markdown = render_markdown(&plan, 60_000);
    assert!(!markdown.contains("left out"));
    assert_eq!(markdown.matches("<details").count(), 5);
}

#[test]
fn the_summary_and_destructive_changes_show_even_past_a_tiny_limit() {
    let plan = large_plan(2, 2);
    let markdown = render_markdown(&plan, 100);
    assert!(markdown.contains("**Plan: 2 to add, 0 to change, 2 to destroy, 0 to adopt.**"));
    assert_eq!(markdown.matches("<details open>").count(), 2);
    assert!(markdown.contains("_3 more sections"), "{markdown}");
    assert!(
        markdown.contains("| `-` | <code>old-0</code>"),
        "{markdown}"
    );
}
