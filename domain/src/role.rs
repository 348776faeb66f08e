//! Tenant roles (SPEC §2). A credential holds a set of them; its permissions are their union.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

crate::named_enum! {
    /// A tenant role (SPEC §2).
    pub enum Role {
        SuperAdministrator,
        SystemAdministrator,
        Approver,
        CylinderProgrammer,
        Receptionist,
        Auditor,
        Webservice,
    }
}

/// A set of roles, kept sorted so that it serialises the same way every time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleSet(BTreeSet<Role>);

impl RoleSet {
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }

    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn names(&self) -> Vec<String> {
        self.iter().map(|r| r.as_str().to_owned()).collect()
    }

    /// Roles a programming key may hold: every role but `webservice`.
    pub fn for_programming_key(roles: impl IntoIterator<Item = Role>) -> Result<Self> {
        let set: RoleSet = roles.into_iter().collect();
        if set.contains(Role::Webservice) {
            return Err(Error::rule(
                ErrorCode::InvalidRole,
                "the webservice role marks integration credentials; a programming key cannot hold it",
            ));
        }
        Ok(set)
    }

    /// Roles a webservice credential may carry: an explicit subset, never
    /// `approver` or `super_administrator`; `webservice` itself is always added.
    pub fn for_webservice(roles: impl IntoIterator<Item = Role>) -> Result<Self> {
        let mut set: RoleSet = roles.into_iter().collect();
        for forbidden in [Role::Approver, Role::SuperAdministrator] {
            if set.contains(forbidden) {
                return Err(Error::rule(
                    ErrorCode::InvalidRole,
                    format!("a webservice credential cannot hold the {forbidden} role"),
                ));
            }
        }
        set.0.insert(Role::Webservice);
        Ok(set)
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        RoleSet(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
            assert_eq!(
                serde_json::to_string(&role).ok(),
                Some(format!("\"{role}\""))
            );
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn webservice_subset_excludes_approver_and_super_administrator() {
        assert!(RoleSet::for_webservice([Role::Approver]).is_err());
        assert!(RoleSet::for_webservice([Role::SuperAdministrator]).is_err());
        let set = RoleSet::for_webservice([Role::SystemAdministrator]).expect("allowed");
        assert!(set.contains(Role::Webservice) && set.contains(Role::SystemAdministrator));
    }

    #[test]
    fn programming_keys_cannot_be_webservices() {
        assert!(RoleSet::for_programming_key([Role::Webservice]).is_err());
        assert!(RoleSet::for_programming_key([Role::Approver, Role::SuperAdministrator]).is_ok());
    }
}
