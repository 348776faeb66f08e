//! `/v1/auth` and `/v1/me`: tokens for every kind of credential.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use countersign_domain::auth::Grant;
use countersign_domain::permission::PrincipalKind;
use countersign_domain::role::Role;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use validator::Validate;

use crate::client_address::ClientAddress;
use crate::extract::{Caller, Valid};
use crate::problem::{ApiError, ListProblems, Problem};
use crate::routes::tenants::TenantOut;
use crate::state::AppState;

/// What a caller presents for a token, by `grant_type`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "grant_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenRequest {
    /// A person with a programming key: tenant slug, key marking and PIN.
    ProgrammingKey {
        #[schema(max_length = 63)]
        tenant: String,
        #[schema(max_length = 64)]
        programming_key: String,
        #[schema(max_length = 64)]
        pin: String,
    },
    /// An integration's API key.
    ApiKey {
        #[schema(max_length = 63)]
        tenant: String,
        #[schema(max_length = 256)]
        api_key: String,
    },
    /// A device agent's id and secret.
    Agent {
        agent_id: Uuid,
        #[schema(max_length = 256)]
        secret: String,
    },
    /// The SaaS operator's key.
    Operator {
        #[schema(max_length = 256)]
        operator_key: String,
    },
    /// A refresh token; it is spent, and a new one returned.
    RefreshToken {
        #[schema(max_length = 256)]
        refresh_token: String,
    },
}

/// Longer than `max` characters (as the document's `maxLength` counts them).
fn longer(value: &str, max: usize) -> bool {
    value.chars().count() > max
}

impl Validate for TokenRequest {
    fn validate(&self) -> Result<(), validator::ValidationErrors> {
        let too_long = match self {
            TokenRequest::ProgrammingKey {
                tenant,
                programming_key,
                pin,
            } => longer(tenant, 63) || longer(programming_key, 64) || longer(pin, 64),
            TokenRequest::ApiKey { tenant, api_key } => longer(tenant, 63) || longer(api_key, 256),
            TokenRequest::Agent { secret, .. } => longer(secret, 256),
            TokenRequest::Operator { operator_key } => longer(operator_key, 256),
            TokenRequest::RefreshToken { refresh_token } => longer(refresh_token, 256),
        };
        let mut errors = validator::ValidationErrors::new();
        if too_long {
            errors.add("credentials", validator::ValidationError::new("too_long"));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl From<TokenRequest> for Grant {
    fn from(r: TokenRequest) -> Self {
        match r {
            TokenRequest::ProgrammingKey {
                tenant,
                programming_key,
                pin,
            } => Grant::ProgrammingKey {
                tenant,
                marking: programming_key,
                pin,
            },
            TokenRequest::ApiKey { tenant, api_key } => Grant::ApiKey { tenant, api_key },
            TokenRequest::Agent { agent_id, secret } => Grant::Agent { agent_id, secret },
            TokenRequest::Operator { operator_key } => Grant::Operator { operator_key },
            TokenRequest::RefreshToken { refresh_token } => Grant::RefreshToken { refresh_token },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// For people: spend it at this endpoint for a new pair before it expires.
    pub refresh_token: Option<String>,
    pub roles: Vec<String>,
    /// The key logged in with a one-time PIN: the token only permits `POST /v1/me/pin`.
    pub pin_change_required: bool,
}

#[utoipa::path(
    tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid credentials; the same answer for every reason", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed logins: a PIN counts per key and client address (5 in 15 minutes) and per key over all addresses (30 a day); a secret (API key, agent secret, operator key, refresh token) per client address (20 in 15 minutes). See Retry-After", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/auth/token")]
pub async fn token(
    state: web::Data<AppState>,
    client: ClientAddress,
    body: Valid<TokenRequest>,
) -> Result<web::Json<TokenResponse>, ApiError> {
    let set = state.auth.token(body.into_inner().into(), client.0).await?;
    Ok(web::Json(TokenResponse {
        access_token: set.access_token,
        token_type: "Bearer".to_owned(),
        expires_in: set.expires_in,
        refresh_token: set.refresh_token,
        roles: set.roles,
        pin_change_required: set.pin_change_required,
    }))
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 204, description = "The token and its refresh family are ended"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/auth/revoke")]
pub async fn revoke(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    state.auth.revoke(&caller).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    pub kind: PrincipalKind,
    pub id: Uuid,
    pub name: String,
    /// The caller's tenant and all its settings, so that anyone can see for
    /// themselves that the approver function is on and fixed.
    pub tenant: Option<TenantOut>,
    pub roles: Vec<Role>,
    pub employee_id: Option<Uuid>,
    pub pin_change_required: bool,
    /// While set, an approver change keeps the caller's programming key from
    /// deciding until then (403 `approver_on_hold`).
    pub hold_until: Option<DateTime<Utc>>,
}

#[utoipa::path(
    tag = "auth",
    responses(
        (status = 200, body = MeOut),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, caller: Caller) -> Result<web::Json<MeOut>, ApiError> {
    let me = state.auth.me(&caller).await?;
    Ok(web::Json(MeOut {
        kind: me.kind,
        id: me.id,
        name: me.name,
        tenant: me.tenant.map(TenantOut::from),
        roles: me.roles.iter().collect(),
        employee_id: me.employee_id,
        pin_change_required: me.pin_change_required,
        hold_until: me.hold_until,
    }))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinChange {
    #[validate(length(max = 64))]
    #[schema(max_length = 64)]
    pub current_pin: String,
    /// 4 to 12 digits.
    #[validate(length(max = 64))]
    #[schema(pattern = r"^[0-9]{4,12}$")]
    pub new_pin: String,
}

#[utoipa::path(
    tag = "auth",
    request_body = PinChange,
    responses(
        (status = 204, description = "PIN set; every token of the key is ended, log in again"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[post("/me/pin")]
pub async fn set_pin(
    state: web::Data<AppState>,
    caller: Caller,
    client: ClientAddress,
    body: Valid<PinChange>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .auth
        .set_own_pin(&caller, &body.current_pin, &body.new_pin, client.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
