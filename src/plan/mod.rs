//! Pure planning: desired × live × state → an immutable `Plan`; ordering; rendering. No I/O, no clock.
