//! Held state locks (docs/src/concepts/state.md): the [`LockHandle`] a holder keeps, the lease
//! renewal of a remote lock, and the OS file lock of local state.
//!
//! This is the only module that calls `std::fs::File::lock` and its relatives; `clippy.toml`
//! forbids them everywhere else. An OS file lock is released by the kernel when its holder dies,
//! which is why local state uses it, and keeping every call here keeps that property from being
//! lost by accident elsewhere (an early unlock, a lock taken on a file that is later replaced).

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::JoinHandle;

use super::{FencingToken, LockInfo, StateError};

/// A held state lock.
///
/// A local lock is released when its handle is dropped (and by the kernel if the process dies).
/// A remote lock is released only by [`StateBackend::unlock`]; dropping its handle stops renewing
/// its lease, if it has one.
#[derive(Debug)]
pub struct LockHandle {
    info: LockInfo,
    fencing_token: Option<FencingToken>,
    held: Held,
}

/// What keeps a lock held while its handle lives.
#[derive(Debug)]
pub(crate) enum Held {
    /// Nothing: the lock lives on a server, without a lease.
    Nothing,
    /// The OS lock on a local lock file.
    File(FileLock),
    /// A remote lock whose lease a background task renews.
    Lease(LeaseRenewal),
}

impl LockHandle {
    /// A handle for `info` with nothing to keep alive, for backends whose lock lives elsewhere.
    pub fn new(info: LockInfo) -> Self {
        Self {
            info,
            fencing_token: None,
            held: Held::Nothing,
        }
    }

    /// The same handle, with the fencing token its lock was granted with.
    pub fn with_fencing_token(mut self, token: FencingToken) -> Self {
        self.fencing_token = Some(token);
        self
    }

    /// A handle holding a local OS lock.
    pub(crate) fn holding_file(info: LockInfo, file_lock: FileLock) -> Self {
        Self {
            info,
            fencing_token: None,
            held: Held::File(file_lock),
        }
    }

    /// A handle whose remote lock is kept by renewing its lease.
    pub(crate) fn holding_lease(info: LockInfo, renewal: LeaseRenewal) -> Self {
        Self {
            info,
            fencing_token: None,
            held: Held::Lease(renewal),
        }
    }

    /// The lock's ID.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// The lock information as sent when it was taken.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// The fencing token the server granted, if it issues them.
    pub fn fencing_token(&self) -> Option<FencingToken> {
        self.fencing_token
    }

    /// Whether the server refused to renew the lock's lease: someone else may hold it now.
    pub fn is_lost(&self) -> bool {
        match &self.held {
            Held::Lease(renewal) => renewal.is_lost(),
            Held::Nothing | Held::File(_) => false,
        }
    }

    /// The local OS lock this handle holds, if any.
    pub(crate) fn file_lock(&self) -> Option<&FileLock> {
        match &self.held {
            Held::File(file_lock) => Some(file_lock),
            Held::Nothing | Held::Lease(_) => None,
        }
    }

    /// Takes the handle apart: its information and what kept it held.
    pub(crate) fn into_parts(self) -> (LockInfo, Held) {
        (self.info, self.held)
    }
}

/// An exclusive OS lock on a file, held until released or dropped, or until the process ends:
/// the kernel releases it then, so a killed envform never leaves local state locked.
///
/// The locked file is never replaced or deleted (a lock on a replaced file would protect
/// nothing); the state file beside it is what gets replaced.
#[derive(Debug)]
pub(crate) struct FileLock {
    file: File,
    path: PathBuf,
    /// Lock information written for display, removed before the lock is released.
    info_path: Option<PathBuf>,
    /// The lock log this hold is recorded in, with its lock ID.
    log: Option<(PathBuf, String)>,
    released: bool,
}

