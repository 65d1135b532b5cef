//! CSV: one part per data row, rendered as `header: value` lines so each row reads as a record
//! on its own. The delimiter (comma, semicolon, tab, pipe) and the header row are detected.

use ::csv::ReaderBuilder;

use super::{Budget, ExtractError, FileKind};
use crate::knowledge::{Extracted, Location, Part};

pub(super) fn extract(text: &str, budget: &mut Budget) -> Result<Extracted, ExtractError> {
    let limits = budget.limits;
    let mut reader = ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(detect_delimiter(text))
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let Some(first) = records.next() else {
        return Ok(Extracted::default());
    };
    let first = first.map_err(|e| ExtractError::malformed(FileKind::Csv, e))?;
    let first: Vec<String> = first.iter().map(clean).collect();
    let (headers, mut pending) = if is_header(&first) {
        (first, None)
    } else {
        (vec![], Some(first))
    };

    let mut parts = Vec::new();
    let mut row: u64 = 0;
    loop {
        let fields = match pending.take() {
            Some(fields) => fields,
            None => match records.next() {
                None => break,
                Some(record) => {
                    let record = record.map_err(|e| ExtractError::malformed(FileKind::Csv, e))?;
                    if record.as_slice().len() > limits.max_csv_row_bytes {
                        return Err(ExtractError::TooLarge(format!(
                            "row {} of the CSV file is larger than {} KB",
                            row + 1,
                            limits.max_csv_row_bytes >> 10
                        )));
                    }
                    record.iter().map(clean).collect()
                }
            },
        };
        row += 1;
        if row > limits.max_csv_rows {
            return Err(ExtractError::TooLarge(format!(
                "the CSV file has more than {} rows",
                limits.max_csv_rows
            )));
        }
        if row.is_multiple_of(1024) {
            budget.check_time()?;
        }
        let markdown = render(&headers, &fields);
        if markdown.is_empty() {
            continue;
        }
        budget.add_text(markdown.len())?;
        parts.push(Part {
            markdown,
            location: Location {
                row: Some(row),
                ..Default::default()
            },
        });
    }
    Ok(Extracted { title: None, parts })
}

/// The candidate separator found most often in the first lines (quoted text included, which
/// is rarely enough to matter); a comma when none occurs.
fn detect_delimiter(text: &str) -> u8 {
    let head: String = text.lines().take(5).collect::<Vec<_>>().join("\n");
    [b',', b';', b'\t', b'|']
        .into_iter()
        .map(|d| (head.bytes().filter(|&b| b == d).count(), d))
        .filter(|&(count, _)| count > 0)
        .max_by_key(|&(count, d)| (count, d == b','))
        .map_or(b',', |(_, d)| d)
}

/// A first row is a header when every field is a distinct, non-empty label, not a number.
fn is_header(fields: &[String]) -> bool {
    let labels = fields
        .iter()
        .all(|f| !f.is_empty() && f.parse::<f64>().is_err());
    let mut seen: Vec<&String> = fields.iter().collect();
    seen.sort();
    seen.dedup();
    labels && seen.len() == fields.len()
}

/// `header: value` lines for the row's non-empty fields; unnamed columns are numbered.
fn render(headers: &[String], fields: &[String]) -> String {
    let mut lines = Vec::new();
    for (i, value) in fields.iter().enumerate() {
        if value.is_empty() {
            continue;
        }
        match headers.get(i) {
            Some(header) => lines.push(format!("{header}: {value}")),
            None => lines.push(format!("Column {}: {value}", i + 1)),
        }
    }
    lines.join("\n")
}

/// A field on one line: whitespace runs (newlines of quoted fields included) become one space.
fn clean(field: &str) -> String {
    field.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delimiter_is_detected() {
        assert_eq!(detect_delimiter("a;b;c\n1;2;3"), b';');
        assert_eq!(detect_delimiter("a\tb\n1\t2"), b'\t');
        assert_eq!(detect_delimiter("a,b\n1,2"), b',');
        assert_eq!(detect_delimiter("just one column"), b',');
    }

    #[test]
    fn a_header_row_is_detected() {
        let row = |cells: &[&str]| cells.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert!(is_header(&row(&["name", "price"])));
        assert!(!is_header(&row(&["widget", "9.99"])));
        assert!(!is_header(&row(&["name", ""])));
        assert!(!is_header(&row(&["a", "a"])));
    }
}
