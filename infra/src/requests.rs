//! Event-log requests and decisions (SPEC §4): the transactions around the
//! domain's state machine, with their history entries and e-mails.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use countersign_domain::directory::KeyStatus;
use countersign_domain::history::{Action, Actor, NewEntry, names};
use countersign_domain::notification::{Notice, RequestSummary};
use countersign_domain::page::{Page, PageRequest};
use countersign_domain::permission::{Principal, PrincipalKind};
use countersign_domain::ports::{
    DecisionView, RequestFilter, RequestView, RequesterView, Requests, TargetRef,
};
use countersign_domain::role::Role;
use countersign_domain::tenant::TenantId;
use countersign_domain::workflow::{
    CastDecision, DecisionOutcome, JobEvent, JobKind, JobStatus, PendingRequest, Person, Request,
    RequestStatus, TargetType, Verdict,
};
use countersign_domain::{Error, ErrorCode, Result};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, JoinType,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set,
};
use serde_json::json;
use uuid::Uuid;

use crate::change::Change;
use crate::db::DbResult;
use crate::entities::{
    api_keys, cylinders, employees, event_log_requests as requests, keys, programming_keys,
    readout_jobs as jobs, request_decisions as decisions, tenants,
};
use crate::jobs::{NewJob, insert_job, job_view, latest_jobs_of, set_job_status};
use crate::programming_keys::to_domain as programming_key_to_domain;
use crate::store::{Store, scoped};
use crate::sweeper::expire_locked;

/// The person behind a caller: the programming key and its holder, or for a
/// webservice credential the programming key and employee that created it.
pub(crate) async fn person_of(conn: &impl ConnectionTrait, p: &Principal) -> Result<Person> {
    let (programming_key_id, employee_id) = match p.kind {
        PrincipalKind::User => {
            let key = programming_keys::Entity::find_by_id(p.id)
                .one(conn)
                .await
                .db()?;
            (Some(p.id), key.and_then(|k| k.employee_id))
        }
        PrincipalKind::Webservice => api_keys::Entity::find_by_id(p.id)
            .one(conn)
            .await
            .db()?
            .map_or((None, None), |k| {
                (k.created_by_programming_key_id, k.created_by_employee_id)
            }),
        _ => (None, None),
    };
    Ok(Person {
        credential_id: p.id,
        programming_key_id,
        employee_id,
    })
}

/// The requester of a stored request, as four eyes compare people.
pub(crate) fn requester_of(row: &requests::Model) -> Person {
    Person {
        credential_id: row.requested_by_id,
        programming_key_id: row.requested_by_programming_key_id,
        employee_id: row.requested_by_employee_id,
    }
}

/// An approver able to act: key holds the role and can log in, holder has an e-mail.
struct Approver {
    person: Person,
    email: String,
}

async fn approvers_able_to_act(
    conn: &impl ConnectionTrait,
    t: TenantId,
    now: DateTime<Utc>,
) -> Result<Vec<Approver>> {
    let keys = programming_keys::Entity::find()
        .filter(programming_keys::Column::TenantId.eq(t.0))
        .filter(programming_keys::Column::Status.eq(KeyStatus::Issued))
        .filter(programming_keys::Column::Blocked.eq(false))
        .all(conn)
        .await
        .db()?;
    let holders: Vec<Uuid> = keys.iter().filter_map(|k| k.employee_id).collect();
    let people = employees::Entity::find()
        .filter(employees::Column::TenantId.eq(t.0))
        .filter(employees::Column::Id.is_in(holders))
        .all(conn)
        .await
        .db()?;
    let mut approvers = Vec::new();
    for row in &keys {
        let key = programming_key_to_domain(row)?;
        let holder = people
            .iter()
            .find(|e| Some(e.id) == key.employee_id)
            .map(|e| crate::employees::to_domain(e.clone()));
        if key.can_act_as_approver(holder.as_ref(), now)
            && let Some(email) = holder.and_then(|h| h.email)
        {
            approvers.push(Approver {
                person: Person::of_key(key.id, key.employee_id),
                email,
            });
        }
    }
    Ok(approvers)
}

