//! The JSON rendering: a versioned document for programs, shaped after Terraform's
//! (`resource_changes[].change.actions`, `before`, `after`), with the order, drift, unmanaged
//! environments and warnings. Secret values are `"(sensitive)"`; the schema is in docs/src/reference/plan-json.md.

use std::path::PathBuf;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value, json};

use super::{hides, redact};
use crate::model::Owner;
use crate::plan::model::{
    Action, Drift, DriftResolution, FieldChange, PLAN_FORMAT_VERSION, Plan, ResourceChange, Step,
    StepNote, SwapPart, Unmanaged,
};
use crate::plan::value::leaf_differences;
use crate::plan::warning::PlanWarning;
use crate::plan::{Disruption, DisruptionCause};

/// Renders `plan` as the documented JSON document (pretty-printed, with a final newline).
pub fn render_json(plan: &Plan) -> String {
    let mut out = Vec::new();
    write_json(plan, &mut out).expect("writing JSON to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Writes the document of [`render_json`] to `out` as it is serialized, without holding it whole.
pub fn write_json(plan: &Plan, out: impl std::io::Write) -> std::io::Result<()> {
    write_document(&Document { plan, saved: None }, out)
}

/// Writes a saved plan: the document of [`render_json`], then `configuration` (the paths of the
/// files it was made from) and `plan` (the plan itself, which `apply PLANFILE` binds).
pub fn write_saved_json(
    plan: &Plan,
    configuration: &[PathBuf],
    out: impl std::io::Write,
) -> std::io::Result<()> {
    let document = Document {
        plan,
        saved: Some(configuration),
    };
    write_document(&document, out)
}

fn write_document(document: &Document<'_>, mut out: impl std::io::Write) -> std::io::Result<()> {
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::new());
    document.serialize(&mut serializer)?;
    out.write_all(b"\n")
}

/// The document, written entry by entry: the long lists are serialized one element at a time,
/// with no JSON tree of the whole plan, so a plan of thousands of environments renders in little
/// memory. `saved` holds the configuration's paths when the document is a saved plan.
struct Document<'a> {
    plan: &'a Plan,
    saved: Option<&'a [PathBuf]>,
}

/// A list serialized from an iterator, one element at a time (the iterator is taken on use, since
/// `Serialize` only gets `&self`).
struct Each<I>(std::cell::RefCell<Option<I>>);

impl<I: Iterator<Item: Serialize>> Each<I> {
    fn new(items: I) -> Self {
        Self(std::cell::RefCell::new(Some(items)))
    }
}

impl<I: Iterator<Item: Serialize>> Serialize for Each<I> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let items = self.0.borrow_mut().take();
        serializer.collect_seq(items.into_iter().flatten())
    }
}

impl Serialize for Document<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let plan = self.plan;
        let base = plan.base();
        let summary = plan.summary();
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("format_version", PLAN_FORMAT_VERSION)?;
        map.serialize_entry("has_changes", &plan.has_changes())?;
        map.serialize_entry(
            "summary",
            &json!({
                "add": summary.add,
                "change": summary.change,
                "destroy": summary.destroy,
                "adopt": summary.adopt,
            }),
        )?;
        map.serialize_entry(
            "base",
            &json!({
                "lineage": base.lineage.map(|lineage| lineage.to_string()),
                "serial": base.serial,
                "desired_digest": base.desired_digest,
                "touched": base
                    .touched
                    .iter()
                    .map(|(name, updated_at)| {
                        (name.clone(), json!(updated_at.map(|time| time.to_string())))
                    })
                    .collect::<Map<String, Value>>(),
                "absent": base.absent.iter().collect::<Vec<_>>(),
            }),
        )?;
        map.serialize_entry(
            "options",
            &json!({
                "prune": plan.settings().prune,
                "force": plan.settings().force,
                "targets": plan.settings().targets,
                "allow_disruption": plan.settings().allow_disruption,
                "adopt": plan.settings().adopt,
                "destroy": plan.settings().destroy,
            }),
        )?;
        let changes = plan.resource_changes();
        map.serialize_entry(
            "resource_changes",
            &Each::new(changes.iter().map(resource_change)),
        )?;
        map.serialize_entry("steps", &Each::new(plan.steps().iter().map(step)))?;
        map.serialize_entry(
            "order",
            &Each::new(plan.steps().iter().map(|step| step.id.0)),
        )?;
        map.serialize_entry("drift", &Each::new(plan.drift().iter().map(drift)))?;
        map.serialize_entry(
            "unmanaged",
            &Each::new(plan.unmanaged().iter().map(unmanaged)),
        )?;
        map.serialize_entry("owned_elsewhere", &plan.owned_elsewhere())?;
        map.serialize_entry(
            "errors",
            &Each::new(plan.refusals().iter().map(|refusal| {
                let error = refusal.error();
                json!({
                    "code": miette::Diagnostic::code(&error).map(|code| code.to_string()),
                    "message": error.to_string(),
                })
            })),
        )?;
        map.serialize_entry(
            "warnings",
            &Each::new(plan.warnings().iter().map(
                |warning| json!({"kind": warning_kind(warning), "message": warning.to_string()}),
            )),
        )?;
        map.serialize_entry(
            "disruptions",
            &Each::new(plan.disruptions().iter().map(disruption)),
        )?;
        if let Some(paths) = self.saved {
            map.serialize_entry("configuration", &json!({ "paths": paths }))?;
            map.serialize_entry("plan", plan)?;
        }
        map.end()
    }
}

