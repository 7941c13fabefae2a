//! Worker tokens: 256 random bits from the OS, shown once, stored only as a SHA-256 digest.

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::api::WorkerToken;
use crate::store::WorkerTokenHash;

/// Marks envform worker tokens, so a leaked one is recognizable (secret scanners, logs).
const TOKEN_PREFIX: &str = "efw_";
/// Random bytes per token (256 bits).
const TOKEN_BYTES: usize = 32;

/// The OS random source failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub(crate) struct RandomSourceFailed(#[source] rand::rand_core::OsError);

/// A fresh token.
pub(crate) fn mint() -> Result<WorkerToken, RandomSourceFailed> {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(RandomSourceFailed)?;
    Ok(WorkerToken::new(format!(
        "{TOKEN_PREFIX}{}",
        hex::encode(bytes)
    )))
}

/// The digest stored for a token.
pub(crate) fn hash(token: &str) -> WorkerTokenHash {
    WorkerTokenHash(hex::encode(Sha256::digest(token.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hashed() {
        let first = mint().unwrap();
        let second = mint().unwrap();
        assert_ne!(first, second);
        assert!(first.expose().starts_with("efw_"));
        assert_eq!(first.expose().len(), TOKEN_PREFIX.len() + 2 * TOKEN_BYTES);
        let digest = hash(first.expose());
        assert_eq!(digest.0.len(), 64);
        assert!(!digest.0.contains(&first.expose()[TOKEN_PREFIX.len()..]));
        assert_eq!(digest, hash(first.expose()));
        // The known SHA-256 of "abc".
        assert_eq!(
            hash("abc").0,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
