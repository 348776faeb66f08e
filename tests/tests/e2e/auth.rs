//! Logins, tokens and their revocation.

use chrono::Utc;
use countersign_infra::tokens::{AUDIENCE, Claims, ISSUER, TokenKeys};
use countersign_tests::{JWT_SECRET, TestApp, on_both_databases, unique_slug};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use uuid::Uuid;

async fn one_time_pins_permit_only_setting_a_pin(app: TestApp) {
    let slug = &unique_slug("otp");
    let operator = app.operator().await;
    let created = app
        .post(
            "/v1/tenants",
            &operator,
            json!({"slug": slug, "name": "OTP", "base_timezone": "UTC", "locale": "en", "approval_required": true,
                   "initial_admin": {"employee_name": "A", "email": "a@otp.example", "programming_key_marking": "A-1"}}),
        )
        .await
        .assert(201);
    let pin = created["initial_pin"].as_str().unwrap();
    let first = app.login(slug, "A-1", pin).await.assert(200);
    assert_eq!(first["pin_change_required"], true);
    assert!(
        first["refresh_token"].is_null(),
        "no refresh token for a one-time PIN"
    );
    let token = first["access_token"].as_str().unwrap();
    let refused = app.get("/v1/employees", token).await;
    assert_eq!(
        (refused.status.as_u16(), refused.code()),
        (403, "pin_change_required")
    );
    app.get("/v1/me", token).await.assert(200);
    let wrong = app
        .post(
            "/v1/me/pin",
            token,
            json!({"current_pin": "0000", "new_pin": "8642"}),
        )
        .await;
    wrong.assert_status(401);
    let weak = app
        .post(
            "/v1/me/pin",
            token,
            json!({"current_pin": pin, "new_pin": "12"}),
        )
        .await;
    weak.assert_status(422);
    app.post(
        "/v1/me/pin",
        token,
        json!({"current_pin": pin, "new_pin": "8642"}),
    )
    .await
    .assert(204);
    app.get("/v1/me", token)
        .await
        .assert_status_because(401, "setting the PIN ends the old tokens");
    app.login(slug, "A-1", pin)
        .await
        .assert_status_because(401, "the one-time PIN is spent");
    let real = app.login(slug, "A-1", "8642").await.assert(200);
    assert_eq!(real["pin_change_required"], false);
    app.get("/v1/employees", real["access_token"].as_str().unwrap())
        .await
        .assert(200);
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_family(app: TestApp) {
    let tenant = app.tenant("rot", true).await;
    let login = app
        .login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
    let first_refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let first_access = login["access_token"].as_str().unwrap().to_owned();
    let rotated = app
        .token(json!({"grant_type": "refresh_token", "refresh_token": first_refresh}))
        .await
        .assert(200);
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    let second_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    app.get("/v1/me", &second_access).await.assert(200);

    let reuse = app
        .token(json!({"grant_type": "refresh_token", "refresh_token": first_refresh}))
        .await;
    reuse.assert_status_because(401, "a spent refresh token is refused");
    let after = app
        .token(json!({"grant_type": "refresh_token", "refresh_token": second_refresh}))
        .await;
    after.assert_status_because(401, "its reuse revoked the whole family");
    app.get("/v1/me", &second_access).await.assert_status(401);
    app.get("/v1/me", &first_access).await.assert_status(401);
    // Other sessions of the same key live on.
    app.get("/v1/me", &tenant.admin).await.assert(200);
}

async fn revoke_ends_the_token_and_its_family(app: TestApp) {
    let tenant = app.tenant("rev", true).await;
    let login = app
        .login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
    let access = login["access_token"].as_str().unwrap();
    let refresh = login["refresh_token"].as_str().unwrap();
    app.post("/v1/auth/revoke", access, json!({}))
        .await
        .assert(204);
    app.get("/v1/me", access).await.assert_status(401);
    app.token(json!({"grant_type": "refresh_token", "refresh_token": refresh}))
        .await
        .assert_status(401);
    app.get("/v1/me", &tenant.admin).await.assert(200);
}

async fn failed_logins_look_alike_and_are_throttled(app: TestApp) {
    let tenant = app.tenant("thr", true).await;
    let unknown_tenant = app
        .login(&unique_slug("nowhere"), "ADMIN-1", "246810")
        .await;
    let unknown_key = app.login(&tenant.slug, "NOPE", "246810").await;
    let wrong_pin = app.login(&tenant.slug, "ADMIN-1", "999999").await;
    for reply in [&unknown_tenant, &unknown_key, &wrong_pin] {
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (401, "invalid_credentials")
        );
        assert_eq!(reply.body["detail"], unknown_tenant.body["detail"]);
    }
    for _ in 0..4 {
        app.login(&tenant.slug, "ADMIN-1", "999999")
            .await
            .assert_status(401);
    }
    let throttled = app.login(&tenant.slug, "ADMIN-1", "246810").await;
    assert_eq!(
        (throttled.status.as_u16(), throttled.code()),
        (429, "login_throttled")
    );
    let retry: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 900, "Retry-After {retry}");
    // Another credential is not affected.
    app.operator().await;
}