pub(crate) fn summary_of(r: &requests::Model) -> Result<RequestSummary> {
    Ok(RequestSummary {
        id: r.id,
        target_type: r.target_type,
        target_marking: r.target_marking.clone(),
        target_name: r.target_name.clone(),
        requested_by: r.requested_by_name.clone(),
        requested_at: r.requested_at,
        comment: r.comment.clone(),
    })
}

/// The requester's e-mail address, when a person with one made the request.
async fn requester_email(conn: &impl ConnectionTrait, r: &requests::Model) -> Result<Vec<String>> {
    let Some(employee) = r.requested_by_employee_id else {
        return Ok(vec![]);
    };
    let row = employees::Entity::find_by_id(employee)
        .one(conn)
        .await
        .db()?;
    Ok(row.and_then(|e| e.email).into_iter().collect())
}

/// Tells the requester how their request ended.
pub(crate) async fn notify_requester(
    change: &mut Change,
    r: &requests::Model,
    notice: Notice,
) -> Result<()> {
    let to = requester_email(&**change, r).await?;
    change.mail(to, notice);
    Ok(())
}

/// Moves a request to `status`, recording it in the history.
pub(crate) async fn set_request_status(
    change: &mut Change,
    r: requests::Model,
    status: RequestStatus,
    reason: Option<String>,
) -> Result<requests::Model> {
    let (id, from, now) = (r.id, r.status, change.now);
    let mut active: requests::ActiveModel = r.into();
    active.status = Set(status);
    active.updated_at = Set(now);
    if !status.is_open() {
        active.closed_at = Set(Some(now));
        active.reason = Set(reason.clone());
    }
    let row = active.update(&**change).await.db()?;
    let details = json!({"from": from, "to": status.as_str(), "reason": reason});
    change.record(NewEntry::new(
        Action::RequestStatusChanged,
        names::REQUEST,
        id,
        details,
    ));
    change.wake_agents();
    Ok(row)
}

async fn load_target(
    conn: &impl ConnectionTrait,
    t: TenantId,
    target_type: TargetType,
    id: Uuid,
) -> Result<TargetRef> {
    match target_type {
        TargetType::Key => {
            let key = crate::keys::key_to_domain(
                scoped::<keys::Entity>(conn, t, id, false, "key").await?,
            )?;
            if !key.model.keeps_event_log() {
                return Err(Error::rule(
                    ErrorCode::NoEventLog,
                    "a basic key keeps no event log",
                ));
            }
            if key.status != KeyStatus::Issued {
                return Err(Error::rule(
                    ErrorCode::KeyNotIssued,
                    "the key is not issued to an employee",
                ));
            }
            Ok(TargetRef {
                target_type,
                id,
                marking: key.marking,
                name: key.name,
            })
        }
        TargetType::Cylinder => {
            let c = scoped::<cylinders::Entity>(conn, t, id, false, "cylinder").await?;
            Ok(TargetRef {
                target_type,
                id,
                marking: c.marking,
                name: c.name,
            })
        }
    }
}

fn open_request_conflict(err: Error) -> Error {
    match err.code() {
        ErrorCode::AlreadyExists => Error::rule(
            ErrorCode::RequestAlreadyOpen,
            "a request for this target is already open",
        ),
        _ => err,
    }
}

/// Decisions of a tenant's requests, oldest first.
async fn decisions_of(
    conn: &impl ConnectionTrait,
    t: TenantId,
    request_ids: Vec<Uuid>,
) -> Result<Vec<decisions::Model>> {
    decisions::Entity::find()
        .filter(decisions::Column::TenantId.eq(t.0))
        .filter(decisions::Column::RequestId.is_in(request_ids))
        .order_by_asc(decisions::Column::DecidedAt)
        .order_by_asc(decisions::Column::Id)
        .all(conn)
        .await
        .db()
}

fn decision_view(d: &decisions::Model) -> Result<DecisionView> {
    Ok(DecisionView {
        verdict: d.decision,
        comment: d.comment.clone(),
        employee_id: d.employee_id,
        programming_key_id: d.programming_key_id,
        name: d.approver_name.clone(),
        decided_at: d.decided_at,
    })
}

