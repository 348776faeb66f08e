//! The spool keeps what was written across a "crash" and forgets only what was acknowledged.
#![allow(clippy::unwrap_used)]

use countersign_agent::protocol::DeviceEvent;
use countersign_agent::spool::{JobRecord, Source, Spool};
use uuid::Uuid;

fn events(range: std::ops::RangeInclusive<u64>) -> Vec<DeviceEvent> {
    range
        .map(|seq| DeviceEvent {
            seq,
            at: "2026-01-05T07:00:00Z".into(),
            kind: "access_granted".into(),
            key: Some("K-1".into()),
            cyl: Some("C-1".into()),
        })
        .collect()
}

fn record(job_id: Uuid) -> JobRecord {
    JobRecord {
        job_id,
        device_id: Uuid::now_v7(),
        source: Source::Key {
            marking: "K-1".into(),
        },
        next_seq: 1,
        read_done: false,
        lease_token: Some(Uuid::now_v7()),
    }
}

#[test]
fn survives_a_crash_and_forgets_only_acknowledged_batches() {
    let dir = tempfile::tempdir().unwrap();
    let job = Uuid::now_v7();
    let other = Uuid::now_v7();
    {
        let spool = Spool::open(dir.path()).unwrap();
        spool.begin(record(job)).unwrap();
        spool.begin(record(other)).unwrap();
        spool.append(job, &events(1..=8), false).unwrap();
        spool.append(job, &events(9..=16), false).unwrap();
        spool.append(other, &events(1..=3), true).unwrap();
        let first = spool.pending(job).unwrap().remove(0);
        spool.acknowledge(&first).unwrap();
        // A write that died half-way leaves only a temporary file.
        std::fs::write(
            dir.path().join(job.to_string()).join("events-x.json.tmp"),
            b"{tor",
        )
        .unwrap();
        // "Crash": drop everything without uploading the rest.
    }
    let spool = Spool::open(dir.path()).unwrap();
    let mut jobs: Vec<Uuid> = spool.jobs().unwrap().iter().map(|r| r.job_id).collect();
    jobs.sort();
    let mut expected = vec![job, other];
    expected.sort();
    assert_eq!(jobs, expected);

    let pending = spool.pending(job).unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the acknowledged batch is gone, the other is there"
    );
    assert_eq!(pending[0].events, events(9..=16));
    let resumed = spool.record(job).unwrap().unwrap();
    assert_eq!(
        resumed.next_seq, 17,
        "the read resumes behind the last spooled event"
    );
    assert!(!resumed.read_done);
    assert!(spool.record(other).unwrap().unwrap().read_done);
    assert!(
        !dir.path()
            .join(job.to_string())
            .join("events-x.json.tmp")
            .exists()
    );

    // Beginning the job again (a new lease) keeps its position and events.
    let again = spool.begin(record(job)).unwrap();
    assert_eq!(again.next_seq, 17);
    assert_eq!(spool.pending(job).unwrap().len(), 1);

    spool.finish(other).unwrap();
    assert!(spool.record(other).unwrap().is_none());
    assert!(spool.pending(other).unwrap().is_empty());
}

#[test]
fn a_chunk_read_twice_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    let job = Uuid::now_v7();
    spool.begin(record(job)).unwrap();
    spool.append(job, &events(1..=8), false).unwrap();
    spool.append(job, &events(1..=8), false).unwrap();
    let record = spool.append(job, &[], true).unwrap();
    assert_eq!(spool.pending(job).unwrap().len(), 1);
    assert_eq!(record.next_seq, 9);
    assert!(record.read_done);
}
