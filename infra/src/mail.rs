//! The e-mail outbox: mails are written in the transaction of the change that
//! causes them and sent later by the outbox worker.

use chrono::{DateTime, Utc};
use countersign_domain::notification::{Notice, render};
use countersign_domain::Result;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use uuid::Uuid;

use crate::db::DbResult;
use crate::entities::{mail_outbox, tenants};
use crate::tenants::to_domain as tenant_to_domain;

/// Queues one mail per recipient, rendered in the tenant's language and time zone.
pub(crate) async fn enqueue(conn: &impl ConnectionTrait, tenant: &tenants::Model, recipients: &[String], notice: &Notice, public_url: &str, now: DateTime<Utc>) -> Result<()> {
    let domain = tenant_to_domain(tenant.clone())?;
    let mail = render(notice, domain.settings.locale, domain.fixed().base_timezone(), public_url);
    for recipient in recipients {
        mail_outbox::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(Some(tenant.id)),
            recipient: Set(recipient.clone()),
            subject: Set(mail.subject.clone()),
            body: Set(mail.body.clone()),
            status: Set("pending".to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(now),
            last_error: Set(None),
            created_at: Set(now),
            sent_at: Set(None),
        }
        .insert(conn)
        .await
        .db()?;
    }
    Ok(())
}
