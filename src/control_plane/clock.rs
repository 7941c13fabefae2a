//! Timestamps at the precision the store keeps (microseconds), so a value read back equals the
//! value returned when it was written.

use jiff::Timestamp;

/// Where a service reads the time; injected so expiry can be tested without waiting.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's clock, truncated to microseconds (the precision the store keeps).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        now()
    }
}

/// The current time, truncated to microseconds.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `now`, or one microsecond after `previous` if `now` is not later: a value that must strictly
/// increase (`updated_at`, creation order) does even when the clock does not move or goes back.
pub(crate) fn after(previous: Timestamp, now: Timestamp) -> Timestamp {
    if now > previous {
        return now;
    }
    Timestamp::from_microsecond(previous.as_microsecond().saturating_add(1))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_is_strictly_later_than_previous() {
        let previous = Timestamp::from_microsecond(1_000_000).unwrap();
        let earlier = Timestamp::from_microsecond(10).unwrap();
        let later = Timestamp::from_microsecond(2_000_000).unwrap();
        assert_eq!(after(previous, earlier).as_microsecond(), 1_000_001);
        assert_eq!(after(previous, previous).as_microsecond(), 1_000_001);
        assert_eq!(after(previous, later), later);
        assert_eq!(now().subsec_nanosecond() % 1_000, 0);
    }
}
