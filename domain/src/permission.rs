//! Who may do what (SPEC §2): one declarative table of action × role, used by every handler.

use uuid::Uuid;

use crate::error::{Error, ErrorCode, Result};
use crate::role::{Role, RoleSet};
use crate::tenant::TenantId;

crate::named_enum! {
    /// What a token is.
    pub enum PrincipalKind {
        /// A person logged in with a programming key.
        User,
        /// An integration credential (API key).
        Webservice,
        /// An on-premise device agent.
        Agent,
        /// The SaaS operator.
        Operator,
    }
}

/// Everything an authenticated caller may attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    // platform scope
    ManageTenants,
    // agent scope
    AgentWork,
    // tenant scope
    ReadEmployees,
    ManageEmployees,
    ReadInventory,
    ManageInventory,
    IssueReturnKeys,
    ManageProgrammingKeys,
    ManageAgents,
    ManageApiKeys,
    Import,
    CreateRequest,
    CancelRequest,
    TransferRequest,
    ReadRequests,
    DecideRequest,
    ReadAllJobs,
    ReadOwnJobs,
    ReadEventData,
    DeskReadout,
    StopAutoCollection,
    ReadHistory,
    ReadRequestHistory,
    VerifyHistory,
}

/// Which principal kinds an action belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Operator,
    Agent,
    Tenant,
}

use Role::{
    Approver as AP, Auditor as AU, CylinderProgrammer as CP, Receptionist as RC,
    SuperAdministrator as SA, SystemAdministrator as SY,
};

impl Action {
    pub const ALL: [Action; 24] = [
        Action::ManageTenants,
        Action::AgentWork,
        Action::ReadEmployees,
        Action::ManageEmployees,
        Action::ReadInventory,
        Action::ManageInventory,
        Action::IssueReturnKeys,
        Action::ManageProgrammingKeys,
        Action::ManageAgents,
        Action::ManageApiKeys,
        Action::Import,
        Action::CreateRequest,
        Action::CancelRequest,
        Action::TransferRequest,
        Action::ReadRequests,
        Action::DecideRequest,
        Action::ReadAllJobs,
        Action::ReadOwnJobs,
        Action::ReadEventData,
        Action::DeskReadout,
        Action::StopAutoCollection,
        Action::ReadHistory,
        Action::ReadRequestHistory,
        Action::VerifyHistory,
    ];

    pub const fn scope(self) -> Scope {
        match self {
            Action::ManageTenants => Scope::Operator,
            Action::AgentWork => Scope::Agent,
            _ => Scope::Tenant,
        }
    }

    /// The roles that permit this action. The whole table of SPEC §2 is here.
    /// `webservice` permits nothing by itself; a webservice credential acts through
    /// the subset of roles it carries.
    pub const fn permitted_roles(self) -> &'static [Role] {
        match self {
            Action::ManageTenants | Action::AgentWork => &[],
            Action::ReadEmployees | Action::ManageEmployees => &[SA, SY, RC],
            Action::ReadInventory => &[SA, SY, RC],
            Action::ManageInventory => &[SA, SY],
            Action::IssueReturnKeys => &[SA, SY, RC],
            Action::ManageProgrammingKeys | Action::ManageAgents | Action::ManageApiKeys => &[SA],
            Action::Import => &[SA, SY],
            Action::CreateRequest | Action::CancelRequest | Action::TransferRequest => &[SA, SY],
            Action::ReadRequests => &[SA, SY, AP, AU],
            Action::DecideRequest => &[AP],
            Action::ReadAllJobs => &[SA, SY],
            Action::ReadOwnJobs => &[SA, SY, CP],
            Action::ReadEventData | Action::DeskReadout | Action::StopAutoCollection => &[SA, SY],
            Action::ReadHistory | Action::VerifyHistory => &[SA, SY, AU],
            Action::ReadRequestHistory => &[SA, SY, AU, AP],
        }
    }

    /// Whether a set of roles permits this tenant action: the union of its roles.
    pub fn permitted_by(self, roles: &RoleSet) -> bool {
        self.permitted_roles()
            .iter()
            .any(|role| roles.contains(*role))
    }
}

/// An authenticated caller, as its verified token describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// Programming key, API key, agent id; nil for the operator.
    pub id: Uuid,
    pub tenant_id: Option<TenantId>,
    pub roles: RoleSet,
    /// Logged in with a one-time PIN: may only set its own PIN.
    pub pin_change_only: bool,
}

