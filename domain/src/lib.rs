//! Countersign's domain: the rules of the approver function and of its master
//! data, free of HTTP, SQL and I/O.

pub mod approver_changes;
pub mod auth;
pub mod directory;
pub mod error;
pub mod events;
pub mod export;
pub mod history;
pub mod integrations;
pub mod names;
pub mod notification;
pub mod page;
pub mod permission;
pub mod ports;
pub mod role;
pub mod tenant;
pub mod workflow;

pub use error::{Error, ErrorCode, FieldError, Result};
