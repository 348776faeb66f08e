//! Tenant isolation, generated from the committed OpenAPI document: every
//! operation that names an object in its path, called by another tenant's
//! principals (a person holding every role, its device agent, its webservice
//! credential) on a real object of the first tenant, is answered exactly like
//! a missing object, and the first tenant's data does not change. The same
//! body, in the right tenant, succeeds.

use std::collections::{BTreeMap, HashMap};

use countersign_domain::permission::PrincipalKind;
use countersign_domain::role::{Role, RoleSet};
use countersign_tests::{Tenant, TestApp, on_both_databases};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::roles::{Document, Guard, Operation};

/// Which object a path names, by path prefix (the longest matching prefix wins).
const OBJECT_BY_PATH: [(&str, &str); 12] = [
    ("/v1/agent/jobs/{id}", "job"),
    ("/v1/agents/{id}", "agent"),
    ("/v1/api-keys/{id}", "api_key"),
    ("/v1/cylinders/{id}", "cylinder"),
    ("/v1/employees/{id}", "employee"),
    ("/v1/event-log-requests/{id}", "request"),
    ("/v1/key-groups/{id}", "key_group"),
    ("/v1/keys/{id}", "key"),
    ("/v1/programming-keys/{id}", "programming_key"),
    ("/v1/readout-jobs/{id}", "job"),
    ("/v1/remote-devices/{id}", "remote_device"),
    ("/v1/tenants/{id}", "tenant"),
];

/// Operations that change their object's state get an object of their own, in
/// the state in which the operation succeeds.
const OBJECT_BY_OPERATION: [(&str, &str); 19] = [
    ("issue_key", "key_in_stock"),
    ("return_key", "key_to_return"),
    ("issue_programming_key", "programming_key_in_stock"),
    ("return_programming_key", "programming_key_to_return"),
    ("block_programming_key", "programming_key_to_block"),
    ("unblock_programming_key", "programming_key_blocked"),
    ("set_agent_devices", "agent_spare"),
    ("rotate_agent_secret", "agent_spare"),
    ("delete_api_key", "api_key_to_delete"),
    ("reject", "request_to_reject"),
    ("cancel", "request_to_cancel"),
    ("transfer", "request_to_transfer"),
    ("claim", "job_to_claim"),
    ("heartbeat", "job_heartbeat"),
    ("events", "job_events"),
    ("complete", "job_complete"),
    ("fail", "job_fail"),
    ("release", "job_release"),
    ("loaded", "job_loaded"),
];

/// What the right tenant's own call answers where success is impossible by
/// the product's rules, with the reason.
const REFUSED_IN_THE_RIGHT_TENANT: [(&str, u16, &str); 1] = [
    // Automatic collection exists only without the approver function.
    ("stop_auto_collection", 409, "approval_function_active"),
];

fn object_of(operation: &Operation) -> &'static str {
    assert!(
        operation.path_params.iter().all(|p| p == "id"),
        "{}: no object is known for its path parameters {:?}; extend isolation::OBJECT_BY_PATH",
        operation.label(),
        operation.path_params
    );
    if let Some((_, object)) = OBJECT_BY_OPERATION
        .iter()
        .find(|(id, _)| *id == operation.id)
    {
        return object;
    }
    OBJECT_BY_PATH
        .iter()
        .filter(|(prefix, _)| operation.template.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, object)| *object)
        .unwrap_or_else(|| {
            panic!(
                "{}: no object is known for its path; extend isolation::OBJECT_BY_PATH",
                operation.label()
            )
        })
}

/// The kind of object a name of [`OBJECT_BY_PATH`] or [`OBJECT_BY_OPERATION`] is.
fn kind_of(object: &str) -> &'static str {
    OBJECT_BY_PATH
        .iter()
        .map(|(_, kind)| *kind)
        .filter(|kind| object.starts_with(kind))
        .max_by_key(|kind| kind.len())
        .unwrap_or_else(|| panic!("{object} is no known kind of object"))
}

