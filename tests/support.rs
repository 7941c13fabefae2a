//! Shared fixtures: a real `envform serve` process on an ephemeral port ([`Server`]), `envform`
//! commands isolated from the caller's environment, and a [`Scenario`] (a temporary directory
//! with its own server, desired-state file and state file) for the reconciler's end-to-end tests.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use envform::api::{ClientConfig, ControlPlaneClient};
use serde_json::Value;
use tempfile::TempDir;

/// Path of the binary under test.
pub fn envform_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_envform"))
}

/// An `envform` process in `dir` with no inherited configuration, for tests that spawn it and
/// watch it run (see [`envform`] for one that is run to completion).
pub fn envform_process(dir: &Path) -> Command {
    let mut command = Command::new(envform_bin());
    command
        .current_dir(dir)
        .env_remove("KUBIYA_API_KEY")
        .env_remove("KUBIYA_CONTROL_PLANE_URL")
        .env_remove("ENVFORM_API_KEYS")
        .env_remove("ENVFORM_EMBEDDED_DB")
        .env_remove("ENVFORM_DATABASE_URL")
        .env_remove("ENVFORM_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// An `envform` command run in `dir`, with no inherited configuration.
pub fn envform(dir: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::from_std(envform_process(dir));
    command.timeout(Duration::from_secs(120));
    command
}

/// Every file below `dir`, in path order.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("read a directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// A state file's resources by name → id.
pub fn state_ids(state_file: &Path) -> BTreeMap<String, String> {
    read_state(state_file)["resources"]
        .as_object()
        .expect("state has resources")
        .iter()
        .map(|(name, resource)| {
            let id = resource["id"].as_str().expect("a resource id");
            (name.clone(), id.to_owned())
        })
        .collect()
}

/// A state file, parsed; with its journal replayed when one is left (after `kill -9`), as
/// envform reads it.
pub fn read_state(state_file: &Path) -> Value {
    let backend = envform::state::LocalBackend::new(state_file);
    if backend.journal_path().exists() {
        return serde_json::to_value(load_local_state(state_file)).expect("state as JSON");
    }
    let text = std::fs::read_to_string(state_file)
        .unwrap_or_else(|error| panic!("read {}: {error}", state_file.display()));
    serde_json::from_str(&text).expect("the state file is JSON")
}

/// The local state at `state_file` as envform loads it (document and journal), from any thread.
pub fn load_local_state(state_file: &Path) -> envform::state::State {
    let path = state_file.to_owned();
    // A thread of its own: the caller may be inside an async runtime already.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime
            .block_on(envform::state::StateBackend::load(
                &envform::state::LocalBackend::new(&path),
            ))
            .unwrap_or_else(|error| panic!("load {}: {error}", path.display()))
            .unwrap_or_else(|| panic!("no state at {}", path.display()))
    })
    .join()
    .expect("state reader")
}

// ---------------------------------------------------------------------------------------------
// A real `envform serve`.

/// API key of organization `org-a` in servers started with the default keys.
pub const KEY_A: &str = "test-key-a";
/// API key of organization `org-b`.
pub const KEY_B: &str = "test-key-b";

/// How an `envform serve` is started: its API keys, flags and environment. Made by
/// [`Server::options`].
#[derive(Clone)]
pub struct ServerOptions {
    keys: Vec<(String, String)>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    database_url: Option<String>,
    log: Option<PathBuf>,
    fd_limit: Option<u32>,
}

impl ServerOptions {
    /// Runs the server under `ulimit -n limit` (through `sh`), as on a host with few file
    /// descriptors.
    pub fn fd_limit(mut self, limit: u32) -> Self {
        self.fd_limit = Some(limit);
        self
    }

    /// Adds the key `key` of organization `org` (`--api-key KEY=ORG`).
    pub fn key(mut self, key: &str, org: &str) -> Self {
        self.keys.push((key.to_owned(), org.to_owned()));
        self
    }

    /// No `--api-key` flags at all, not even the default ones.
    pub fn without_keys(mut self) -> Self {
        self.keys.clear();
        self
    }

    /// Adds flags after the keys, e.g. `["--faults", "status=503"]`.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Serves from this PostgreSQL database (`--database-url`) instead of the SQLite file; the
    /// path given to [`ServerOptions::start`] then only places the server's log.
    pub fn postgres(mut self, database: &crate::postgres::Database) -> Self {
        self.database_url = Some(database.url.clone());
        self
    }

