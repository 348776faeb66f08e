//! The permission table of SPEC §2, pinned for every operation of the committed
//! OpenAPI document: every role alone, the operator, a device agent and a
//! webservice credential with every role subset it may carry reach exactly the
//! operations `domain`'s table grants them, and are refused 403 elsewhere.
//!
//! The operations come from `openapi/openapi.json`; only which action guards an
//! operation is declared here, so a new operation without a known action fails.

use std::collections::BTreeSet;

use countersign_domain::permission::{Action, PrincipalKind};
use countersign_domain::role::{Role, RoleSet};
use countersign_tests::{Reply, TestApp, on_both_databases, unique_slug};
use reqwest::Method;
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// Who may call an operation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard {
    /// No token needed.
    Public,
    /// Any valid token.
    AnyToken,
    /// Only a person (a programming key's token).
    Person,
    /// Callers allowed any of these actions.
    Actions(&'static [Action]),
}

impl Guard {
    /// Whether a caller of `kind` with `roles` passes the permission check.
    pub(crate) fn admits(self, kind: PrincipalKind, roles: &RoleSet) -> bool {
        match self {
            Guard::Public | Guard::AnyToken => true,
            Guard::Person => kind == PrincipalKind::User,
            Guard::Actions(actions) => actions.iter().any(|action| match action.scope() {
                countersign_domain::permission::Scope::Operator => kind == PrincipalKind::Operator,
                countersign_domain::permission::Scope::Agent => kind == PrincipalKind::Agent,
                countersign_domain::permission::Scope::Tenant => {
                    matches!(kind, PrincipalKind::User | PrincipalKind::Webservice)
                        && action.permitted_by(roles)
                }
            }),
        }
    }
}

/// The action that guards each operation of the document, by `operationId`.
/// An operation missing here fails the tests that read the document.
pub(crate) fn guard(operation_id: &str) -> Option<Guard> {
    use Action::*;
    let actions: &'static [Action] = match operation_id {
        "healthz" | "readyz" | "token" | "error_codes" => return Some(Guard::Public),
        "me" | "revoke" => return Some(Guard::AnyToken),
        "set_pin" => return Some(Guard::Person),
        "list_tenants" | "create_tenant" | "get_tenant" | "update_tenant" => &[ManageTenants],
        "work"
        | "key_insertion"
        | "programming_key_connection"
        | "claim"
        | "heartbeat"
        | "loaded"
        | "events"
        | "complete"
        | "fail"
        | "release" => &[AgentWork],
        "list_employees" | "get_employee" => &[ReadEmployees],
        "create_employee" | "update_employee" => &[ManageEmployees],
        "list_keys"
        | "get_key"
        | "list_key_groups"
        | "get_key_group"
        | "list_cylinders"
        | "get_cylinder"
        | "list_remote_devices"
        | "get_remote_device" => &[ReadInventory],
        "create_key"
        | "update_key"
        | "create_key_group"
        | "update_key_group"
        | "create_cylinder"
        | "update_cylinder"
        | "create_remote_device"
        | "update_remote_device" => &[ManageInventory],
        "issue_key" | "return_key" => &[IssueReturnKeys],
        "stop_auto_collection" => &[StopAutoCollection],
        "desk_readout" => &[DeskReadout],
        "list_programming_keys"
        | "create_programming_key"
        | "get_programming_key"
        | "update_programming_key"
        | "issue_programming_key"
        | "return_programming_key"
        | "set_programming_key_pin"
        | "block_programming_key"
        | "unblock_programming_key" => &[ManageProgrammingKeys],
        "list_agents"
        | "create_agent"
        | "get_agent"
        | "set_agent_devices"
        | "rotate_agent_secret" => &[ManageAgents],
        "list_api_keys" | "create_api_key" | "get_api_key" | "delete_api_key" => &[ManageApiKeys],
        "import" => &[Import],
        "create_request" => &[CreateRequest],
        "list_requests" | "get_request" => &[ReadRequests],
        "approve" | "reject" => &[DecideRequest],
        "cancel" => &[CancelRequest],
        "transfer" => &[TransferRequest],
        "list_jobs" | "get_job" => &[ReadAllJobs, ReadOwnJobs],
        "key_event_log"
        | "cylinder_event_log"
        | "export_key_event_log"
        | "export_cylinder_event_log" => &[ReadEventData],
        "list_history" => &[ReadHistory, ReadRequestHistory],
        "get_verify_history" | "post_verify_history" | "list_checkpoints" | "list_signing_keys" => {
            &[VerifyHistory]
        }
        "export_history" => &[ReadHistory],
        _ => return None,
    };
    Some(Guard::Actions(actions))
}

