//! `/v1/keys/{id}/event-log` and `/v1/cylinders/{id}/event-log`: reading and
//! exporting the event data of a key or a cylinder (administrators only; every
//! read and export is recorded in the history).

mod to_csv;
mod to_pdf;

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use countersign_domain::ErrorCode;
use countersign_domain::page::{DEFAULT_LIMIT, MAX_LIMIT};
use countersign_domain::permission::Action;
use countersign_domain::ports::{EventExport, EventQuery, EventRecord};
use countersign_domain::workflow::TargetType;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::Caller;
use crate::pagination::Page;
use crate::problem::{ApiError, Problem, ResourceProblems};
use crate::state::AppState;

/// Time filters and pagination of an event-log read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventLogQuery {
    /// Events at or after this instant: RFC 3339 with an explicit offset
    /// (`2024-03-31T00:00:00Z`, `2024-03-31T01:00:00+01:00`; send `+` as `%2B`).
    #[param(format = DateTime, example = "2024-03-31T00:00:00+01:00")]
    pub from: Option<String>,
    /// Events before this instant (exclusive), in the same format as `from`.
    #[param(format = DateTime, example = "2024-04-01T00:00:00+02:00")]
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Events per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Pdf,
}

impl ExportFormat {
    fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Pdf => "pdf",
        }
    }
}

/// Time filters of an export, which holds every event of the range.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (UTF-8, one header row) or `pdf` (A4, printable).
    #[param(inline)]
    pub format: ExportFormat,
    /// As for the event log: inclusive, RFC 3339 with an explicit offset.
    #[param(format = DateTime, example = "2024-03-31T00:00:00Z")]
    pub from: Option<String>,
    /// As for the event log: exclusive, RFC 3339 with an explicit offset.
    #[param(format = DateTime, example = "2024-04-01T00:00:00Z")]
    pub to: Option<String>,
}

/// One event of a key's or a cylinder's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventOut {
    /// The device's sequence number, unique per key or cylinder.
    pub seq: i64,
    /// When it happened, in UTC.
    pub occurred_at: DateTime<Utc>,
    /// The same instant in the tenant's `base_timezone`, with that zone's offset.
    #[schema(format = DateTime, example = "2024-03-31T03:30:00+02:00")]
    pub occurred_at_local: String,
    /// What happened, e.g. `access_granted`, `access_denied`.
    pub kind: String,
    pub key_marking: Option<String>,
    pub cylinder_marking: Option<String>,
    /// The readout job that brought the event in.
    pub job_id: Option<Uuid>,
}

impl EventOut {
    fn new(e: EventRecord, tz: Tz) -> Self {
        EventOut {
            seq: e.seq,
            occurred_at: e.occurred_at,
            occurred_at_local: local(e.occurred_at, tz),
            kind: e.kind,
            key_marking: e.key_marking,
            cylinder_marking: e.cylinder_marking,
            job_id: e.job_id,
        }
    }
}

pub(crate) fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

pub(crate) fn local(at: DateTime<Utc>, tz: Tz) -> String {
    at.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

/// An instant with an explicit offset; a local time without one is ambiguous.
fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(value)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "{name} must be an RFC 3339 timestamp with an explicit offset, such as \
                     2024-03-31T00:00:00Z or 2024-03-31T01:00:00%2B01:00 (a `+` must be sent as %2B)"
                ),
            )
        })
}

fn range(from: Option<&str>, to: Option<&str>) -> Result<EventQuery, ApiError> {
    let (from, to) = (instant("from", from)?, instant("to", to)?);
    if let (Some(from), Some(to)) = (from, to)
        && to <= from
    {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            "to must be later than from",
        ));
    }
    Ok(EventQuery {
        from,
        to,
        ..EventQuery::default()
    })
}

impl EventLogQuery {
    fn to_query(&self) -> Result<EventQuery, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after_seq = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    "cursor is not one this API returned",
                )
            })?),
        };
        Ok(EventQuery {
            after_seq,
            limit,
            ..range(self.from.as_deref(), self.to.as_deref())?
        })
    }
}

async fn read(
    state: &AppState,
    caller: &Caller,
    source: TargetType,
    id: Uuid,
    query: &EventLogQuery,
) -> Result<web::Json<Page<EventOut>>, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadEventData)?;
    let query = query.to_query()?;
    let (tenant, events, next) = state
        .store
        .read_events(t, &caller.principal, source, id, query)
        .await?;
    let tz = tenant.fixed().base_timezone();
    Ok(web::Json(Page {
        items: events.into_iter().map(|e| EventOut::new(e, tz)).collect(),
        next_cursor: next.map(|seq| seq.to_string()),
    }))
}

/// Letters, digits, `-` and `_` of a marking, for a file name.
fn file_safe(s: &str) -> String {
    let safe: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if safe.is_empty() {
        "unnamed".into()
    } else {
        safe
    }
}

