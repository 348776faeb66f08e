//! sea-orm entities: one module per table.

pub mod agents;
pub mod api_keys;
pub mod cylinders;
pub mod employees;
pub mod key_groups;
pub mod keys;
pub mod programming_keys;
pub mod refresh_tokens;
pub mod remote_devices;
pub mod revocations;
pub mod tenants;
