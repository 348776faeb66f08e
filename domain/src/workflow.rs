//! The approval workflow (SPEC §4): the event-log request and its readout job as
//! state machines. A request's state is a type: only a pending request can be
//! decided, only an approved one can complete; there is no way to write an
//! illegal transition.

use uuid::Uuid;

use crate::directory::DeviceKind;
use crate::error::{Error, ErrorCode, Result};

crate::named_enum! {
    /// What an event-log request reads out.
    pub enum TargetType {
        Key,
        Cylinder,
    }
}

crate::named_enum! {
    pub enum RequestStatus {
        PendingApproval,
        Approved,
        Rejected,
        Cancelled,
        Expired,
        Completed,
        Failed,
    }
}

impl RequestStatus {
    pub const fn is_open(self) -> bool {
        matches!(self, Self::PendingApproval | Self::Approved)
    }
}

crate::named_enum! {
    pub enum Verdict {
        Approve,
        Reject,
    }
}

/// A person acting through a programming key, or through a webservice
/// credential, which counts as made by the person who created it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Person {
    /// The credential that acted: a programming key or an API key.
    pub credential_id: Uuid,
    /// The programming key behind it: the same key, or the one that created
    /// the API key.
    pub programming_key_id: Option<Uuid>,
    /// The employee holding that programming key.
    pub employee_id: Option<Uuid>,
}

impl Person {
    /// A person acting through their own programming key.
    pub fn of_key(key: Uuid, employee_id: Option<Uuid>) -> Self {
        Person {
            credential_id: key,
            programming_key_id: Some(key),
            employee_id,
        }
    }

    /// Four eyes: the same credential, the same programming key behind
    /// another credential, or the same employee behind another key.
    pub fn is_same_as(&self, other: &Person) -> bool {
        let same =
            |a: Option<Uuid>, b: Option<Uuid>| matches!((a, b), (Some(a), Some(b)) if a == b);
        self.credential_id == other.credential_id
            || same(self.programming_key_id, other.programming_key_id)
            || same(self.employee_id, other.employee_id)
    }
}

/// A decision already taken on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CastDecision {
    pub verdict: Verdict,
    pub approver: Person,
}

/// A request awaiting its approvers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRequest {
    pub requester: Person,
    pub approvals_required: u8,
    pub decisions: Vec<CastDecision>,
}

/// An approved request whose job has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovedRequest;

/// A request in one of its states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Pending(PendingRequest),
    Approved(ApprovedRequest),
    Ended(RequestStatus),
}

/// What a decision did to a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionOutcome {
    /// More approvals are needed.
    StillPending(PendingRequest),
    Approved(ApprovedRequest),
    Rejected,
}

fn not_pending() -> Error {
    Error::rule(
        ErrorCode::RequestNotPending,
        "the request is no longer pending approval",
    )
}

impl Request {
    pub fn restore(status: RequestStatus, pending: impl FnOnce() -> PendingRequest) -> Self {
        match status {
            RequestStatus::PendingApproval => Request::Pending(pending()),
            RequestStatus::Approved => Request::Approved(ApprovedRequest),
            ended => Request::Ended(ended),
        }
    }

    pub fn status(&self) -> RequestStatus {
        match self {
            Request::Pending(_) => RequestStatus::PendingApproval,
            Request::Approved(_) => RequestStatus::Approved,
            Request::Ended(status) => *status,
        }
    }

    /// Only a pending request can be decided.
    pub fn into_pending(self) -> Result<PendingRequest> {
        match self {
            Request::Pending(p) => Ok(p),
            _ => Err(not_pending()),
        }
    }

    /// Cancels an open request; `job_busy` when its job is running or loaded.
    pub fn cancel(self, job_busy: bool) -> Result<RequestStatus> {
        match self {
            Request::Pending(_) => Ok(RequestStatus::Cancelled),
            Request::Approved(_) if !job_busy => Ok(RequestStatus::Cancelled),
            Request::Approved(_) => Err(Error::rule(
                ErrorCode::InvalidStateTransition,
                "the readout is under way (its job is running or loaded); it cannot be cancelled now",
            )),
            Request::Ended(_) => Err(Error::rule(
                ErrorCode::InvalidStateTransition,
                "the request has already ended",
            )),
        }
    }

