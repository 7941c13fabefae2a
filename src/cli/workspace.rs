//! The reconcile commands' shared setup: which desired files, which state backend, which target.
//! Precedence: flags, then environment variables, then the file's `state:` block, then defaults.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use miette::IntoDiagnostic;
use secrecy::SecretString;

use super::settings::{error_chain, parse_duration};
use crate::desired::{Desired, StateBackendConfig};
use crate::state::{
    HttpBackend, HttpBackendSettings, LocalBackend, LockHandle, LockInfo, PASSWORD_VARIABLES,
    STATE_DIRECTORY, STATE_FILE, State, StateBackend, StateError, lock_with_timeout,
};

/// Where the desired state is.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DesiredArgs {
    /// A desired-state file, or a directory of *.yaml / *.yml files.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "envform.yaml",
        value_name = "PATH"
    )]
    pub(crate) path: PathBuf,
}

impl DesiredArgs {
    /// Reads and validates the desired state.
    pub(crate) fn load(&self) -> miette::Result<Desired> {
        crate::desired::load(&self.path).map_err(miette::Report::new)
    }

    /// The directory the local state lives in: beside the file, or in the directory.
    fn config_directory(&self) -> PathBuf {
        if self.path.is_dir() {
            return self.path.clone();
        }
        match self.path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

/// Where state is kept (overrides the file's `state:` block).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StateArgs {
    /// Local state file (default: .envform/state.json beside the desired-state file).
    #[arg(
        long = "state",
        env = "ENVFORM_STATE_PATH",
        value_name = "PATH",
        conflicts_with = "state_address"
    )]
    pub(crate) state_path: Option<PathBuf>,
    /// HTTP state backend address (Terraform's HTTP backend protocol).
    #[arg(long, env = "ENVFORM_STATE_ADDRESS", value_name = "URL")]
    pub(crate) state_address: Option<String>,
    /// HTTP backend lock address (default: the state address).
    #[arg(long, env = "ENVFORM_STATE_LOCK_ADDRESS", value_name = "URL")]
    pub(crate) state_lock_address: Option<String>,
    /// HTTP backend unlock address (default: the state address).
    #[arg(long, env = "ENVFORM_STATE_UNLOCK_ADDRESS", value_name = "URL")]
    pub(crate) state_unlock_address: Option<String>,
    /// HTTP backend lock method (default LOCK; GitLab: POST).
    #[arg(long, env = "ENVFORM_STATE_LOCK_METHOD", value_name = "METHOD")]
    pub(crate) state_lock_method: Option<String>,
    /// HTTP backend unlock method (default UNLOCK; GitLab: DELETE).
    #[arg(long, env = "ENVFORM_STATE_UNLOCK_METHOD", value_name = "METHOD")]
    pub(crate) state_unlock_method: Option<String>,
    /// HTTP backend basic-auth user (the password comes only from ENVFORM_STATE_PASSWORD or TF_HTTP_PASSWORD).
    #[arg(long, env = "ENVFORM_STATE_USERNAME", value_name = "USER")]
    pub(crate) state_username: Option<String>,
}

impl StateArgs {
    /// The backend these flags, the file's `state:` block and the defaults name.
    pub(crate) fn backend(
        &self,
        desired: Option<&Desired>,
        desired_args: &DesiredArgs,
    ) -> miette::Result<Arc<dyn StateBackend>> {
        if let Some(path) = self.local_path(desired, desired_args) {
            return Ok(Arc::new(LocalBackend::new(path)));
        }
        let mut settings = match desired.and_then(|desired| desired.state.as_ref()) {
            Some(StateBackendConfig::Http(config)) => {
                HttpBackendSettings::from_config(config, password())
            }
            // Not local and not in the file: `--state-address` names it, and sets it below.
            _ => HttpBackendSettings {
                password: password(),
                ..HttpBackendSettings::new(String::new())
            },
        };
        if let Some(address) = &self.state_address {
            settings.address.clone_from(address);
        }
        let overrides = [
            (&self.state_lock_address, &mut settings.lock_address),
            (&self.state_unlock_address, &mut settings.unlock_address),
            (&self.state_username, &mut settings.username),
        ];
        for (flag, setting) in overrides {
            if flag.is_some() {
                setting.clone_from(flag);
            }
        }
        if let Some(method) = &self.state_lock_method {
            settings.lock_method = method.clone();
        }
        if let Some(method) = &self.state_unlock_method {
            settings.unlock_method = method.clone();
        }
        let backend = HttpBackend::new(settings).map_err(state_error)?;
        Ok(Arc::new(backend))
    }