fn forge(claims: &Claims) -> String {
    TokenKeys::hs256(JWT_SECRET.as_bytes())
        .unwrap()
        .issue(claims)
        .unwrap()
}

async fn forged_and_stale_tokens_are_refused(app: TestApp) {
    let tenant = app.tenant("atk", true).await;
    app.get("/v1/me", &tenant.admin).await.assert(200);
    let now = Utc::now().timestamp();
    let issued: Claims = {
        use base64::Engine;
        let payload = tenant.admin.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        (issued.iss.as_str(), issued.aud.as_str(), issued.tid),
        (ISSUER, AUDIENCE, Some(tenant.id))
    );
    let good = Claims {
        jti: Uuid::new_v4(),
        iat: now,
        nbf: now,
        exp: now + 300,
        ..issued
    };
    app.get("/v1/me", &forge(&good)).await.assert(200);

    let header = Header {
        kid: jsonwebtoken::decode_header(&tenant.admin).unwrap().kid,
        ..Header::new(Algorithm::HS384)
    };
    let wrong_alg = jsonwebtoken::encode(
        &header,
        &good,
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap(),
    )
    .unwrap();
    let other_key = TokenKeys::hs256(&[9u8; 40]).unwrap().issue(&good).unwrap();
    let mut tampered = forge(&good).into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let unsigned = {
        let parts: Vec<&str> = tenant.admin.split('.').collect();
        use base64::Engine;
        let none = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"none","typ":"JWT"}"#);
        format!("{none}.{}.", parts[1])
    };
    let cases = [
        ("no token", None),
        ("malformed", Some("not-a-jwt".to_owned())),
        ("alg none", Some(unsigned)),
        ("wrong algorithm", Some(wrong_alg)),
        ("wrong signature", Some(other_key)),
        ("tampered", Some(tampered)),
        (
            "expired",
            Some(forge(&Claims {
                exp: now - 120,
                iat: now - 600,
                nbf: now - 600,
                ..good.clone()
            })),
        ),
        (
            "not yet valid",
            Some(forge(&Claims {
                nbf: now + 600,
                exp: now + 900,
                ..good.clone()
            })),
        ),
        (
            "wrong audience",
            Some(forge(&Claims {
                aud: "other".into(),
                ..good.clone()
            })),
        ),
        (
            "wrong issuer",
            Some(forge(&Claims {
                iss: "other".into(),
                ..good.clone()
            })),
        ),
        (
            "operator without tenant mismatch",
            Some(forge(&Claims {
                tid: None,
                ..good.clone()
            })),
        ),
    ];
    for (name, token) in cases {
        let reply = app
            .call(reqwest::Method::GET, "/v1/me", token.as_deref(), None)
            .await;
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (401, "unauthorized"),
            "{name}"
        );
        assert_eq!(
            reply.headers["content-type"], "application/problem+json",
            "{name}"
        );
    }
}