/// A caller of one tenant.
pub(crate) struct Principal {
    label: &'static str,
    kind: PrincipalKind,
    roles: RoleSet,
    pub(crate) token: String,
}

/// A tenant with one object of every kind (several where operations need their own).
pub(crate) struct Inventory {
    pub(crate) tenant: Tenant,
    pub(crate) objects: BTreeMap<&'static str, String>,
    /// Lease tokens of claimed jobs, by job id.
    pub(crate) leases: HashMap<String, Value>,
    pub(crate) person: Principal,
    pub(crate) agent: Principal,
    pub(crate) webservice: Principal,
}

impl Inventory {
    fn id(&self, object: &str) -> &str {
        self.objects
            .get(object)
            .unwrap_or_else(|| panic!("the inventory has no {object}"))
    }

    /// What a body field that refers to an object holds in this tenant; the
    /// lease of `path_object` for a lease token.
    fn reference(&self, field: &str, path_object: Option<&str>) -> Option<Value> {
        let object = match field {
            "employee_id" => "employee",
            "programming_key_id" => "programming_key",
            "device_id" => "remote_device_desk",
            "key_group_id" => "key_group",
            "id" => "key_for_requests",
            "device_ids" => return Some(json!([self.id("remote_device_spare")])),
            "lease_token" => {
                let job = path_object.map(|o| self.id(o))?;
                return Some(
                    self.leases
                        .get(job)
                        .cloned()
                        .unwrap_or_else(|| json!(Uuid::new_v4())),
                );
            }
            _ => return None,
        };
        Some(json!(self.id(object)))
    }

    /// The principal of this tenant that an operation's guard admits, for the
    /// calls that must succeed.
    fn principal_for<'a>(
        &'a self,
        operation: &Operation,
        operator: &'a Principal,
    ) -> &'a Principal {
        [&self.person, &self.agent, operator]
            .into_iter()
            .find(|p| operation.guard().admits(p.kind, &p.roles))
            .unwrap_or_else(|| panic!("nobody may call {}", operation.label()))
    }
}

fn id_of(body: &Value) -> String {
    body["id"].as_str().unwrap().to_owned()
}

async fn create(app: &TestApp, token: &str, path: &str, body: Value) -> String {
    id_of(&app.post(path, token, body).await.assert(201))
}

async fn desk_job(app: &TestApp, tenant: &Tenant, marking: &str, desk: &str) -> String {
    let key = app.issued_key(tenant, marking, "e3").await;
    create(
        app,
        &tenant.admin,
        &format!("/v1/keys/{key}/desk-readout"),
        json!({"device_id": desk}),
    )
    .await
}

