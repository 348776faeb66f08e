//! Credentials and sessions: what a token grants and how it is checked.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::permission::Principal;

/// How long an access token lives at most.
pub const ACCESS_TOKEN_TTL_SECS: i64 = 15 * 60;
/// How long a refresh token lives unused.
pub const REFRESH_TOKEN_TTL_SECS: i64 = 30 * 24 * 3600;
/// Failed PIN checks per credential and client address before that address
/// is throttled for the credential, and the window they are counted in.
pub const LOGIN_FAILURES_ALLOWED: u32 = 5;
pub const LOGIN_THROTTLE_WINDOW_SECS: u64 = 15 * 60;
/// Failed PIN checks per credential over all addresses within
/// [`PIN_DAILY_WINDOW_SECS`]: the ceiling for guessing from many addresses.
/// Thirty wrong guesses a day leave a four-digit PIN a chance of 0.3 % a day,
/// and are far more than a holder mistypes.
pub const PIN_FAILURES_PER_DAY: u32 = 30;
pub const PIN_DAILY_WINDOW_SECS: u64 = 24 * 3600;
/// Failed attempts with a high-entropy secret (API key, agent secret, operator
/// key, refresh token) per client address and window. Guessing such a secret
/// is hopeless, so the limit only bounds the load one address causes.
pub const SECRET_FAILURES_ALLOWED: u32 = 20;

/// A counter that an attempt counts against while it is checked and, when it
/// fails, until the window ends: at most `allowed` within `window_secs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLimit {
    pub key: String,
    pub allowed: u32,
    pub window_secs: u64,
}

/// The address a client is counted by: an IPv4 address, or the /64 network
/// of an IPv6 address (one subscriber's, which it can fill with addresses at
/// will).
fn counted_address(client: IpAddr) -> String {
    match client.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let network = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(network))
        }
    }
}

impl AttemptLimit {
    fn per_address(scope: &str, client: IpAddr, allowed: u32) -> Self {
        Self {
            key: format!("{scope}@{}", counted_address(client)),
            allowed,
            window_secs: LOGIN_THROTTLE_WINDOW_SECS,
        }
    }

    fn per_day(scope: &str) -> Self {
        Self {
            key: scope.to_owned(),
            allowed: PIN_FAILURES_PER_DAY,
            window_secs: PIN_DAILY_WINDOW_SECS,
        }
    }
}

/// The counters a PIN check of one credential counts against: per client
/// address, so that guesses from one address lock out that address only, and
/// per credential with a daily ceiling over all addresses.
fn pin_limits(credential: &str, client: IpAddr) -> Vec<AttemptLimit> {
    vec![
        AttemptLimit::per_address(credential, client, LOGIN_FAILURES_ALLOWED),
        AttemptLimit::per_day(credential),
    ]
}

/// The counters a holder's PIN change counts against (`POST /v1/me/pin`).
pub fn pin_change_limits(programming_key: Uuid, client: IpAddr) -> Vec<AttemptLimit> {
    pin_limits(&format!("pin:{programming_key}"), client)
}

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
    /// The counters an attempt with this grant from `client` counts against.
    /// A PIN counts per credential; a high-entropy secret per client address
    /// only, so that guessing at a credential never locks it out.
    pub fn attempt_limits(&self, client: IpAddr) -> Vec<AttemptLimit> {
        let secret = |scope: &str| {
            vec![AttemptLimit::per_address(
                scope,
                client,
                SECRET_FAILURES_ALLOWED,
            )]
        };
        match self {
            Grant::ProgrammingKey {
                tenant, marking, ..
            } => pin_limits(&format!("pk:{tenant}:{marking}"), client),
            Grant::ApiKey { tenant, .. } => secret(&format!("ak:{tenant}")),
            Grant::Agent { .. } => secret("agent"),
            Grant::Operator { .. } => secret("operator"),
            Grant::RefreshToken { .. } => secret("refresh"),
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

    fn keys(limits: &[AttemptLimit]) -> Vec<&str> {
        limits.iter().map(|l| l.key.as_str()).collect()
    }

    #[test]
    fn pins_count_per_address_and_per_day_secrets_per_address_only() {
        let here = IpAddr::from([192, 0, 2, 7]);
        let pin = Grant::ProgrammingKey {
            tenant: "acme".into(),
            marking: "PK-1".into(),
            pin: "1234".into(),
        };
        let limits = pin.attempt_limits(here);
        assert_eq!(keys(&limits), ["pk:acme:PK-1@192.0.2.7", "pk:acme:PK-1"]);
        assert_eq!(
            (limits[0].allowed, limits[0].window_secs),
            (LOGIN_FAILURES_ALLOWED, LOGIN_THROTTLE_WINDOW_SECS)
        );
        assert_eq!(
            (limits[1].allowed, limits[1].window_secs),
            (PIN_FAILURES_PER_DAY, PIN_DAILY_WINDOW_SECS)
        );
        const { assert!(PIN_FAILURES_PER_DAY > LOGIN_FAILURES_ALLOWED) };
        let secrets = [
            Grant::ApiKey {
                tenant: "acme".into(),
                api_key: "x".into(),
            },
            Grant::Agent {
                agent_id: Uuid::nil(),
                secret: "x".into(),
            },
            Grant::Operator {
                operator_key: "x".into(),
            },
            Grant::RefreshToken {
                refresh_token: "x".into(),
            },
        ];
        for grant in secrets {
            let limits = grant.attempt_limits(here);
            assert_eq!(limits.len(), 1, "{grant:?}");
            assert!(limits[0].key.ends_with("@192.0.2.7"), "{grant:?}");
            assert!(!limits[0].key.contains(&Uuid::nil().to_string()));
        }
        let v6 = IpAddr::from([0x2001, 0xdb8, 0, 7, 1, 2, 3, 4]);
        assert_eq!(
            pin.attempt_limits(v6)[0].key,
            "pk:acme:PK-1@2001:db8:0:7::/64"
        );
        let id = Uuid::now_v7();
        assert_eq!(
            keys(&pin_change_limits(id, here)),
            [format!("pin:{id}@192.0.2.7"), format!("pin:{id}")]
        );
    }

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
