//! The scheduler: runs the plan's DAG with at most `parallelism` calls in flight, each step as soon
//! as the steps it depends on are done; dependents of a failed step are skipped while independent
//! steps go on. State is saved as steps finish: one save (serial plus one) covers every step that
//! finished since the previous save, so a crash loses at most what one save was writing, and a
//! create starts only once its intent is saved. A backend whose saves are slow (a server) may ask
//! for saves batched by time as well: then finished steps wait up to its interval for the next
//! save, unless a create waits for its intent. Each save names the entries it changed, so the
//! local journal writes only those. An interrupt stops the scheduling and lets in-flight calls
//! finish.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::outcome::{ApplyReport, StepOutcome, StepResult};
use super::progress::{Progress, WAIT_REPORT_INTERVAL};
use super::step::{self, StepContext, StepFailure, StepSuccess, WaitBoard};
use crate::api::{EnvironmentId, EnvironmentsApi};
use crate::plan::{Action, BoundPlan, Payload, Plan, Step, StepId};
use crate::state::{CreateIntent, LockHandle, State, StateBackend, StateChanges};

/// How to run a plan.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// At most this many API calls in flight.
    pub parallelism: usize,
    /// How long a create waits for provisioning to end.
    pub wait_timeout: Duration,
    /// First pause between provisioning polls.
    pub poll_interval: Duration,
    /// How often a step still running is reported ([`WAIT_REPORT_INTERVAL`]).
    pub wait_report_interval: Duration,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            parallelism: 10,
            wait_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(100),
            wait_report_interval: WAIT_REPORT_INTERVAL,
        }
    }
}

/// Where finished steps are journaled.
pub struct Journal<'a> {
    /// The backend.
    pub backend: &'a dyn StateBackend,
    /// The lock held for this run.
    pub lock: Option<&'a LockHandle>,
}

/// Executes a bound plan: its DAG runs until done, failed or `cancel`led. Binding already checked
/// its base and resolved every call, so nothing here can find the plan stale.
pub async fn execute(
    bound: BoundPlan,
    api: Arc<dyn EnvironmentsApi>,
    journal: Journal<'_>,
    options: &ApplyOptions,
    cancel: CancellationToken,
    progress: &dyn Progress,
) -> ApplyReport {
    let (plan, payloads, state) = bound.into_parts();
    let context = StepContext {
        api,
        wait_timeout: options.wait_timeout,
        poll_interval: options.poll_interval,
        waits: WaitBoard::default(),
        digests: crate::plan::SecretDigests::of(&state),
    };
    let mut run = Run::new(&plan, state, journal, progress);
    // A zero interval would report in a busy loop.
    run.wait_report_interval = options.wait_report_interval.max(Duration::from_millis(10));
    run.drive(payloads, &context, options.parallelism.max(1), cancel)
        .await;
    run.into_report()
}

/// The bookkeeping of one apply.
struct Run<'a> {
    steps: BTreeMap<StepId, &'a Step>,
    waiting_on: BTreeMap<StepId, usize>,
    dependents: BTreeMap<StepId, Vec<StepId>>,
    outcomes: BTreeMap<StepId, StepOutcome>,
    ready: BTreeSet<StepId>,
    state: State,
    journal: Journal<'a>,
    progress: &'a dyn Progress,
    interrupted: bool,
    fatal: Option<String>,
    /// State changed since it was last saved.
    dirty: bool,
    /// The entries changed since the last save.
    changes: StateChanges,
    /// When state was last saved, and how long finished steps may wait for the next save.
    last_save: Instant,
    save_interval: Duration,
    /// Creates whose intent is in `state`, and those of them already saved.
    noted_intents: BTreeSet<StepId>,
    durable_intents: BTreeSet<StepId>,
    /// Intents noted since the last save: they become durable with it.
    unsaved_intents: BTreeSet<StepId>,
    /// Steps whose call was started.
    started: BTreeSet<StepId>,
    /// Steps in flight: when each started and when it is next reported as still running.
    running: BTreeMap<StepId, (Instant, Instant)>,
    wait_report_interval: Duration,
}

impl<'a> Run<'a> {
    fn new(plan: &'a Plan, state: State, journal: Journal<'a>, progress: &'a dyn Progress) -> Self {
        let save_interval = journal.backend.save_interval();
        // A salt made for this run is stored with the first save.
        let changes = StateChanges {
            digest_salt: state.digest_salt_unsaved,
            ..StateChanges::default()
        };
        let steps: BTreeMap<StepId, &Step> =
            plan.steps().iter().map(|step| (step.id, step)).collect();
        let mut waiting_on = BTreeMap::new();
        let mut dependents: BTreeMap<StepId, Vec<StepId>> = BTreeMap::new();
        let mut ready = BTreeSet::new();
        for step in plan.steps() {
            let known: Vec<StepId> = step
                .depends_on
                .iter()
                .copied()
                .filter(|id| steps.contains_key(id))
                .collect();
            for dependency in &known {
                dependents.entry(*dependency).or_default().push(step.id);
            }
            if known.is_empty() {
                ready.insert(step.id);
            }
            waiting_on.insert(step.id, known.len());
        }
        Self {
            steps,
            waiting_on,
            dependents,
            outcomes: BTreeMap::new(),
            ready,
            state,
            journal,
            progress,
            interrupted: false,
            fatal: None,
            dirty: false,
            changes,
            last_save: Instant::now(),
            save_interval,
            noted_intents: BTreeSet::new(),
            durable_intents: BTreeSet::new(),
            unsaved_intents: BTreeSet::new(),
            started: BTreeSet::new(),
            running: BTreeMap::new(),
            wait_report_interval: WAIT_REPORT_INTERVAL,
        }
    }

