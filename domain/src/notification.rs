//! E-mails Countersign sends, as data. They never carry event data.

mod checkpoint;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use uuid::Uuid;

use crate::approver_changes::ApproverChange;
use crate::history::Checkpoint;
use crate::tenant::Locale;
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
    RequestDecided {
        request: RequestSummary,
        verdict: Verdict,
        approver: String,
        comment: Option<String>,
    },
    /// To the requester: the system ended the request (expired, failed, cancelled with a reason).
    RequestEnded {
        request: RequestSummary,
        status: RequestStatus,
        reason: Option<String>,
    },
    /// To the holder of the programming key that received a cylinder job.
    JobTransferred {
        request: RequestSummary,
        programming_key_marking: String,
    },
    /// To every approver and auditor.
    ApproverRoleChanged {
        programming_key_marking: String,
        holder: Option<String>,
        granted: bool,
    },
    /// To every approver and auditor and to the holder's previous and new
    /// address: an approver credential changed hands, and who did it.
    ApproverChanged {
        change: ApproverChange,
        programming_key_marking: String,
        holder: Option<String>,
        changed_by: String,
        hold_until: Option<DateTime<Utc>>,
    },
    /// To the holder alone: the one-time PIN the server made for their key.
    OneTimePin {
        programming_key_marking: String,
        pin: String,
    },
    /// To every auditor, once a day with new entries: the latest checkpoint,
    /// a witness of the history kept outside the database.
    CheckpointWitness {
        tenant_name: String,
        checkpoint: Checkpoint,
    },
}

impl Notice {
    /// A mail whose body must not outlive its delivery (it carries a PIN).
    pub fn is_secret(&self) -> bool {
        matches!(self, Notice::OneTimePin { .. })
    }
}

/// A rendered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub body: String,
}