    /// The local state file these flags, the file's `state:` block and the defaults name;
    /// `None` when they name an HTTP backend.
    pub(crate) fn local_path(
        &self,
        desired: Option<&Desired>,
        desired_args: &DesiredArgs,
    ) -> Option<PathBuf> {
        if let Some(path) = &self.state_path {
            return Some(path.clone());
        }
        if self.state_address.is_some() {
            return None;
        }
        match desired.and_then(|desired| desired.state.as_ref()) {
            Some(StateBackendConfig::Http(_)) => None,
            Some(StateBackendConfig::Local { path: Some(path) }) => {
                Some(desired_args.config_directory().join(path))
            }
            _ => Some(
                desired_args
                    .config_directory()
                    .join(STATE_DIRECTORY)
                    .join(STATE_FILE),
            ),
        }
    }
}

fn password() -> Option<SecretString> {
    PASSWORD_VARIABLES
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
        .map(SecretString::from)
}

/// Lock flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LockArgs {
    /// How long to wait for the state lock, e.g. 30s (0: fail at once).
    #[arg(long, default_value = "0s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) lock_timeout: Duration,
}

/// Takes the state lock, printing who holds it while waiting.
pub(crate) async fn lock(
    backend: &dyn StateBackend,
    operation: &str,
    args: &LockArgs,
) -> miette::Result<LockHandle> {
    let info = LockInfo::new(operation, backend.describe());
    let mut last_holder: Option<String> = None;
    lock_with_timeout(backend, info, args.lock_timeout, |holder| {
        let holder = holder.map_or_else(|| "another process".to_owned(), ToString::to_string);
        if last_holder.as_ref() != Some(&holder) {
            eprintln!("Waiting for the state lock held by {holder}...");
            last_holder = Some(holder);
        }
    })
    .await
    .map_err(state_error)
}

/// Releases the lock; a failure is reported but does not change the command's outcome.
pub(crate) async fn unlock(backend: &dyn StateBackend, handle: LockHandle) {
    let id = handle_id(&handle);
    if let Err(error) = backend.unlock(handle).await {
        eprintln!(
            "warning: could not release the state lock: {}\nhint: `envform force-unlock {id}` releases it",
            error_chain(&error)
        );
    }
}

fn handle_id(handle: &LockHandle) -> String {
    handle.info().id.clone()
}

/// Loads state, or an empty one for `target` when none was written.
pub(crate) async fn load_state(backend: &dyn StateBackend, target: &str) -> miette::Result<State> {
    let stored = backend.load().await.map_err(state_error)?;
    Ok(for_target(stored, backend, target))
}

/// The state as loaded from `backend`, or an empty one for `target` when none was written. State
/// last written for another target is used with a warning (a server that moved keeps its state; a
/// wrong one shows as re-creates in the plan), and takes the new target with its next write.
pub(crate) fn for_target(stored: Option<State>, backend: &dyn StateBackend, target: &str) -> State {
    match stored {
        None => State::empty(target),
        Some(mut state) => {
            if !state.resources.is_empty() && !same_target(&state.target, target) {
                eprintln!(
                    "warning: {} was last written for {}; this run targets {}. If that is not the \
                     same control plane, the plan shows every environment as re-created: stop and \
                     check --api-url.",
                    backend.describe(),
                    state.target,
                    target
                );
            }
            state.target = target.to_owned();
            state
        }
    }
}

fn same_target(recorded: &str, target: &str) -> bool {
    let normalize = |text: &str| text.trim_end_matches('/').to_owned();
    normalize(recorded) == normalize(target)
}

/// A state error as a report with a code and, for a held lock, the holder.
pub(crate) fn state_error(error: StateError) -> miette::Report {
    let help = match &error {
        StateError::Locked { .. } | StateError::LockTimeout { .. } => {
            "wait with --lock-timeout, or if the holder is gone, `envform force-unlock ID`"
        }
        _ => "see the state backend's message above",
    };
    miette::miette!(
        code = "envform::state::error",
        help = help,
        "{}",
        error_chain(&error)
    )
}

/// The path an optional plan file argument names, if it exists as a file.
pub(crate) fn read_text(path: &Path) -> miette::Result<String> {
    std::fs::read_to_string(path)
        .into_diagnostic()
        .map_err(|error| miette::miette!("cannot read {}: {error}", path.display()))
}
