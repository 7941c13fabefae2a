//! Who and where this process runs: for lock information, `created_by` of the embedded control
//! plane, audit actors and worker registration. Never fails: it is only shown to people.

/// `user@host` of this process.
pub(crate) fn user_and_host() -> String {
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .find_map(|name| non_empty(std::env::var(name).ok()))
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{user}@{}", host_name())
}

/// This machine's host name.
pub(crate) fn host_name() -> String {
    non_empty(std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| non_empty(std::env::var("HOSTNAME").ok()))
        .or_else(|| non_empty(std::fs::read_to_string("/etc/hostname").ok()))
        .or_else(|| non_empty(std::env::var("COMPUTERNAME").ok()))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn non_empty(value: Option<String>) -> Option<String> {
    value
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// An error and its sources on one line: `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_chain_joins_sources() {
        let error = super::Wrapper(std::io::Error::other("disk full"));
        assert_eq!(super::error_chain(&error), "cannot write: disk full");
    }

    #[test]
    fn user_and_host_has_both_parts() {
        let who = super::user_and_host();
        let (user, host) = who.split_once('@').expect("user@host");
        assert!(!user.is_empty() && !host.is_empty());
    }
}

#[cfg(test)]
#[derive(Debug)]
struct Wrapper(std::io::Error);

#[cfg(test)]
impl std::fmt::Display for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot write")
    }
}

#[cfg(test)]
impl std::error::Error for Wrapper {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Installs ring as the process's TLS crypto provider, once: reqwest is built without a bundled
/// one. Does nothing when the embedding program installed a provider first.
pub fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // An error means a provider is already installed, which is all that is needed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
