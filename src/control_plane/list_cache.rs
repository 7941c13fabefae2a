//! A short-lived cache of list answers, for `envform serve`, whose list calls are its busiest and
//! whose cost is the SQLite read. An entry is used only while no write was committed since it was
//! filled (the store's write generation), so a process always reads its own writes; the time limit
//! bounds how stale worker counts (which age without writes) and writes by another process on the
//! same database can be.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::{Environment, OrganizationId, Status};

/// Cached lists by organization and status filter.
pub(crate) struct ListCache {
    ttl: Duration,
    entries: Mutex<HashMap<(OrganizationId, Option<Status>), Entry>>,
}

struct Entry {
    generation: u64,
    filled: Instant,
    environments: Arc<Vec<Environment>>,
}

impl ListCache {
    /// A cache whose entries live at most `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached list, if it was filled at `generation` less than `ttl` ago (an entry that is
    /// not is dropped).
    pub(crate) fn get(
        &self,
        organization: &OrganizationId,
        status: Option<Status>,
        generation: u64,
    ) -> Option<Arc<Vec<Environment>>> {
        let mut entries = self.entries.lock().ok()?;
        let key = (organization.clone(), status);
        let entry = entries.get(&key)?;
        if entry.generation == generation && entry.filled.elapsed() < self.ttl {
            return Some(Arc::clone(&entry.environments));
        }
        // An entry that can no longer serve goes now: the list read next is not held beside it.
        entries.remove(&key);
        None
    }

    /// Remembers a list read after observing `generation`.
    pub(crate) fn put(
        &self,
        organization: &OrganizationId,
        status: Option<Status>,
        generation: u64,
        environments: &Arc<Vec<Environment>>,
    ) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                (organization.clone(), status),
                Entry {
                    generation,
                    filled: Instant::now(),
                    environments: Arc::clone(environments),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_its_generation_and_only_within_its_time() {
        let cache = ListCache::new(Duration::from_millis(50));
        let organization = OrganizationId("org".into());
        cache.put(&organization, None, 3, &Arc::new(Vec::new()));
        assert_eq!(
            cache.get(&organization, None, 3),
            Some(Arc::new(Vec::new()))
        );
        assert_eq!(
            cache.get(&organization, None, 4),
            None,
            "a write happened since"
        );
        assert_eq!(cache.get(&organization, Some(Status::Active), 3), None);
        assert_eq!(cache.get(&OrganizationId("other".into()), None, 3), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&organization, None, 3), None, "too old");
    }

    #[test]
    fn an_entry_that_cannot_serve_is_dropped_when_asked_for() {
        let cache = ListCache::new(Duration::from_secs(60));
        let organization = OrganizationId("org".into());
        let list = Arc::new(Vec::new());
        cache.put(&organization, None, 3, &list);
        assert_eq!(Arc::strong_count(&list), 2, "held by the cache");
        assert_eq!(
            cache.get(&organization, None, 4),
            None,
            "a write happened since"
        );
        assert_eq!(Arc::strong_count(&list), 1, "no longer held");
        assert_eq!(
            cache.get(&organization, None, 3),
            None,
            "gone for its generation too"
        );
    }
}
