//! Login throttling locks out attackers, not users: a PIN counts per key and
//! client address, and per key over all addresses with a daily ceiling; a
//! high-entropy secret counts per client address only.

use countersign_domain::auth::{
    LOGIN_FAILURES_ALLOWED, LOGIN_THROTTLE_WINDOW_SECS, PIN_FAILURES_PER_DAY,
    SECRET_FAILURES_ALLOWED,
};
use countersign_tests::{
    Backend, Reply, Tenant, TestApp, client_at, on_both_databases, random_loopback,
};
use serde_json::{Value, json};

/// The PIN the harness gives a tenant's first administrator, and a wrong one.
const RIGHT: &str = "246810";
const WRONG: &str = "000000";

fn pin(tenant: &Tenant, pin: &str) -> Value {
    json!({"grant_type": "programming_key", "tenant": tenant.slug, "programming_key": "ADMIN-1", "pin": pin})
}

/// Asserts a 429 and answers its `Retry-After` in seconds.
fn throttled(reply: &Reply, why: &str) -> u64 {
    assert_eq!(
        (reply.status.as_u16(), reply.code()),
        (429, "login_throttled"),
        "{why}: {:#}",
        reply.body
    );
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0, "Retry-After {retry}");
    retry
}

async fn pin_guesses_lock_out_their_address_not_the_holder(app: TestApp) {
    let tenant = app.tenant("thr", true).await;
    let guesser = client_at(random_loopback());
    for _ in 0..LOGIN_FAILURES_ALLOWED {
        app.token_via(&guesser, pin(&tenant, WRONG), &[])
            .await
            .assert_status(401);
    }
    let sixth = app.token_via(&guesser, pin(&tenant, RIGHT), &[]).await;
    let retry = throttled(&sixth, "the sixth attempt from the guessing address");
    assert!(retry <= LOGIN_THROTTLE_WINDOW_SECS, "Retry-After {retry}");
    let holder = client_at(random_loopback());
    app.token_via(&holder, pin(&tenant, RIGHT), &[])
        .await
        .assert_status_because(200, "the holder logs in from elsewhere");
}

async fn concurrent_wrong_pins_are_checked_at_most_the_limit(app: TestApp) {
    let tenant = app.tenant("thr", true).await;
    let guesser = client_at(random_loopback());
    // Open the connections first, so that the guesses arrive together.
    let warm = (0..4 * LOGIN_FAILURES_ALLOWED).map(|_| {
        let healthz = reqwest::Method::GET;
        app.call_via(&guesser, healthz, "/healthz", None, None, &[])
    });
    futures::future::join_all(warm).await;
    let guesses =
        (0..4 * LOGIN_FAILURES_ALLOWED).map(|_| app.token_via(&guesser, pin(&tenant, WRONG), &[]));
    let statuses: Vec<u16> = futures::future::join_all(guesses)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(
        (checked, refused),
        (
            LOGIN_FAILURES_ALLOWED as usize,
            3 * LOGIN_FAILURES_ALLOWED as usize
        ),
        "{statuses:?}"
    );
}

async fn the_daily_ceiling_holds_across_addresses(app: TestApp) {
    let tenant = app.tenant("thr", true).await;
    for _ in 0..PIN_FAILURES_PER_DAY / LOGIN_FAILURES_ALLOWED {
        let guesser = client_at(random_loopback());
        for _ in 0..LOGIN_FAILURES_ALLOWED {
            app.token_via(&guesser, pin(&tenant, WRONG), &[])
                .await
                .assert_status(401);
        }
    }
    let fresh = client_at(random_loopback());
    let reply = app.token_via(&fresh, pin(&tenant, RIGHT), &[]).await;
    let retry = throttled(&reply, "the ceiling over all addresses");
    assert!(
        retry > LOGIN_THROTTLE_WINDOW_SECS,
        "the daily window: Retry-After {retry}"
    );
}

