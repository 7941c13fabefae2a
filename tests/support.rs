//! Shared fixtures: a real `envform serve` process on an ephemeral port, and `envform` commands
//! isolated from the caller's environment.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use envform::api::{ClientConfig, ControlPlaneClient};

/// Path of the binary under test.
pub fn envform_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_envform"))
}

/// An `envform` command run in `dir`, with no inherited configuration.
pub fn envform(dir: &Path) -> assert_cmd::Command {
    let mut command = assert_cmd::Command::new(envform_bin());
    command
        .current_dir(dir)
        .env_remove("KUBIYA_API_KEY")
        .env_remove("KUBIYA_CONTROL_PLANE_URL")
        .env_remove("ENVFORM_API_KEYS")
        .env_remove("ENVFORM_EMBEDDED_DB")
        .env_remove("ENVFORM_LOG")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120));
    command
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// A running `envform serve`; killed when dropped.
pub struct Server {
    child: Child,
    log_path: PathBuf,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The database file.
    pub db: PathBuf,
    args: Vec<String>,
}

/// API key of organization `org-a` in servers started by [`Server::start`].
pub const KEY_A: &str = "test-key-a";
/// API key of organization `org-b`.
pub const KEY_B: &str = "test-key-b";

impl Server {
    /// Starts a server on 127.0.0.1:0 with `db`, keys for `org-a` and `org-b`, and `extra` flags.
    pub fn start(db: &Path, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "-v".into(),
            "serve".into(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--db".into(),
            db.display().to_string(),
            "--api-key".into(),
            format!("{KEY_A}=org-a"),
            "--api-key".into(),
            format!("{KEY_B}=org-b"),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        Self::spawn(db, args)
    }

    fn spawn(db: &Path, args: Vec<String>) -> Server {
        let log_path = db.with_extension(format!("{}.log", std::process::id()));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("server log file");
        let mut child = Command::new(envform_bin())
            .args(&args)
            .env_remove("ENVFORM_API_KEYS")
            .env_remove("ENVFORM_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
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
            .filter(|url| url.starts_with("http://127.0.0.1:"))
            .map(str::to_owned);
        let Some(url) = url else {
            let _ = child.kill();
            panic!(
                "envform serve did not start (first line {line:?}); its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        };
        Server {
            child,
            log_path,
            url,
            db: db.to_owned(),
            args,
        }
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
    pub fn live_environments(&self, dir: &Path) -> std::collections::BTreeMap<String, String> {
        let output = self
            .envform(dir)
            .args(["env", "list", "-o", "json"])
            .output()
            .expect("run envform env list");
        assert!(output.status.success(), "{output:?}");
        let list: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("env list prints JSON");
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

    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// An SDK client for `key`, with short retry delays.
    pub fn client(&self, key: &str) -> ControlPlaneClient {
        let config = ClientConfig {
            base_url: self.url.clone(),
            retry_base_delay: Duration::from_millis(10),
            retry_max_delay: Duration::from_secs(2),
            request_timeout: Duration::from_secs(20),
            ..ClientConfig::new(key.to_owned())
        };
        ControlPlaneClient::with_config(config).expect("client")
    }

    /// Stops the server (SIGKILL) and starts it again on the same database and flags.
    pub fn restart(mut self) -> Server {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let args = std::mem::take(&mut self.args);
        let db = self.db.clone();
        Self::spawn(&db, args)
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

    /// Stops the server gracefully (SIGTERM, which must succeed) and starts it again on the same
    /// database and flags.
    pub fn restart_gracefully(mut self) -> Server {
        let status = self.terminate();
        assert!(
            status.success(),
            "envform serve exited with {status} on SIGTERM"
        );
        let args = std::mem::take(&mut self.args);
        let db = self.db.clone();
        Self::spawn(&db, args)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
