//! The Ed25519 key that signs history chain heads. It is configured outside the
//! database, so that whoever can rewrite the database cannot re-sign the chain.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Signs and verifies `"{tenant_id}:{seq}:{hash}"`.
pub struct HistorySigner {
    key: SigningKey,
    verifying: VerifyingKey,
    key_id: String,
}

impl std::fmt::Debug for HistorySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistorySigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl HistorySigner {
    fn from_key(key: SigningKey) -> Self {
        let verifying = key.verifying_key();
        let key_id = hex::encode(&Sha256::digest(verifying.as_bytes())[..8]);
        HistorySigner {
            key,
            verifying,
            key_id,
        }
    }

    /// A new random key (embedded mode and tests).
    pub fn generate() -> Self {
        Self::from_key(SigningKey::from_bytes(&rand::random::<[u8; 32]>()))
    }

    /// A PKCS#8 PEM Ed25519 private key.
    pub fn from_pem(pem: &str) -> anyhow::Result<Self> {
        let key = SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| anyhow::anyhow!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        Ok(Self::from_key(key))
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

    /// Names the key in each signature row: the first 8 bytes of the public key's SHA-256, in hex.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// A base64 signature of a chain head.
    pub fn sign(&self, tenant: Uuid, seq: i64, hash: &str) -> String {
        STANDARD.encode(
            self.key
                .sign(message(tenant, seq, hash).as_bytes())
                .to_bytes(),
        )
    }

    /// Whether `signature` is this key's signature of the chain head.
    pub fn verify(&self, tenant: Uuid, seq: i64, hash: &str, signature: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.verifying
            .verify(message(tenant, seq, hash).as_bytes(), &signature)
            .is_ok()
    }
}

fn message(tenant: Uuid, seq: i64, hash: &str) -> String {
    format!("{tenant}:{seq}:{hash}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn signatures_verify_only_for_what_was_signed_and_survive_pem() {
        let signer = HistorySigner::generate();
        let tenant = Uuid::now_v7();
        let signature = signer.sign(tenant, 7, "abc");
        assert!(signer.verify(tenant, 7, "abc", &signature));
        assert!(!signer.verify(tenant, 7, "abd", &signature));
        assert!(!signer.verify(tenant, 8, "abc", &signature));
        assert!(!signer.verify(Uuid::now_v7(), 7, "abc", &signature));
        assert!(!signer.verify(tenant, 7, "abc", "not base64!"));
        let again = HistorySigner::from_pem(&signer.to_pem().unwrap()).unwrap();
        assert_eq!(again.key_id(), signer.key_id());
        assert!(again.verify(tenant, 7, "abc", &signature));
        assert!(!HistorySigner::generate().verify(tenant, 7, "abc", &signature));
    }
}
