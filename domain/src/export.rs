//! Rules for what leaves the service as files for people.

use std::borrow::Cow;

/// A CSV cell as a spreadsheet may safely open it. A cell beginning with
/// `=`, `+`, `-`, `@`, a tab or a carriage return is read as a formula by
/// spreadsheet programs (CSV injection); as OWASP recommends, such a cell is
/// prefixed with a single quote, which makes it text.
pub fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_become_text() {
        for cell in [
            "=HYPERLINK(\"http://x\")",
            "+1",
            "-1+2",
            "@SUM(A1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(spreadsheet_safe(cell), format!("'{cell}"));
        }
        for cell in ["", "K-1", "a=b", "2024-03-31T00:30:00Z", "'quoted", " =x"] {
            assert!(matches!(spreadsheet_safe(cell), Cow::Borrowed(c) if c == cell));
        }
    }
}
