//! Event data (SPEC §4 items 7–8): idempotent storage, paginated reads with
//! time filters and local times, CSV and PDF exports, who may read them, the
//! history of every access, and retention.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use countersign_domain::ErrorCode;
use countersign_domain::ports::{EventData, EventRecord};
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::TargetType;
use countersign_tests::{Tenant, TestApp, on_both_databases};
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, HeaderMap};
use sea_orm::FromQueryResult;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_databases!(
    storage_is_idempotent_by_sequence_number,
    reads_page_through_a_time_range_with_local_times,
    exports_are_csv_and_printable_pdf,
    only_administrators_read_event_data,
    every_read_and_export_is_in_the_history,
    retention_deletes_old_events_and_records_only_the_range,
);

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(seq: i64, occurred_at: DateTime<Utc>) -> EventRecord {
    EventRecord {
        seq,
        occurred_at,
        kind: if seq % 5 == 0 {
            "access_denied"
        } else {
            "access_granted"
        }
        .into(),
        key_marking: Some(format!("K-{}", seq % 7)),
        cylinder_marking: Some("C-1".into()),
        job_id: None,
    }
}

/// `n` events a minute apart from `start`, numbered from `first`.
fn series(first: i64, n: i64, start: DateTime<Utc>) -> Vec<EventRecord> {
    (0..n)
        .map(|i| event(first + i, start + Duration::minutes(i)))
        .collect()
}

async fn key(app: &TestApp, tenant: &Tenant, marking: &str) -> Uuid {
    let key = app
        .post(
            "/v1/keys",
            &tenant.admin,
            json!({"marking": marking, "name": format!("Key {marking}"), "model": "e2"}),
        )
        .await
        .assert(201);
    key["id"].as_str().unwrap().parse().unwrap()
}

async fn cylinder(app: &TestApp, tenant: &Tenant, marking: &str) -> Uuid {
    let cylinder = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": marking, "name": format!("Door {marking}"), "location": "Hall"}),
        )
        .await
        .assert(201);
    cylinder["id"].as_str().unwrap().parse().unwrap()
}

async fn store(
    app: &TestApp,
    tenant: &Tenant,
    source: TargetType,
    id: Uuid,
    events: Vec<EventRecord>,
) -> u64 {
    app.store
        .store_events(TenantId(tenant.id), source, id, None, events)
        .await
        .unwrap()
}