/// Renders a notice in the tenant's language, with times in its time zone and
/// links below `public_url`. Only names, markings and comments go into a mail,
/// never event data.
pub fn render(notice: &Notice, locale: Locale, tz: Tz, public_url: &str) -> Mail {
    let words = Words::of(locale);
    let base = public_url.trim_end_matches('/');
    let mut body = Body::new(words);
    let subject = match notice {
        Notice::ApprovalRequested { request } => {
            let target = words.target(request);
            body.line(match locale {
                Locale::De => format!(
                    "{} bittet darum, den Ereignisspeicher von {target} auszulesen. Bitte prüfen Sie den Antrag und genehmigen Sie ihn oder lehnen Sie ihn ab.",
                    request.requested_by
                ),
                Locale::En => format!(
                    "{} asks to read out the event log of {target}. Please review the request and approve or reject it.",
                    request.requested_by
                ),
            });
            body.request(request, tz);
            body.link(&format!("{base}/requests/{}", request.id));
            match locale {
                Locale::De => format!("Freigabe erbeten: Ereignisspeicher von {target}"),
                Locale::En => format!("Approval requested: event log of {target}"),
            }
        }
        Notice::RequestDecided {
            request,
            verdict,
            approver,
            comment,
        } => {
            let target = words.target(request);
            body.line(match (locale, verdict) {
                (Locale::De, Verdict::Approve) => format!("{approver} hat Ihren Antrag genehmigt, den Ereignisspeicher von {target} auszulesen."),
                (Locale::De, Verdict::Reject) => format!("{approver} hat Ihren Antrag abgelehnt, den Ereignisspeicher von {target} auszulesen."),
                (Locale::En, Verdict::Approve) => format!("{approver} approved your request to read out the event log of {target}."),
                (Locale::En, Verdict::Reject) => format!("{approver} rejected your request to read out the event log of {target}."),
            });
            if let Some(comment) = comment {
                body.field(words.decision_comment, comment);
            }
            body.request(request, tz);
            body.link(&format!("{base}/requests/{}", request.id));
            match (locale, verdict) {
                (Locale::De, Verdict::Approve) => format!("Antrag genehmigt: {target}"),
                (Locale::De, Verdict::Reject) => format!("Antrag abgelehnt: {target}"),
                (Locale::En, Verdict::Approve) => format!("Request approved: {target}"),
                (Locale::En, Verdict::Reject) => format!("Request rejected: {target}"),
            }
        }
        Notice::RequestEnded {
            request,
            status,
            reason,
        } => {
            let target = words.target(request);
            let (subject, line) = ended(locale, *status, &target);
            body.line(line);
            if let Some(reason) = reason.as_deref().filter(|r| *r != status.as_str()) {
                body.field(words.reason, words.reason_text(reason));
            }
            body.request(request, tz);
            body.link(&format!("{base}/requests/{}", request.id));
            subject
        }
        Notice::JobTransferred {
            request,
            programming_key_marking,
        } => {
            let target = words.target(request);
            body.line(match locale {
                Locale::De => format!(
                    "Der Auftrag, den Ereignisspeicher von {target} auszulesen, wurde Ihrem Programmierschlüssel {programming_key_marking} zugewiesen. Verbinden Sie den Programmierschlüssel mit einem Programmiergerät, um den Auftrag zu laden, und besuchen Sie dann den Zylinder."
                ),
                Locale::En => format!(
                    "The job to read out the event log of {target} was assigned to your programming key {programming_key_marking}. Connect the programming key to a programming unit to load the job, then visit the cylinder."
                ),
            });
            body.request(request, tz);
            body.link(&format!("{base}/requests/{}", request.id));
            match locale {
                Locale::De => format!("Zylinderauftrag zugewiesen: {target}"),
                Locale::En => format!("Cylinder job assigned: {target}"),
            }
        }
        Notice::ApproverRoleChanged {
            programming_key_marking,
            holder,
            granted,
        } => {
            let holder = holder
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            body.line(match (locale, granted) {
                (Locale::De, true) => format!("Dem Programmierschlüssel {programming_key_marking}{holder} wurde die Rolle „Freigeber“ erteilt."),
                (Locale::De, false) => format!("Dem Programmierschlüssel {programming_key_marking}{holder} wurde die Rolle „Freigeber“ entzogen."),
                (Locale::En, true) => format!("The approver role was granted to programming key {programming_key_marking}{holder}."),
                (Locale::En, false) => format!("The approver role was removed from programming key {programming_key_marking}{holder}."),
            });
            body.link(&format!("{base}/history"));
            match (locale, granted) {
                (Locale::De, true) => format!("Freigeberrolle erteilt: {programming_key_marking}"),
                (Locale::De, false) => {
                    format!("Freigeberrolle entzogen: {programming_key_marking}")
                }
                (Locale::En, true) => format!("Approver role granted: {programming_key_marking}"),
                (Locale::En, false) => format!("Approver role removed: {programming_key_marking}"),
            }
        }
        Notice::ApproverChanged {
            change,
            programming_key_marking,
            holder,
            changed_by,
            hold_until,
        } => {
            approver_changed(
                &mut body,
                locale,
                *change,
                programming_key_marking,
                holder.as_deref(),
                changed_by,
            );
            let until =
                hold_until.map(|u| u.with_timezone(&tz).format(words.time_format).to_string());
            body.line(match (locale, until) {
                (Locale::De, Some(until)) => format!("Bis {until} kann dieser Schlüssel keine Anträge genehmigen oder ablehnen. Wenn Sie die Änderung nicht erwartet haben, wenden Sie sich bitte vorher an Ihren Betriebsrat."),
                (Locale::En, Some(until)) => format!("Until {until} this key cannot approve or reject requests. If you did not expect this change, please speak to your staff council before then."),
                (Locale::De, None) => "Wenn Sie die Änderung nicht erwartet haben, wenden Sie sich bitte an Ihren Betriebsrat.".to_owned(),
                (Locale::En, None) => "If you did not expect this change, please speak to your staff council.".to_owned(),
            });
            body.link(&format!("{base}/history"));
            match locale {
                Locale::De => {
                    format!("Freigeber geändert: Programmierschlüssel {programming_key_marking}")
                }
                Locale::En => {
                    format!("Approver changed: programming key {programming_key_marking}")
                }
            }
        }
        Notice::OneTimePin {
            programming_key_marking,
            pin,
        } => {
            body.line(match locale {
                Locale::De => format!(
                    "Für Ihren Programmierschlüssel {programming_key_marking} wurde eine neue Einmal-PIN erzeugt: {pin}\n\nMelden Sie sich damit an und wählen Sie sofort eine eigene PIN. Niemand außer Ihnen hat diese PIN gesehen. Wenn Sie das nicht erwartet haben, wenden Sie sich bitte an Ihren Betriebsrat."
                ),
                Locale::En => format!(
                    "A new one-time PIN was made for your programming key {programming_key_marking}: {pin}\n\nLog in with it and choose a PIN of your own at once. Nobody but you has seen this PIN. If you did not expect this, please speak to your staff council."
                ),
            });
            body.link(&format!("{base}/approve"));
            match locale {
                Locale::De => {
                    format!("Einmal-PIN: Programmierschlüssel {programming_key_marking}")
                }
                Locale::En => format!("One-time PIN: programming key {programming_key_marking}"),
            }
        }
        Notice::CheckpointWitness {
            tenant_name,
            checkpoint,
        } => checkpoint::render(&mut body, locale, tz, base, tenant_name, checkpoint),
    };
    let subject = subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Mail {
        subject,
        body: body.finish(),
    }
}

