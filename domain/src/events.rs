//! Rules for event data that devices report.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::error::{Error, ErrorCode, FieldError, Result};

/// How far after the upload an event may lie: device clocks drift, but not by
/// more than a day.
pub const MAX_EVENT_LEAD_HOURS: i64 = 24;

/// The earliest time an event may have occurred: no device of these systems
/// recorded anything before 2000.
pub fn earliest_event() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether an event that occurred at `at` can be believed in an upload at `now`.
pub fn event_time_plausible(at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    at >= earliest_event() && at <= now + Duration::hours(MAX_EVENT_LEAD_HOURS)
}

/// Checks the times of a batch uploaded at `now`, the *i*-th event's at
/// `/events/{i}/occurred_at`: 422 `event_time_out_of_range` naming every
/// offending event.
pub fn check_event_times(
    times: impl IntoIterator<Item = DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let errors: Vec<FieldError> = times
        .into_iter()
        .enumerate()
        .filter(|(_, at)| !event_time_plausible(*at, now))
        .map(|(i, at)| FieldError {
            pointer: format!("/events/{i}/occurred_at"),
            code: ErrorCode::EventTimeOutOfRange.as_str().to_owned(),
            message: format!(
                "{} is before 2000-01-01T00:00:00Z or more than {MAX_EVENT_LEAD_HOURS} hours after the upload",
                at.to_rfc3339()
            ),
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    Err(Error::Fields {
        code: ErrorCode::EventTimeOutOfRange,
        detail: format!(
            "{} event(s) occurred outside 2000-01-01 to {MAX_EVENT_LEAD_HOURS} hours after the upload; nothing was stored",
            errors.len()
        ),
        errors,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn events_lie_between_2000_and_a_day_after_the_upload() {
        let now: DateTime<Utc> = "2025-06-01T12:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        for ok in [
            "2000-01-01T00:00:00Z",
            "2025-06-02T12:00:00Z",
            "2024-01-01T00:00:00Z",
        ] {
            assert!(event_time_plausible(at(ok), now), "{ok}");
        }
        for bad in ["1999-12-31T23:59:59Z", "2025-06-02T12:00:01Z"] {
            assert!(!event_time_plausible(at(bad), now), "{bad}");
        }
        let Err(Error::Fields { code, errors, .. }) = check_event_times(
            [
                at("2024-01-01T00:00:00Z"),
                at("1999-12-31T00:00:00Z"),
                at("2030-01-01T00:00:00Z"),
            ],
            now,
        ) else {
            panic!("refused");
        };
        assert_eq!(code, ErrorCode::EventTimeOutOfRange);
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/events/1/occurred_at", "/events/2/occurred_at"]);
        assert!(check_event_times([at("2024-01-01T00:00:00Z")], now).is_ok());
    }
}
