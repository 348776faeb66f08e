//! Every state change appends a history entry naming its actor (SPEC §5),
//! swept over every mutating operation of the OpenAPI document the server
//! serves: each is called successfully by a real principal, and the tenant's
//! history must have gained the operation's entries in that principal's name,
//! and none in anyone else's. The few operations that change no tenant's
//! state are declared with the reason, and must leave the history as it was.
//!
//! [`lines`] says how each operation is called; an operation of the document
//! without a line, or a line without its operation, fails the sweep.

use std::collections::{BTreeMap, BTreeSet};

use countersign_tests::{TestApp, on_both_databases, unique_slug};
use reqwest::Method;
use serde_json::{Value, json};

use crate::isolation::{Inventory, inventory};
use crate::roles::Document;

/// What a call leaves in the history.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// At least one new entry of each action, in the name of the caller `by`
    /// (a name of [`World::callers`]); every new entry is in that name.
    Entries {
        by: &'static str,
        actions: &'static [&'static str],
    },
    /// No entry at all: the operation changes no tenant's state, for this reason.
    Nothing(&'static str),
}

/// Whose history a line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// A tenant of the world, by name ([`World::readers`]).
    Tenant(&'static str),
    /// The tenant the call provisioned, as far as provisioning wrote it.
    NewTenant,
}

/// How to call one operation successfully, and what it must record.
struct Line {
    /// `METHOD path` as the document names it.
    operation: &'static str,
    /// A name of [`World::callers`]; `anyone` calls without a token.
    caller: &'static str,
    /// The object the path's `{id}` names: a name of [`World::values`].
    object: Option<&'static str>,
    /// The body; a string `@name` stands for the world's value of that name,
    /// `@lease` for the lease of the job the path names.
    body: Option<Value>,
    look: Look,
    expect: Expect,
}

fn call(operation: &'static str, caller: &'static str) -> Line {
    Line {
        operation,
        caller,
        object: None,
        body: None,
        look: Look::Tenant("sweep"),
        expect: Expect::Nothing("no expectation declared"),
    }
}

impl Line {
    fn on(self, object: &'static str) -> Line {
        Line {
            object: Some(object),
            ..self
        }
    }

    fn body(self, body: Value) -> Line {
        Line {
            body: Some(body),
            ..self
        }
    }

    fn looking_at(self, look: Look) -> Line {
        Line { look, ..self }
    }

    /// Entries of `actions` in the caller's own name.
    fn records(self, actions: &'static [&'static str]) -> Line {
        let by = self.caller;
        self.records_as(by, actions)
    }

    fn records_as(self, by: &'static str, actions: &'static [&'static str]) -> Line {
        Line {
            expect: Expect::Entries { by, actions },
            ..self
        }
    }

    fn records_nothing(self, why: &'static str) -> Line {
        Line {
            expect: Expect::Nothing(why),
            ..self
        }
    }

    fn method_and_template(&self) -> (Method, &'static str) {
        let (method, template) = self.operation.split_once(' ').unwrap();
        (method.parse().unwrap(), template)
    }
}

