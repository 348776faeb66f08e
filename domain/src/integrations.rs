//! What integrations learn of a change (SPEC §6 "For integrations"): the
//! webhook event types, derived from the history entries every change records,
//! so that no change can forget to announce itself.

use uuid::Uuid;

use crate::history::{Action, NewEntry};

/// One event for webhook endpoints: its type and the object it names. It never
/// carries event data, like the e-mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    pub event_type: String,
    pub subject_type: &'static str,
    pub subject_id: Option<Uuid>,
}

/// The request states an integration is told about.
const REQUEST_OUTCOMES: [&str; 6] = [
    "approved",
    "rejected",
    "cancelled",
    "expired",
    "completed",
    "failed",
];

/// The webhook event a history entry stands for, if integrations care.
pub fn webhook_event_of(entry: &NewEntry) -> Option<WebhookEvent> {
    let event_type = match entry.action {
        Action::RequestCreated => "request.created".to_owned(),
        Action::RequestDecided => "request.decided".to_owned(),
        Action::RequestStatusChanged => {
            let to = entry.details.get("to")?.as_str()?;
            REQUEST_OUTCOMES
                .contains(&to)
                .then(|| format!("request.{to}"))?
        }
        Action::JobCreated | Action::JobClaimed | Action::JobStatusChanged => {
            "job.status_changed".to_owned()
        }
        Action::ProgrammingKeyApproverChanged => "approver.changed".to_owned(),
        _ => return None,
    };
    Some(WebhookEvent {
        event_type,
        subject_type: entry.subject_type,
        subject_id: entry.subject_id,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::history::names;

    fn entry(action: Action, details: serde_json::Value) -> NewEntry {
        NewEntry::new(action, names::REQUEST, Uuid::nil(), details)
    }

    #[test]
    fn every_request_outcome_is_an_event_of_its_own() {
        for (to, expected) in [
            ("approved", "request.approved"),
            ("rejected", "request.rejected"),
            ("cancelled", "request.cancelled"),
            ("expired", "request.expired"),
            ("completed", "request.completed"),
            ("failed", "request.failed"),
        ] {
            let event = webhook_event_of(&entry(
                Action::RequestStatusChanged,
                json!({"from": "pending_approval", "to": to}),
            ));
            assert_eq!(event.map(|e| e.event_type).as_deref(), Some(expected));
        }
    }

    #[test]
    fn reads_of_event_data_and_logins_are_not_announced() {
        for action in [
            Action::EventDataRead,
            Action::EventDataExported,
            Action::Login,
        ] {
            assert_eq!(webhook_event_of(&entry(action, json!({}))), None);
        }
        let unknown = entry(
            Action::RequestStatusChanged,
            json!({"to": "pending_approval"}),
        );
        assert_eq!(webhook_event_of(&unknown), None);
    }

    #[test]
    fn creation_and_decisions_name_the_request() {
        let id = Uuid::now_v7();
        let created = NewEntry::new(Action::RequestCreated, names::REQUEST, id, json!({}));
        let event = webhook_event_of(&created).expect("an event");
        assert_eq!(event.event_type, "request.created");
        assert_eq!(event.subject_id, Some(id));
    }
}