/// A download: status, headers and the raw body.
async fn download(app: &TestApp, path: &str, token: &str) -> (u16, HeaderMap, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

fn header(headers: &HeaderMap, name: reqwest::header::HeaderName) -> &str {
    headers.get(name).unwrap().to_str().unwrap()
}

#[derive(Debug, FromQueryResult)]
struct HistoryRow {
    actor_kind: String,
    actor_programming_key_id: Option<Uuid>,
    action: String,
    subject_type: String,
    subject_id: Option<Uuid>,
    details: Value,
}

/// The tenant's history entries with an action starting `event_data.`, read
/// straight from the table.
async fn event_history(app: &TestApp, tenant: &Tenant) -> Vec<HistoryRow> {
    let query = Query::select()
        .columns(
            [
                "actor_kind",
                "actor_programming_key_id",
                "action",
                "subject_type",
                "subject_id",
                "details",
            ]
            .map(Alias::new),
        )
        .from(Alias::new("history_entries"))
        .and_where(Expr::col(Alias::new("tenant_id")).eq(tenant.id))
        .and_where(Expr::col(Alias::new("action")).like("event_data.%"))
        .order_by(Alias::new("seq"), Order::Asc)
        .to_owned();
    let statement = app.db.get_database_backend().build(&query);
    HistoryRow::find_by_statement(statement)
        .all(&app.db)
        .await
        .unwrap()
}

async fn storage_is_idempotent_by_sequence_number(app: TestApp) {
    let tenant = app.tenant("ev-store", true).await;
    let key = key(&app, &tenant, "K-1").await;
    let start = at("2024-05-01T08:00:00Z");

    let batch = series(1, 3, start);
    assert_eq!(
        store(&app, &tenant, TargetType::Key, key, batch.clone()).await,
        3
    );
    assert_eq!(
        store(&app, &tenant, TargetType::Key, key, batch).await,
        0,
        "the same batch again stores nothing"
    );
    let overlapping = series(2, 4, start + Duration::minutes(1));
    assert_eq!(
        store(&app, &tenant, TargetType::Key, key, overlapping).await,
        2,
        "only seq 4 and 5 are new"
    );
    let mut twice = series(6, 2, start + Duration::minutes(5));
    twice.extend(series(6, 2, start + Duration::minutes(5)));
    assert_eq!(store(&app, &tenant, TargetType::Key, key, twice).await, 2);

    let page = app
        .get(&format!("/v1/keys/{key}/event-log"), &tenant.admin)
        .await
        .assert(200);
    let seqs: Vec<i64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7]);

    // More events in one call than one statement may carry bind parameters for,
    // on either database.
    let cylinder = cylinder(&app, &tenant, "C-1").await;
    let many = series(1, 20_000, start);
    assert_eq!(
        store(&app, &tenant, TargetType::Cylinder, cylinder, many.clone()).await,
        20_000
    );
    assert_eq!(
        store(&app, &tenant, TargetType::Cylinder, cylinder, many).await,
        0
    );
    let more = series(19_991, 20, start + Duration::minutes(19_990));
    assert_eq!(
        store(&app, &tenant, TargetType::Cylinder, cylinder, more).await,
        10
    );
    let last = app
        .get(
            &format!("/v1/cylinders/{cylinder}/event-log?from=2024-05-15T05:15:00Z&limit=500"),
            &tenant.admin,
        )
        .await
        .assert(200);
    let items = last["items"].as_array().unwrap();
    assert_eq!(items.len(), 15);
    assert_eq!(items.last().unwrap()["seq"], 20_010);
    assert_eq!(last["next_cursor"], Value::Null);

    // The source must be the tenant's key or cylinder: not the other kind, not another tenant's.
    let t = TenantId(tenant.id);
    for (source, id) in [
        (TargetType::Cylinder, key),
        (TargetType::Key, cylinder),
        (TargetType::Key, Uuid::now_v7()),
    ] {
        let err = app
            .store
            .store_events(t, source, id, None, series(1, 1, start))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::NotFound);
    }
    let other = app.tenant("ev-store-other", true).await;
    let err = app
        .store
        .store_events(
            TenantId(other.id),
            TargetType::Key,
            key,
            None,
            series(1, 1, start),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
}