    /// Writes the server's log to `path` instead of beside the database (for a database on a
    /// disk the test fills).
    pub fn log_file(mut self, path: &Path) -> Self {
        self.log = Some(path.to_owned());
        self
    }

    /// Sets an environment variable of the server process.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server on 127.0.0.1:0 with the SQLite file `db`; panics when it does not start.
    pub fn start(self, db: &Path) -> Server {
        let (child, url) = self.spawn(db);
        Server {
            child,
            log_path: self.log_path(db),
            url,
            db: db.to_owned(),
            options: self,
        }
    }

    /// Runs the server with these options, expecting it to refuse to start; returns its output.
    pub fn refused(self, db: &Path) -> Output {
        let mut command = assert_cmd::Command::from_std(self.command(db));
        let output = command
            .timeout(Duration::from_secs(60))
            .output()
            .expect("run envform serve");
        assert!(
            !output.status.success(),
            "envform serve {:?} started",
            self.args
        );
        output
    }

    fn command(&self, db: &Path) -> Command {
        let mut command = match self.fd_limit {
            None => Command::new(envform_bin()),
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(envform_bin());
                shell
            }
        };
        command.args(["-v", "serve", "--addr", "127.0.0.1:0"]);
        match &self.database_url {
            Some(url) => command.args(["--database-url", url]),
            None => command.args(["--db", &db.display().to_string()]),
        };
        for (key, org) in &self.keys {
            command.arg("--api-key").arg(format!("{key}={org}"));
        }
        command
            .args(&self.args)
            .env_remove("ENVFORM_API_KEYS")
            .env_remove("ENVFORM_DATABASE_URL")
            .env_remove("ENVFORM_LOG")
            .env("NO_COLOR", "1")
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null());
        command
    }

    /// Spawns the server and waits for it to announce its URL.
    fn spawn(&self, db: &Path) -> (Child, String) {
        let log_path = self.log_path(db);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let mut child = self
            .command(db)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn envform serve");
        let stdout = child.stdout.take().expect("server stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = sender.send(line);
            // Keep draining so the server never blocks on stdout.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_default();
        let url = line
            .trim()
            .strip_prefix("envform serve listening on ")
            .filter(|url| {
                url.starts_with("http://127.0.0.1:") || url.starts_with("https://127.0.0.1:")
            })
            .map(str::to_owned);
        let Some(url) = url else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "envform serve did not start (first line {line:?}); its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        };
        (child, url)
    }
}

impl ServerOptions {
    /// The server's log file: the one given to [`ServerOptions::log_file`], else beside the
    /// database, one per test process (appended to across restarts).
    fn log_path(&self, db: &Path) -> PathBuf {
        self.log
            .clone()
            .unwrap_or_else(|| db.with_extension(format!("{}.log", std::process::id())))
    }
}

/// A running `envform serve` on 127.0.0.1 with a SQLite file; killed when dropped.
pub struct Server {
    child: Child,
    log_path: PathBuf,
    /// Base URL, e.g. `http://127.0.0.1:41234`; changes on a restart.
    pub url: String,
    /// The database file.
    pub db: PathBuf,
    options: ServerOptions,
}

impl Server {
    /// Options with keys for `org-a` ([`KEY_A`]) and `org-b` ([`KEY_B`]) and no other flag.
    pub fn options() -> ServerOptions {
        ServerOptions {
            keys: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            database_url: None,
            log: None,
            fd_limit: None,
        }
        .key(KEY_A, "org-a")
        .key(KEY_B, "org-b")
    }