    /// Expiry: a pending request always, an approved one unless its job is busy.
    pub fn expire(self, job_busy: bool) -> Option<RequestStatus> {
        match self {
            Request::Pending(_) => Some(RequestStatus::Expired),
            Request::Approved(_) if !job_busy => Some(RequestStatus::Expired),
            _ => None,
        }
    }
}

impl PendingRequest {
    /// Records one approver's decision. Four eyes, one decision per person,
    /// `approvals_required` distinct approvals, and one rejection ends it.
    pub fn decide(mut self, approver: Person, verdict: Verdict) -> Result<DecisionOutcome> {
        if approver.is_same_as(&self.requester) {
            return Err(Error::rule(
                ErrorCode::SelfApproval,
                "nobody decides on a request that they made",
            ));
        }
        if self
            .decisions
            .iter()
            .any(|d| d.approver.is_same_as(&approver))
        {
            return Err(Error::rule(
                ErrorCode::AlreadyDecided,
                "you have already decided on this request",
            ));
        }
        self.decisions.push(CastDecision { verdict, approver });
        let approvals = self
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Approve)
            .count();
        Ok(match verdict {
            Verdict::Reject => DecisionOutcome::Rejected,
            Verdict::Approve if approvals >= usize::from(self.approvals_required) => {
                DecisionOutcome::Approved(ApprovedRequest)
            }
            Verdict::Approve => DecisionOutcome::StillPending(self),
        })
    }
}

impl ApprovedRequest {
    /// The request follows its job: completed or failed for good.
    pub fn finish(self, job_succeeded: bool) -> RequestStatus {
        if job_succeeded {
            RequestStatus::Completed
        } else {
            RequestStatus::Failed
        }
    }
}

crate::named_enum! {
    pub enum JobKind {
        RequestReadout,
        AutoCollection,
        DeskReadout,
    }
}

crate::named_enum! {
    pub enum JobStatus {
        /// A key job waiting for its key to be inserted at a remote unit.
        Queued,
        /// A cylinder job waiting for a programming key.
        AwaitingTransfer,
        /// Assigned to a programming key, waiting to be loaded onto it.
        Transferred,
        /// On the programming key, waiting for it to visit the cylinder and come back.
        Loaded,
        /// An agent holds a lease while it talks to the device.
        Running,
        Completed,
        Failed,
        Cancelled,
        Expired,
    }
}

/// What can happen to a readout job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    Transfer,
    /// Its programming key was returned or blocked before loading.
    Untransfer,
    /// An agent takes a lease.
    Claim,
    /// The lease ended without a result, or a retryable failure: back where it was.
    Release,
    /// The job is now on its programming key.
    Load,
    Complete,
    FailForGood,
    Cancel,
    Expire,
}

impl JobStatus {
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Failed | Self::Cancelled | Self::Expired
        )
    }

    /// Running or loaded: the readout is under way and can no longer be called off.
    pub const fn is_busy(self) -> bool {
        matches!(self, Self::Running | Self::Loaded)
    }

    /// The first state of a job for a target.
    pub const fn initial(target: TargetType) -> Self {
        match target {
            TargetType::Key => Self::Queued,
            TargetType::Cylinder => Self::AwaitingTransfer,
        }
    }

    /// The one transition function. `resume` is where a running job came
    /// from, to go back to on [`JobEvent::Release`].
    pub fn next(self, event: JobEvent, resume: Option<JobStatus>) -> Result<JobStatus> {
        use JobEvent as E;
        use JobStatus as S;
        let next = match (self, event) {
            (S::AwaitingTransfer | S::Transferred, E::Transfer) => S::Transferred,
            (S::Transferred, E::Untransfer) => S::AwaitingTransfer,
            (S::Queued | S::Transferred | S::Loaded, E::Claim) => S::Running,
            (S::Running, E::Release) => match resume {
                Some(back @ (S::Queued | S::Transferred | S::Loaded)) => back,
                _ => return Err(illegal(self, event)),
            },
            (S::Running, E::Load) if resume == Some(S::Transferred) => S::Loaded,
            (S::Running, E::Complete) => S::Completed,
            (S::Running, E::FailForGood) => S::Failed,
            (S::Queued | S::AwaitingTransfer | S::Transferred, E::Cancel | E::Expire) => {
                if event == E::Cancel {
                    S::Cancelled
                } else {
                    S::Expired
                }
            }
            _ => return Err(illegal(self, event)),
        };
        Ok(next)
    }
}

