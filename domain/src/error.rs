//! The one error type of the domain and the catalogue of stable error codes.

use std::fmt;

/// Declares the catalogue once: each code with its stable name, HTTP status
/// and meaning.
macro_rules! error_codes {
    ($($variant:ident => ($name:literal, $status:literal, $meaning:literal),)*) => {
        /// A stable, machine-readable error code. Clients rely on these strings; the
        /// catalogue (code, HTTP status, meaning) is served in the docs from [`ErrorCode::ALL`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// `(code, HTTP status, meaning)`.
            pub const fn describe(self) -> (&'static str, u16, &'static str) {
                match self {
                    $(ErrorCode::$variant => ($name, $status, $meaning),)*
                }
            }
        }
    };
}

error_codes! {
    InvalidBody => ("invalid_body", 400, "The body is not valid JSON of the expected shape (wrong type, unknown field, missing field)."),
    InvalidPath => ("invalid_path", 400, "A path parameter is malformed, for example an id that is not a UUID."),
    InvalidQuery => ("invalid_query", 400, "A query parameter is malformed or out of range."),
    UnsupportedMediaType => ("unsupported_media_type", 415, "The body must be sent as application/json."),
    PayloadTooLarge => ("payload_too_large", 413, "The body exceeds this route's size limit."),
    ValidationFailed => ("validation_failed", 422, "The body is well-formed but a field violates its constraints."),
    Unauthorized => ("unauthorized", 401, "No valid access token: missing, malformed, expired, revoked or issued for another audience."),
    InvalidCredentials => ("invalid_credentials", 401, "The credentials presented to the token endpoint are not valid."),
    Forbidden => ("forbidden", 403, "The caller's roles do not permit this operation."),
    PinChangeRequired => ("pin_change_required", 403, "The key logged in with a one-time PIN and must set its own PIN first (POST /v1/me/pin)."),
    SelfApproval => ("self_approval", 403, "Nobody decides on a request that they made."),
    ApproverOnHold => ("approver_on_hold", 403, "An approver change put this programming key on hold; it may decide again after `hold_until`."),
    NotFound => ("not_found", 404, "No such resource in the caller's tenant."),
    MethodNotAllowed => ("method_not_allowed", 405, "The resource does not support this method."),
    AlreadyExists => ("already_exists", 409, "A resource with this unique value (marking, slug, serial) already exists."),
    InvalidStateTransition => ("invalid_state_transition", 409, "The resource's current state does not allow this operation."),
    ApprovalSettingImmutable => ("approval_setting_immutable", 409, "approval_required and approvals_required are fixed when a tenant is provisioned."),
    TenantSettingImmutable => ("tenant_setting_immutable", 409, "This tenant setting (base_timezone, slug) is fixed when the tenant is provisioned."),
    TenantSuspended => ("tenant_suspended", 403, "The tenant is suspended."),
    RequestAlreadyOpen => ("request_already_open", 409, "An event-log request for this target is already open."),
    NoApproverAvailable => ("no_approver_available", 409, "Fewer approvers able to act than the tenant requires."),
    RequestNotPending => ("request_not_pending", 409, "The request is no longer pending approval."),
    RequestExpired => ("request_expired", 409, "The request expired before this call; it is now expired."),
    AlreadyDecided => ("already_decided", 409, "This approver has already decided on the request."),
    ApprovalFunctionActive => ("approval_function_active", 409, "Not available in a tenant with the approver function."),
    ApproverRequiresEmail => ("approver_requires_email", 422, "A key with the approver role must be issued to an employee with an e-mail address."),
    NoEventLog => ("no_event_log", 422, "The target keeps no event log."),
    KeyNotIssued => ("key_not_issued", 422, "The key is not issued to an employee."),
    InvalidRole => ("invalid_role", 422, "The role set is not allowed for this credential."),
    UnknownReference => ("unknown_reference", 422, "The body refers to a resource that does not exist in the tenant."),
    LeaseLost => ("lease_lost", 409, "The lease token is stale: the lease expired or the job was claimed again."),
    JobUnavailable => ("job_unavailable", 409, "The job cannot be claimed now: it is taken, ended or not this agent's."),
    JobNotClaimable => ("job_not_claimable", 409, "The job is not claimed this way or at this device: a key's readout where the key is inserted at a remote unit, a desk readout at its desk unit, a cylinder job through its programming key."),
    EventTimeOutOfRange => ("event_time_out_of_range", 422, "An uploaded event's occurred_at lies before 2000-01-01T00:00:00Z or more than 24 hours after the upload; the batch is not stored."),
    LoginThrottled => ("login_throttled", 429, "Too many failed logins for this credential; retry after the time in Retry-After."),
    RequestTimeout => ("request_timeout", 408, "The request body did not arrive within the request timeout."),
    ServiceUnavailable => ("service_unavailable", 503, "A backing service is unavailable; retry later."),
    Internal => ("internal_error", 500, "An unexpected error; it has been logged."),
}

