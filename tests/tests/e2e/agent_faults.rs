//! Faults around the device agent, with real processes: the agent killed with
//! SIGKILL at random points and restarted on the same spool, the API restarted,
//! Redis stopped and started again; every approved key's events end up stored
//! exactly once.
//!
//! The test runs on a PostgreSQL cluster (`initdb`) and a Redis server of its
//! own ([`countersign_tests::servers`]), so stopping them disturbs no other
//! test. Each round reads six keys, five of them under a fault at a random
//! point (three agent kills, an API restart, a Redis outage). The normal run is
//! [`CI_ROUNDS`] rounds (under a minute); `FAULT_ROUNDS=25 cargo test -p
//! countersign-tests --test e2e agent_faults -- --nocapture` is the long run
//! (10–15 minutes), and `FAULT_SEED=<n>` repeats the random delays of an
//! earlier run (each run prints its seed). The figures are events lost and
//! duplicated, both 0.

use std::time::Duration;

use countersign_tests::TestApp;
use countersign_tests::servers::{Postgres, Redis};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use tokio::time::Instant;

use crate::agent_processes::{Site, approved_request, get, seqs};

/// Keys per round, and events each key holds.
const KEYS: usize = 6;
const EVENTS: u64 = 300;
/// Rounds of the normal run; `FAULT_ROUNDS` overrides.
const CI_ROUNDS: usize = 2;
/// How long one key may take, faults included.
const PER_KEY: Duration = Duration::from_secs(40);

/// A small deterministic generator (splitmix64), so a seed repeats a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A delay between `min` and `max` milliseconds.
    fn millis(&mut self, min: u64, max: u64) -> Duration {
        Duration::from_millis(min + self.next() % (max - min + 1))
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillAgent,
    RestartApi,
    StopRedis,
    None,
}

/// What happens while each key of a round is being read.
const PLAN: [Fault; KEYS] = [
    Fault::KillAgent,
    Fault::KillAgent,
    Fault::RestartApi,
    Fault::StopRedis,
    Fault::KillAgent,
    Fault::None,
];

#[derive(Default)]
struct Figures {
    kills: u32,
    agent_restarts: u32,
    api_restarts: u32,
    redis_outages: u32,
}

struct KeyUnderTest {
    marking: String,
    id: String,
    request: String,
}