fn request_view(
    r: &requests::Model,
    decisions: &[decisions::Model],
    job: Option<&jobs::Model>,
) -> Result<RequestView> {
    let kind = match r.requested_by_kind.as_str() {
        "webservice" => PrincipalKind::Webservice,
        _ => PrincipalKind::User,
    };
    Ok(RequestView {
        id: r.id,
        target: TargetRef {
            target_type: r.target_type,
            id: r.target_id,
            marking: r.target_marking.clone(),
            name: r.target_name.clone(),
        },
        status: r.status,
        comment: r.comment.clone(),
        requested_by: RequesterView {
            kind,
            employee_id: r.requested_by_employee_id,
            programming_key_id: (kind == PrincipalKind::User).then_some(r.requested_by_id),
            api_key_id: (kind == PrincipalKind::Webservice).then_some(r.requested_by_id),
            name: r.requested_by_name.clone(),
        },
        requested_at: r.requested_at,
        approvals_required: r.approvals_required as u8,
        decisions: decisions
            .iter()
            .filter(|d| d.request_id == r.id)
            .map(decision_view)
            .collect::<Result<_>>()?,
        job: job.map(job_view).transpose()?,
        expires_at: r.expires_at,
        reason: r.reason.clone(),
    })
}

/// Views of a tenant's requests with at most two queries, whatever their number.
async fn views(
    conn: &impl ConnectionTrait,
    t: TenantId,
    rows: &[requests::Model],
) -> Result<Vec<RequestView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let all_decisions = decisions_of(conn, t, ids).await?;
    views_with(conn, t, rows, &all_decisions).await
}

/// Views of a tenant's requests, their decisions given.
async fn views_with(
    conn: &impl ConnectionTrait,
    t: TenantId,
    rows: &[requests::Model],
    all_decisions: &[decisions::Model],
) -> Result<Vec<RequestView>> {
    // A request's job is created when it is approved, in the same transaction.
    let approved: Vec<Uuid> = rows
        .iter()
        .filter(|r| r.approved_at.is_some())
        .map(|r| r.id)
        .collect();
    let all_jobs = if approved.is_empty() {
        Vec::new()
    } else {
        latest_jobs_of(conn, t, approved).await?
    };
    rows.iter()
        .map(|r| {
            request_view(
                r,
                all_decisions,
                all_jobs.iter().find(|j| j.request_id == Some(r.id)),
            )
        })
        .collect()
}

async fn view_of(conn: &impl ConnectionTrait, t: TenantId, id: Uuid) -> Result<RequestView> {
    let row = scoped::<requests::Entity>(conn, t, id, false, "event-log request").await?;
    let mut all = views(conn, t, std::slice::from_ref(&row)).await?;
    all.pop()
        .ok_or_else(|| Error::not_found("event-log request"))
}

/// Loads a request for a change, locked until the transaction ends.
async fn lock_request(
    conn: &impl ConnectionTrait,
    t: TenantId,
    id: Uuid,
) -> Result<requests::Model> {
    scoped::<requests::Entity>(conn, t, id, true, "event-log request").await
}

fn approved_state(
    tenant: &tenants::Model,
    r: requests::Model,
    now: DateTime<Utc>,
) -> requests::ActiveModel {
    let mut active: requests::ActiveModel = r.into();
    active.approved_at = Set(Some(now));
    active.expires_at = Set(Some(
        now + Duration::hours(i64::from(tenant.execution_ttl_hours)),
    ));
    active
}

impl Store {
    /// The expiry rule holds at the moment of every call: a request past its
    /// expiry (and not under way) is expired now, in Countersign's name, and
    /// the call is refused with `request_expired`.
    async fn refuse_if_expired(
        &self,
        mut change: Change,
        row: requests::Model,
    ) -> Result<(Change, requests::Model)> {
        if row.expires_at.is_none_or(|at| at > change.now) {
            return Ok((change, row));
        }
        let caller = std::mem::replace(&mut change.actor, Actor::system());
        if !expire_locked(&mut change, row.clone()).await? {
            change.actor = caller;
            return Ok((change, row));
        }
        self.commit(change).await?;
        Err(Error::rule(
            ErrorCode::RequestExpired,
            "the request expired before this call",
        ))
    }