pub(crate) async fn inventory(app: &TestApp, slug: &str) -> Inventory {
    let tenant = app.tenant(slug, true).await;
    let admin = tenant.admin.clone();
    let mut objects = BTreeMap::new();
    let mut leases = HashMap::new();
    objects.insert("tenant", tenant.id.to_string());

    let every_role = [
        Role::SuperAdministrator,
        Role::SystemAdministrator,
        Role::Approver,
        Role::CylinderProgrammer,
        Role::Receptionist,
        Role::Auditor,
    ];
    let names: Vec<&str> = every_role.iter().map(|r| r.as_str()).collect();
    let (_, person) = app
        .person(
            &tenant,
            "ALL-1",
            &names,
            Some(&format!("all@{slug}.example")),
        )
        .await;
    let person = Principal {
        label: "a person holding every role",
        kind: PrincipalKind::User,
        roles: every_role.into_iter().collect(),
        token: person,
    };

    objects.insert(
        "employee",
        create(
            app,
            &admin,
            "/v1/employees",
            json!({"name": "Erin Employee", "email": format!("erin@{slug}.example")}),
        )
        .await,
    );
    let (programmer, _) = app
        .person(
            &tenant,
            "CP-1",
            &["cylinder_programmer"],
            Some(&format!("cp@{slug}.example")),
        )
        .await;
    objects.insert("programming_key", programmer.to_string());
    objects.insert(
        "programming_key_in_stock",
        create(
            app,
            &admin,
            "/v1/programming-keys",
            json!({"marking": "PK-STOCK", "name": "In stock"}),
        )
        .await,
    );
    for (object, marking) in [
        ("programming_key_to_return", "PK-RET"),
        ("programming_key_to_block", "PK-BLK"),
        ("programming_key_blocked", "PK-BLOCKED"),
    ] {
        let id = create(
            app,
            &admin,
            "/v1/programming-keys",
            json!({"marking": marking, "name": marking}),
        )
        .await;
        app.post(
            &format!("/v1/programming-keys/{id}/issue"),
            &admin,
            json!({"employee_id": objects["employee"]}),
        )
        .await
        .assert(200);
        objects.insert(object, id);
    }
    app.post(
        &format!(
            "/v1/programming-keys/{}/block",
            objects["programming_key_blocked"]
        ),
        &admin,
        json!({}),
    )
    .await
    .assert(200);

    objects.insert(
        "key_group",
        create(
            app,
            &admin,
            "/v1/key-groups",
            json!({"marking": "G-1", "name": "Group"}),
        )
        .await,
    );
    objects.insert("key", app.issued_key(&tenant, "K-1", "e3").await);
    objects.insert("key_to_return", app.issued_key(&tenant, "K-2", "e2").await);
    objects.insert(
        "key_for_requests",
        app.issued_key(&tenant, "K-3", "e3").await,
    );
    objects.insert(
        "key_in_stock",
        create(
            app,
            &admin,
            "/v1/keys",
            json!({"marking": "K-STOCK", "name": "In stock", "model": "e3"}),
        )
        .await,
    );

    for (object, serial, kind) in [
        ("remote_device", "RU-1", "remote_unit"),
        ("remote_device_desk", "DU-1", "desk_unit"),
        ("remote_device_spare", "RU-2", "remote_unit"),
    ] {
        objects.insert(
            object,
            create(
                app,
                &admin,
                "/v1/remote-devices",
                json!({"name": serial, "kind": kind, "serial": serial}),
            )
            .await,
        );
    }
    let agent = app
        .post("/v1/agents", &admin, json!({"name": "Site PC"}))
        .await
        .assert(201);
    let agent_id = id_of(&agent["agent"]);
    app.call(
        Method::PUT,
        &format!("/v1/agents/{agent_id}/devices"),
        Some(&admin),
        Some(json!({"device_ids": [objects["remote_device"], objects["remote_device_desk"]]})),
    )
    .await
    .assert(200);
    let login = app
        .token(json!({"grant_type": "agent", "agent_id": agent_id, "secret": agent["secret"]}))
        .await
        .assert(200);
    let agent = Principal {
        label: "its device agent",
        kind: PrincipalKind::Agent,
        roles: RoleSet::default(),
        token: login["access_token"].as_str().unwrap().to_owned(),
    };
    objects.insert("agent", agent_id);
    let spare = app
        .post("/v1/agents", &admin, json!({"name": "Spare PC"}))
        .await
        .assert(201);
    objects.insert("agent_spare", id_of(&spare["agent"]));

    let webservice_roles = [
        Role::SystemAdministrator,
        Role::CylinderProgrammer,
        Role::Receptionist,
        Role::Auditor,
    ];
    let names: Vec<&str> = webservice_roles.iter().map(|r| r.as_str()).collect();
    let api_key = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "Integration", "roles": names}),
        )
        .await
        .assert(201);
    objects.insert("api_key", id_of(&api_key["api_key"]));
    let login = app
        .token(json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": api_key["key"]}))
        .await
        .assert(200);
    let webservice = Principal {
        label: "its webservice credential",
        kind: PrincipalKind::Webservice,
        roles: RoleSet::for_webservice(webservice_roles).unwrap(),
        token: login["access_token"].as_str().unwrap().to_owned(),
    };
    let doomed = app
        .post(
            "/v1/api-keys",
            &admin,
            json!({"name": "Doomed", "roles": ["auditor"]}),
        )
        .await
        .assert(201);
    objects.insert("api_key_to_delete", id_of(&doomed["api_key"]));

    objects.insert(
        "cylinder",
        create(
            app,
            &admin,
            "/v1/cylinders",
            json!({"marking": "C-1", "name": "Main door", "location": "Hall"}),
        )
        .await,
    );
    for (object, marking) in [
        ("request", "C-2"),
        ("request_to_reject", "C-3"),
        ("request_to_cancel", "C-4"),
        ("request_to_transfer", "C-5"),
        ("request_loaded", "C-6"),
    ] {
        let cylinder = create(
            app,
            &admin,
            "/v1/cylinders",
            json!({"marking": marking, "name": marking}),
        )
        .await;
        let request = create(
            app,
            &admin,
            "/v1/event-log-requests",
            json!({"target": {"type": "cylinder", "id": cylinder}, "comment": "audit"}),
        )
        .await;
        objects.insert(object, request);
    }
    for object in ["request_to_transfer", "request_loaded"] {
        app.post(
            &format!("/v1/event-log-requests/{}/approve", objects[object]),
            &person.token,
            json!({"comment": "fine"}),
        )
        .await
        .assert(200);
    }
    app.post(
        &format!(
            "/v1/event-log-requests/{}/transfer",
            objects["request_loaded"]
        ),
        &admin,
        json!({"programming_key_id": programmer}),
    )
    .await
    .assert(200);
    let connected = app
        .post(
            "/v1/agent/programming-key-connections",
            &agent.token,
            json!({"device_id": objects["remote_device_desk"], "programming_key_marking": "CP-1"}),
        )
        .await
        .assert(200);
    let loading = &connected["load"][0];
    objects.insert("job_loaded", id_of(&loading["job"]));
    leases.insert(id_of(&loading["job"]), loading["lease"]["token"].clone());

    let desk = objects["remote_device_desk"].clone();
    for (object, marking) in [
        ("job", "DK-0"),
        ("job_to_claim", "DK-1"),
        ("job_heartbeat", "DK-2"),
        ("job_events", "DK-3"),
        ("job_complete", "DK-4"),
        ("job_fail", "DK-5"),
        ("job_release", "DK-6"),
    ] {
        let job = desk_job(app, &tenant, marking, &desk).await;
        if !matches!(object, "job" | "job_to_claim") {
            let claimed = app
                .post(
                    &format!("/v1/agent/jobs/{job}/claim"),
                    &agent.token,
                    json!({"device_id": desk}),
                )
                .await
                .assert(200);
            leases.insert(job.clone(), claimed["lease"]["token"].clone());
        }
        objects.insert(object, job);
    }
    Inventory {
        tenant,
        objects,
        leases,
        person,
        agent,
        webservice,
    }
}

