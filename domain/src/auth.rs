//! Credentials and sessions: what a token grants and how it is checked.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::permission::Principal;

/// How long an access token lives at most.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;
/// How long a refresh token lives unused.
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// Failed logins per credential before it is throttled, and the window.
pub const LOGIN_FAILURES_ALLOWED: u32 = 5;
pub const LOGIN_THROTTLE_WINDOW_SECS: u64 = 15 * 60;

/// What a caller presents to `POST /v1/auth/token`.
#[derive(Debug, Clone)]
pub enum Grant {
    ProgrammingKey {
        tenant: String,
        marking: String,
        pin: String,
    },
    ApiKey {
        tenant: String,
        api_key: String,
    },
    Agent {
        agent_id: Uuid,
        secret: String,
    },
    Operator {
        operator_key: String,
    },
    RefreshToken {
        refresh_token: String,
    },
}

impl Grant {
    /// The credential that failed logins are counted against.
    pub fn throttle_key(&self) -> Option<String> {
        match self {
            Grant::ProgrammingKey {
                tenant, marking, ..
            } => Some(format!("pk:{tenant}:{marking}")),
            Grant::ApiKey { tenant, .. } => Some(format!("ak:{tenant}")),
            Grant::Agent { agent_id, .. } => Some(format!("agent:{agent_id}")),
            Grant::Operator { .. } => Some("operator".to_owned()),
            Grant::RefreshToken { .. } => None,
        }
    }
}

/// A verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub principal: Principal,
    pub token_id: Uuid,
    /// The credential's token generation when the token was issued; a higher
    /// current generation means the token was revoked.
    pub generation: i64,
    /// Likewise for the tenant (suspension).
    pub tenant_generation: i64,
    /// The refresh-token family this token belongs to, if any.
    pub family: Option<Uuid>,
    pub expires_at: DateTime<Utc>,
}

/// What the token endpoint answers.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: Option<String>,
    pub roles: Vec<String>,
    pub pin_change_required: bool,
}

/// The access token's lifetime: short, and never past the key's validity.
pub fn access_token_expiry(
    now: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    let short = now + chrono::Duration::seconds(ACCESS_TOKEN_TTL_SECS);
    valid_until.map_or(short, |until| until.min(short))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_outlive_the_key() {
        let now = Utc::now();
        let soon = now + chrono::Duration::seconds(60);
        assert_eq!(access_token_expiry(now, Some(soon)), soon);
        assert_eq!(
            access_token_expiry(now, None),
            now + chrono::Duration::seconds(ACCESS_TOKEN_TTL_SECS)
        );
    }
}