    /// One page of a tenant's requests, from the database.
    async fn requests_page(
        &self,
        t: TenantId,
        filter: RequestFilter,
        page: PageRequest,
    ) -> Result<Page<RequestView>> {
        let mut query = requests::Entity::find().filter(requests::Column::TenantId.eq(t.0));
        if let Some(status) = filter.status {
            query = query.filter(requests::Column::Status.eq(status.as_str()));
        }
        if let Some(target_type) = filter.target_type {
            query = query.filter(requests::Column::TargetType.eq(target_type.as_str()));
        }
        if let Some(after) = page.after {
            query = query.filter(requests::Column::Id.gt(after));
        }
        // One round trip for the page, each request with the ids of its
        // decisions; the decisions themselves only for requests that have some.
        let page_ids = query
            .select_only()
            .column(requests::Column::Id)
            .order_by_asc(requests::Column::Id)
            .limit(page.fetch())
            .into_query();
        let decided_on = requests::Entity::belongs_to(decisions::Entity)
            .from(requests::Column::Id)
            .to(decisions::Column::RequestId)
            .into();
        let statement = requests::Entity::find()
            .filter(requests::Column::TenantId.eq(t.0))
            .filter(requests::Column::Id.in_subquery(page_ids))
            .join(JoinType::LeftJoin, decided_on)
            .column_as(decisions::Column::Id, "decision_id")
            .order_by_asc(requests::Column::Id)
            .build(self.db.get_database_backend());
        let txn = self.begin_in(t).await?;
        let found = txn.query_all_raw(statement).await.db()?;
        let mut rows: Vec<requests::Model> = Vec::with_capacity(found.len());
        let mut decided = Vec::new();
        for result in &found {
            let id: Uuid = result.try_get("", "id").db()?;
            if rows.last().is_none_or(|r| r.id != id) {
                rows.push(requests::Model::from_query_result(result, "").db()?);
            }
            if result
                .try_get::<Option<Uuid>>("", "decision_id")
                .db()?
                .is_some()
                && decided.last() != Some(&id)
            {
                decided.push(id);
            }
        }
        let all_decisions = if decided.is_empty() {
            Vec::new()
        } else {
            decisions_of(&txn, t, decided).await?
        };
        let rows = Page::from_rows(rows, &page, |r| r.id);
        let items = views_with(&txn, t, &rows.items, &all_decisions).await?;
        txn.commit().await.db()?;
        Ok(Page {
            items,
            next_cursor: rows.next_cursor,
        })
    }
}

/// Approves a request: its job is created in the state its target starts in.
async fn approve_now(
    change: &mut Change,
    tenant: &tenants::Model,
    r: requests::Model,
) -> Result<requests::Model> {
    let target_type = r.target_type;
    let row = approved_state(tenant, r, change.now)
        .update(&**change)
        .await
        .db()?;
    let row = set_request_status(change, row, RequestStatus::Approved, None).await?;
    let new = NewJob {
        kind: JobKind::RequestReadout,
        request_id: Some(row.id),
        target_type,
        target_id: row.target_id,
        target_marking: &row.target_marking,
        status: JobStatus::initial(target_type),
        device_id: None,
    };
    insert_job(change, new).await?;
    Ok(row)
}

/// The approvers able to act on a new request of `requester`; fewer than the
/// tenant requires is `no_approver_available`.
async fn approvers_for(
    change: &Change,
    tenant: &tenants::Model,
    requester: &Person,
) -> Result<Vec<Approver>> {
    if !tenant.approval_required {
        return Ok(Vec::new());
    }
    let able: Vec<Approver> = approvers_able_to_act(&**change, change.tenant, change.now)
        .await?
        .into_iter()
        .filter(|a| !a.person.is_same_as(requester))
        .collect();
    if able.len() < tenant.approvals_required as usize {
        return Err(Error::rule(
            ErrorCode::NoApproverAvailable,
            format!(
                "{} approver(s) able to act, {} required",
                able.len(),
                tenant.approvals_required
            ),
        ));
    }
    Ok(able)
}

