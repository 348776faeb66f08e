//! The rule that decides whether a chain holds (SPEC §5), shared by the
//! server and the offline verifier. Hashing and signatures are the
//! adapters' ([`ChainCrypto`]); this module only walks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::HistoryEntry;
use super::checkpoint::Checkpoint;
use crate::Result;

/// The `prev_hash` of a tenant's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Problems recorded at most; the first tells what happened, the rest where else.
const MAX_PROBLEMS: usize = 50;

/// Hashing and signature checks, as the adapters implement them.
pub trait ChainCrypto: Sync {
    /// The hex SHA-256 over the canonical JSON of `entry` in tenant `tenant`'s chain.
    fn entry_hash(&self, tenant: Uuid, entry: &HistoryEntry) -> Result<String>;
    /// Whether `checkpoint` carries a valid signature of the key it names.
    fn check_signature(&self, checkpoint: &Checkpoint) -> SignatureCheck;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    Valid,
    Invalid,
    /// No current or retired key has this id.
    UnknownKey,
}

crate::named_enum! {
    /// What a history verification found, as a machine-readable word.
    #[cfg_attr(feature = "openapi", schema(as = VerificationStatus))]
    pub enum Status {
        /// Every hash, link and checkpoint holds.
        Valid,
        /// An entry does not match its hash, does not link to its predecessor,
        /// or is missing between others; or the head disagrees with the entries.
        BrokenChain,
        /// A checkpoint names an entry that is gone.
        Truncated,
        /// A checkpoint's entry has another hash than was signed.
        Rewritten,
        /// A checkpoint's signature does not hold.
        BadSignature,
        /// A checkpoint names a key that is neither current nor retired.
        UnknownKey,
        /// Entries older than the signing interval and its grace are not covered
        /// by any checkpoint.
        UnsignedStretch,
    }
}

/// One thing that does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: Status,
    /// The first entry no longer proven intact; `None` where no entry is in
    /// doubt (a checkpoint that is itself bad).
    pub first_broken_seq: Option<i64>,
    /// The checkpoint that gave it away or is at fault.
    pub checkpoint_seq: Option<i64>,
    pub reason: String,
}

/// The result of recomputing a tenant's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub valid: bool,
    /// The first problem's status, or [`Status::Valid`].
    pub status: Status,
    pub entries_checked: u64,
    /// Distinct checkpoints whose signature was checked.
    pub signatures_checked: u64,
    /// The newest entry covered by a valid checkpoint that matches it.
    pub last_signed_seq: Option<i64>,
    /// The first problem's first broken entry.
    pub first_broken_seq: Option<i64>,
    pub reason: Option<String>,
    /// Every problem found (at most 50), the first one first.
    pub problems: Vec<Problem>,
}

/// A walk along one tenant's chain in sequence order. Checkpoints are added
/// before the entries they name ([`ChainWalk::checkpoints`]), entries one by
/// one ([`ChainWalk::entry`]); [`ChainWalk::finish`] tells the result.
pub struct ChainWalk<'a> {
    tenant: Uuid,
    crypto: &'a dyn ChainCrypto,
    /// Checkpoints with a valid signature whose entry is still ahead, by seq.
    ahead: BTreeMap<i64, Vec<Checkpoint>>,
    seen: std::collections::HashSet<(i64, String)>,
    prev_seq: i64,
    prev_hash: String,
    entries_checked: u64,
    signatures_checked: u64,
    last_signed_seq: Option<i64>,
    /// The oldest entry after the last matching checkpoint: its seq and time.
    unsigned_since: Option<(i64, DateTime<Utc>)>,
    problems: Vec<Problem>,
}

