//! Access tokens: JWTs signed with HS256, or EdDSA/RS256 from a PEM key file,
//! and validated strictly (one algorithm, our `kid`, `iss`, `aud`, `exp`, `nbf`).

use std::path::Path;

use anyhow::Context;
use countersign_domain::permission::PrincipalKind;
use countersign_domain::role::Role;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const ISSUER: &str = "countersign";
pub const AUDIENCE: &str = "countersign-api";

/// The claims of SPEC §6, plus the generations that make revocation O(1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub tid: Option<Uuid>,
    pub roles: Vec<Role>,
    pub kind: PrincipalKind,
    pub jti: Uuid,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The credential's token generation at issue.
    #[serde(rename = "gen")]
    pub generation: i64,
    /// The tenant's token generation at issue.
    pub tgen: i64,
    /// Refresh-token family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    /// Logged in with a one-time PIN.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_change: bool,
}

pub struct TokenKeys {
    algorithm: Algorithm,
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    /// HS256 with a shared secret of at least 32 bytes.
    pub fn hs256(secret: &[u8]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            secret.len() >= 32,
            "the JWT secret must be at least 32 bytes"
        );
        Ok(Self {
            algorithm: Algorithm::HS256,
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
        })
    }

    /// EdDSA (Ed25519) or RS256 from a PKCS#8 PEM private key.
    pub fn from_private_key_file(path: &Path) -> anyhow::Result<Self> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_private_key_pem(&pem)
    }

    pub fn from_private_key_pem(pem: &str) -> anyhow::Result<Self> {
        use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};
        if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            let public = key.verifying_key().to_public_key_pem(Default::default())?;
            return Ok(Self {
                algorithm: Algorithm::EdDSA,
                kid: key_id(public.as_bytes()),
                encoding: EncodingKey::from_ed_pem(pem.as_bytes())?,
                decoding: DecodingKey::from_ed_pem(public.as_bytes())?,
            });
        }
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .context("the JWT key file holds neither an Ed25519 nor an RSA PKCS#8 private key")?;
        let public = rsa::pkcs8::EncodePublicKey::to_public_key_pem(
            &key.to_public_key(),
            Default::default(),
        )?;
        Ok(Self {
            algorithm: Algorithm::RS256,
            kid: key_id(public.as_bytes()),
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes())?,
            decoding: DecodingKey::from_rsa_pem(public.as_bytes())?,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn issue(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        Ok(encode(&header, claims, &self.encoding)?)
    }

    /// Verifies signature and claims; any failure is `None`, the caller answers 401.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = decode_header(token).ok()?;
        if header.alg != self.algorithm || header.kid.as_deref() != Some(self.kid.as_str()) {
            return None;
        }
        let mut validation = Validation::new(self.algorithm);
        validation.algorithms = vec![self.algorithm];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

fn key_id(material: &[u8]) -> String {
    hex::encode(&Sha256::digest(material)[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: Uuid::new_v4(),
            tid: Some(Uuid::new_v4()),
            roles: vec![Role::Auditor],
            kind: PrincipalKind::User,
            jti: Uuid::new_v4(),
            iat: now,
            nbf: now,
            exp: now + 60,
            generation: 0,
            tgen: 0,
            sid: None,
            pin_change: false,
        }
    }

    #[test]
    fn round_trip_and_strictness() {
        let keys = TokenKeys::hs256(&[7u8; 32]).expect("keys");
        let now = chrono::Utc::now().timestamp();
        let good = claims(now);
        let token = keys.issue(&good).expect("issue");
        assert_eq!(keys.verify(&token), Some(good.clone()));

        let other = TokenKeys::hs256(&[8u8; 32]).expect("keys");
        assert_eq!(other.verify(&token), None, "another key");
        let expired = Claims {
            exp: now - 60,
            ..good.clone()
        };
        assert_eq!(
            keys.verify(&keys.issue(&expired).expect("issue")),
            None,
            "expired"
        );
        let early = Claims {
            nbf: now + 600,
            ..good.clone()
        };
        assert_eq!(
            keys.verify(&keys.issue(&early).expect("issue")),
            None,
            "not yet valid"
        );
        let audience = Claims {
            aud: "elsewhere".into(),
            ..good.clone()
        };
        assert_eq!(
            keys.verify(&keys.issue(&audience).expect("issue")),
            None,
            "audience"
        );
        let issuer = Claims {
            iss: "elsewhere".into(),
            ..good
        };
        assert_eq!(
            keys.verify(&keys.issue(&issuer).expect("issue")),
            None,
            "issuer"
        );
        assert!(TokenKeys::hs256(b"short").is_err());
    }
}
