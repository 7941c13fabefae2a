//! The digest salt of a state: 32 random bytes made with the state's lineage, the key of the
//! HMAC that stands in for each `env_vars` value in plans and state. A stored digest then cannot
//! be checked against a guessed value without the salt, nor matched across states.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes in a salt (256 bits).
pub const DIGEST_SALT_BYTES: usize = 32;

/// A state's digest salt, written as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DigestSalt([u8; DIGEST_SALT_BYTES]);

impl DigestSalt {
    /// A fresh salt from the thread's CSPRNG (seeded by the operating system).
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// A salt of these bytes.
    pub const fn from_bytes(bytes: [u8; DIGEST_SALT_BYTES]) -> Self {
        Self(bytes)
    }

    /// The salt's bytes, the HMAC key.
    pub fn as_bytes(&self) -> &[u8; DIGEST_SALT_BYTES] {
        &self.0
    }
}

impl fmt::Debug for DigestSalt {
    // Logs and error messages never need it: shown as its length only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigestSalt(<{DIGEST_SALT_BYTES} bytes>)")
    }
}

impl Serialize for DigestSalt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for DigestSalt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut bytes = [0u8; DIGEST_SALT_BYTES];
        hex::decode_to_slice(text.as_bytes(), &mut bytes).map_err(|_| {
            serde::de::Error::custom(format!(
                "a digest salt is {} hex digits",
                DIGEST_SALT_BYTES * 2
            ))
        })?;
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salts_are_random_and_read_back_as_written() {
        let salt = DigestSalt::random();
        assert_ne!(salt, DigestSalt::random());
        let text = serde_json::to_string(&salt).expect("serializes");
        assert_eq!(text.len(), DIGEST_SALT_BYTES * 2 + 2, "{text}");
        let read: DigestSalt = serde_json::from_str(&text).expect("reads back");
        assert_eq!(read, salt);
        assert!(!format!("{salt:?}").contains(&text[1..9]));
        for bad in ["\"00\"", "\"zz\"", "1", "null"] {
            assert!(serde_json::from_str::<DigestSalt>(bad).is_err(), "{bad}");
        }
    }
}
