//! The API keys file (`--api-keys-file`): named keys with an organization and a role, stored as
//! SHA-256 digests only, in YAML or (for a `.toml` file) TOML. Read at start and again on SIGHUP.
//!
//! ```yaml
//! keys:
//!   - name: ci-plan
//!     organization: acme
//!     role: viewer
//!     digest: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::auth::{KeyGrant, Role};
use crate::api::OrganizationId;

/// Longest key name.
const MAX_NAME_CHARS: usize = 64;

/// Why a keys file cannot be used; the server keeps the keys it had.
#[derive(Debug, thiserror::Error)]
pub enum KeysFileError {
    /// The file cannot be read.
    #[error("cannot read the API keys file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML or TOML of the expected shape.
    #[error("the API keys file {} is invalid: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the entry.
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysDocument {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyEntry {
    name: String,
    organization: String,
    role: Role,
    digest: String,
}

/// Reads and checks the keys file at `path`.
pub fn load(path: &Path) -> Result<Vec<KeyGrant>, KeysFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeysFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let toml = path
        .extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"));
    parse(&text, toml).map_err(|reason| KeysFileError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// Parses a keys file's text (TOML when `toml`, else YAML) into grants.
pub fn parse(text: &str, toml: bool) -> Result<Vec<KeyGrant>, String> {
    let document: KeysDocument = if toml {
        toml::from_str(text).map_err(|error| error.to_string())?
    } else if text.trim().is_empty() {
        KeysDocument { keys: Vec::new() }
    } else {
        serde_saphyr::from_str(text).map_err(|error| error.to_string())?
    };
    let mut names = BTreeSet::new();
    let mut grants: Vec<KeyGrant> = Vec::new();
    for (index, entry) in document.keys.into_iter().enumerate() {
        let at = format!("key #{}", index + 1);
        if entry.name.is_empty() || entry.name.chars().count() > MAX_NAME_CHARS {
            return Err(format!(
                "{at}: the name must be 1 to {MAX_NAME_CHARS} characters"
            ));
        }
        if !entry
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(format!(
                "{at}: the name may hold only letters, digits, `-`, `_` and `.`"
            ));
        }
        if !names.insert(entry.name.clone()) {
            return Err(format!("{at}: the name `{}` is used twice", entry.name));
        }
        let organization = entry.organization.trim();
        if organization.is_empty() || crate::model::text_problem(organization).is_some() {
            return Err(format!("{at} ({}): invalid organization", entry.name));
        }
        let grant = KeyGrant::from_digest(
            entry.name.clone(),
            OrganizationId(organization.to_owned()),
            entry.role,
            &entry.digest,
        )
        .map_err(|reason| format!("{at} ({}): {reason}", entry.name))?;
        if let Some(earlier) = grants.iter().find(|earlier| earlier.same_key(&grant)) {
            return Err(format!(
                "{at} ({}): the same key as `{}`",
                entry.name, earlier.name
            ));
        }
        grants.push(grant);
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::auth::key_digest_text;

    #[test]
    fn reads_yaml_and_toml() {
        let digest = key_digest_text("sk-plan");
        let yaml = format!(
            "keys:\n  - name: ci-plan\n    organization: acme\n    role: viewer\n    digest: {digest}\n"
        );
        let grants = parse(&yaml, false).expect("valid YAML");
        assert_eq!(grants.len(), 1);
        assert_eq!(grants[0].name, "ci-plan");
        assert_eq!(grants[0].role, Role::Viewer);
        let toml = format!(
            "[[keys]]\nname = \"ci-plan\"\norganization = \"acme\"\nrole = \"admin\"\ndigest = \"{digest}\"\n"
        );
        let grants = parse(&toml, true).expect("valid TOML");
        assert_eq!(grants[0].role, Role::Admin);
        assert!(parse("", false).expect("empty").is_empty());
    }

    #[test]
    fn refuses_bad_entries() {
        let digest = key_digest_text("sk");
        let entry = |name: &str, role: &str, digest: &str| {
            format!(
                "  - name: {name}\n    organization: acme\n    role: {role}\n    digest: {digest}\n"
            )
        };
        let file = |entries: &[String]| format!("keys:\n{}", entries.concat());
        for (text, expected) in [
            (file(&[entry("a", "owner", &digest)]), "owner"),
            (file(&[entry("a", "viewer", "plain-key")]), "sha256:"),
            (file(&[entry("a b", "viewer", &digest)]), "name"),
            (
                file(&[
                    entry("a", "viewer", &digest),
                    entry("a", "admin", &key_digest_text("x")),
                ]),
                "twice",
            ),
            (
                file(&[entry("a", "viewer", &digest), entry("b", "admin", &digest)]),
                "same key",
            ),
            ("keys: []\nextra: 1\n".to_owned(), "extra"),
        ] {
            let error = parse(&text, false).expect_err(&text);
            assert!(error.contains(expected), "{error} (wanted {expected})");
        }
    }
}
