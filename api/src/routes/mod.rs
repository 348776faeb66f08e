//! One module per resource; each handler names its permission.

pub mod agent;
pub mod agents;
pub mod api_keys;
pub mod auth;
pub mod employees;
pub mod event_log;
pub mod health;
pub mod history;
pub mod imports;
pub mod integer;
pub mod inventory;
pub mod jobs;
pub mod keys;
pub mod programming_keys;
pub mod requests;
pub mod tenants;
