//! Sealing secrets at rest: the contract between the store (which keeps sealed bytes) and
//! the server (which holds the key). No cryptography here, only the trait.

/// Encrypts and authenticates bytes under a key the implementor holds, bound to a context
/// string: a value sealed under one context does not open under another, so sealed values
/// cannot be moved between rows, sessions or fields unnoticed.
pub trait Sealer: Send + Sync {
    /// `plaintext` sealed under `context` (a fresh nonce each time).
    fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8>;

    /// The plaintext of `sealed`, if it was sealed under `context` with this key.
    fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError>;
}

/// Why sealed bytes could not be opened: the wrong key, the wrong context, or damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot open a sealed value: {0} (was the secret key changed?)")]
pub struct SealError(pub &'static str);
