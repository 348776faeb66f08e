//! The Ed25519 keys of the history's checkpoints. The signing key is
//! configured outside the database, so that whoever can rewrite the database
//! cannot sign a rewritten chain; retired public keys stay configured so that
//! checkpoints signed before a rotation still verify.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use countersign_domain::history::SigningKeyInfo;
use countersign_domain::history::checkpoint::signed_bytes;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A public key that signs or signed checkpoints, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPublicKey {
    key: VerifyingKey,
    key_id: String,
}

impl HistoryPublicKey {
    fn of(key: VerifyingKey) -> Self {
        let key_id = hex::encode(&Sha256::digest(key.as_bytes())[..8]);
        HistoryPublicKey { key, key_id }
    }

    /// The 32 raw bytes in standard base64, or a PEM `PUBLIC KEY` (SPKI).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            let key = VerifyingKey::from_public_key_pem(text)
                .map_err(|e| anyhow::anyhow!("not an Ed25519 PEM public key: {e}"))?;
            return Ok(Self::of(key));
        }
        let bytes = STANDARD
            .decode(text)
            .context("an Ed25519 public key is 32 bytes in standard base64")?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("an Ed25519 public key is 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("not an Ed25519 public key: {e}"))?;
        Ok(Self::of(key))
    }

    /// The first 8 bytes of the SHA-256 of the raw public key, in hex.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The 32 raw bytes in standard base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key.as_bytes())
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.key.verify(message, &signature).is_ok()
    }

    pub fn info(&self, current: bool) -> SigningKeyInfo {
        SigningKeyInfo {
            key_id: self.key_id.clone(),
            algorithm: "Ed25519",
            public_key: self.to_base64(),
            current,
        }
    }
}

/// Signs checkpoints (`docs/history.md` names the bytes).
pub struct HistorySigner {
    key: SigningKey,
    public: HistoryPublicKey,
}

impl std::fmt::Debug for HistorySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySigner")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl HistorySigner {
    /// The signer of a raw 32-byte Ed25519 secret key (test vectors).
    pub fn from_secret_bytes(bytes: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(bytes);
        let public = HistoryPublicKey::of(key.verifying_key());
        HistorySigner { key, public }
    }

    /// A new random key (embedded mode and tests).
    pub fn generate() -> Self {
        Self::from_secret_bytes(&rand::random::<[u8; 32]>())
    }

    /// A PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        Ok(Self::from_secret_bytes(&key.to_bytes()))
    }

    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_pem(&pem).with_context(|| format!("history signing key {}", path.display()))
    }

    /// The key as PKCS#8 PEM, to be kept in a file.
    pub fn to_pem(&self) -> anyhow::Result<String> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| anyhow::anyhow!("encoding the history signing key: {e}"))?;
        Ok(pem.to_string())
    }

    pub fn public_key(&self) -> &HistoryPublicKey {
        &self.public
    }

    /// Names the key in each checkpoint.
    pub fn key_id(&self) -> &str {
        &self.public.key_id
    }

    /// The base64 signature of the checkpoint `{tenant, seq, hash, signed_at}`.
    pub fn sign(&self, tenant: Uuid, seq: i64, hash: &str, signed_at: DateTime<Utc>) -> String {
        let message = signed_bytes(tenant, seq, hash, signed_at);
        STANDARD.encode(self.key.sign(&message).to_bytes())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures_verify_only_for_what_was_signed_and_keys_survive_pem_and_base64() {
        let signer = HistorySigner::generate();
        let tenant = Uuid::now_v7();
        let at = Utc::now();
        let signature = signer.sign(tenant, 7, "abc", at);
        let public = signer.public_key();
        let holds = |t, seq, hash| public.verify(&signed_bytes(t, seq, hash, at), &signature);
        assert!(holds(tenant, 7, "abc"));
        assert!(!holds(tenant, 7, "abd"));
        assert!(!holds(tenant, 8, "abc"));
        assert!(!holds(Uuid::now_v7(), 7, "abc"));
        assert!(!public.verify(&signed_bytes(tenant, 7, "abc", at), "not base64!"));
        let again = HistorySigner::from_pem(&signer.to_pem().unwrap()).unwrap();
        assert_eq!(again.key_id(), signer.key_id());
        let parsed = HistoryPublicKey::parse(&public.to_base64()).unwrap();
        assert_eq!(&parsed, public);
        assert!(HistoryPublicKey::parse("AAAA").is_err());
    }
}
