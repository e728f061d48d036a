//! Secrets at rest: the Cloud API's access tokens and app secrets are sealed with
//! ChaCha20-Poly1305 under the server's 32-byte `secret_key` before they reach the database.
//!
//! Where the key comes from: `secret_key` (base64) when set; otherwise, on SQLite, a key file
//! `wharf.key` next to the database, created with mode 0600 on first start (back it up with
//! the database: without it the sealed credentials cannot be read); on PostgreSQL, nowhere:
//! the Cloud API engine then stays unavailable, because several instances must share one key
//! and a file on one machine cannot give them that.

use std::path::{Path, PathBuf};

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD},
};
use ring::{
    aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};

use crate::Config;

/// Seals and opens secrets with the server's key.
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
    /// Where the key came from, for messages.
    pub origin: String,
}

/// Why a sealed value cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open a sealed secret: {0} (was secret_key changed?)")]
pub struct OpenError(&'static str);

const PREFIX: &str = "v1:";

impl SecretBox {
    /// A box with `key`.
    pub fn new(key: &[u8; 32], origin: String) -> Self {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key fits");
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            origin,
        }
    }

    /// `v1:` and base64 of a random nonce, the ciphertext and its tag. `label` (the field's
    /// name) is authenticated with it, so sealed values cannot be swapped between fields.
    pub fn seal(&self, label: &str, plaintext: &str) -> String {
        format!(
            "{PREFIX}{}",
            STANDARD.encode(self.seal_bytes(label, plaintext.as_bytes()))
        )
    }

    /// A random nonce, then the ciphertext of `plaintext` and its tag, `label` authenticated
    /// with it (the binary form, for columns of bytes).
    pub fn seal_bytes(&self, label: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).expect("the system RNG works");
        let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + CHACHA20_POLY1305.tag_len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let (head, data) = out.split_at_mut(NONCE_LEN);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::try_assume_unique_for_key(head).expect("a nonce-sized slice"),
                Aad::from(label.as_bytes()),
                data,
            )
            .expect("sealing in memory cannot fail");
        out.extend_from_slice(tag.as_ref());
        out
    }

    /// The plaintext of bytes from [`SecretBox::seal_bytes`] under `label`.
    pub fn open_bytes(&self, label: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_LEN {
            return Err(OpenError("too short"));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError("bad nonce"))?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(label.as_bytes()), &mut data)
            .map_err(|_| OpenError("authentication failed"))?;
        let len = plain.len();
        data.truncate(len);
        Ok(data)
    }

    /// The plaintext of a value sealed under `label`.
    pub fn open(&self, label: &str, sealed: &str) -> Result<String, OpenError> {
        let raw = sealed
            .strip_prefix(PREFIX)
            .ok_or(OpenError("unknown format"))?;
        let data = STANDARD.decode(raw).map_err(|_| OpenError("not base64"))?;
        let plain = self.open_bytes(label, &data)?;
        String::from_utf8(plain).map_err(|_| OpenError("not UTF-8"))
    }
}

/// The store seals the linked WhatsApp Web devices' keys with the server's box.
impl wharf_core::Sealer for SecretBox {
    fn seal(&self, context: &str, plaintext: &[u8]) -> Vec<u8> {
        self.seal_bytes(context, plaintext)
    }

    fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, wharf_core::SealError> {
        self.open_bytes(context, sealed)
            .map_err(|OpenError(why)| wharf_core::SealError(why))
    }
}

/// Decodes `secret_key`: base64 (padded or not) of exactly 32 bytes.
pub fn decode_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = STANDARD
        .decode(text)
        .or_else(|_| STANDARD_NO_PAD.decode(text))
        .map_err(|_| {
            "secret_key must be base64 (e.g. from `openssl rand -base64 32`)".to_owned()
        })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "secret_key must decode to 32 bytes (got {}); make one with `openssl rand -base64 32`",
            bytes.len()
        )
    })
}

/// The key file of a SQLite database: `wharf.key` in the database's directory.
pub fn key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    let dir = Path::new(path)
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default();
    Some(dir.join("wharf.key"))
}

