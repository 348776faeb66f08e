//! `GET /v1/history/checkpoints` and `GET /v1/history/signing-keys`.

use actix_web::{get, web};
use chrono::{DateTime, Utc};
use countersign_domain::history::{Checkpoint, SigningKeyInfo};
use countersign_domain::permission::Action;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::extract::Caller;
use crate::pagination::{Page, PageQuery};
use crate::problem::{ApiError, ListProblems};
use crate::state::AppState;

/// A signed statement that entry `seq` of the tenant's chain had `hash` at
/// `signed_at`. The signature is Ed25519 over the RFC 8785 canonical JSON of
/// `{hash, seq, signed_at, tenant_id, type: "countersign.history.checkpoint.v1"}`
/// (`signed_at` with microseconds and `Z`); see `docs/history.md`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointOut {
    pub tenant_id: Uuid,
    /// The entry whose hash was signed.
    #[schema(minimum = 1)]
    pub seq: i64,
    /// The entry's hash, 64 lowercase hex digits.
    #[schema(example = "3f7a0c5e9b1d2a4c6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f809")]
    pub hash: String,
    pub signed_at: DateTime<Utc>,
    /// The signing key's id (see `GET /v1/history/signing-keys`).
    #[schema(example = "9c1e4b7a2f3d5e60")]
    pub key_id: String,
    /// The 64-byte Ed25519 signature in standard base64.
    pub signature: String,
}

impl From<Checkpoint> for CheckpointOut {
    fn from(c: Checkpoint) -> Self {
        CheckpointOut {
            tenant_id: c.tenant_id,
            seq: c.seq,
            hash: c.hash,
            signed_at: c.signed_at,
            key_id: c.key_id,
            signature: c.signature,
        }
    }
}

/// A public key that signs checkpoints now, or signed them before a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyOut {
    /// The first 8 bytes of the SHA-256 of the raw public key, in hex.
    pub key_id: String,
    /// Always `Ed25519`.
    #[schema(example = "Ed25519")]
    pub algorithm: String,
    /// The 32-byte raw public key in standard base64.
    pub public_key: String,
    /// Whether new checkpoints are signed with it; retired keys are not.
    pub current: bool,
}

impl From<SigningKeyInfo> for SigningKeyOut {
    fn from(k: SigningKeyInfo) -> Self {
        SigningKeyOut {
            key_id: k.key_id,
            algorithm: k.algorithm.to_owned(),
            public_key: k.public_key,
            current: k.current,
        }
    }
}

/// List the tenant's checkpoints
///
/// Oldest first. Keep them outside Countersign (or rely on the auditors'
/// daily mail): a checkpoint kept elsewhere proves the chain up to its entry
/// even against whoever can rewrite the database.
#[utoipa::path(
    tag = "history",
    params(PageQuery),
    responses(
        (status = 200, body = Page<CheckpointOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/history/checkpoints")]
pub async fn list_checkpoints(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<CheckpointOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::VerifyHistory)?;
    let page = state.store.list_checkpoints(t, query.request()?).await?;
    Ok(web::Json(Page::from(page, CheckpointOut::from)))
}

/// List the public keys of the checkpoints
///
/// The current key first, then the retired ones (configured with
/// `COUNTERSIGN_HISTORY_RETIRED_KEYS`), whose checkpoints still verify.
/// One page always holds them all.
#[utoipa::path(
    tag = "history",
    responses(
        (status = 200, body = Page<SigningKeyOut>),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/history/signing-keys")]
pub async fn list_signing_keys(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Page<SigningKeyOut>>, ApiError> {
    caller.principal.tenant_for(Action::VerifyHistory)?;
    Ok(web::Json(Page {
        items: state
            .store
            .signing_keys()
            .into_iter()
            .map(SigningKeyOut::from)
            .collect(),
        next_cursor: None,
    }))
}