impl<'a> ChainWalk<'a> {
    pub fn new(tenant: Uuid, crypto: &'a dyn ChainCrypto) -> Self {
        ChainWalk {
            tenant,
            crypto,
            ahead: BTreeMap::new(),
            seen: Default::default(),
            prev_seq: 0,
            prev_hash: GENESIS.to_owned(),
            entries_checked: 0,
            signatures_checked: 0,
            last_signed_seq: None,
            unsigned_since: None,
            problems: Vec::new(),
        }
    }

    /// The sequence number of the last entry walked (0 before the first).
    pub fn position(&self) -> i64 {
        self.prev_seq
    }

    fn report(
        &mut self,
        status: Status,
        first_broken_seq: Option<i64>,
        checkpoint_seq: Option<i64>,
        reason: String,
    ) {
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(Problem {
                status,
                first_broken_seq,
                checkpoint_seq,
                reason,
            });
        }
    }

    /// Checks the signatures of `checkpoints` (each distinct one once) and
    /// keeps the valid ones for their entries. A checkpoint of the entry
    /// just walked is compared at once.
    pub fn checkpoints(&mut self, checkpoints: impl IntoIterator<Item = Checkpoint>) {
        for c in checkpoints {
            if !self.seen.insert((c.seq, c.signature.clone())) {
                continue;
            }
            self.signatures_checked += 1;
            if c.tenant_id != self.tenant {
                let reason = format!(
                    "the checkpoint at entry {} belongs to tenant {}, not {}",
                    c.seq, c.tenant_id, self.tenant
                );
                self.report(Status::BadSignature, None, Some(c.seq), reason);
                continue;
            }
            match self.crypto.check_signature(&c) {
                SignatureCheck::Valid => {}
                SignatureCheck::Invalid => {
                    let reason = format!(
                        "the signature of the checkpoint at entry {} (key {}) is not valid",
                        c.seq, c.key_id
                    );
                    self.report(Status::BadSignature, None, Some(c.seq), reason);
                    continue;
                }
                SignatureCheck::UnknownKey => {
                    let reason = format!(
                        "the checkpoint at entry {} is signed with key {}, which is neither the current nor a retired signing key",
                        c.seq, c.key_id
                    );
                    self.report(Status::UnknownKey, None, Some(c.seq), reason);
                    continue;
                }
            }
            match c.seq.cmp(&self.prev_seq) {
                std::cmp::Ordering::Greater => self.ahead.entry(c.seq).or_default().push(c),
                std::cmp::Ordering::Equal => {
                    let hash = self.prev_hash.clone();
                    self.compare(&c, Some(&hash));
                }
                std::cmp::Ordering::Less => {
                    let reason = format!(
                        "the checkpoint at entry {} comes after entry {}; checkpoints follow their entry",
                        c.seq, self.prev_seq
                    );
                    self.report(Status::BrokenChain, None, Some(c.seq), reason);
                }
            }
        }
    }

    /// Compares a valid checkpoint with the hash its entry has (`None`: gone).
    fn compare(&mut self, c: &Checkpoint, hash: Option<&str>) {
        let since = self.last_signed_seq.map_or(1, |s| s + 1);
        match hash {
            Some(hash) if hash == c.hash => {
                if self.last_signed_seq.is_none_or(|s| s < c.seq) {
                    self.last_signed_seq = Some(c.seq);
                }
                if self.unsigned_since.is_some_and(|(seq, _)| seq <= c.seq) {
                    self.unsigned_since = None;
                }
            }
            Some(_) => {
                let reason = format!(
                    "entry {} differs from its checkpoint signed at {}: entries {since} to {} were rewritten",
                    c.seq,
                    c.signed_at.to_rfc3339(),
                    c.seq
                );
                self.report(Status::Rewritten, Some(since), Some(c.seq), reason);
            }
            None => {
                let first = (self.prev_seq + 1).min(c.seq);
                let reason = format!(
                    "entry {} was signed at {} but is gone: the chain ends at entry {}",
                    c.seq,
                    c.signed_at.to_rfc3339(),
                    self.prev_seq
                );
                self.report(Status::Truncated, Some(first), Some(c.seq), reason);
            }
        }
    }

    /// Walks the next entry of the chain.
    pub fn entry(&mut self, e: &HistoryEntry) -> Result<()> {
        let expected = self.prev_seq + 1;
        if e.seq != expected {
            let reason = if e.seq > expected {
                format!("entries {expected} to {} are missing", e.seq - 1)
            } else {
                format!("entry {} comes again after entry {}", e.seq, self.prev_seq)
            };
            self.report(Status::BrokenChain, Some(expected), None, reason);
        }
        // Checkpoints of entries skipped over name entries that are gone.
        let gone: Vec<Checkpoint> = self.take_ahead_before(e.seq);
        for c in &gone {
            self.compare(c, None);
        }
        if e.seq >= expected && e.prev_hash != self.prev_hash {
            let reason = format!(
                "entry {} does not link to the hash of entry {}",
                e.seq, self.prev_seq
            );
            self.report(Status::BrokenChain, Some(e.seq), None, reason);
        }
        if self.crypto.entry_hash(self.tenant, e)? != e.hash {
            let reason = format!("entry {} does not match its hash", e.seq);
            self.report(Status::BrokenChain, Some(e.seq), None, reason);
        }
        self.entries_checked += 1;
        self.prev_seq = e.seq;
        self.prev_hash = e.hash.clone();
        if self.unsigned_since.is_none() {
            self.unsigned_since = Some((e.seq, e.at));
        }
        for c in self.ahead.remove(&e.seq).unwrap_or_default() {
            self.compare(&c, Some(&e.hash));
        }
        Ok(())
    }

    fn take_ahead_before(&mut self, seq: i64) -> Vec<Checkpoint> {
        let later = self.ahead.split_off(&seq);
        std::mem::replace(&mut self.ahead, later)
            .into_values()
            .flatten()
            .collect()
    }

    /// The result, once every entry was walked. `head` is what the database
    /// names as the newest entry, if it keeps one; entries at or before
    /// `signed_by` must be covered by a checkpoint.
    pub fn finish(
        mut self,
        head: Option<(i64, &str)>,
        signed_by: Option<DateTime<Utc>>,
    ) -> Verification {
        for c in self.take_ahead_before(i64::MAX) {
            self.compare(&c, None);
        }
        if let Some((seq, hash)) = head
            && (seq, hash) != (self.prev_seq, self.prev_hash.as_str())
        {
            let (status, first) = if seq > self.prev_seq {
                (Status::Truncated, self.prev_seq + 1)
            } else {
                (Status::BrokenChain, seq.min(self.prev_seq) + 1)
            };
            let reason = format!(
                "the chain head (entry {seq}) does not match the last entry ({})",
                self.prev_seq
            );
            self.report(status, Some(first), None, reason);
        }
        if let (Some((seq, at)), Some(limit)) = (self.unsigned_since, signed_by)
            && at <= limit
        {
            let reason = format!(
                "entries {seq} to {} are not covered by any checkpoint; entry {seq} is from {}",
                self.prev_seq,
                at.to_rfc3339()
            );
            self.report(Status::UnsignedStretch, Some(seq), None, reason);
        }
        self.result()
    }

    fn result(self) -> Verification {
        // The problem that concerns the earliest entry comes first.
        let mut problems = self.problems;
        problems.sort_by_key(|p| p.first_broken_seq.or(p.checkpoint_seq).unwrap_or(i64::MAX));
        let first = problems.first();
        Verification {
            valid: first.is_none(),
            status: first.map_or(Status::Valid, |p| p.status),
            entries_checked: self.entries_checked,
            signatures_checked: self.signatures_checked,
            last_signed_seq: self.last_signed_seq,
            first_broken_seq: first.and_then(|p| p.first_broken_seq),
            reason: first.map(|p| p.reason.clone()),
            problems,
        }
    }
}

#[cfg(test)]
mod tests;
