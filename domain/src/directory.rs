//! Master data and inventory: employees, programming keys, user keys, key groups,
//! cylinders, remote devices, agents and webservice credentials, with their rules.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, ErrorCode, Result};
use crate::role::{Role, RoleSet};
use crate::tenant::check_name;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Employee {
    pub fn validate(name: &str, email: Option<&str>) -> Result<()> {
        check_name("name", name)?;
        if let Some(email) = email {
            check_email(email)?;
        }
        Ok(())
    }

    /// Changes name and e-mail. `holds_approver_key`: the employee holds an
    /// issued programming key with the approver role, which needs an e-mail address.
    pub fn change(
        &mut self,
        name: Option<String>,
        email: Option<Option<String>>,
        holds_approver_key: bool,
    ) -> Result<()> {
        let name = name.unwrap_or_else(|| self.name.clone());
        let email = email.unwrap_or_else(|| self.email.clone());
        Self::validate(&name, email.as_deref())?;
        if email.is_none() && holds_approver_key {
            return Err(Error::rule(
                ErrorCode::ApproverRequiresEmail,
                "this employee holds a programming key with the approver role and needs an e-mail address",
            ));
        }
        self.name = name;
        self.email = email;
        Ok(())
    }
}

pub fn check_email(email: &str) -> Result<()> {
    let mut parts = email.splitn(2, '@');
    let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let ok = email.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{email}` is not an e-mail address"
        )))
    }
}

/// Markings identify physical objects within a tenant: 1–64 printable characters.
pub fn check_marking(marking: &str) -> Result<()> {
    let len = marking.chars().count();
    if len == 0 || len > 64 || marking.trim() != marking || marking.chars().any(char::is_control) {
        return Err(Error::invalid(
            "marking must be 1–64 printable characters without surrounding spaces",
        ));
    }
    Ok(())
}

/// PINs are 4 to 12 digits.
pub fn check_pin(pin: &str) -> Result<()> {
    if (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::invalid("a PIN is 4 to 12 digits"))
    }
}

crate::named_enum! {
    /// Where a physical key is: shared by programming keys and user keys.
    pub enum KeyStatus {
        InStock,
        Issued,
        Returned,
    }
}

impl KeyStatus {
    fn issue(self, what: &str) -> Result<Self> {
        match self {
            KeyStatus::InStock | KeyStatus::Returned => Ok(KeyStatus::Issued),
            KeyStatus::Issued => Err(Error::rule(
                ErrorCode::InvalidStateTransition,
                format!("the {what} is already issued; return it first"),
            )),
        }
    }

    fn give_back(self, what: &str) -> Result<Self> {
        match self {
            KeyStatus::Issued => Ok(KeyStatus::Returned),
            _ => Err(Error::rule(
                ErrorCode::InvalidStateTransition,
                format!("the {what} is not issued"),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgrammingKey {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub status: KeyStatus,
    pub blocked: bool,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    pub roles: RoleSet,
    pub employee_id: Option<Uuid>,
    /// Until when an approver change keeps this key from deciding (SPEC §2).
    pub hold_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Why a programming key cannot log in; never told to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefusal {
    NotIssued,
    Blocked,
    NotYetValid,
    Expired,
}

/// What a role change means for the approvers and auditors to be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApproverRoleChange {
    None,
    Granted,
    Removed,
}

impl ProgrammingKey {
    pub fn check_validity_window(
        valid_from: Option<DateTime<Utc>>,
        valid_until: Option<DateTime<Utc>>,
    ) -> Result<()> {
        match (valid_from, valid_until) {
            (Some(from), Some(until)) if from >= until => {
                Err(Error::invalid("valid_from must lie before valid_until"))
            }
            _ => Ok(()),
        }
    }

    pub fn login_refusal(&self, now: DateTime<Utc>) -> Option<LoginRefusal> {
        if self.status != KeyStatus::Issued || self.employee_id.is_none() {
            Some(LoginRefusal::NotIssued)
        } else if self.blocked {
            Some(LoginRefusal::Blocked)
        } else if self.valid_from.is_some_and(|from| now < from) {
            Some(LoginRefusal::NotYetValid)
        } else if self.valid_until.is_some_and(|until| now >= until) {
            Some(LoginRefusal::Expired)
        } else {
            None
        }
    }

    /// An approver able to act: the key can log in, holds the role and its
    /// holder has an e-mail address.
    pub fn can_act_as_approver(&self, holder: Option<&Employee>, now: DateTime<Utc>) -> bool {
        self.roles.contains(Role::Approver)
            && self.login_refusal(now).is_none()
            && holder.is_some_and(|e| e.email.is_some())
    }

    pub fn issue(&mut self, holder: &Employee) -> Result<()> {
        let status = self.status.issue("programming key")?;
        require_email_for_approver(&self.roles, Some(holder))?;
        self.status = status;
        self.employee_id = Some(holder.id);
        Ok(())
    }

    pub fn give_back(&mut self) -> Result<()> {
        self.status = self.status.give_back("programming key")?;
        self.employee_id = None;
        Ok(())
    }

    /// Replaces the roles. `holder` is the employee the key is issued to, if any.
    pub fn set_roles(
        &mut self,
        roles: RoleSet,
        holder: Option<&Employee>,
    ) -> Result<ApproverRoleChange> {
        if self.status == KeyStatus::Issued {
            require_email_for_approver(&roles, holder)?;
        }
        let change = match (
            self.roles.contains(Role::Approver),
            roles.contains(Role::Approver),
        ) {
            (false, true) => ApproverRoleChange::Granted,
            (true, false) => ApproverRoleChange::Removed,
            _ => ApproverRoleChange::None,
        };
        self.roles = roles;
        Ok(change)
    }
}

fn require_email_for_approver(roles: &RoleSet, holder: Option<&Employee>) -> Result<()> {
    if roles.contains(Role::Approver) && holder.is_none_or(|e| e.email.is_none()) {
        return Err(Error::rule(
            ErrorCode::ApproverRequiresEmail,
            "a programming key with the approver role can only be issued to an employee with an e-mail address",
        ));
    }
    Ok(())
}

crate::named_enum! {
    pub enum KeyModel {
        E2,
        E3,
        Basic,
    }
}

impl KeyModel {
    pub const fn keeps_event_log(self) -> bool {
        matches!(self, KeyModel::E2 | KeyModel::E3)
    }
}

/// A user key carried by an employee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub model: KeyModel,
    pub status: KeyStatus,
    pub employee_id: Option<Uuid>,
    pub key_group_id: Option<Uuid>,
    pub auto_collection: bool,
    pub created_at: DateTime<Utc>,
}

impl Key {
    /// Issues the key. Without the approver function, issuing a key that keeps an
    /// event log switches automatic collection on (SPEC §4.5).
    pub fn issue(&mut self, holder: &Employee, approval_required: bool) -> Result<()> {
        self.status = self.status.issue("key")?;
        self.employee_id = Some(holder.id);
        self.auto_collection = !approval_required && self.model.keeps_event_log();
        Ok(())
    }

    pub fn give_back(&mut self) -> Result<()> {
        self.status = self.status.give_back("key")?;
        self.employee_id = None;
        self.auto_collection = false;
        Ok(())
    }

    pub fn stop_auto_collection(&mut self, approval_required: bool) -> Result<()> {
        if approval_required {
            return Err(Error::rule(
                ErrorCode::ApprovalFunctionActive,
                "automatic collection does not exist in a tenant with the approver function",
            ));
        }
        self.auto_collection = false;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGroup {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cylinder {
    pub id: Uuid,
    pub marking: String,
    pub name: String,
    pub location: Option<String>,
    pub created_at: DateTime<Utc>,
}

crate::named_enum! {
    pub enum DeviceKind {
        RemoteUnit,
        DeskUnit,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteDevice {
    pub id: Uuid,
    pub name: String,
    pub kind: DeviceKind,
    pub serial: String,
    pub agent_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: Uuid,
    pub name: String,
    pub device_ids: Vec<Uuid>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub version: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    pub roles: RoleSet,
    /// The first characters of the key, to recognise it in lists.
    pub prefix: String,
    /// Who created it: a request made with it counts as made by them too.
    pub created_by_programming_key_id: Option<Uuid>,
    pub created_by_employee_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn employee(email: Option<&str>) -> Employee {
        Employee {
            id: Uuid::new_v4(),
            name: "Eva".into(),
            email: email.map(Into::into),
            created_at: Utc::now(),
        }
    }

    fn pk(roles: &[Role]) -> ProgrammingKey {
        ProgrammingKey {
            id: Uuid::new_v4(),
            marking: "PK-1".into(),
            name: "Key".into(),
            status: KeyStatus::InStock,
            blocked: false,
            valid_from: None,
            valid_until: None,
            roles: roles.iter().copied().collect(),
            employee_id: None,
            hold_until: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn approver_keys_need_a_holder_with_email() {
        let mut key = pk(&[Role::Approver]);
        let err = key.issue(&employee(None)).err().map(|e| e.code());
        assert_eq!(err, Some(ErrorCode::ApproverRequiresEmail));
        assert_eq!(
            key.status,
            KeyStatus::InStock,
            "a refused issue changes nothing"
        );
        assert!(key.issue(&employee(Some("eva@example.org"))).is_ok());
        assert_eq!(key.status, KeyStatus::Issued);
    }

    #[test]
    fn the_approver_role_can_be_granted_in_stock_but_not_to_a_holder_without_email() {
        let mut in_stock = pk(&[]);
        let roles: RoleSet = [Role::Approver].into_iter().collect();
        assert_eq!(
            in_stock.set_roles(roles.clone(), None).ok(),
            Some(ApproverRoleChange::Granted)
        );

        let holder = employee(None);
        let mut issued = pk(&[Role::Auditor]);
        issued.issue(&holder).expect("no approver role yet");
        assert_eq!(
            issued
                .set_roles(roles, Some(&holder))
                .err()
                .map(|e| e.code()),
            Some(ErrorCode::ApproverRequiresEmail)
        );
        assert!(issued.roles.contains(Role::Auditor));
    }

    #[test]
    fn email_cannot_be_removed_from_an_approver_holder() {
        let mut e = employee(Some("eva@example.org"));
        assert_eq!(
            e.change(None, Some(None), true).err().map(|e| e.code()),
            Some(ErrorCode::ApproverRequiresEmail)
        );
        assert!(e.email.is_some());
        assert!(e.change(None, Some(None), false).is_ok());
    }

    #[test]
    fn login_needs_issued_unblocked_and_inside_validity() {
        let now = Utc::now();
        let mut key = pk(&[Role::SystemAdministrator]);
        assert_eq!(key.login_refusal(now), Some(LoginRefusal::NotIssued));
        key.issue(&employee(None)).expect("issue");
        assert_eq!(key.login_refusal(now), None);
        key.blocked = true;
        assert_eq!(key.login_refusal(now), Some(LoginRefusal::Blocked));
        key.blocked = false;
        key.valid_from = Some(now + chrono::Duration::hours(1));
        assert_eq!(key.login_refusal(now), Some(LoginRefusal::NotYetValid));
        key.valid_from = None;
        key.valid_until = Some(now);
        assert_eq!(key.login_refusal(now), Some(LoginRefusal::Expired));
        key.valid_until = None;
        key.give_back().expect("return");
        assert_eq!(key.login_refusal(now), Some(LoginRefusal::NotIssued));
    }

    #[test]
    fn issuing_a_logging_key_without_approver_function_starts_collection() {
        let holder = employee(None);
        for (model, approval, expected) in [
            (KeyModel::E2, false, true),
            (KeyModel::E3, false, true),
            (KeyModel::Basic, false, false),
            (KeyModel::E2, true, false),
        ] {
            let mut key = Key {
                id: Uuid::new_v4(),
                marking: "K".into(),
                name: "K".into(),
                model,
                status: KeyStatus::InStock,
                employee_id: None,
                key_group_id: None,
                auto_collection: false,
                created_at: Utc::now(),
            };
            key.issue(&holder, approval).expect("issue");
            assert_eq!(
                key.auto_collection, expected,
                "{model:?} approval={approval}"
            );
            assert!(key.issue(&holder, approval).is_err(), "issued twice");
            key.give_back().expect("return");
            assert!(!key.auto_collection);
        }
    }

    #[test]
    fn pins_markings_and_emails() {
        assert!(check_pin("1234").is_ok());
        for bad in ["123", "12a4", "1234567890123", ""] {
            assert!(check_pin(bad).is_err(), "{bad}");
        }
        assert!(check_marking("PK-001").is_ok());
        assert!(check_marking(" PK").is_err());
        assert!(check_marking("").is_err());
        assert!(check_email("a@b.de").is_ok());
        for bad in ["a@b", "@b.de", "a b@c.de", "a@.de"] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
