//! Attacks on access tokens: every forged, tampered, stale or ended token is
//! refused with 401 `unauthorized` as problem+json, on several endpoints.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use countersign_tests::{JWT_SECRET, TestApp, on_both_databases};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// Authenticated endpoints of different kinds, each tried with every attack.
const ENDPOINTS: [(&str, &str); 5] = [
    ("GET", "/v1/me"),
    ("GET", "/v1/employees"),
    ("GET", "/v1/history/verify"),
    ("GET", "/v1/agent/work?wait=0"),
    ("POST", "/v1/auth/revoke"),
];

/// Counts what was tried.
#[derive(Default)]
struct Tally {
    attacks: usize,
    calls: usize,
}

impl Tally {
    /// Presents `authorization` (a whole header value, or none) to every endpoint
    /// and expects 401 `unauthorized` as problem+json.
    async fn refused(&mut self, app: &TestApp, attack: &str, authorization: Option<&str>) {
        let client = reqwest::Client::new();
        for (method, path) in ENDPOINTS {
            let mut request = client.request(
                method.parse::<Method>().unwrap(),
                format!("{}{path}", app.base),
            );
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(
                (status, body["code"].as_str()),
                (401, Some("unauthorized")),
                "{attack}: {method} {path} must be refused: {body:#}"
            );
            assert!(
                content_type.starts_with("application/problem+json"),
                "{attack}: {method} {path} answers {content_type}"
            );
            self.calls += 1;
        }
        self.attacks += 1;
    }

    async fn refused_token(&mut self, app: &TestApp, attack: &str, token: &str) {
        self.refused(app, attack, Some(&format!("Bearer {token}")))
            .await;
    }
}

fn part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// Signs `claims` with an HMAC `secret`, under `alg` and `kid`.
fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, secret: &[u8]) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret).unwrap()).unwrap()
}

fn with(claims: &Value, changes: Value) -> Value {
    let mut claims = claims.clone();
    for (name, value) in changes.as_object().unwrap() {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(name);
        } else {
            claims[name] = value.clone();
        }
    }
    claims
}

async fn accepted(app: &TestApp, token: &str, why: &str) {
    app.get("/v1/me", token)
        .await
        .assert_status_because(200, why);
}