async fn wrong_secrets_never_lock_out_the_right_one(app: TestApp) {
    let tenant = app.tenant("thr", true).await;
    let site = app.site(&tenant).await;
    let created = app
        .post(
            "/v1/api-keys",
            &tenant.admin,
            json!({"name": "ERP", "roles": ["auditor"]}),
        )
        .await
        .assert(201);
    let api_key =
        |key: &Value| json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": key});
    let agent =
        |secret: &str| json!({"grant_type": "agent", "agent_id": site.agent_id, "secret": secret});
    let guesser = client_at(random_loopback());
    for grant in [api_key(&json!("csk_wrong")), agent("wrong")] {
        for _ in 0..SECRET_FAILURES_ALLOWED {
            app.token_via(&guesser, grant.clone(), &[])
                .await
                .assert_status(401);
        }
        throttled(
            &app.token_via(&guesser, grant, &[]).await,
            "the guessing address is throttled",
        );
    }
    let right = api_key(&created["key"]);
    throttled(
        &app.token_via(&guesser, right.clone(), &[]).await,
        "the guessing address, whatever it presents",
    );
    let elsewhere = client_at(random_loopback());
    app.token_via(&elsewhere, right, &[])
        .await
        .assert_status_because(200, "the API key itself is not locked out");
    let rotated = app
        .post(
            &format!("/v1/agents/{}/rotate-secret", site.agent_id),
            &tenant.admin,
            json!({}),
        )
        .await
        .assert(200);
    app.token_via(&elsewhere, agent(rotated["secret"].as_str().unwrap()), &[])
        .await
        .assert_status_because(200, "the agent is not locked out");
}

async fn an_untrusted_peers_forwarded_address_is_ignored(app: TestApp) {
    let tenant = app.tenant("thr", true).await;
    let peer = client_at(random_loopback());
    for i in 0..LOGIN_FAILURES_ALLOWED {
        let forged = format!("203.0.113.{i}");
        let headers = [("x-forwarded-for", forged.as_str())];
        app.token_via(&peer, pin(&tenant, WRONG), &headers)
            .await
            .assert_status(401);
    }
    let headers = [
        ("x-forwarded-for", "198.51.100.77"),
        ("forwarded", "for=198.51.100.78"),
    ];
    let reply = app.token_via(&peer, pin(&tenant, RIGHT), &headers).await;
    throttled(&reply, "counted by the peer, whatever it claims");
}

on_both_databases!(
    pin_guesses_lock_out_their_address_not_the_holder,
    concurrent_wrong_pins_are_checked_at_most_the_limit,
    the_daily_ceiling_holds_across_addresses,
    wrong_secrets_never_lock_out_the_right_one,
    an_untrusted_peers_forwarded_address_is_ignored,
);

/// Behind a trusted proxy (the whole loopback network here), the client is
/// the nearest forwarded address that is not a proxy.
async fn forwarded_addresses_count_behind_trusted_proxies(backend: Backend) {
    let (app, _) = TestApp::spawn_with(backend, |config| {
        config.trusted_proxies = "127.0.0.0/8".into();
    })
    .await;
    let tenant = app.tenant("thr", true).await;
    let proxy = client_at(random_loopback());
    let via = |headers: &'static [(&'static str, &'static str)], pin_: &'static str| {
        app.token_via(&proxy, pin(&tenant, pin_), headers)
    };
    for _ in 0..LOGIN_FAILURES_ALLOWED {
        via(&[("x-forwarded-for", "203.0.113.5")], WRONG)
            .await
            .assert_status(401);
    }
    throttled(
        &via(&[("x-forwarded-for", "203.0.113.5")], RIGHT).await,
        "the forwarded client is throttled",
    );
    throttled(
        &via(&[("forwarded", r#"for="203.0.113.5:4711""#)], RIGHT).await,
        "Forwarded names the same client",
    );
    throttled(
        &via(&[("x-forwarded-for", "198.51.100.1, 203.0.113.5")], RIGHT).await,
        "what the client wrote left of the proxy's entry is not believed",
    );
    via(&[("x-forwarded-for", "203.0.113.6")], RIGHT)
        .await
        .assert_status_because(200, "another client behind the same proxy");
    via(&[], RIGHT)
        .await
        .assert_status_because(200, "the proxy's own address is another client");
}

mod forwarded_addresses_count_behind_trusted_proxies {
    use countersign_tests::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::forwarded_addresses_count_behind_trusted_proxies(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::forwarded_addresses_count_behind_trusted_proxies(Backend::Postgres).await;
    }
}
