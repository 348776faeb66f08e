#![allow(clippy::unwrap_used)]

use chrono::{Duration, TimeZone};

use super::*;
use crate::history::Actor;

/// A stand-in for SHA-256 and Ed25519: an entry's hash is its seq, details
/// and predecessor; a signature is valid when it spells the checkpoint.
struct Fake;

const KEY: &str = "0123456789abcdef";

impl ChainCrypto for Fake {
    fn entry_hash(&self, tenant: Uuid, e: &HistoryEntry) -> Result<String> {
        Ok(format!("{tenant}/{}/{}/{}", e.seq, e.details, e.prev_hash))
    }

    fn check_signature(&self, c: &Checkpoint) -> SignatureCheck {
        if c.key_id != KEY {
            SignatureCheck::UnknownKey
        } else if c.signature == format!("{}/{}", c.seq, c.hash) {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Invalid
        }
    }
}

const T: Uuid = Uuid::from_u128(7);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).unwrap()
}

/// A consistent chain of `n` entries, one minute apart.
fn chain(n: i64) -> Vec<HistoryEntry> {
    let mut prev = GENESIS.to_owned();
    (1..=n)
        .map(|seq| {
            let mut e = HistoryEntry {
                seq,
                at: start() + Duration::minutes(seq),
                actor: Actor::system(),
                action: "key.created".into(),
                subject_type: "key".into(),
                subject_id: None,
                details: serde_json::json!({"n": seq}),
                hash: String::new(),
                prev_hash: prev.clone(),
            };
            e.hash = Fake.entry_hash(T, &e).unwrap();
            prev = e.hash.clone();
            e
        })
        .collect()
}

fn checkpoint(e: &HistoryEntry) -> Checkpoint {
    Checkpoint {
        tenant_id: T,
        seq: e.seq,
        hash: e.hash.clone(),
        signed_at: e.at,
        key_id: KEY.into(),
        signature: format!("{}/{}", e.seq, e.hash),
    }
}

fn walk(entries: &[HistoryEntry], checkpoints: Vec<Checkpoint>) -> Verification {
    let mut walk = ChainWalk::new(T, &Fake);
    walk.checkpoints(checkpoints);
    for e in entries {
        walk.entry(e).unwrap();
    }
    let head = entries.last().map(|e| (e.seq, e.hash.as_str()));
    walk.finish(head, None)
}

#[test]
fn an_intact_chain_with_its_checkpoints_is_valid() {
    let entries = chain(5);
    let v = walk(
        &entries,
        vec![checkpoint(&entries[1]), checkpoint(&entries[4])],
    );
    assert_eq!((v.valid, v.status), (true, Status::Valid), "{v:?}");
    assert_eq!(
        (v.entries_checked, v.signatures_checked, v.last_signed_seq),
        (5, 2, Some(5))
    );
    assert!(v.problems.is_empty());
}

#[test]
fn a_kept_checkpoint_beyond_the_end_reports_the_truncation() {
    let entries = chain(8);
    let kept = checkpoint(&entries[7]);
    // The tail and its checkpoints deleted, the head fixed: consistent.
    let v = walk(&entries[..5], vec![checkpoint(&entries[2]), kept]);
    assert_eq!(v.status, Status::Truncated, "{v:?}");
    assert_eq!(v.first_broken_seq, Some(6));
    assert_eq!(v.problems[0].checkpoint_seq, Some(8));
    assert_eq!(v.last_signed_seq, Some(3));
}

#[test]
fn a_kept_checkpoint_of_a_consistently_rewritten_chain_reports_the_rewrite() {
    let entries = chain(6);
    let kept = checkpoint(&entries[5]);
    let early = checkpoint(&entries[1]);
    let mut forged = entries.clone();
    forged[3].details = serde_json::json!({"n": "forged"});
    let mut prev = forged[2].hash.clone();
    for e in &mut forged[3..] {
        e.prev_hash = prev;
        e.hash = Fake.entry_hash(T, e).unwrap();
        prev = e.hash.clone();
    }
    let v = walk(&forged, vec![early, kept]);
    assert_eq!(v.status, Status::Rewritten, "{v:?}");
    assert_eq!(
        v.first_broken_seq,
        Some(3),
        "after the last matching checkpoint"
    );
    assert_eq!(v.problems[0].checkpoint_seq, Some(6));
}