impl FileLock {
    /// Takes the lock on `path` (creating the file) unless someone holds it: `Ok(None)` then.
    ///
    /// Each call opens the file anew, so two handles in one process conflict like two processes.
    #[allow(clippy::disallowed_methods)]
    pub(crate) fn try_acquire(path: &Path) -> Result<Option<Self>, StateError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| StateError::io("open", path, source))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self {
                file,
                path: path.to_owned(),
                info_path: None,
                log: None,
                released: false,
            })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(source)) => Err(StateError::io("lock", path, source)),
        }
    }

    /// The locked file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes `info_path` when the lock is released, so its information does not outlive it.
    pub(crate) fn remove_on_release(&mut self, info_path: PathBuf) {
        self.info_path = Some(info_path);
    }

    /// Records this hold in the lock log at `log_path` (appended while the lock is held, so the
    /// log's lines for one holder are never interleaved with another's).
    pub(crate) fn log_to(&mut self, log_path: PathBuf, lock_id: String) -> Result<(), StateError> {
        append_lock_log(&log_path, LockLogEvent::Acquired, &lock_id)?;
        self.log = Some((log_path, lock_id));
        Ok(())
    }

    fn log_release(&self) -> Result<(), StateError> {
        match &self.log {
            Some((log_path, lock_id)) => append_lock_log(log_path, LockLogEvent::Released, lock_id),
            None => Ok(()),
        }
    }

    /// Releases the lock, reporting what went wrong (dropping releases it too, silently).
    pub(crate) fn release(mut self) -> Result<(), StateError> {
        self.released = true;
        self.remove_info()?;
        self.log_release()?;
        self.unlock()
            .map_err(|source| StateError::io("unlock", &self.path, source))
    }

    fn remove_info(&self) -> Result<(), StateError> {
        match &self.info_path {
            Some(info_path) => match std::fs::remove_file(info_path) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(source) => Err(StateError::io("remove", info_path, source)),
            },
            None => Ok(()),
        }
    }

    #[allow(clippy::disallowed_methods)]
    fn unlock(&self) -> io::Result<()> {
        self.file.unlock()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Err(error) = self.remove_info() {
            tracing::warn!(%error, "cannot remove the state lock information");
        }
        if let Err(error) = self.log_release() {
            tracing::warn!(%error, "cannot record the release in the state lock log");
        }
        // Closing the file right after releases the lock anyway; unlocking first keeps the
        // release independent of when the descriptor is closed.
        if let Err(error) = self.unlock() {
            tracing::warn!(path = %self.path.display(), %error, "cannot unlock the state lock file");
        }
    }
}

/// What a lock log line records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockLogEvent {
    Acquired,
    Released,
}

impl LockLogEvent {
    fn as_str(self) -> &'static str {
        match self {
            LockLogEvent::Acquired => "acquired",
            LockLogEvent::Released => "released",
        }
    }
}

/// Appends `<microseconds since the epoch> <event> <lock id> <process id>` to the lock log.
fn append_lock_log(path: &Path, event: LockLogEvent, lock_id: &str) -> Result<(), StateError> {
    use std::io::Write;
    let line = format!(
        "{} {} {} {}\n",
        jiff::Timestamp::now().as_microsecond(),
        event.as_str(),
        lock_id,
        std::process::id()
    );
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .map_err(|source| StateError::io("append to", path, source))
}

/// Checks a local lock log: every release belongs to the hold acquired just before it, so no two
/// holders overlapped (a holder killed before releasing leaves an acquire with no release, which
/// the next acquire closes). Returns the number of holds, or the first line that breaks the rule.
pub fn check_lock_log(text: &str) -> Result<usize, String> {
    let mut holder: Option<&str> = None;
    let mut holds = 0;
    for (number, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        let [_, event, lock_id, _] = fields[..] else {
            return Err(format!("line {}: malformed: {line}", number + 1));
        };
        match event {
            "acquired" => {
                holder = Some(lock_id);
                holds += 1;
            }
            "released" if holder == Some(lock_id) => holder = None,
            "released" => {
                return Err(format!(
                    "line {}: {lock_id} released while {} held the lock",
                    number + 1,
                    holder.unwrap_or("nobody")
                ));
            }
            _ => return Err(format!("line {}: unknown event: {line}", number + 1)),
        }
    }
    Ok(holds)
}