/// What changed, who holds the key and who made the change.
fn approver_changed(
    body: &mut Body,
    locale: Locale,
    change: ApproverChange,
    marking: &str,
    holder: Option<&str>,
    by: &str,
) {
    let what = match (locale, change) {
        (Locale::De, ApproverChange::Issued) => "wurde ausgegeben",
        (Locale::De, ApproverChange::RoleGranted) => "hat die Rolle „Freigeber“ erhalten",
        (Locale::De, ApproverChange::EmailChanged) => {
            "gehört jetzt zu einer geänderten E-Mail-Adresse"
        }
        (Locale::De, ApproverChange::Unblocked) => "wurde entsperrt",
        (Locale::De, ApproverChange::ValidityChanged) => "hat eine neue Gültigkeit",
        (Locale::De, ApproverChange::PinSet) => "hat eine von anderer Seite gesetzte Einmal-PIN",
        (Locale::En, ApproverChange::Issued) => "was issued",
        (Locale::En, ApproverChange::RoleGranted) => "was granted the approver role",
        (Locale::En, ApproverChange::EmailChanged) => "now belongs to a changed e-mail address",
        (Locale::En, ApproverChange::Unblocked) => "was unblocked",
        (Locale::En, ApproverChange::ValidityChanged) => "has a new validity",
        (Locale::En, ApproverChange::PinSet) => "has a one-time PIN set by someone else",
    };
    let holder = holder.unwrap_or("–");
    body.line(match locale {
        Locale::De => format!(
            "Der Freigeber-Programmierschlüssel {marking} {what}. Inhaber: {holder}. Geändert von: {by}."
        ),
        Locale::En => {
            format!("Approver programming key {marking} {what}. Holder: {holder}. Changed by: {by}.")
        }
    });
}

fn ended(locale: Locale, status: RequestStatus, target: &str) -> (String, String) {
    use RequestStatus as S;
    match locale {
        Locale::De => match status {
            S::Expired => (
                format!("Antrag abgelaufen: {target}"),
                format!(
                    "Ihr Antrag, den Ereignisspeicher von {target} auszulesen, ist abgelaufen."
                ),
            ),
            S::Cancelled => (
                format!("Antrag storniert: {target}"),
                format!(
                    "Ihr Antrag, den Ereignisspeicher von {target} auszulesen, wurde storniert."
                ),
            ),
            S::Failed => (
                format!("Auslesen fehlgeschlagen: {target}"),
                format!(
                    "Das Auslesen des Ereignisspeichers von {target} ist endgültig fehlgeschlagen."
                ),
            ),
            S::Completed => (
                format!("Auslesen abgeschlossen: {target}"),
                format!("Der Ereignisspeicher von {target} wurde ausgelesen."),
            ),
            S::Rejected => (
                format!("Antrag abgelehnt: {target}"),
                format!(
                    "Ihr Antrag, den Ereignisspeicher von {target} auszulesen, wurde abgelehnt."
                ),
            ),
            S::PendingApproval | S::Approved => (
                format!("Antrag geändert: {target}"),
                format!(
                    "Ihr Antrag, den Ereignisspeicher von {target} auszulesen, wurde geändert."
                ),
            ),
        },
        Locale::En => match status {
            S::Expired => (
                format!("Request expired: {target}"),
                format!("Your request to read out the event log of {target} has expired."),
            ),
            S::Cancelled => (
                format!("Request cancelled: {target}"),
                format!("Your request to read out the event log of {target} was cancelled."),
            ),
            S::Failed => (
                format!("Readout failed: {target}"),
                format!("Reading out the event log of {target} failed for good."),
            ),
            S::Completed => (
                format!("Readout completed: {target}"),
                format!("The event log of {target} was read out."),
            ),
            S::Rejected => (
                format!("Request rejected: {target}"),
                format!("Your request to read out the event log of {target} was rejected."),
            ),
            S::PendingApproval | S::Approved => (
                format!("Request updated: {target}"),
                format!("Your request to read out the event log of {target} was updated."),
            ),
        },
    }
}

