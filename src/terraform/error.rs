//! Why a Terraform state cannot be migrated. Every message names the state it read (a path, or a
//! backend address without its password); none quotes an attribute's value, which may be secret.

use std::sync::Arc;

use miette::{NamedSource, SourceSpan};

/// A Terraform state that cannot be read or migrated.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TerraformError {
    /// The document is not JSON, or not shaped like a Terraform state.
    #[error("{file} is not a Terraform state: {message}")]
    #[diagnostic(
        code(envform::terraform::invalid_document),
        help("pass the state itself: `terraform state pull > terraform.tfstate` writes it")
    )]
    InvalidDocument {
        /// The state's path or address.
        file: String,
        /// What the JSON parser said.
        message: String,
        /// The document, when it is text.
        #[source_code]
        source_code: Option<Arc<NamedSource<String>>>,
        /// Where the parser stopped.
        #[label("here")]
        span: Option<SourceSpan>,
    },
    /// A format other than version 4 (Terraform 0.12 and later).
    #[error("{file} is Terraform state format {version}; envform reads format 4")]
    #[diagnostic(
        code(envform::terraform::unsupported_version),
        help(
            "format 4 is what Terraform 0.12 and later write: run `terraform refresh` (or any \
             apply) with a current Terraform, then `terraform state pull` the upgraded state"
        )
    )]
    UnsupportedVersion {
        /// The state's path or address.
        file: String,
        /// The `version` the document has (`none` when it has none).
        version: String,
    },
    /// An environment instance whose attribute envform cannot use.
    #[error("{file}: {address}: `{attribute}` {problem}")]
    #[diagnostic(code(envform::terraform::invalid_attribute))]
    InvalidAttribute {
        /// The state's path or address.
        file: String,
        /// The instance's address, e.g. `module.regions["eu"].controlplane_environment.this`.
        address: String,
        /// The attribute.
        attribute: &'static str,
        /// What is wrong with it (never its value).
        problem: String,
    },
    /// Two instances with one name: envform's identity is the name, so one would be lost.
    #[error("{file}: `{name}` is the name of both {first} and {second}")]
    #[diagnostic(
        code(envform::terraform::duplicate_name),
        help("the provider allows it, envform does not: rename one in Terraform first")
    )]
    DuplicateName {
        /// The state's path or address.
        file: String,
        /// The shared name.
        name: String,
        /// The first instance's address.
        first: String,
        /// The second instance's address.
        second: String,
    },
    /// Two instances with one id: Terraform imported one environment twice.
    #[error("{file}: {first} and {second} are both environment {id}")]
    #[diagnostic(
        code(envform::terraform::duplicate_id),
        help("`terraform state rm` the stale one first")
    )]
    DuplicateId {
        /// The state's path or address.
        file: String,
        /// The shared id.
        id: String,
        /// The first instance's address.
        first: String,
        /// The second instance's address.
        second: String,
    },
}