/// One element of `resource_changes`. The per-environment lists are written straight from these
/// borrowed structs, fields in the documented order, rather than built as JSON values first.
#[derive(Serialize)]
struct ResourceChangeEntry<'a> {
    name: &'a str,
    previous_name: Option<&'a str>,
    temporary_name: Option<&'a str>,
    environment_id: Option<String>,
    change: ChangeEntry,
    notes: Vec<&'static str>,
    steps: Vec<u32>,
}

#[derive(Serialize)]
struct ChangeEntry {
    actions: Vec<&'static str>,
    /// `None` is `null`: nothing before a create, nothing after a delete.
    before: Option<Fields>,
    after: Option<Fields>,
    sensitive_changes: Vec<Value>,
    unchanged_fields: Vec<&'static str>,
}

/// A JSON object of a few fields, in the order they were added.
struct Fields(Vec<(&'static str, Value)>);

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

fn resource_change<'a>(change: &ResourceChange<'a>) -> ResourceChangeEntry<'a> {
    let main = change.main;
    let mut actions = vec![change.action.as_str()];
    if matches!(change.action, Action::Adopt | Action::Rename) && !main.changes.is_empty() {
        actions.push(Action::Update.as_str());
    }
    let mut before = Vec::new();
    let mut after = Vec::new();
    if let Some(previous) = change.previous_name {
        before.push(("name", json!(previous)));
        after.push(("name", json!(change.name)));
    }
    let mut sensitive_changes = Vec::new();
    for field in &main.changes {
        let wire_name = field.field.wire_name();
        let mut path = vec![wire_name.to_owned()];
        if let Some(value) = &field.before {
            before.push((wire_name, redact(&mut path, value)));
        }
        let shown_after = field
            .after
            .as_ref()
            .map_or(Value::Null, |value| redact(&mut path, value));
        after.push((wire_name, shown_after));
        sensitive_changes.extend(sensitive_paths(field));
    }
    let (before, after) = match change.action {
        Action::Create => (None, Some(Fields(after))),
        Action::Delete => (Some(Fields(before)), None),
        _ => (Some(Fields(before)), Some(Fields(after))),
    };
    ResourceChangeEntry {
        name: change.name,
        previous_name: change.previous_name,
        temporary_name: change.temporary_name,
        environment_id: main.environment_id.map(|id| id.to_string()),
        change: ChangeEntry {
            actions,
            before,
            after,
            sensitive_changes,
            unchanged_fields: main.unchanged.iter().map(|f| f.wire_name()).collect(),
        },
        notes: notes(&main.notes),
        steps: change.steps.iter().map(|step| step.id.0).collect(),
    }
}

/// The paths of secret values a change adds, removes or alters.
fn sensitive_paths(change: &FieldChange) -> Vec<Value> {
    leaf_differences(change.before.as_ref(), change.after.as_ref())
        .into_iter()
        .flat_map(|difference| {
            // A whole `env_vars` (or execution environment) appearing or going: list its secrets.
            let mut found = Vec::new();
            let mut prefix = vec![change.field.wire_name().to_owned()];
            prefix.extend(difference.path.iter().cloned());
            collect_secrets(&mut prefix, difference.before.as_ref(), &mut found);
            collect_secrets(&mut prefix, difference.after.as_ref(), &mut found);
            found.sort();
            found.dedup();
            found
        })
        .map(|path| json!(path))
        .collect()
}

