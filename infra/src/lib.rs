//! Countersign's adapters: the database behind the domain's ports, tokens,
//! revocation, throttling, hashing and the clock.

mod agent_work;
mod agents;
mod api_keys;
mod approver_changes;
pub mod auth;
mod change;
pub mod clock;
pub mod db;
pub mod demo;
mod employees;
mod entities;
mod events;
pub mod history;
mod imports;
mod inventory;
mod jobs;
mod keys;
pub mod mail;
pub mod metrics;
mod programming_keys;
mod requests;
pub mod revocation;
pub mod secrets;
pub mod signal;
pub mod signing;
pub mod store;
mod sweeper;
mod tenants;
pub mod throttle;
pub mod tokens;
mod webhooks;

pub use store::Store;