/// The fixed words of one language.
#[derive(Clone, Copy)]
struct Words {
    locale: Locale,
    greeting: &'static str,
    footer: &'static str,
    key: &'static str,
    cylinder: &'static str,
    requested_by: &'static str,
    requested_at: &'static str,
    comment: &'static str,
    decision_comment: &'static str,
    reason: &'static str,
    open: &'static str,
    time_format: &'static str,
}

impl Words {
    const DE: Words = Words {
        locale: Locale::De,
        greeting: "Guten Tag,",
        footer: "Diese Nachricht wurde automatisch von Countersign versandt. Bitte antworten Sie nicht darauf.",
        key: "Schlüssel",
        cylinder: "Zylinder",
        requested_by: "Beantragt von",
        requested_at: "Beantragt am",
        comment: "Kommentar",
        decision_comment: "Kommentar zur Entscheidung",
        reason: "Grund",
        open: "Im Browser öffnen",
        time_format: "%d.%m.%Y, %H:%M %Z",
    };

    const EN: Words = Words {
        locale: Locale::En,
        greeting: "Hello,",
        footer: "This message was sent automatically by Countersign. Please do not reply to it.",
        key: "key",
        cylinder: "cylinder",
        requested_by: "Requested by",
        requested_at: "Requested at",
        comment: "Comment",
        decision_comment: "Comment on the decision",
        reason: "Reason",
        open: "Open in your browser",
        time_format: "%Y-%m-%d %H:%M %Z",
    };

    fn of(locale: Locale) -> Words {
        match locale {
            Locale::De => Self::DE,
            Locale::En => Self::EN,
        }
    }

    /// `Schlüssel K-17 (Haupteingang)`.
    fn target(&self, request: &RequestSummary) -> String {
        let kind = match request.target_type {
            TargetType::Key => self.key,
            TargetType::Cylinder => self.cylinder,
        };
        format!(
            "{kind} {} ({})",
            request.target_marking, request.target_name
        )
    }

    /// Reasons the system sets are codes; anything else a person wrote.
    fn reason_text<'a>(&self, reason: &'a str) -> &'a str {
        match (self.locale, reason) {
            (Locale::De, "target_returned") => "Der Schlüssel wurde zurückgegeben.",
            (Locale::En, "target_returned") => "The key was returned.",
            _ => reason,
        }
    }
}

/// A plain-text body: greeting, paragraphs, a block of fields, the link, the footer.
struct Body {
    words: Words,
    text: String,
}

impl Body {
    fn new(words: Words) -> Self {
        Body {
            words,
            text: format!("{}\n\n", words.greeting),
        }
    }

    fn line(&mut self, line: String) {
        self.text.push_str(&line);
        self.text.push_str("\n\n");
    }

    fn field(&mut self, label: &str, value: &str) {
        self.text.push_str(&format!("{label}: {value}\n"));
    }

    fn request(&mut self, request: &RequestSummary, tz: Tz) {
        let at = request
            .requested_at
            .with_timezone(&tz)
            .format(self.words.time_format);
        self.field(self.words.requested_by, &request.requested_by);
        self.field(self.words.requested_at, &at.to_string());
        if let Some(comment) = &request.comment {
            self.field(self.words.comment, comment);
        }
    }

