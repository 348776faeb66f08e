//! The PDF export ("print the full event log"): an A4 table with the document
//! header (tenant, target, time range, time zone) and the column header on every
//! page, and page numbers. Built-in fonts only, so no font files are needed;
//! the table is set in Courier, whose fixed advance makes column widths exact.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use countersign_domain::ports::{EventExport, EventRecord};
use countersign_domain::tenant::Locale;
use countersign_domain::workflow::TargetType;
use printpdf::{
    BuiltinFont, Line, LinePoint, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions,
    Point, Pt, TextItem,
};

const PAGE_WIDTH: f32 = 210.0;
const PAGE_HEIGHT: f32 = 297.0;
const MARGIN: f32 = 15.0;
const CELL_SIZE: f32 = 7.5;
/// Courier advances 600/1000 em per character: 7.5 pt × 0.6, in millimetres.
const CHAR_WIDTH: f32 = CELL_SIZE * 0.6 * 25.4 / 72.0;
const ROW_HEIGHT: f32 = 4.2;
const COLUMN_HEADER_Y: f32 = 251.0;
const FIRST_ROW_Y: f32 = 245.5;
const LAST_ROW_Y: f32 = 20.0;
/// Column widths in millimetres; they add up to the width between the margins.
const WIDTHS: [f32; 6] = [16.0, 34.0, 42.0, 30.0, 29.0, 29.0];

