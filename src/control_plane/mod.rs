//! The Environments Service rules over a `Store`. Knows nothing of HTTP.