impl ErrorCode {
    pub const fn as_str(self) -> &'static str {
        self.describe().0
    }

    pub const fn status(self) -> u16 {
        self.describe().1
    }

    pub const fn meaning(self) -> &'static str {
        self.describe().2
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything that can go wrong below the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule refused the operation; the client may see code and detail.
    #[error("{code}: {detail}")]
    Rule { code: ErrorCode, detail: String },
    /// A body refused for the fields it names; the client may see them.
    #[error("{code}: {detail}")]
    Fields {
        code: ErrorCode,
        detail: String,
        errors: Vec<FieldError>,
    },
    /// Login throttled for this credential.
    #[error("login throttled for {retry_after_secs} s")]
    Throttled { retry_after_secs: u64 },
    /// An approver change keeps this key from deciding until `until`.
    #[error("the programming key is on hold until {until}")]
    OnHold {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// A backing service (database) is unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else: logged, answered as a bare 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// A body field that violates its constraints (SPEC §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// A JSON pointer into the body, e.g. `/checkpoints/0/hash`.
    pub pointer: String,
    /// A machine word for what is wrong with it, e.g. `invalid_hash` or
    /// `event_time_out_of_range`.
    pub code: String,
    pub message: String,
}

/// The fields' pointers and messages, as one sentence.
pub fn fields_text(fields: &[FieldError]) -> String {
    fields
        .iter()
        .map(|f| format!("{}: {}", f.pointer, f.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A body refused with `validation_failed` for the fields it names.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        Self::Fields {
            code: ErrorCode::ValidationFailed,
            detail: fields_text(&errors),
            errors,
        }
    }

    pub fn rule(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Rule {
            code,
            detail: detail.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::rule(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::rule(ErrorCode::ValidationFailed, detail)
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Rule { code, .. } | Self::Fields { code, .. } => *code,
            Self::Throttled { .. } => ErrorCode::LoginThrottled,
            Self::OnHold { .. } => ErrorCode::ApproverOnHold,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_statuses_are_errors() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "duplicate code {code}");
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }

    #[test]
    fn spec_codes_keep_their_names_and_statuses() {
        let fixed = [
            (
                ErrorCode::ApprovalSettingImmutable,
                "approval_setting_immutable",
                409,
            ),
            (
                ErrorCode::TenantSettingImmutable,
                "tenant_setting_immutable",
                409,
            ),
            (
                ErrorCode::ApproverRequiresEmail,
                "approver_requires_email",
                422,
            ),
            (ErrorCode::SelfApproval, "self_approval", 403),
            (ErrorCode::ApproverOnHold, "approver_on_hold", 403),
            (ErrorCode::NoApproverAvailable, "no_approver_available", 409),
            (ErrorCode::RequestAlreadyOpen, "request_already_open", 409),
            (ErrorCode::NoEventLog, "no_event_log", 422),
            (ErrorCode::KeyNotIssued, "key_not_issued", 422),
            (ErrorCode::RequestNotPending, "request_not_pending", 409),
            (ErrorCode::RequestExpired, "request_expired", 409),
            (ErrorCode::JobNotClaimable, "job_not_claimable", 409),
            (
                ErrorCode::EventTimeOutOfRange,
                "event_time_out_of_range",
                422,
            ),
            (ErrorCode::AlreadyDecided, "already_decided", 409),
        ];
        for (code, name, status) in fixed {
            assert_eq!((code.as_str(), code.status()), (name, status));
        }
    }
}
