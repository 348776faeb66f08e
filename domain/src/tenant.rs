//! Tenants (SPEC §3): a customer domain with a fixed initial configuration.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, ErrorCode, Result};

/// The id of a tenant; every tenant-scoped query takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub Uuid);

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

crate::named_enum! {
    pub enum TenantStatus {
        Active,
        Suspended,
    }
}

crate::named_enum! {
    pub enum Locale {
        De,
        En,
    }
}

/// The initial configuration chosen at provisioning. Fields are private and
/// there is no setter: once built, it never changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedSettings {
    approval_required: bool,
    approvals_required: u8,
    approver_hold_hours: u16,
    base_timezone: Tz,
}

/// The longest hold of an approver change, a week.
pub const MAX_APPROVER_HOLD_HOURS: u16 = 168;

/// The hold of an approver change when the operator does not choose one.
pub const DEFAULT_APPROVER_HOLD_HOURS: u16 = 24;

impl FixedSettings {
    pub fn new(
        approval_required: bool,
        approvals_required: u8,
        approver_hold_hours: u16,
        base_timezone: &str,
    ) -> Result<Self> {
        if approver_hold_hours > MAX_APPROVER_HOLD_HOURS {
            return Err(Error::invalid(format!(
                "approver_hold_hours must be between 0 and {MAX_APPROVER_HOLD_HOURS}"
            )));
        }
        let base_timezone: Tz = base_timezone.parse().map_err(|_| {
            Error::invalid(format!(
                "base_timezone `{base_timezone}` is not an IANA time zone"
            ))
        })?;
        match (approval_required, approvals_required) {
            (_, 0) | (_, 4..) => Err(Error::invalid("approvals_required must be between 1 and 3")),
            (false, 2..) => Err(Error::invalid(
                "approvals_required must be 1 in a tenant without the approver function",
            )),
            _ => Ok(Self {
                approval_required,
                approvals_required,
                approver_hold_hours,
                base_timezone,
            }),
        }
    }

    pub fn approval_required(&self) -> bool {
        self.approval_required
    }

    pub fn approvals_required(&self) -> u8 {
        self.approvals_required
    }

    /// How long an approver change keeps the key from deciding (SPEC §2).
    pub fn approver_hold_hours(&self) -> u16 {
        self.approver_hold_hours
    }

    pub fn base_timezone(&self) -> Tz {
        self.base_timezone
    }
}

/// The settings that may change after provisioning, with their bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MutableSettings {
    pub name: String,
    pub locale: Locale,
    pub event_retention_days: u32,
    pub request_ttl_hours: u32,
    pub execution_ttl_hours: u32,
    pub status: TenantStatus,
}

impl MutableSettings {
    pub fn validate(&self) -> Result<()> {
        check_name("name", &self.name)?;
        check_range("event_retention_days", self.event_retention_days, 1, 36_500)?;
        check_range("request_ttl_hours", self.request_ttl_hours, 1, 8_760)?;
        check_range("execution_ttl_hours", self.execution_ttl_hours, 1, 8_760)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: String,
    fixed: FixedSettings,
    pub settings: MutableSettings,
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    pub fn new(
        id: TenantId,
        slug: String,
        fixed: FixedSettings,
        settings: MutableSettings,
        created_at: DateTime<Utc>,
    ) -> Result<Self> {
        check_slug(&slug)?;
        settings.validate()?;
        Ok(Self {
            id,
            slug,
            fixed,
            settings,
            created_at,
        })
    }

    pub fn fixed(&self) -> &FixedSettings {
        &self.fixed
    }

    pub fn is_active(&self) -> bool {
        self.settings.status == TenantStatus::Active
    }

    /// Applies a PATCH. Asking for another value of a fixed setting is refused;
    /// repeating the current value is accepted, so that clients can send back
    /// what they read.
    pub fn apply(&mut self, change: TenantChange) -> Result<()> {
        let fixed = &self.fixed;
        if change
            .approval_required
            .is_some_and(|v| v != fixed.approval_required)
            || change
                .approvals_required
                .is_some_and(|v| v != fixed.approvals_required)
            || change
                .approver_hold_hours
                .is_some_and(|v| v != fixed.approver_hold_hours)
        {
            return Err(Error::rule(
                ErrorCode::ApprovalSettingImmutable,
                "approval_required, approvals_required and approver_hold_hours are chosen once, at provisioning, and never change",
            ));
        }
        if change
            .base_timezone
            .as_deref()
            .is_some_and(|tz| tz != fixed.base_timezone.name())
        {
            return Err(Error::rule(
                ErrorCode::TenantSettingImmutable,
                "base_timezone is chosen once, at provisioning, and never changes",
            ));
        }
        if change.slug.as_deref().is_some_and(|slug| slug != self.slug) {
            return Err(Error::rule(
                ErrorCode::TenantSettingImmutable,
                "the slug never changes",
            ));
        }
        let mut next = self.settings.clone();
        if let Some(name) = change.name {
            next.name = name;
        }
        if let Some(locale) = change.locale {
            next.locale = locale;
        }
        if let Some(days) = change.event_retention_days {
            next.event_retention_days = days;
        }
        if let Some(hours) = change.request_ttl_hours {
            next.request_ttl_hours = hours;
        }
        if let Some(hours) = change.execution_ttl_hours {
            next.execution_ttl_hours = hours;
        }
        if let Some(status) = change.status {
            next.status = status;
        }
        next.validate()?;
        self.settings = next;
        Ok(())
    }
}

/// A requested change of a tenant. The fixed settings appear here only so that
/// an attempt to change them is answered with its own error code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantChange {
    pub name: Option<String>,
    pub locale: Option<Locale>,
    pub event_retention_days: Option<u32>,
    pub request_ttl_hours: Option<u32>,
    pub execution_ttl_hours: Option<u32>,
    pub status: Option<TenantStatus>,
    pub slug: Option<String>,
    pub approval_required: Option<bool>,
    pub approvals_required: Option<u8>,
    pub approver_hold_hours: Option<u16>,
    pub base_timezone: Option<String>,
}

