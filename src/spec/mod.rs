//! The desired-state file (DESIGN §3): YAML → [`Desired`] with a source map, all validation and
//! diagnostics. Touches neither the network nor state.

mod model;

pub use model::*;
