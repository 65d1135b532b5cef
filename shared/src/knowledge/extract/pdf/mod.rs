//! PDF: one part per page with text. lopdf reads the file structure, the fonts' maps and the
//! content streams; [`layout`] places the shown strings into lines and paragraphs.
//!
//! Each page is read alone under `catch_unwind` (lopdf's parsers are third-party code), so a
//! bad page costs only itself. Bombs and endless structures are the sandbox's business
//! (memory and CPU limits).

mod fonts;
mod layout;

use std::panic::{AssertUnwindSafe, catch_unwind};

use lopdf::{Document, Object};

use super::{Budget, ExtractError, FileKind};
use crate::knowledge::{Extracted, Location, Part};
use layout::PageError;

pub(super) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted, ExtractError> {
    let doc = load(bytes)?;
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::malformed(FileKind::Pdf, "it has no pages"));
    }
    let max_pages = budget.limits.max_pages;
    if pages.len() > max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "the PDF has {} pages; at most {max_pages} can be read",
            pages.len()
        )));
    }
    let mut fonts = fonts::Fonts::new(&doc);
    let mut parts = Vec::new();
    let mut unreadable = 0;
    for (&number, &page) in &pages {
        budget.check_time()?;
        let remaining = budget
            .limits
            .max_text_bytes
            .saturating_sub(budget.text_bytes);
        let read = catch_unwind(AssertUnwindSafe(|| {
            layout::page_text(&doc, &mut fonts, page, remaining)
        }));
        let why = match read {
            Ok(Ok(text)) => {
                keep_page(&mut parts, budget, number, &text)?;
                continue;
            }
            Ok(Err(PageError::Overflow)) => {
                // More than the document may have left: the budget refuses it.
                budget.add_text(remaining + 1)?;
                continue;
            }
            Ok(Err(PageError::Unreadable(why))) => why,
            Err(panic) => panic_message(&*panic),
        };
        tracing::debug!(page = number, %why, "skipping an unreadable PDF page");
        unreadable += 1;
    }
    if unreadable == pages.len() {
        return Err(ExtractError::malformed(
            FileKind::Pdf,
            "none of its pages could be read",
        ));
    }
    if unreadable > 0 {
        tracing::warn!(
            unreadable,
            pages = pages.len(),
            "some PDF pages could not be read"
        );
    }
    Ok(Extracted {
        title: title(&doc),
        parts,
    })
}

/// Adds a page's text as a part (empty pages add nothing).
fn keep_page(
    parts: &mut Vec<Part>,
    budget: &mut Budget,
    number: u32,
    text: &str,
) -> Result<(), ExtractError> {
    let markdown = tidy(text);
    budget.add_text(markdown.len())?;
    if !markdown.is_empty() {
        let location = Location {
            page: Some(number),
            ..Default::default()
        };
        parts.push(Part { markdown, location });
    }
    Ok(())
}

/// Parses the file; an encrypted file opens only if its user password is empty (owner-only
/// protection, which restricts printing or copying but not reading).
fn load(bytes: &[u8]) -> Result<Document, ExtractError> {
    let encrypted = || ExtractError::Encrypted {
        what: "PDF".to_owned(),
    };
    let doc = Document::load_mem(bytes).map_err(|e| match e {
        lopdf::Error::Decryption(_)
        | lopdf::Error::InvalidPassword
        | lopdf::Error::UnsupportedSecurityHandler(_) => encrypted(),
        e => ExtractError::malformed(FileKind::Pdf, format!("it is damaged or incomplete ({e})")),
    })?;
    if doc.is_encrypted() {
        return Err(encrypted());
    }
    Ok(doc)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the reader panicked".to_owned())
}

/// Page text to Markdown: control characters out, trailing spaces off, at most one blank line
/// in a row.
fn tidy(text: &str) -> String {
    let text = super::text::normalize(text);
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// The `/Title` of the document information dictionary.
fn title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let info = match info {
        Object::Reference(id) => doc.get_object(*id).ok()?,
        other => other,
    };
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let title = match title {
        Object::Reference(id) => doc.get_object(*id).ok()?,
        other => other,
    };
    let Object::String(bytes, _) = title else {
        return None;
    };
    let title = decode_text_string(bytes);
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

/// A PDF text string: UTF-16BE or UTF-8 with a byte order mark, else PDFDocEncoding (which
/// agrees with Latin-1 on every printable character that matters for a title).
fn decode_text_string(bytes: &[u8]) -> String {
    if let Some(utf16) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        let units: Vec<u16> = utf16
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        return String::from_utf16_lossy(&units);
    }
    if let Some(utf8) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(utf8).into_owned();
    }
    bytes.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_text_is_tidied() {
        assert_eq!(tidy("\n  a  \n\n\n\nb\nc \n\n"), "  a\n\nb\nc");
    }

    #[test]
    fn pdf_text_strings_are_decoded() {
        assert_eq!(decode_text_string(b"\xFE\xFF\x00H\x00\xE9"), "Hé");
        assert_eq!(decode_text_string(b"Caf\xe9"), "Café");
    }
}
