//! Event data of keys and cylinders: storage, reads, exports and retention.
//!
//! A source's events are ordered by `occurred_at`, then by the device's sequence
//! number. The page cursor is the sequence number of the last event of a page:
//! it names exactly one event of the source, whose position the next page
//! continues from.

use std::collections::HashSet;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use countersign_domain::events::check_event_times;
use countersign_domain::history::{Action, Actor, NewEntry, names};
use countersign_domain::page::MAX_LIMIT;
use countersign_domain::permission::Principal;
use countersign_domain::ports::{EventData, EventExport, EventQuery, EventRecord, TargetRef};
use countersign_domain::tenant::{Tenant, TenantId};
use countersign_domain::workflow::TargetType;
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::change::Change;
use crate::db::DbResult;
use crate::entities::{cylinders, events, keys, tenants};
use crate::store::{Store, scoped};
use crate::tenants::to_domain as tenant_to_domain;

/// Bind parameters one statement may carry.
fn parameter_limit(backend: DbBackend) -> usize {
    match backend {
        DbBackend::Postgres => 65_535,
        _ => 32_766,
    }
}

/// Bind parameters of one inserted event row.
const COLUMNS_PER_ROW: usize = 11;

const MAX_KIND_LEN: usize = 64;
const MAX_MARKING_LEN: usize = 200;

fn check_event(e: &EventRecord) -> Result<()> {
    let kind_ok = !e.kind.is_empty()
        && e.kind.len() <= MAX_KIND_LEN
        && e.kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !kind_ok {
        return Err(Error::invalid(format!(
            "event {}: kind must be 1 to {MAX_KIND_LEN} characters of a-z, 0-9 and _",
            e.seq
        )));
    }
    if e.seq < 0 {
        return Err(Error::invalid(format!(
            "event {}: seq must not be negative",
            e.seq
        )));
    }
    let too_long = |m: &Option<String>| {
        m.as_ref()
            .is_some_and(|m| m.chars().count() > MAX_MARKING_LEN)
    };
    if too_long(&e.key_marking) || too_long(&e.cylinder_marking) {
        return Err(Error::invalid(format!(
            "event {}: markings are at most {MAX_MARKING_LEN} characters",
            e.seq
        )));
    }
    Ok(())
}

/// The key or cylinder whose events are meant, in the tenant; else 404.
async fn target(
    conn: &impl ConnectionTrait,
    t: TenantId,
    source: TargetType,
    id: Uuid,
) -> Result<TargetRef> {
    let (marking, name) = match source {
        TargetType::Key => {
            let k = scoped::<keys::Entity>(conn, t, id, false, "key").await?;
            (k.marking, k.name)
        }
        TargetType::Cylinder => {
            let c = scoped::<cylinders::Entity>(conn, t, id, false, "cylinder").await?;
            (c.marking, c.name)
        }
    };
    Ok(TargetRef {
        target_type: source,
        id,
        marking,
        name,
    })
}

async fn tenant(conn: &impl ConnectionTrait, t: TenantId) -> Result<Tenant> {
    let m = tenants::Entity::find_by_id(t.0)
        .one(conn)
        .await
        .db()?
        .ok_or_else(|| Error::not_found("tenant"))?;
    tenant_to_domain(m)
}

/// A source's events inside the query's time range, in their order.
fn in_range(
    t: TenantId,
    source: TargetType,
    source_id: Uuid,
    query: &EventQuery,
) -> Select<events::Entity> {
    use events::Column as C;
    let mut select = events::Entity::find()
        .filter(C::TenantId.eq(t.0))
        .filter(C::SourceType.eq(source.as_str()))
        .filter(C::SourceId.eq(source_id));
    if let Some(from) = query.from {
        select = select.filter(C::OccurredAt.gte(from));
    }
    if let Some(to) = query.to {
        select = select.filter(C::OccurredAt.lt(to));
    }
    select
        .order_by_asc(C::OccurredAt)
        .order_by_asc(C::DeviceSeq)
}

