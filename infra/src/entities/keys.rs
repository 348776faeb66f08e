use countersign_domain::directory::{KeyModel, KeyStatus};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub marking: String,
    pub name: String,
    pub model: KeyModel,
    pub status: KeyStatus,
    pub employee_id: Option<Uuid>,
    pub key_group_id: Option<Uuid>,
    pub auto_collection: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
