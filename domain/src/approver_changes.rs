//! Approver credentials change hands only in the open (SPEC §2). An approver
//! change is recorded, announced to every approver and auditor and to the
//! holder's previous and new address, and puts the key on hold: it may log in
//! and read, but cannot decide before the tenant's `approver_hold_hours` have
//! passed. A super administrator who redirects an approver's e-mail, resets
//! its PIN or issues an approver key to a person of their choosing therefore
//! cannot decide anything before everyone concerned has been told.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::directory::{KeyStatus, ProgrammingKey};
use crate::error::{Error, Result};
use crate::role::Role;

/// The ways an approver credential can change hands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApproverChange {
    /// A key with the approver role was issued to an employee.
    Issued,
    /// An issued key was granted the approver role.
    RoleGranted,
    /// The e-mail address of an employee holding an approver key changed.
    EmailChanged,
    /// An approver key was unblocked.
    Unblocked,
    /// An approver key's validity changed.
    ValidityChanged,
    /// Someone other than its holder set an approver key's PIN.
    PinSet,
}

impl ApproverChange {
    pub const ALL: [ApproverChange; 6] = [
        Self::Issued,
        Self::RoleGranted,
        Self::EmailChanged,
        Self::Unblocked,
        Self::ValidityChanged,
        Self::PinSet,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "issued",
            Self::RoleGranted => "role_granted",
            Self::EmailChanged => "email_changed",
            Self::Unblocked => "unblocked",
            Self::ValidityChanged => "validity_changed",
            Self::PinSet => "pin_set",
        }
    }
}

impl ProgrammingKey {
    pub fn is_approver(&self) -> bool {
        self.roles.contains(Role::Approver)
    }

    /// The approver change that turned `before` into `self`, if any. Only a
    /// key that is an issued approver key afterwards can have changed hands;
    /// the holder's e-mail and the PIN are not part of the key and are named
    /// by their own use cases.
    pub fn approver_change_from(&self, before: &ProgrammingKey) -> Option<ApproverChange> {
        if !self.is_approver() || self.status != KeyStatus::Issued {
            return None;
        }
        if before.status != KeyStatus::Issued || before.employee_id != self.employee_id {
            Some(ApproverChange::Issued)
        } else if !before.is_approver() {
            Some(ApproverChange::RoleGranted)
        } else if before.blocked && !self.blocked {
            Some(ApproverChange::Unblocked)
        } else if (before.valid_from, before.valid_until) != (self.valid_from, self.valid_until) {
            Some(ApproverChange::ValidityChanged)
        } else {
            None
        }
    }

    /// Puts the key on hold for `hours` from `now`; a hold that already lasts
    /// longer is kept. Returns the end of the hold, if one is running.
    pub fn put_on_hold(&mut self, now: DateTime<Utc>, hours: u16) -> Option<DateTime<Utc>> {
        let until = now + Duration::hours(i64::from(hours));
        self.hold_until = self.hold_until.max(Some(until));
        self.on_hold(now)
    }

    /// The end of the hold, while it runs.
    pub fn on_hold(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.hold_until.filter(|until| *until > now)
    }

    /// A key on hold may log in and read, but not decide.
    pub fn check_may_decide(&self, now: DateTime<Utc>) -> Result<()> {
        match self.on_hold(now) {
            Some(until) => Err(Error::OnHold { until }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::directory::Employee;
    use uuid::Uuid;

    fn holder() -> Employee {
        Employee {
            id: Uuid::new_v4(),
            name: "Berta Council".into(),
            email: Some("berta@example.org".into()),
            created_at: Utc::now(),
        }
    }

    fn issued_approver() -> ProgrammingKey {
        let mut key = ProgrammingKey {
            id: Uuid::new_v4(),
            marking: "PK-2".into(),
            name: "Key".into(),
            status: KeyStatus::InStock,
            blocked: false,
            valid_from: None,
            valid_until: None,
            roles: [Role::Approver].into_iter().collect(),
            employee_id: None,
            hold_until: None,
            created_at: Utc::now(),
        };
        key.issue(&holder()).expect("issue");
        key
    }

    #[test]
    fn every_road_to_an_approver_credential_is_an_approver_change() {
        let issued = issued_approver();
        let mut in_stock = issued.clone();
        in_stock.give_back().expect("return");
        assert_eq!(
            issued.approver_change_from(&in_stock),
            Some(ApproverChange::Issued)
        );

        let mut reissued = issued.clone();
        reissued.employee_id = Some(Uuid::new_v4());
        assert_eq!(
            reissued.approver_change_from(&issued),
            Some(ApproverChange::Issued)
        );

        let mut without_role = issued.clone();
        without_role.roles = [Role::Auditor].into_iter().collect();
        assert_eq!(
            issued.approver_change_from(&without_role),
            Some(ApproverChange::RoleGranted)
        );

        let mut blocked = issued.clone();
        blocked.blocked = true;
        assert_eq!(
            issued.approver_change_from(&blocked),
            Some(ApproverChange::Unblocked)
        );
        assert_eq!(blocked.approver_change_from(&issued), None, "blocking");

        let mut prolonged = issued.clone();
        prolonged.valid_until = Some(Utc::now() + Duration::days(400));
        assert_eq!(
            prolonged.approver_change_from(&issued),
            Some(ApproverChange::ValidityChanged)
        );

        let mut renamed = issued.clone();
        renamed.name = "Another name".into();
        assert_eq!(renamed.approver_change_from(&issued), None);
    }

    #[test]
    fn keys_without_the_role_or_not_issued_change_no_approver_credential() {
        let issued = issued_approver();
        let mut auditor = issued.clone();
        auditor.roles = [Role::Auditor].into_iter().collect();
        let mut stock_auditor = auditor.clone();
        stock_auditor.give_back().expect("return");
        assert_eq!(auditor.approver_change_from(&stock_auditor), None);

        let mut returned = issued.clone();
        returned.give_back().expect("return");
        assert_eq!(returned.approver_change_from(&issued), None);
    }

    #[test]
    fn a_key_on_hold_cannot_decide_until_the_hold_has_passed() {
        let now = Utc::now();
        let mut key = issued_approver();
        assert!(key.check_may_decide(now).is_ok());
        let until = key.put_on_hold(now, 24).expect("on hold");
        assert_eq!(until, now + Duration::hours(24));
        let refused = key.check_may_decide(now + Duration::hours(23));
        assert_eq!(
            refused.as_ref().err().map(Error::code),
            Some(ErrorCode::ApproverOnHold)
        );
        assert!(matches!(refused, Err(Error::OnHold { until: u }) if u == until));
        assert!(key.check_may_decide(until).is_ok());
    }

    #[test]
    fn a_shorter_hold_never_shortens_a_running_one_and_zero_hours_hold_nothing() {
        let now = Utc::now();
        let mut key = issued_approver();
        assert_eq!(key.put_on_hold(now, 0), None);
        let long = key.put_on_hold(now, 48).expect("on hold");
        assert_eq!(key.put_on_hold(now + Duration::hours(1), 1), Some(long));
    }
}