/// The sweep, in calling order: the agent's leased jobs first, while their
/// leases last; ending the callers' own sessions and PINs last.
fn lines() -> Vec<Line> {
    let lease = || json!({"lease_token": "@lease"});
    vec![
        // The device agent, on the jobs of the inventory.
        call("POST /v1/agent/jobs/{id}/claim", "agent")
            .on("job_to_claim")
            .body(json!({"device_id": "@remote_device_desk"}))
            .records(&["job.claimed"]),
        call("POST /v1/agent/jobs/{id}/heartbeat", "agent")
            .on("job_heartbeat")
            .body(lease())
            .records_nothing("renewing a lease is bookkeeping, not a change of the job's state"),
        call("POST /v1/agent/jobs/{id}/loaded", "agent")
            .on("job_loaded")
            .body(lease())
            .records(&["job.status_changed"]),
        call("POST /v1/agent/jobs/{id}/events", "agent")
            .on("job_events")
            .body(json!({"lease_token": "@lease", "events": [
                {"seq": 1, "occurred_at": "@yesterday", "kind": "access_granted", "key_marking": "DK-3"}
            ]}))
            .records(&["event_data.received"]),
        call("POST /v1/agent/jobs/{id}/complete", "agent")
            .on("job_complete")
            .body(lease())
            .records(&["job.status_changed"]),
        call("POST /v1/agent/jobs/{id}/fail", "agent")
            .on("job_fail")
            .body(json!({"lease_token": "@lease", "reason": "serial line lost", "retryable": false}))
            .records(&["job.status_changed"]),
        call("POST /v1/agent/jobs/{id}/release", "agent")
            .on("job_release")
            .body(lease())
            .records(&["job.status_changed"]),
        call("POST /v1/agent/key-insertions", "agent")
            .body(json!({"device_id": "@remote_device", "key_marking": "SW-K"}))
            .records(&["job.claimed"]),
        call("POST /v1/agent/key-insertions", "agent")
            .body(json!({"device_id": "@remote_device", "key_marking": "SW-IDLE"}))
            .records_nothing("nothing waits for the key: the answer is `none` and nothing changes"),
        // The operator.
        call("POST /v1/tenants", "operator")
            .body(json!({
                "slug": "@new_slug", "name": "Swept Tenant", "base_timezone": "Europe/Berlin",
                "locale": "en", "approval_required": true,
                "initial_admin": {"employee_name": "Nora New", "email": "nora@swept.example", "programming_key_marking": "ADMIN-1"}
            }))
            .looking_at(Look::NewTenant)
            .records(&["tenant.provisioned", "employee.created", "programming_key.created"]),
        call("PATCH /v1/tenants/{id}", "operator")
            .on("tenant")
            .body(json!({"name": "Renamed by the sweep"}))
            .records(&["tenant.updated"]),
        // Logging in, by each kind of credential.
        call("POST /v1/auth/token", "anyone")
            .body(json!({"grant_type": "programming_key", "tenant": "@slug", "programming_key": "AUD-1", "pin": "97531"}))
            .records_as("auditor", &["auth.login"]),
        call("POST /v1/auth/token", "anyone")
            .body(json!({"grant_type": "api_key", "tenant": "@slug", "api_key": "@sweep_api_key"}))
            .records_as("sweep_webservice", &["auth.login"]),
        call("POST /v1/auth/token", "anyone")
            .body(json!({"grant_type": "agent", "agent_id": "@sweep_agent", "secret": "@sweep_agent_secret"}))
            .records_as("sweep_agent", &["auth.login"]),
        call("POST /v1/auth/token", "anyone")
            .body(json!({"grant_type": "refresh_token", "refresh_token": "@refresh_token"}))
            .records_as("auditor", &["auth.login"]),
        call("POST /v1/auth/token", "anyone")
            .body(json!({"grant_type": "operator", "operator_key": countersign_tests::OPERATOR_KEY}))
            .records_nothing("the operator belongs to no tenant: no tenant's history is its"),
        // Directory and inventory.
        call("POST /v1/employees", "webservice")
            .body(json!({"name": "Erin Sweep", "email": "erin.sweep@example.org"}))
            .records(&["employee.created"]),
        call("PATCH /v1/employees/{id}", "person")
            .on("employee")
            .body(json!({"name": "Erin Renamed"}))
            .records(&["employee.updated"]),
        call("POST /v1/key-groups", "person")
            .body(json!({"marking": "SW-G", "name": "Sweep group"}))
            .records(&["key_group.created"]),
        call("PATCH /v1/key-groups/{id}", "webservice")
            .on("key_group")
            .body(json!({"name": "Renamed group"}))
            .records(&["key_group.renamed"]),
        call("POST /v1/keys", "webservice")
            .body(json!({"marking": "SW-NEW", "name": "Sweep key", "model": "e2"}))
            .records(&["key.created"]),
        call("PATCH /v1/keys/{id}", "person")
            .on("key")
            .body(json!({"name": "Renamed key", "key_group_id": "@key_group"}))
            .records(&["key.updated"]),
        call("POST /v1/keys/{id}/issue", "webservice")
            .on("key_in_stock")
            .body(json!({"employee_id": "@employee"}))
            .records(&["key.issued"]),
        call("POST /v1/keys/{id}/return", "webservice")
            .on("key_to_return")
            .records(&["key.returned"]),
        call("POST /v1/keys/{id}/auto-collection/stop", "direct_admin")
            .on("direct_key")
            .looking_at(Look::Tenant("direct"))
            .records(&["key.auto_collection_stopped"]),
        call("POST /v1/keys/{id}/desk-readout", "webservice")
            .on("key")
            .body(json!({"device_id": "@remote_device_desk"}))
            .records(&["job.created"]),
        call("POST /v1/cylinders", "webservice")
            .body(json!({"marking": "SW-CYL", "name": "Sweep door", "location": "Cellar"}))
            .records(&["cylinder.created"]),
        call("PATCH /v1/cylinders/{id}", "person")
            .on("cylinder")
            .body(json!({"name": "Renamed door"}))
            .records(&["cylinder.updated"]),
        call("POST /v1/remote-devices", "admin")
            .body(json!({"name": "Sweep unit", "kind": "remote_unit", "serial": "SW-RU"}))
            .records(&["remote_device.created"]),
        call("PATCH /v1/remote-devices/{id}", "webservice")
            .on("remote_device")
            .body(json!({"name": "Renamed unit"}))
            .records(&["remote_device.renamed"]),
        call("POST /v1/imports", "webservice")
            .body(json!({
                "key_groups": [{"marking": "IMP-G", "name": "Imported group"}],
                "keys": [{"marking": "IMP-K", "name": "Imported key", "model": "e3"}],
                "cylinders": [{"marking": "IMP-C", "name": "Imported door"}],
                "remote_devices": [{"name": "Imported unit", "kind": "desk_unit", "serial": "IMP-DU"}],
                "programming_keys": [{"marking": "IMP-PK", "name": "Imported programming key"}]
            }))
            .records(&[
                "key_group.created",
                "key.created",
                "cylinder.created",
                "remote_device.created",
                "programming_key.created",
                "import.completed",
            ]),
        // Credentials.
        call("POST /v1/programming-keys", "admin")
            .body(json!({"marking": "SW-PK", "name": "Sweep programming key", "roles": ["auditor"]}))
            .records(&["programming_key.created"]),
        call("PATCH /v1/programming-keys/{id}", "admin")
            .on("programming_key")
            .body(json!({"name": "Renamed programmer"}))
            .records(&["programming_key.updated"]),
        call("POST /v1/programming-keys/{id}/issue", "admin")
            .on("programming_key_in_stock")
            .body(json!({"employee_id": "@employee"}))
            .records(&["programming_key.issued"]),
        call("POST /v1/programming-keys/{id}/return", "admin")
            .on("programming_key_to_return")
            .records(&["programming_key.returned"]),
        call("POST /v1/programming-keys/{id}/pin", "admin")
            .on("programming_key_to_block")
            .body(json!({"pin": "8642"}))
            .records(&["programming_key.pin_set"]),
        call("POST /v1/programming-keys/{id}/pin", "admin")
            .on("approver_key")
            .body(json!({}))
            .records(&["programming_key.pin_set", "programming_key.approver_changed"]),
        call("POST /v1/programming-keys/{id}/block", "admin")
            .on("programming_key_to_block")
            .records(&["programming_key.blocked"]),
        call("POST /v1/programming-keys/{id}/unblock", "admin")
            .on("programming_key_blocked")
            .records(&["programming_key.unblocked"]),
        call("POST /v1/agents", "admin")
            .body(json!({"name": "Sweep agent"}))
            .records(&["agent.created"]),
        call("PUT /v1/agents/{id}/devices", "admin")
            .on("agent_spare")
            .body(json!({"device_ids": ["@remote_device_spare"]}))
            .records(&["agent.devices_assigned"]),
        call("POST /v1/agents/{id}/rotate-secret", "admin")
            .on("agent_spare")
            .records(&["agent.secret_rotated"]),
        call("POST /v1/api-keys", "admin")
            .body(json!({"name": "Sweep integration", "roles": ["auditor"]}))
            .records(&["api_key.created"]),
        call("DELETE /v1/api-keys/{id}", "admin")
            .on("api_key_to_delete")
            .records(&["api_key.deleted"]),
        // Requests and their jobs.
        call("POST /v1/event-log-requests", "webservice")
            .body(json!({"target": {"type": "key", "id": "@key_for_requests"}, "comment": "Swept"}))
            .records(&["request.created"]),
        call("POST /v1/event-log-requests/{id}/approve", "person")
            .on("request")
            .body(json!({"comment": "fine"}))
            .records(&["request.decided", "request.status_changed", "job.created"]),
        call("POST /v1/event-log-requests/{id}/reject", "person")
            .on("request_to_reject")
            .body(json!({"comment": "not now"}))
            .records(&["request.decided", "request.status_changed"]),
        call("POST /v1/event-log-requests/{id}/cancel", "webservice")
            .on("request_to_cancel")
            .body(json!({"reason": "not needed"}))
            .records(&["request.status_changed"]),
        call("POST /v1/event-log-requests/{id}/transfer", "admin")
            .on("request_to_transfer")
            .body(json!({"programming_key_id": "@programming_key"}))
            .records(&["job.status_changed"]),
        call("POST /v1/agent/programming-key-connections", "agent")
            .body(json!({"device_id": "@remote_device_desk", "programming_key_marking": "CP-1"}))
            .records(&["job.claimed"]),
        // The history itself.
        call("POST /v1/history/verify", "auditor")
            .body(json!({"checkpoints": []}))
            .records_nothing("verifying never writes anything"),
        // The callers' own sessions and PINs.
        call("POST /v1/auth/revoke", "auditor_session").records(&["auth.logout"]),
        call("POST /v1/auth/revoke", "operator_session")
            .records_nothing("the operator belongs to no tenant: no tenant's history is its"),
        call("POST /v1/me/pin", "holder")
            .body(json!({"current_pin": "97531", "new_pin": "86420"}))
            .records(&["programming_key.pin_set"]),
    ]
}

