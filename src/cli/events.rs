//! `apply --format json` and `destroy --format json`: what happens, as a stream of JSON objects
//! on stdout, one per line and flushed as it happens, so a pipeline can follow a run without
//! parsing text. The schema is in docs/src/reference/automation-json.md; every event has `type`
//! and `time`, and a run's stream ends with a `summary` event, or an `error` event when the
//! command stopped before or around the steps.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use miette::Diagnostic;
use serde_json::{Map, Value, json};

use super::output::write_stdout;
use crate::api::EnvironmentId;
use crate::apply::{ApplyReport, Progress, StepOutcome, StepResult, Waiting};
use crate::plan::{Action, Plan, Step};
use crate::state::State;

/// The version of the event schema, in every `plan` event: raised when a field changes meaning
/// or goes away (new fields and new event types do not raise it).
pub(crate) const EVENTS_FORMAT_VERSION: u32 = 1;

/// Writes the events of one `apply` or `destroy`.
pub(crate) struct JsonEvents {
    /// `apply` or `destroy`.
    operation: &'static str,
    /// When each step started, for its duration, and the live environment it acts on.
    started: Mutex<BTreeMap<u32, (Instant, Option<EnvironmentId>)>>,
    /// When the command started.
    begun: Instant,
}

impl JsonEvents {
    /// Events of `operation` (`apply` or `destroy`), timed from now.
    pub(crate) fn new(operation: &'static str) -> Self {
        Self {
            operation,
            started: Mutex::new(BTreeMap::new()),
            begun: Instant::now(),
        }
    }

    /// The state lock is held by `holder`; the command waits for it (`--lock-timeout`).
    pub(crate) fn lock_waiting(&self, holder: &str) {
        self.emit(
            "lock_waiting",
            json!({ "operation": self.operation, "holder": holder }),
        );
    }

    /// The plan about to run: its counts and its steps in order.
    pub(crate) fn plan(&self, plan: &Plan) {
        let summary = plan.summary();
        let steps: Vec<Value> = plan
            .steps()
            .iter()
            .map(|step| {
                json!({
                    "step": step.id.0,
                    "name": step.final_name(),
                    "action": step.action,
                })
            })
            .collect();
        self.emit(
            "plan",
            json!({
                "format_version": EVENTS_FORMAT_VERSION,
                "operation": self.operation,
                "add": summary.add,
                "change": summary.change,
                "destroy": summary.destroy,
                "adopt": summary.adopt,
                "steps": steps,
            }),
        );
    }

    /// The end of a run that changed nothing: no step ran.
    pub(crate) fn nothing_to_do(&self) {
        self.finish("succeeded", [0; 4], &[], None, Vec::new());
    }

    /// The end of a run: what each step did, the counts, and why it stopped early if it did.
    pub(crate) fn summary(&self, report: &ApplyReport) {
        let done = |actions: &[Action]| {
            report
                .results
                .iter()
                .filter(|result| result.outcome.is_done() && actions.contains(&result.action))
                .count()
        };
        let result = if report.interrupted {
            "interrupted"
        } else if report.succeeded() {
            "succeeded"
        } else {
            "failed"
        };
        let results: Vec<Value> = report
            .results
            .iter()
            .map(|result| {
                json!({
                    "step": result.step.0,
                    "name": result.name,
                    "action": result.action,
                    "result": result.outcome.label().replace(' ', "_"),
                    "id": self.environment_id(&report.state, result),
                })
            })
            .collect();
        let labels: Vec<&str> = report
            .results
            .iter()
            .map(|result| result.outcome.label())
            .collect();
        let changed = [
            done(&[Action::Create]),
            done(&[Action::Update, Action::Rename]),
            done(&[Action::Delete]),
            done(&[Action::Adopt]),
        ];
        self.finish(result, changed, &labels, report.fatal.as_deref(), results);
    }

    /// Writes the `summary` event; `changed` counts added, changed, destroyed and adopted.
    fn finish(
        &self,
        result: &str,
        changed: [usize; 4],
        labels: &[&str],
        stopped: Option<&str>,
        results: Vec<Value>,
    ) {
        let [added, changed, destroyed, adopted] = changed;
        self.emit(
            "summary",
            json!({
                "operation": self.operation,
                "result": result,
                "added": added,
                "changed": changed,
                "destroyed": destroyed,
                "adopted": adopted,
                "counts": counts(labels),
                "stopped": stopped,
                "elapsed_seconds": seconds(self.begun.elapsed()),
                "results": results,
            }),
        );
    }