async fn blocking_returning_and_role_changes_end_tokens_at_once(app: TestApp) {
    let tenant = app.tenant("blk", true).await;
    for (marking, action) in [
        ("SYS-1", "block"),
        ("SYS-2", "return"),
        ("SYS-3", "roles"),
        ("SYS-4", "pin"),
    ] {
        let (id, token) = app
            .person(&tenant, marking, &["system_administrator"], None)
            .await;
        app.get("/v1/employees", &token).await.assert(200);
        let path = format!("/v1/programming-keys/{id}");
        match action {
            "roles" => app
                .patch(&path, &tenant.admin, json!({"roles": ["receptionist"]}))
                .await
                .assert(200),
            "pin" => app
                .post(
                    &format!("{path}/pin"),
                    &tenant.admin,
                    json!({"pin": "112233"}),
                )
                .await
                .assert(204),
            other => app
                .post(&format!("{path}/{other}"), &tenant.admin, json!({}))
                .await
                .assert(200),
        };
        app.get("/v1/employees", &token)
            .await
            .assert_status_because(401, "{action} ends the key's tokens");
        let again = app.login(&tenant.slug, marking, "97531").await;
        match action {
            "roles" => {
                let body = again.assert(200);
                assert_eq!(body["roles"], json!(["receptionist"]));
            }
            _ => assert_eq!(again.status, 401, "{action}: no new login either"),
        }
    }
    // Unblocking lets the key in again.
    let blocked = app
        .get("/v1/programming-keys?limit=500", &tenant.admin)
        .await
        .assert(200);
    let sys1 = blocked["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["marking"] == "SYS-1")
        .unwrap();
    assert_eq!(sys1["blocked"], true);
    app.post(
        &format!(
            "/v1/programming-keys/{}/unblock",
            sys1["id"].as_str().unwrap()
        ),
        &tenant.admin,
        json!({}),
    )
    .await
    .assert(200);
    app.login(&tenant.slug, "SYS-1", "97531").await.assert(200);
}

async fn validity_windows_bound_logins_and_tokens(app: TestApp) {
    let tenant = app.tenant("val", true).await;
    let (id, _) = app.person(&tenant, "TMP-1", &["auditor"], None).await;
    let soon = (Utc::now() + chrono::Duration::seconds(90)).to_rfc3339();
    app.patch(
        &format!("/v1/programming-keys/{id}"),
        &tenant.admin,
        json!({"valid_until": soon}),
    )
    .await
    .assert(200);
    let login = app.login(&tenant.slug, "TMP-1", "97531").await.assert(200);
    let expires_in = login["expires_in"].as_i64().unwrap();
    assert!(
        expires_in <= 90,
        "a token never outlives its key: {expires_in}"
    );
    let past = (Utc::now() - chrono::Duration::seconds(1)).to_rfc3339();
    app.patch(
        &format!("/v1/programming-keys/{id}"),
        &tenant.admin,
        json!({"valid_until": past}),
    )
    .await
    .assert(200);
    app.login(&tenant.slug, "TMP-1", "97531")
        .await
        .assert_status(401);
    let future = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    app.patch(
        &format!("/v1/programming-keys/{id}"),
        &tenant.admin,
        json!({"valid_from": future, "valid_until": null}),
    )
    .await
    .assert(200);
    app.login(&tenant.slug, "TMP-1", "97531")
        .await
        .assert_status_because(401, "not yet valid");
    let inverted = app
        .patch(
            &format!("/v1/programming-keys/{id}"),
            &tenant.admin,
            json!({"valid_until": Utc::now().to_rfc3339()}),
        )
        .await;
    inverted.assert_status(422);
}

on_both_databases!(
    one_time_pins_permit_only_setting_a_pin,
    refresh_tokens_rotate_and_reuse_revokes_the_family,
    revoke_ends_the_token_and_its_family,
    failed_logins_look_alike_and_are_throttled,
    forged_and_stale_tokens_are_refused,
    blocking_returning_and_role_changes_end_tokens_at_once,
    validity_windows_bound_logins_and_tokens,
);

async fn api_keys_and_agents_get_tokens_of_their_own_kind(app: TestApp) {
    let tenant = app.tenant("creds", true).await;
    let created = app
        .post(
            "/v1/api-keys",
            &tenant.admin,
            json!({"name": "ERP", "roles": ["system_administrator"]}),
        )
        .await
        .assert(201);
    let key = created["key"].as_str().unwrap();
    let login = app
        .token(json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": key}))
        .await
        .assert(200);
    assert!(
        login["refresh_token"].is_null(),
        "integrations get no refresh token"
    );
    let roles = login["roles"].as_array().unwrap();
    assert!(roles.contains(&json!("webservice")) && roles.contains(&json!("system_administrator")));
    let token = login["access_token"].as_str().unwrap().to_owned();
    let me = app.get("/v1/me", &token).await.assert(200);
    assert_eq!(
        (me["kind"].as_str(), me["name"].as_str()),
        (Some("webservice"), Some("ERP"))
    );
    app.get("/v1/keys", &token).await.assert(200);
    app.get("/v1/api-keys", &token)
        .await
        .assert_status_because(403, "no super administrator rights");
    let approver = app
        .post(
            "/v1/api-keys",
            &tenant.admin,
            json!({"name": "Bad", "roles": ["approver"]}),
        )
        .await;
    assert_eq!(
        (approver.status.as_u16(), approver.code()),
        (422, "invalid_role")
    );
    app.call(
        reqwest::Method::DELETE,
        &format!(
            "/v1/api-keys/{}",
            created["api_key"]["id"].as_str().unwrap()
        ),
        Some(&tenant.admin),
        None,
    )
    .await
    .assert(204);
    app.get("/v1/keys", &token)
        .await
        .assert_status_because(401, "a deleted API key's tokens end");
    app.token(json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": key}))
        .await
        .assert_status(401);

    let agent = app
        .post("/v1/agents", &tenant.admin, json!({"name": "Site PC"}))
        .await
        .assert(201);
    let agent_id = agent["agent"]["id"].as_str().unwrap();
    let secret = agent["secret"].as_str().unwrap();
    let grant =
        |secret: &str| json!({"grant_type": "agent", "agent_id": agent_id, "secret": secret});
    let login = app.token(grant(secret)).await.assert(200);
    let agent_token = login["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/me", &agent_token).await.assert(200)["kind"],
        "agent"
    );
    app.get("/v1/employees", &agent_token)
        .await
        .assert_status_because(403, "agents see no master data");
    let rotated = app
        .post(
            &format!("/v1/agents/{agent_id}/rotate-secret"),
            &tenant.admin,
            json!({}),
        )
        .await
        .assert(200);
    app.get("/v1/me", &agent_token)
        .await
        .assert_status_because(401, "rotation ends the agent's tokens");
    app.token(grant(secret))
        .await
        .assert_status_because(401, "the old secret is spent");
    app.token(grant(rotated["secret"].as_str().unwrap()))
        .await
        .assert(200);
}

on_both_databases!(api_keys_and_agents_get_tokens_of_their_own_kind);
