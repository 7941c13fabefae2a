//! [`LocalBackend`]: state in a local file, `.envform/state.json` beside the configuration by
//! default.
//!
//! Writes replace the file atomically (write a temporary file in the same directory, fsync it,
//! rename it over the state, fsync the directory), so a crash leaves the old state or the new
//! one, never half of one; the previous version is kept as `state.json.backup`. A file that
//! does not parse is reported with its position and never overwritten.
//!
//! Saves under a lock that follow one another append only what changed to `state.json.journal`
//! (see `journal.rs`); readers replay it over the document, and the document is rewritten whole
//! (the journal folded in and removed) when the lock is released and when it is next taken.
//!
//! The lock is the OS lock (see `lock.rs`) on `state.json.lock`, a file that is never replaced;
//! who holds it is written to `state.json.lock.info` for whoever has to wait.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use super::backend::{check_successor, check_successor_of, decode_state, encode_state};
use super::journal::{self, ReplayError};
use super::lock::{FileLock, Held};
use super::{Lineage, LockHandle, LockInfo, State, StateBackend, StateChanges, StateError};

/// How often a reader reads the document and the journal again when a compaction ran between
/// its two reads.
const READ_ATTEMPTS: usize = 5;

/// The directory beside the configuration that holds local state.
pub const STATE_DIRECTORY: &str = ".envform";

/// The local state file's name.
pub const STATE_FILE: &str = "state.json";

/// State in a local file, locked with an OS file lock.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    paths: LocalPaths,
    /// This backend's last write under the caller's lock: while that lock is held nobody else
    /// writes, so the next write need not read the file back to check it, and may append to the
    /// journal.
    written: Arc<Mutex<Option<Written>>>,
}

/// What this backend last wrote under the caller's lock.
#[derive(Debug, Clone, Copy)]
struct Written {
    lineage: Lineage,
    serial: u64,
    /// Whether that write was a journal record (the document needs compacting).
    journaled: bool,
}

/// The state file and the files kept beside it.
#[derive(Debug, Clone)]
struct LocalPaths {
    state: PathBuf,
    backup: PathBuf,
    lock: PathBuf,
    lock_info: PathBuf,
    /// Every hold of the lock, appended by its holder: `state.json.lock.log`.
    lock_log: PathBuf,
    /// What saves under the lock changed since the document was last written whole.
    journal: PathBuf,
}

impl LocalBackend {
    /// State kept at `state_path`.
    pub fn new(state_path: impl Into<PathBuf>) -> Self {
        let state = state_path.into();
        Self {
            paths: LocalPaths {
                backup: sibling(&state, ".backup"),
                lock: sibling(&state, ".lock"),
                lock_info: sibling(&state, ".lock.info"),
                lock_log: sibling(&state, ".lock.log"),
                journal: sibling(&state, ".journal"),
                state,
            },
            written: Arc::default(),
        }
    }

    fn forget_written(&self) {
        if let Ok(mut written) = self.written.lock() {
            *written = None;
        }
    }

    /// State kept in `.envform/state.json` in `config_directory`, the default.
    pub fn beside(config_directory: &Path) -> Self {
        Self::new(Self::default_path(config_directory))
    }

    /// `.envform/state.json` in `config_directory`.
    pub fn default_path(config_directory: &Path) -> PathBuf {
        config_directory.join(STATE_DIRECTORY).join(STATE_FILE)
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.paths.state
    }

    /// Where the previous version of the state is kept.
    pub fn backup_path(&self) -> &Path {
        &self.paths.backup
    }

    /// The journal of saves since the document was last written whole.
    pub fn journal_path(&self) -> &Path {
        &self.paths.journal
    }

    /// The file the OS lock is taken on.
    pub fn lock_path(&self) -> &Path {
        &self.paths.lock
    }

    /// The holder's lock information, while the lock is held.
    pub fn lock_info_path(&self) -> &Path {
        &self.paths.lock_info
    }

    /// Refuses a handle that is not a lock on this state's lock file.
    fn check_handle(&self, handle: &LockHandle) -> Result<(), StateError> {
        match handle.file_lock() {
            Some(file_lock) if file_lock.path() == self.paths.lock => Ok(()),
            _ => Err(StateError::ForeignLock {
                lock_id: handle.id().to_owned(),
                backend: self.describe(),
            }),
        }
    }
}