/// `METHOD path` of every operation of `document` that may change something.
fn mutating_operations(document: &Document) -> BTreeSet<String> {
    document
        .operations()
        .into_iter()
        .filter(|op| {
            [Method::POST, Method::PUT, Method::PATCH, Method::DELETE].contains(&op.method)
        })
        .map(|op| format!("{} {}", op.method, op.template))
        .collect()
}

/// What the document has that the sweep lacks, and the other way round.
fn coverage_gaps(document: &Document) -> Vec<String> {
    let documented = mutating_operations(document);
    let swept: BTreeSet<String> = lines().iter().map(|l| l.operation.to_owned()).collect();
    let mut gaps: Vec<String> = documented
        .difference(&swept)
        .map(|op| format!("{op} is in the document but has no line in history_sweep::lines"))
        .collect();
    gaps.extend(
        swept.difference(&documented).map(|op| {
            format!("{op} has a line in history_sweep::lines but is not in the document")
        }),
    );
    gaps
}

#[test]
fn the_sweep_has_a_line_for_every_mutating_operation_of_the_document() {
    let document = Document::committed();
    assert_eq!(
        coverage_gaps(&document),
        Vec::<String>::new(),
        "every mutating operation is swept"
    );
    assert!(mutating_operations(&document).len() > 40);
}

