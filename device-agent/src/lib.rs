//! The Countersign device agent: serial protocol, device simulator, durable
//! spool, API client and the loop that ties them together.

pub mod agent;
pub mod client;
pub mod config;
pub mod link;
pub mod protocol;
pub mod pty;
pub mod simulator;
pub mod spool;