/// Continues after the event with sequence number `after`. An event that is no
/// longer there was deleted by retention, and with it every event before it, so
/// the next page starts at the first remaining event.
async fn after_cursor(
    conn: &impl ConnectionTrait,
    select: Select<events::Entity>,
    t: TenantId,
    source: TargetType,
    source_id: Uuid,
    after: i64,
) -> Result<Select<events::Entity>> {
    use events::Column as C;
    let cursor = events::Entity::find()
        .filter(C::TenantId.eq(t.0))
        .filter(C::SourceType.eq(source.as_str()))
        .filter(C::SourceId.eq(source_id))
        .filter(C::DeviceSeq.eq(after))
        .one(conn)
        .await
        .db()?;
    Ok(match cursor {
        Some(c) => select.filter(
            Condition::any().add(C::OccurredAt.gt(c.occurred_at)).add(
                Condition::all()
                    .add(C::OccurredAt.eq(c.occurred_at))
                    .add(C::DeviceSeq.gt(c.device_seq)),
            ),
        ),
        None => select,
    })
}

fn to_record(m: events::Model) -> EventRecord {
    EventRecord {
        seq: m.device_seq,
        occurred_at: m.occurred_at,
        kind: m.kind,
        key_marking: m.key_marking,
        cylinder_marking: m.cylinder_marking,
        job_id: m.job_id,
    }
}

fn rfc3339(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |at| {
        Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    })
}

/// What the history says about an access: which source and which range.
fn access_details(target: &TargetRef, query: &EventQuery, count: usize) -> Value {
    json!({
        "source": {"type": target.target_type.as_str(), "id": target.id, "marking": target.marking},
        "range": {"from": rfc3339(query.from), "to": rfc3339(query.to)},
        "count": count,
    })
}

fn subject_type(source: TargetType) -> &'static str {
    match source {
        TargetType::Key => names::KEY,
        TargetType::Cylinder => names::CYLINDER,
    }
}

/// The history entry of an access to a source's events.
fn access(action: Action, source: TargetType, source_id: Uuid, details: Value) -> NewEntry {
    NewEntry::new(action, subject_type(source), source_id, details)
}

/// Stores a batch of a source's events, idempotent by the device's sequence
/// number, and records how many arrived and how many were new.
pub(crate) async fn insert_events(
    change: &mut Change,
    source: TargetType,
    source_id: Uuid,
    job_id: Option<Uuid>,
    events: Vec<EventRecord>,
) -> Result<u64> {
    events.iter().try_for_each(check_event)?;
    let (t, now) = (change.tenant, change.now);
    check_event_times(events.iter().map(|e| e.occurred_at), now)?;
    target(&**change, t, source, source_id).await?;
    let received = events.len();
    // A repeated sequence number inside the batch is the same event sent twice.
    let mut seen = HashSet::with_capacity(events.len());
    let rows: Vec<EventRecord> = events.into_iter().filter(|e| seen.insert(e.seq)).collect();
    let per_statement = parameter_limit(change.get_database_backend()) / COLUMNS_PER_ROW;
    let mut stored = 0;
    for chunk in rows.chunks(per_statement) {
        let insert = insert_statement(t, source, source_id, job_id, chunk, now)?;
        stored += change.execute(&insert).await.db()?.rows_affected();
    }
    let details = json!({"job_id": job_id, "received": received, "stored": stored});
    change.record(access(
        Action::EventDataReceived,
        source,
        source_id,
        details,
    ));
    Ok(stored)
}