/// Who a caller is, as `GET /v1/me` names it.
#[derive(Debug, Clone)]
struct Identity {
    kind: String,
    id: String,
    name: String,
}

struct Caller {
    token: String,
    identity: Identity,
}

/// The tenant of the inventory with the sweep's own callers and objects.
struct World {
    /// Ids, markings and secrets, by name.
    values: BTreeMap<String, Value>,
    /// Lease tokens of running jobs, by job id.
    leases: BTreeMap<String, Value>,
    callers: BTreeMap<&'static str, Caller>,
    /// A super administrator's token per tenant, to read its history.
    readers: BTreeMap<&'static str, String>,
}

async fn identity(app: &TestApp, token: &str) -> Identity {
    let me = app.get("/v1/me", token).await.assert(200);
    Identity {
        kind: me["kind"].as_str().unwrap().to_owned(),
        id: me["id"].as_str().unwrap().to_owned(),
        name: me["name"].as_str().unwrap().to_owned(),
    }
}

fn token_of(reply: Value) -> String {
    reply["access_token"].as_str().unwrap().to_owned()
}

async fn world(app: &TestApp) -> World {
    let Inventory {
        tenant,
        objects,
        leases,
        person,
        agent,
        webservice,
    } = inventory(app, "sweep").await;
    let admin = tenant.admin.clone();
    let mut values: BTreeMap<String, Value> = objects
        .into_iter()
        .map(|(name, id)| (name.to_owned(), json!(id)))
        .collect();
    values.insert("slug".into(), json!(tenant.slug));
    values.insert("new_slug".into(), json!(unique_slug("swept")));
    values.insert(
        "yesterday".into(),
        json!(chrono::Utc::now() - chrono::Duration::days(1)),
    );
    let mut tokens: Vec<(&'static str, String)> = vec![
        ("admin", admin.clone()),
        ("person", person.token.clone()),
        ("agent", agent.token),
        ("webservice", webservice.token),
        ("operator", app.operator().await),
        ("operator_session", app.operator().await),
    ];

    let (_, auditor) = app
        .person(&tenant, "AUD-1", &["auditor"], Some("aud@sweep.example"))
        .await;
    tokens.push(("auditor", auditor));
    let session = app.login(&tenant.slug, "AUD-1", "97531").await.assert(200);
    values.insert("refresh_token".into(), session["refresh_token"].clone());
    tokens.push(("auditor_session", token_of(session)));
    let (_, holder) = app.person(&tenant, "HOLD-1", &["receptionist"], None).await;
    tokens.push(("holder", holder));
    let (approver_key, _) = app
        .person(&tenant, "APP-2", &["approver"], Some("app2@sweep.example"))
        .await;
    values.insert("approver_key".into(), json!(approver_key));

    let created = app
        .post("/v1/agents", &admin, json!({"name": "Sweep PC"}))
        .await
        .assert(201);
    values.insert("sweep_agent".into(), created["agent"]["id"].clone());
    values.insert("sweep_agent_secret".into(), created["secret"].clone());
    let login = json!({"grant_type": "agent", "agent_id": created["agent"]["id"], "secret": created["secret"]});
    tokens.push(("sweep_agent", token_of(app.token(login).await.assert(200))));
    let created = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "Sweep reader", "roles": ["auditor"]}),
        )
        .await
        .assert(201);
    values.insert("sweep_api_key".into(), created["key"].clone());
    let login = json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": created["key"]});
    tokens.push((
        "sweep_webservice",
        token_of(app.token(login).await.assert(200)),
    ));

    // A key whose approved request waits for it at a remote unit.
    let key = app.issued_key(&tenant, "SW-K", "e3").await;
    let request = app.request_key_readout(&admin, &key).await;
    app.approve(&request, &person.token).await;

    // Automatic collection exists only without the approver function.
    let direct = app.tenant("sweep-direct", false).await;
    values.insert(
        "direct_key".into(),
        json!(app.issued_key(&direct, "AC-1", "e3").await),
    );
    tokens.push(("direct_admin", direct.admin.clone()));

    let mut callers = BTreeMap::new();
    for (name, token) in tokens {
        let identity = identity(app, &token).await;
        callers.insert(name, Caller { token, identity });
    }
    // The inventory's leases were taken a while ago: renewed, they outlast
    // the agent's lines, which come first.
    for (job, lease) in &leases {
        app.post(
            &format!("/v1/agent/jobs/{job}/heartbeat"),
            &callers["agent"].token,
            json!({"lease_token": lease}),
        )
        .await
        .assert(200);
    }
    World {
        values,
        leases: leases.into_iter().collect(),
        callers,
        readers: BTreeMap::from([("sweep", admin), ("direct", direct.admin)]),
    }
}

