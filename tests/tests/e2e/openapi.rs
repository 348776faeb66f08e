//! The committed OpenAPI document is the one the code generates.

#[test]
fn committed_document_is_current() {
    let generated = countersign_api::app::openapi_json();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim() == generated.trim(),
        "openapi/openapi.json is stale: regenerate it with `cargo run -p countersign-api -- openapi > openapi/openapi.json`"
    );
}

#[test]
fn every_operation_documents_security_and_errors() {
    let doc: serde_json::Value =
        serde_json::from_str(&countersign_api::app::openapi_json()).unwrap();
    let public = ["/v1/auth/token", "/healthz", "/readyz", "/v1/error-codes"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success response"
            );
            if !public.contains(&path.as_str()) {
                assert!(
                    op.get("security").is_some(),
                    "{method} {path} has no security requirement"
                );
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents no 401"
                );
            }
        }
    }
}

#[tokio::test]
async fn swagger_ui_is_served_offline() {
    let app = countersign_tests::TestApp::spawn(countersign_tests::Backend::Sqlite).await;
    let page = reqwest::get(format!("{}/docs/", app.base)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    let doc: serde_json::Value = reqwest::get(format!("{}/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["info"]["title"], "Countersign API");
}