/// `path` with `suffix` appended to its file name (`state.json` → `state.json.lock`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path
        .file_name()
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| STATE_FILE.into());
    name.push(suffix);
    path.with_file_name(name)
}

/// Runs blocking file work off the async runtime's workers (an fsync can take a while).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StateError> + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(StateError::Task)?
}

#[async_trait::async_trait]
impl StateBackend for LocalBackend {
    async fn load(&self) -> Result<Option<State>, StateError> {
        let paths = self.paths.clone();
        blocking(move || read_state(&paths)).await
    }

    async fn save(&self, state: &State, lock: Option<&LockHandle>) -> Result<(), StateError> {
        if let Some(handle) = lock {
            self.check_handle(handle)?;
        }
        let paths = self.paths.clone();
        let state = state.clone();
        let locked_by_caller = lock.is_some();
        let written = Arc::clone(&self.written);
        blocking(move || {
            // Without the caller's lock, the write takes it for itself, so it cannot slip in
            // under someone else's apply.
            let _own_lock = if locked_by_caller {
                None
            } else {
                create_parent(&paths.lock)?;
                match FileLock::try_acquire(&paths.lock)? {
                    Some(mut file_lock) => {
                        file_lock.log_to(
                            paths.lock_log.clone(),
                            format!("write-{}", Uuid::new_v4().simple()),
                        )?;
                        Some(file_lock)
                    }
                    None => {
                        return Err(StateError::Locked {
                            holder: read_lock_info(&paths.lock_info),
                        });
                    }
                }
            };
            let known = if locked_by_caller {
                written
                    .lock()
                    .ok()
                    .and_then(|written| *written)
                    .map(|written| (written.lineage, written.serial))
            } else {
                None
            };
            let result = write_state(&paths, &state, known);
            if let Ok(mut written) = written.lock() {
                *written = (locked_by_caller && result.is_ok()).then_some(Written {
                    lineage: state.lineage,
                    serial: state.serial,
                    journaled: false,
                });
            }
            result
        })
        .await
    }

    async fn save_changes(
        &self,
        state: &State,
        changes: &StateChanges,
        lock: Option<&LockHandle>,
    ) -> Result<(), StateError> {
        let Some(handle) = lock else {
            return self.save(state, None).await;
        };
        self.check_handle(handle)?;
        let known = self.written.lock().ok().and_then(|written| *written);
        // Only a save that continues this backend's own last write under this lock may append:
        // anything else is checked against the stored state and written whole.
        let Some(known) =
            known.filter(|known| known.lineage == state.lineage && known.serial < state.serial)
        else {
            return self.save(state, lock).await;
        };
        let record = journal::encode_record(state, known.serial, changes)?;
        let paths = self.paths.clone();
        let written = Arc::clone(&self.written);
        let (lineage, serial) = (state.lineage, state.serial);
        blocking(move || {
            let result = append_synced(&paths.journal, &record);
            if let Ok(mut written) = written.lock() {
                // After a failed append the journal may end in part of a line: the next save
                // writes the document whole, which removes it.
                *written = result.is_ok().then_some(Written {
                    lineage,
                    serial,
                    journaled: true,
                });
            }
            result
        })
        .await
    }