/// Every page of a read, following `next_cursor`.
async fn all_pages(app: &TestApp, token: &str, path: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let separator = if path.contains('?') { '&' } else { '?' };
    loop {
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page = app.get(&url, token).await.assert(200);
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

async fn reads_page_through_a_time_range_with_local_times(app: TestApp) {
    let tenant = app.tenant("ev-read", true).await;
    let key = key(&app, &tenant, "K-1").await;
    // Europe/Berlin leaves CET for CEST on 2024-03-31 at 01:00 UTC.
    let dst = at("2024-03-31T01:00:00Z");
    let mut events: Vec<EventRecord> = (0..8)
        .map(|i| event(10 + i, dst + Duration::minutes(30 * (i - 4))))
        .collect();
    // A device's sequence need not follow time: order is by time, then seq.
    events.push(event(3, dst + Duration::minutes(-120)));
    events.push(event(50, dst));
    events.reverse();
    assert_eq!(store(&app, &tenant, TargetType::Key, key, events).await, 10);

    let all = all_pages(&app, &tenant.admin, &format!("/v1/keys/{key}/event-log"), 3).await;
    let order: Vec<(String, i64)> = all
        .iter()
        .map(|e| {
            (
                e["occurred_at"].as_str().unwrap().to_owned(),
                e["seq"].as_i64().unwrap(),
            )
        })
        .collect();
    let seqs: Vec<i64> = order.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs, [3, 10, 11, 12, 13, 14, 50, 15, 16, 17]);
    assert_eq!(
        all[0],
        json!({
            "seq": 3, "occurred_at": "2024-03-30T23:00:00Z",
            "occurred_at_local": "2024-03-31T00:00:00+01:00", "kind": "access_granted",
            "key_marking": "K-3", "cylinder_marking": "C-1", "job_id": null
        })
    );
    let local = |seq: i64| {
        all.iter().find(|e| e["seq"] == seq).unwrap()["occurred_at_local"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        local(13),
        "2024-03-31T01:30:00+01:00",
        "before the change: CET"
    );
    assert_eq!(local(14), "2024-03-31T03:00:00+02:00", "after it: CEST");
    assert_eq!(local(50), "2024-03-31T03:00:00+02:00");

    // `from` inclusive, `to` exclusive, any offset; the same instant in two notations.
    for (from, to) in [
        ("2024-03-31T01:30:00%2B01:00", "2024-03-31T04:00:00%2B02:00"),
        ("2024-03-31T00:30:00Z", "2024-03-31T02:00:00Z"),
    ] {
        let range = all_pages(
            &app,
            &tenant.admin,
            &format!("/v1/keys/{key}/event-log?from={from}&to={to}"),
            2,
        )
        .await;
        let seqs: Vec<i64> = range.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, [13, 14, 50, 15]);
    }

    for bad in [
        "from=2024-03-31T01:00:00",
        "to=2024-03-31",
        "from=2024-03-31T01:00:00+01:00",
        "from=2024-03-31T02:00:00Z&to=2024-03-31T01:00:00Z",
        "limit=501",
        "limit=0",
        "cursor=abc",
    ] {
        let reply = app
            .get(&format!("/v1/keys/{key}/event-log?{bad}"), &tenant.admin)
            .await;
        reply.assert_status_because(400, bad);
        assert_eq!(reply.code(), "invalid_query", "{bad}");
    }
}

fn range_query() -> &'static str {
    "from=2024-10-26T22:00:00%2B02:00&to=2024-10-28T00:00:00%2B01:00"
}