    fn link(&mut self, url: &str) {
        if !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
        self.text
            .push_str(&format!("{}: {url}\n\n", self.words.open));
    }

    fn finish(mut self) -> String {
        self.text.push_str("-- \n");
        self.text.push_str(self.words.footer);
        self.text.push('\n');
        self.text
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::TimeZone;

    use super::*;

    const BASE: &str = "https://cs.example/";

    fn request() -> RequestSummary {
        RequestSummary {
            id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            target_type: TargetType::Key,
            target_marking: "K-17".into(),
            target_name: "Schlüssel Müller".into(),
            requested_by: "Jürgen Größ".into(),
            // 12:30 UTC in January: 13:30 CET in Berlin.
            requested_at: Utc.with_ymd_and_hms(2025, 1, 15, 12, 30, 0).unwrap(),
            comment: Some("Bitte prüfen, ob die Tür äußerst oft geöffnet wurde".into()),
        }
    }

    fn every_notice() -> Vec<Notice> {
        let cylinder = RequestSummary {
            target_type: TargetType::Cylinder,
            target_marking: "Z-3".into(),
            target_name: "Haupteingang".into(),
            comment: None,
            ..request()
        };
        let mut notices = vec![
            Notice::ApprovalRequested { request: request() },
            Notice::RequestDecided {
                request: request(),
                verdict: Verdict::Approve,
                approver: "Petra Prüfer".into(),
                comment: Some("ok".into()),
            },
            Notice::RequestDecided {
                request: request(),
                verdict: Verdict::Reject,
                approver: "Petra Prüfer".into(),
                comment: None,
            },
            Notice::JobTransferred {
                request: cylinder,
                programming_key_marking: "PK-9".into(),
            },
            Notice::ApproverRoleChanged {
                programming_key_marking: "PK-2".into(),
                holder: Some("Petra Prüfer".into()),
                granted: true,
            },
            Notice::ApproverRoleChanged {
                programming_key_marking: "PK-2".into(),
                holder: None,
                granted: false,
            },
            Notice::OneTimePin {
                programming_key_marking: "PK-2".into(),
                pin: "48213907".into(),
            },
            Notice::CheckpointWitness {
                tenant_name: "Stadtwerke Süd".into(),
                checkpoint: checkpoint::tests::example(),
            },
        ];
        for change in ApproverChange::ALL {
            notices.push(Notice::ApproverChanged {
                change,
                programming_key_marking: "PK-2".into(),
                holder: Some("Berta Council".into()),
                changed_by: "Adam Admin".into(),
                hold_until: Some(Utc.with_ymd_and_hms(2025, 1, 16, 12, 30, 0).unwrap()),
            });
        }
        for &status in RequestStatus::ALL {
            notices.push(Notice::RequestEnded {
                request: request(),
                status,
                reason: Some("target_returned".into()),
            });
        }
        notices
    }

    fn berlin() -> Tz {
        chrono_tz::Europe::Berlin
    }

    #[test]
    fn every_notice_renders_differently_in_both_languages() {
        for notice in every_notice() {
            let de = render(&notice, Locale::De, berlin(), BASE);
            let en = render(&notice, Locale::En, berlin(), BASE);
            for mail in [&de, &en] {
                assert!(
                    !mail.subject.is_empty() && !mail.subject.contains('\n'),
                    "{notice:?}: {mail:?}"
                );
                assert!(
                    mail.body.contains("https://cs.example"),
                    "{notice:?}: {mail:?}"
                );
                assert!(!mail.body.contains("cs.example//"), "{notice:?}: {mail:?}");
                assert!(
                    !mail.subject.contains("Notice") && !mail.subject.contains('{'),
                    "{notice:?}: {mail:?}"
                );
            }
            assert_ne!(de.subject, en.subject, "{notice:?}");
            assert!(de.body.starts_with("Guten Tag,"), "{de:?}");
            assert!(en.body.starts_with("Hello,"), "{en:?}");
        }
    }

    #[test]
    fn subjects_name_what_happened() {
        let cases = [
            (
                Notice::ApprovalRequested { request: request() },
                "Freigabe erbeten: Ereignisspeicher von Schlüssel K-17 (Schlüssel Müller)",
                "Approval requested: event log of key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::RequestDecided {
                    request: request(),
                    verdict: Verdict::Approve,
                    approver: "P".into(),
                    comment: None,
                },
                "Antrag genehmigt: Schlüssel K-17 (Schlüssel Müller)",
                "Request approved: key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::RequestDecided {
                    request: request(),
                    verdict: Verdict::Reject,
                    approver: "P".into(),
                    comment: None,
                },
                "Antrag abgelehnt: Schlüssel K-17 (Schlüssel Müller)",
                "Request rejected: key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::RequestEnded {
                    request: request(),
                    status: RequestStatus::Expired,
                    reason: Some("expired".into()),
                },
                "Antrag abgelaufen: Schlüssel K-17 (Schlüssel Müller)",
                "Request expired: key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::RequestEnded {
                    request: request(),
                    status: RequestStatus::Cancelled,
                    reason: None,
                },
                "Antrag storniert: Schlüssel K-17 (Schlüssel Müller)",
                "Request cancelled: key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::RequestEnded {
                    request: request(),
                    status: RequestStatus::Failed,
                    reason: None,
                },
                "Auslesen fehlgeschlagen: Schlüssel K-17 (Schlüssel Müller)",
                "Readout failed: key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::JobTransferred {
                    request: request(),
                    programming_key_marking: "PK-9".into(),
                },
                "Zylinderauftrag zugewiesen: Schlüssel K-17 (Schlüssel Müller)",
                "Cylinder job assigned: key K-17 (Schlüssel Müller)",
            ),
            (
                Notice::ApproverRoleChanged {
                    programming_key_marking: "PK-2".into(),
                    holder: None,
                    granted: true,
                },
                "Freigeberrolle erteilt: PK-2",
                "Approver role granted: PK-2",
            ),
            (
                Notice::ApproverRoleChanged {
                    programming_key_marking: "PK-2".into(),
                    holder: None,
                    granted: false,
                },
                "Freigeberrolle entzogen: PK-2",
                "Approver role removed: PK-2",
            ),
            (
                Notice::OneTimePin {
                    programming_key_marking: "PK-2".into(),
                    pin: "48213907".into(),
                },
                "Einmal-PIN: Programmierschlüssel PK-2",
                "One-time PIN: programming key PK-2",
            ),
            (
                Notice::ApproverChanged {
                    change: ApproverChange::EmailChanged,
                    programming_key_marking: "PK-2".into(),
                    holder: None,
                    changed_by: "Adam Admin".into(),
                    hold_until: None,
                },
                "Freigeber geändert: Programmierschlüssel PK-2",
                "Approver changed: programming key PK-2",
            ),
        ];
        for (notice, de, en) in cases {
            assert_eq!(render(&notice, Locale::De, berlin(), BASE).subject, de);
            assert_eq!(render(&notice, Locale::En, berlin(), BASE).subject, en);
        }
    }

    #[test]
    fn request_mails_link_to_the_request_below_the_public_url() {
        let mail = render(
            &Notice::ApprovalRequested { request: request() },
            Locale::En,
            berlin(),
            "https://cs.example/base/",
        );
        assert!(
            mail.body.contains(&format!(
                "https://cs.example/base/requests/{}\n",
                request().id
            )),
            "{}",
            mail.body
        );
        let mail = render(
            &Notice::OneTimePin {
                programming_key_marking: "PK-2".into(),
                pin: "48213907".into(),
            },
            Locale::De,
            berlin(),
            "https://cs.example",
        );
        assert!(
            mail.body
                .contains("Im Browser öffnen: https://cs.example/approve\n"),
            "{}",
            mail.body
        );
    }

    #[test]
    fn an_approver_change_names_who_made_it_and_when_the_hold_ends() {
        let notice = Notice::ApproverChanged {
            change: ApproverChange::PinSet,
            programming_key_marking: "PK-2".into(),
            holder: Some("Berta Council".into()),
            changed_by: "Adam Admin".into(),
            hold_until: Some(Utc.with_ymd_and_hms(2025, 1, 16, 12, 30, 0).unwrap()),
        };
        let en = render(&notice, Locale::En, berlin(), BASE).body;
        assert!(en.contains("Changed by: Adam Admin."), "{en}");
        assert!(en.contains("Holder: Berta Council."), "{en}");
        assert!(en.contains("Until 2025-01-16 13:30 CET"), "{en}");
        let de = render(&notice, Locale::De, berlin(), BASE).body;
        assert!(de.contains("Bis 16.01.2025, 13:30 CET"), "{de}");
        assert!(!notice.is_secret());
        let pin = Notice::OneTimePin {
            programming_key_marking: "PK-2".into(),
            pin: "48213907".into(),
        };
        assert!(pin.is_secret());
        assert!(
            render(&pin, Locale::En, berlin(), BASE)
                .body
                .contains("48213907")
        );
    }

    #[test]
    fn times_are_local_with_the_zone_abbreviation() {
        let notice = Notice::ApprovalRequested { request: request() };
        let de = render(&notice, Locale::De, berlin(), BASE);
        assert!(
            de.body.contains("Beantragt am: 15.01.2025, 13:30 CET"),
            "{}",
            de.body
        );
        let en = render(&notice, Locale::En, chrono_tz::America::New_York, BASE);
        assert!(
            en.body.contains("Requested at: 2025-01-15 07:30 EST"),
            "{}",
            en.body
        );
        let summer = RequestSummary {
            requested_at: Utc.with_ymd_and_hms(2025, 7, 1, 22, 15, 0).unwrap(),
            ..request()
        };
        let de = render(
            &Notice::ApprovalRequested { request: summer },
            Locale::De,
            berlin(),
            BASE,
        );
        assert!(
            de.body.contains("Beantragt am: 02.07.2025, 00:15 CEST"),
            "{}",
            de.body
        );
    }

    #[test]
    fn german_umlauts_survive() {
        let mail = render(
            &Notice::ApprovalRequested { request: request() },
            Locale::De,
            berlin(),
            BASE,
        );
        for text in [
            "Jürgen Größ bittet darum",
            "prüfen",
            "äußerst oft geöffnet",
            "Schlüssel Müller",
            "Im Browser öffnen",
        ] {
            assert!(mail.body.contains(text), "{text} missing in {}", mail.body);
        }
        assert!(mail.subject.contains("Schlüssel Müller"));
    }

    #[test]
    fn comments_and_reasons_appear_translated_where_they_are_codes() {
        let decided = Notice::RequestDecided {
            request: request(),
            verdict: Verdict::Reject,
            approver: "Petra Prüfer".into(),
            comment: Some("nicht begründet".into()),
        };
        let mail = render(&decided, Locale::De, berlin(), BASE);
        assert!(
            mail.body
                .contains("Petra Prüfer hat Ihren Antrag abgelehnt"),
            "{}",
            mail.body
        );
        assert!(
            mail.body
                .contains("Kommentar zur Entscheidung: nicht begründet"),
            "{}",
            mail.body
        );
        let returned = Notice::RequestEnded {
            request: request(),
            status: RequestStatus::Cancelled,
            reason: Some("target_returned".into()),
        };
        assert!(
            render(&returned, Locale::De, berlin(), BASE)
                .body
                .contains("Grund: Der Schlüssel wurde zurückgegeben.")
        );
        assert!(
            render(&returned, Locale::En, berlin(), BASE)
                .body
                .contains("Reason: The key was returned.")
        );
        let expired = Notice::RequestEnded {
            request: request(),
            status: RequestStatus::Expired,
            reason: Some("expired".into()),
        };
        assert!(
            !render(&expired, Locale::En, berlin(), BASE)
                .body
                .contains("Reason:")
        );
    }

    #[test]
    fn line_breaks_in_names_cannot_reach_the_subject() {
        let sneaky = RequestSummary {
            target_name: "Tür\r\nBcc: x@evil.example".into(),
            ..request()
        };
        let mail = render(
            &Notice::ApprovalRequested { request: sneaky },
            Locale::En,
            berlin(),
            BASE,
        );
        assert!(
            !mail.subject.contains('\n') && !mail.subject.contains('\r'),
            "{:?}",
            mail.subject
        );
    }
}
