//! Settings: the argument groups, environment variables and the desired file's `state:` block
//! resolved into what a command runs with. Precedence: flags, then environment variables (clap
//! reads the one a flag names), then the file's `state:` block, then defaults. Pure: nothing here
//! reads a file or opens a connection, so every rule is unit-tested below.

use std::path::{Path, PathBuf};

use secrecy::SecretString;

use super::args::{DesiredArgs, PlanningArgs, StateArgs, TargetArgs};
use crate::desired::StateBackendConfig;
use crate::plan::{DisruptionPolicy, PlanOptions};
use crate::state::{HttpBackendSettings, PASSWORD_VARIABLES, STATE_DIRECTORY, STATE_FILE};
use crate::target::{DEFAULT_EMBEDDED_DB, Target, TargetError};

/// The environment variables settings read beyond those clap reads for a flag.
pub(crate) trait Variables {
    /// The variable's value, when it is set and not empty.
    fn get(&self, name: &str) -> Option<String>;
}

/// The variables of this process.
pub(crate) struct ProcessVariables;

impl Variables for ProcessVariables {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|value| !value.is_empty())
    }
}

/// Where state is kept.
#[derive(Debug, Clone)]
pub(crate) enum StateSettings {
    /// A local file.
    Local(PathBuf),
    /// A server speaking Terraform's HTTP backend protocol.
    Http(Box<HttpBackendSettings>),
}

impl StateSettings {
    /// The local file, when state is local.
    pub(crate) fn local_path(&self) -> Option<&Path> {
        match self {
            StateSettings::Local(path) => Some(path),
            StateSettings::Http(_) => None,
        }
    }
}

impl TargetArgs {
    /// The control plane these flags name.
    pub(crate) fn resolve(&self) -> Result<Target, TargetError> {
        self.resolve_with(None)
    }

    /// The control plane these flags name; without `--embedded-db`, the embedded database is
    /// `recorded` (the one the configuration's state last described), else the default.
    pub(crate) fn resolve_with(&self, recorded: Option<PathBuf>) -> Result<Target, TargetError> {
        let embedded_db = self
            .embedded_db
            .clone()
            .or(recorded)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_EMBEDDED_DB));
        Target::new(
            self.api_url.clone(),
            self.api_key.clone(),
            embedded_db,
            self.request_timeout,
        )
    }
}

impl DesiredArgs {
    /// The paths `-f` names, else `envform.yaml`.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        if self.paths.is_empty() {
            vec![crate::desired::default_path()]
        } else {
            self.paths.clone()
        }
    }

    /// The directory the configuration's relative paths (state, the embedded database) start
    /// from: the first path's, which is that directory or the one the file is in.
    /// `is_directory` says which the first path is (the caller looks).
    pub(crate) fn config_directory(&self, is_directory: bool) -> PathBuf {
        let first = self
            .paths
            .first()
            .cloned()
            .unwrap_or_else(crate::desired::default_path);
        if is_directory {
            return first;
        }
        match first.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        }
    }
}

