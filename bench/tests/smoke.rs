//! The whole benchmark pipeline on tiny data and one-second phases, so that
//! it cannot rot: seeding, servers, every driver, pgbench and the report.
//! Needs PostgreSQL at 127.0.0.1:5432 (or `TEST_DATABASE_URL`), Redis at
//! 127.0.0.1:6379 (or `TEST_REDIS_URL`) and `pgbench`.

#![allow(clippy::unwrap_used)]

use clap::Parser;
use countersign_bench::Settings;
use sea_orm::ConnectionTrait;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_pipeline_on_tiny_data() {
    let admin = countersign_tests::admin_url();
    let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("benchmarks.md");
    let database = format!("cs_test_bench_{}", uuid::Uuid::new_v4().simple());
    let server = countersign_tests::process::server_binary().await;
    let cli = Cli::parse_from([
        "smoke".into(),
        "--smoke".into(),
        format!("--admin-url={admin}"),
        format!("--redis-url={redis}"),
        format!("--database={database}"),
        format!("--server={}", server.display()),
        format!("--report={}", report.display()),
    ]);
    let settings = Settings {
        command_line: "countersign-bench all --smoke".into(),
        ..cli.settings.resolved()
    };
    let started = std::time::Instant::now();
    let outcome = countersign_bench::all(&settings).await;

    let conn = countersign_bench::seed::connect(&admin, 1).await.unwrap();
    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .await
        .unwrap();
    let outcome = outcome.unwrap();
    eprintln!("smoke run in {:.1} s", started.elapsed().as_secs_f64());

    let text = std::fs::read_to_string(&report).unwrap();
    assert_eq!(text, outcome.text);
    for bench in ["B1", "B2", "B3", "B4", "B5", "B6"] {
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("| {bench} |")))
            .collect();
        assert!(!rows.is_empty(), "no {bench} row in:\n{text}");
        for row in rows {
            let ours = row.split('|').nth(3).unwrap().trim();
            let figure: f64 = ours
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap_or(f64::NAN);
            assert!(
                figure.is_finite() && figure >= 0.0,
                "{bench} has no figure: {row}"
            );
        }
    }
    for figure in &outcome.results.figures {
        if figure.baseline_what.is_empty() {
            continue;
        }
        let ratio = figure.ratio().unwrap();
        assert!(
            ratio.is_finite() && ratio > 0.0,
            "{}: ratio {ratio}",
            figure.bench
        );
    }
    assert!(
        text.contains("pgbench -n -M prepared -c 16 -j 2 -T"),
        "{text}"
    );
    assert!(
        text.contains("| machine |") && text.contains("| date |"),
        "{text}"
    );
}