    async fn lock(&self, info: LockInfo) -> Result<LockHandle, StateError> {
        // Someone may have written since this backend last held the lock.
        self.forget_written();
        let paths = self.paths.clone();
        let written = Arc::clone(&self.written);
        blocking(move || {
            create_parent(&paths.lock)?;
            let Some(mut file_lock) = FileLock::try_acquire(&paths.lock)? else {
                return Err(StateError::Locked {
                    holder: read_lock_info(&paths.lock_info),
                });
            };
            write_lock_info(&paths.lock_info, &info)?;
            file_lock.remove_on_release(paths.lock_info.clone());
            file_lock.log_to(paths.lock_log.clone(), info.id.clone())?;
            // A journal left by a holder that ended without unlocking is folded in now. Best
            // effort: the journal stays readable, and a save checks the stored state itself.
            match compact(&paths) {
                Ok(Some(state)) => {
                    if let Ok(mut written) = written.lock() {
                        *written = Some(Written {
                            lineage: state.0,
                            serial: state.1,
                            journaled: false,
                        });
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot compact the state journal"),
            }
            Ok(LockHandle::holding_file(info, file_lock))
        })
        .await
    }

    async fn unlock(&self, handle: LockHandle) -> Result<(), StateError> {
        self.check_handle(&handle)?;
        let journaled = self
            .written
            .lock()
            .ok()
            .and_then(|written| *written)
            .is_some_and(|written| written.journaled);
        self.forget_written();
        let (_, held) = handle.into_parts();
        let paths = self.paths.clone();
        match held {
            Held::File(file_lock) => {
                blocking(move || {
                    if journaled && let Err(error) = compact(&paths) {
                        // The journal stays readable; the next lock compacts it.
                        tracing::warn!(%error, "cannot compact the state journal");
                    }
                    file_lock.release()
                })
                .await
            }
            // `check_handle` let only file locks through.
            Held::Nothing | Held::Lease(_) => Ok(()),
        }
    }

    async fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        let paths = self.paths.clone();
        let lock_id = lock_id.to_owned();
        blocking(move || {
            create_parent(&paths.lock)?;
            match FileLock::try_acquire(&paths.lock)? {
                // Nobody holds it (its holder, if any, has ended): only stale information is left.
                Some(mut file_lock) => {
                    file_lock.remove_on_release(paths.lock_info.clone());
                    file_lock.release()
                }
                None => {
                    let holder = read_lock_info(&paths.lock_info);
                    match holder {
                        Some(info) if info.id != lock_id => Err(StateError::LockIdMismatch {
                            given: lock_id,
                            holder: Some(info),
                        }),
                        holder => Err(StateError::HeldByRunningProcess { holder }),
                    }
                }
            }
        })
        .await
    }

    fn describe(&self) -> String {
        format!("local state {}", self.paths.state.display())
    }
}

fn create_parent(path: &Path) -> Result<(), StateError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            fs::create_dir_all(parent).map_err(|source| StateError::io("create", parent, source))
        }
        _ => Ok(()),
    }
}

/// The state as last saved: the document with the journal replayed over it.
fn read_state(paths: &LocalPaths) -> Result<Option<State>, StateError> {
    let journal_name = paths.journal.display().to_string();
    for _ in 0..READ_ATTEMPTS {
        let Some(mut state) = read_document(&paths.state)? else {
            return Ok(None);
        };
        let journal = match fs::read(&paths.journal) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Some(state)),
            Err(source) => return Err(StateError::io("read", &paths.journal, source)),
        };
        match journal::replay(&mut state, &journal, &journal_name) {
            Ok(()) => return Ok(Some(state)),
            Err(ReplayError::Corrupt(error)) => return Err(error),
            // The document was compacted between the two reads: read both again.
            Err(ReplayError::Gap) => {}
        }
    }
    Err(StateError::Corrupt {
        path: journal_name,
        line: 1,
        column: 1,
        message: format!(
            "its records do not continue {} (read {READ_ATTEMPTS} times)",
            paths.state.display()
        ),
    })
}

/// The state document alone, without its journal.
fn read_document(path: &Path) -> Result<Option<State>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StateError::io("read", path, source)),
    };
    decode_state(&bytes, &path.display().to_string()).map(Some)
}

/// Folds the journal into the document, if there is one; returns the lineage and serial of the
/// document then written.
fn compact(paths: &LocalPaths) -> Result<Option<(Lineage, u64)>, StateError> {
    if !paths.journal.exists() {
        return Ok(None);
    }
    let Some(state) = read_state(paths)? else {
        // A journal without its document continues nothing.
        remove_journal(paths)?;
        return Ok(None);
    };
    replace_document(paths, &encode_state(&state)?, true)?;
    Ok(Some((state.lineage, state.serial)))
}

/// Appends `bytes` to the journal and waits until they are on disk.
fn append_synced(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let created = !path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| StateError::io("open", path, source))?;
    file.write_all(bytes)
        .map_err(|source| StateError::io("write", path, source))?;
    file.sync_data()
        .map_err(|source| StateError::io("sync", path, source))?;
    if created {
        // The new file's name must be durable too.
        sync_directory(path)?;
    }
    Ok(())
}

/// Removes the journal once the document holds all it said.
fn remove_journal(paths: &LocalPaths) -> Result<(), StateError> {
    match fs::remove_file(&paths.journal) {
        Ok(()) => sync_directory(&paths.journal),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StateError::io("remove", &paths.journal, source)),
    }
}

