//! envform: a desired-state reconciler, SDK and embedded service for the environments of an agent
//! control plane.
//!
//! - [`desired`] reads desired-state files, [`plan`] diffs them against live and state, [`apply`]
//!   executes a plan; [`state`] keeps what was applied.
//! - [`api`] is the Environments API SDK; [`control_plane`] is the service's rules over a
//!   [`store`]; [`server`] serves them over HTTP.
//! - [`terraform`] reads a Terraform state for `envform init --from-terraform`.
//! - [`model`] is the vocabulary every layer shares: ids, statuses, the field registry.
//! - [`cli`] is the command line.

pub mod api;
pub mod apply;
pub mod cli;
pub mod control_plane;
pub mod desired;
mod local;
pub mod model;
mod parallel;
pub mod plan;
pub mod server;
pub mod state;
pub mod store;
pub mod target;
pub mod temporal;
pub mod terraform;

pub use cli::run;