async fn exports_are_csv_and_printable_pdf(app: TestApp) {
    let tenant = app.tenant("ev-export", true).await;
    let cylinder = cylinder(&app, &tenant, "C-7").await;
    // Across the end of summer time in Berlin (2024-10-27 01:00 UTC), an event
    // every five minutes, plus some outside the range.
    let start = at("2024-10-26T20:00:00Z");
    let events: Vec<EventRecord> = (0..300)
        .map(|i| event(i + 1, start + Duration::minutes(5 * i)))
        .chain([
            event(1000, at("2024-10-26T19:59:59Z")),
            event(1001, at("2024-10-27T23:00:00Z")),
        ])
        .collect();
    assert_eq!(
        store(&app, &tenant, TargetType::Cylinder, cylinder, events).await,
        302
    );

    let base = format!("/v1/cylinders/{cylinder}/event-log/export");
    let (status, headers, body) = download(
        &app,
        &format!("{base}?format=csv&{}", range_query()),
        &tenant.admin,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, CONTENT_TYPE), "text/csv; charset=utf-8");
    let disposition = header(&headers, CONTENT_DISPOSITION);
    assert!(
        disposition.starts_with("attachment; filename="),
        "{disposition}"
    );
    assert!(
        disposition.contains("C-7") && disposition.ends_with(".csv\""),
        "{disposition}"
    );

    let mut reader = csv::Reader::from_reader(body.as_slice());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "seq",
            "occurred_at",
            "occurred_at_local",
            "kind",
            "key_marking",
            "cylinder_marking"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len(),
        300,
        "the two events outside the range are not exported"
    );
    assert_eq!(
        rows[0].iter().collect::<Vec<_>>(),
        [
            "1",
            "2024-10-26T20:00:00Z",
            "2024-10-26T22:00:00+02:00",
            "access_granted",
            "K-1",
            "C-1"
        ]
    );
    let summer = rows
        .iter()
        .find(|r| &r[1] == "2024-10-27T00:30:00Z")
        .unwrap();
    assert_eq!(&summer[2], "2024-10-27T02:30:00+02:00");
    let winter = rows
        .iter()
        .find(|r| &r[1] == "2024-10-27T01:30:00Z")
        .unwrap();
    assert_eq!(
        &winter[2], "2024-10-27T02:30:00+01:00",
        "the same wall time, an hour later"
    );
    for (i, row) in rows.iter().enumerate() {
        let seq: i64 = row[0].parse().unwrap();
        assert_eq!(seq, i as i64 + 1);
        let utc: DateTime<Utc> = row[1].parse().unwrap();
        let local: DateTime<Utc> = row[2].parse().unwrap();
        assert_eq!(utc, local);
        assert_eq!(utc, start + Duration::minutes(5 * i as i64));
    }

    let (status, headers, pdf) = download(
        &app,
        &format!("{base}?format=pdf&{}", range_query()),
        &tenant.admin,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, CONTENT_TYPE), "application/pdf");
    assert!(header(&headers, CONTENT_DISPOSITION).ends_with(".pdf\""));
    assert!(pdf.starts_with(b"%PDF-"));
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    for expected in [
        "Ereignisprotokoll",
        &format!("Tenant {}", tenant.slug),
        "Zylinder: C-7 – Door C-7",
        "Zeitraum: 2024-10-26T22:00:00+02:00 – 2024-10-28T00:00:00+01:00",
        "Europe/Berlin",
        "Ortszeit",
        "2024-10-26T22:00:00+02:00",
        "2024-10-27T02:30:00+02:00",
        "2024-10-27T02:30:00+01:00",
        "access_denied",
        "Seite 1 von",
        "Seite 2 von",
    ] {
        assert!(
            text.contains(expected),
            "the PDF lacks {expected:?}:\n{text}"
        );
    }
    let pages = text.matches("Seite ").count();
    assert!(pages >= 5, "300 rows fill several A4 pages, got {pages}");
    assert_eq!(
        text.matches("Ortszeit").count(),
        pages,
        "the column header is repeated on every page"
    );
    let last_utc = (start + Duration::minutes(5 * 299))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert!(text.contains(&last_utc), "the last row is printed");
    assert!(!text.contains("2024-10-26T19:59:59Z") && !text.contains("2024-10-27T23:00:00Z"));

    // An empty range still prints its header.
    let (status, _, pdf) = download(
        &app,
        &format!("{base}?format=pdf&from=2030-01-01T00:00:00Z"),
        &tenant.admin,
    )
    .await;
    assert_eq!(status, 200);
    let text = pdf_extract::extract_text_from_mem(&pdf).unwrap();
    assert!(
        text.contains("Keine Ereignisse") && text.contains("Seite 1 von 1"),
        "{text}"
    );

    for bad in [
        "format=xlsx",
        "format=",
        "",
        "format=csv&from=2024-10-27T00:00:00",
    ] {
        let reply = app.get(&format!("{base}?{bad}"), &tenant.admin).await;
        reply.assert_status_because(400, bad);
        assert_eq!(reply.code(), "invalid_query", "{bad}");
    }
}

