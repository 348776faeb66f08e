//! The CSV export: one header row, one row per event, UTF-8.

use countersign_domain::Error;
use countersign_domain::ports::EventExport;

use super::{local, utc};
use crate::problem::ApiError;

pub const COLUMNS: [&str; 6] = [
    "seq",
    "occurred_at",
    "occurred_at_local",
    "kind",
    "key_marking",
    "cylinder_marking",
];

pub fn render(export: &EventExport) -> Result<Vec<u8>, ApiError> {
    let failed = |e: csv::Error| ApiError(Error::Internal(e.into()));
    let tz = export.tenant.fixed().base_timezone();
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS).map_err(failed)?;
    for e in &export.events {
        writer
            .write_record([
                e.seq.to_string().as_str(),
                &utc(e.occurred_at),
                &local(e.occurred_at, tz),
                &e.kind,
                e.key_marking.as_deref().unwrap_or_default(),
                e.cylinder_marking.as_deref().unwrap_or_default(),
            ])
            .map_err(failed)?;
    }
    writer
        .into_inner()
        .map_err(|e| ApiError(Error::Internal(anyhow::anyhow!("{e}"))))
}