/// The server's secret box: from `secret_key`, else (SQLite) the key file, created when
/// missing; `None` when there is no key (PostgreSQL without `secret_key`).
pub fn load(config: &Config) -> Result<Option<SecretBox>, String> {
    if let Some(text) = config
        .secret_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
    {
        return Ok(Some(SecretBox::new(
            &decode_key(text)?,
            "secret_key".into(),
        )));
    }
    let Some(path) = key_file(&config.database_url) else {
        return Ok(None);
    };
    let key = read_or_create(&path)?;
    Ok(Some(SecretBox::new(&key, path.display().to_string())))
}

fn read_or_create(path: &Path) -> Result<[u8; 32], String> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            decode_key(&text).map_err(|e| format!("{}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            SystemRandom::new()
                .fill(&mut key)
                .map_err(|_| "the system random generator failed".to_owned())?;
            write_private(path, &format!("{}\n", STANDARD.encode(key)))
                .map_err(|e| format!("cannot create the key file {}: {e}", path.display()))?;
            tracing::info!(path = %path.display(), "created the secret key file; back it up with the database");
            Ok(key)
        }
        Err(e) => Err(format!("cannot read the key file {}: {e}", path.display())),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    // create_new: two processes starting at once must not overwrite each other's key.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    // The file's directory entry too: sealed rows committed after this start must not
    // outlive a key file that a power loss took away.
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), "the secret key file is readable by others; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// Whether two secrets are equal, compared through their SHA-256 digests so the time taken
/// tells nothing about where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    Sha256::digest(a) == Sha256::digest(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_label() {
        let a = SecretBox::new(&[7; 32], "test".into());
        let sealed = a.seal("access_token", "EAAG-secret");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("EAAG"));
        assert_ne!(sealed, a.seal("access_token", "EAAG-secret"), "fresh nonce");
        assert_eq!(a.open("access_token", &sealed).unwrap(), "EAAG-secret");
        assert!(a.open("app_secret", &sealed).is_err());
        let b = SecretBox::new(&[8; 32], "test".into());
        assert!(b.open("access_token", &sealed).is_err());
    }

    #[test]
    fn sealed_bytes_open_only_with_their_key_and_context() {
        use wharf_core::Sealer;
        let a = SecretBox::new(&[7; 32], "test".into());
        let secret = [0xA5u8; 32];
        let sealed = Sealer::seal(&a, "web/sess_1/identity", &secret);
        assert_eq!(sealed.len(), NONCE_LEN + 32 + 16);
        assert!(!sealed.windows(8).any(|w| w == &secret[..8]));
        assert_eq!(
            Sealer::open(&a, "web/sess_1/identity", &sealed).unwrap(),
            secret
        );
        assert!(Sealer::open(&a, "web/sess_2/identity", &sealed).is_err());
        let b = SecretBox::new(&[8; 32], "test".into());
        assert!(Sealer::open(&b, "web/sess_1/identity", &sealed).is_err());
        assert!(Sealer::open(&a, "web/sess_1/identity", &sealed[..10]).is_err());
        assert_eq!(
            Sealer::open(&a, "x", &Sealer::seal(&a, "x", b"")).unwrap(),
            b""
        );
    }

    #[test]
    fn keys_are_base64_of_32_bytes() {
        let text = STANDARD.encode([1u8; 32]);
        assert_eq!(decode_key(&text).unwrap(), [1u8; 32]);
        assert_eq!(decode_key(text.trim_end_matches('=')).unwrap(), [1u8; 32]);
        assert!(decode_key("c2hvcnQ=").unwrap_err().contains("32 bytes"));
        assert!(decode_key("not base64!").is_err());
        assert_eq!(
            key_file("sqlite://./data/wharf.db?mode=rwc"),
            Some(PathBuf::from("./data/wharf.key"))
        );
        assert_eq!(key_file("postgres://db/wharf"), None);
        assert_eq!(key_file("sqlite::memory:"), None);
    }
}