impl World {
    fn value(&self, name: &str) -> &Value {
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("the sweep's world has no `{name}`"))
    }

    /// `template` with every `@name` replaced.
    fn fill(&self, template: &Value, object: Option<&str>) -> Value {
        match template {
            Value::String(text) if text == "@lease" => {
                let job = self.value(object.unwrap()).as_str().unwrap();
                self.leases
                    .get(job)
                    .unwrap_or_else(|| panic!("no lease for {job}"))
                    .clone()
            }
            Value::String(text) => match text.strip_prefix('@') {
                Some(name) => self.value(name).clone(),
                None => template.clone(),
            },
            Value::Array(items) => items.iter().map(|i| self.fill(i, object)).collect(),
            Value::Object(fields) => fields
                .iter()
                .map(|(k, v)| (k.clone(), self.fill(v, object)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            _ => template.clone(),
        }
    }
}

/// The whole history of the reader's tenant, in order.
async fn history(app: &TestApp, reader: &str) -> Vec<Value> {
    let mut entries = Vec::new();
    let mut path = "/v1/history?limit=500".to_owned();
    loop {
        let page = app.get(&path, reader).await.assert(200);
        entries.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/v1/history?limit=500&cursor={next}"),
            None => return entries,
        }
    }
}

fn names(entry: &Value, who: &Identity) -> bool {
    let actor = &entry["actor"];
    let key = if who.kind == "user" {
        json!(who.id)
    } else {
        Value::Null
    };
    actor["kind"] == who.kind
        && actor["id"] == who.id
        && actor["name"] == who.name
        && actor["programming_key_id"] == key
}