async fn only_administrators_read_event_data(app: TestApp) {
    let tenant = app.tenant("ev-roles", true).await;
    let key = key(&app, &tenant, "K-1").await;
    let cylinder = cylinder(&app, &tenant, "C-1").await;
    let paths = [
        format!("/v1/keys/{key}/event-log"),
        format!("/v1/cylinders/{cylinder}/event-log"),
        format!("/v1/keys/{key}/event-log/export?format=csv"),
        format!("/v1/cylinders/{cylinder}/event-log/export?format=pdf"),
    ];

    let (_, system_admin) = app
        .person(&tenant, "SYS-1", &["system_administrator"], None)
        .await;
    for token in [&tenant.admin, &system_admin] {
        for path in &paths {
            app.get(path, token).await.assert_status_because(200, path);
        }
    }
    for (marking, role) in [
        ("APP-1", "approver"),
        ("AUD-1", "auditor"),
        ("REC-1", "receptionist"),
        ("CYL-1", "cylinder_programmer"),
    ] {
        let email = format!("{}@example.com", marking.to_lowercase());
        let (_, token) = app.person(&tenant, marking, &[role], Some(&email)).await;
        for path in &paths {
            let reply = app.get(path, &token).await;
            reply.assert_status_because(403, &format!("{role} on {path}"));
            assert_eq!(reply.code(), "forbidden");
        }
    }
    for path in &paths {
        app.call(reqwest::Method::GET, path, None, None)
            .await
            .assert_status(401);
    }

    // Another tenant's administrator finds neither the key nor the cylinder.
    let other = app.tenant("ev-roles-other", true).await;
    for path in &paths {
        let reply = app.get(path, &other.admin).await;
        reply.assert_status_because(404, path);
        assert_eq!(reply.code(), "not_found");
    }
    // Nor does anyone find a key under the cylinders, or the other way round.
    app.get(&format!("/v1/cylinders/{key}/event-log"), &tenant.admin)
        .await
        .assert_status(404);
    app.get(
        &format!("/v1/keys/{cylinder}/event-log/export?format=csv"),
        &tenant.admin,
    )
    .await
    .assert_status(404);

    // Refused and missing reads leave no trace of event data having been read.
    let read = event_history(&app, &tenant).await;
    assert_eq!(
        read.len(),
        2 * paths.len(),
        "only the administrators' reads"
    );
    assert!(event_history(&app, &other).await.is_empty());
}

async fn every_read_and_export_is_in_the_history(app: TestApp) {
    let tenant = app.tenant("ev-history", true).await;
    let (admin_key, admin) = app
        .person(&tenant, "SYS-1", &["system_administrator"], None)
        .await;
    let key = key(&app, &tenant, "K-1").await;
    let cylinder = cylinder(&app, &tenant, "C-1").await;
    store(
        &app,
        &tenant,
        TargetType::Key,
        key,
        series(1, 5, at("2024-06-01T10:00:00Z")),
    )
    .await;

    let page = app
        .get(
            &format!("/v1/keys/{key}/event-log?from=2024-06-01T12:00:00%2B02:00&limit=3"),
            &admin,
        )
        .await
        .assert(200);
    let cursor = page["next_cursor"].as_str().unwrap();
    app.get(
        &format!(
            "/v1/keys/{key}/event-log?from=2024-06-01T12:00:00%2B02:00&limit=3&cursor={cursor}"
        ),
        &admin,
    )
    .await
    .assert(200);
    let (status, _, _) = download(
        &app,
        &format!("/v1/keys/{key}/event-log/export?format=csv&to=2024-06-01T10:02:00Z"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = download(
        &app,
        &format!("/v1/cylinders/{cylinder}/event-log/export?format=pdf"),
        &admin,
    )
    .await;
    assert_eq!(status, 200);

    let history = event_history(&app, &tenant).await;
    let actions: Vec<&str> = history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "event_data.received",
            "event_data.read",
            "event_data.read",
            "event_data.exported",
            "event_data.exported"
        ]
    );
    // The events were stored by Countersign itself; every access by the administrator.
    assert_eq!(history[0].actor_kind, "system");
    for h in &history[1..] {
        assert_eq!(h.actor_kind, "user");
        assert_eq!(h.actor_programming_key_id, Some(admin_key));
    }
    assert_eq!(history[0].details["stored"], history[0].details["received"]);
    let (first, second, csv, pdf) = (&history[1], &history[2], &history[3], &history[4]);
    assert_eq!(
        (first.subject_type.as_str(), first.subject_id),
        ("key", Some(key))
    );
    assert_eq!(
        first.details["source"],
        json!({"type": "key", "id": key, "marking": "K-1"})
    );
    assert_eq!(
        first.details["range"],
        json!({"from": "2024-06-01T10:00:00Z", "to": null})
    );
    assert_eq!(first.details["count"], 3);
    assert_eq!(second.details["count"], 2);
    assert_eq!(second.details["cursor"], 3);
    assert_eq!(csv.details["format"], "csv");
    assert_eq!(csv.details["count"], 2);
    assert_eq!(csv.details["range"]["to"], "2024-06-01T10:02:00Z");
    assert_eq!(
        (pdf.subject_type.as_str(), pdf.subject_id),
        ("cylinder", Some(cylinder))
    );
    assert_eq!(pdf.details["format"], "pdf");
    assert_eq!(pdf.details["count"], 0);
    // What was read is named, never the data itself.
    let text =
        serde_json::to_string(&history.iter().map(|h| &h.details).collect::<Vec<_>>()).unwrap();
    assert!(!text.contains("access_granted"));
}

