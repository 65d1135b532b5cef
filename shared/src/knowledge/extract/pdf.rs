//! PDF: one part per page with text, read with `pdf-extract` (fonts, encodings and text
//! positions) over `lopdf` (the file structure).
//!
//! All pages are read in one pass. `pdf-extract` panics on some malformed pages: the pass runs
//! under `catch_unwind`, and after a failing page the rest are read one at a time, each under
//! its own `catch_unwind`, so one bad page does not lose a manual. Bombs and endless
//! structures are the sandbox's business (memory and CPU limits).

use std::cell::RefCell;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use lopdf::{Document, Object};
use pdf_extract::{MediaBox, OutputDev, OutputError, PlainTextOutput, Transform};

use super::{Budget, ExtractError, FileKind};
use crate::knowledge::{Extracted, Location, Part};

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
    let mut parts = Vec::new();
    let mut unreadable = 0;
    // All pages in one pass (the page tree is walked once); should a page fail, the pages
    // after it are read one at a time (each walks the page tree again, but survives alone).
    let failed = read_in_one_pass(&doc, budget, &mut parts)?;
    let rest = match failed {
        None => Vec::new(),
        Some((page, why)) => {
            tracing::debug!(page, %why, "skipping an unreadable PDF page");
            unreadable += 1;
            pages.keys().copied().filter(|&n| n > page).collect()
        }
    };
    for number in rest {
        budget.check_time()?;
        let remaining = budget
            .limits
            .max_text_bytes
            .saturating_sub(budget.text_bytes);
        match page_text(&doc, number, remaining) {
            PageText::Text(text) => keep_page(&mut parts, budget, number, &text)?,
            PageText::Overflow => budget.add_text(remaining + 1)?,
            PageText::Unreadable(why) => {
                tracing::debug!(page = number, %why, "skipping an unreadable PDF page");
                unreadable += 1;
            }
        }
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

/// Reads every page with one `output_doc`, a part per page. Returns the page that failed (and
/// why), if one did: the pages before it are in `parts`.
fn read_in_one_pass(
    doc: &Document,
    budget: &mut Budget,
    parts: &mut Vec<Part>,
) -> Result<Option<(u32, String)>, ExtractError> {
    let page = Rc::new(RefCell::new(CappedWriter {
        text: Vec::new(),
        cap: 0,
        overflow: false,
    }));
    let mut sink = SharedWriter(page.clone());
    let mut splitter = PageSplitter {
        inner: PlainTextOutput::new(&mut sink as &mut dyn io::Write),
        page,
        budget,
        parts,
        current: 0,
        ended: None,
        stop: None,
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        pdf_extract::output_doc(doc, &mut splitter)
    }));
    if let Some(e) = splitter.stop.take() {
        return Err(e);
    }
    if splitter.page.borrow().overflow {
        let past = splitter.budget.limits.max_text_bytes + 1;
        splitter.budget.add_text(past)?;
    }
    let why = match result {
        Ok(Ok(())) => return Ok(None),
        Ok(Err(e)) => describe(&e),
        Err(panic) => panic_message(&*panic),
    };
    // The page after the last one that ended is the one that failed.
    let failed = doc
        .get_pages()
        .keys()
        .copied()
        .find(|&n| splitter.ended.is_none_or(|ended| n > ended));
    Ok(failed.map(|page| (page, why)))
}

/// Cuts `PlainTextOutput`'s text into pages, counting each against the budget.
struct PageSplitter<'a, 'b> {
    inner: PlainTextOutput<&'a mut dyn io::Write>,
    /// The buffer `inner` writes into.
    page: Rc<RefCell<CappedWriter>>,
    budget: &'a mut Budget<'b>,
    parts: &'a mut Vec<Part>,
    /// The page being read.
    current: u32,
    /// The last page that ended.
    ended: Option<u32>,
    /// A limit that stopped the reading.
    stop: Option<ExtractError>,
}

impl PageSplitter<'_, '_> {
    fn stop(&mut self, e: ExtractError) -> OutputError {
        self.stop = Some(e);
        OutputError::FormatError(std::fmt::Error)
    }
}

impl OutputDev for PageSplitter<'_, '_> {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        if let Err(e) = self.budget.check_time() {
            return Err(self.stop(e));
        }
        {
            let mut page = self.page.borrow_mut();
            page.text.clear();
            page.cap = self
                .budget
                .limits
                .max_text_bytes
                .saturating_sub(self.budget.text_bytes);
        }
        self.current = page_num;
        self.inner.begin_page(page_num, media_box, art_box)
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        self.inner.end_page()?;
        let text = std::mem::take(&mut self.page.borrow_mut().text);
        let text = String::from_utf8_lossy(&text);
        let number = self.current;
        if let Err(e) = keep_page(self.parts, self.budget, number, &text) {
            return Err(self.stop(e));
        }
        self.ended = Some(number);
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        self.inner
            .output_character(trm, width, spacing, font_size, char)
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.inner.begin_word()
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        self.inner.end_word()
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        self.inner.end_line()
    }
}

/// A writer into the page buffer the splitter also holds.
struct SharedWriter(Rc<RefCell<CappedWriter>>);

impl io::Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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

enum PageText {
    Text(String),
    /// The page alone has more text than the document may have.
    Overflow,
    Unreadable(String),
}

fn page_text(doc: &Document, number: u32, cap: usize) -> PageText {
    let mut writer = CappedWriter {
        text: Vec::new(),
        cap,
        overflow: false,
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let sink: &mut dyn io::Write = &mut writer;
        let mut output = PlainTextOutput::new(sink);
        pdf_extract::output_doc_page(doc, &mut output, number)
    }));
    match result {
        _ if writer.overflow => PageText::Overflow,
        Ok(Ok(())) => PageText::Text(String::from_utf8_lossy(&writer.text).into_owned()),
        Ok(Err(e)) => PageText::Unreadable(describe(&e)),
        Err(panic) => PageText::Unreadable(panic_message(&*panic)),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the reader panicked".to_owned())
}

fn describe(e: &OutputError) -> String {
    match e {
        OutputError::FormatError(e) => e.to_string(),
        OutputError::IoError(e) => e.to_string(),
        OutputError::PdfError(e) => e.to_string(),
    }
}

/// Collects a page's text and refuses to grow past `cap` bytes.
struct CappedWriter {
    text: Vec<u8>,
    cap: usize,
    overflow: bool,
}

impl io::Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.text.len() + buf.len() > self.cap {
            self.overflow = true;
            return Err(io::Error::other("text limit reached"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
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
