//! The webhook outlet: every change hands it the events its history entries
//! stand for, in the change's transaction. Endpoints and their deliveries
//! are not kept yet, so nothing is queued; the events are traced.

use chrono::{DateTime, Utc};
use countersign_domain::Result;
use countersign_domain::integrations::WebhookEvent;
use countersign_domain::tenant::TenantId;
use sea_orm::ConnectionTrait;

/// Queues the deliveries of `events` to the tenant's endpoints.
pub(crate) async fn enqueue(
    _conn: &impl ConnectionTrait,
    t: TenantId,
    events: &[WebhookEvent],
    _now: DateTime<Utc>,
) -> Result<()> {
    for event in events {
        tracing::trace!(tenant = %t, event = %event.event_type, subject = ?event.subject_id, "webhook event");
    }
    Ok(())
}
