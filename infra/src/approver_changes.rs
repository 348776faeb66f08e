//! Approver changes in the open (SPEC §2): each one puts the key on hold,
//! records who made it and tells every approver and auditor of the tenant and
//! the holder's previous and new address, in the change that makes it.

use chrono::{DateTime, Utc};
use countersign_domain::Result;
use countersign_domain::approver_changes::ApproverChange;
use countersign_domain::directory::ProgrammingKey;
use countersign_domain::history::{Action, NewEntry, names};
use countersign_domain::notification::Notice;
use countersign_domain::role::Role;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::json;
use uuid::Uuid;

use crate::change::Change;
use crate::db::DbResult;
use crate::employees::holders_of;
use crate::entities::{employees, programming_keys};

/// The holder's name, if the key is issued.
async fn holder_name(conn: &impl ConnectionTrait, key: &ProgrammingKey) -> Result<Option<String>> {
    let Some(id) = key.employee_id else {
        return Ok(None);
    };
    Ok(employees::Entity::find_by_id(id)
        .one(conn)
        .await
        .db()?
        .map(|e| e.name))
}

/// What an approver change leaves behind besides the key itself.
pub(crate) struct Announcement {
    pub(crate) change: ApproverChange,
    /// The holder's address before the change, when it differs from now.
    pub(crate) previous_address: Option<String>,
    /// Details for the history entry (old and new values, never a PIN).
    pub(crate) details: serde_json::Value,
}

/// Puts `key` on hold for the tenant's `approver_hold_hours`, records the
/// change under the actor's name and queues its announcement. Returns the
/// end of the hold.
pub(crate) async fn announce(
    change: &mut Change,
    key: &mut ProgrammingKey,
    announcement: Announcement,
) -> Result<Option<DateTime<Utc>>> {
    let t = change.tenant;
    let hours = crate::tenants::to_domain(crate::tenants::row(&**change, t).await?)?
        .fixed()
        .approver_hold_hours();
    let hold_until = key.put_on_hold(change.now, hours);
    programming_keys::Entity::update_many()
        .col_expr(
            programming_keys::Column::HoldUntil,
            Expr::value(key.hold_until),
        )
        .filter(programming_keys::Column::Id.eq(key.id))
        .exec(&**change)
        .await
        .db()?;
    let mut details = json!({
        "change": announcement.change,
        "hold_hours": hours,
        "hold_until": hold_until,
        "employee_id": key.employee_id,
    });
    if let (Some(all), Some(more)) = (details.as_object_mut(), announcement.details.as_object()) {
        all.extend(more.clone());
    }
    let entry = NewEntry::new(
        Action::ProgrammingKeyApproverChanged,
        names::PROGRAMMING_KEY,
        key.id,
        details,
    );
    change.record(entry);
    let holders: Vec<Uuid> = key.employee_id.into_iter().collect();
    let approvers_and_auditors = [Role::Approver, Role::Auditor];
    let mut recipients = holders_of(&**change, t, &approvers_and_auditors, &holders).await?;
    recipients.extend(announcement.previous_address);
    recipients.sort();
    recipients.dedup();
    let notice = Notice::ApproverChanged {
        change: announcement.change,
        programming_key_marking: key.marking.clone(),
        holder: holder_name(&**change, key).await?,
        changed_by: change.actor.name.clone(),
        hold_until,
    };
    change.mail(recipients, notice);
    Ok(hold_until)
}

/// Announces the change that turned `before` into `key`, if it is an
/// approver change.
pub(crate) async fn announce_if_changed(
    change: &mut Change,
    before: &ProgrammingKey,
    key: &mut ProgrammingKey,
) -> Result<()> {
    if let Some(kind) = key.approver_change_from(before) {
        let details = json!({
            "old": {"employee_id": before.employee_id, "roles": before.roles, "blocked": before.blocked,
                    "valid_from": before.valid_from, "valid_until": before.valid_until},
            "new": {"employee_id": key.employee_id, "roles": key.roles, "blocked": key.blocked,
                    "valid_from": key.valid_from, "valid_until": key.valid_until},
        });
        let announcement = Announcement {
            change: kind,
            previous_address: None,
            details,
        };
        announce(change, key, announcement).await?;
    }
    Ok(())
}