/// Slugs are lower-case letters, digits and hyphens, 2 to 63 characters.
pub fn check_slug(slug: &str) -> Result<()> {
    let ok = (2..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "slug must be 2–63 lower-case letters, digits or inner hyphens",
        ))
    }
}

/// Display names: 1 to 200 characters, not blank, no control characters.
pub fn check_name(field: &str, value: &str) -> Result<()> {
    let len = value.chars().count();
    if len == 0 || len > 200 || value.trim().is_empty() || value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} must be 1–200 printable characters and not blank"
        )));
    }
    Ok(())
}

pub fn check_range(field: &str, value: u32, min: u32, max: u32) -> Result<()> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "{field} must be between {min} and {max}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tenant(approval: bool, approvals: u8) -> Tenant {
        Tenant::new(
            TenantId(Uuid::nil()),
            "acme".into(),
            FixedSettings::new(approval, approvals, 24, "Europe/Berlin").expect("valid"),
            MutableSettings {
                name: "Acme".into(),
                locale: Locale::De,
                event_retention_days: 90,
                request_ttl_hours: 72,
                execution_ttl_hours: 168,
                status: TenantStatus::Active,
            },
            Utc::now(),
        )
        .expect("valid tenant")
    }

    #[test]
    fn approvals_required_is_bounded_and_one_without_the_approver_function() {
        assert!(FixedSettings::new(true, 0, 24, "UTC").is_err());
        assert!(FixedSettings::new(true, 4, 24, "UTC").is_err());
        assert!(FixedSettings::new(true, 3, 24, "UTC").is_ok());
        assert!(FixedSettings::new(false, 2, 24, "UTC").is_err());
        assert!(FixedSettings::new(false, 1, 24, "UTC").is_ok());
        assert!(FixedSettings::new(false, 1, 24, "Mars/Olympus").is_err());
    }

    #[test]
    fn the_approver_hold_lasts_at_most_a_week_and_never_changes() {
        assert!(FixedSettings::new(true, 1, 0, "UTC").is_ok());
        assert!(FixedSettings::new(true, 1, 168, "UTC").is_ok());
        assert!(FixedSettings::new(true, 1, 169, "UTC").is_err());
        let mut t = tenant(true, 1);
        let refused = t.apply(TenantChange {
            approver_hold_hours: Some(0),
            ..Default::default()
        });
        assert_eq!(
            refused.err().map(|e| e.code()),
            Some(ErrorCode::ApprovalSettingImmutable)
        );
        let same = t.apply(TenantChange {
            approver_hold_hours: Some(24),
            ..Default::default()
        });
        assert!(same.is_ok());
        assert_eq!(t.fixed().approver_hold_hours(), 24);
    }

    #[test]
    fn fixed_settings_refuse_other_values_with_their_codes() {
        let mut t = tenant(true, 2);
        let code = |t: &mut Tenant, change| t.apply(change).err().map(|e| e.code());
        assert_eq!(
            code(
                &mut t,
                TenantChange {
                    approval_required: Some(false),
                    ..Default::default()
                }
            ),
            Some(ErrorCode::ApprovalSettingImmutable)
        );
        assert_eq!(
            code(
                &mut t,
                TenantChange {
                    approvals_required: Some(1),
                    ..Default::default()
                }
            ),
            Some(ErrorCode::ApprovalSettingImmutable)
        );
        assert_eq!(
            code(
                &mut t,
                TenantChange {
                    base_timezone: Some("UTC".into()),
                    ..Default::default()
                }
            ),
            Some(ErrorCode::TenantSettingImmutable)
        );
        let same = TenantChange {
            approval_required: Some(true),
            approvals_required: Some(2),
            base_timezone: Some("Europe/Berlin".into()),
            name: Some("Acme GmbH".into()),
            ..Default::default()
        };
        assert!(t.apply(same).is_ok());
        assert_eq!(t.settings.name, "Acme GmbH");
    }

    #[test]
    fn a_refused_change_changes_nothing() {
        let mut t = tenant(true, 1);
        let before = t.clone();
        let change = TenantChange {
            name: Some("Other".into()),
            approval_required: Some(false),
            ..Default::default()
        };
        assert!(t.apply(change).is_err());
        assert_eq!(t, before);
        assert!(
            t.apply(TenantChange {
                request_ttl_hours: Some(0),
                ..Default::default()
            })
            .is_err()
        );
        assert_eq!(t, before);
    }

    proptest! {
        #[test]
        fn no_accepted_change_alters_the_fixed_settings(
            approval in any::<bool>(),
            asked_approval in proptest::option::of(any::<bool>()),
            asked_count in proptest::option::of(0u8..5),
            name in proptest::option::of("[a-zA-Z ]{0,20}"),
            ttl in proptest::option::of(0u32..10_000),
        ) {
            let mut t = tenant(approval, 1);
            let fixed = t.fixed().clone();
            let _ = t.apply(TenantChange {
                approval_required: asked_approval,
                approvals_required: asked_count,
                name,
                request_ttl_hours: ttl,
                ..Default::default()
            });
            prop_assert_eq!(t.fixed(), &fixed);
        }
    }

    #[test]
    fn slugs() {
        for ok in ["acme", "stadtwerke-ulm", "a1"] {
            assert!(check_slug(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "Acme", "-acme", "acme-", "ac me", "äcme"] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
    }
}