/// One operation of the document.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub method: Method,
    /// The path template, e.g. `/v1/keys/{id}`.
    pub template: String,
    pub id: String,
    pub path_params: Vec<String>,
    /// Required query parameters and their schemas.
    pub required_query: Vec<(String, Value)>,
    /// The names of all query parameters.
    pub query: Vec<String>,
    /// The request body's schema, if the operation takes one.
    pub body: Option<Value>,
}

impl Operation {
    pub(crate) fn label(&self) -> String {
        format!("{} {} ({})", self.method, self.template, self.id)
    }

    /// The path with every path parameter replaced by `id`, and the required
    /// query parameters filled in.
    pub(crate) fn path_with(&self, id: &str) -> String {
        let mut path = self.template.clone();
        for name in &self.path_params {
            path = path.replace(&format!("{{{name}}}"), id);
        }
        let query: Vec<String> = self
            .required_query
            .iter()
            .map(|(name, schema)| {
                let value = schema["enum"][0]
                    .as_str()
                    .unwrap_or_else(|| panic!("no value for query parameter {name}"));
                format!("{name}={value}")
            })
            .collect();
        if query.is_empty() {
            path
        } else {
            format!("{path}?{}", query.join("&"))
        }
    }

    pub(crate) fn guard(&self) -> Guard {
        guard(&self.id).unwrap_or_else(|| {
            panic!(
                "{} has no known action: declare it in roles::guard",
                self.label()
            )
        })
    }
}

/// The committed OpenAPI document, read when the test runs.
pub(crate) struct Document {
    root: Value,
}

impl Document {
    pub(crate) fn committed() -> Document {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
        let text = std::fs::read_to_string(path).unwrap();
        Document {
            root: serde_json::from_str(&text).unwrap(),
        }
    }

    /// The document `app` serves at `/openapi.json`.
    pub(crate) async fn served_by(app: &TestApp) -> Document {
        let reply = app.call(Method::GET, "/openapi.json", None, None).await;
        Document {
            root: reply.assert(200),
        }
    }

    pub(crate) fn root(&self) -> &Value {
        &self.root
    }