/// Waits until the request is completed; failing shows the agent's log.
async fn completed(app: &TestApp, admin: &str, site: &Site, key: &KeyUnderTest) {
    let deadline = Instant::now() + PER_KEY;
    loop {
        let reply = app
            .get(&format!("/v1/event-log-requests/{}", key.request), admin)
            .await;
        if reply.status == 200 && reply.body["status"] == "completed" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not completed within {PER_KEY:?}: {:#}\nagent log:\n{}",
            key.marking,
            reply.body,
            site.agent.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_is_stored_once_through_agent_kills_api_restarts_and_redis_outages() {
    let started = Instant::now();
    let rounds: usize = std::env::var("FAULT_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(CI_ROUNDS);
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("agent faults: seed {seed} (FAULT_SEED), {rounds} round(s) (FAULT_ROUNDS)");
    let mut rng = Rng(seed);

    let postgres = Postgres::start().await;
    let mut redis = Redis::start().await;
    let mut app = TestApp::spawn_on_servers(&postgres.admin_url(), &redis.url()).await;
    let tenant = app.tenant("faults", true).await;
    let (_, approver) = app
        .person(&tenant, "APP-1", &["approver"], Some("app@example.org"))
        .await;
    let mut site = Site::start(&app, &tenant).await;
    let mut figures = Figures::default();
    let mut keys = Vec::new();

    for round in 0..rounds {
        // Every key of the round approved up front: the agent's work list holds them all.
        let mut batch = Vec::new();
        for i in 0..KEYS {
            let marking = format!("K-{round}-{i}");
            let id = app.issued_key(&tenant, &marking, "e3").await;
            site.wall.send(&format!("key {marking} {EVENTS}")).await;
            let request =
                approved_request(&app, &tenant, &approver, json!({"type": "key", "id": id})).await;
            batch.push(KeyUnderTest {
                marking,
                id,
                request,
            });
        }
        for (key, fault) in batch.iter().zip(PLAN) {
            site.wall.send(&format!("insert {}", key.marking)).await;
            match fault {
                Fault::KillAgent => {
                    let delay = rng.millis(50, 1500);
                    tokio::time::sleep(delay).await;
                    site.agent.kill().await;
                    figures.kills += 1;
                    let down = rng.millis(0, 1000);
                    println!(
                        "{}: agent killed after {delay:?}, restarted after {down:?}",
                        key.marking
                    );
                    tokio::time::sleep(down).await;
                    site.restart_agent().await;
                    figures.agent_restarts += 1;
                    // The new process knows nothing of the key in the unit (the
                    // protocol has no "what is inserted?"): it is inserted again,
                    // and the job, still leased to the dead process, is taken over.
                    site.wall.send(&format!("remove {}", key.marking)).await;
                    site.wall.send(&format!("insert {}", key.marking)).await;
                }
                Fault::RestartApi => {
                    let delay = rng.millis(50, 1500);
                    tokio::time::sleep(delay).await;
                    app.stop().await;
                    let down = rng.millis(200, 2000);
                    println!(
                        "{}: API stopped after {delay:?}, restarted after {down:?}",
                        key.marking
                    );
                    tokio::time::sleep(down).await;
                    app.restart().await;
                    figures.api_restarts += 1;
                }
                Fault::StopRedis => {
                    let delay = rng.millis(50, 1500);
                    tokio::time::sleep(delay).await;
                    redis.stop().await;
                    let down = rng.millis(500, 3000);
                    println!(
                        "{}: Redis stopped after {delay:?}, started again after {down:?}",
                        key.marking
                    );
                    tokio::time::sleep(down).await;
                    redis.resume().await;
                    figures.redis_outages += 1;
                }
                Fault::None => {}
            }
            completed(&app, &tenant.admin, &site, key).await;
            site.wall.send(&format!("remove {}", key.marking)).await;
        }
        keys.extend(batch);
    }

    // What the API holds, per key: the event log, and the events table itself.
    let expected: Vec<i64> = (1..=EVENTS as i64).collect();
    let (mut stored, mut lost, mut duplicated) = (0usize, 0usize, 0usize);
    for key in &keys {
        let request = get(
            &app,
            &tenant,
            &format!("/v1/event-log-requests/{}", key.request),
        )
        .await;
        assert_eq!(request["status"], "completed", "{request:#}");
        assert_eq!(request["job"]["status"], "completed", "{request:#}");
        let log = get(
            &app,
            &tenant,
            &format!("/v1/keys/{}/event-log?limit=500", key.id),
        )
        .await;
        let mut got = seqs(&log);
        got.sort_unstable();
        let row = app
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT COUNT(*) AS n, COUNT(DISTINCT device_seq) AS d FROM events \
                     WHERE source_id = '{}'",
                    key.id
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let rows: i64 = row.try_get("", "n").unwrap();
        let distinct: i64 = row.try_get("", "d").unwrap();
        stored += rows as usize;
        duplicated += (rows - distinct) as usize;
        lost += expected.iter().filter(|s| !got.contains(s)).count();
        assert!(
            rows <= EVENTS as i64,
            "{}: {rows} rows for {EVENTS} events",
            key.marking
        );
        assert_eq!(got, expected, "{}: every event, once", key.marking);
    }
    let total = keys.len() * EVENTS as usize;
    println!(
        "agent faults: kills {}, agent restarts {}, API restarts {}, Redis outages {}; \
         events expected {total}, stored {stored}, lost {lost}, duplicated {duplicated}; {:?}",
        figures.kills,
        figures.agent_restarts,
        figures.api_restarts,
        figures.redis_outages,
        started.elapsed()
    );
    assert_eq!((lost, duplicated, stored), (0, 0, total));
    drop(site);
    drop(app);
    redis.stop().await;
    drop(postgres);
}
