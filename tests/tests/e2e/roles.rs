//! The permission table of SPEC §2, pinned endpoint by endpoint: every role
//! alone may call exactly the operations `domain`'s table grants it.

use countersign_domain::permission::Action;
use countersign_domain::role::Role;
use countersign_tests::{TestApp, on_both_databases};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// An operation and the action that guards it.
struct Operation {
    method: Method,
    path: String,
    body: Option<serde_json::Value>,
    /// Callers with any of these actions pass the permission check.
    actions: &'static [Action],
}

fn op(
    method: Method,
    path: impl Into<String>,
    body: Option<serde_json::Value>,
    actions: &'static [Action],
) -> Operation {
    Operation {
        method,
        path: path.into(),
        body,
        actions,
    }
}

async fn each_role_reaches_exactly_its_operations(app: TestApp) {
    let tenant = app.tenant("roles", true).await;
    let key = app.issued_key(&tenant, "K-1", "e3").await;
    let cylinder = app
        .post(
            "/v1/cylinders",
            &tenant.admin,
            json!({"marking": "C-1", "name": "C"}),
        )
        .await
        .assert(201);
    let cylinder = cylinder["id"].as_str().unwrap().to_owned();
    let missing = Uuid::new_v4();
    let empty = Some(json!({}));
    let operations = [
        op(Method::GET, "/v1/employees", None, &[Action::ReadEmployees]),
        op(
            Method::POST,
            "/v1/employees",
            Some(json!({"name": "X"})),
            &[Action::ManageEmployees],
        ),
        op(Method::GET, "/v1/keys", None, &[Action::ReadInventory]),
        op(
            Method::POST,
            "/v1/keys",
            Some(json!({"marking": "N", "name": "N", "model": "e2"})),
            &[Action::ManageInventory],
        ),
        op(
            Method::POST,
            format!("/v1/keys/{missing}/return"),
            empty.clone(),
            &[Action::IssueReturnKeys],
        ),
        op(
            Method::POST,
            format!("/v1/keys/{missing}/auto-collection/stop"),
            empty.clone(),
            &[Action::StopAutoCollection],
        ),
        op(
            Method::POST,
            format!("/v1/keys/{key}/desk-readout"),
            Some(json!({"device_id": missing})),
            &[Action::DeskReadout],
        ),
        op(Method::GET, "/v1/cylinders", None, &[Action::ReadInventory]),
        op(
            Method::GET,
            "/v1/programming-keys",
            None,
            &[Action::ManageProgrammingKeys],
        ),
        op(Method::GET, "/v1/agents", None, &[Action::ManageAgents]),
        op(Method::GET, "/v1/api-keys", None, &[Action::ManageApiKeys]),
        op(
            Method::POST,
            "/v1/imports",
            empty.clone(),
            &[Action::Import],
        ),
        op(
            Method::POST,
            "/v1/event-log-requests",
            Some(json!({"target": {"type": "key", "id": missing}})),
            &[Action::CreateRequest],
        ),
        op(
            Method::GET,
            "/v1/event-log-requests",
            None,
            &[Action::ReadRequests],
        ),
        op(
            Method::GET,
            format!("/v1/event-log-requests/{missing}"),
            None,
            &[Action::ReadRequests],
        ),
        op(
            Method::POST,
            format!("/v1/event-log-requests/{missing}/approve"),
            empty.clone(),
            &[Action::DecideRequest],
        ),
        op(
            Method::POST,
            format!("/v1/event-log-requests/{missing}/reject"),
            empty.clone(),
            &[Action::DecideRequest],
        ),
        op(
            Method::POST,
            format!("/v1/event-log-requests/{missing}/cancel"),
            empty.clone(),
            &[Action::CancelRequest],
        ),
        op(
            Method::POST,
            format!("/v1/event-log-requests/{missing}/transfer"),
            Some(json!({"programming_key_id": missing})),
            &[Action::TransferRequest],
        ),
        op(
            Method::GET,
            "/v1/readout-jobs",
            None,
            &[Action::ReadAllJobs, Action::ReadOwnJobs],
        ),
        op(
            Method::GET,
            format!("/v1/keys/{key}/event-log"),
            None,
            &[Action::ReadEventData],
        ),
        op(
            Method::GET,
            format!("/v1/keys/{key}/event-log/export?format=csv"),
            None,
            &[Action::ReadEventData],
        ),
        op(
            Method::GET,
            format!("/v1/cylinders/{cylinder}/event-log"),
            None,
            &[Action::ReadEventData],
        ),
        op(
            Method::GET,
            "/v1/history",
            None,
            &[Action::ReadHistory, Action::ReadRequestHistory],
        ),
        op(
            Method::GET,
            "/v1/history/verify",
            None,
            &[Action::VerifyHistory],
        ),
        op(Method::GET, "/v1/tenants", None, &[Action::ManageTenants]),
    ];
    let roles = [
        Role::SuperAdministrator,
        Role::SystemAdministrator,
        Role::Approver,
        Role::CylinderProgrammer,
        Role::Receptionist,
        Role::Auditor,
    ];
    let mut checked = 0;
    for role in roles {
        let marking = format!("R-{}", role.as_str());
        let (_, token) = app
            .person(
                &tenant,
                &marking,
                &[role.as_str()],
                Some(&format!("{}@roles.example", role.as_str())),
            )
            .await;
        for operation in &operations {
            let allowed = operation
                .actions
                .iter()
                .any(|a| a.permitted_roles().contains(&role));
            let reply = app
                .call(
                    operation.method.clone(),
                    &operation.path,
                    Some(&token),
                    operation.body.clone(),
                )
                .await;
            if allowed {
                assert_ne!(
                    reply.status, 403,
                    "{role} may {} {}: {:#}",
                    operation.method, operation.path, reply.body
                );
            } else {
                assert_eq!(
                    (reply.status.as_u16(), reply.code()),
                    (403, "forbidden"),
                    "{role} may not {} {}",
                    operation.method,
                    operation.path
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, roles.len() * operations.len());
}

on_both_databases!(each_role_reaches_exactly_its_operations);