    /// Starts a server on 127.0.0.1:0 with `db`, keys for `org-a` and `org-b`, and `extra` flags.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        Self::options().args(extra).start(db)
    }

    /// The server's request log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// How many `method` requests to exactly `path` the server has answered so far.
    pub fn requests(&self, method: &str, path: &str) -> usize {
        self.log()
            .lines()
            .filter(|line| {
                line.contains(&format!("method={method} "))
                    && line.contains(&format!("path={path} "))
            })
            .count()
    }

    /// Organization A's live environments by name → id (with `default`), through the binary.
    pub fn live_environments(&self, dir: &Path) -> BTreeMap<String, String> {
        let output = self
            .envform(dir)
            .args(["env", "list", "-o", "json"])
            .output()
            .expect("run envform env list");
        assert!(output.status.success(), "{output:?}");
        let list: Value = serde_json::from_slice(&output.stdout).expect("env list prints JSON");
        list.as_array()
            .expect("a JSON array")
            .iter()
            .map(|env| {
                (
                    env["name"].as_str().unwrap_or_default().to_owned(),
                    env["id"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// An `envform` command in `dir` aimed at this server with organization A's key.
    pub fn envform(&self, dir: &Path) -> assert_cmd::Command {
        let mut command = envform(dir);
        command
            .env("KUBIYA_CONTROL_PLANE_URL", &self.url)
            .env("KUBIYA_API_KEY", KEY_A);
        command
    }

    /// An `envform` process in `dir` aimed at this server with organization A's key, to spawn.
    pub fn envform_process(&self, dir: &Path) -> Command {
        let mut command = envform_process(dir);
        command
            .env("KUBIYA_CONTROL_PLANE_URL", &self.url)
            .env("KUBIYA_API_KEY", KEY_A);
        command
    }

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An SDK client for `key`, with short retry delays.
    pub fn client(&self, key: &str) -> ControlPlaneClient {
        sdk_client(&self.url, key)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `kill -9`: stops the server at once, mid-write or not, and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for envform serve") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "envform serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the stopped server again on the same database, options and log (on a new port).
    pub fn start_again(&mut self) {
        assert!(
            self.child.try_wait().expect("poll envform serve").is_some(),
            "envform serve is still running: stop it first"
        );
        let (child, url) = self.options.spawn(&self.db);
        self.child = child;
        self.url = url;
    }

    /// `kill -9`, then starts again on the same database and options.
    pub fn restart_after_kill(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Stops the server gracefully (SIGTERM, which must succeed), then starts again on the same
    /// database and options.
    pub fn restart_gracefully(&mut self) {
        let status = self.terminate();
        assert!(
            status.success(),
            "envform serve exited with {status} on SIGTERM"
        );
        self.start_again();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// A scenario of the reconciler.

/// A fresh temporary directory with its own `envform serve`: the place an end-to-end test writes
/// its desired-state file, runs `envform plan | apply` and looks at live and state.
///
/// By default plan and apply find `envform.yaml` and `.envform/state.json` in the directory by
/// themselves; [`Scenario::with_file`] and [`Scenario::with_state`] name them with `-f` and
/// `--state` instead.
pub struct Scenario {
    /// The server, on `serve.db` in the directory.
    pub server: Server,
    file: Option<PathBuf>,
    state: Option<PathBuf>,
    dir: TempDir,
}

impl Scenario {
    /// A scenario whose server has the default options.
    pub fn new() -> Scenario {
        Self::with(Server::options())
    }

    /// A scenario whose server is started with `options`.
    pub fn with(options: ServerOptions) -> Scenario {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = options.start(&dir.path().join("serve.db"));
        Scenario {
            server,
            file: None,
            state: None,
            dir,
        }
    }

    /// Plan and apply read `file` (relative to the directory, or absolute), passed as `-f`.
    pub fn with_file(mut self, file: impl AsRef<Path>) -> Self {
        self.file = Some(self.dir.path().join(file));
        self
    }

    /// Plan and apply keep state in `state` (relative to the directory), passed as `--state`.
    pub fn with_state(mut self, state: impl AsRef<Path>) -> Self {
        self.state = Some(self.dir.path().join(state));
        self
    }

    /// The directory, where every command runs.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The desired-state file: the one given to [`Scenario::with_file`], or `envform.yaml`.
    pub fn file(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| self.path().join("envform.yaml"))
    }

    /// The state file: the one given to [`Scenario::with_state`], or `.envform/state.json`.
    pub fn state_path(&self) -> PathBuf {
        self.state
            .clone()
            .unwrap_or_else(|| self.path().join(".envform/state.json"))
    }

    /// Writes the desired-state file.
    pub fn write(&self, yaml: &str) {
        std::fs::write(self.file(), yaml).expect("write the desired-state file");
    }

    /// Writes another file into the directory.
    pub fn write_file(&self, name: &str, text: &str) -> PathBuf {
        write_file(self.path(), name, text)
    }

    /// An `envform` command in the directory, aimed at the server.
    pub fn envform(&self) -> assert_cmd::Command {
        self.server.envform(self.path())
    }

    /// `envform plan` (with `-f` and `--state` when set); add flags and run it.
    pub fn plan(&self) -> assert_cmd::Command {
        let mut command = self.envform();
        command.arg("plan").args(self.path_flags());
        command
    }

    /// Saves a plan to `plan.json` with `envform plan --out`, which must succeed.
    pub fn save_plan(&self) {
        self.plan().args(["--out", "plan.json"]).assert().success();
    }

    /// The exit code of `envform plan --detailed-exitcode`: 0 no changes, 2 changes, 1 error.
    pub fn plan_exit_code(&self) -> i32 {
        let output = self
            .plan()
            .arg("--detailed-exitcode")
            .output()
            .expect("run envform plan");
        output
            .status
            .code()
            .unwrap_or_else(|| panic!("plan ended by a signal: {output:?}"))
    }

    /// `envform apply --auto-approve` (with `-f` and `--state` when set); add flags and run it.
    pub fn apply(&self) -> assert_cmd::Command {
        let mut command = self.envform();
        command
            .arg("apply")
            .args(self.path_flags())
            .arg("--auto-approve");
        command
    }

    /// Runs [`Scenario::apply`], asserts it succeeded and returns its stdout.
    pub fn apply_ok(&self) -> String {
        let output = self.apply().output().expect("run envform apply");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).expect("apply prints UTF-8")
    }

    /// `envform apply --auto-approve` (with `-f` and `--state` when set) as a process to spawn.
    pub fn apply_process(&self) -> Command {
        let mut command = self.server.envform_process(self.path());
        command
            .arg("apply")
            .args(self.path_flags())
            .arg("--auto-approve");
        command
    }

    /// Live environments by name → id (with `default`), through `envform env list -o json`.
    pub fn live(&self) -> BTreeMap<String, String> {
        self.server.live_environments(self.path())
    }

    /// The state document, parsed.
    pub fn state(&self) -> Value {
        read_state(&self.state_path())
    }

    /// State's resources by name → id.
    pub fn state_ids(&self) -> BTreeMap<String, String> {
        state_ids(&self.state_path())
    }

    /// Asserts that state and live agree: every state entry is live with the same id, and live
    /// holds exactly `expected` plus `default`, and state exactly `expected`.
    pub fn assert_converged(&self, expected: &[&str]) {
        let live = self.live();
        let state = self.state_ids();
        for (name, id) in &state {
            assert_eq!(
                live.get(name),
                Some(id),
                "state's `{name}` is not live with id {id}"
            );
        }
        let mut names: Vec<&str> = live.keys().map(String::as_str).collect();
        names.retain(|name| *name != "default");
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(names, expected, "live environments");
        assert_eq!(
            state.keys().map(String::as_str).collect::<Vec<_>>(),
            expected,
            "state entries"
        );
    }

    fn path_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(file) = &self.file {
            flags.extend(["-f".to_owned(), file.display().to_string()]);
        }
        if let Some(state) = &self.state {
            flags.extend(["--state".to_owned(), state.display().to_string()]);
        }
        flags
    }
}

/// An SDK client of the service at `base_url` for `key`, with short retry delays.
pub fn sdk_client(base_url: &str, key: &str) -> ControlPlaneClient {
    let config = ClientConfig {
        base_url: base_url.to_owned(),
        retry_base_delay: Duration::from_millis(10),
        retry_max_delay: Duration::from_secs(2),
        request_timeout: Duration::from_secs(20),
        ..ClientConfig::new(key.to_owned())
    };
    ControlPlaneClient::with_config(config).expect("client")
}

/// `envform worker start` for `environment` at `url`, its token in `ENVFORM_WORKER_TOKEN`, no
/// credentials from the test's own environment, and its stderr written to `log`.
pub fn worker_start_command(url: &str, token: &str, environment: &str, log: &Path) -> Command {
    let file = std::fs::File::create(log).expect("worker log");
    let mut command = Command::new(envform_bin());
    command
        .args(["worker", "start", "--environment", environment])
        .args(["--api-url", url])
        .env("ENVFORM_WORKER_TOKEN", token)
        .env_remove("KUBIYA_CONTROL_PLANE_URL")
        .env_remove("KUBIYA_API_KEY")
        .env_remove("ENVFORM_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(file));
    command
}
