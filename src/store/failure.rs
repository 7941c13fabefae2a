//! What kind of failure a database error is, for the answer a client gets: storage full (`507`),
//! the database unavailable for now (`503` with `Retry-After`, worth retrying), or anything else
//! (`500`). Either store's errors are classified here, by walking an error's source chain down to
//! the [`sqlx::Error`] inside it.

use std::error::Error;

/// A storage failure a client can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFailure {
    /// The disk under the database is full; writes work again once space is freed.
    Full,
    /// The database cannot be reached or refused for now (restarting, overloaded, a dropped
    /// connection, a serialization failure); the same request may succeed in a moment.
    Unavailable,
}

/// SQLite's result code for a full disk (`SQLITE_FULL`).
const SQLITE_FULL: &str = "13";

/// SQLite's result codes for a database locked by another connection beyond the busy timeout.
const SQLITE_BUSY_CODES: [&str; 2] = ["5", "6"];

impl StorageFailure {
    /// The storage failure somewhere in `error`'s source chain, if there is one.
    pub fn of(error: &(dyn Error + 'static)) -> Option<Self> {
        let mut current = Some(error);
        while let Some(error) = current {
            if let Some(database) = error.downcast_ref::<sqlx::Error>() {
                return classify(database);
            }
            current = error.source();
        }
        None
    }
}

impl StorageFailure {
    /// The HTTP status it is answered with.
    pub fn status(self) -> u16 {
        match self {
            StorageFailure::Full => 507,
            StorageFailure::Unavailable => 503,
        }
    }

    /// The `detail` of the answer.
    pub fn detail(self) -> &'static str {
        match self {
            StorageFailure::Full => {
                "Storage is full: the service cannot write until space is freed on its database"
            }
            StorageFailure::Unavailable => {
                "The service's database is unavailable for the moment; retry shortly"
            }
        }
    }
}

/// Whether a failure at the start of a transaction is worth trying again at once: the
/// connection was lost or the database refused for a moment.
pub(super) fn is_transient(error: &sqlx::Error) -> bool {
    // A pool that timed out is overloaded: trying again at once would only add to the queue.
    classify(error) == Some(StorageFailure::Unavailable)
        && !matches!(error, sqlx::Error::PoolTimedOut)
}

fn classify(error: &sqlx::Error) -> Option<StorageFailure> {
    match error {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
            Some(StorageFailure::Full)
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Some(StorageFailure::Unavailable),
        sqlx::Error::Database(database) => {
            let code = database.code()?;
            let code = code.as_ref();
            // SQLite's extended codes carry the primary code in their low byte.
            let primary = code
                .parse::<u32>()
                .map(|value| (value & 0xff).to_string())
                .ok();
            match (code, primary.as_deref()) {
                // PostgreSQL: disk_full, out_of_memory's cousin insufficient_resources.
                ("53100", _) | (_, Some(SQLITE_FULL)) => Some(StorageFailure::Full),
                (_, Some(primary)) if SQLITE_BUSY_CODES.contains(&primary) => {
                    Some(StorageFailure::Unavailable)
                }
                // PostgreSQL: serialization failure, deadlock, connection exceptions (08…),
                // admin or crash shutdown and "cannot connect now" (57P01-57P03), too many
                // connections, a statement or lock timeout (query_canceled, lock_not_available).
                (
                    "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "57014" | "55P03",
                    _,
                ) => Some(StorageFailure::Unavailable),
                (code, _) if code.starts_with("08") => Some(StorageFailure::Unavailable),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_or_full_and_found_through_sources() {
        let refused = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            StorageFailure::of(&refused),
            Some(StorageFailure::Unavailable)
        );
        assert!(is_transient(&refused));
        let full = crate::store::StoreError::Database(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        )));
        assert_eq!(StorageFailure::of(&full), Some(StorageFailure::Full));
        assert!(!is_transient(&sqlx::Error::PoolTimedOut));
        // A closed pool is a store shut down on purpose, not a database away for a moment.
        assert_eq!(StorageFailure::of(&sqlx::Error::PoolClosed), None);
        assert_eq!(StorageFailure::of(&sqlx::Error::RowNotFound), None);
    }
}
