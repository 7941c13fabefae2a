//! A throwaway PostgreSQL cluster for the tests that run `envform serve` on PostgreSQL: one per
//! run of the test binary, started on first use from the system's PostgreSQL binaries (`initdb`
//! on PATH, else Debian's /usr/lib/postgresql/*/bin), in a temporary directory, on a free loopback
//! port, as the `postgres` account when the tests run as root (PostgreSQL refuses to run as
//! root). Each test gets a fresh database of its own ([`database`]).
//!
//! A watcher process stops the cluster and removes its directory once the test binary exits, so
//! no cluster outlives the run even when a test panics. Without PostgreSQL installed the tests
//! fail, with a message saying what to install: they never skip themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A running cluster.
pub struct Cluster {
    port: u16,
    bin: PathBuf,
    root: PathBuf,
    as_postgres: bool,
}

/// A database of its own for one test.
pub struct Database {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    /// Its name.
    pub name: String,
    port: u16,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);
static NEXT_CLUSTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty database of the run's shared cluster (started on the first call).
pub fn database() -> Database {
    CLUSTER.get_or_init(|| Cluster::start("shared")).database()
}

/// A cluster of its own, for a test that stops and starts PostgreSQL; stopped and removed when
/// the test binary exits, like the shared one.
pub fn private_cluster() -> Cluster {
    Cluster::start(&format!(
        "private-{}",
        NEXT_CLUSTER.fetch_add(1, Ordering::SeqCst)
    ))
}

impl Database {
    /// Runs `sql` in this database, e.g. to look at what the servers wrote; returns the rows as
    /// text, one line each, columns separated by `|`.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let url = format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.name);
        run_sql_on_a_thread(url, sql)
    }
}

impl Cluster {
    /// A fresh, empty database in this cluster.
    pub fn database(&self) -> Database {
        let name = format!(
            "test_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::SeqCst)
        );
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        Database {
            url: format!("postgres://postgres@127.0.0.1:{}/{name}", self.port),
            name,
            port: self.port,
        }
    }

    /// Stops PostgreSQL at once (connections are cut, as in a crash or a restart).
    pub fn stop(&self) {
        let data = self.root.join("data").display().to_string();
        run(
            self.as_postgres,
            &self.bin.join("pg_ctl"),
            &["-D", &data, "-m", "fast", "-w", "stop"],
        );
    }

    /// Starts the stopped PostgreSQL again, on the same port.
    pub fn start_again(&self) {
        assert!(
            self.pg_ctl_start(self.port),
            "PostgreSQL did not start again; its log:\n{}",
            std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default()
        );
    }

    fn pg_ctl_start(&self, port: u16) -> bool {
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.root.display()
        );
        command(self.as_postgres, &self.bin.join("pg_ctl"))
            .args([
                "-D",
                &self.root.join("data").display().to_string(),
                "-o",
                &options,
            ])
            .args(["-l", &self.root.join("postgres.log").display().to_string()])
            .args(["-w", "-t", "60", "start"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run pg_ctl start")
            .success()
    }

    fn start(label: &str) -> Cluster {
        let bin = binaries();
        let root = std::env::temp_dir().join(format!("envform-pg-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the cluster's directory");
        let as_postgres = running_as_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:", &root.display().to_string()])
                .status()
                .expect("run chown");
            assert!(
                status.success(),
                "cannot hand {} to postgres",
                root.display()
            );
        }
        let data = root.join("data");
        run(
            as_postgres,
            &bin.join("initdb"),
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        watch_and_clean_up(as_postgres, &bin, &root);
        let mut cluster = Cluster {
            port: 0,
            bin,
            root,
            as_postgres,
        };
        // A port free now may be taken before PostgreSQL binds it: try a few.
        for _ in 0..5 {
            let port = free_port();
            if cluster.pg_ctl_start(port) {
                cluster.port = port;
                return cluster;
            }
        }
        panic!(
            "PostgreSQL did not start; its log:\n{}",
            std::fs::read_to_string(cluster.root.join("postgres.log")).unwrap_or_default()
        );
    }

    /// Runs `sql` in `database` of this cluster.
    fn sql(&self, database: &str, sql: &str) -> Vec<String> {
        let url = format!("postgres://postgres@127.0.0.1:{}/{database}", self.port);
        run_sql_on_a_thread(url, sql)
    }
}

/// Runs `sql` through sqlx (no `psql` needed), on a thread of its own so that async tests can
/// call it too.
fn run_sql_on_a_thread(url: String, sql: &str) -> Vec<String> {
    let sql = sql.to_owned();
    std::thread::spawn(move || run_sql(&url, &sql))
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn run_sql(url: &str, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let mut connection = sqlx::PgConnection::connect(url)
            .await
            .unwrap_or_else(|error| panic!("connect to {url}: {error}"));
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
        rows.iter()
            .map(|row| {
                (0..row.columns().len())
                    .map(|index| text_of(row, index))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    })
}

/// A column as text, whatever its type among those the tests read.
fn text_of(row: &sqlx::postgres::PgRow, index: usize) -> String {
    use sqlx::Row;
    if let Ok(value) = row.try_get::<Option<String>, _>(index) {
        return value.unwrap_or_default();
    }
    if let Ok(value) = row.try_get::<Option<i64>, _>(index) {
        return value.map(|value| value.to_string()).unwrap_or_default();
    }
    if let Ok(value) = row.try_get::<Option<i32>, _>(index) {
        return value.map(|value| value.to_string()).unwrap_or_default();
    }
    if let Ok(value) = row.try_get::<Option<bool>, _>(index) {
        return value.map(|value| value.to_string()).unwrap_or_default();
    }
    panic!("column {index} has a type the test fixture does not read")
}

/// The directory holding `initdb` and `pg_ctl`.
fn binaries() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            let mut versions: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|entry| entry.path().join("bin"))
                .collect();
            // The newest first.
            versions.sort();
            versions.reverse();
            versions
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .unwrap_or_else(|| {
            panic!(
                "PostgreSQL's server binaries (initdb, pg_ctl) are not installed: the PostgreSQL \
                 tests need them. Install them (Debian: `apt-get install postgresql`) or put \
                 their directory on PATH."
            )
        })
}

fn running_as_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// `program`, run as `postgres` when the tests run as root.
fn command(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(as_postgres: bool, program: &Path, args: &[&str]) {
    let output = command(as_postgres, program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {}: {error}", program.display()));
    assert!(
        output.status.success(),
        "{} failed: {}",
        program.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts a detached shell that waits for this process to exit, then stops the cluster at once
/// and removes its directory. Its output goes nowhere: the test harness must not wait for it.
fn watch_and_clean_up(as_postgres: bool, bin: &Path, root: &Path) {
    let runner = if as_postgres {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
         {runner}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{root}'",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = root.join("data").display(),
        root = root.display(),
    );
    // `setsid -f` forks the watcher off and returns at once.
    let status = Command::new("setsid")
        .args(["-f", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("start the cluster's watcher");
    assert!(status.success(), "cannot start the cluster's watcher");
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// How long to wait at most for something the replicas do in the background.
pub const SETTLE: Duration = Duration::from_secs(20);