    pub(crate) fn operations(&self) -> Vec<Operation> {
        let mut operations = Vec::new();
        for (template, item) in self.root["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let parameters = op["parameters"].as_array().cloned().unwrap_or_default();
                let path_params = parameters
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                let required_query = parameters
                    .iter()
                    .filter(|p| p["in"] == "query" && p["required"] == true)
                    .map(|p| (p["name"].as_str().unwrap().to_owned(), p["schema"].clone()))
                    .collect();
                let query = parameters
                    .iter()
                    .filter(|p| p["in"] == "query")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                let body = op["requestBody"]["content"]["application/json"]["schema"].clone();
                operations.push(Operation {
                    method,
                    template: template.clone(),
                    id: op["operationId"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{template} has no operationId"))
                        .to_owned(),
                    path_params,
                    required_query,
                    query,
                    body: (!body.is_null()).then_some(body),
                });
            }
        }
        operations
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                self.resolve(&self.root["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    /// A minimal valid body for `operation`: its required fields, plus the
    /// descriptive text fields (so that a change would be visible). Fields that
    /// refer to other objects by id are asked of `reference` by field name.
    pub(crate) fn body(
        &self,
        operation: &Operation,
        reference: &mut dyn FnMut(&str) -> Option<Value>,
    ) -> Option<Value> {
        let schema = operation.body.as_ref()?;
        Some(self.value(schema, "", true, reference, &operation.label()))
    }

    fn value(
        &self,
        schema: &Value,
        field: &str,
        required: bool,
        reference: &mut dyn FnMut(&str) -> Option<Value>,
        context: &str,
    ) -> Value {
        let schema = self.resolve(schema);
        if let Some(choices) = schema["oneOf"].as_array() {
            let choice = choices
                .iter()
                .find(|c| self.resolve(c)["type"] != "null")
                .unwrap();
            return self.value(choice, field, required, reference, context);
        }
        if let Some(values) = schema["enum"].as_array() {
            return values[0].clone();
        }
        let kind = match &schema["type"] {
            Value::String(kind) => kind.clone(),
            Value::Array(kinds) => kinds
                .iter()
                .filter_map(Value::as_str)
                .find(|k| *k != "null")
                .unwrap_or("null")
                .to_owned(),
            _ => "object".to_owned(),
        };
        match (kind.as_str(), schema["format"].as_str()) {
            ("object", _) => {
                let needed: BTreeSet<&str> = schema["required"]
                    .as_array()
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut object = Map::new();
                for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                    let is_required = needed.contains(name.as_str());
                    if is_required || TEXT_FIELDS.contains(&name.as_str()) {
                        object.insert(
                            name.clone(),
                            self.value(property, name, is_required, reference, context),
                        );
                    } else if self.refers_to_objects(property)
                        && let Some(value) = reference(name)
                    {
                        object.insert(name.clone(), value);
                    }
                }
                Value::Object(object)
            }
            ("array", _) => match reference(field) {
                Some(value) => value,
                None if required => json!([]),
                None => Value::Null,
            },
            ("string", Some("uuid")) => reference(field)
                .unwrap_or_else(|| panic!("{context}: no object for the field `{field}`")),
            ("string", Some("date-time")) => json!(chrono::Utc::now()),
            ("string", _) => reference(field).unwrap_or_else(|| json!(text_for(field))),
            ("integer", _) => json!(schema["minimum"].as_i64().unwrap_or(0).max(1)),
            ("boolean", _) => json!(false),
            _ => Value::Null,
        }
    }
}

impl Document {
    /// Whether a field holds the id of another object (or a list of them).
    fn refers_to_objects(&self, schema: &Value) -> bool {
        let schema = self.resolve(schema);
        schema["format"] == "uuid" || self.resolve(&schema["items"])["format"] == "uuid"
    }
}

/// Optional fields filled in although not required: they carry no reference and
/// make an unwanted change visible; a PIN, which every key but an approver's takes.
const TEXT_FIELDS: [&str; 5] = ["name", "comment", "reason", "location", "pin"];

fn text_for(field: &str) -> String {
    match field {
        "pin" | "new_pin" | "current_pin" => "8642".into(),
        "email" => format!("{}@example.org", unique_slug("person")),
        "marking" | "serial" | "slug" | "programming_key_marking" => unique_slug("gen"),
        "base_timezone" => "Europe/Berlin".into(),
        "kind" => "access_granted".into(),
        _ => format!("Changed {field}"),
    }
}

/// The operations in the order they are called: ending the caller's own token
/// or PIN comes last.
pub(crate) fn in_calling_order(mut operations: Vec<Operation>) -> Vec<Operation> {
    operations.sort_by_key(|op| match op.id.as_str() {
        "set_pin" => 1,
        "revoke" => 2,
        _ => 0,
    });
    operations
}

/// A principal under test: a label, what it is and its token.
struct Caller {
    label: String,
    kind: PrincipalKind,
    roles: RoleSet,
    token: String,
}

/// Every subset of the roles a webservice credential may carry.
fn webservice_role_subsets() -> Vec<Vec<Role>> {
    let allowed: Vec<Role> = Role::ALL
        .iter()
        .copied()
        .filter(|r| {
            !matches!(
                r,
                Role::Approver | Role::SuperAdministrator | Role::Webservice
            )
        })
        .collect();
    (0..1u32 << allowed.len())
        .map(|mask| {
            allowed
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, r)| *r)
                .collect()
        })
        .collect()
}

