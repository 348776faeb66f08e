//! sea-orm entities: one module per table.

pub mod agents;
pub mod api_keys;
pub mod checkpoint_mails;
pub mod cylinders;
pub mod employees;
pub mod event_log_requests;
pub mod events;
pub mod history_entries;
pub mod history_heads;
pub mod history_signatures;
pub mod key_groups;
pub mod keys;
pub mod mail_outbox;
pub mod programming_keys;
pub mod readout_jobs;
pub mod refresh_tokens;
pub mod remote_devices;
pub mod request_decisions;
pub mod revocations;
pub mod tenants;
