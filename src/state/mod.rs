//! State (DESIGN §7): the document of what was applied, its backends and their locks. Knows
//! nothing of the API.

mod document;

pub use document::*;