#[test]
fn changed_entries_missing_entries_and_a_stale_head_break_the_chain() {
    let mut entries = chain(5);
    entries[2].details = serde_json::json!({"n": "forged"});
    let v = walk(&entries, vec![]);
    assert_eq!(
        (v.status, v.first_broken_seq),
        (Status::BrokenChain, Some(3))
    );
    assert!(v.reason.unwrap().contains("does not match its hash"));

    let mut entries = chain(5);
    entries.remove(1);
    let v = walk(&entries, vec![]);
    assert_eq!(
        (v.status, v.first_broken_seq),
        (Status::BrokenChain, Some(2))
    );

    let entries = chain(5);
    let mut walker = ChainWalk::new(T, &Fake);
    for e in &entries[..4] {
        walker.entry(e).unwrap();
    }
    let v = walker.finish(Some((5, entries[4].hash.as_str())), None);
    assert_eq!((v.status, v.first_broken_seq), (Status::Truncated, Some(5)));
}

#[test]
fn bad_and_unknown_signatures_are_reported_and_prove_nothing() {
    let entries = chain(4);
    let mut bad = checkpoint(&entries[3]);
    bad.signature = "forged".into();
    let mut unknown = checkpoint(&entries[2]);
    unknown.key_id = "ffffffffffffffff".into();
    let mut foreign = checkpoint(&entries[1]);
    foreign.tenant_id = Uuid::from_u128(8);
    let v = walk(&entries, vec![bad, unknown, foreign]);
    assert!(!v.valid);
    let statuses: Vec<_> = v.problems.iter().map(|p| p.status).collect();
    assert_eq!(
        statuses,
        [
            Status::BadSignature,
            Status::UnknownKey,
            Status::BadSignature
        ]
    );
    assert_eq!(v.last_signed_seq, None);
    assert_eq!(v.first_broken_seq, None, "no entry is in doubt");
}

#[test]
fn the_same_checkpoint_twice_is_checked_once() {
    let entries = chain(3);
    let c = checkpoint(&entries[2]);
    let v = walk(&entries, vec![c.clone(), c]);
    assert_eq!((v.valid, v.signatures_checked), (true, 1));
}

#[test]
fn a_checkpoint_of_the_entry_just_walked_is_compared_at_once() {
    let entries = chain(3);
    let mut walker = ChainWalk::new(T, &Fake);
    for e in &entries {
        walker.entry(e).unwrap();
        walker.checkpoints([checkpoint(e)]);
    }
    let v = walker.finish(None, None);
    assert_eq!((v.valid, v.last_signed_seq), (true, Some(3)), "{v:?}");
}

#[test]
fn old_entries_without_a_checkpoint_are_an_unsigned_stretch() {
    let entries = chain(6);
    let signed = vec![checkpoint(&entries[2])];
    let run = |limit| {
        let mut walker = ChainWalk::new(T, &Fake);
        walker.checkpoints(signed.clone());
        for e in &entries {
            walker.entry(e).unwrap();
        }
        walker.finish(None, Some(limit))
    };
    // Entry 4 is from 08:04; required to be signed by then: reported.
    let v = run(start() + Duration::minutes(4));
    assert_eq!(
        (v.status, v.first_broken_seq),
        (Status::UnsignedStretch, Some(4)),
        "{v:?}"
    );
    // Only entries up to 08:03 must be signed, and they are.
    assert!(run(start() + Duration::minutes(3) + Duration::seconds(59)).valid);
}

#[test]
fn every_status_has_a_name_of_its_own() {
    let names: std::collections::HashSet<_> = Status::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(names.len(), Status::ALL.len());
}
