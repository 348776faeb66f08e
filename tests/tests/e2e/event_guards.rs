//! What an agent uploads is held to: event times between 2000 and a day after
//! the upload, and markings that cannot become formulas in an exported CSV.

use chrono::{Duration, Utc};
use countersign_tests::{Site, Tenant, TestApp, on_both_databases};
use serde_json::{Value, json};

on_both_databases!(
    formula_cells_are_neutralised_in_the_csv_export,
    implausible_event_times_refuse_the_whole_batch,
);

/// A key read by automatic collection at the site's wall unit: the key's id,
/// the site and the claimed job with its lease.
async fn collected_key(app: &TestApp, tenant: &Tenant) -> (String, Site, Value) {
    let key = app.issued_key(tenant, "K-1", "e3").await;
    let site = app.site(tenant).await;
    let read = app.key_inserted(&site, "K-1").await.assert(200);
    (key, site, read)
}

fn upload_path(read: &Value) -> String {
    format!(
        "/v1/agent/jobs/{}/events",
        read["job"]["id"].as_str().unwrap()
    )
}

fn event(seq: i64, occurred_at: &str, cylinder_marking: &str) -> Value {
    json!({"seq": seq, "occurred_at": occurred_at, "kind": "access_granted", "key_marking": "K-1", "cylinder_marking": cylinder_marking})
}

async fn formula_cells_are_neutralised_in_the_csv_export(app: TestApp) {
    let tenant = app.tenant("csvinj", false).await;
    let (key, site, read) = collected_key(&app, &tenant).await;
    let formulas = [
        r#"=HYPERLINK("http://x")"#,
        "+1+1",
        "-2+3",
        "@SUM(A1)",
        "\tTAB",
        "\rCR",
    ];
    let events: Vec<Value> = formulas
        .iter()
        .enumerate()
        .map(|(i, m)| event(i as i64 + 1, "2024-06-01T10:00:00Z", m))
        .collect();
    app.post(
        &upload_path(&read),
        &site.token,
        json!({"lease_token": read["lease"]["token"], "events": events}),
    )
    .await
    .assert(200);
    let export = app
        .get(
            &format!("/v1/keys/{key}/event-log/export?format=csv"),
            &tenant.admin,
        )
        .await
        .assert(200);
    let text = export.as_str().unwrap();
    assert!(
        text.contains(r#""'=HYPERLINK(""http://x"")""#),
        "neutralised and still quoted: {text}"
    );
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let cells: Vec<String> = reader.records().map(|r| r.unwrap()[5].to_owned()).collect();
    let expected: Vec<String> = formulas.iter().map(|m| format!("'{m}")).collect();
    assert_eq!(cells, expected);
}

async fn implausible_event_times_refuse_the_whole_batch(app: TestApp) {
    let tenant = app.tenant("evtime", false).await;
    let (key, site, read) = collected_key(&app, &tenant).await;
    let path = upload_path(&read);
    let upload = |events: Vec<Value>| {
        app.post(
            &path,
            &site.token,
            json!({"lease_token": read["lease"]["token"], "events": events}),
        )
    };
    for year in ["+200000-01-01T00:00:00Z", "-0100-01-01T00:00:00Z"] {
        let refused = upload(vec![
            event(1, "2024-06-01T10:00:00Z", "C"),
            event(2, year, "C"),
        ])
        .await;
        refused.assert_status_because(422, year);
        assert_eq!(refused.code(), "event_time_out_of_range", "{year}");
        assert_eq!(
            refused.body["errors"][0]["pointer"],
            "/events/1/occurred_at"
        );
    }
    let late = (Utc::now() + Duration::hours(25)).to_rfc3339();
    let refused = upload(vec![
        event(1, "2024-06-01T10:00:00Z", "C"),
        event(2, "1999-12-31T23:59:59Z", "C"),
        event(3, "2000-01-01T00:00:00Z", "C"),
        event(4, &late, "C"),
    ])
    .await;
    refused.assert_status(422);
    assert_eq!(refused.code(), "event_time_out_of_range");
    let pointers: Vec<&str> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["code"], "event_time_out_of_range");
            e["pointer"].as_str().unwrap()
        })
        .collect();
    assert_eq!(pointers, ["/events/1/occurred_at", "/events/3/occurred_at"]);
    let stored = app
        .get(&format!("/v1/keys/{key}/event-log"), &tenant.admin)
        .await
        .assert(200);
    assert_eq!(stored["items"], json!([]), "nothing of the batch is stored");
    let soon = (Utc::now() + Duration::hours(23)).to_rfc3339();
    let accepted = upload(vec![
        event(1, "2000-01-01T00:00:00Z", "C"),
        event(2, &soon, "C"),
    ])
    .await
    .assert(200);
    assert_eq!(accepted["stored"], 2);
}
