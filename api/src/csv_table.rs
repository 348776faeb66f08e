//! The one way this API writes CSV: every cell made safe for spreadsheets
//! ([`spreadsheet_safe`]), quoting left to the `csv` crate.

use countersign_domain::Error;
use countersign_domain::export::spreadsheet_safe;

use crate::problem::ApiError;

pub struct CsvTable {
    writer: csv::Writer<Vec<u8>>,
}

impl Default for CsvTable {
    fn default() -> Self {
        Self {
            writer: csv::Writer::from_writer(Vec::new()),
        }
    }
}

impl CsvTable {
    /// Appends one row (the header row too).
    pub fn row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) -> Result<(), ApiError> {
        let failed = |e: csv::Error| ApiError(Error::Internal(e.into()));
        for cell in cells {
            let cell = spreadsheet_safe(cell);
            self.writer.write_field(cell.as_bytes()).map_err(failed)?;
        }
        // An empty record ends the row of the fields written.
        self.writer.write_record(None::<&[u8]>).map_err(failed)
    }

    /// The table's bytes, UTF-8.
    pub fn finish(self) -> Result<Vec<u8>, ApiError> {
        self.writer
            .into_inner()
            .map_err(|e| ApiError(Error::Internal(anyhow::anyhow!("{e}"))))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cells_are_neutralised_and_still_quoted() {
        let mut table = CsvTable::default();
        table.row(["a", "=HYPERLINK(\"http://x\")", "-1"]).unwrap();
        let text = String::from_utf8(table.finish().unwrap()).unwrap();
        assert_eq!(text, "a,\"'=HYPERLINK(\"\"http://x\"\")\",'-1\n");
    }
}
