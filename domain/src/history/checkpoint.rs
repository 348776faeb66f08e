//! Signed checkpoints of a tenant's chain (SPEC §5) and the exact bytes a
//! checkpoint's signature covers (`docs/history.md`).

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The worker signs a tenant's head this often whenever entries were added.
pub const SIGNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// How much later than [`SIGNING_INTERVAL`] an entry may still be unsigned
/// before verification reports an unsigned stretch: replicas restart, and a
/// round may be skipped while the database is busy.
pub const UNSIGNED_GRACE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The tag that opens every signed checkpoint, so that a signature over a
/// checkpoint can never be taken for a signature over anything else.
pub const CHECKPOINT_TYPE: &str = "countersign.history.checkpoint.v1";

/// A signed statement that entry `seq` of tenant `tenant_id`'s chain had
/// `hash` at `signed_at`. Values of this type are well-formed: a lowercase
/// hex SHA-256, a sequence number from 1, a key id of 16 hex digits and a
/// base64 signature of 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tenant_id: Uuid,
    pub seq: i64,
    pub hash: String,
    pub signed_at: DateTime<Utc>,
    pub key_id: String,
    pub signature: String,
}

/// A field of a checkpoint that is not well-formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointFieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl Checkpoint {
    /// Checks the form of every field; signatures are checked by verification.
    pub fn parse(
        tenant_id: Uuid,
        seq: i64,
        hash: String,
        signed_at: DateTime<Utc>,
        key_id: String,
        signature: String,
    ) -> Result<Self, Vec<CheckpointFieldError>> {
        let mut errors = Vec::new();
        let mut refuse = |field, code, message: &str| {
            errors.push(CheckpointFieldError {
                field,
                code,
                message: message.to_owned(),
            })
        };
        if seq < 1 {
            refuse("seq", "out_of_range", "seq counts from 1");
        }
        if !is_lower_hex(&hash, 64) {
            refuse("hash", "invalid_hash", "hash is 64 lowercase hex digits");
        }
        if !is_lower_hex(&key_id, 16) {
            refuse(
                "key_id",
                "invalid_key_id",
                "key_id is 16 lowercase hex digits",
            );
        }
        if !is_signature(&signature) {
            refuse(
                "signature",
                "invalid_signature",
                "signature is 64 bytes in standard base64 (88 characters)",
            );
        }
        if signed_at != signed_at.trunc_subsecs(6) {
            refuse(
                "signed_at",
                "invalid_time",
                "signed_at has at most microseconds",
            );
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Checkpoint {
            tenant_id,
            seq,
            hash,
            signed_at,
            key_id,
            signature,
        })
    }

    /// The bytes the signature covers: the RFC 8785 canonical JSON of
    /// `{type, tenant_id, seq, hash, signed_at}`, keys in code-point order.
    /// Every value is a plain ASCII string or an integer, so the canonical
    /// form is written directly; `docs/history.md` shows a worked example.
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(self.tenant_id, self.seq, &self.hash, self.signed_at)
    }
}

/// [`Checkpoint::signed_bytes`] of a checkpoint yet to be signed.
pub fn signed_bytes(tenant_id: Uuid, seq: i64, hash: &str, signed_at: DateTime<Utc>) -> Vec<u8> {
    format!(
        r#"{{"hash":"{hash}","seq":{seq},"signed_at":"{}","tenant_id":"{}","type":"{CHECKPOINT_TYPE}"}}"#,
        signed_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        tenant_id.hyphenated(),
    )
    .into_bytes()
}

fn is_lower_hex(value: &str, len: usize) -> bool {
    value.len() == len
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// 64 bytes in padded standard base64: 86 characters of the alphabet and `==`.
fn is_signature(value: &str) -> bool {
    let Some(body) = value.strip_suffix("==") else {
        return false;
    };
    body.len() == 86
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone;

    use super::*;

    fn parts() -> (Uuid, i64, String, DateTime<Utc>, String, String) {
        (
            Uuid::from_u128(1),
            3,
            "ab".repeat(32),
            Utc.with_ymd_and_hms(2025, 1, 15, 12, 30, 0).unwrap(),
            "0123456789abcdef".into(),
            format!("{}==", "A".repeat(86)),
        )
    }

    #[test]
    fn well_formed_checkpoints_parse_and_each_bad_field_is_named() {
        let (t, seq, hash, at, key, sig) = parts();
        assert!(Checkpoint::parse(t, seq, hash.clone(), at, key.clone(), sig.clone()).is_ok());
        let errors =
            Checkpoint::parse(t, 0, "AB".repeat(32), at, "xyz".into(), "no".into()).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["seq", "hash", "key_id", "signature"]);
        let nanos = at + chrono::Duration::nanoseconds(1);
        let errors = Checkpoint::parse(t, seq, hash, nanos, key, sig).unwrap_err();
        assert_eq!(errors[0].field, "signed_at");
    }

    #[test]
    fn the_signed_bytes_are_canonical_json_with_microseconds() {
        let (t, seq, hash, at, _, _) = parts();
        let bytes = String::from_utf8(signed_bytes(t, seq, &hash, at)).unwrap();
        assert_eq!(
            bytes,
            format!(
                r#"{{"hash":"{hash}","seq":3,"signed_at":"2025-01-15T12:30:00.000000Z","tenant_id":"00000000-0000-0000-0000-000000000001","type":"countersign.history.checkpoint.v1"}}"#
            )
        );
    }
}