impl StateArgs {
    /// Where state is: the flags, else the file's `state:` block (`block`), else
    /// `.envform/state.json` in `config_directory`. The HTTP password comes only from
    /// [`PASSWORD_VARIABLES`], never from a flag or the file.
    pub(crate) fn resolve(
        &self,
        config_directory: &Path,
        block: Option<&StateBackendConfig>,
        variables: &dyn Variables,
    ) -> StateSettings {
        if let Some(path) = &self.state_path {
            return StateSettings::Local(path.clone());
        }
        let http_block = match block {
            Some(StateBackendConfig::Http(config)) => Some(config),
            Some(StateBackendConfig::Local { path }) if self.state_address.is_none() => {
                let path = path.as_deref().map_or_else(
                    || config_directory.join(STATE_DIRECTORY).join(STATE_FILE),
                    |path| config_directory.join(path),
                );
                return StateSettings::Local(path);
            }
            _ => None,
        };
        if http_block.is_none() && self.state_address.is_none() {
            return StateSettings::Local(config_directory.join(STATE_DIRECTORY).join(STATE_FILE));
        }
        let password = PASSWORD_VARIABLES
            .iter()
            .find_map(|name| variables.get(name))
            .map(SecretString::from);
        let mut settings = match http_block {
            Some(config) => HttpBackendSettings::from_config(config, password),
            // `--state-address` names it, and sets it below.
            None => HttpBackendSettings {
                password,
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
            settings.lock_method.clone_from(method);
        }
        if let Some(method) = &self.state_unlock_method {
            settings.unlock_method.clone_from(method);
        }
        StateSettings::Http(Box::new(settings))
    }
}

impl PlanningArgs {
    /// The planner's options; without `--allow-disruption`, stopping workers gets `otherwise`.
    pub(crate) fn options(&self, otherwise: DisruptionPolicy) -> PlanOptions {
        PlanOptions {
            force: self.force,
            targets: self.targets.clone(),
            disruption: if self.allow_disruption {
                DisruptionPolicy::Allow
            } else {
                otherwise
            },
            adopt: self.adopt,
            destroy: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use secrecy::ExposeSecret;

    use super::*;
    use crate::model::HttpBackendConfig;

    impl Variables for BTreeMap<&str, &str> {
        fn get(&self, name: &str) -> Option<String> {
            self.get(name).map(|value| (*value).to_owned())
        }
    }

    fn state_args() -> StateArgs {
        StateArgs::default()
    }

    fn http_block() -> StateBackendConfig {
        StateBackendConfig::Http(HttpBackendConfig {
            address: "https://state.example/a".to_owned(),
            lock_method: Some("POST".to_owned()),
            username: Some("file-user".to_owned()),
            ..HttpBackendConfig::default()
        })
    }

    fn http(settings: StateSettings) -> HttpBackendSettings {
        match settings {
            StateSettings::Http(settings) => *settings,
            StateSettings::Local(path) => panic!("local {}", path.display()),
        }
    }

    #[test]
    fn local_state_is_beside_the_configuration_unless_a_flag_or_the_file_moves_it() {
        let none = BTreeMap::new();
        let here = Path::new("configs/team-a");
        let default = state_args().resolve(here, None, &none);
        assert_eq!(
            default.local_path(),
            Some(Path::new("configs/team-a/.envform/state.json"))
        );
        let block = StateBackendConfig::Local {
            path: Some("custom/state.json".into()),
        };
        let from_file = state_args().resolve(here, Some(&block), &none);
        assert_eq!(
            from_file.local_path(),
            Some(Path::new("configs/team-a/custom/state.json"))
        );
        let flag = StateArgs {
            state_path: Some("/tmp/elsewhere.json".into()),
            ..state_args()
        };
        // The flag wins over the file's block, even an HTTP one.
        let flagged = flag.resolve(here, Some(&http_block()), &none);
        assert_eq!(flagged.local_path(), Some(Path::new("/tmp/elsewhere.json")));
    }

    #[test]
    fn http_state_takes_the_file_then_the_flags_and_the_password_only_from_variables() {
        let variables = BTreeMap::from([
            ("TF_HTTP_PASSWORD", "second"),
            ("ENVFORM_STATE_PASSWORD", "first"),
        ]);
        let from_file = http(state_args().resolve(Path::new("."), Some(&http_block()), &variables));
        assert_eq!(from_file.address, "https://state.example/a");
        assert_eq!(from_file.lock_method, "POST");
        assert_eq!(from_file.unlock_method, "UNLOCK");
        assert_eq!(from_file.username.as_deref(), Some("file-user"));
        assert_eq!(
            from_file.password.as_ref().map(ExposeSecret::expose_secret),
            Some("first")
        );
        let flags = StateArgs {
            state_address: Some("https://state.example/b".to_owned()),
            state_username: Some("flag-user".to_owned()),
            state_unlock_method: Some("DELETE".to_owned()),
            ..state_args()
        };
        let overridden = http(flags.resolve(Path::new("."), Some(&http_block()), &BTreeMap::new()));
        assert_eq!(overridden.address, "https://state.example/b");
        assert_eq!(overridden.username.as_deref(), Some("flag-user"));
        assert_eq!(overridden.lock_method, "POST");
        assert_eq!(overridden.unlock_method, "DELETE");
        assert!(overridden.password.is_none());
    }

    #[test]
    fn a_state_address_flag_alone_names_an_http_backend() {
        let flags = StateArgs {
            state_address: Some("https://state.example/c".to_owned()),
            ..state_args()
        };
        let local_block = StateBackendConfig::Local { path: None };
        let settings = http(flags.resolve(Path::new("."), Some(&local_block), &BTreeMap::new()));
        assert_eq!(settings.address, "https://state.example/c");
        assert_eq!(settings.lock_method, "LOCK");
    }

    #[test]
    fn the_configuration_directory_is_the_directory_or_the_files_parent() {
        let file = DesiredArgs { paths: Vec::new() };
        assert_eq!(file.config_directory(false), PathBuf::from("."));
        let nested = DesiredArgs {
            paths: vec!["day1/environments/main.yaml".into(), "shared.yaml".into()],
        };
        assert_eq!(
            nested.config_directory(false),
            PathBuf::from("day1/environments")
        );
        let directory = DesiredArgs {
            paths: vec!["day1/environments".into()],
        };
        assert_eq!(
            directory.config_directory(true),
            PathBuf::from("day1/environments")
        );
    }

    #[test]
    fn a_url_needs_a_key_and_no_url_means_the_embedded_control_plane() {
        let args = TargetArgs {
            api_url: Some("https://cp.example/".to_owned()),
            api_key: None,
            embedded_db: None,
            request_timeout: Duration::from_secs(30),
        };
        assert!(matches!(
            args.resolve(),
            Err(TargetError::MissingApiKey { url }) if url == "https://cp.example"
        ));
        let embedded = TargetArgs {
            api_url: Some("  ".to_owned()),
            ..args
        };
        assert!(matches!(embedded.resolve(), Ok(Target::Embedded { .. })));
    }

    #[test]
    fn the_embedded_database_is_the_flag_then_the_recorded_one_then_the_default() {
        let database = |args: &TargetArgs, recorded: Option<&str>| match args
            .resolve_with(recorded.map(PathBuf::from))
        {
            Ok(Target::Embedded { db_path }) => db_path,
            other => panic!("not embedded: {other:?}"),
        };
        let mut args = TargetArgs {
            api_url: None,
            api_key: None,
            embedded_db: None,
            request_timeout: Duration::from_secs(30),
        };
        assert_eq!(
            database(&args, None),
            PathBuf::from(".envform/control-plane.db")
        );
        assert_eq!(
            database(&args, Some("/repo/.envform/control-plane.db")),
            PathBuf::from("/repo/.envform/control-plane.db")
        );
        args.embedded_db = Some("other.db".into());
        assert_eq!(
            database(&args, Some("/repo/.envform/control-plane.db")),
            PathBuf::from("other.db")
        );
    }

    #[test]
    fn disruption_is_allowed_by_the_flag_or_gets_the_commands_policy() {
        let args = PlanningArgs {
            targets: vec!["prod".to_owned()],
            force: true,
            allow_disruption: false,
            adopt: false,
        };
        let options = args.options(DisruptionPolicy::Warn);
        assert_eq!(options.disruption, DisruptionPolicy::Warn);
        assert!(options.force);
        assert_eq!(options.targets, ["prod"]);
        let allowed = PlanningArgs {
            allow_disruption: true,
            ..args
        };
        assert_eq!(
            allowed.options(DisruptionPolicy::Refuse).disruption,
            DisruptionPolicy::Allow
        );
    }
}