/// Replaces the state file with `state` after checking it continues the stored one.
/// Replaces the state file with `state`. `known` is the lineage and serial of the file as this
/// process last wrote it under a lock it still holds; without it the file is read to check them.
fn write_state(
    paths: &LocalPaths,
    state: &State,
    known: Option<(Lineage, u64)>,
) -> Result<(), StateError> {
    create_parent(&paths.state)?;
    let path = paths.state.display().to_string();
    let stored_exists = match known {
        Some((lineage, serial)) => {
            check_successor_of(lineage, serial, state, &path)?;
            true
        }
        None => {
            // A corrupt file stops the write here: it is never replaced silently.
            let stored = read_state(paths)?;
            check_successor(stored.as_ref(), state, &path)?;
            stored.is_some()
        }
    };
    replace_document(paths, &encode_state(state)?, stored_exists)
}

/// Replaces the state document with `bytes` atomically (keeping the one replaced as the backup),
/// then removes the journal, which the new document supersedes: a crash between the two leaves
/// records at or below its serial, which readers skip.
fn replace_document(
    paths: &LocalPaths,
    bytes: &[u8],
    stored_exists: bool,
) -> Result<(), StateError> {
    let temporary = temporary_path(&paths.state);
    let result = write_synced(&temporary, bytes).and_then(|()| {
        if stored_exists {
            keep_backup(&paths.state, &paths.backup)?;
        }
        fs::rename(&temporary, &paths.state)
            .map_err(|source| StateError::io("rename", &temporary, source))
    });
    if result.is_err() {
        // Best effort: the error being returned matters more than a leftover temporary file.
        let _ = fs::remove_file(&temporary);
    }
    result?;
    sync_directory(&paths.state)?;
    remove_journal(paths)
}

/// A file name in the state's directory no other writer uses.
fn temporary_path(path: &Path) -> PathBuf {
    sibling(path, &format!(".{}.tmp", Uuid::new_v4().simple()))
}

/// Writes a new file and waits until its contents are on disk.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| StateError::io("create", path, source))?;
    file.write_all(bytes)
        .map_err(|source| StateError::io("write", path, source))?;
    file.sync_all()
        .map_err(|source| StateError::io("sync", path, source))
}

/// Makes `backup` the current version of `state`, replacing any older backup atomically.
fn keep_backup(state: &Path, backup: &Path) -> Result<(), StateError> {
    let temporary = temporary_path(backup);
    // A hard link costs nothing and leaves `state` in place until the new version replaces it;
    // a copy serves file systems without links.
    if fs::hard_link(state, &temporary).is_err() {
        let copied = fs::read(state)
            .map_err(|source| StateError::io("read", state, source))
            .and_then(|bytes| write_synced(&temporary, &bytes));
        if let Err(error) = copied {
            let _ = fs::remove_file(&temporary);
            return Err(error);
        }
    }
    fs::rename(&temporary, backup).map_err(|source| {
        let _ = fs::remove_file(&temporary);
        StateError::io("rename", &temporary, source)
    })
}

/// Makes the renames in the state's directory durable.
#[cfg(unix)]
fn sync_directory(state: &Path) -> Result<(), StateError> {
    let directory = match state.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::File::open(directory)
        .and_then(|file| file.sync_all())
        .map_err(|source| StateError::io("sync", directory, source))
}

/// Windows cannot open a directory to sync it; its renames are journaled by NTFS.
#[cfg(not(unix))]
fn sync_directory(_state: &Path) -> Result<(), StateError> {
    Ok(())
}

