//! The domain's named enumerations: each is declared once, and its snake_case
//! names serve everywhere it leaves Rust — JSON bodies (serde), the OpenAPI
//! document (utoipa, feature `openapi`) and the database's text columns
//! (sea-orm, feature `storage`).

/// Declares an enumeration whose variants are known by their snake_case names:
/// `as_str`, `parse`, `ALL`, `Display` and `FromStr` come from those names.
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident,)* }) => {
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize,
            strum::IntoStaticStr, strum::EnumString, strum::Display, strum::VariantArray,
        )]
        #[serde(rename_all = "snake_case")]
        #[strum(serialize_all = "snake_case")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "storage", derive(sea_orm::DeriveValueType))]
        #[cfg_attr(feature = "storage", sea_orm(value_type = "String"))]
        $(#[$meta])*
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = <$name as strum::VariantArray>::VARIANTS;

            /// The variant's name, as stored and served.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// The variant of that name, if there is one.
            pub fn parse(name: &str) -> Option<$name> {
                name.parse().ok()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::directory::{DeviceKind, KeyModel, KeyStatus};
    use crate::history::verify::Status;
    use crate::permission::PrincipalKind;
    use crate::role::Role;
    use crate::tenant::{Locale, TenantStatus};
    use crate::workflow::{JobKind, JobStatus, RequestStatus, TargetType, Verdict};

    /// Every variant's name reads back, and JSON uses the same name.
    fn names_agree<T>(all: &[T], expected: &[&str])
    where
        T: Copy + PartialEq + std::fmt::Debug + serde::Serialize + Into<&'static str>,
        T: std::str::FromStr,
    {
        let names: Vec<&str> = all.iter().map(|v| (*v).into()).collect();
        assert_eq!(names, expected);
        for (variant, name) in all.iter().zip(expected) {
            assert_eq!(serde_json::to_value(variant).unwrap(), *name);
            assert!(name.parse::<T>().ok() == Some(*variant), "{name}");
        }
    }

    #[test]
    fn names_are_the_ones_clients_and_databases_know() {
        names_agree(KeyStatus::ALL, &["in_stock", "issued", "returned"]);
        names_agree(KeyModel::ALL, &["e2", "e3", "basic"]);
        names_agree(DeviceKind::ALL, &["remote_unit", "desk_unit"]);
        names_agree(TenantStatus::ALL, &["active", "suspended"]);
        names_agree(Locale::ALL, &["de", "en"]);
        names_agree(TargetType::ALL, &["key", "cylinder"]);
        names_agree(Verdict::ALL, &["approve", "reject"]);
        names_agree(
            RequestStatus::ALL,
            &[
                "pending_approval",
                "approved",
                "rejected",
                "cancelled",
                "expired",
                "completed",
                "failed",
            ],
        );
        names_agree(
            JobKind::ALL,
            &["request_readout", "auto_collection", "desk_readout"],
        );
        names_agree(
            JobStatus::ALL,
            &[
                "queued",
                "awaiting_transfer",
                "transferred",
                "loaded",
                "running",
                "completed",
                "failed",
                "cancelled",
                "expired",
            ],
        );
        names_agree(
            Role::ALL,
            &[
                "super_administrator",
                "system_administrator",
                "approver",
                "cylinder_programmer",
                "receptionist",
                "auditor",
                "webservice",
            ],
        );
        names_agree(
            PrincipalKind::ALL,
            &["user", "webservice", "agent", "operator"],
        );
        names_agree(
            Status::ALL,
            &[
                "valid",
                "broken_chain",
                "truncated",
                "rewritten",
                "bad_signature",
                "unknown_key",
                "unsigned_stretch",
            ],
        );
        assert_eq!(KeyModel::parse("E3"), None);
    }
}
