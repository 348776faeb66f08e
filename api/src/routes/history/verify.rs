//! `GET` and `POST /v1/history/verify`: the chain recomputed, every stored
//! checkpoint checked, and those the caller kept. Verifying writes nothing.

use actix_web::{get, post, web};
use chrono::DateTime;
use countersign_domain::history::{Checkpoint, Problem, Status, Verification};
use countersign_domain::permission::Action;
use countersign_domain::tenant::TenantId;
use countersign_domain::{Error, FieldError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::checkpoints::CheckpointOut;
use crate::extract::Caller;
use crate::problem::{ApiError, ListProblems, Problem as ProblemBody};
use crate::state::AppState;

/// Checkpoints checked at most per call.
const MAX_KEPT: usize = 1000;

/// One thing that does not hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemOut {
    pub status: Status,
    /// The first entry no longer proven intact; absent where no entry is in
    /// doubt (a checkpoint that is itself bad).
    pub first_broken_seq: Option<i64>,
    /// The checkpoint that gave it away or is at fault.
    pub checkpoint_seq: Option<i64>,
    pub reason: String,
}

impl From<Problem> for ProblemOut {
    fn from(p: Problem) -> Self {
        ProblemOut {
            status: p.status,
            first_broken_seq: p.first_broken_seq,
            checkpoint_seq: p.checkpoint_seq,
            reason: p.reason,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerificationOut {
    /// Every hash, link and checkpoint holds.
    pub valid: bool,
    /// The first problem's kind, or `valid`.
    pub status: Status,
    pub entries_checked: u64,
    /// Distinct checkpoints (stored and given) whose signature was checked.
    pub signatures_checked: u64,
    /// The newest entry covered by a valid checkpoint that matches it.
    pub last_signed_seq: Option<i64>,
    /// The first problem's first broken entry.
    pub first_broken_seq: Option<i64>,
    /// The first problem, for a person.
    pub reason: Option<String>,
    /// Every problem found (at most 50), the one concerning the earliest entry first.
    pub problems: Vec<ProblemOut>,
}

impl From<Verification> for VerificationOut {
    fn from(v: Verification) -> Self {
        VerificationOut {
            valid: v.valid,
            status: v.status,
            entries_checked: v.entries_checked,
            signatures_checked: v.signatures_checked,
            last_signed_seq: v.last_signed_seq,
            first_broken_seq: v.first_broken_seq,
            reason: v.reason,
            problems: v.problems.into_iter().map(ProblemOut::from).collect(),
        }
    }
}

/// Checkpoints the caller kept, e.g. the line of an auditor's daily mail.
#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyIn {
    /// Up to 1000 checkpoints of the caller's tenant, as
    /// `GET /v1/history/checkpoints` lists them; other fields are ignored.
    #[schema(value_type = Vec<CheckpointOut>)]
    pub checkpoints: Vec<Value>,
}

/// Verify the history
///
/// Recomputes every entry's hash and link and checks every stored checkpoint:
/// its signature, and that its entry still has the signed hash. Writes
/// nothing. Without a checkpoint kept outside the database, a chain cut short
/// together with its checkpoints looks whole: use `POST` with kept ones.
#[utoipa::path(
    tag = "history",
    responses(
        (status = 200, body = VerificationOut),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/history/verify")]
pub async fn get_verify_history(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<VerificationOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::VerifyHistory)?;
    Ok(web::Json(
        state.store.verify_history(t, Vec::new()).await?.into(),
    ))
}

/// Verify the history against kept checkpoints
///
/// Like `GET`, and also checks the checkpoints the caller kept (from the
/// auditors' mails, exports or earlier calls): one whose entry is gone is
/// reported `truncated`, one whose entry differs `rewritten`. Writes nothing.
#[utoipa::path(
    tag = "history",
    request_body = VerifyIn,
    responses(
        (status = 200, body = VerificationOut),
        (status = 422, description = "A checkpoint is malformed or of another tenant; `errors` names each field", body = ProblemBody, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/history/verify")]
pub async fn post_verify_history(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<VerifyIn>,
) -> Result<web::Json<VerificationOut>, ApiError> {
    let t = caller.principal.tenant_for(Action::VerifyHistory)?;
    let kept = kept_checkpoints(t, &body.checkpoints)?;
    Ok(web::Json(state.store.verify_history(t, kept).await?.into()))
}

fn field(pointer: String, code: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        pointer,
        code: code.to_owned(),
        message: message.into(),
    }
}

/// The kept checkpoints, each well-formed and of tenant `t`; otherwise every
/// offending field.
fn kept_checkpoints(t: TenantId, values: &[Value]) -> Result<Vec<Checkpoint>, Error> {
    if values.len() > MAX_KEPT {
        let message = format!("at most {MAX_KEPT} checkpoints per call");
        return Err(Error::fields(vec![field(
            "/checkpoints".into(),
            "too_many",
            message,
        )]));
    }
    let mut errors = Vec::new();
    let mut kept = Vec::new();
    for (i, value) in values.iter().enumerate() {
        match checkpoint(t, value) {
            Ok(c) => kept.push(c),
            Err(fields) => errors.extend(fields.into_iter().map(|(name, code, message)| {
                let pointer = match name {
                    "" => format!("/checkpoints/{i}"),
                    name => format!("/checkpoints/{i}/{name}"),
                };
                field(pointer, code, message)
            })),
        }
    }
    if errors.is_empty() {
        Ok(kept)
    } else {
        Err(Error::fields(errors))
    }
}

type Refusals = Vec<(&'static str, &'static str, String)>;

fn checkpoint(t: TenantId, value: &Value) -> Result<Checkpoint, Refusals> {
    let Some(object) = value.as_object() else {
        return Err(vec![(
            "",
            "not_an_object",
            "a checkpoint is an object".into(),
        )]);
    };
    let mut refusals = Refusals::new();
    let mut text = |name: &'static str| match object.get(name).and_then(Value::as_str) {
        Some(v) => Some(v.to_owned()),
        None => {
            refusals.push((name, "required", format!("{name} is a required string")));
            None
        }
    };
    let (tenant, hash, signed_at, key_id, signature) = (
        text("tenant_id"),
        text("hash"),
        text("signed_at"),
        text("key_id"),
        text("signature"),
    );
    let tenant = tenant.and_then(|v| Uuid::try_parse(&v).ok());
    if tenant.is_none() && !refusals.iter().any(|r| r.0 == "tenant_id") {
        refusals.push(("tenant_id", "invalid_uuid", "tenant_id is a UUID".into()));
    }
    if tenant.is_some_and(|id| id != t.0) {
        let message = "the checkpoint belongs to another tenant".into();
        refusals.push(("tenant_id", "other_tenant", message));
    }
    let signed_at = signed_at.and_then(|v| DateTime::parse_from_rfc3339(&v).ok());
    if signed_at.is_none() && !refusals.iter().any(|r| r.0 == "signed_at") {
        let message = "signed_at is an RFC 3339 time".into();
        refusals.push(("signed_at", "invalid_time", message));
    }
    let seq = object.get("seq").and_then(Value::as_i64);
    if seq.is_none() {
        refusals.push(("seq", "required", "seq is a required integer".into()));
    }
    let (Some(tenant), Some(seq), Some(hash), Some(at), Some(key_id), Some(signature)) =
        (tenant, seq, hash, signed_at, key_id, signature)
    else {
        return Err(refusals);
    };
    let parsed = Checkpoint::parse(tenant, seq, hash, at.to_utc(), key_id, signature);
    match parsed {
        Ok(c) if refusals.is_empty() => Ok(c),
        Ok(_) => Err(refusals),
        Err(errors) => {
            refusals.extend(errors.into_iter().map(|e| (e.field, e.code, e.message)));
            Err(refusals)
        }
    }
}