/// How an agent comes to claim a job (SPEC §4, "Agent calls follow the job's
/// state machine").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimRoute {
    /// A key was inserted at the device.
    KeyInsertion,
    /// A programming key was connected at the device.
    ProgrammingKeyConnection,
    /// The agent names the job (desk readouts from its work list).
    ById,
}

/// Whether a job may be claimed through `route` at device `device` of kind
/// `device_kind`: a key's readout only when that key is inserted at a remote
/// unit, a desk readout only at its desk unit, a cylinder job only through its
/// programming key. Anything else is `job_not_claimable`.
pub fn check_claim(
    kind: JobKind,
    target: TargetType,
    assigned_device: Option<Uuid>,
    route: ClaimRoute,
    device: Uuid,
    device_kind: DeviceKind,
) -> Result<()> {
    let allowed = match (kind, target) {
        (JobKind::DeskReadout, _) => {
            route == ClaimRoute::ById
                && device_kind == DeviceKind::DeskUnit
                && assigned_device == Some(device)
        }
        (_, TargetType::Key) => {
            route == ClaimRoute::KeyInsertion
                && device_kind == DeviceKind::RemoteUnit
                && assigned_device.is_none_or(|d| d == device)
        }
        (_, TargetType::Cylinder) => route == ClaimRoute::ProgrammingKeyConnection,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::rule(
            ErrorCode::JobNotClaimable,
            "the job is not claimed this way or at this device",
        ))
    }
}

