//! The [`NamespaceProvisioner`] seam, and [`BuiltinProvisioner`], which models Temporal Cloud's
//! namespace provisioning workflow (no Temporal Cloud is reachable from the embedded service).

use std::collections::BTreeSet;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::api::OrganizationId;

/// A namespace the provisioner created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedNamespace {
    /// The namespace's name, e.g. `envform-acme`.
    pub temporal_namespace: String,
    /// The namespace's identifier, e.g. `envform-acme.1a2b3`.
    pub temporal_namespace_id: String,
}

/// Creates an organization's Temporal namespace.
#[async_trait::async_trait]
pub trait NamespaceProvisioner: Send + Sync {
    /// Provisions the namespace; the error is shown to users as the environments' `error_message`.
    async fn provision(
        &self,
        organization: &OrganizationId,
        workflow_id: &str,
    ) -> Result<ProvisionedNamespace, String>;

    /// The id of the organization's provisioning workflow, when the provisioner derives it from
    /// the organization (so that two processes starting it start one workflow); `None` for a
    /// fresh id per attempt.
    fn workflow_id(&self, _organization: &OrganizationId) -> Option<String> {
        None
    }

    /// How failed provisioning is retried by itself (the environments stay `error` meanwhile);
    /// `None` when only the next create retries it.
    fn retry_backoff(&self) -> Option<backon::ExponentialBuilder> {
        None
    }
}

/// How the [`BuiltinProvisioner`] behaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltinProvisionerConfig {
    /// How long provisioning takes (zero for embedded use, so environments settle at once).
    pub delay: Duration,
    /// Organizations whose provisioning fails, to exercise the `error` path.
    pub fail_organizations: BTreeSet<OrganizationId>,
}

/// The built-in provisioner: waits `delay`, then succeeds with a namespace derived from the
/// organization, or fails for the organizations configured to fail.
#[derive(Debug, Clone, Default)]
pub struct BuiltinProvisioner {
    config: BuiltinProvisionerConfig,
}

impl BuiltinProvisioner {
    /// A provisioner with this behaviour.
    pub fn new(config: BuiltinProvisionerConfig) -> Self {
        Self { config }
    }
}

#[async_trait::async_trait]
impl NamespaceProvisioner for BuiltinProvisioner {
    async fn provision(
        &self,
        organization: &OrganizationId,
        _workflow_id: &str,
    ) -> Result<ProvisionedNamespace, String> {
        if !self.config.delay.is_zero() {
            tokio::time::sleep(self.config.delay).await;
        }
        if self.config.fail_organizations.contains(organization) {
            return Err(format!(
                "Temporal namespace provisioning failed for organization `{organization}`: \
                 the built-in provisioner is configured to fail for it"
            ));
        }
        let temporal_namespace = namespace_name(organization);
        // Temporal Cloud ids are `<namespace>.<account>`; the account part is derived from the
        // organization so it is stable across retries and restarts.
        let account = hex::encode(Sha256::digest(organization.0.as_bytes()));
        let temporal_namespace_id = format!("{temporal_namespace}.{}", &account[..5]);
        Ok(ProvisionedNamespace {
            temporal_namespace,
            temporal_namespace_id,
        })
    }
}

/// `envform-<organization>`, with characters Temporal does not allow in names replaced by `-`.
pub fn namespace_name(organization: &OrganizationId) -> String {
    namespace_name_with_prefix("envform-", organization)
}

/// `<prefix><organization>`, with characters Temporal does not allow in names replaced by `-`.
pub fn namespace_name_with_prefix(prefix: &str, organization: &OrganizationId) -> String {
    let sanitized: String = organization
        .0
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("{prefix}{sanitized}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn succeeds_with_a_namespace_named_after_the_organization() {
        let provisioner = BuiltinProvisioner::default();
        let namespace = provisioner
            .provision(&OrganizationId("Acme Corp".into()), "workflow")
            .await
            .unwrap();
        assert_eq!(namespace.temporal_namespace, "envform-acme-corp");
        assert!(
            namespace
                .temporal_namespace_id
                .starts_with("envform-acme-corp.")
        );
        assert_eq!(
            namespace.temporal_namespace_id.len(),
            "envform-acme-corp.".len() + 5
        );
    }

    #[tokio::test]
    async fn fails_for_configured_organizations_and_waits_the_delay() {
        let failing = OrganizationId("doomed".into());
        let provisioner = BuiltinProvisioner::new(BuiltinProvisionerConfig {
            delay: Duration::from_millis(30),
            fail_organizations: BTreeSet::from([failing.clone()]),
        });
        let started = std::time::Instant::now();
        let error = provisioner
            .provision(&failing, "workflow")
            .await
            .unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert!(error.contains("`doomed`"), "{error}");
        assert!(
            provisioner
                .provision(&OrganizationId("fine".into()), "workflow")
                .await
                .is_ok()
        );
    }
}
