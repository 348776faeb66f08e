//! `GET /metrics` in the Prometheus text format, served on a listener of its
//! own (`COUNTERSIGN_METRICS_LISTEN`), never on the public port: HTTP traffic
//! by route template and open long polls; counts over every tenant (requests
//! and jobs by status, the mail outbox) that a background worker computes at
//! an interval; and figures of this process read at scrape time (the
//! database pool, Redis). A scrape never queries the database.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::http::Method;
use actix_web::{HttpResponse, web};
use countersign_domain::ports::Operations;
use countersign_domain::workflow::{JobStatus, RequestStatus};
use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// The route label of a request that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Latency buckets in seconds; long polls land in the last ones.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Statuses of outbox mails that are counted (sent ones only accumulate).
const MAIL_STATUSES: [&str; 2] = ["pending", "failed"];

/// Appended to the help of the counts over every tenant.
const CLUSTER_WIDE: &str = "All tenants together, computed from the database every \
     COUNTERSIGN_METRICS_INTERVAL_SECS (see countersign_table_counts_age_seconds). \
     A cluster-wide value that every replica reports alike: aggregate with max(), not sum().";

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
    database_up: IntGauge,
    tables_age: Gauge,
    mail_send_failures: IntCounter,
    pool: IntGaugeVec,
    pool_max: IntGauge,
    redis_up: Option<IntGauge>,
    /// When the counts over every tenant were last computed. Held while they
    /// are written and while a scrape gathers, so that no scrape sees half of
    /// a computation.
    computed: Mutex<Option<Instant>>,
    started: Instant,
    source: Arc<dyn Operations>,
}

impl Metrics {
    /// `with_redis`: whether the server uses Redis (only then is its gauge reported).
    pub fn new(source: Arc<dyn Operations>, with_redis: bool) -> anyhow::Result<Self> {
        let registry = Registry::new();
        let cluster_wide = |help: &str| format!("{help} {CLUSTER_WIDE}");
        let http_requests = registered(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "countersign_http_requests_total",
                    "HTTP requests answered on the public port, by route template, method and status.",
                ),
                &["route", "method", "status"],
            )?,
        )?;
        let http_duration = registered(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "countersign_http_request_duration_seconds",
                    "Time until the response head, by route template and method.",
                )
                .buckets(BUCKETS.to_vec()),
                &["route", "method"],
            )?,
        )?;
        let long_polls = registered(
            &registry,
            IntGauge::new(
                "countersign_agent_long_polls_open",
                "Device agents waiting in GET /v1/agent/work in this process.",
            )?,
        )?;
        let requests = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "countersign_event_log_requests",
                    cluster_wide("Event-log requests by status."),
                ),
                &["status"],
            )?,
        )?;
        let jobs = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "countersign_readout_jobs",
                    cluster_wide("Readout jobs by status."),
                ),
                &["status"],
            )?,
        )?;
        let mail = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "countersign_mail_outbox",
                    cluster_wide(
                        "Mails not sent by status: pending (due or waiting for a retry) and failed (given up).",
                    ),
                ),
                &["status"],
            )?,
        )?;
        let mail_retrying = registered(
            &registry,
            IntGauge::new(
                "countersign_mail_outbox_retrying",
                cluster_wide("Pending mails whose sending failed at least once."),
            )?,
        )?;
        let database_up = registered(
            &registry,
            IntGauge::new(
                "countersign_database_up",
                "Whether the database answered this process's last computation of the counts over every tenant (1) or not (0).",
            )?,
        )?;
        let tables_age = registered(
            &registry,
            Gauge::new(
                "countersign_table_counts_age_seconds",
                "Seconds since this process last computed the counts over every tenant (since it started, before the first success); growing beyond COUNTERSIGN_METRICS_INTERVAL_SECS means they are stale.",
            )?,
        )?;
        let mail_send_failures = registered(
            &registry,
            IntCounter::new(
                "countersign_mail_send_failures_total",
                "Failed mail send attempts of this process's outbox worker.",
            )?,
        )?;
        let pool = registered(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "countersign_db_pool_connections",
                    "Open database connections of this process, by state (idle, in_use).",
                ),
                &["state"],
            )?,
        )?;
        let pool_max = registered(
            &registry,
            IntGauge::new(
                "countersign_db_pool_max_connections",
                "The size limit of this process's database pool.",
            )?,
        )?;
        let redis_up = if with_redis {
            Some(registered(
                &registry,
                IntGauge::new(
                    "countersign_redis_up",
                    "Whether Redis answered a PING at this scrape (1) or not (0).",
                )?,
            )?)
        } else {
            None
        };
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            long_polls,
            requests,
            jobs,
            mail,
            mail_retrying,
            database_up,
            tables_age,
            mail_send_failures,
            pool,
            pool_max,
            redis_up,
            computed: Mutex::new(None),
            started: Instant::now(),
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

    /// Computes the counts over every tenant from the database; the metrics
    /// worker calls it at an interval, a scrape never does. `false` when the
    /// database did not answer: the last counts stay, and age.
    pub async fn compute_table_counts(&self) -> bool {
        let counts = self.source.table_counts().await;
        let mut computed = self.computed.lock().unwrap_or_else(PoisonError::into_inner);
        self.database_up.set(i64::from(counts.is_some()));
        let Some(tables) = counts else {
            return false;
        };
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
        *computed = Some(Instant::now());
        true
    }

    /// Reads this process's figures, which need no database query.
    async fn refresh_process_counts(&self) {
        let counts = self.source.process_counts().await;
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
        let computed = self.computed.lock().unwrap_or_else(PoisonError::into_inner);
        let since = computed.unwrap_or(self.started);
        self.tables_age.set(since.elapsed().as_secs_f64());
        let families = self.registry.gather();
        drop(computed);
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&families, &mut buffer)?;
        Ok(String::from_utf8(buffer)?)
    }
}

/// Registers `metric` with `registry` and hands it back.
fn registered<M: Collector + Clone + 'static>(registry: &Registry, metric: M) -> anyhow::Result<M> {
    registry.register(Box::new(metric.clone()))?;
    Ok(metric)
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
    metrics.refresh_process_counts().await;
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
