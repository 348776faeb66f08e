use countersign_domain::tenant::{Locale, TenantStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub base_timezone: String,
    pub locale: Locale,
    pub approval_required: bool,
    pub approvals_required: i16,
    pub approver_hold_hours: i16,
    pub event_retention_days: i32,
    pub request_ttl_hours: i32,
    pub execution_ttl_hours: i32,
    pub status: TenantStatus,
    pub token_generation: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
