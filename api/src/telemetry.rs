//! Logs and request tracing: JSON lines or text, a span per request carrying
//! its request id (and, once authenticated, the tenant and the principal), one
//! access log line per request, and the HTTP metrics.
//!
//! Nothing logged here or through the request span holds a credential: no
//! header but `X-Request-Id` is read, and the principal is its kind and id.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, ResponseError, web};
use countersign_domain::auth::Session;
use tracing::Instrument;
use tracing::field::Empty;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::hardening::{HttpSettings, LONG_POLL_ROUTE};
use crate::metrics::{Metrics, UNMATCHED};

/// The request id header, taken from the client when sane, else generated.
pub const REQUEST_ID: &str = "x-request-id";
/// The longest request id taken from a client.
const MAX_REQUEST_ID: usize = 128;

/// Installs the global subscriber: JSON lines (`json`, or `auto` when stdout is
/// not a terminal) or text. `RUST_LOG` filters; the default is `info`.
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sqlx=warn".into());
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Already installed (a test harness, say): keep that one.
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// A client's request id, if it is one: 1–128 visible ASCII characters.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let bytes = value.as_bytes();
    let sane = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes.iter().all(|b| b.is_ascii_graphic());
    sane.then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// Records the authenticated caller in the current request's span.
pub fn record_caller(session: &Session) {
    let span = tracing::Span::current();
    let principal = &session.principal;
    if let Some(tenant) = principal.tenant_id {
        span.record("tenant_id", tracing::field::display(tenant.0));
    }
    span.record("principal_kind", principal.kind.as_str());
    span.record("principal_id", tracing::field::display(principal.id));
}

/// The outermost middleware: request id, span, access log line, metrics and
/// the security headers, on every answer, errors included.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(sane_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let route = req.match_pattern();
    let route = route.as_deref().unwrap_or(UNMATCHED).to_owned();
    let method = req.method().clone();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let settings = req.app_data::<web::Data<HttpSettings>>().cloned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = %route,
        tenant_id = Empty,
        principal_kind = Empty,
        principal_id = Empty,
    );
    let waits = req.query_string().split('&').any(|pair| {
        pair.strip_prefix("wait=")
            .is_some_and(|secs| !secs.trim_start_matches('0').is_empty())
    });
    let _long_poll = (route == LONG_POLL_ROUTE && method == actix_web::http::Method::GET && waits)
        .then(|| metrics.as_ref().map(|m| m.long_poll()));
    let answer = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = match &answer {
        Ok(response) => response.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    span.in_scope(|| {
        tracing::info!(
            target: "countersign::access",
            method = %method,
            route = %route,
            status = status.as_u16(),
            latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "request"
        );
    });
    if let Some(metrics) = metrics {
        metrics.observe(&route, &method, status.as_u16(), elapsed);
    }
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID), value);
    }
    if let Some(settings) = settings {
        settings.secure(&mut headers);
    }
    match answer {
        Ok(mut response) => {
            let target = response.headers_mut();
            for (name, value) in &headers {
                if !target.contains_key(name) {
                    target.insert(name.clone(), value.clone());
                }
            }
            Ok(response)
        }
        Err(error) => Err(WithHeaders { error, headers }.into()),
    }
}

/// An error answered with the headers every response carries.
struct WithHeaders {
    error: Error,
    headers: HeaderMap,
}

impl std::fmt::Debug for WithHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.error, f)
    }
}

impl std::fmt::Display for WithHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.error, f)
    }
}

impl ResponseError for WithHeaders {
    fn status_code(&self) -> StatusCode {
        self.error.as_response_error().status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = self.error.error_response();
        let target = response.headers_mut();
        for (name, value) in &self.headers {
            if !target.contains_key(name) {
                target.insert(name.clone(), value.clone());
            }
        }
        response
    }
}
