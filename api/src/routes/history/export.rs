//! `GET /v1/history/export?format=jsonl`: the chain with its checkpoints,
//! streamed in batches, one JSON object per line. The same line type reads
//! the export back for `countersign history verify`.

use actix_web::http::header::{self, ContentDisposition, DispositionParam, DispositionType};
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use countersign_domain::ErrorCode;
use countersign_domain::history::Checkpoint;
use countersign_domain::permission::Action;
use countersign_domain::tenant::TenantId;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::HistoryEntryOut;
use crate::extract::Caller;
use crate::problem::{ApiError, ListProblems, Problem};
use crate::state::AppState;

/// Names the export's layout in its first line.
pub const EXPORT_FORMAT: &str = "countersign.history.export.v1";

/// One line of a JSON Lines export: first the `export` line, then every
/// entry in sequence order, each followed by its checkpoints.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExportLine {
    Export {
        format: String,
        tenant_id: Uuid,
        exported_at: DateTime<Utc>,
        /// The head the export runs through, its own entry included.
        through_seq: i64,
        head_hash: String,
    },
    Entry(HistoryEntryOut),
    Checkpoint(Checkpoint),
}

/// The formats of a history export, for the document: the query takes a
/// string, so that a format not available yet is answered with 422.
#[allow(dead_code)]
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum HistoryExportFormat {
    Jsonl,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryExportQuery {
    /// `jsonl` (JSON Lines); `csv` and `pdf` are not available yet (422).
    #[param(inline, value_type = HistoryExportFormat, example = "jsonl")]
    pub format: String,
}

fn line(value: &ExportLine) -> Result<web::Bytes, actix_web::Error> {
    let mut text =
        serde_json::to_string(value).map_err(actix_web::error::ErrorInternalServerError)?;
    text.push('\n');
    Ok(web::Bytes::from(text))
}

/// The lines of one batch after `after`: each entry, then its checkpoints.
async fn batch(
    state: &AppState,
    t: TenantId,
    after: i64,
    through: i64,
) -> Result<(Vec<web::Bytes>, Option<i64>), actix_web::Error> {
    let (entries, checkpoints) = state
        .store
        .export_batch(t, after, through)
        .await
        .map_err(ApiError::from)?;
    let last = entries.last().map(|e| e.seq);
    let mut checkpoints = checkpoints.into_iter().peekable();
    let mut lines = Vec::with_capacity(entries.len());
    for entry in entries {
        let seq = entry.seq;
        lines.push(line(&ExportLine::Entry(entry.into()))?);
        while let Some(c) = checkpoints.next_if(|c| c.seq <= seq) {
            lines.push(line(&ExportLine::Checkpoint(c))?);
        }
    }
    Ok((lines, last))
}

/// Export the history
///
/// The whole chain with its checkpoints as JSON Lines, read and sent in
/// batches: a first line `{"type": "export", …}`, then one line per entry
/// (`"type": "entry"`, fields as in `GET /v1/history`), each followed by its
/// checkpoints (`"type": "checkpoint"`). The export is recorded in the
/// history first and includes its own entry. Check it offline with
/// `countersign history verify FILE --public-key KEY`.
#[utoipa::path(
    tag = "history",
    params(HistoryExportQuery),
    responses(
        (status = 200, description = "The chain as JSON Lines", content_type = "application/x-ndjson", body = String),
        (status = 422, description = "A format other than `jsonl`", body = Problem, content_type = "application/problem+json"),
        ListProblems,
    ),
    security(("bearer" = []))
)]
#[get("/history/export")]
pub async fn export_history(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<HistoryExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let t = caller.principal.tenant_for(Action::ReadHistory)?;
    if query.format != "jsonl" {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!(
                "format `{}` is not available; use jsonl",
                query.format.chars().take(32).collect::<String>()
            ),
        ));
    }
    let (through, head_hash) = state
        .store
        .record_export(t, &caller.principal, "jsonl")
        .await?;
    let first = line(&ExportLine::Export {
        format: EXPORT_FORMAT.to_owned(),
        tenant_id: t.0,
        exported_at: Utc::now(),
        through_seq: through,
        head_hash,
    })
    .map_err(|e| ApiError::from(anyhow::anyhow!("{e}")))?;
    let batches = stream::unfold(Some(0_i64), move |after| {
        let state = state.clone();
        async move {
            let after = after?;
            match batch(&state, t, after, through).await {
                Ok((lines, Some(last))) => Some((Ok(lines), Some(last))),
                Ok((_, None)) => None,
                Err(e) => Some((Err(e), None)),
            }
        }
    })
    .flat_map(
        |lines: Result<Vec<web::Bytes>, actix_web::Error>| match lines {
            Ok(lines) => stream::iter(lines.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => stream::iter(vec![Err(e)]),
        },
    );
    let body = stream::once(async move { Ok::<_, actix_web::Error>(first) }).chain(batches);
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(format!("history-{}.jsonl", t.0))],
        })
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}
