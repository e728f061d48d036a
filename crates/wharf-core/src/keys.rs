//! API tokens: 256-bit random secrets, stored only as SHA-256 hashes, named by fingerprint.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// A personal access token: everything in its account.
    Pat,
    /// A session key: only its own session.
    Session,
}

impl KeyKind {
    /// The token prefix, which also tells the kind apart when a token is presented.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Pat => "wh_pat_",
            Self::Session => "wh_sk_",
        }
    }

    /// The stored name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pat => "pat",
            Self::Session => "session",
        }
    }

    /// The kind named by [`KeyKind::as_str`].
    pub fn from_db(text: &str) -> Option<Self> {
        match text {
            "pat" => Some(Self::Pat),
            "session" => Some(Self::Session),
            _ => None,
        }
    }
}

/// The SHA-256 of a raw token, hex-encoded: the only form a token is stored in. Tokens carry
/// 256 bits of entropy, so a fast hash is enough; no password hashing is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHash(pub String);

impl TokenHash {
    /// Hashes a presented raw token.
    pub fn of(raw: &str) -> Self {
        Self(hex::encode(Sha256::digest(raw.as_bytes())))
    }

    /// The public fingerprint: `fp_` and the first 16 hex characters of the hash.
    pub fn fingerprint(&self) -> String {
        format!("fp_{}", &self.0[..16])
    }
}

/// A freshly minted token: the raw text (shown once) and what is stored.
#[derive(Clone)]
pub struct NewToken {
    /// The raw secret, returned to the caller exactly once.
    pub raw: String,
    /// Its hash, the stored form.
    pub hash: TokenHash,
    /// Its fingerprint.
    pub fingerprint: String,
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewToken")
            .field("raw", &"<redacted>")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl NewToken {
    /// Mints a token of the given kind from 32 random bytes.
    pub fn generate(kind: KeyKind) -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let raw = format!("{}{}", kind.prefix(), hex::encode(bytes));
        let hash = TokenHash::of(&raw);
        let fingerprint = hash.fingerprint();
        Self {
            raw,
            hash,
            fingerprint,
        }
    }
}

/// The kind a presented token claims by its prefix, if any.
pub fn kind_of(raw: &str) -> Option<KeyKind> {
    [KeyKind::Pat, KeyKind::Session]
        .into_iter()
        .find(|k| raw.starts_with(k.prefix()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_hashed() {
        let a = NewToken::generate(KeyKind::Pat);
        let b = NewToken::generate(KeyKind::Pat);
        assert_ne!(a.raw, b.raw);
        assert!(a.raw.starts_with("wh_pat_"));
        assert_eq!(a.raw.len(), 7 + 64);
        assert_eq!(TokenHash::of(&a.raw), a.hash);
        assert!(a.fingerprint.starts_with("fp_") && a.fingerprint.len() == 19);
        assert_eq!(kind_of(&a.raw), Some(KeyKind::Pat));
        assert_eq!(
            kind_of(&NewToken::generate(KeyKind::Session).raw),
            Some(KeyKind::Session)
        );
        assert!(!format!("{a:?}").contains(&a.raw));
    }
}
