//! Countersign's HTTP API: routes, extractors, problem details and OpenAPI.
//! It talks to the domain's ports only; `server` wires the adapters.

pub mod app;
pub mod client_address;
pub mod config;
pub mod csv_table;
pub mod extract;
pub mod hardening;
pub mod metrics;
pub mod offline;
pub mod pagination;
pub mod problem;
pub mod routes;
mod schema;
pub mod server;
pub mod state;
pub mod telemetry;
pub mod workers;
