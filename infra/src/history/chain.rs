//! The bytes of the chain: an entry's hash (SHA-256 over the RFC 8785
//! canonical JSON of the entry and its predecessor's hash) and the check of a
//! checkpoint's signature, as `docs/history.md` describes them.

use countersign_domain::history::{Actor, ChainCrypto, Checkpoint, HistoryEntry, SignatureCheck};
use countersign_domain::{Error, Result};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entities::history_entries;
use crate::signing::HistoryPublicKey;

/// The canonical JSON of an entry of tenant `tenant`'s chain, the bytes its
/// hash is taken over; the entry's own `hash` is not part of it.
pub fn canonical_entry(tenant: Uuid, e: &HistoryEntry) -> Result<Vec<u8>> {
    let document = json!({
        "tenant_id": tenant,
        "seq": e.seq,
        "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "actor": e.actor,
        "action": e.action,
        "subject": {"type": e.subject_type, "id": e.subject_id},
        "details": e.details,
        "prev_hash": e.prev_hash,
    });
    serde_jcs::to_vec(&document).map_err(|e| Error::Internal(e.into()))
}

/// The hash of an entry: SHA-256 over [`canonical_entry`], in lowercase hex.
pub fn entry_hash(tenant: Uuid, e: &HistoryEntry) -> Result<String> {
    Ok(hex::encode(Sha256::digest(canonical_entry(tenant, e)?)))
}

pub(crate) fn to_entry(m: history_entries::Model) -> HistoryEntry {
    HistoryEntry {
        seq: m.seq,
        at: m.at,
        actor: Actor {
            kind: m.actor_kind,
            id: m.actor_id,
            name: m.actor_name,
            programming_key_id: m.actor_programming_key_id,
        },
        action: m.action,
        subject_type: m.subject_type,
        subject_id: m.subject_id,
        details: m.details,
        hash: m.hash,
        prev_hash: m.prev_hash,
    }
}

/// SHA-256 and Ed25519 for the domain's chain walk, with the public keys a
/// checkpoint may be signed with: the current one and the retired ones.
pub struct ChainKeys<'a> {
    keys: Vec<&'a HistoryPublicKey>,
}

impl<'a> ChainKeys<'a> {
    pub fn new(keys: impl IntoIterator<Item = &'a HistoryPublicKey>) -> Self {
        ChainKeys {
            keys: keys.into_iter().collect(),
        }
    }
}

impl ChainCrypto for ChainKeys<'_> {
    fn entry_hash(&self, tenant: Uuid, entry: &HistoryEntry) -> Result<String> {
        entry_hash(tenant, entry)
    }

    fn check_signature(&self, c: &Checkpoint) -> SignatureCheck {
        match self.keys.iter().find(|k| k.key_id() == c.key_id) {
            None => SignatureCheck::UnknownKey,
            Some(key) if key.verify(&c.signed_bytes(), &c.signature) => SignatureCheck::Valid,
            Some(_) => SignatureCheck::Invalid,
        }
    }
}