/// One `INSERT … ON CONFLICT DO NOTHING` of a chunk of events.
fn insert_statement(
    t: TenantId,
    source: TargetType,
    source_id: Uuid,
    job_id: Option<Uuid>,
    chunk: &[EventRecord],
    now: DateTime<Utc>,
) -> Result<sea_orm::sea_query::InsertStatement> {
    use events::Column as C;
    let mut insert = Query::insert();
    insert
        .into_table(events::Entity)
        .columns([
            C::Id,
            C::TenantId,
            C::SourceType,
            C::SourceId,
            C::DeviceSeq,
            C::OccurredAt,
            C::Kind,
            C::KeyMarking,
            C::CylinderMarking,
            C::JobId,
            C::ReceivedAt,
        ])
        .on_conflict(
            OnConflict::columns([C::TenantId, C::SourceType, C::SourceId, C::DeviceSeq])
                .do_nothing()
                .to_owned(),
        );
    for e in chunk {
        insert
            .values([
                Uuid::now_v7().into(),
                t.0.into(),
                source.as_str().into(),
                source_id.into(),
                e.seq.into(),
                e.occurred_at.trunc_subsecs(6).into(),
                e.kind.clone().into(),
                e.key_marking.clone().into(),
                e.cylinder_marking.clone().into(),
                e.job_id.or(job_id).into(),
                now.into(),
            ])
            .map_err(|e| Error::Internal(e.into()))?;
    }
    Ok(insert)
}

#[async_trait::async_trait]
impl EventData for Store {
    #[tracing::instrument(skip(self, events), fields(tenant = %t, count = events.len()))]
    async fn store_events(
        &self,
        t: TenantId,
        source: TargetType,
        source_id: Uuid,
        job_id: Option<Uuid>,
        events: Vec<EventRecord>,
    ) -> Result<u64> {
        let mut change = self.change_as(t, Actor::system()).await?;
        let stored = insert_events(&mut change, source, source_id, job_id, events).await?;
        self.commit(change).await?;
        Ok(stored)
    }

    #[tracing::instrument(skip(self, by), fields(tenant = %t))]
    async fn read_events(
        &self,
        t: TenantId,
        by: &Principal,
        source: TargetType,
        source_id: Uuid,
        query: EventQuery,
    ) -> Result<(Tenant, Vec<EventRecord>, Option<i64>)> {
        let limit = query.limit.clamp(1, MAX_LIMIT);
        let mut change = self.change(t, by).await?;
        let target = target(&*change, t, source, source_id).await?;
        let tenant = tenant(&*change, t).await?;
        let mut select = in_range(t, source, source_id, &query);
        if let Some(after) = query.after_seq {
            select = after_cursor(&*change, select, t, source, source_id, after).await?;
        }
        let mut rows = select
            .limit(u64::from(limit) + 1)
            .all(&*change)
            .await
            .db()?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more {
            rows.last().map(|r| r.device_seq)
        } else {
            None
        };
        let mut details = access_details(&target, &query, rows.len());
        details["cursor"] = query.after_seq.map_or(Value::Null, Value::from);
        change.record(access(Action::EventDataRead, source, source_id, details));
        self.commit(change).await?;
        Ok((tenant, rows.into_iter().map(to_record).collect(), next))
    }

    #[tracing::instrument(skip(self, by), fields(tenant = %t))]
    async fn export_events(
        &self,
        t: TenantId,
        by: &Principal,
        source: TargetType,
        source_id: Uuid,
        query: EventQuery,
        format: &str,
    ) -> Result<EventExport> {
        let format = match format {
            "csv" => "csv",
            "pdf" => "pdf",
            other => {
                return Err(Error::rule(
                    ErrorCode::InvalidQuery,
                    format!("format `{other}` is not one of csv, pdf"),
                ));
            }
        };
        let mut change = self.change(t, by).await?;
        let target = target(&*change, t, source, source_id).await?;
        let tenant = tenant(&*change, t).await?;
        let rows = in_range(t, source, source_id, &query)
            .all(&*change)
            .await
            .db()?;
        let mut details = access_details(&target, &query, rows.len());
        details["format"] = Value::from(format);
        change.record(access(
            Action::EventDataExported,
            source,
            source_id,
            details,
        ));
        self.commit(change).await?;
        Ok(EventExport {
            tenant,
            target,
            query,
            events: rows.into_iter().map(to_record).collect(),
        })
    }
}

