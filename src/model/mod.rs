//! The domain's vocabulary: identifiers, statuses, the execution environment and the registry of
//! the fields envform manages. Every layer imports these types from here; this module imports no
//! other module of the crate, so it can never be the start of an import circle.

mod audit;
mod compact;
mod execution;
mod field;
mod id;
mod name;
mod owner;
mod salt;
mod state_backend;
mod status;
mod wire_enum;

pub use audit::{AuditAction, UnknownAuditAction};
pub use compact::{CompactMap, compact_map_from_str, compact_object};
pub use execution::ExecutionEnvironment;
pub use field::{FieldSet, FieldSpec, ManagedField};
pub use id::{EnvironmentId, OrganizationId, WorkerId};
pub use name::{
    DEFAULT_ENVIRONMENT, NAME_MAX_CHARS, NAME_MIN_CHARS, NameProblem, is_invisible, text_problem,
};
pub use owner::{Lineage, OWNER_KEY, Owner};
pub use salt::{DIGEST_SALT_BYTES, DigestSalt};
pub use state_backend::HttpBackendConfig;
pub use status::{Status, UnknownStatus};

/// A JSON object, as used by `configuration`, `metadata` and `settings`.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;
