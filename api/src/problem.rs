//! RFC 9457 problem details: every error this API answers, with its stable code.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, error};
use countersign_domain::{Error, ErrorCode};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer (`application/problem+json`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    /// The stable machine code from the error catalogue.
    pub code: String,
    /// What went wrong, for a person.
    pub detail: String,
    /// With `approver_on_hold`: when the hold of the caller's programming key ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_until: Option<chrono::DateTime<chrono::Utc>>,
    /// On a 422: each offending field of the body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldProblem>,
}

/// One offending field of a refused body.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldProblem {
    /// A JSON pointer (RFC 6901) into the body, e.g. `/events/3/occurred_at`.
    pub pointer: String,
    /// The stable code of what is wrong with it.
    pub code: String,
    pub message: String,
}

/// The HTTP face of the domain's error.
#[derive(Debug)]
pub struct ApiError(pub Error);

impl<E: Into<Error>> From<E> for ApiError {
    fn from(err: E) -> Self {
        ApiError(err.into())
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError(Error::rule(code, detail))
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

pub fn problem(code: ErrorCode, detail: impl Into<String>) -> Problem {
    Problem {
        type_: format!("https://countersign.dev/errors/{}", code.as_str()),
        title: code.meaning().to_owned(),
        status: code.status(),
        code: code.as_str().to_owned(),
        detail: detail.into(),
        hold_until: None,
        errors: Vec::new(),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let code = self.0.code();
        let detail = match &self.0 {
            Error::Rule { detail, .. } | Error::Fields { detail, .. } => detail.clone(),
            Error::Throttled { retry_after_secs } => {
                format!("too many failed attempts; retry in {retry_after_secs} s")
            }
            Error::OnHold { until } => format!(
                "an approver change put your programming key on hold; you can decide again from {}",
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Error::Unavailable(cause) => {
                tracing::warn!(%cause, "a backing service is unavailable");
                "a backing service is unavailable; retry later".to_owned()
            }
            Error::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                "an unexpected error occurred".to_owned()
            }
        };
        let mut response = HttpResponse::build(self.status_code());
        response.content_type("application/problem+json");
        match &self.0 {
            Error::Throttled { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            Error::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            _ => {}
        }
        if code == ErrorCode::Unauthorized || code == ErrorCode::InvalidCredentials {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        let mut body = problem(code, detail);
        if let Error::OnHold { until } = &self.0 {
            body.hold_until = Some(*until);
        }
        if let Error::Fields { errors, .. } = &self.0 {
            body.errors = errors
                .iter()
                .map(|e| FieldProblem {
                    pointer: e.pointer.clone(),
                    code: e.code.clone(),
                    message: e.message.clone(),
                })
                .collect();
        }
        response.json(body)
    }
}

pub fn json_error(err: error::JsonPayloadError, _: &HttpRequest) -> error::Error {
    let api = match &err {
        error::JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the body as application/json",
        ),
        error::JsonPayloadError::Overflow { limit }
        | error::JsonPayloadError::OverflowKnownLength { limit, .. } => ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the body exceeds this route's limit of {limit} bytes"),
        ),
        error::JsonPayloadError::Deserialize(e) => {
            ApiError::new(ErrorCode::InvalidBody, e.to_string())
        }
        other => ApiError::new(ErrorCode::InvalidBody, other.to_string()),
    };
    api.into()
}

pub fn path_error(err: error::PathError, _: &HttpRequest) -> error::Error {
    ApiError::new(
        ErrorCode::InvalidPath,
        format!("invalid path parameter: {err}"),
    )
    .into()
}

pub fn query_error(err: error::QueryPayloadError, _: &HttpRequest) -> error::Error {
    ApiError::new(ErrorCode::InvalidQuery, format!("invalid query: {err}")).into()
}

pub async fn not_found() -> HttpResponse {
    ApiError::new(ErrorCode::NotFound, "no such resource").error_response()
}

/// Turns `validator`'s report into one readable sentence.
pub fn validation(errors: validator::ValidationErrors) -> ApiError {
    let mut fields: Vec<String> = errors
        .field_errors()
        .iter()
        .map(|(field, errs)| {
            let what: Vec<String> = errs
                .iter()
                .map(|e| {
                    e.message
                        .as_ref()
                        .map_or_else(|| e.code.to_string(), ToString::to_string)
                })
                .collect();
            format!("{field}: {}", what.join(", "))
        })
        .collect();
    fields.sort();
    ApiError::new(ErrorCode::ValidationFailed, fields.join("; "))
}

/// The problems every call on one of a tenant's resources may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ResourceProblems {
    /// The body or a parameter is malformed.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No valid access token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The caller's roles do not permit this operation.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// No such resource in the caller's tenant.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// The problems every list or create call of a tenant may answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum ListProblems {
    /// The body or a parameter is malformed.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// No valid access token.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The caller's roles do not permit this operation.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// The methods of every documented path, so that a known path asked with
/// another method is answered `405` with `Allow` rather than `404`.
pub struct Routes(Vec<(Vec<String>, String)>);

impl Routes {
    pub fn from_openapi(openapi: &utoipa::openapi::OpenApi) -> Self {
        let routes = openapi
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                let allow: Vec<&str> = methods
                    .iter()
                    .filter(|(_, present)| *present)
                    .map(|(method, _)| *method)
                    .collect();
                let segments = path.split('/').map(str::to_owned).collect();
                (segments, allow.join(", "))
            })
            .collect();
        Routes(routes)
    }

    /// The `Allow` value of the documented path that `path` is an instance of.
    fn allow(&self, path: &str) -> Option<&str> {
        let asked: Vec<&str> = path.split('/').collect();
        self.0.iter().find_map(|(segments, allow)| {
            let matches = segments.len() == asked.len()
                && segments.iter().zip(&asked).all(|(template, segment)| {
                    template == segment
                        || (template.starts_with('{')
                            && template.ends_with('}')
                            && !segment.is_empty())
                });
            matches.then_some(allow.as_str())
        })
    }
}

/// What no route answers: `405` on a known path, else `404`.
pub async fn no_route(req: HttpRequest) -> HttpResponse {
    let allow = req
        .app_data::<actix_web::web::Data<Routes>>()
        .and_then(|routes| routes.allow(req.path()).map(str::to_owned));
    match allow {
        Some(allow) => {
            let mut response = ApiError::new(
                ErrorCode::MethodNotAllowed,
                format!("{} is not answered here; use {allow}", req.method()),
            )
            .error_response();
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            response
        }
        None => not_found().await,
    }
}

/// A JSON body as a request type: it must be an object (serde would also read a
/// struct from an array), and no string in it may hold U+0000, which no text
/// column can store.
pub fn body_from_json<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "the body must be a JSON object",
        ));
    }
    if holds_nul(&value) {
        return Err(ApiError::new(
            ErrorCode::InvalidBody,
            "strings must not contain U+0000",
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::new(ErrorCode::InvalidBody, e.to_string()))
}

fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}