impl Store {
    /// Retention (SPEC §4.8): deletes every tenant's events that are older than
    /// its `event_retention_days` at `now`, and records each deletion in the
    /// tenant's history: how many, and the range of their times, never the data.
    /// Returns how many events were deleted in all.
    pub async fn delete_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let periods: Vec<i32> = tenants::Entity::find()
            .select_only()
            .column(tenants::Column::EventRetentionDays)
            .distinct()
            .into_tuple()
            .all(&self.all_tenants)
            .await
            .db()?;
        let mut deleted = 0;
        for days in periods {
            let cutoff = now - Duration::days(i64::from(days));
            // The tenants with anything due, by index and in one statement:
            // most have nothing due, and for them no transaction is opened.
            let due = Query::select()
                .expr(Expr::val(1))
                .from(events::Entity)
                .and_where(
                    Expr::col((events::Entity, events::Column::TenantId))
                        .equals((tenants::Entity, tenants::Column::Id)),
                )
                .and_where(Expr::col((events::Entity, events::Column::OccurredAt)).lt(cutoff))
                .to_owned();
            let tenants: Vec<Uuid> = tenants::Entity::find()
                .select_only()
                .column(tenants::Column::Id)
                .filter(tenants::Column::EventRetentionDays.eq(days))
                .filter(Expr::exists(due))
                .into_tuple()
                .all(&self.all_tenants)
                .await
                .db()?;
            for tenant in tenants {
                deleted += self
                    .delete_expired_of(TenantId(tenant), cutoff, days)
                    .await?;
            }
        }
        Ok(deleted)
    }

    #[tracing::instrument(skip(self), fields(tenant = %t))]
    async fn delete_expired_of(
        &self,
        t: TenantId,
        cutoff: DateTime<Utc>,
        retention_days: i32,
    ) -> Result<u64> {
        use events::Column as C;
        let mut change = self.change_as(t, Actor::system()).await?;
        // Serialises retention of one tenant across replicas (a no-op on SQLite,
        // which has one writer anyway).
        tenants::Entity::find_by_id(t.0)
            .lock_exclusive()
            .one(&*change)
            .await
            .db()?;
        let expired = Condition::all()
            .add(C::TenantId.eq(t.0))
            .add(C::OccurredAt.lt(cutoff));
        let (oldest, newest) = events::Entity::find()
            .select_only()
            .column_as(C::OccurredAt.min(), "oldest")
            .column_as(C::OccurredAt.max(), "newest")
            .filter(expired.clone())
            .into_tuple::<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)>()
            .one(&*change)
            .await
            .db()?
            .unwrap_or((None, None));
        let (Some(oldest), Some(newest)) = (oldest, newest) else {
            return Ok(0);
        };
        // Bounded by what was counted, so that the entry describes exactly the
        // rows this statement removes, even if an old event arrives meanwhile.
        let deleted = events::Entity::delete_many()
            .filter(expired)
            .filter(C::OccurredAt.gte(oldest))
            .filter(C::OccurredAt.lte(newest))
            .exec(&*change)
            .await
            .db()?
            .rows_affected;
        if deleted == 0 {
            return Ok(0);
        }
        change.record(NewEntry {
            action: Action::EventDataDeleted,
            subject_type: names::EVENT_DATA,
            subject_id: None,
            details: json!({
                "reason": "retention",
                "count": deleted,
                "oldest": rfc3339(Some(oldest)),
                "newest": rfc3339(Some(newest)),
                "cutoff": rfc3339(Some(cutoff)),
                "event_retention_days": retention_days,
            }),
        });
        self.commit(change).await?;
        Ok(deleted)
    }
}