/// Records who holds the lock, replacing the file whole so a reader never sees half of it.
fn write_lock_info(path: &Path, info: &LockInfo) -> Result<(), StateError> {
    let mut bytes = serde_json::to_vec_pretty(info).map_err(StateError::Encode)?;
    bytes.push(b'\n');
    let temporary = temporary_path(path);
    let result = fs::write(&temporary, &bytes)
        .map_err(|source| StateError::io("write", &temporary, source))
        .and_then(|()| {
            fs::rename(&temporary, path)
                .map_err(|source| StateError::io("rename", &temporary, source))
        });
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// The holder's information, if it can be read: it is for display, so any failure is `None`.
fn read_lock_info(path: &Path) -> Option<Box<LockInfo>> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok().map(Box::new)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Command, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::state::lock_with_timeout;

    fn backend_in(directory: &tempfile::TempDir) -> LocalBackend {
        LocalBackend::beside(directory.path())
    }

    fn next(state: &State) -> State {
        State {
            serial: state.serial + 1,
            ..state.clone()
        }
    }

    #[tokio::test]
    async fn never_written_state_loads_as_none() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        assert_eq!(backend.load().await.unwrap(), None);
        assert_eq!(
            backend.path(),
            directory.path().join(".envform").join("state.json")
        );
        assert_eq!(
            backend.describe(),
            format!("local state {}", backend.path().display())
        );
    }

    #[tokio::test]
    async fn saved_state_loads_back() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let mut state = State::empty("embedded:test.db");
        state.serial = 1;
        backend.save(&state, None).await.unwrap();
        assert_eq!(backend.load().await.unwrap(), Some(state.clone()));
        // A second backend on the same file reads the same.
        let other = LocalBackend::new(backend.path());
        assert_eq!(other.load().await.unwrap(), Some(state));
    }

    #[tokio::test]
    async fn replacing_keeps_the_previous_version_as_backup_and_no_temporary_files() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let first = State {
            serial: 1,
            ..State::empty("t")
        };
        backend.save(&first, None).await.unwrap();
        assert!(
            !backend.backup_path().exists(),
            "nothing to back up at first"
        );

        let second = next(&first);
        backend.save(&second, None).await.unwrap();
        let third = next(&second);
        backend.save(&third, None).await.unwrap();

        assert_eq!(backend.load().await.unwrap(), Some(third));
        let backup = fs::read(backend.backup_path()).unwrap();
        assert_eq!(decode_state(&backup, "backup").unwrap(), second);

        let mut names: Vec<String> = fs::read_dir(directory.path().join(".envform"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // The lock file and its log stay (never deleted); no `.tmp` file is left behind.
        assert_eq!(
            names,
            [
                "state.json",
                "state.json.backup",
                "state.json.lock",
                "state.json.lock.log"
            ]
        );
    }

    /// A state of `count` resources, each with a description.
    fn state_with(count: usize) -> State {
        let mut state = State::empty("http://127.0.0.1:1");
        for index in 0..count {
            state.resources.insert(
                format!("env-{index:03}"),
                resource(index as u128, &format!("environment {index}")),
            );
        }
        state.serial = 1;
        state
    }

    fn resource(id: u128, description: &str) -> crate::state::ResourceState {
        let mut last_applied = crate::model::JsonMap::new();
        last_applied.insert("description".to_owned(), description.into());
        crate::state::ResourceState {
            id: crate::model::EnvironmentId(uuid::Uuid::from_u128(id)),
            last_applied: last_applied.into(),
            prevent_destroy: false,
            depends_on: Vec::new(),
            renamed_from: None,
        }
    }

    /// The saves of an apply: each one sets an intent, records an earlier one's resource,
    /// changes one and removes another. Returns every state saved, in order.
    async fn journaled_saves(
        backend: &LocalBackend,
        handle: &LockHandle,
        saves: usize,
    ) -> Vec<State> {
        let mut state = state_with(8);
        backend.save(&state, Some(handle)).await.unwrap();
        let mut saved = vec![state.clone()];
        for round in 0..saves {
            let mut changes = StateChanges::default();
            state.serial += 1;
            let intent = format!("new-{round:03}");
            state.intents.insert(
                intent.clone(),
                crate::state::CreateIntent {
                    started_at: jiff::Timestamp::UNIX_EPOCH,
                },
            );
            changes.intents.insert(intent);
            if round > 0 {
                let made = format!("new-{:03}", round - 1);
                state.intents.remove(&made);
                state
                    .resources
                    .insert(made.clone(), resource(100 + round as u128, "made"));
                changes.intents.insert(made.clone());
                changes.resources.insert(made);
            }
            let changed = format!("env-{:03}", round % 8);
            state.resources.insert(
                changed.clone(),
                resource(round as u128, &format!("round {round}")),
            );
            changes.resources.insert(changed);
            if round == 3 {
                state.resources.remove("env-007");
                changes.resources.insert("env-007".to_owned());
            }
            backend
                .save_changes(&state, &changes, Some(handle))
                .await
                .unwrap();
            saved.push(state.clone());
        }
        saved
    }

    #[tokio::test]
    async fn journaled_saves_read_back_equal_to_whole_saves_and_compact_on_unlock() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        let saved = journaled_saves(&backend, &handle, 12).await;
        let last = saved.last().unwrap().clone();
        // The document was written whole once; the rest is in the journal.
        assert!(backend.journal_path().exists());
        assert_eq!(
            read_document(backend.path()).unwrap(),
            Some(saved[0].clone())
        );
        let journal = fs::read_to_string(backend.journal_path()).unwrap();
        assert_eq!(journal.lines().count(), 12);
        // Read through the journal, by another backend too, it is the state last saved.
        assert_eq!(backend.load().await.unwrap(), Some(last.clone()));
        assert_eq!(
            LocalBackend::new(backend.path()).load().await.unwrap(),
            Some(last.clone())
        );

        // The same state saved whole by another backend reads back the same.
        let whole_directory = tempfile::tempdir().unwrap();
        let whole = backend_in(&whole_directory);
        whole.save(&last, None).await.unwrap();
        assert_eq!(whole.load().await.unwrap(), backend.load().await.unwrap());

        // Releasing the lock folds the journal into the document.
        backend.unlock(handle).await.unwrap();
        assert!(!backend.journal_path().exists());
        assert_eq!(read_document(backend.path()).unwrap(), Some(last.clone()));
        assert_eq!(
            fs::read(backend.path()).unwrap(),
            fs::read(whole.path()).unwrap(),
            "the compacted document is byte for byte the whole-document form"
        );
    }

    #[tokio::test]
    async fn a_journal_cut_anywhere_reads_as_the_last_save_it_holds_whole() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        let saved = journaled_saves(&backend, &handle, 6).await;
        let journal = fs::read(backend.journal_path()).unwrap();
        drop(handle);
        // A `kill -9` during an append leaves the journal cut at any byte.
        let ends: Vec<usize> = journal
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == b'\n')
            .map(|(index, _)| index + 1)
            .collect();
        for cut in 0..=journal.len() {
            fs::write(backend.journal_path(), &journal[..cut]).unwrap();
            let whole_records = ends.iter().filter(|end| **end <= cut).count();
            assert_eq!(
                backend.load().await.unwrap().as_ref(),
                Some(&saved[whole_records]),
                "journal cut at byte {cut}"
            );
        }
        // The next lock compacts a cut journal, and saves go on from it.
        fs::write(backend.journal_path(), &journal[..ends[2] + 7]).unwrap();
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        assert!(!backend.journal_path().exists());
        assert_eq!(
            read_document(backend.path()).unwrap(),
            Some(saved[3].clone())
        );
        let mut next = saved[3].clone();
        next.serial += 1;
        next.resources.remove("env-000");
        let changes = StateChanges {
            resources: ["env-000".to_owned()].into(),
            intents: Default::default(),
            unkept_fields: false,
            digest_salt: false,
        };
        backend
            .save_changes(&next, &changes, Some(&handle))
            .await
            .unwrap();
        assert!(
            backend.journal_path().exists(),
            "appended after the compaction"
        );
        assert_eq!(backend.load().await.unwrap(), Some(next));
        backend.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn a_compaction_stopped_at_any_point_reads_the_same() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        let saved = journaled_saves(&backend, &handle, 5).await;
        let last = saved.last().unwrap().clone();
        drop(handle);
        let journal = fs::read(backend.journal_path()).unwrap();
        let document = fs::read(backend.path()).unwrap();

        // Stopped before the rename: a temporary file beside the old document.
        fs::write(sibling(backend.path(), ".0123.tmp"), b"{\"half\": ").unwrap();
        assert_eq!(backend.load().await.unwrap(), Some(last.clone()));
        fs::remove_file(sibling(backend.path(), ".0123.tmp")).unwrap();

        // Stopped after the rename, before the journal was removed: every record is stale.
        fs::write(backend.path(), encode_state(&last).unwrap()).unwrap();
        assert_eq!(backend.load().await.unwrap(), Some(last.clone()));

        // And a journal of another lineage (the document replaced) is not replayed over it.
        let stranger = State {
            serial: 2,
            ..State::empty("t")
        };
        fs::write(backend.path(), encode_state(&stranger).unwrap()).unwrap();
        assert_eq!(backend.load().await.unwrap(), Some(stranger));
        fs::write(backend.path(), &document).unwrap();
        assert_eq!(fs::read(backend.journal_path()).unwrap(), journal);
        assert_eq!(backend.load().await.unwrap(), Some(last));
    }

    #[tokio::test]
    async fn a_broken_journal_line_is_reported_and_never_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        journaled_saves(&backend, &handle, 3).await;
        drop(handle);
        let mut journal = fs::read(backend.journal_path()).unwrap();
        journal.splice(0..0, b"not json\n".iter().copied());
        fs::write(backend.journal_path(), &journal).unwrap();
        let error = backend.load().await.unwrap_err();
        assert!(
            matches!(&error, StateError::Corrupt { path, line: 1, .. } if path.ends_with("state.json.journal")),
            "{error:?}"
        );
        // Taking the lock leaves it as it is; a write is refused.
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        assert_eq!(fs::read(backend.journal_path()).unwrap(), journal);
        let state = State {
            serial: 99,
            ..state_with(1)
        };
        assert!(matches!(
            backend.save(&state, Some(&handle)).await,
            Err(StateError::Corrupt { .. })
        ));
        backend.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn corrupt_state_is_reported_with_its_position_and_never_overwritten() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        fs::create_dir_all(backend.path().parent().unwrap()).unwrap();
        let text = "{\n  \"version\": 1,\n  \"serial\": 2,,\n}\n";
        fs::write(backend.path(), text).unwrap();

        let error = backend.load().await.unwrap_err();
        match &error {
            StateError::Corrupt {
                path, line, column, ..
            } => {
                assert_eq!(path, &backend.path().display().to_string());
                assert_eq!((*line, *column), (3, 15));
            }
            other => panic!("unexpected {other:?}"),
        }

        let state = State {
            serial: 3,
            ..State::empty("t")
        };
        let error = backend.save(&state, None).await.unwrap_err();
        assert!(
            matches!(error, StateError::Corrupt { line: 3, .. }),
            "{error:?}"
        );
        assert_eq!(fs::read_to_string(backend.path()).unwrap(), text);
    }

    #[tokio::test]
    async fn state_of_another_lineage_or_an_old_serial_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let stored = State {
            serial: 4,
            ..State::empty("t")
        };
        backend.save(&stored, None).await.unwrap();

        let stranger = State {
            serial: 10,
            ..State::empty("t")
        };
        let error = backend.save(&stranger, None).await.unwrap_err();
        assert!(
            matches!(error, StateError::LineageMismatch { stored: lineage, .. } if lineage == stored.lineage),
            "{error:?}"
        );

        let stale = stored.clone();
        let error = backend.save(&stale, None).await.unwrap_err();
        assert!(
            matches!(
                error,
                StateError::SerialNotIncreased {
                    stored: 4,
                    new: 4,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(backend.load().await.unwrap(), Some(stored));
    }

    #[tokio::test]
    async fn a_second_lock_on_the_same_file_reports_the_holder() {
        let directory = tempfile::tempdir().unwrap();
        let first = backend_in(&directory);
        let second = backend_in(&directory);
        let info = LockInfo::new("apply", first.path().display().to_string());
        let handle = first.lock(info.clone()).await.unwrap();
        assert_eq!(handle.id(), info.id);

        let error = second.lock(LockInfo::new("plan", "x")).await.unwrap_err();
        match error {
            StateError::Locked { holder } => assert_eq!(holder, Some(Box::new(info.clone()))),
            other => panic!("unexpected {other:?}"),
        }
        // The same backend asked twice conflicts as well.
        assert!(matches!(
            first.lock(LockInfo::new("plan", "x")).await,
            Err(StateError::Locked { .. })
        ));
        // An unlocked write cannot slip in under the lock.
        let state = State {
            serial: 1,
            ..State::empty("t")
        };
        assert!(matches!(
            second.save(&state, None).await,
            Err(StateError::Locked { holder: Some(holder) }) if holder.id == info.id
        ));
        // The holder writes with its handle.
        first.save(&state, Some(&handle)).await.unwrap();

        first.unlock(handle).await.unwrap();
        assert!(!first.lock_info_path().exists());
        let again = second.lock(LockInfo::new("plan", "x")).await.unwrap();
        second.unlock(again).await.unwrap();
    }

    #[tokio::test]
    async fn dropping_the_handle_releases_the_lock() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        assert!(backend.lock_info_path().exists());
        drop(handle);
        assert!(!backend.lock_info_path().exists());
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        backend.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn a_handle_from_another_state_is_refused() {
        let first_directory = tempfile::tempdir().unwrap();
        let second_directory = tempfile::tempdir().unwrap();
        let first = backend_in(&first_directory);
        let second = backend_in(&second_directory);
        let handle = first.lock(LockInfo::new("apply", "x")).await.unwrap();
        let state = State {
            serial: 1,
            ..State::empty("t")
        };
        assert!(matches!(
            second.save(&state, Some(&handle)).await,
            Err(StateError::ForeignLock { .. })
        ));
        let detached = LockHandle::new(LockInfo::new("apply", "x"));
        assert!(matches!(
            first.save(&state, Some(&detached)).await,
            Err(StateError::ForeignLock { .. })
        ));
        assert!(matches!(
            second.unlock(handle).await,
            Err(StateError::ForeignLock { .. })
        ));
        // The refused handle was consumed and dropped, which released the lock.
        let handle = first.lock(LockInfo::new("apply", "x")).await.unwrap();
        first.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn force_unlock_clears_stale_information_but_cannot_break_a_running_holder() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        let id = handle.id().to_owned();

        assert!(matches!(
            backend.force_unlock("not-the-id").await,
            Err(StateError::LockIdMismatch { given, holder: Some(holder) })
                if given == "not-the-id" && holder.id == id
        ));
        assert!(matches!(
            backend.force_unlock(&id).await,
            Err(StateError::HeldByRunningProcess { holder: Some(holder) }) if holder.id == id
        ));

        // A holder that died leaves only its information behind, which force-unlock removes.
        let info_path = backend.lock_info_path().to_owned();
        let saved_info = fs::read(&info_path).unwrap();
        drop(handle);
        fs::write(&info_path, saved_info).unwrap();
        backend.force_unlock(&id).await.unwrap();
        assert!(!info_path.exists());
    }

    /// A python process holding `flock(LOCK_EX)` on `path`, as Rust's `File::lock` does on Linux.
    fn spawn_flock_holder(path: &Path) -> Child {
        let script = "import fcntl, sys, time\n\
             f = open(sys.argv[1], 'a')\n\
             fcntl.flock(f, fcntl.LOCK_EX)\n\
             print('locked', flush=True)\n\
             time.sleep(120)\n";
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        child
    }

    #[tokio::test]
    async fn the_lock_of_a_killed_process_is_released_by_the_system() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        fs::create_dir_all(backend.path().parent().unwrap()).unwrap();
        let mut holder = spawn_flock_holder(backend.lock_path());

        // The other process's lock is seen: the same kind of lock, on the same file.
        assert!(matches!(
            backend.lock(LockInfo::new("apply", "x")).await,
            Err(StateError::Locked { holder: None })
        ));

        holder.kill().unwrap();
        holder.wait().unwrap();
        let handle = backend.lock(LockInfo::new("apply", "x")).await.unwrap();
        backend.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn waiting_for_the_lock_reports_the_holder_once_and_gets_it_when_released() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let holder_info = LockInfo::new("apply", "x");
        let handle = backend.lock(holder_info.clone()).await.unwrap();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(600)).await;
            drop(handle);
        });

        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Arc::clone(&seen);
        let started = std::time::Instant::now();
        let handle = lock_with_timeout(
            &backend,
            LockInfo::new("plan", "x"),
            Duration::from_secs(10),
            move |holder| recorder.lock().unwrap().push(holder.cloned()),
        )
        .await
        .unwrap();
        releaser.await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(550));
        assert_eq!(handle.info().operation, "plan");
        assert_eq!(*seen.lock().unwrap(), vec![Some(holder_info)]);
        backend.unlock(handle).await.unwrap();
    }

    #[tokio::test]
    async fn waiting_for_the_lock_times_out_with_the_holder() {
        let directory = tempfile::tempdir().unwrap();
        let backend = backend_in(&directory);
        let holder_info = LockInfo::new("apply", "x");
        let _handle = backend.lock(holder_info.clone()).await.unwrap();

        let started = std::time::Instant::now();
        let mut calls = 0;
        let error = lock_with_timeout(
            &backend,
            LockInfo::new("plan", "x"),
            Duration::from_millis(700),
            |_| calls += 1,
        )
        .await
        .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        match error {
            StateError::LockTimeout { waited, holder } => {
                assert!(waited >= Duration::from_millis(700));
                assert_eq!(holder, Some(Box::new(holder_info)));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(calls, 1);

        // No timeout: one try, and the plain `Locked` error.
        let error = lock_with_timeout(&backend, LockInfo::new("plan", "x"), Duration::ZERO, |_| {
            panic!("a zero timeout never waits")
        })
        .await
        .unwrap_err();
        assert!(matches!(error, StateError::Locked { holder: Some(_) }));
    }
}