fn illegal(status: JobStatus, event: JobEvent) -> Error {
    Error::rule(
        ErrorCode::InvalidStateTransition,
        format!("a {} job cannot {:?}", status.as_str(), event),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_job_is_claimed_only_its_own_way() {
        use ClaimRoute as R;
        use DeviceKind as D;
        let (here, there) = (Uuid::now_v7(), Uuid::now_v7());
        let claimable = |kind, target, assigned, route, device_kind| {
            check_claim(kind, target, assigned, route, here, device_kind).is_ok()
        };
        let key = TargetType::Key;
        let cylinder = TargetType::Cylinder;
        // A key request: only when the key is inserted at a remote unit.
        assert!(claimable(
            JobKind::RequestReadout,
            key,
            None,
            R::KeyInsertion,
            D::RemoteUnit
        ));
        assert!(!claimable(
            JobKind::RequestReadout,
            key,
            None,
            R::KeyInsertion,
            D::DeskUnit
        ));
        assert!(!claimable(
            JobKind::RequestReadout,
            key,
            None,
            R::ById,
            D::RemoteUnit
        ));
        assert!(!claimable(
            JobKind::RequestReadout,
            key,
            Some(there),
            R::KeyInsertion,
            D::RemoteUnit
        ));
        assert!(claimable(
            JobKind::AutoCollection,
            key,
            Some(here),
            R::KeyInsertion,
            D::RemoteUnit
        ));
        // A desk readout: only at its desk unit, by id.
        assert!(claimable(
            JobKind::DeskReadout,
            key,
            Some(here),
            R::ById,
            D::DeskUnit
        ));
        assert!(!claimable(
            JobKind::DeskReadout,
            key,
            Some(there),
            R::ById,
            D::DeskUnit
        ));
        assert!(!claimable(
            JobKind::DeskReadout,
            key,
            Some(here),
            R::KeyInsertion,
            D::DeskUnit
        ));
        // A cylinder job: only through its programming key, at any unit.
        for device_kind in [D::RemoteUnit, D::DeskUnit] {
            assert!(claimable(
                JobKind::RequestReadout,
                cylinder,
                None,
                R::ProgrammingKeyConnection,
                device_kind
            ));
            assert!(!claimable(
                JobKind::RequestReadout,
                cylinder,
                None,
                R::ById,
                device_kind
            ));
        }
        let refused = check_claim(
            JobKind::RequestReadout,
            cylinder,
            None,
            R::ById,
            here,
            D::RemoteUnit,
        );
        assert_eq!(
            refused.map_err(|e| e.code()),
            Err(ErrorCode::JobNotClaimable)
        );
    }
    use proptest::prelude::*;

    fn person(n: u128, employee: Option<u128>) -> Person {
        Person::of_key(Uuid::from_u128(n), employee.map(Uuid::from_u128))
    }

    fn pending(required: u8) -> PendingRequest {
        PendingRequest {
            requester: person(1, Some(100)),
            approvals_required: required,
            decisions: vec![],
        }
    }

    #[test]
    fn four_eyes_by_key_and_by_person() {
        let code = |r: Result<DecisionOutcome>| r.err().map(|e| e.code());
        assert_eq!(
            code(pending(1).decide(person(1, Some(100)), Verdict::Approve)),
            Some(ErrorCode::SelfApproval)
        );
        assert_eq!(
            code(pending(1).decide(person(2, Some(100)), Verdict::Approve)),
            Some(ErrorCode::SelfApproval)
        );
        assert!(matches!(
            pending(1).decide(person(2, Some(200)), Verdict::Approve),
            Ok(DecisionOutcome::Approved(_))
        ));
    }

    #[test]
    fn four_eyes_reach_through_the_credential_a_person_created() {
        let code = |r: Result<DecisionOutcome>| r.err().map(|e| e.code());
        // An API key (50) created with programming key 1 of employee 100.
        let by_integration = PendingRequest {
            requester: Person {
                credential_id: Uuid::from_u128(50),
                programming_key_id: Some(Uuid::from_u128(1)),
                employee_id: Some(Uuid::from_u128(100)),
            },
            approvals_required: 1,
            decisions: vec![],
        };
        assert_eq!(
            code(
                by_integration
                    .clone()
                    .decide(person(1, Some(100)), Verdict::Approve)
            ),
            Some(ErrorCode::SelfApproval)
        );
        // The same creator's key, issued to another employee since.
        assert_eq!(
            code(
                by_integration
                    .clone()
                    .decide(person(1, Some(300)), Verdict::Approve)
            ),
            Some(ErrorCode::SelfApproval)
        );
        assert!(matches!(
            by_integration.decide(person(2, Some(200)), Verdict::Approve),
            Ok(DecisionOutcome::Approved(_))
        ));
    }

    #[test]
    fn two_approvals_from_two_people() {
        let Ok(DecisionOutcome::StillPending(p)) =
            pending(2).decide(person(2, Some(200)), Verdict::Approve)
        else {
            panic!("one approval of two")
        };
        let again = p
            .clone()
            .decide(person(3, Some(200)), Verdict::Approve)
            .err()
            .map(|e| e.code());
        assert_eq!(
            again,
            Some(ErrorCode::AlreadyDecided),
            "same person, other key"
        );
        assert!(matches!(
            p.clone().decide(person(3, Some(300)), Verdict::Approve),
            Ok(DecisionOutcome::Approved(_))
        ));
        assert!(matches!(
            p.decide(person(3, Some(300)), Verdict::Reject),
            Ok(DecisionOutcome::Rejected)
        ));
    }

    #[test]
    fn ended_requests_take_no_decisions_and_busy_ones_no_cancel() {
        for status in RequestStatus::ALL
            .iter()
            .copied()
            .filter(|s| *s != RequestStatus::PendingApproval)
        {
            let request = Request::restore(status, || pending(1));
            assert_eq!(
                request.into_pending().err().map(|e| e.code()),
                Some(ErrorCode::RequestNotPending)
            );
        }
        assert!(Request::Approved(ApprovedRequest).cancel(true).is_err());
        assert_eq!(
            Request::Approved(ApprovedRequest).cancel(false).ok(),
            Some(RequestStatus::Cancelled)
        );
        assert_eq!(Request::Approved(ApprovedRequest).expire(true), None);
        assert_eq!(Request::Ended(RequestStatus::Completed).expire(false), None);
    }

    #[test]
    fn jobs_go_back_where_they_were() {
        let running = JobStatus::Queued
            .next(JobEvent::Claim, None)
            .expect("claim");
        assert_eq!(
            running
                .next(JobEvent::Release, Some(JobStatus::Queued))
                .ok(),
            Some(JobStatus::Queued)
        );
        assert!(
            running
                .next(JobEvent::Load, Some(JobStatus::Queued))
                .is_err(),
            "a key job is never loaded"
        );
        assert_eq!(
            running
                .next(JobEvent::Load, Some(JobStatus::Transferred))
                .ok(),
            Some(JobStatus::Loaded)
        );
        assert!(JobStatus::Loaded.next(JobEvent::Cancel, None).is_err());
        assert!(JobStatus::Running.next(JobEvent::Expire, None).is_err());
    }

    fn any_event() -> impl Strategy<Value = JobEvent> {
        prop_oneof![
            Just(JobEvent::Transfer),
            Just(JobEvent::Untransfer),
            Just(JobEvent::Claim),
            Just(JobEvent::Release),
            Just(JobEvent::Load),
            Just(JobEvent::Complete),
            Just(JobEvent::FailForGood),
            Just(JobEvent::Cancel),
            Just(JobEvent::Expire),
        ]
    }

    proptest! {
        /// Random walks: terminal states are final, a running job always has
        /// somewhere to go back to, and a key job never reaches transfer states.
        #[test]
        fn job_walks_respect_the_machine(
            cylinder in any::<bool>(),
            events in proptest::collection::vec(any_event(), 0..40),
        ) {
            let target = if cylinder { TargetType::Cylinder } else { TargetType::Key };
            let mut status = JobStatus::initial(target);
            let mut resume = None;
            for event in events {
                match status.next(event, resume) {
                    Ok(next) => {
                        prop_assert!(!status.is_terminal(), "{status:?} left by {event:?}");
                        if next == JobStatus::Running { resume = Some(status); }
                        if !cylinder {
                            prop_assert!(!matches!(next, JobStatus::AwaitingTransfer | JobStatus::Transferred | JobStatus::Loaded));
                        }
                        status = next;
                    }
                    Err(err) => prop_assert_eq!(err.code(), ErrorCode::InvalidStateTransition),
                }
            }
        }

        /// Random decisions: a request is approved only with enough distinct
        /// approvals, never by its requester, and ends at the first rejection.
        #[test]
        fn decision_walks_respect_the_rules(
            required in 1u8..=3,
            decisions in proptest::collection::vec((0u128..6, any::<bool>()), 0..12),
        ) {
            let mut request = Request::Pending(pending(required));
            let mut approvers = std::collections::HashSet::new();
            for (who, approve) in decisions {
                let verdict = if approve { Verdict::Approve } else { Verdict::Reject };
                let approver = person(who, Some(100 + who * 100));
                let before = request.status();
                let result = request.clone().into_pending().and_then(|p| p.decide(approver, verdict));
                match result {
                    Ok(DecisionOutcome::StillPending(p)) => { approvers.insert(who); request = Request::Pending(p); }
                    Ok(DecisionOutcome::Approved(a)) => {
                        approvers.insert(who);
                        prop_assert!(approvers.len() >= usize::from(required));
                        prop_assert!(!approvers.contains(&1) && !approvers.contains(&0));
                        request = Request::Approved(a);
                    }
                    Ok(DecisionOutcome::Rejected) => { prop_assert_eq!(verdict, Verdict::Reject); request = Request::Ended(RequestStatus::Rejected); }
                    Err(err) => {
                        let expected = [ErrorCode::SelfApproval, ErrorCode::AlreadyDecided, ErrorCode::RequestNotPending];
                        prop_assert!(expected.contains(&err.code()));
                        prop_assert_eq!(request.status(), before);
                    }
                }
            }
        }
    }
}
