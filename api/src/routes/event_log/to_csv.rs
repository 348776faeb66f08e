//! The CSV export: one header row, one row per event, UTF-8.

use countersign_domain::ports::EventExport;

use super::{local, utc};
use crate::csv_table::CsvTable;
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
    let tz = export.tenant.fixed().base_timezone();
    let mut table = CsvTable::default();
    table.row(COLUMNS)?;
    for e in &export.events {
        table.row([
            e.seq.to_string().as_str(),
            &utc(e.occurred_at),
            &local(e.occurred_at, tz),
            &e.kind,
            e.key_marking.as_deref().unwrap_or_default(),
            e.cylinder_marking.as_deref().unwrap_or_default(),
        ])?;
    }
    table.finish()
}
