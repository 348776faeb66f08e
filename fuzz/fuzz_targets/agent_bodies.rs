//! The JSON request bodies of the agent API on arbitrary bytes: each body type
//! is parsed as the API's extractor parses it and, when it parses, validated.
//! Neither step may panic, and what validates keeps the documented bounds.

#![no_main]

use countersign_api::routes::agent::{
    ClaimIn, EventsIn, FailIn, KeyInsertionIn, LeaseIn, MAX_EVENTS, ProgrammingKeyConnectionIn,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use validator::Validate;

/// Parses and validates `data` as a `T`; the value when it is acceptable.
fn accept<T: DeserializeOwned + Validate>(data: &[u8]) -> Option<T> {
    let body: T = serde_json::from_slice(data).ok()?;
    body.validate().ok()?;
    Some(body)
}

fn marking_ok(marking: &str) -> bool {
    (1..=64).contains(&marking.chars().count())
}

fuzz_target!(|data: &[u8]| {
    if let Some(body) = accept::<KeyInsertionIn>(data) {
        assert!(marking_ok(&body.key_marking));
    }
    if let Some(body) = accept::<ProgrammingKeyConnectionIn>(data) {
        assert!(marking_ok(&body.programming_key_marking));
    }
    let _ = accept::<ClaimIn>(data);
    let _ = accept::<LeaseIn>(data);
    if let Some(body) = accept::<EventsIn>(data) {
        assert!(body.events.len() <= MAX_EVENTS);
    }
    if let Some(body) = accept::<FailIn>(data) {
        assert!((1..=2000).contains(&body.reason.chars().count()));
    }
});
