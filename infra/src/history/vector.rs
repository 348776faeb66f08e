//! The worked example of `docs/history.md`, pinned: the expected bytes, hash,
//! key and signature are written out as computed by another implementation
//! (Python's `hashlib` and `cryptography`), not by this code.

#![allow(clippy::unwrap_used)]

use chrono::{TimeZone, Utc};
use countersign_domain::history::{Actor, ChainCrypto, Checkpoint, HistoryEntry, SignatureCheck};
use uuid::Uuid;

use super::chain::{ChainKeys, canonical_entry, entry_hash};
use crate::signing::HistorySigner;

const TENANT: &str = "0190a000-0000-7000-8000-000000000001";
const CANONICAL: &str = r#"{"action":"tenant.provisioned","actor":{"id":"00000000-0000-0000-0000-000000000000","kind":"operator","name":"Operator","programming_key_id":null},"at":"2025-01-15T12:30:00.123456Z","details":{"name":"Stadtwerke Süd","slug":"stadtwerke"},"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"subject":{"id":"0190a000-0000-7000-8000-000000000001","type":"tenant"},"tenant_id":"0190a000-0000-7000-8000-000000000001"}"#;
const HASH: &str = "014e5a6dc3c0dd66a6d7f59c81b3384bdbfd1470091586a07052ed56ec462361";
const PUBLIC_KEY: &str = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
const KEY_ID: &str = "56475aa75463474c";
const SIGNED: &str = r#"{"hash":"014e5a6dc3c0dd66a6d7f59c81b3384bdbfd1470091586a07052ed56ec462361","seq":1,"signed_at":"2025-01-15T12:31:00.000000Z","tenant_id":"0190a000-0000-7000-8000-000000000001","type":"countersign.history.checkpoint.v1"}"#;
const SIGNATURE: &str =
    "xNBKezQ84nV5kKnq6tfPc872bgX8P6xlj5LdJLLlXWPvr3epxfPqxFo4Jf/ZWUZhMRzqvkONijJW73954LTIAg==";

fn entry() -> HistoryEntry {
    let tenant = Uuid::parse_str(TENANT).unwrap();
    HistoryEntry {
        seq: 1,
        at: Utc.with_ymd_and_hms(2025, 1, 15, 12, 30, 0).unwrap()
            + chrono::Duration::microseconds(123_456),
        actor: Actor {
            kind: "operator".into(),
            id: Some(Uuid::nil()),
            name: "Operator".into(),
            programming_key_id: None,
        },
        action: "tenant.provisioned".into(),
        subject_type: "tenant".into(),
        subject_id: Some(tenant),
        details: serde_json::json!({"slug": "stadtwerke", "name": "Stadtwerke Süd"}),
        hash: HASH.into(),
        prev_hash: countersign_domain::history::GENESIS.into(),
    }
}

#[test]
fn the_documented_entry_has_the_documented_canonical_json_and_hash() {
    let tenant = Uuid::parse_str(TENANT).unwrap();
    let canonical = canonical_entry(tenant, &entry()).unwrap();
    assert_eq!(String::from_utf8(canonical).unwrap(), CANONICAL);
    assert_eq!(entry_hash(tenant, &entry()).unwrap(), HASH);
}

#[test]
fn the_documented_checkpoint_has_the_documented_bytes_and_signature() {
    // The test key's secret is the bytes 0, 1, …, 31.
    let secret: [u8; 32] = std::array::from_fn(|i| i as u8);
    let signer = HistorySigner::from_secret_bytes(&secret);
    assert_eq!(signer.public_key().to_base64(), PUBLIC_KEY);
    assert_eq!(signer.key_id(), KEY_ID);
    let tenant = Uuid::parse_str(TENANT).unwrap();
    let signed_at = Utc.with_ymd_and_hms(2025, 1, 15, 12, 31, 0).unwrap();
    let checkpoint = Checkpoint::parse(
        tenant,
        1,
        HASH.into(),
        signed_at,
        KEY_ID.into(),
        signer.sign(tenant, 1, HASH, signed_at),
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(checkpoint.signed_bytes()).unwrap(),
        SIGNED
    );
    assert_eq!(checkpoint.signature, SIGNATURE);
    let keys = ChainKeys::new([signer.public_key()]);
    assert_eq!(keys.check_signature(&checkpoint), SignatureCheck::Valid);
}