/// The new request's row, pending approval.
fn new_request_row(
    change: &Change,
    tenant: &tenants::Model,
    by: &Principal,
    requester: &Person,
    target: &TargetRef,
    comment: Option<String>,
) -> requests::ActiveModel {
    let now = change.now;
    requests::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(change.tenant.0),
        target_type: Set(target.target_type),
        target_id: Set(target.id),
        target_marking: Set(target.marking.clone()),
        target_name: Set(target.name.clone()),
        status: Set(RequestStatus::PendingApproval),
        comment: Set(comment),
        requested_by_kind: Set(by.kind),
        requested_by_id: Set(by.id),
        requested_by_employee_id: Set(requester.employee_id),
        requested_by_programming_key_id: Set(requester.programming_key_id),
        requested_by_name: Set(change.actor.name.clone()),
        approvals_required: Set(tenant.approvals_required),
        requested_at: Set(now),
        approved_at: Set(None),
        expires_at: Set(Some(
            now + Duration::hours(i64::from(tenant.request_ttl_hours)),
        )),
        closed_at: Set(None),
        reason: Set(None),
        updated_at: Set(now),
    }
}

/// The locked request as the domain's state machine sees it.
async fn restore(change: &Change, row: &requests::Model) -> Result<Request> {
    let status = row.status;
    let cast = decisions_of(&**change, change.tenant, vec![row.id]).await?;
    let decisions = cast
        .iter()
        .map(|d| {
            Ok(CastDecision {
                verdict: d.decision,
                approver: Person::of_key(d.programming_key_id, Some(d.employee_id)),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Request::restore(status, || PendingRequest {
        requester: requester_of(row),
        approvals_required: row.approvals_required as u8,
        decisions,
    }))
}

/// Stores an approver's decision; a second one by the same approver is
/// `already_decided`.
async fn store_decision(
    change: &mut Change,
    row: &requests::Model,
    by: &Principal,
    employee_id: Uuid,
    verdict: Verdict,
    comment: Option<String>,
) -> Result<()> {
    let name = change.actor.name.clone();
    decisions::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(change.tenant.0),
        request_id: Set(row.id),
        decision: Set(verdict),
        comment: Set(comment.clone()),
        programming_key_id: Set(by.id),
        employee_id: Set(employee_id),
        approver_name: Set(name.clone()),
        decided_at: Set(change.now),
    }
    .insert(&**change)
    .await
    .db()
    .map_err(|e| match e.code() {
        ErrorCode::AlreadyExists => Error::rule(
            ErrorCode::AlreadyDecided,
            "you have already decided on this request",
        ),
        _ => e,
    })?;
    let details = json!({
        "verdict": verdict.as_str(),
        "comment": comment,
        "approver": {"employee_id": employee_id, "programming_key_id": by.id, "name": name},
    });
    change.record(NewEntry::new(
        Action::RequestDecided,
        names::REQUEST,
        row.id,
        details,
    ));
    Ok(())
}

/// The e-mail of the holder of a programming key, if any.
async fn holder_email(conn: &impl ConnectionTrait, employee: Option<Uuid>) -> Result<Vec<String>> {
    let Some(id) = employee else {
        return Ok(Vec::new());
    };
    let row = employees::Entity::find_by_id(id).one(conn).await.db()?;
    Ok(row.and_then(|e| e.email).into_iter().collect())
}

#[async_trait::async_trait]
impl Requests for Store {
    async fn create_request(
        &self,
        t: TenantId,
        by: &Principal,
        target_type: TargetType,
        target_id: Uuid,
        comment: Option<String>,
    ) -> Result<RequestView> {
        let mut change = self.change(t, by).await?;
        let tenant = crate::tenants::row(&*change, t).await?;
        let target = load_target(&*change, t, target_type, target_id).await?;
        let requester = person_of(&*change, by).await?;
        let approvers = approvers_for(&change, &tenant, &requester).await?;
        let row = new_request_row(&change, &tenant, by, &requester, &target, comment.clone())
            .insert(&*change)
            .await
            .db()
            .map_err(open_request_conflict)?;
        let details = json!({
            "target": {"type": target_type.as_str(), "id": target.id, "marking": target.marking, "name": target.name},
            "comment": comment,
            "approval_required": tenant.approval_required,
            "approvals_required": tenant.approvals_required,
        });
        change.record(NewEntry::new(
            Action::RequestCreated,
            names::REQUEST,
            row.id,
            details,
        ));
        if tenant.approval_required {
            let to = approvers.into_iter().map(|a| a.email).collect();
            let request = summary_of(&row)?;
            change.mail(to, Notice::ApprovalRequested { request });
        } else {
            let note = json!({"approval": "no approval required"});
            change.record(NewEntry::new(
                Action::RequestAutoApproved,
                names::REQUEST,
                row.id,
                note,
            ));
            approve_now(&mut change, &tenant, row.clone()).await?;
        }
        let view = view_of(&*change, t, row.id).await?;
        self.commit(change).await?;
        Ok(view)
    }

    async fn list_requests(
        &self,
        t: TenantId,
        filter: RequestFilter,
        page: PageRequest,
    ) -> Result<Page<RequestView>> {
        // First pages are kept while the tenant's requests and jobs are
        // unchanged, which only a live subscription to every replica's
        // changes can tell.
        if page.after.is_some() || !self.signal.reliable() {
            return self.requests_page(t, filter, page).await;
        }
        let key = (
            filter.status.map(RequestStatus::as_str),
            filter.target_type.map(TargetType::as_str),
            page.limit,
        );
        let work = self.signal.tenant(t.0);
        let stamp = self.signal.stamp(&work);
        if let Some(kept) = work.requests_page(&key, stamp) {
            return Ok((*kept).clone());
        }
        let fresh = self.requests_page(t, filter, page).await?;
        work.keep_requests_page(key, stamp, Arc::new(fresh.clone()));
        Ok(fresh)
    }

    async fn get_request(&self, t: TenantId, id: Uuid) -> Result<RequestView> {
        let txn = self.begin_in(t).await?;
        let view = view_of(&txn, t, id).await?;
        txn.commit().await.db()?;
        Ok(view)
    }

    async fn decide(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        verdict: Verdict,
        comment: Option<String>,
    ) -> Result<RequestView> {
        let change = self.change(t, by).await?;
        let row = lock_request(&*change, t, id).await?;
        let (mut change, row) = self.refuse_if_expired(change, row).await?;
        let tenant = crate::tenants::row(&*change, t).await?;
        let approver = person_of(&*change, by).await?;
        let outcome = restore(&change, &row)
            .await?
            .into_pending()?
            .decide(approver, verdict)?;
        let employee_id = approver.employee_id.ok_or_else(|| {
            Error::rule(
                ErrorCode::Forbidden,
                "only a person with a programming key decides",
            )
        })?;
        let able = approvers_able_to_act(&*change, t, change.now).await?;
        if !able.iter().any(|a| a.person.credential_id == by.id) {
            return Err(Error::rule(
                ErrorCode::Forbidden,
                "an approver acts only while their key is issued, valid and unblocked and its holder has an e-mail address",
            ));
        }
        let key = scoped::<programming_keys::Entity>(&*change, t, by.id, false, "programming key")
            .await?;
        programming_key_to_domain(&key)?.check_may_decide(change.now)?;
        store_decision(&mut change, &row, by, employee_id, verdict, comment.clone()).await?;
        let request = summary_of(&row)?;
        let ended = match outcome {
            DecisionOutcome::StillPending(_) => None,
            DecisionOutcome::Approved(_) => Some(approve_now(&mut change, &tenant, row).await?),
            DecisionOutcome::Rejected => {
                Some(set_request_status(&mut change, row, RequestStatus::Rejected, None).await?)
            }
        };
        if let Some(row) = ended {
            let notice = Notice::RequestDecided {
                request,
                verdict,
                approver: change.actor.name.clone(),
                comment,
            };
            notify_requester(&mut change, &row, notice).await?;
        }
        let view = view_of(&*change, t, id).await?;
        self.commit(change).await?;
        Ok(view)
    }

    async fn cancel_request(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<RequestView> {
        let mut change = self.change(t, by).await?;
        let row = lock_request(&*change, t, id).await?;
        cancel_locked(&mut change, row, reason).await?;
        let view = view_of(&*change, t, id).await?;
        self.commit(change).await?;
        Ok(view)
    }

    async fn transfer_request(
        &self,
        t: TenantId,
        by: &Principal,
        id: Uuid,
        programming_key_id: Uuid,
    ) -> Result<RequestView> {
        let change = self.change(t, by).await?;
        let row = lock_request(&*change, t, id).await?;
        let (mut change, row) = self.refuse_if_expired(change, row).await?;
        if row.status != RequestStatus::Approved || row.target_type != TargetType::Cylinder {
            return Err(Error::rule(
                ErrorCode::InvalidStateTransition,
                "only an approved cylinder request is transferred",
            ));
        }
        let key_row = crate::keys::referenced::<programming_keys::Entity>(
            &*change,
            t,
            programming_key_id,
            "programming key",
        )
        .await?;
        let key = programming_key_to_domain(&key_row)?;
        if !key.roles.contains(Role::CylinderProgrammer) {
            return Err(Error::rule(
                ErrorCode::InvalidRole,
                "the programming key lacks the cylinder_programmer role",
            ));
        }
        if key.login_refusal(change.now).is_some() {
            return Err(Error::rule(
                ErrorCode::ValidationFailed,
                "the programming key must be issued, valid and not blocked",
            ));
        }
        let job = latest_jobs_of(&*change, t, vec![row.id])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("readout job"))?;
        let details = json!({"programming_key_id": key.id, "programming_key_marking": key.marking});
        set_job_status(
            &mut change,
            job,
            JobEvent::Transfer,
            Some(Some(key.id)),
            details,
        )
        .await?;
        let holder = holder_email(&*change, key.employee_id).await?;
        let notice = Notice::JobTransferred {
            request: summary_of(&row)?,
            programming_key_marking: key.marking,
        };
        change.mail(holder, notice);
        let view = view_of(&*change, t, id).await?;
        self.commit(change).await?;
        Ok(view)
    }
}

/// Cancels a locked request and its job; refused while the job is under way.
pub(crate) async fn cancel_locked(
    change: &mut Change,
    row: requests::Model,
    reason: Option<String>,
) -> Result<requests::Model> {
    let job = latest_jobs_of(&**change, change.tenant, vec![row.id])
        .await?
        .pop();
    let job_status = job.as_ref().map(|j| j.status);
    let busy = job_status.is_some_and(JobStatus::is_busy);
    let status = restore(change, &row).await?.cancel(busy)?;
    if let Some(job) = job.filter(|_| job_status.is_some_and(|s| !s.is_terminal())) {
        let details = json!({"reason": reason});
        set_job_status(change, job, JobEvent::Cancel, None, details).await?;
    }
    set_request_status(change, row, status, reason).await
}

/// A user key was returned: its open request is cancelled (`target_returned`)
/// unless the readout is under way, and the requester is told.
pub(crate) async fn on_key_returned(change: &mut Change, key_id: Uuid) -> Result<()> {
    let open = requests::Entity::find()
        .filter(requests::Column::TenantId.eq(change.tenant.0))
        .filter(requests::Column::TargetType.eq(TargetType::Key))
        .filter(requests::Column::TargetId.eq(key_id))
        .filter(
            requests::Column::Status
                .is_in([RequestStatus::PendingApproval, RequestStatus::Approved]),
        )
        .lock_exclusive()
        .all(&**change)
        .await
        .db()?;
    for row in open {
        let request = summary_of(&row)?;
        let reason = Some("target_returned".to_owned());
        if let Ok(row) = cancel_locked(change, row, reason.clone()).await {
            let notice = Notice::RequestEnded {
                request,
                status: RequestStatus::Cancelled,
                reason,
            };
            notify_requester(change, &row, notice).await?;
        }
    }
    Ok(())
}
