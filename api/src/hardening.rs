//! What every response gets and every request is held to: security headers,
//! CORS for the configured browser frontends, and a time limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use countersign_domain::ErrorCode;
use futures::StreamExt;
use ipnet::IpNet;

use crate::client_address::parse_trusted_proxies;
use crate::config::Config;
use crate::problem::problem;

/// The agents' long poll: bounded by its own wait (≤ 50 s), not by the request timeout.
pub const LONG_POLL_ROUTE: &str = "/v1/agent/work";

/// The HTTP server's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Allowed browser origins; empty: no CORS; `*`: any.
    pub cors_origins: Vec<String>,
    /// `Strict-Transport-Security` max-age; zero sends none.
    pub hsts_max_age_secs: u64,
    /// Proxies whose forwarded client address is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl HttpSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            request_timeout: Duration::from_secs(config.request_timeout_secs),
            shutdown_timeout: Duration::from_secs(config.shutdown_timeout_secs),
            cors_origins: config.cors_origin_list(),
            hsts_max_age_secs: config.hsts_max_age_secs,
            // Validated when the configuration was loaded.
            trusted_proxies: parse_trusted_proxies(&config.trusted_proxies).unwrap_or_default(),
        }
    }

    /// Adds the security headers every response carries; those a handler set
    /// itself are kept.
    pub fn secure(&self, headers: &mut HeaderMap) {
        let mut add = |name: HeaderName, value: HeaderValue| {
            if !headers.contains_key(&name) {
                headers.insert(name, value);
            }
        };
        add(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        add(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        add(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
        add(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        add(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let hsts = format!("max-age={}", self.hsts_max_age_secs);
        if self.hsts_max_age_secs > 0
            && let Ok(hsts) = HeaderValue::from_str(&hsts)
        {
            add(header::STRICT_TRANSPORT_SECURITY, hsts);
        }
    }

    /// CORS for the configured origins: bearer tokens, no cookies. A request from
    /// another origin is served without CORS headers, so browsers refuse it.
    pub fn cors(&self) -> Cors {
        let mut cors = Cors::default()
            .allowed_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allowed_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static(crate::telemetry::REQUEST_ID),
            ])
            .expose_headers([
                header::LOCATION,
                header::RETRY_AFTER,
                HeaderName::from_static(crate::telemetry::REQUEST_ID),
            ])
            .max_age(3600)
            .block_on_origin_mismatch(false);
        for origin in &self.cors_origins {
            cors = if origin == "*" {
                cors.allow_any_origin()
            } else {
                cors.allowed_origin(origin)
            };
        }
        cors
    }

    pub fn cors_enabled(&self) -> bool {
        !self.cors_origins.is_empty()
    }
}

/// The answer to a request that took longer than the request timeout: 408 when
/// its body was still arriving (the client is slow), 503 otherwise (we are).
#[derive(Debug)]
struct TimedOut {
    limit: Duration,
    body_arrived: bool,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.limit.as_secs();
        if self.body_arrived {
            write!(f, "the request took longer than {secs} s; retry later")
        } else {
            write!(f, "the request body did not arrive within {secs} s")
        }
    }
}

impl ResponseError for TimedOut {
    fn status_code(&self) -> StatusCode {
        if self.body_arrived {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::REQUEST_TIMEOUT
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut answer = HttpResponse::build(self.status_code());
        answer.content_type("application/problem+json");
        if self.body_arrived {
            answer.insert_header((header::RETRY_AFTER, "5"));
            answer.json(problem(ErrorCode::ServiceUnavailable, self.to_string()))
        } else {
            answer
                .insert_header((header::CONNECTION, "close"))
                .json(problem(ErrorCode::RequestTimeout, self.to_string()))
        }
    }
}

/// Whether the request announces a body.
fn has_body(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > 0)
}

/// Answers 503 when a request takes longer than the request timeout, or 408
/// when its body has not arrived by then; the unfinished work is dropped (an
/// open transaction rolls back).
pub async fn deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, Error> {
    let limit = req
        .app_data::<web::Data<HttpSettings>>()
        .map(|settings| settings.request_timeout);
    // The path itself: the long-poll route has no parameters, and matching
    // the route table once more for every request costs more than the check.
    let exempt = req.path() == LONG_POLL_ROUTE;
    let Some(limit) = limit.filter(|_| !exempt) else {
        return next.call(req).await;
    };
    let body_arrived = Arc::new(AtomicBool::new(!has_body(&req)));
    if !body_arrived.load(Ordering::Relaxed) {
        let arrived = Arc::clone(&body_arrived);
        let end = futures::stream::poll_fn(move |_| {
            arrived.store(true, Ordering::Relaxed);
            Poll::Ready(None)
        });
        let tracked = req.take_payload().chain(end);
        req.set_payload(Payload::Stream {
            payload: Box::pin(tracked),
        });
    }
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(answer) => answer,
        Err(_) => {
            let body_arrived = body_arrived.load(Ordering::Relaxed);
            tracing::warn!(
                timeout_secs = limit.as_secs(),
                body_arrived,
                "request timed out"
            );
            Err(TimedOut {
                limit,
                body_arrived,
            }
            .into())
        }
    }
}
