//! The agent's serial link against the simulator over a real pty, opened with tokio-serial.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use countersign_agent::link::{DeviceLink, LinkConfig, LinkError};
use countersign_agent::protocol::{CollectResults, LoadJob, Notice, ReadEvents};
use countersign_agent::simulator::{self, Control, SimConfig, SimHandle};
use countersign_agent::spool::{JobRecord, Source, Spool};
use tokio::sync::mpsc;
use tokio_serial::SerialPortBuilderExt;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(30);

fn link_config() -> LinkConfig {
    LinkConfig {
        timeout: Duration::from_millis(300),
        retries: 3,
        reconnect_delay: Duration::from_millis(100),
    }
}

struct Setup {
    sim: SimHandle,
    link: DeviceLink,
    notices: mpsc::Receiver<Notice>,
    cancel: CancellationToken,
    _dir: tempfile::TempDir,
}

fn setup(kind: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("tty");
    let sim = simulator::spawn(SimConfig {
        kind: kind.into(),
        serial: "RU-1".into(),
        link: Some(path.clone()),
    })
    .unwrap();
    let (tx, notices) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let connect = move || {
        let path = path.to_string_lossy().into_owned();
        async move {
            tokio_serial::new(path, 115_200)
                .open_native_async()
                .map_err(std::io::Error::other)
        }
    };
    let link = DeviceLink::spawn(connect, link_config(), tx, cancel.clone());
    Setup {
        sim,
        link,
        notices,
        cancel,
        _dir: dir,
    }
}

async fn next_notice(notices: &mut mpsc::Receiver<Notice>) -> Notice {
    tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("a notice in time")
        .expect("the link is running")
}

#[tokio::test]
async fn identify_and_notices_are_acknowledged_once() {
    tokio::time::timeout(LIMIT, async {
        let mut s = setup("remote_unit");
        let identity = s.link.identify().await.unwrap();
        assert_eq!(identity.serial, "RU-1");

        // The first notice frame is damaged: the device repeats it until acknowledged.
        s.sim.send(Control::Corrupt(1)).await;
        s.sim.send(Control::Insert("K-1".into())).await;
        assert_eq!(
            next_notice(&mut s.notices).await,
            Notice::KeyInserted("K-1".into())
        );
        s.sim.send(Control::Remove("K-1".into())).await;
        assert_eq!(
            next_notice(&mut s.notices).await,
            Notice::KeyRemoved("K-1".into())
        );
        s.sim.send(Control::Connect("PK-7".into())).await;
        assert_eq!(
            next_notice(&mut s.notices).await,
            Notice::ProgrammingKeyConnected("PK-7".into())
        );
        // No duplicate arrives from the device's resends.
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert!(s.notices.try_recv().is_err());
        s.cancel.cancel();
    })
    .await
    .expect("bounded in time");
}

#[tokio::test]
async fn reads_in_chunks_into_the_spool_across_corruption_drops_and_a_hangup() {
    tokio::time::timeout(LIMIT, async {
        let mut s = setup("remote_unit");
        let spool_dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(spool_dir.path()).unwrap();
        let job_id = Uuid::now_v7();
        let mut record = spool
            .begin(JobRecord {
                job_id,
                device_id: Uuid::now_v7(),
                source: Source::Key {
                    marking: "K-9".into(),
                },
                next_seq: 1,
                read_done: false,
                lease_token: None,
            })
            .unwrap();
        s.sim
            .send(Control::AddKey {
                marking: "K-9".into(),
                events: 30,
            })
            .await;
        s.sim.send(Control::Insert("K-9".into())).await;
        next_notice(&mut s.notices).await;

        let mut round = 0;
        while !record.read_done {
            round += 1;
            match round {
                1 => {
                    s.sim.send(Control::Corrupt(1)).await;
                }
                2 => {
                    s.sim.send(Control::Garbage(40)).await;
                }
                3 => {
                    s.sim.send(Control::Drop(2)).await;
                }
                4 => {
                    s.sim.send(Control::Hangup).await;
                }
                _ => {}
            }
            let request = ReadEvents {
                key: "K-9".into(),
                from_seq: record.next_seq,
                max: 8,
            };
            let chunk = match s.link.read_events(request.clone()).await {
                Ok(chunk) => chunk,
                // The line went away: reopen and resume from what is spooled.
                Err(LinkError::Disconnected | LinkError::Timeout) => {
                    s.link.read_events(request).await.unwrap()
                }
                Err(other) => panic!("{other}"),
            };
            record = spool.append(job_id, &chunk.events, chunk.done).unwrap();
        }
        let seqs: Vec<u64> = spool
            .pending(job_id)
            .unwrap()
            .iter()
            .flat_map(|b| b.events.iter().map(|e| e.seq))
            .collect();
        assert_eq!(seqs, (1..=30).collect::<Vec<_>>());
        assert!(round >= 4);
        s.cancel.cancel();
    })
    .await
    .expect("bounded in time");
}

#[tokio::test]
async fn loads_a_job_and_collects_the_cylinder_events() {
    tokio::time::timeout(LIMIT, async {
        let mut s = setup("desk_unit");
        s.sim.send(Control::Connect("PK-7".into())).await;
        next_notice(&mut s.notices).await;
        let job = Uuid::now_v7().to_string();
        s.link
            .load_job(LoadJob {
                programming_key: "PK-7".into(),
                job_id: job.clone(),
                cylinder: "C-3".into(),
            })
            .await
            .unwrap();
        let collect = |from_seq| CollectResults {
            programming_key: "PK-7".into(),
            job_id: job.clone(),
            from_seq,
            max: 8,
        };
        match s.link.collect_results(collect(1)).await {
            Err(LinkError::Device(e)) => assert_eq!(e.code, "not_visited"),
            other => panic!("expected not_visited, got {other:?}"),
        }
        s.sim
            .send(Control::AddCylinder {
                marking: "C-3".into(),
                events: 12,
            })
            .await;
        s.sim
            .send(Control::Visit {
                programming_key: "PK-7".into(),
                cylinder: "C-3".into(),
            })
            .await;
        let first = s.link.collect_results(collect(1)).await.unwrap();
        assert_eq!(first.events.len(), 8);
        assert!(!first.done);
        let second = s.link.collect_results(collect(9)).await.unwrap();
        assert_eq!(
            second.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (9..=12).collect::<Vec<_>>()
        );
        assert!(second.done);
        assert!(
            second
                .events
                .iter()
                .all(|e| e.cyl.as_deref() == Some("C-3"))
        );
        s.cancel.cancel();
    })
    .await
    .expect("bounded in time");
}