async fn callers(app: &TestApp) -> Vec<Caller> {
    let tenant = app.tenant("roles", true).await;
    let mut callers = Vec::new();
    for role in Role::ALL.iter().copied().filter(|r| *r != Role::Webservice) {
        let marking = format!("R-{}", role.as_str());
        let (_, token) = app
            .person(
                &tenant,
                &marking,
                &[role.as_str()],
                Some(&format!("{}@roles.example", role.as_str())),
            )
            .await;
        callers.push(Caller {
            label: format!("a person with {role}"),
            kind: PrincipalKind::User,
            roles: [role].into_iter().collect(),
            token,
        });
    }
    for forbidden in [Role::Approver, Role::SuperAdministrator] {
        let refused = app
            .post(
                "/v1/api-keys",
                &tenant.admin,
                json!({"name": "Integration", "roles": [forbidden.as_str()]}),
            )
            .await;
        assert_eq!(
            (refused.status.as_u16(), refused.code()),
            (422, "invalid_role"),
            "a webservice credential never holds {forbidden}"
        );
    }
    for subset in webservice_role_subsets() {
        let names: Vec<&str> = subset.iter().map(|r| r.as_str()).collect();
        let created = app
            .post(
                "/v1/api-keys",
                &tenant.admin,
                json!({"name": format!("Integration {}", names.join("+")), "roles": names}),
            )
            .await
            .assert(201);
        let login = app
            .token(
                json!({"grant_type": "api_key", "tenant": tenant.slug, "api_key": created["key"]}),
            )
            .await
            .assert(200);
        callers.push(Caller {
            label: format!("a webservice credential with [{}]", names.join(", ")),
            kind: PrincipalKind::Webservice,
            roles: RoleSet::for_webservice(subset).unwrap(),
            token: login["access_token"].as_str().unwrap().to_owned(),
        });
    }
    let agent = app
        .post("/v1/agents", &tenant.admin, json!({"name": "Site PC"}))
        .await
        .assert(201);
    let login = app
        .token(json!({"grant_type": "agent", "agent_id": agent["agent"]["id"], "secret": agent["secret"]}))
        .await
        .assert(200);
    callers.push(Caller {
        label: "a device agent".into(),
        kind: PrincipalKind::Agent,
        roles: RoleSet::default(),
        token: login["access_token"].as_str().unwrap().to_owned(),
    });
    callers.push(Caller {
        label: "the operator".into(),
        kind: PrincipalKind::Operator,
        roles: RoleSet::default(),
        token: app.operator().await,
    });
    callers
}

fn check(reply: &Reply, caller: &Caller, operation: &Operation, admitted: bool) {
    if admitted {
        // Passing the check may still fail later (a missing object, a wrong
        // PIN), but never as "forbidden" or as an unaccepted token.
        assert!(
            reply.status != 403 && reply.code() != "unauthorized",
            "{} may call {}: {} {:#}",
            caller.label,
            operation.label(),
            reply.status,
            reply.body
        );
    } else {
        assert_eq!(
            (reply.status.as_u16(), reply.code()),
            (403, "forbidden"),
            "{} may not call {}: {:#}",
            caller.label,
            operation.label(),
            reply.body
        );
    }
}

async fn every_operation_admits_exactly_the_roles_of_the_table(app: TestApp) {
    let document = Document::committed();
    let operations = in_calling_order(document.operations());
    for operation in &operations {
        operation.guard();
    }
    let callers = callers(&app).await;
    let (mut allowed, mut refused) = (0, 0);
    for caller in &callers {
        for operation in &operations {
            let admitted = operation.guard().admits(caller.kind, &caller.roles);
            // Ids of objects that do not exist: the permission check comes first,
            // and nothing an allowed caller does changes what the next one sees.
            let body = document.body(operation, &mut |field| match field {
                "device_ids" => Some(json!([Uuid::new_v4()])),
                "current_pin" => Some(json!("0000")),
                _ if field.ends_with("_id") || field == "id" || field == "lease_token" => {
                    Some(json!(Uuid::new_v4()))
                }
                _ => None,
            });
            let reply = app
                .call(
                    operation.method.clone(),
                    &operation.path_with(&Uuid::new_v4().to_string()),
                    Some(&caller.token),
                    body,
                )
                .await;
            check(&reply, caller, operation, admitted);
            if admitted {
                allowed += 1;
            } else {
                refused += 1;
            }
        }
    }
    assert_eq!(allowed + refused, callers.len() * operations.len());
    println!(
        "roles matrix: {} operations × {} principals = {} calls, {allowed} allowed, {refused} refused with 403",
        operations.len(),
        callers.len(),
        allowed + refused
    );
}

#[test]
fn every_operation_of_the_document_has_a_known_action() {
    let operations = Document::committed().operations();
    let unknown: Vec<String> = operations
        .iter()
        .filter(|op| guard(&op.id).is_none())
        .map(Operation::label)
        .collect();
    assert!(
        unknown.is_empty(),
        "operations without a known action: {unknown:#?}"
    );
    let ids: BTreeSet<&str> = operations.iter().map(|op| op.id.as_str()).collect();
    assert_eq!(ids.len(), operations.len(), "operationIds are unique");
}

#[test]
fn every_action_guards_an_operation() {
    let operations = Document::committed().operations();
    for action in Action::ALL {
        assert!(
            operations.iter().any(|op| matches!(
                guard(&op.id),
                Some(Guard::Actions(actions)) if actions.contains(&action)
            )),
            "no operation of the document is guarded by {action:?}"
        );
    }
}

on_both_databases!(every_operation_admits_exactly_the_roles_of_the_table);
