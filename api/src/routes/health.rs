//! Probes and the error catalogue.

use actix_web::{HttpResponse, get, web};
use countersign_domain::ErrorCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: String,
}

/// The process lives.
#[utoipa::path(tag = "operations", responses((status = 200, body = Status)))]
#[get("/healthz")]
pub async fn healthz() -> web::Json<Status> {
    web::Json(Status {
        status: "ok".into(),
    })
}

/// The database answers; Redis does not count (its outage only degrades).
#[utoipa::path(tag = "operations", responses((status = 200, body = Status), (status = 503, body = Status)))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.store.ready().await {
        HttpResponse::Ok().json(Status {
            status: "ready".into(),
        })
    } else {
        HttpResponse::ServiceUnavailable().json(Status {
            status: "database unreachable".into(),
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorCodeOut {
    pub code: String,
    pub status: u16,
    pub meaning: String,
}

/// Every error code this API answers with, its HTTP status and meaning.
#[utoipa::path(tag = "operations", responses((status = 200, body = Vec<ErrorCodeOut>)))]
#[get("/v1/error-codes")]
pub async fn error_codes() -> web::Json<Vec<ErrorCodeOut>> {
    web::Json(
        ErrorCode::ALL
            .iter()
            .map(|c| ErrorCodeOut {
                code: c.as_str().into(),
                status: c.status(),
                meaning: c.meaning().into(),
            })
            .collect(),
    )
}