async fn forged_and_malformed_tokens_are_refused(app: TestApp) {
    let tenant = app.tenant("forge", true).await;
    let genuine = tenant.admin.clone();
    let header = part(&genuine, 0);
    let claims = part(&genuine, 1);
    let kid = header["kid"].as_str().unwrap().to_owned();
    assert_eq!(header["alg"], "HS256", "the test server signs with HS256");
    let secret = JWT_SECRET.as_bytes();
    let now = chrono::Utc::now().timestamp();

    // Controls: the genuine token and a faithful re-signing of it are accepted,
    // so every refusal below is due to what the attack changed.
    accepted(&app, &genuine, "the genuine token").await;
    accepted(
        &app,
        &sign(Algorithm::HS256, Some(&kid), &claims, secret),
        "the same claims signed with the server's secret",
    )
    .await;

    let mut tally = Tally::default();
    tally.refused(&app, "no token", None).await;
    tally
        .refused(&app, "an empty bearer", Some("Bearer "))
        .await;
    tally
        .refused(&app, "another scheme", Some("Basic YWRtaW46YWRtaW4="))
        .await;
    tally
        .refused(
            &app,
            "a valid token under another scheme",
            Some(&format!("Token {genuine}")),
        )
        .await;
    tally.refused_token(&app, "garbage", "not-a-jwt").await;
    let segments: Vec<&str> = genuine.split('.').collect();
    tally
        .refused_token(&app, "two segments", &segments[..2].join("."))
        .await;
    tally
        .refused_token(&app, "four segments", &format!("{genuine}.{}", segments[2]))
        .await;
    tally.refused_token(&app, "bad base64", "@@@.###.$$$").await;
    tally
        .refused_token(
            &app,
            "a header that is not JSON",
            &format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode("hello"),
                segments[1],
                segments[2]
            ),
        )
        .await;
    tally
        .refused_token(
            &app,
            "the signature stripped",
            &format!("{}.{}.", segments[0], segments[1]),
        )
        .await;
    for alg in ["none", "None", "NONE"] {
        let unsigned = format!(
            "{}.{}.",
            encode_part(&json!({"alg": alg, "typ": "JWT", "kid": kid})),
            encode_part(&claims)
        );
        tally
            .refused_token(&app, &format!("alg {alg}"), &unsigned)
            .await;
    }
    // Someone else's Ed25519 key under the server's key id: the server accepts
    // only the algorithm it is configured with.
    let foreign_pem = countersign_infra::signing::HistorySigner::generate()
        .to_pem()
        .unwrap();
    let mut eddsa = Header::new(Algorithm::EdDSA);
    eddsa.kid = Some(kid.clone());
    let confused = jsonwebtoken::encode(
        &eddsa,
        &claims,
        &EncodingKey::from_ed_pem(foreign_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    tally
        .refused_token(&app, "EdDSA with a key of the attacker's", &confused)
        .await;
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        tally
            .refused_token(
                &app,
                &format!("{alg:?} with the right secret"),
                &sign(alg, Some(&kid), &claims, secret),
            )
            .await;
    }
    tally
        .refused_token(
            &app,
            "an unknown kid",
            &sign(Algorithm::HS256, Some("00000000deadbeef"), &claims, secret),
        )
        .await;
    tally
        .refused_token(
            &app,
            "no kid",
            &sign(Algorithm::HS256, None, &claims, secret),
        )
        .await;
    tally
        .refused_token(
            &app,
            "the wrong secret",
            &sign(
                Algorithm::HS256,
                Some(&kid),
                &claims,
                b"another-secret-another-secret-0123456789",
            ),
        )
        .await;
    let elevated = with(
        &claims,
        json!({"roles": ["super_administrator", "approver"]}),
    );
    tally
        .refused_token(
            &app,
            "claims changed under the old signature",
            &format!("{}.{}.{}", segments[0], encode_part(&elevated), segments[2]),
        )
        .await;
    let stale = [
        ("another issuer", json!({"iss": "someone-else"})),
        ("another audience", json!({"aud": "another-api"})),
        ("no issuer", json!({"iss": null})),
        ("no audience", json!({"aud": null})),
        (
            "expired",
            json!({"iat": now - 1200, "nbf": now - 1200, "exp": now - 60}),
        ),
        (
            "not yet valid",
            json!({"nbf": now + 600, "exp": now + 1200}),
        ),
        ("no expiry", json!({"exp": null})),
        ("no not-before", json!({"nbf": null})),
        ("no subject", json!({"sub": null})),
        ("a tenant token without tenant", json!({"tid": null})),
        (
            "a token of an earlier credential generation",
            json!({"gen": -1}),
        ),
    ];
    for (attack, changes) in stale {
        tally
            .refused_token(
                &app,
                attack,
                &sign(
                    Algorithm::HS256,
                    Some(&kid),
                    &with(&claims, changes),
                    secret,
                ),
            )
            .await;
    }

    accepted(&app, &genuine, "the genuine token still").await;
    println!(
        "token attacks (forged and malformed): {} attacks × {} endpoints = {} refused calls",
        tally.attacks,
        ENDPOINTS.len(),
        tally.calls
    );
}

