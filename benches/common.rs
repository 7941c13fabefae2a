//! What the reconciler benchmarks share: an `envform serve` child process on a fresh database,
//! an SDK client for it, medians and a peak-memory probe for child processes.
//!
//! Included by each benchmark with `#[path = "common.rs"] mod common;`; not every benchmark uses
//! every item, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use envform::api::{ClientConfig, ControlPlaneClient};

/// The API key the server accepts.
pub const API_KEY: &str = "bench-key";

/// The organization that key acts for.
pub const ORGANIZATION: &str = "bench";

/// The `envform` binary built with the benchmark (cargo builds bin targets for benchmarks).
pub fn envform_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_envform"))
}

/// Whether the benchmark was started with `--quick` (smaller sizes, for a smoke run).
pub fn quick() -> bool {
    std::env::args().any(|argument| argument == "--quick")
}

/// `envform serve` running as a child process; killed when dropped.
pub struct ServeProcess {
    child: Child,
    url: String,
    database: PathBuf,
}

impl ServeProcess {
    /// Starts `envform serve` on `127.0.0.1:0` with a new database in `directory`, plus `extra`
    /// flags, and waits for the line that announces its address.
    pub fn start(directory: &Path, extra: &[&str]) -> Self {
        let database = directory.join("serve.db");
        let mut child = Command::new(envform_binary())
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--api-key"])
            .arg(format!("{API_KEY}={ORGANIZATION}"))
            .arg("--db")
            .arg(&database)
            .args(extra)
            // One log line per request would cost the server more than the benchmark measures.
            .env("ENVFORM_LOG", "warn")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", envform_binary().display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's first line");
        let url = line
            .trim()
            .strip_prefix("envform serve listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from envform serve: {line:?}"))
            .to_owned();
        Self {
            child,
            url,
            database,
        }
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The server's process id, for reading its memory.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_kib(&self) -> u64 {
        read_peak_kib(Path::new(&format!("/proc/{}/status", self.child.id()))).unwrap_or(0)
    }

    /// The CPU time, user and system, the server has used so far (`/proc/PID/stat`, in the
    /// kernel's clock ticks).
    pub fn cpu(&self) -> Duration {
        let text =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // The fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = text
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks = |index: usize| {
            fields
                .get(index)
                .and_then(|value| value.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // utime and stime, fields 14 and 15 of the line, are 11 and 12 (from 0) after the name.
        // SAFETY: `sysconf` reads a constant of the system.
        let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .unwrap_or(100)
            .max(1);
        Duration::from_micros((ticks(11) + ticks(12)) * 1_000_000 / per_second)
    }

    /// The server's SQLite database file.
    pub fn database(&self) -> PathBuf {
        self.database.clone()
    }

    /// An SDK client for this server, with a timeout long enough for large lists.
    pub fn client(&self) -> ControlPlaneClient {
        ControlPlaneClient::with_config(ClientConfig {
            base_url: self.url.clone(),
            request_timeout: Duration::from_secs(300),
            ..ClientConfig::new(API_KEY)
        })
        .expect("client")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The median of `samples` (the upper one for an even count).
pub fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted[sorted.len() / 2]
}

/// Runs `work` once to warm up, then `runs` times; returns the median and the last result.
pub fn measure<T>(runs: usize, mut work: impl FnMut() -> T) -> (Duration, T) {
    let mut last = work();
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let result = work();
        samples.push(started.elapsed());
        // The previous result is freed outside the timed part.
        last = result;
    }
    (median(&samples), last)
}

/// The name of the bench fleet's environment `index`.
pub fn fleet_name(index: usize) -> String {
    format!("env-{index:06}")
}

/// One desired-state file of the bench fleet with the environments in `indexes`, each at
/// `revision(index)` (from 1; a later one changes its description and `max_workers`) and, with
/// `chain`, each but every `chain`-th depending on the one before it.
pub fn fleet_text(
    indexes: std::ops::Range<usize>,
    revision: impl Fn(usize) -> usize,
    chain: Option<usize>,
) -> String {
    use std::fmt::Write as _;
    let mut text = String::from("version: 1\nenvironments:\n");
    for index in indexes {
        let revision = revision(index);
        let _ = writeln!(text, "  - name: {}", fleet_name(index));
        let _ = writeln!(
            text,
            "    description: Environment {index} of the fleet, revision {revision}"
        );
        let _ = writeln!(
            text,
            "    configuration: {{max_workers: {}, timeout_seconds: {}}}",
            1 + index % 20 + (revision - 1) * 10,
            600 * (1 + index % 6)
        );
        let _ = writeln!(
            text,
            "    metadata: {{team: team-{:02}, stage: bench, shard: \"{:03}\"}}",
            index % 17,
            index % 100
        );
        if chain.is_some_and(|length| index % length != 0) {
            let _ = writeln!(text, "    depends_on: [{}]", fleet_name(index - 1));
        }
    }
    text
}

/// A duration in milliseconds, for tables.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// How a child process ran: its wall time and the peak resident memory it reached.
pub struct ChildRun {
    /// How it ended.
    pub status: ExitStatus,
    /// From spawn to exit.
    pub wall: Duration,
    /// The highest `VmHWM` (peak resident set) read from `/proc/PID/status`, in KiB.
    pub peak_kib: u64,
    /// The CPU time it used, user and system, on every thread.
    pub cpu: Duration,
}

/// Runs `command` to its end, polling the child's peak resident set size while it runs.
///
/// `VmHWM` only grows, so the last reading before exit is the peak up to that moment; polling
/// every millisecond leaves only the child's last instant unobserved.
pub fn run_measured(command: &mut Command) -> ChildRun {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn child");
    let status_path = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak_kib = 0;
    loop {
        if let Some(kib) = read_peak_kib(&status_path) {
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for child") {
            let wall = started.elapsed();
            return ChildRun {
                status,
                wall,
                peak_kib,
                cpu: children_cpu().saturating_sub(cpu_before),
            };
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The CPU time, user and system, of every child process this one has waited for.
fn children_cpu() -> Duration {
    // SAFETY: `getrusage` only writes the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec.unsigned_abs())
            + Duration::from_micros(value.tv_usec.unsigned_abs())
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// `VmHWM` of a `/proc/PID/status` file, in KiB; `None` once the process is gone.
fn read_peak_kib(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}
