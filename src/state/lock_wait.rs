//! Waiting for a held state lock: attempts with jittered exponential backoff until a deadline,
//! telling the caller whom it waits for. Kept apart from the lock types so that they need no
//! backend, and the backend trait can name them without a circle.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::{LockHandle, LockInfo, StateBackend, StateError};

/// The first pause between two attempts to take a held lock.
const FIRST_WAIT: Duration = Duration::from_millis(100);

/// The longest pause between two attempts to take a held lock.
const LONGEST_WAIT: Duration = Duration::from_secs(5);

/// Takes the lock, waiting up to `timeout` while someone else holds it, with exponential backoff
/// (100 ms growing to 5 s, jittered). `on_wait` is called with the holder (`None` when the backend
/// cannot say who) on the first wait and whenever the holder changes, so the caller can say
/// whom it is waiting for.
///
/// A zero timeout tries once and returns [`StateError::Locked`]; a lock still held when the
/// timeout ends gives [`StateError::LockTimeout`] with the last holder seen. Other errors end the
/// wait at once.
pub async fn lock_with_timeout(
    backend: &dyn StateBackend,
    info: LockInfo,
    timeout: Duration,
    mut on_wait: impl FnMut(Option<&LockInfo>),
) -> Result<LockHandle, StateError> {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    let mut delays = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(FIRST_WAIT)
        .with_max_delay(LONGEST_WAIT)
        .without_max_times()
        .build();
    // The ID of the holder last reported (`Some(None)`: an unknown holder was reported).
    let mut reported: Option<Option<String>> = None;
    loop {
        let holder = match backend.lock(info.clone()).await {
            Ok(handle) => return Ok(handle),
            Err(StateError::Locked { holder }) => holder,
            Err(other) => return Err(other),
        };
        let now = tokio::time::Instant::now();
        if timeout.is_zero() {
            return Err(StateError::Locked { holder });
        }
        if now >= deadline {
            return Err(StateError::LockTimeout {
                waited: now - started,
                holder,
            });
        }
        let holder_id = holder.as_ref().map(|holder| holder.id.clone());
        if reported.as_ref() != Some(&holder_id) {
            on_wait(holder.as_deref());
            reported = Some(holder_id);
        }
        let delay = delays.next().unwrap_or(LONGEST_WAIT);
        tokio::time::sleep(delay.min(deadline - now)).await;
    }
}
