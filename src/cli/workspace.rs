//! The commands' shared I/O around their settings: reading the desired files, opening the state
//! backend and the control plane, the state lock, and loading state for a target.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::IntoDiagnostic;

use super::args::{ConfigurationArgs, DesiredArgs, LockArgs};
use super::settings::{ProcessVariables, StateSettings};
use crate::desired::Desired;
use crate::local::error_chain;
use crate::state::{
    HttpBackend, LocalBackend, LockHandle, LockInfo, State, StateBackend, lock_with_timeout,
};
use crate::target::{Connection, Target};

impl DesiredArgs {
    /// Reads and validates the desired state; its warnings go to stderr.
    pub(crate) fn load(&self) -> miette::Result<Desired> {
        let desired = self.load_spec().map_err(miette::Report::new)?;
        for warning in &desired.warnings {
            eprintln!("{:?}", miette::Report::new(warning.clone()));
        }
        Ok(desired)
    }

    /// Reads and checks the files, keeping the error's structure (for `validate --format json`).
    pub(crate) fn load_spec(&self) -> Result<Desired, crate::desired::SpecError> {
        let started = std::time::Instant::now();
        let loaded = crate::desired::load_all(&self.paths());
        super::output::phase_done("read files", started);
        loaded
    }

    /// The configuration's directory, looking at what the first path is.
    pub(crate) fn directory(&self) -> PathBuf {
        let first_is_directory = self.paths.first().is_some_and(|path| path.is_dir());
        self.config_directory(first_is_directory)
    }
}

impl ConfigurationArgs {
    /// Where state is, for these flags and, once read, the file's `state:` block.
    pub(crate) fn state_settings(&self, desired: Option<&Desired>) -> StateSettings {
        self.state.resolve(
            &self.desired.directory(),
            desired.and_then(|desired| desired.state.as_ref()),
            &ProcessVariables,
        )
    }

    /// The state backend these flags and the file name.
    pub(crate) fn backend(
        &self,
        desired: Option<&Desired>,
    ) -> miette::Result<Arc<dyn StateBackend>> {
        open_backend(self.state_settings(desired))
    }

    /// The control plane: `--api-url`; else the embedded database `--embedded-db` names, the one
    /// this configuration's local state last described (so any working directory finds the same
    /// one), or `.envform/control-plane.db`. The state is looked for where the flags and the
    /// configuration's directory put it: the files' `state:` block is not read for this.
    pub(crate) fn target(&self) -> miette::Result<Target> {
        let recorded = if self.target.api_url.is_none() && self.target.embedded_db.is_none() {
            self.state_settings(None)
                .local_path()
                .and_then(recorded_embedded_database)
        } else {
            None
        };
        Ok(self.target.resolve_with(recorded)?)
    }

    /// The backend for the state commands: the file is read only for its `state:` block, and a
    /// missing file just means defaults.
    pub(crate) fn state_command_backend(&self) -> miette::Result<Arc<dyn StateBackend>> {
        let desired = if self.desired.paths().iter().all(|path| path.exists()) {
            Some(self.desired.load()?)
        } else {
            None
        };
        self.backend(desired.as_ref())
    }
}

/// The embedded database a local state file last described, if it still exists. A state that
/// cannot be read is reported when it is loaded, not here.
fn recorded_embedded_database(state_file: &Path) -> Option<PathBuf> {
    #[derive(serde::Deserialize)]
    struct Recorded {
        target: String,
    }
    let text = std::fs::read(state_file).ok()?;
    let recorded: Recorded = serde_json::from_slice(&text).ok()?;
    Target::embedded_database(&recorded.target).filter(|database| database.exists())
}

/// Opens the backend `settings` name.
pub(crate) fn open_backend(settings: StateSettings) -> miette::Result<Arc<dyn StateBackend>> {
    Ok(match settings {
        StateSettings::Local(path) => Arc::new(LocalBackend::new(path)),
        StateSettings::Http(settings) => {
            Arc::new(HttpBackend::new(*settings).map_err(miette::Report::new)?)
        }
    })
}

/// Opens the control plane `target` names; `created_by` is this user at this host.
pub(crate) async fn connect(target: &Target) -> miette::Result<Connection> {
    Ok(target.connect(&crate::local::user_and_host()).await?)
}

/// Takes the state lock, printing who holds it while waiting.
pub(crate) async fn lock(
    backend: &dyn StateBackend,
    operation: &str,
    args: &LockArgs,
) -> miette::Result<LockHandle> {
    lock_telling_waits(backend, operation, args, &mut |holder| {
        eprintln!("Waiting for the state lock held by {holder}...");
    })
    .await
}

/// Takes the state lock, calling `waiting` with the holder each time a new one is seen while
/// waiting.
pub(crate) async fn lock_telling_waits(
    backend: &dyn StateBackend,
    operation: &str,
    args: &LockArgs,
    waiting: &mut (dyn FnMut(&str) + Send),
) -> miette::Result<LockHandle> {
    let info = LockInfo::new(operation, backend.describe());
    let mut last_holder: Option<String> = None;
    let started = std::time::Instant::now();
    tracing::debug!(backend = %backend.describe(), operation, "taking the state lock");
    let handle = lock_with_timeout(backend, info, args.lock_timeout, |holder| {
        let holder = holder.map_or_else(|| "another process".to_owned(), ToString::to_string);
        if last_holder.as_ref() != Some(&holder) {
            tracing::debug!(%holder, "the state lock is held; waiting");
            waiting(&holder);
            last_holder = Some(holder);
        }
    })
    .await
    .map_err(miette::Report::new)?;
    tracing::debug!(
        lock_id = %handle.info().id,
        waited_ms = started.elapsed().as_millis() as u64,
        "state lock taken"
    );
    Ok(handle)
}

/// Releases the lock; a failure is reported but does not change the command's outcome.
pub(crate) async fn unlock(backend: &dyn StateBackend, handle: LockHandle) {
    let id = handle_id(&handle);
    let result = backend.unlock(handle).await;
    if result.is_ok() {
        tracing::debug!(lock_id = %id, "state lock released");
    }
    if let Err(error) = result {
        eprintln!(
            "warning: could not release the state lock: {}\nhint: `envform force-unlock {id}` releases it",
            error_chain(&error)
        );
    }
}

fn handle_id(handle: &LockHandle) -> String {
    handle.info().id.clone()
}

/// Loads state, or an empty one for `target` when none was written; a state written for another
/// control plane is refused unless `moved`.
pub(crate) async fn load_state(
    backend: &dyn StateBackend,
    target: &str,
    moved: bool,
) -> miette::Result<State> {
    let started = std::time::Instant::now();
    let stored = backend.load().await.map_err(miette::Report::new)?;
    super::output::phase_done("read state", started);
    State::for_target(stored, target, moved).map_err(miette::Report::new)
}

/// Reads a plan saved with `envform plan --out`.
pub(crate) fn read_saved(path: &Path) -> miette::Result<crate::plan::SavedPlan> {
    let text = read_text(path)?;
    crate::plan::SavedPlan::from_text(&text).map_err(|error| {
        miette::Report::new(error).wrap_err(format!("cannot use {}", path.display()))
    })
}

/// The path an optional plan file argument names, if it exists as a file.
pub(crate) fn read_text(path: &Path) -> miette::Result<String> {
    std::fs::read_to_string(path)
        .into_diagnostic()
        .map_err(|error| miette::miette!("cannot read {}: {error}", path.display()))
}