struct Labels {
    title: &'static str,
    tenant: &'static str,
    key: &'static str,
    cylinder: &'static str,
    range: &'static str,
    open: &'static str,
    time_zone: &'static str,
    events: &'static str,
    generated: &'static str,
    none: &'static str,
    page: &'static str,
    of: &'static str,
    columns: [&'static str; 6],
}

const DE: Labels = Labels {
    title: "Ereignisprotokoll",
    tenant: "Mandant",
    key: "Schlüssel",
    cylinder: "Zylinder",
    range: "Zeitraum",
    open: "offen",
    time_zone: "Zeitzone",
    events: "Ereignisse",
    generated: "Erstellt",
    none: "Keine Ereignisse in diesem Zeitraum.",
    page: "Seite",
    of: "von",
    columns: [
        "Nr.",
        "Zeit (UTC)",
        "Ortszeit",
        "Ereignis",
        "Schlüssel",
        "Zylinder",
    ],
};

const EN: Labels = Labels {
    title: "Event log",
    tenant: "Tenant",
    key: "Key",
    cylinder: "Cylinder",
    range: "Range",
    open: "open",
    time_zone: "Time zone",
    events: "Events",
    generated: "Generated",
    none: "No events in this range.",
    page: "Page",
    of: "of",
    columns: [
        "Seq",
        "Time (UTC)",
        "Local time",
        "Event",
        "Key",
        "Cylinder",
    ],
};

fn seconds(at: DateTime<Utc>, tz: Option<Tz>) -> String {
    match tz {
        Some(tz) => at
            .with_timezone(&tz)
            .to_rfc3339_opts(SecondsFormat::Secs, false),
        None => at.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

/// Cuts `s` to what fits into `width` millimetres of Courier, marking the cut.
fn fit(s: &str, width: f32) -> String {
    let room = ((width - 1.5) / CHAR_WIDTH).floor().max(1.0) as usize;
    if s.chars().count() <= room {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(room.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Cuts a header value that would run off the page.
fn clip(s: &str) -> String {
    const ROOM: usize = 110;
    if s.chars().count() <= ROOM {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(ROOM - 1).collect();
    cut.push('…');
    cut
}

struct Canvas {
    ops: Vec<Op>,
}

impl Canvas {
    fn text(&mut self, x: f32, y: f32, font: BuiltinFont, size: f32, s: &str) {
        self.ops.extend([
            Op::StartTextSection,
            Op::SetFont {
                font: PdfFontHandle::Builtin(font),
                size: Pt(size),
            },
            Op::SetTextCursor {
                pos: Point::new(Mm(x), Mm(y)),
            },
            Op::ShowText {
                items: vec![TextItem::Text(s.to_owned())],
            },
            Op::EndTextSection,
        ]);
    }

    fn rule(&mut self, y: f32, thickness: f32) {
        let at = |x: f32| LinePoint {
            p: Point::new(Mm(x), Mm(y)),
            bezier: false,
        };
        self.ops.extend([
            Op::SetOutlineThickness { pt: Pt(thickness) },
            Op::DrawLine {
                line: Line {
                    points: vec![at(MARGIN), at(PAGE_WIDTH - MARGIN)],
                    is_closed: false,
                },
            },
        ]);
    }

    fn row(&mut self, y: f32, font: BuiltinFont, cells: &[String; 6]) {
        let mut x = MARGIN;
        for (cell, width) in cells.iter().zip(WIDTHS) {
            self.text(x, y, font, CELL_SIZE, &fit(cell, width));
            x += width;
        }
    }
}

/// The lines of the document header, the same on every page.
fn header_lines(export: &EventExport, labels: &Labels, now: DateTime<Utc>) -> [String; 4] {
    let tz = export.tenant.fixed().base_timezone();
    let target = &export.target;
    let kind = match target.target_type {
        TargetType::Key => labels.key,
        TargetType::Cylinder => labels.cylinder,
    };
    let bound = |at: Option<DateTime<Utc>>| {
        at.map_or_else(|| labels.open.to_owned(), |at| seconds(at, Some(tz)))
    };
    [
        format!("{}: {}", labels.tenant, export.tenant.settings.name),
        format!("{kind}: {} – {}", target.marking, target.name),
        format!(
            "{}: {} – {}",
            labels.range,
            bound(export.query.from),
            bound(export.query.to)
        ),
        format!(
            "{}: {}  ·  {}: {}  ·  {}: {}",
            labels.time_zone,
            tz.name(),
            labels.events,
            export.events.len(),
            labels.generated,
            seconds(now, Some(tz))
        ),
    ]
}

fn cells(e: &EventRecord, tz: Tz) -> [String; 6] {
    [
        e.seq.to_string(),
        seconds(e.occurred_at, None),
        seconds(e.occurred_at, Some(tz)),
        e.kind.clone(),
        e.key_marking.clone().unwrap_or_default(),
        e.cylinder_marking.clone().unwrap_or_default(),
    ]
}

fn rows_per_page() -> usize {
    ((FIRST_ROW_Y - LAST_ROW_Y) / ROW_HEIGHT).floor() as usize + 1
}

pub fn render(export: &EventExport, now: DateTime<Utc>) -> Vec<u8> {
    let labels = match export.tenant.settings.locale {
        Locale::De => &DE,
        Locale::En => &EN,
    };
    let tz = export.tenant.fixed().base_timezone();
    let header = header_lines(export, labels, now);
    let column_header = labels.columns.map(str::to_owned);
    let chunks: Vec<&[EventRecord]> = if export.events.is_empty() {
        vec![&[]]
    } else {
        export.events.chunks(rows_per_page()).collect()
    };
    let total = chunks.len();
    let pages = chunks
        .into_iter()
        .enumerate()
        .map(|(i, events)| {
            let mut page = Canvas { ops: Vec::new() };
            page.text(
                MARGIN,
                PAGE_HEIGHT - MARGIN - 3.0,
                BuiltinFont::HelveticaBold,
                14.0,
                labels.title,
            );
            for (n, line) in header.iter().enumerate() {
                let y = PAGE_HEIGHT - MARGIN - 10.0 - 5.0 * n as f32;
                page.text(MARGIN, y, BuiltinFont::Helvetica, 9.0, &clip(line));
            }
            page.row(COLUMN_HEADER_Y, BuiltinFont::CourierBold, &column_header);
            page.rule(COLUMN_HEADER_Y - 1.5, 0.6);
            if events.is_empty() {
                page.text(
                    MARGIN,
                    FIRST_ROW_Y,
                    BuiltinFont::Helvetica,
                    9.0,
                    labels.none,
                );
            }
            for (n, e) in events.iter().enumerate() {
                let y = FIRST_ROW_Y - ROW_HEIGHT * n as f32;
                page.row(y, BuiltinFont::Courier, &cells(e, tz));
            }
            page.rule(MARGIN, 0.3);
            page.text(
                PAGE_WIDTH - MARGIN - 30.0,
                MARGIN - 5.0,
                BuiltinFont::Helvetica,
                8.0,
                &format!("{} {} {} {total}", labels.page, i + 1, labels.of),
            );
            page.text(
                MARGIN,
                MARGIN - 5.0,
                BuiltinFont::Helvetica,
                8.0,
                &clip(&format!(
                    "{} · {} {}",
                    export.tenant.settings.name, export.target.marking, labels.title
                )),
            );
            PdfPage::new(Mm(PAGE_WIDTH), Mm(PAGE_HEIGHT), page.ops)
        })
        .collect();
    let title = format!("{} {}", labels.title, export.target.marking);
    let mut warnings = Vec::new();
    PdfDocument::new(&title)
        .with_pages(pages)
        .save(&PdfSaveOptions::default(), &mut warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fill_the_printable_width() {
        let sum: f32 = WIDTHS.iter().sum();
        assert!((sum - (PAGE_WIDTH - 2.0 * MARGIN)).abs() < 0.01);
        // The widest cells, full timestamps, are never cut.
        assert_eq!(
            fit("2024-03-31T01:30:00Z", WIDTHS[1]),
            "2024-03-31T01:30:00Z"
        );
        assert_eq!(
            fit("2024-10-27T02:30:00+01:00", WIDTHS[2]),
            "2024-10-27T02:30:00+01:00"
        );
        assert!(fit(&"x".repeat(100), WIDTHS[3]).ends_with('…'));
        assert!(rows_per_page() > 40);
    }
}
