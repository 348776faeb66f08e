use countersign_domain::permission::PrincipalKind;
use countersign_domain::workflow::{RequestStatus, TargetType};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "event_log_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub target_type: TargetType,
    pub target_id: Uuid,
    pub target_marking: String,
    pub target_name: String,
    pub status: RequestStatus,
    pub comment: Option<String>,
    pub requested_by_kind: PrincipalKind,
    pub requested_by_id: Uuid,
    pub requested_by_employee_id: Option<Uuid>,
    pub requested_by_programming_key_id: Option<Uuid>,
    pub requested_by_name: String,
    pub approvals_required: i16,
    pub requested_at: DateTimeUtc,
    pub approved_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub closed_at: Option<DateTimeUtc>,
    pub reason: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
