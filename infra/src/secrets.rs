//! PINs (argon2) and high-entropy secrets (SHA-256), and their generation.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// A PHC-format argon2id hash of a PIN. Runs on the blocking pool: it is slow on purpose.
pub async fn hash_pin(pin: &str) -> anyhow::Result<String> {
    let pin = pin.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Argon2::default()
            .hash_password(pin.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a PIN failed: {e}"))
    })
    .await?
}

/// Checks a PIN against its hash; with no hash, spends the same time and fails,
/// so that an unknown key cannot be told from a wrong PIN.
pub async fn verify_pin(pin: &str, hash: Option<&str>) -> bool {
    let pin = pin.to_owned();
    let hash = hash.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let (stored, known) = match hash {
            Some(hash) => (hash, true),
            None => (dummy_hash().to_owned(), false),
        };
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(pin.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

/// An argon2 hash of a PIN nobody knows, verified against when the key is unknown.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let Ok(salt) = SaltString::encode_b64(&rand::random::<[u8; 16]>()) else {
            return String::new();
        };
        let secret = new_secret("x");
        Argon2::default()
            .hash_password(secret.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// SHA-256 of a high-entropy secret, hex-encoded: what is stored.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random secret: 256 bits, URL-safe, with a readable prefix.
pub fn new_secret(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// A new one-time PIN of eight digits.
pub fn new_pin() -> String {
    let mut rng = rand::rng();
    (0..8)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pins_verify_only_against_their_hash() {
        let hash = hash_pin("123456").await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_pin("123456", Some(&hash)).await);
        assert!(!verify_pin("654321", Some(&hash)).await);
        assert!(!verify_pin("123456", None).await);
    }

    #[test]
    fn secrets_are_fresh_and_digests_stable() {
        assert_ne!(new_secret("cs"), new_secret("cs"));
        assert_eq!(digest("abc").len(), 64);
        assert_eq!(digest("abc"), digest("abc"));
        let pin = new_pin();
        assert_eq!(pin.len(), 8);
        assert!(pin.bytes().all(|b| b.is_ascii_digit()));
    }
}