fn summary(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{} by {} {} ({})",
                e["action"].as_str().unwrap_or_default(),
                e["actor"]["kind"].as_str().unwrap_or_default(),
                e["actor"]["name"].as_str().unwrap_or_default(),
                e["actor"]["id"].as_str().unwrap_or("-"),
            )
        })
        .collect()
}

/// Calls one line; answers what is wrong with what it recorded.
async fn sweep_line(app: &TestApp, world: &World, line: &Line) -> Option<String> {
    let (method, template) = line.method_and_template();
    let path = match line.object {
        Some(object) => template.replace("{id}", world.value(object).as_str().unwrap()),
        None => template.to_owned(),
    };
    let body = line.body.as_ref().map(|b| world.fill(b, line.object));
    let token = (line.caller != "anyone").then(|| world.callers[line.caller].token.as_str());
    let reader = match line.look {
        Look::Tenant(name) => Some(world.readers[name].as_str()),
        Look::NewTenant => None,
    };
    let before = match reader {
        Some(reader) => history(app, reader).await,
        None => Vec::new(),
    };
    let reply = app.call(method, &path, token, body).await;
    if !reply.status.is_success() {
        return Some(format!(
            "{} as {} failed: {} {:#}",
            line.operation, line.caller, reply.status, reply.body
        ));
    }
    let after = match reader {
        Some(reader) => history(app, reader).await,
        None => {
            let mut all = history(app, &app.first_admin(&reply.body).await).await;
            let first_login = all.iter().position(|e| e["action"] == "auth.login");
            all.truncate(first_login.unwrap_or(all.len()));
            all
        }
    };
    if after.get(..before.len()) != Some(&before[..]) {
        return Some(format!("{}: earlier entries changed", line.operation));
    }
    let new = &after[before.len()..];
    match line.expect {
        Expect::Nothing(_) if new.is_empty() => None,
        Expect::Nothing(why) => Some(format!(
            "{} as {} changes no tenant's state ({why}), yet recorded {:?}",
            line.operation,
            line.caller,
            summary(new)
        )),
        Expect::Entries { by, actions } => {
            let who = &world.callers[by].identity;
            let missing: Vec<&str> = actions
                .iter()
                .copied()
                .filter(|action| !new.iter().any(|e| e["action"] == *action && names(e, who)))
                .collect();
            let others: Vec<&Value> = new.iter().filter(|e| !names(e, who)).collect();
            (!missing.is_empty() || !others.is_empty()).then(|| {
                format!(
                    "{} as {}: lacks {missing:?} in the name of {} {} ({}); recorded {:?}",
                    line.operation,
                    line.caller,
                    who.kind,
                    who.name,
                    who.id,
                    summary(new)
                )
            })
        }
    }
}

async fn every_state_change_is_recorded_in_its_actors_name(app: TestApp) {
    let document = Document::served_by(&app).await;
    assert_eq!(
        document.root(),
        Document::committed().root(),
        "the server serves the committed openapi/openapi.json"
    );
    assert_eq!(
        coverage_gaps(&document),
        Vec::<String>::new(),
        "every mutating operation is swept"
    );
    let world = world(&app).await;
    let lines = lines();
    let mut problems = Vec::new();
    for line in &lines {
        if let Some(problem) = sweep_line(&app, &world, line).await {
            problems.push(problem);
        }
    }
    assert!(
        problems.is_empty(),
        "operations whose history entries are missing or wrong:\n{}",
        problems.join("\n")
    );
    let exceptions = lines
        .iter()
        .filter(|l| matches!(l.expect, Expect::Nothing(_)))
        .count();
    println!(
        "history sweep: {} mutating operations in {} calls, {exceptions} of them declared as changing nothing",
        mutating_operations(&document).len(),
        lines.len()
    );
}

on_both_databases!(every_state_change_is_recorded_in_its_actors_name);