/// What the tenant's own administrator and the operator see of it, through the
/// API's read operations (not event data nor the history's export: reading
/// them is recorded in the history).
async fn snapshot(
    app: &TestApp,
    operations: &[Operation],
    victim: &Inventory,
    operator: &Principal,
) -> BTreeMap<String, (u16, Value)> {
    let admin = Principal {
        label: "its super administrator",
        kind: PrincipalKind::User,
        roles: [Role::SuperAdministrator].into_iter().collect(),
        token: victim.tenant.admin.clone(),
    };
    let mut seen = BTreeMap::new();
    for operation in operations.iter().filter(|op| op.method == Method::GET) {
        let Guard::Actions(actions) = operation.guard() else {
            continue;
        };
        if actions.contains(&countersign_domain::permission::Action::ReadEventData)
            || operation.id == "export_history"
        {
            continue;
        }
        let reader = [&admin, operator]
            .into_iter()
            .find(|p| operation.guard().admits(p.kind, &p.roles));
        let Some(reader) = reader else {
            continue;
        };
        let paths: Vec<String> = if operation.path_params.is_empty() {
            let limit = if operation.query.iter().any(|q| q == "limit") {
                "?limit=500"
            } else {
                ""
            };
            vec![format!("{}{limit}", operation.path_with(""))]
        } else {
            let kind = kind_of(object_of(operation));
            victim
                .objects
                .iter()
                .filter(|(object, _)| kind_of(object) == kind)
                .map(|(_, id)| operation.path_with(id))
                .collect()
        };
        for path in paths {
            if reader.kind == PrincipalKind::Operator
                && !path.contains(&victim.tenant.id.to_string())
            {
                // The operator's list spans every tenant, also those of parallel tests.
                continue;
            }
            let reply = app.get(&path, &reader.token).await;
            seen.insert(path, (reply.status.as_u16(), reply.body));
        }
    }
    seen
}

