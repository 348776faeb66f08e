//! End-to-end tests: a real server over HTTP, each scenario on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used)]

mod agent_api;
mod agent_faults;
mod agent_processes;
mod approver_changes;
mod auth;
mod checkpoints;
mod directory;
mod event_data;
mod event_guards;
mod faults;
mod history;
mod history_sweep;
mod isolation;
mod mail;
mod observability;
mod openapi;
mod roles;
mod row_security;
mod tamper;
mod tenants;
mod throttling;
mod token_attacks;
mod workflow;
