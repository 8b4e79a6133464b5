//! The shared-secret access token that agents present to the edge server.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::wire::MAX_TOKEN_BYTES;

/// An access token (the operator's shared secret). Debug output never shows it.
#[derive(Clone)]
pub struct AuthToken {
    bytes: Vec<u8>,
}

/// A token that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("access token must be 1..={MAX_TOKEN_BYTES} bytes, got {len}")]
pub struct TokenError {
    /// Length of the rejected token.
    pub len: usize,
}

impl AuthToken {
    /// Wraps a token, checking its length fits the wire format.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, TokenError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MAX_TOKEN_BYTES {
            return Err(TokenError { len: bytes.len() });
        }
        Ok(Self { bytes })
    }

    /// The token's bytes, as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `presented` equals this token, in time independent of where they differ.
    ///
    /// Both sides are hashed first so that the comparison also does not leak the length.
    pub fn verify(&self, presented: &[u8]) -> bool {
        let expected = Sha256::digest(&self.bytes);
        let got = Sha256::digest(presented);
        expected.as_slice().ct_eq(got.as_slice()).into()
    }
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthToken(<{} bytes redacted>)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_only_the_same_token() {
        let t = AuthToken::new("s3cret").expect("valid");
        assert!(t.verify(b"s3cret"));
        assert!(!t.verify(b"s3cres"));
        assert!(!t.verify(b"s3cret!"));
        assert!(!t.verify(b""));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(AuthToken::new("").is_err());
    }
}