/// A webservice credential with the auditor role, made by `admin`, and a
/// token it logged in with.
async fn auditor_api_key(app: &TestApp, tenant: &str, admin: &str, name: &str) -> (Value, String) {
    let created = app
        .post(
            "/v1/api-keys",
            admin,
            json!({"name": name, "roles": ["auditor"]}),
        )
        .await
        .assert(201);
    let token = app
        .token(json!({"grant_type": "api_key", "tenant": tenant, "api_key": created["key"]}))
        .await
        .assert(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    (created, token)
}

async fn ended_tokens_are_refused(app: TestApp) {
    let tenant = app.tenant("ended", true).await;
    let mut tally = Tally::default();

    // Revoked by its holder, with its refresh family.
    let login = app
        .login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
    let token = login["access_token"].as_str().unwrap().to_owned();
    accepted(&app, &token, "a fresh login").await;
    app.call(Method::POST, "/v1/auth/revoke", Some(&token), None)
        .await
        .assert_status_because(204, "revoking a token");
    tally.refused_token(&app, "revoked", &token).await;
    app.token(json!({"grant_type": "refresh_token", "refresh_token": login["refresh_token"]}))
        .await
        .assert_status_because(401, "the refresh family of a revoked token ends with it");

    // A programming key returned, blocked, outside its validity window, or
    // re-configured: its tokens end at once.
    let mut keys = Vec::new();
    for marking in ["RET-1", "BLK-1", "WIN-1", "ROL-1", "PIN-1"] {
        let (id, token) = app
            .person(&tenant, marking, &["system_administrator"], None)
            .await;
        accepted(&app, &token, marking).await;
        keys.push((id, token));
    }
    let admin = &tenant.admin;
    let changes: [(&str, &str, Value); 5] = [
        ("a programming key since returned", "return", json!({})),
        ("a programming key since blocked", "block", json!({})),
        (
            "a programming key past its validity window",
            "",
            json!({"valid_until": chrono::Utc::now() - chrono::Duration::minutes(1),
                   "valid_from": chrono::Utc::now() - chrono::Duration::days(1)}),
        ),
        (
            "a programming key whose roles changed",
            "",
            json!({"roles": ["auditor"]}),
        ),
        (
            "a programming key whose PIN was re-set",
            "pin",
            json!({"pin": "5555"}),
        ),
    ];
    for ((id, token), (attack, action, body)) in keys.iter().zip(changes) {
        let reply = if action.is_empty() {
            app.patch(&format!("/v1/programming-keys/{id}"), admin, body)
                .await
        } else {
            app.post(&format!("/v1/programming-keys/{id}/{action}"), admin, body)
                .await
        };
        assert!(reply.status.is_success(), "{attack}: {:#}", reply.body);
        tally.refused_token(&app, attack, token).await;
    }

    // A key whose validity ends while its token would still run: the token
    // never outlives it.
    let until = chrono::Utc::now() + chrono::Duration::seconds(3);
    let (id, _) = app.person(&tenant, "END-1", &["auditor"], None).await;
    app.patch(
        &format!("/v1/programming-keys/{id}"),
        admin,
        json!({"valid_until": until}),
    )
    .await
    .assert(200);
    let short = app.login(&tenant.slug, "END-1", "97531").await.assert(200);
    assert!(
        short["expires_in"].as_i64().unwrap() <= 3,
        "the token ends with the key's validity: {short:#}"
    );
    let short = short["access_token"].as_str().unwrap().to_owned();
    accepted(&app, &short, "inside the validity window").await;

    // An agent whose secret was rotated.
    let agent = app
        .post("/v1/agents", admin, json!({"name": "Site PC"}))
        .await
        .assert(201);
    let agent_id = agent["agent"]["id"].as_str().unwrap();
    let agent_token = app
        .token(json!({"grant_type": "agent", "agent_id": agent_id, "secret": agent["secret"]}))
        .await
        .assert(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get("/v1/agent/work?wait=0", &agent_token)
        .await
        .assert_status_because(200, "the agent's fresh token");
    let rotated = app
        .post(
            &format!("/v1/agents/{agent_id}/rotate-secret"),
            admin,
            json!({}),
        )
        .await
        .assert(200);
    tally
        .refused_token(&app, "an agent whose secret was rotated", &agent_token)
        .await;
    app.token(json!({"grant_type": "agent", "agent_id": agent_id, "secret": agent["secret"]}))
        .await
        .assert_status_because(401, "the old secret logs in no more");
    let agent_token = app
        .token(json!({"grant_type": "agent", "agent_id": agent_id, "secret": rotated["secret"]}))
        .await
        .assert(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // A webservice credential deleted.
    let (created, webservice) = auditor_api_key(&app, &tenant.slug, admin, "Integration").await;
    let api_key = created["api_key"]["id"].as_str().unwrap();
    app.call(
        Method::DELETE,
        &format!("/v1/api-keys/{api_key}"),
        Some(admin),
        None,
    )
    .await
    .assert_status_because(204, "deleting a webservice credential");
    tally
        .refused_token(&app, "a deleted webservice credential", &webservice)
        .await;

    // A refresh token used twice: refused, and its whole family ends.
    let login = app
        .login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
    let first_access = login["access_token"].as_str().unwrap().to_owned();
    let spent = login["refresh_token"].clone();
    let rotated = app
        .token(json!({"grant_type": "refresh_token", "refresh_token": spent}))
        .await
        .assert(200);
    let second_access = rotated["access_token"].as_str().unwrap().to_owned();
    accepted(&app, &second_access, "the rotated token").await;
    let reuse = app
        .token(json!({"grant_type": "refresh_token", "refresh_token": spent}))
        .await;
    assert_eq!(
        (reuse.status.as_u16(), reuse.code()),
        (401, "invalid_credentials"),
        "a spent refresh token is refused"
    );
    tally
        .refused_token(&app, "the family of a reused refresh token", &second_access)
        .await;
    tally
        .refused_token(&app, "the first token of that family", &first_access)
        .await;
    app.token(json!({"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}))
        .await
        .assert_status_because(401, "the family's latest refresh token is revoked too");

    // The validity window of END-1 has passed by now, past the verifier's leeway.
    let waited = until + chrono::Duration::seconds(6) - chrono::Utc::now();
    if let Ok(wait) = waited.to_std() {
        tokio::time::sleep(wait).await;
    }
    tally
        .refused_token(&app, "a token whose key's validity has ended", &short)
        .await;

    // A suspended tenant: every kind of token ends, and nobody logs in.
    let person = app
        .login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert(200);
    let person = person["access_token"].as_str().unwrap().to_owned();
    let (_, webservice) = auditor_api_key(&app, &tenant.slug, &person, "Integration 2").await;
    let operator = app.operator().await;
    app.patch(
        &format!("/v1/tenants/{}", tenant.id),
        &operator,
        json!({"status": "suspended"}),
    )
    .await
    .assert(200);
    for (attack, token) in [
        ("a person of a suspended tenant", &person),
        ("an agent of a suspended tenant", &agent_token),
        ("a webservice credential of a suspended tenant", &webservice),
    ] {
        tally.refused_token(&app, attack, token).await;
    }
    app.login(&tenant.slug, "ADMIN-1", "246810")
        .await
        .assert_status_because(401, "nobody of a suspended tenant logs in");

    println!(
        "token attacks (ended tokens): {} attacks × {} endpoints = {} refused calls",
        tally.attacks,
        ENDPOINTS.len(),
        tally.calls
    );
}

/// The same server configured with an Ed25519 key: a token signed with HS256,
/// using the public key as the HMAC secret, must not pass.
async fn algorithm_confusion_on_an_eddsa_server(app: TestApp) {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};

    let seed: [u8; 32] = [*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()]
        .concat()
        .try_into()
        .unwrap();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwt-key.pem");
    std::fs::write(&path, private.as_bytes()).unwrap();
    let (app, _) = TestApp::spawn_with(app.backend, |config| {
        config.jwt_secret = None;
        config.jwt_private_key_file = Some(path);
    })
    .await;
    let tenant = app.tenant("eddsa", true).await;
    let genuine = tenant.admin.clone();
    let header = part(&genuine, 0);
    let claims = part(&genuine, 1);
    assert_eq!(
        header["alg"], "EdDSA",
        "the server signs with its Ed25519 key"
    );
    let kid = header["kid"].as_str().unwrap().to_owned();
    accepted(&app, &genuine, "the genuine token").await;
    let mut eddsa = Header::new(Algorithm::EdDSA);
    eddsa.kid = Some(kid.clone());
    let resigned = jsonwebtoken::encode(
        &eddsa,
        &claims,
        &EncodingKey::from_ed_pem(private.as_bytes()).unwrap(),
    )
    .unwrap();
    accepted(
        &app,
        &resigned,
        "the same claims signed with the server's key",
    )
    .await;

    let public = key.verifying_key();
    let mut tally = Tally::default();
    for (attack, secret) in [
        (
            "HS256 keyed with the public key (PEM)",
            public
                .to_public_key_pem(LineEnding::LF)
                .unwrap()
                .into_bytes(),
        ),
        (
            "HS256 keyed with the public key (PEM, CRLF)",
            public
                .to_public_key_pem(LineEnding::CRLF)
                .unwrap()
                .into_bytes(),
        ),
        (
            "HS256 keyed with the public key (DER)",
            public.to_public_key_der().unwrap().into_vec(),
        ),
        (
            "HS256 keyed with the raw public key",
            public.as_bytes().to_vec(),
        ),
    ] {
        for kid in [Some(kid.as_str()), None] {
            tally
                .refused_token(&app, attack, &sign(Algorithm::HS256, kid, &claims, &secret))
                .await;
        }
    }
    tally
        .refused_token(
            &app,
            "HS256 keyed with the test servers' shared secret",
            &sign(Algorithm::HS256, Some(&kid), &claims, JWT_SECRET.as_bytes()),
        )
        .await;
    let unsigned = format!(
        "{}.{}.",
        encode_part(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        encode_part(&claims)
    );
    tally.refused_token(&app, "alg none", &unsigned).await;
    accepted(&app, &genuine, "the genuine token still").await;
    println!(
        "token attacks (EdDSA server): {} attacks × {} endpoints = {} refused calls",
        tally.attacks,
        ENDPOINTS.len(),
        tally.calls
    );
}

on_both_databases!(
    forged_and_malformed_tokens_are_refused,
    ended_tokens_are_refused,
    algorithm_confusion_on_an_eddsa_server
);