async fn retention_deletes_old_events_and_records_only_the_range(app: TestApp) {
    let operator = app.operator().await;
    let tenant = app.tenant("ev-retention", false).await;
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        &operator,
        json!({"event_retention_days": 30}),
    )
    .await
    .assert(200);
    let other = app.tenant("ev-retention-other", false).await;
    app.patch(
        &format!("/v1/tenants/{}", other.id),
        &operator,
        json!({"event_retention_days": 90}),
    )
    .await
    .assert(200);

    let now = Utc::now().trunc_subsecs(0);
    let days = |d: i64| now - Duration::days(d);
    let key = key(&app, &tenant, "K-1").await;
    let cylinder = cylinder(&app, &tenant, "C-1").await;
    let old = vec![event(1, days(60)), event(2, days(45)), event(3, days(31))];
    let recent = vec![event(4, days(29)), event(5, days(1))];
    store(&app, &tenant, TargetType::Key, key, [old, recent].concat()).await;
    store(
        &app,
        &tenant,
        TargetType::Cylinder,
        cylinder,
        vec![event(1, days(40)), event(2, days(2))],
    )
    .await;
    let other_key = self::key(&app, &other, "K-1").await;
    store(
        &app,
        &other,
        TargetType::Key,
        other_key,
        vec![event(1, days(60))],
    )
    .await;

    assert_eq!(app.store.delete_expired(now).await.unwrap(), 4);

    let seqs = |page: Value| -> Vec<i64> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect()
    };
    let kept = app
        .get(&format!("/v1/keys/{key}/event-log"), &tenant.admin)
        .await
        .assert(200);
    assert_eq!(seqs(kept), [4, 5]);
    let kept = app
        .get(
            &format!("/v1/cylinders/{cylinder}/event-log"),
            &tenant.admin,
        )
        .await
        .assert(200);
    assert_eq!(seqs(kept), [2]);
    let untouched = app
        .get(&format!("/v1/keys/{other_key}/event-log"), &other.admin)
        .await
        .assert(200);
    assert_eq!(
        seqs(untouched),
        [1],
        "another tenant keeps its events for 90 days"
    );

    let deletions: Vec<HistoryRow> = event_history(&app, &tenant)
        .await
        .into_iter()
        .filter(|h| h.action == "event_data.deleted")
        .collect();
    assert_eq!(deletions.len(), 1);
    let deletion = &deletions[0];
    assert_eq!(deletion.actor_kind, "system");
    assert_eq!(deletion.actor_programming_key_id, None);
    assert_eq!(deletion.subject_type, "event_data");
    let rfc3339 = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    assert_eq!(
        deletion.details,
        json!({
            "reason": "retention",
            "count": 4,
            "oldest": rfc3339(days(60)),
            "newest": rfc3339(days(31)),
            "cutoff": rfc3339(days(30)),
            "event_retention_days": 30,
        }),
        "how many and which range, never the events themselves"
    );
    assert!(
        event_history(&app, &other)
            .await
            .iter()
            .all(|h| h.action != "event_data.deleted")
    );

    assert_eq!(
        app.store.delete_expired(now).await.unwrap(),
        0,
        "nothing left to delete"
    );
    let deletions = event_history(&app, &tenant)
        .await
        .into_iter()
        .filter(|h| h.action == "event_data.deleted")
        .count();
    assert_eq!(deletions, 1, "a pass that deletes nothing records nothing");
}
