use countersign_domain::workflow::{JobKind, JobStatus, TargetType};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "readout_jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub kind: JobKind,
    pub request_id: Option<Uuid>,
    pub target_type: TargetType,
    pub target_id: Uuid,
    pub target_marking: String,
    pub status: JobStatus,
    pub device_id: Option<Uuid>,
    pub programming_key_id: Option<Uuid>,
    pub attempts: i32,
    pub lease_token: Option<Uuid>,
    pub lease_expires_at: Option<DateTimeUtc>,
    pub resume_status: Option<JobStatus>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