    /// The command failed outside the steps (the lock, the plan, a refusal): the stream's last
    /// event, written beside the report on stderr.
    pub(crate) fn error(&self, report: &miette::Report) {
        let diagnostic: &dyn Diagnostic = report.as_ref();
        self.emit(
            "error",
            json!({
                "operation": self.operation,
                "code": diagnostic.code().map(|code| code.to_string()),
                "message": crate::local::error_chain(diagnostic),
                "help": diagnostic.help().map(|help| help.to_string()),
            }),
        );
    }

    fn elapsed(&self, step: &Step) -> Option<Duration> {
        self.started
            .lock()
            .ok()
            .and_then(|started| started.get(&step.id.0).map(|(at, _)| at.elapsed()))
    }

    /// The environment a finished step leaves in state (a created one's new id), else the one
    /// it acted on (a deleted one's).
    fn environment_id(&self, state: &State, result: &StepResult) -> Value {
        if !result.outcome.is_done() {
            return Value::Null;
        }
        let recorded = state
            .resources
            .get(&result.name)
            .map(|resource| resource.id);
        let acted_on = || {
            self.started
                .lock()
                .ok()
                .and_then(|started| started.get(&result.step.0).and_then(|(_, id)| *id))
        };
        recorded
            .or_else(acted_on)
            .map_or(Value::Null, |id| id.to_string().into())
    }

    /// Writes one event as a line of its own, flushed at once. A closed stdout cannot be
    /// reported from inside the executor, so it only ends the stream.
    fn emit(&self, kind: &str, fields: Value) {
        let mut event = Map::new();
        event.insert("type".into(), kind.into());
        event.insert("time".into(), jiff::Timestamp::now().to_string().into());
        if let Value::Object(fields) = fields {
            event.extend(fields);
        }
        let Ok(mut line) = serde_json::to_string(&Value::Object(event)) else {
            return;
        };
        line.push('\n');
        let _ = write_stdout(|out| out.write_all(line.as_bytes()));
    }
}

impl Progress for JsonEvents {
    fn started(&self, step: &Step) {
        if let Ok(mut started) = self.started.lock() {
            started.insert(step.id.0, (Instant::now(), step.environment_id));
        }
        self.emit("step_started", step_fields(step, json!({})));
    }

    fn waiting(&self, step: &Step, elapsed: Duration, waiting: Waiting) {
        self.emit(
            "waiting",
            step_fields(
                step,
                json!({
                    "elapsed_seconds": elapsed.as_secs(),
                    "waiting_for": waiting,
                    "message": waiting.describe(),
                }),
            ),
        );
    }

    fn finished(&self, step: &Step, outcome: &StepOutcome) {
        let elapsed = self.elapsed(step).map(seconds);
        match outcome {
            StepOutcome::Done { warnings } => {
                self.emit(
                    "step_finished",
                    step_fields(step, json!({ "elapsed_seconds": elapsed })),
                );
                for warning in warnings {
                    self.emit("warning", step_fields(step, json!({ "message": warning })));
                }
            }
            StepOutcome::Failed { message } | StepOutcome::Unknown { message } => self.emit(
                "step_failed",
                step_fields(
                    step,
                    json!({
                        "result": outcome.label(),
                        "message": message,
                        "elapsed_seconds": elapsed,
                    }),
                ),
            ),
            StepOutcome::Skipped { because } => self.emit(
                "step_skipped",
                step_fields(
                    step,
                    json!({
                        "because": because.0,
                        "message": format!("step {because} did not finish"),
                    }),
                ),
            ),
            StepOutcome::Interrupted => self.emit(
                "step_skipped",
                step_fields(
                    step,
                    json!({ "because": null, "message": "interrupted before it started" }),
                ),
            ),
        }
    }

    fn note(&self, message: &str) {
        self.emit(
            "note",
            json!({ "operation": self.operation, "message": message }),
        );
    }
}

/// A step's identity, followed by `extra`.
fn step_fields(step: &Step, extra: Value) -> Value {
    let mut fields = Map::new();
    fields.insert("step".into(), step.id.0.into());
    fields.insert("name".into(), step.final_name().into());
    fields.insert("action".into(), json!(step.action));
    if let Value::Object(extra) = extra {
        fields.extend(extra);
    }
    Value::Object(fields)
}

/// How many steps ended each way, under fixed keys.
fn counts(labels: &[&str]) -> Value {
    let count = |label: &str| labels.iter().filter(|each| **each == label).count();
    json!({
        "done": count("done"),
        "failed": count("failed"),
        "unknown": count("unknown"),
        "skipped": count("skipped"),
        "not_started": count("not started"),
    })
}

/// A duration in seconds, to the millisecond.
fn seconds(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1000.0).round() / 1000.0
}
