//! Sealing secrets that must be readable again (OAuth tokens of connected accounts, webhook
//! signing secrets) with AES-256-GCM. The key lives outside the database (`ENCRYPTION_KEY`,
//! 32 bytes, base64). Stored form: 12-byte nonce || ciphertext+tag.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{Context, bail};
use base64::Engine;
use rand::RngCore;

const NONCE_LEN: usize = 12;

/// Seals and opens secrets with one key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from a base64-encoded 32-byte key.
    pub fn from_base64_key(key: &str) -> anyhow::Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.trim())
            .context("ENCRYPTION_KEY is not base64")?;
        if bytes.len() != 32 {
            bail!(
                "ENCRYPTION_KEY must decode to 32 bytes, got {}",
                bytes.len()
            );
        }
        Ok(SecretBox {
            cipher: Aes256Gcm::new_from_slice(&bytes).expect("length checked"),
        })
    }

    /// Encrypts `plaintext` under a fresh random nonce.
    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher
                .encrypt(Nonce::from_slice(&nonce), plaintext)
                .expect("AES-GCM encryption cannot fail"),
        );
        out
    }

    /// Decrypts what [`SecretBox::seal`] produced; fails if it was altered or sealed with another key.
    pub fn open(&self, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            bail!("sealed secret too short");
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| anyhow::anyhow!("sealed secret does not open with this key"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_unaltered() {
        let secret_box = SecretBox::from_base64_key(&key(7)).unwrap();
        let sealed = secret_box.seal(b"oauth-refresh-token");
        assert!(
            !sealed.windows(5).any(|w| w == b"oauth"),
            "plaintext visible in sealed form"
        );
        assert_eq!(secret_box.open(&sealed).unwrap(), b"oauth-refresh-token");
        assert!(
            SecretBox::from_base64_key(&key(8))
                .unwrap()
                .open(&sealed)
                .is_err()
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(secret_box.open(&tampered).is_err());
    }

    #[test]
    fn wrong_key_sizes_are_refused() {
        assert!(SecretBox::from_base64_key("c2hvcnQ=").is_err());
        assert!(SecretBox::from_base64_key("not base64!").is_err());
    }
}