fn diff(
    before: &BTreeMap<String, (u16, Value)>,
    after: &BTreeMap<String, (u16, Value)>,
) -> Vec<String> {
    before
        .iter()
        .filter(|(path, seen)| after.get(*path) != Some(seen))
        .map(|(path, seen)| format!("{path}: {seen:?} became {:?}", after.get(path)))
        .collect()
}

async fn another_tenants_objects_are_missing_to_every_principal(app: TestApp) {
    let document = Document::committed();
    let operations = document.operations();
    let targeted: Vec<&Operation> = operations
        .iter()
        .filter(|op| !op.path_params.is_empty())
        .collect();
    // Every operation with a path parameter names a known object: a new one
    // fails here until it is mapped, instead of going untested.
    for operation in &targeted {
        operation.guard();
        object_of(operation);
    }
    let victim = inventory(&app, "victim").await;
    let intruder = inventory(&app, "intruder").await;
    let operator = Principal {
        label: "the operator",
        kind: PrincipalKind::Operator,
        roles: RoleSet::default(),
        token: app.operator().await,
    };
    let before = snapshot(&app, &operations, &victim, &operator).await;
    let again = snapshot(&app, &operations, &victim, &operator).await;
    assert_eq!(
        diff(&before, &again),
        Vec::<String>::new(),
        "reading changes nothing"
    );
    assert!(before.len() > 40, "the snapshot covers the inventory");

    // 1. Objects of the victim named in the path.
    let mut calls = 0;
    let intruders = [&intruder.person, &intruder.agent, &intruder.webservice];
    for principal in intruders {
        for operation in &targeted {
            let object = object_of(operation);
            let body = document.body(operation, &mut |field| {
                match field {
                    // A lease token of the victim's job, as if it had leaked.
                    "lease_token" => victim.reference(field, Some(object)),
                    _ => intruder.reference(field, Some(object)),
                }
            });
            let mut replies = Vec::new();
            for id in [victim.id(object).to_owned(), Uuid::new_v4().to_string()] {
                let reply = app
                    .call(
                        operation.method.clone(),
                        &operation.path_with(&id),
                        Some(&principal.token),
                        body.clone(),
                    )
                    .await;
                replies.push(reply);
            }
            let (foreign, missing) = (&replies[0], &replies[1]);
            let expected = if operation.guard().admits(principal.kind, &principal.roles) {
                (404, "not_found")
            } else {
                (403, "forbidden")
            };
            assert_eq!(
                (foreign.status.as_u16(), foreign.code()),
                expected,
                "{} of another tenant calls {} on its {object}: {:#}",
                principal.label,
                operation.label(),
                foreign.body
            );
            assert_eq!(
                (
                    foreign.status,
                    foreign.code(),
                    foreign.headers.get("content-type")
                ),
                (
                    missing.status,
                    missing.code(),
                    missing.headers.get("content-type")
                ),
                "{}: another tenant's {object} is answered like a missing one",
                operation.label()
            );
            calls += 1;
        }
    }

    // 2. Objects of the victim named in the body, on the intruder's own objects.
    let mut body_calls = 0;
    for operation in operations.iter().filter(|op| op.body.is_some()) {
        let object = (!operation.path_params.is_empty()).then(|| object_of(operation));
        let mut names_an_object = false;
        let body = document.body(operation, &mut |field| match field {
            "employee_id" | "programming_key_id" | "device_id" | "device_ids" | "key_group_id"
            | "id" => {
                names_an_object = true;
                victim.reference(field, object)
            }
            _ => intruder.reference(field, object),
        });
        if !names_an_object {
            continue;
        }
        let principal = intruder.principal_for(operation, &operator);
        if principal.kind == PrincipalKind::Operator {
            continue;
        }
        let path = operation.path_with(object.map_or("", |o| intruder.id(o)));
        let reply = app
            .call(
                operation.method.clone(),
                &path,
                Some(&principal.token),
                body,
            )
            .await;
        assert!(
            matches!(reply.status.as_u16(), 404 | 422),
            "{} calls {} naming the other tenant's objects in its body: {} {:#}",
            principal.label,
            operation.label(),
            reply.status,
            reply.body
        );
        body_calls += 1;
    }

    // 3. Lists and the work list show nothing of the victim, also when filtered by its ids.
    let victim_ids: Vec<String> = victim.objects.values().cloned().collect();
    let mut list_calls = 0;
    for principal in intruders {
        for operation in operations.iter().filter(|op| {
            op.method == Method::GET
                && op.path_params.is_empty()
                && op.guard().admits(principal.kind, &principal.roles)
        }) {
            let mut paths = vec![operation.path_with("")];
            for filter in operation.query.iter().filter(|q| q.ends_with("_id")) {
                paths.push(format!(
                    "{}?{filter}={}",
                    operation.path_with(""),
                    victim.id("key")
                ));
            }
            for path in paths {
                let reply = app.get(&path, &principal.token).await;
                let text = reply.body.to_string();
                for id in &victim_ids {
                    assert!(
                        !text.contains(id.as_str()),
                        "{} sees an object of another tenant in GET {path}: {text}",
                        principal.label
                    );
                }
                list_calls += 1;
            }
        }
    }

    let after = snapshot(&app, &operations, &victim, &operator).await;
    assert_eq!(
        diff(&before, &after),
        Vec::<String>::new(),
        "another tenant changed nothing"
    );

    // 4. The same operations and bodies, in the right tenant, find their objects.
    let mut proven = 0;
    for operation in &targeted {
        let object = object_of(operation);
        let principal = victim.principal_for(operation, &operator);
        let body = document.body(operation, &mut |field| {
            victim.reference(field, Some(object))
        });
        let reply = app
            .call(
                operation.method.clone(),
                &operation.path_with(victim.id(object)),
                Some(&principal.token),
                body,
            )
            .await;
        match REFUSED_IN_THE_RIGHT_TENANT
            .iter()
            .find(|(id, _, _)| *id == operation.id)
        {
            Some((_, status, code)) => assert_eq!(
                (reply.status.as_u16(), reply.code()),
                (*status, *code),
                "{} in its own tenant",
                operation.label()
            ),
            None => assert!(
                reply.status.is_success(),
                "{} calls {} on its own {object}: {} {:#}",
                principal.label,
                operation.label(),
                reply.status,
                reply.body
            ),
        }
        proven += 1;
    }

    println!(
        "tenant isolation: {} operations with a path id × {} principals = {calls} calls on another tenant's objects, \
         {body_calls} calls naming them in the body, {list_calls} list reads; leaks found: 0; \
         {proven} operations succeed in the right tenant; {} objects snapshot unchanged",
        targeted.len(),
        intruders.len(),
        before.len()
    );
}

on_both_databases!(another_tenants_objects_are_missing_to_every_principal);