fn collect_secrets(path: &mut Vec<String>, value: Option<&Value>, found: &mut Vec<Vec<String>>) {
    if hides(path, &[value]) {
        found.push(path.clone());
        return;
    }
    if let Some(Value::Object(object)) = value {
        for (key, inner) in object {
            path.push(key.clone());
            collect_secrets(path, Some(inner), found);
            path.pop();
        }
    }
}

/// One element of `steps`.
#[derive(Serialize)]
struct StepEntry<'a> {
    id: u32,
    name: &'a str,
    action: &'static str,
    environment_id: Option<String>,
    rename: Option<RenameEntry<'a>>,
    swap: Option<&'static str>,
    fields: Vec<&'static str>,
    depends_on: Vec<u32>,
    wait_for_provisioning: bool,
    calls_api: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a Owner>,
    notes: Vec<&'static str>,
}

#[derive(Serialize)]
struct RenameEntry<'a> {
    from: &'a str,
    to: &'a str,
}

fn step(step: &Step) -> StepEntry<'_> {
    StepEntry {
        id: step.id.0,
        name: &step.name,
        action: step.action.as_str(),
        environment_id: step.environment_id.map(|id| id.to_string()),
        rename: step.rename.as_ref().map(|rename| RenameEntry {
            from: &rename.from,
            to: &rename.to,
        }),
        swap: step.swap.map(|part| match part {
            SwapPart::ToTemporary => "to_temporary",
            SwapPart::FromTemporary => "from_temporary",
        }),
        fields: step
            .changes
            .iter()
            .map(|change| change.field.wire_name())
            .collect(),
        depends_on: step.depends_on.iter().map(|id| id.0).collect(),
        wait_for_provisioning: step.wait_for_provisioning,
        calls_api: step.calls_api(),
        owner: step.owner.as_ref(),
        notes: notes(&step.notes),
    }
}

fn notes(notes: &[StepNote]) -> Vec<&'static str> {
    notes
        .iter()
        .map(|note| match note {
            StepNote::Recreate => "recreate",
            StepNote::ReplacedOutside => "replaced_outside",
            StepNote::Pruned => "pruned",
            StepNote::TakenOver => "taken_over",
            StepNote::GoneOutside => "gone_outside",
            StepNote::Stamp => "stamp",
        })
        .collect()
}

fn drift(entry: &Drift) -> Value {
    let mut path = entry.path.0.clone();
    json!({
        "name": entry.name,
        "path": entry.path.0,
        "last_applied": entry.last_applied.as_ref().map(|value| redact(&mut path, value)),
        "live": entry.live.as_ref().map(|value| redact(&mut path, value)),
        "resolution": match entry.resolution {
            DriftResolution::Overwritten => "overwritten",
            DriftResolution::Accepted => "accepted",
            DriftResolution::Ignored => "ignored",
        },
    })
}

fn disruption(entry: &Disruption) -> Value {
    json!({
        "name": entry.name,
        "environment_id": entry.environment_id.to_string(),
        "cause": match entry.cause {
            DisruptionCause::Delete => "delete",
            DisruptionCause::Deactivate => "deactivate",
        },
        "active_workers": entry.active_workers,
    })
}

fn unmanaged(entry: &Unmanaged) -> Value {
    json!({
        "name": entry.name,
        "environment_id": entry.environment_id.to_string(),
        "status": entry.status.as_str(),
    })
}

fn warning_kind(warning: &PlanWarning) -> &'static str {
    match warning {
        PlanWarning::RenameIgnored { .. } => "rename_ignored",
        PlanWarning::DuplicateLiveName { .. } => "duplicate_live_name",
        PlanWarning::UnknownIgnorePath { .. } => "unknown_ignore_path",
        PlanWarning::AdoptsIntoNewState { .. } => "adopts_into_new_state",
        PlanWarning::Targeted { .. } => "targeted",
        PlanWarning::NotKept { .. } => "not_kept",
        PlanWarning::Disruption { .. } => "disruption",
    }
}