impl Principal {
    /// The one permission check. On success, the tenant the action is scoped to
    /// (none for operator actions).
    pub fn authorize(&self, action: Action) -> Result<Option<TenantId>> {
        let forbidden = || {
            Error::rule(
                ErrorCode::Forbidden,
                "your roles do not permit this operation",
            )
        };
        if self.pin_change_only {
            return Err(Error::rule(
                ErrorCode::PinChangeRequired,
                "this key logged in with a one-time PIN; set a new PIN with POST /v1/me/pin first",
            ));
        }
        match (action.scope(), self.kind) {
            (Scope::Operator, PrincipalKind::Operator) => Ok(None),
            (Scope::Agent, PrincipalKind::Agent) => Ok(self.tenant_id),
            (Scope::Tenant, PrincipalKind::User | PrincipalKind::Webservice)
                if action.permitted_by(&self.roles) =>
            {
                self.tenant_id.map(Some).ok_or_else(forbidden)
            }
            _ => Err(forbidden()),
        }
    }

    /// Like [`Principal::authorize`] for tenant actions: the caller's tenant.
    pub fn tenant_for(&self, action: Action) -> Result<TenantId> {
        self.authorize(action)?
            .ok_or_else(|| Error::rule(ErrorCode::Forbidden, "this operation is tenant-scoped"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// The whole table of SPEC §2, pinned: for every action the exact roles that allow it.
    #[test]
    fn the_permission_table_is_pinned() {
        let expected: &[(Action, &[Role])] = &[
            (ManageTenants, &[]),
            (AgentWork, &[]),
            (ReadEmployees, &[SA, SY, RC]),
            (ManageEmployees, &[SA, SY, RC]),
            (ReadInventory, &[SA, SY, RC]),
            (ManageInventory, &[SA, SY]),
            (IssueReturnKeys, &[SA, SY, RC]),
            (ManageProgrammingKeys, &[SA]),
            (ManageAgents, &[SA]),
            (ManageApiKeys, &[SA]),
            (Import, &[SA, SY]),
            (CreateRequest, &[SA, SY]),
            (CancelRequest, &[SA, SY]),
            (TransferRequest, &[SA, SY]),
            (ReadRequests, &[SA, SY, AP, AU]),
            (DecideRequest, &[AP]),
            (ReadAllJobs, &[SA, SY]),
            (ReadOwnJobs, &[SA, SY, CP]),
            (ReadEventData, &[SA, SY]),
            (DeskReadout, &[SA, SY]),
            (StopAutoCollection, &[SA, SY]),
            (ReadHistory, &[SA, SY, AU]),
            (ReadRequestHistory, &[SA, SY, AU, AP]),
            (VerifyHistory, &[SA, SY, AU]),
        ];
        assert_eq!(expected.len(), Action::ALL.len());
        for (action, roles) in expected {
            for &role in Role::ALL {
                let single: RoleSet = [role].into_iter().collect();
                assert_eq!(
                    action.permitted_by(&single),
                    roles.contains(&role),
                    "{action:?} × {role}"
                );
            }
        }
    }

    fn user(roles: &[Role]) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            id: Uuid::nil(),
            tenant_id: Some(TenantId(Uuid::nil())),
            roles: roles.iter().copied().collect(),
            pin_change_only: false,
        }
    }

    #[test]
    fn roles_combine_as_a_union() {
        let both = user(&[SY, AP]);
        assert!(both.authorize(DecideRequest).is_ok());
        assert!(both.authorize(ReadEventData).is_ok());
        assert!(user(&[AP]).authorize(ReadEventData).is_err());
    }

    #[test]
    fn super_administrators_never_decide_and_auditors_never_read_event_data() {
        assert_eq!(
            user(&[SA]).authorize(DecideRequest).err().map(|e| e.code()),
            Some(ErrorCode::Forbidden)
        );
        for role in [AP, AU, RC, CP] {
            assert!(user(&[role]).authorize(ReadEventData).is_err(), "{role}");
        }
    }

    #[test]
    fn scopes_are_separate() {
        let operator = Principal {
            kind: PrincipalKind::Operator,
            tenant_id: None,
            ..user(&[])
        };
        assert!(operator.authorize(ManageTenants).is_ok());
        assert!(operator.authorize(ReadEmployees).is_err());
        assert!(user(&[SA]).authorize(ManageTenants).is_err());
        assert!(user(&[SA]).authorize(AgentWork).is_err());
        let agent = Principal {
            kind: PrincipalKind::Agent,
            ..user(&[])
        };
        assert!(agent.authorize(AgentWork).is_ok());
        assert!(agent.authorize(ReadEmployees).is_err());
    }

    #[test]
    fn one_time_pin_permits_nothing() {
        let mut admin = user(&[SA]);
        admin.pin_change_only = true;
        for action in Action::ALL {
            assert_eq!(
                admin.authorize(action).err().map(|e| e.code()),
                Some(ErrorCode::PinChangeRequired)
            );
        }
    }
}
