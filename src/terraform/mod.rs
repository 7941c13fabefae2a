//! Terraform state read for a migration (docs/src/guide/migrating-from-terraform.md): a state
//! document of format version 4 parsed ([`TerraformState`]), and every `controlplane_environment`
//! instance of the Kubiya control-plane provider in it mapped to an environment envform can write
//! into a desired-state file ([`Migration`]).
//!
//! Pure: the caller reads the document (a file, or a Terraform HTTP backend) and decides what to
//! do with the result; nothing here does I/O, and nothing here ever writes Terraform's state.
//! Imports only [`crate::model`], so the command line, the planner and the tests can all use it.

mod document;
mod error;
mod migration;

pub use document::{Instance, Resource, ResourceMode, TerraformState, address_without_keys};
pub use error::TerraformError;
pub use migration::{
    ENVIRONMENT_TYPES, Migration, SkipReason, SkippedResource, TerraformEnvironment,
};

#[cfg(test)]
mod tests;