    async fn drive(
        &mut self,
        mut payloads: BTreeMap<StepId, Payload>,
        context: &StepContext,
        parallelism: usize,
        cancel: CancellationToken,
    ) {
        let mut in_flight: JoinSet<(StepId, Result<StepSuccess, StepFailure>)> = JoinSet::new();
        loop {
            let batch: Vec<StepId> = if self.stopping() {
                Vec::new()
            } else {
                let room = parallelism.saturating_sub(in_flight.len());
                let batch: Vec<StepId> = self.ready.iter().copied().take(room).collect();
                for id in &batch {
                    self.ready.remove(id);
                }
                // The intents of the creates likely to start next round are written one round
                // early, so that round can start them before its save instead of after it.
                let next: Vec<StepId> = self.ready.iter().copied().take(parallelism).collect();
                self.record_intents(&batch);
                self.record_intents(&next);
                batch
            };
            // A create starts only once its intent is saved; then one save covers every step
            // finished since the last one (a slow save makes batches larger, not the run serial).
            let waits_for_intent = batch.iter().any(|id| {
                self.steps[id].action == Action::Create && !self.durable_intents.contains(id)
            });
            if self.dirty && waits_for_intent {
                self.save().await;
            }
            if !self.stopping() {
                for id in batch {
                    let step = self.steps[&id];
                    let payload = payloads.remove(&id).unwrap_or(Payload::StateOnly);
                    self.progress.started(step);
                    self.started.insert(id);
                    let now = Instant::now();
                    self.running
                        .insert(id, (now, now + self.wait_report_interval));
                    let owned = step.clone();
                    let context = context.clone();
                    in_flight.spawn(async move {
                        let result = step::run(&owned, payload, &context).await;
                        (owned.id, result)
                    });
                }
            }
            if self.dirty && (in_flight.is_empty() || self.save_due()) {
                self.save().await;
            }
            if in_flight.is_empty() {
                break;
            }
            let next_report = self.running.values().map(|(_, next)| *next).min();
            let next_save = (self.dirty && !self.save_interval.is_zero())
                .then(|| self.last_save + self.save_interval);
            tokio::select! {
                biased;
                () = cancel.cancelled(), if !self.interrupted => {
                    self.interrupted = true;
                    self.progress.note(&format!(
                        "Interrupt received: waiting for {} in-flight step(s) to finish, then saving state.",
                        in_flight.len()
                    ));
                }
                joined = in_flight.join_next() => {
                    let mut joined = joined;
                    // Take every step that has finished meanwhile, so one save covers them all.
                    while let Some(result) = joined {
                        match result {
                            Ok((id, result)) => {
                                self.running.remove(&id);
                                context.waits.remove(id);
                                self.finish(id, result);
                            }
                            Err(error) => {
                                let message = format!("a step's task ended abnormally: {error}");
                                self.progress.note(&message);
                                self.fatal.get_or_insert(message);
                            }
                        }
                        joined = in_flight.try_join_next();
                    }
                }
                () = sleep_until_next(next_report) => self.report_waits(&context.waits),
                // Finished steps waited long enough: the next round saves them.
                () = sleep_until_next(next_save) => {}
            }
        }
        // Intents written ahead for creates that never started would claim a create that was
        // never sent.
        let unsent: Vec<String> = self
            .noted_intents
            .iter()
            .filter(|id| !self.started.contains(id))
            .map(|id| self.steps[id].name.clone())
            .collect();
        for name in unsent {
            if self.state.intents.remove(&name).is_some() {
                self.dirty = true;
                self.changes.intents.insert(name);
            }
        }
        if self.dirty {
            self.save().await;
        }
        if cancel.is_cancelled() {
            self.interrupted = true;
        }
    }

    /// Reports every step whose next still-running report is due, and schedules its next one.
    fn report_waits(&mut self, waits: &WaitBoard) {
        let now = Instant::now();
        for (id, (started, next)) in &mut self.running {
            if *next > now {
                continue;
            }
            *next += self.wait_report_interval;
            self.progress
                .waiting(self.steps[id], now - *started, waits.get(*id));
        }
    }

    /// Whether finished steps have waited the backend's interval for a save.
    fn save_due(&self) -> bool {
        self.save_interval.is_zero() || self.last_save.elapsed() >= self.save_interval
    }

    fn stopping(&self) -> bool {
        self.interrupted || self.fatal.is_some()
    }