fn attachment(export: &EventExport, extension: &str) -> ContentDisposition {
    let name = format!(
        "event-log-{}-{}.{extension}",
        export.target.target_type.as_str(),
        file_safe(&export.target.marking)
    );
    ContentDisposition {
        disposition: DispositionType::Attachment,
        parameters: vec![DispositionParam::Filename(name)],
    }
}

async fn export(
    state: &AppState,
    caller: &Caller,
    source: TargetType,
    id: Uuid,
    query: &ExportQuery,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadEventData)?;
    let range = range(query.from.as_deref(), query.to.as_deref())?;
    let format = query.format;
    let export = state
        .store
        .export_events(t, &caller.principal, source, id, range, format.as_str())
        .await?;
    let (body, content_type) = match format {
        ExportFormat::Csv => (to_csv::render(&export)?, "text/csv; charset=utf-8"),
        ExportFormat::Pdf => (to_pdf::render(&export, Utc::now()), "application/pdf"),
    };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(attachment(&export, format.as_str()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

#[utoipa::path(
    tag = "event-data",
    params(("id" = Uuid, Path, description = "The key"), EventLogQuery),
    responses(
        (status = 200, description = "One page of the key's events, oldest first; the read is recorded in the history", body = Page<EventOut>),
        (status = 400, description = "e.g. a timestamp without offset, a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only administrators read event data", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/keys/{id}/event-log")]
pub async fn key_event_log(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<EventLogQuery>,
) -> Result<web::Json<Page<EventOut>>, ApiError> {
    read(&state, &caller, TargetType::Key, *id, &query).await
}

#[utoipa::path(
    tag = "event-data",
    params(("id" = Uuid, Path, description = "The cylinder"), EventLogQuery),
    responses(
        (status = 200, description = "One page of the cylinder's events, oldest first; the read is recorded in the history", body = Page<EventOut>),
        (status = 400, description = "e.g. a timestamp without offset, a bad cursor or limit", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only administrators read event data", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/cylinders/{id}/event-log")]
pub async fn cylinder_event_log(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<EventLogQuery>,
) -> Result<web::Json<Page<EventOut>>, ApiError> {
    read(&state, &caller, TargetType::Cylinder, *id, &query).await
}

#[utoipa::path(
    tag = "event-data",
    params(("id" = Uuid, Path, description = "The key"), ExportQuery),
    responses(
        (status = 200, description = "Every event of the range as a download; the export is recorded in the history",
            content(
                (String = "text/csv", example = "seq,occurred_at,occurred_at_local,kind,key_marking,cylinder_marking\n1,2024-03-31T00:30:00Z,2024-03-31T01:30:00+01:00,access_granted,K-1,C-7\n"),
                (Vec<u8> = "application/pdf"),
            ),
            headers(("Content-Disposition" = String, description = "attachment; filename=event-log-key-….csv or .pdf"))),
        (status = 400, description = "e.g. an unknown format or a timestamp without offset", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only administrators export event data", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/keys/{id}/event-log/export")]
pub async fn export_key_event_log(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    export(&state, &caller, TargetType::Key, *id, &query).await
}

#[utoipa::path(
    tag = "event-data",
    params(("id" = Uuid, Path, description = "The cylinder"), ExportQuery),
    responses(
        (status = 200, description = "Every event of the range as a download; the export is recorded in the history",
            content(
                (String = "text/csv", example = "seq,occurred_at,occurred_at_local,kind,key_marking,cylinder_marking\n1,2024-03-31T00:30:00Z,2024-03-31T01:30:00+01:00,access_granted,K-1,C-7\n"),
                (Vec<u8> = "application/pdf"),
            ),
            headers(("Content-Disposition" = String, description = "attachment; filename=event-log-cylinder-….csv or .pdf"))),
        (status = 400, description = "e.g. an unknown format or a timestamp without offset", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only administrators export event data", body = Problem, content_type = "application/problem+json"),
        ResourceProblems,
    ),
    security(("bearer" = []))
)]
#[get("/cylinders/{id}/event-log/export")]
pub async fn export_cylinder_event_log(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<Uuid>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    export(&state, &caller, TargetType::Cylinder, *id, &query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_need_an_offset() {
        assert!(instant("from", Some("2024-03-31T00:00:00")).is_err());
        assert!(instant("from", Some("2024-03-31")).is_err());
        let z = instant("from", Some("2024-03-31T00:00:00Z")).ok().flatten();
        let plus = instant("from", Some("2024-03-31T01:00:00+01:00"))
            .ok()
            .flatten();
        assert!(z.is_some());
        assert_eq!(z, plus);
    }

    #[test]
    fn local_times_carry_the_zone_offset_across_dst() {
        let tz: Tz = "Europe/Berlin".parse().unwrap_or(Tz::UTC);
        let before = DateTime::parse_from_rfc3339("2024-03-31T00:30:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        let after = DateTime::parse_from_rfc3339("2024-03-31T01:30:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(local(before, tz), "2024-03-31T01:30:00+01:00");
        assert_eq!(local(after, tz), "2024-03-31T03:30:00+02:00");
    }

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_safe("K 1/ä\"x"), "K_1___x");
        assert_eq!(file_safe(""), "unnamed");
    }
}
