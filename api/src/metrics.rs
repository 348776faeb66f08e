//! `GET /metrics` in the Prometheus text format: HTTP traffic by route
//! template, open long polls, and figures read at scrape time (requests and
//! jobs by status, the mail outbox, the database pool, Redis).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use countersign_domain::ports::Operations;
use countersign_domain::workflow::{JobStatus, RequestStatus};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets in seconds; long polls land in the last ones.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Statuses of outbox mails that are counted (sent ones only accumulate).
const MAIL_STATUSES: [&str; 2] = ["pending", "failed"];

/// One server's metrics. Each server has its own registry.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    long_polls: IntGauge,
    requests: IntGaugeVec,
    jobs: IntGaugeVec,
    mail: IntGaugeVec,
    mail_retrying: IntGauge,
    mail_send_failures: IntCounter,
    database_up: IntGauge,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    redis_up: Option<IntGauge>,
    source: Arc<dyn Operations>,
}

impl Metrics {
    /// `with_redis`: whether the server uses Redis (only then is its gauge reported).
    pub fn new(source: Arc<dyn Operations>, with_redis: bool) -> anyhow::Result<Self> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "countersign_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
            ),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "countersign_http_request_duration_seconds",
                "Time until the response head, by route template and method.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method"],
        )?;
        let long_polls = IntGauge::new(
            "countersign_agent_long_polls_open",
            "Device agents waiting in GET /v1/agent/work in this process.",
        )?;
        let requests = IntGaugeVec::new(
            Opts::new(
                "countersign_event_log_requests",
                "Event-log requests by status (all tenants).",
            ),
            &["status"],
        )?;
        let jobs = IntGaugeVec::new(
            Opts::new(
                "countersign_readout_jobs",
                "Readout jobs by status (all tenants).",
            ),
            &["status"],
        )?;
        let mail = IntGaugeVec::new(
            Opts::new(
                "countersign_mail_outbox",
                "Mails not sent by status: pending (due or waiting for a retry) and failed (given up).",
            ),
            &["status"],
        )?;
        let mail_retrying = IntGauge::new(
            "countersign_mail_outbox_retrying",
            "Pending mails whose sending failed at least once.",
        )?;
        let mail_send_failures = IntCounter::new(
            "countersign_mail_send_failures_total",
            "Failed mail send attempts of this process's outbox worker.",
        )?;
        let database_up = IntGauge::new(
            "countersign_database_up",
            "Whether the database answered this scrape's counts (1) or not (0).",
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "countersign_db_pool_connections",
                "Open database connections of this process, by state (idle, in_use).",
            ),
            &["state"],
        )?;
        let pool_max = IntGauge::new(
            "countersign_db_pool_max_connections",
            "The size limit of this process's database pool.",
        )?;
        let redis_up = if with_redis {
            Some(IntGauge::new(
                "countersign_redis_up",
                "Whether Redis answered a PING at this scrape (1) or not (0).",
            )?)
        } else {
            None
        };
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(long_polls.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(jobs.clone()))?;
        registry.register(Box::new(mail.clone()))?;
        registry.register(Box::new(mail_retrying.clone()))?;
        registry.register(Box::new(mail_send_failures.clone()))?;
        registry.register(Box::new(database_up.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        if let Some(redis_up) = &redis_up {
            registry.register(Box::new(redis_up.clone()))?;
        }
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            long_polls,
            requests,
            jobs,
            mail,
            mail_retrying,
            mail_send_failures,
            database_up,
            pool,
            pool_max,
            redis_up,
            source,
        })
    }

    /// Counts one answered request. `route` is the matched template, never the raw path.
    pub fn observe(&self, route: &str, method: &Method, status: u16, elapsed: Duration) {
        let method = method_label(method);
        self.http_requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts an open long poll until the returned guard is dropped.
    pub fn long_poll(&self) -> LongPollGuard {
        self.long_polls.inc();
        LongPollGuard(self.long_polls.clone())
    }

    /// Reads the figures that are computed at scrape time.
    async fn refresh(&self) {
        let counts = self.source.operational_counts().await;
        self.database_up.set(i64::from(counts.tables.is_some()));
        if let Some(tables) = counts.tables {
            set_all(
                &self.requests,
                RequestStatus::ALL.iter().map(|s| s.as_str()),
                &tables.requests_by_status,
            );
            set_all(
                &self.jobs,
                JobStatus::ALL.iter().map(|s| s.as_str()),
                &tables.jobs_by_status,
            );
            set_all(&self.mail, MAIL_STATUSES, &tables.mail_by_status);
            self.mail_retrying.set(gauge(tables.mail_retrying));
        }
        let counted = self.mail_send_failures.get();
        if counts.mail_send_failures > counted {
            self.mail_send_failures
                .inc_by(counts.mail_send_failures - counted);
        }
        let pool = counts.pool;
        self.pool.with_label_values(&["idle"]).set(gauge(pool.idle));
        self.pool
            .with_label_values(&["in_use"])
            .set(gauge(pool.size.saturating_sub(pool.idle)));
        self.pool_max.set(gauge(pool.max));
        if let (Some(gauge), Some(up)) = (&self.redis_up, counts.redis_up) {
            gauge.set(i64::from(up));
        }
    }

    fn render(&self) -> anyhow::Result<String> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }
}

/// Decrements the open long polls when the poll ends, however it ends.
pub struct LongPollGuard(IntGauge);

impl Drop for LongPollGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Sets every known label to its count, zero when absent; unknown labels are kept too.
fn set_all<'a>(
    vec: &IntGaugeVec,
    known: impl IntoIterator<Item = &'a str>,
    counts: &[(String, u64)],
) {
    vec.reset();
    for label in known {
        vec.with_label_values(&[label]).set(0);
    }
    for (label, count) in counts {
        vec.with_label_values(&[label.as_str()]).set(gauge(*count));
    }
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The method as a label; unusual methods share one, so that they cannot
/// multiply the series.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `GET /metrics`: the Prometheus text format.
pub async fn scrape(metrics: web::Data<Metrics>) -> HttpResponse {
    metrics.refresh().await;
    match metrics.render() {
        Ok(text) => HttpResponse::Ok()
            .content_type(TextEncoder::new().format_type())
            .body(text),
        Err(err) => {
            tracing::error!(error = %err, "metrics could not be rendered");
            HttpResponse::InternalServerError().finish()
        }
    }
}
