use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub source_type: String,
    pub source_id: Uuid,
    pub device_seq: i64,
    pub occurred_at: DateTimeUtc,
    pub kind: String,
    pub key_marking: Option<String>,
    pub cylinder_marking: Option<String>,
    pub job_id: Option<Uuid>,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
