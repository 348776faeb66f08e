//! Countersign's adapters: the database behind the domain's ports, tokens,
//! revocation, throttling, hashing and the clock.

mod agents;
mod api_keys;
pub mod auth;
pub mod clock;
pub mod db;
pub mod demo;
mod employees;
mod entities;
mod imports;
mod inventory;
mod keys;
mod programming_keys;
pub mod revocation;
pub mod secrets;
pub mod store;
mod tenants;
pub mod throttle;
pub mod tokens;

pub use store::Store;
