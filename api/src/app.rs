//! The route table and the OpenAPI document built from it.

use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{AppExt, scope};
use utoipa_swagger_ui::SwaggerUi;

use crate::problem;
use crate::routes::{
    agent, agents, api_keys, auth, employees, event_log, health, imports, inventory, jobs, keys,
    programming_keys, requests, tenants,
};

/// Default body limit; routes that need more say so.
pub const JSON_LIMIT: usize = 64 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Countersign API",
        description = "Approver function for electronic master-key systems: nobody reads out an event log before a second, designated person has approved it. Errors are RFC 9457 problem details with a stable `code`; the catalogue is served at `/v1/error-codes`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Tokens for programming keys, API keys, agents and the operator"),
        (name = "tenants", description = "Operator: provisioning of customer domains"),
        (name = "employees"),
        (name = "programming-keys"),
        (name = "keys", description = "User keys: issue, return, automatic collection"),
        (name = "key-groups"),
        (name = "cylinders"),
        (name = "remote-devices"),
        (name = "agents", description = "On-premise device agents and their credentials"),
        (name = "api-keys", description = "Webservice credentials for integrations"),
        (name = "imports", description = "Extension import: inventory in bulk"),
        (name = "agent", description = "Device agents: work lists, leases and event uploads"),
        (name = "event-log-requests", description = "Requests to read an event log, and the approvers' decisions"),
        (name = "readout-jobs", description = "The work behind approved requests, automatic collection and desk readouts"),
        (name = "history", description = "The append-only, hash-chained record of everything that happened"),
        (name = "operations", description = "Probes and the error catalogue"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

fn v1(cfg: &mut ServiceConfig) {
    // First, since routes are tried in order and agents' calls are most of
    // the traffic; with a larger body limit for their event batches.
    cfg.service(
        scope::scope("/agent")
            .app_data(
                web::JsonConfig::default()
                    .limit(agent::AGENT_JSON_LIMIT)
                    .error_handler(problem::json_error),
            )
            .service(agent::work)
            .service(agent::key_insertion)
            .service(agent::programming_key_connection)
            .service(agent::claim)
            .service(agent::heartbeat)
            .service(agent::loaded)
            .service(agent::release)
            .service(agent::events)
            .service(agent::complete)
            .service(agent::fail),
    );
    cfg.service(crate::routes::history::list_history)
        .service(crate::routes::history::get_verify_history)
        .service(crate::routes::history::post_verify_history)
        .service(crate::routes::history::list_checkpoints)
        .service(crate::routes::history::list_signing_keys)
        .service(crate::routes::history::export_history);
    cfg.service(requests::create_request)
        .service(requests::list_requests)
        .service(requests::get_request)
        .service(requests::approve)
        .service(requests::reject)
        .service(requests::cancel)
        .service(requests::transfer)
        .service(jobs::list_jobs)
        .service(jobs::get_job)
        .service(jobs::desk_readout);
    cfg.service(auth::token)
        .service(auth::revoke)
        .service(auth::me)
        .service(auth::set_pin)
        .service(tenants::create_tenant)
        .service(tenants::list_tenants)
        .service(tenants::get_tenant)
        .service(tenants::update_tenant)
        .service(employees::create_employee)
        .service(employees::list_employees)
        .service(employees::get_employee)
        .service(employees::update_employee)
        .service(programming_keys::create_programming_key)
        .service(programming_keys::list_programming_keys)
        .service(programming_keys::get_programming_key)
        .service(programming_keys::update_programming_key)
        .service(programming_keys::issue_programming_key)
        .service(programming_keys::return_programming_key)
        .service(programming_keys::block_programming_key)
        .service(programming_keys::unblock_programming_key)
        .service(programming_keys::set_programming_key_pin)
        .service(keys::create_key)
        .service(keys::list_keys)
        .service(keys::get_key)
        .service(keys::update_key)
        .service(keys::issue_key)
        .service(keys::return_key)
        .service(keys::stop_auto_collection)
        .service(inventory::create_key_group)
        .service(inventory::list_key_groups)
        .service(inventory::get_key_group)
        .service(inventory::update_key_group)
        .service(inventory::create_cylinder)
        .service(inventory::list_cylinders)
        .service(inventory::get_cylinder)
        .service(inventory::update_cylinder)
        .service(inventory::create_remote_device)
        .service(inventory::list_remote_devices)
        .service(inventory::get_remote_device)
        .service(inventory::update_remote_device)
        .service(agents::create_agent)
        .service(agents::list_agents)
        .service(agents::get_agent)
        .service(agents::rotate_agent_secret)
        .service(agents::set_agent_devices)
        .service(api_keys::create_api_key)
        .service(api_keys::list_api_keys)
        .service(api_keys::get_api_key)
        .service(api_keys::delete_api_key)
        .service(event_log::key_event_log)
        .service(event_log::cylinder_event_log)
        .service(event_log::export_key_event_log)
        .service(event_log::export_cylinder_event_log)
        // Its own scope for its own, larger body limit.
        .service(
            scope::scope("/imports")
                .app_data(imports::json_config())
                .service(imports::import),
        );
}

/// The application and its OpenAPI document.
pub fn build() -> (
    App<
        impl ServiceFactory<
            ServiceRequest,
            Config = (),
            Response = ServiceResponse,
            Error = Error,
            InitError = (),
        >,
    >,
    utoipa::openapi::OpenApi,
) {
    let (app, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .app_data(
            web::JsonConfig::default()
                .limit(JSON_LIMIT)
                .error_handler(problem::json_error),
        )
        .app_data(web::PathConfig::default().error_handler(problem::path_error))
        .app_data(web::QueryConfig::default().error_handler(problem::query_error))
        .service(health::healthz)
        .service(health::readyz)
        .service(health::error_codes)
        .service(scope::scope("/v1").configure(v1))
        .split_for_parts();
    crate::schema::complete(&mut api);
    // `/metrics` is not here: it has a listener of its own (`server::run_metrics`).
    let app = app
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", api.clone()))
        .app_data(web::Data::new(problem::Routes::from_openapi(&api)))
        .default_service(web::to(problem::no_route));
    (app, api)
}

/// The metrics listener's only route; anything else there is a bare 404.
/// Not in the OpenAPI document: it is for Prometheus, not API clients.
pub fn metrics_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(crate::metrics::scrape));
}

/// The OpenAPI document as committed under `openapi/`.
pub fn openapi_json() -> String {
    let (_, api) = build();
    api.to_pretty_json().unwrap_or_default()
}