/// The background task renewing a remote lock's lease; stopped when dropped.
#[derive(Debug)]
pub(crate) struct LeaseRenewal {
    task: JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl LeaseRenewal {
    /// Wraps a running renewal `task`, which sets `lost` when the server refuses a renewal.
    pub(crate) fn new(task: JoinHandle<()>, lost: Arc<AtomicBool>) -> Self {
        Self { task, lost }
    }

    /// Whether the server refused to renew the lease.
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LeaseRenewal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use uuid::Uuid;

    use crate::state::LockGrant;

    #[test]
    fn lock_info_uses_terraform_json_names() {
        let info = LockInfo {
            id: "1234".to_owned(),
            operation: "apply".to_owned(),
            info: "extra".to_owned(),
            who: "alice@laptop".to_owned(),
            version: "0.1.0".to_owned(),
            created: "2026-01-02T03:04:05Z".parse().unwrap(),
            path: ".envform/state.json".to_owned(),
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ID": "1234",
                "Operation": "apply",
                "Info": "extra",
                "Who": "alice@laptop",
                "Version": "0.1.0",
                "Created": "2026-01-02T03:04:05Z",
                "Path": ".envform/state.json",
            })
        );
        let back: LockInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn lock_info_written_by_terraform_is_read() {
        // Terraform's Go encoder writes nanoseconds and an offset, and leaves fields empty.
        let text = r#"{"ID":"a-b","Operation":"OperationTypeApply","Info":"","Who":"bob@ci",
            "Version":"1.9.0","Created":"2026-03-04T05:06:07.123456789+02:00","Path":""}"#;
        let info: LockInfo = serde_json::from_str(text).unwrap();
        assert_eq!(info.id, "a-b");
        assert_eq!(info.who, "bob@ci");
        assert_eq!(
            info.created,
            "2026-03-04T03:06:07.123456789Z"
                .parse::<jiff::Timestamp>()
                .unwrap()
        );
        // Only an ID: the rest defaults rather than failing, so some holder is still shown.
        let sparse: LockInfo = serde_json::from_str(r#"{"ID":"only"}"#).unwrap();
        assert_eq!(sparse.id, "only");
        assert_eq!(sparse.created, jiff::Timestamp::UNIX_EPOCH);
    }

    #[test]
    fn new_lock_info_names_this_process() {
        let info = LockInfo::new("plan", "state.json").with_info("from a test");
        assert_eq!(info.operation, "plan");
        assert_eq!(info.path, "state.json");
        assert_eq!(info.info, "from a test");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert!(Uuid::parse_str(&info.id).is_ok(), "{}", info.id);
        assert!(info.who.contains('@'), "{}", info.who);
        assert_ne!(LockInfo::new("plan", "x").id, LockInfo::new("plan", "x").id);
    }

    #[test]
    fn lock_info_displays_on_one_line() {
        let info = LockInfo {
            id: "1234".to_owned(),
            operation: "apply".to_owned(),
            info: String::new(),
            who: "alice@laptop".to_owned(),
            version: "0.1.0".to_owned(),
            created: "2026-01-02T03:04:05.678Z".parse().unwrap(),
            path: String::new(),
        };
        assert_eq!(
            info.to_string(),
            "alice@laptop (apply, ID 1234, since 2026-01-02T03:04:05Z)"
        );
    }

    #[test]
    fn lock_grant_fields_are_optional() {
        let grant: LockGrant = serde_json::from_str("{}").unwrap();
        assert_eq!(grant, LockGrant::default());
        let grant: LockGrant =
            serde_json::from_str(r#"{"fencing_token": 42, "lease_seconds": 30}"#).unwrap();
        assert_eq!(grant.fencing_token, Some(FencingToken(42)));
        assert_eq!(grant.lease_seconds, Some(30));
        assert_eq!(serde_json::to_string(&LockGrant::default()).unwrap(), "{}");
    }

    #[test]
    fn file_lock_conflicts_across_open_files_and_is_released_on_drop() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.json.lock");
        let first = FileLock::try_acquire(&path)
            .unwrap()
            .expect("free at first");
        // A second open of the same file, as another handle in this process would do.
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        drop(first);
        let again = FileLock::try_acquire(&path)
            .unwrap()
            .expect("free after drop");
        again.release().unwrap();
        assert!(FileLock::try_acquire(&path).unwrap().is_some());
    }

    #[test]
    fn the_lock_log_check_finds_overlapping_holders() {
        let sound =
            "1 acquired a 10\n2 released a 10\n3 acquired b 11\n4 acquired c 12\n5 released c 12\n";
        // b was killed holding the lock: the system released it, and c took it.
        assert_eq!(check_lock_log(sound), Ok(3));
        let overlapping = "1 acquired a 10\n2 acquired b 11\n3 released a 10\n";
        let error = check_lock_log(overlapping).unwrap_err();
        assert!(error.contains("a released while b held"), "{error}");
        assert!(check_lock_log("garbage").is_err());
    }

    #[test]
    fn holds_are_logged_when_taken_and_released() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("state.lock");
        let log = directory.path().join("state.lock.log");
        let mut first = FileLock::try_acquire(&path).unwrap().unwrap();
        first.log_to(log.clone(), "first".into()).unwrap();
        first.release().unwrap();
        let mut second = FileLock::try_acquire(&path).unwrap().unwrap();
        second.log_to(log.clone(), "second".into()).unwrap();
        drop(second);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(check_lock_log(&text), Ok(2), "{text}");
        assert_eq!(text.lines().count(), 4);
    }
}