    /// Notes each create about to be sent in state first, so a run that dies mid-create leaves a
    /// trace (the next plan adopts the environment by name instead of creating it twice).
    fn record_intents(&mut self, steps: &[StepId]) {
        for id in steps {
            let step = self.steps[id];
            if step.action != Action::Create || self.noted_intents.contains(id) {
                continue;
            }
            self.state.intents.insert(
                step.name.clone(),
                CreateIntent {
                    started_at: jiff::Timestamp::now(),
                },
            );
            self.noted_intents.insert(*id);
            self.unsaved_intents.insert(*id);
            self.changes.intents.insert(step.name.clone());
            self.dirty = true;
        }
    }

    fn finish(&mut self, id: StepId, result: Result<StepSuccess, StepFailure>) {
        let step = self.steps[&id];
        let outcome = match result {
            Ok(success) => {
                // Only a step that changes state makes a save: a no-op whose record is already
                // there writes nothing (so a serial, and saved plans made against it, stay).
                let before = self.state.resources.get(step.final_name()).cloned();
                let had_intent = self.state.intents.remove(&step.name).is_some();
                let environment_id = success.environment_id.unwrap_or(EnvironmentId(Uuid::nil()));
                step.record_in(&mut self.state, environment_id);
                let unkept_changed = self.state.note_kept_fields(&success.kept, &success.unkept);
                let changed = had_intent
                    || unkept_changed
                    || step.rename.is_some()
                    || self.state.resources.get(step.final_name()) != before.as_ref();
                if changed {
                    self.dirty = true;
                    self.changes.intents.insert(step.name.clone());
                    self.changes.resources.insert(step.final_name().to_owned());
                    self.changes.unkept_fields |= unkept_changed;
                    if let Some(rename) = &step.rename {
                        self.changes.resources.insert(rename.from.clone());
                    }
                }
                for dependent in self.dependents.get(&id).cloned().unwrap_or_default() {
                    if let Some(count) = self.waiting_on.get_mut(&dependent) {
                        *count -= 1;
                        if *count == 0 && !self.outcomes.contains_key(&dependent) {
                            self.ready.insert(dependent);
                        }
                    }
                }
                StepOutcome::Done {
                    warnings: success.warnings,
                }
            }
            Err(failure) => match failure {
                StepFailure::Failed(message) => {
                    if self.state.intents.remove(&step.name).is_some() {
                        self.dirty = true;
                        self.changes.intents.insert(step.name.clone());
                    }
                    StepOutcome::Failed { message }
                }
                // The intent stays: the next run looks the environment up by name.
                StepFailure::Unknown(message) => StepOutcome::Unknown { message },
            },
        };
        let failed = !outcome.is_done();
        // The failure is told before the skips it causes, so a reader sees the cause first.
        self.progress.finished(step, &outcome);
        self.outcomes.insert(id, outcome);
        if failed {
            self.skip_dependents_of(id);
        }
    }

    /// Marks every step that transitively depends on `failed` as skipped.
    fn skip_dependents_of(&mut self, failed: StepId) {
        let mut pending = self.dependents.get(&failed).cloned().unwrap_or_default();
        while let Some(id) = pending.pop() {
            if self.outcomes.contains_key(&id) {
                continue;
            }
            self.ready.remove(&id);
            let outcome = StepOutcome::Skipped { because: failed };
            self.progress.finished(self.steps[&id], &outcome);
            self.outcomes.insert(id, outcome);
            pending.extend(self.dependents.get(&id).cloned().unwrap_or_default());
        }
    }

    /// Writes state with the next serial; a failure stops the scheduling.
    async fn save(&mut self) {
        self.dirty = false;
        self.last_save = Instant::now();
        self.state.serial += 1;
        let changes = std::mem::take(&mut self.changes);
        match self
            .journal
            .backend
            .save_changes(&self.state, &changes, self.journal.lock)
            .await
        {
            Ok(()) => {
                self.state.digest_salt_unsaved = false;
                self.durable_intents
                    .extend(std::mem::take(&mut self.unsaved_intents));
            }
            Err(error) => {
                self.state.serial -= 1;
                // Whatever is saved next must cover these as well.
                self.changes.resources.extend(changes.resources);
                self.changes.intents.extend(changes.intents);
                self.changes.unkept_fields |= changes.unkept_fields;
                self.changes.digest_salt |= changes.digest_salt;
                let message = format!("cannot save state: {error}");
                self.progress.note(&message);
                self.fatal = Some(message);
            }
        }
    }

    fn into_report(self) -> ApplyReport {
        let results = self
            .steps
            .values()
            .map(|step| StepResult {
                step: step.id,
                name: step.final_name().to_owned(),
                action: step.action,
                outcome: self
                    .outcomes
                    .get(&step.id)
                    .cloned()
                    .unwrap_or(StepOutcome::Interrupted),
            })
            .collect();
        ApplyReport {
            results,
            interrupted: self.interrupted,
            state: self.state,
            fatal: self.fatal,
        }
    }
}

/// Sleeps until `deadline`, or forever when nothing is running.
async fn sleep_until_next(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
