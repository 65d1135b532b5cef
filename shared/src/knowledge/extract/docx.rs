//! DOCX: a ZIP archive of WordprocessingML. `word/document.xml` is streamed through `quick-xml`
//! into Markdown: heading styles → `#`, numbered and bulleted paragraphs → lists, tables →
//! Markdown tables. `word/styles.xml` names the styles, `word/numbering.xml` tells ordered lists
//! from bullets, `docProps/core.xml` holds the title.
//!
//! Zip bombs: the entry count is read from the end record before the central directory is
//! parsed, each entry's declared size is checked before it is opened, and every byte read is
//! counted against [`Limits::max_expanded_bytes`](super::Limits), whatever the header claims.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, BufReader, Cursor, Read};

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};
use zip::ZipArchive;
use zip::result::ZipError;

use super::{Budget, ExtractError, FileKind, markdown_table, sniff::declared_entries};
use crate::knowledge::Extracted;

/// Tables (and text-box paragraphs) nested deeper than this are read as part of their
/// container: a hostile document cannot grow the stacks without bound.
const MAX_NESTING: usize = 16;

type Archive<'a> = ZipArchive<Cursor<&'a [u8]>>;

pub(super) fn extract(bytes: &[u8], budget: &mut Budget) -> Result<Extracted, ExtractError> {
    let max_entries = budget.limits.max_archive_entries;
    let too_many = || {
        ExtractError::TooLarge(format!(
            "the DOCX holds more than {max_entries} files inside"
        ))
    };
    if declared_entries(bytes).is_none_or(|n| n > max_entries) {
        return Err(too_many());
    }
    let mut archive = ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| ExtractError::malformed(FileKind::Docx, format!("it is damaged ({e})")))?;
    if archive.len() > max_entries {
        return Err(too_many());
    }
    let max = budget.limits.max_expanded_bytes;
    let expanded = Expanded {
        max,
        left: Cell::new(max),
        exceeded: Cell::new(false),
    };
    let styles = with_entry(&mut archive, "word/styles.xml", &expanded, |s| {
        read_styles(s)
    })?
    .unwrap_or_default();
    let numbering = with_entry(&mut archive, "word/numbering.xml", &expanded, |s| {
        read_numbering(s)
    })?
    .unwrap_or_default();
    // A broken title is no reason to refuse the document.
    let title = with_entry(&mut archive, "docProps/core.xml", &expanded, |s| {
        read_title(s)
    })
    .ok()
    .flatten()
    .flatten();
    let mut writer = DocumentWriter::new(&styles, &numbering, budget);
    let found = with_entry(&mut archive, "word/document.xml", &expanded, |source| {
        writer.read(source)
    })?;
    if found.is_none() {
        return Err(ExtractError::malformed(
            FileKind::Docx,
            "it has no word/document.xml",
        ));
    }
    let (markdown, first_heading) = writer.finish();
    let title = title.or(first_heading);
    Ok(Extracted {
        title,
        parts: vec![super::whole(markdown)],
    })
}

/// What is left of the expansion allowance, shared by every entry read.
struct Expanded {
    max: u64,
    left: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Expanded {
    fn too_large(max: u64) -> ExtractError {
        ExtractError::TooLarge(format!("the DOCX expands to more than {} MB", max >> 20))
    }

    /// Turns a reader failure into the error to show: the expansion limit when the failure came
    /// from it, else a damaged entry.
    fn explain(&self, e: ReadError, entry: &str) -> ExtractError {
        match e {
            ReadError::Limit(e) => e,
            _ if self.exceeded.get() => Self::too_large(self.max),
            ReadError::Xml(e) => {
                ExtractError::malformed(FileKind::Docx, format!("{entry} is not valid XML ({e})"))
            }
            // The zip reader checks an entry against its declared size: a zip bomb that lies.
            ReadError::Archive(e) if e.contains("declared") => ExtractError::malformed(
                FileKind::Docx,
                format!("{entry} is larger than the archive declares"),
            ),
            ReadError::Archive(e) => {
                ExtractError::malformed(FileKind::Docx, format!("{entry} is damaged ({e})"))
            }
        }
    }
}

enum ReadError {
    Xml(String),
    /// The archive failed under the XML reader (a bad deflate stream, a size that lies).
    Archive(String),
    Limit(ExtractError),
}

impl From<quick_xml::Error> for ReadError {
    fn from(e: quick_xml::Error) -> Self {
        match e {
            quick_xml::Error::Io(e) => ReadError::Archive(e.to_string()),
            e => ReadError::Xml(e.to_string()),
        }
    }
}

impl From<ExtractError> for ReadError {
    fn from(e: ExtractError) -> Self {
        ReadError::Limit(e)
    }
}

/// Streams entry `name` through `read`, or `None` when the archive has no such entry. The
/// entry is refused up front when its declared size alone exceeds the allowance, and every
/// byte read is counted, since the declared size can lie.
fn with_entry<T>(
    archive: &mut Archive<'_>,
    name: &str,
    expanded: &Expanded,
    read: impl FnOnce(&mut dyn io::BufRead) -> Result<T, ReadError>,
) -> Result<Option<T>, ExtractError> {
    let entry = match archive.by_name(name) {
        Ok(entry) => entry,
        Err(ZipError::FileNotFound) => return Ok(None),
        Err(ZipError::UnsupportedArchive(why)) if why.contains("assword") => {
            return Err(ExtractError::Encrypted {
                what: "DOCX".to_owned(),
            });
        }
        Err(e) => {
            return Err(ExtractError::malformed(
                FileKind::Docx,
                format!("{name}: {e}"),
            ));
        }
    };
    if entry.encrypted() {
        return Err(ExtractError::Encrypted {
            what: "DOCX".to_owned(),
        });
    }
    if entry.size() > expanded.left.get() {
        return Err(Expanded::too_large(expanded.max));
    }
    let mut source = BufReader::new(Counted {
        inner: entry,
        expanded,
    });
    read(&mut source)
        .map(Some)
        .map_err(|e| expanded.explain(e, name))
}

/// A reader that fails once the shared expansion allowance is used up.
struct Counted<'a, R> {
    inner: R,
    expanded: &'a Expanded,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.expanded.left.get().checked_sub(n as u64) {
            Some(left) => self.expanded.left.set(left),
            None => {
                self.expanded.exceeded.set(true);
                return Err(io::Error::other("the DOCX expands too much"));
            }
        }
        Ok(n)
    }
}

/// The value of the attribute with local name `name` (`w:val` → `val`).
fn attr(e: &BytesStart, name: &str) -> Option<String> {
    e.attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| a.normalized_value(quick_xml::XmlVersion::Implicit1_0).ok())
        .map(|v| v.into_owned())
}

fn local(e: &BytesStart) -> String {
    e.local_name().as_ref().to_owned()
}

fn xml_reader<R: io::BufRead>(source: R) -> Reader<R> {
    let mut reader = Reader::from_reader(source);
    let config = reader.config_mut();
    config.check_end_names = false;
    config.expand_empty_elements = false;
    reader
}

/// The text of an entity or character reference.
fn resolve(r: &BytesRef) -> String {
    match r.resolve_char_ref() {
        Ok(Some(c)) => c.to_string(),
        _ => {
            let name = r.xml10_content();
            quick_xml::escape::resolve_xml_entity(&name)
                .unwrap_or("")
                .to_owned()
        }
    }
}

/// How a paragraph style renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StyleRole {
    Heading(u8),
    Bullet,
    Numbered,
}

/// Style id → role, from `word/styles.xml` (style names are stable, ids are localised).
fn read_styles(source: impl io::BufRead) -> Result<HashMap<String, StyleRole>, ReadError> {
    let mut reader = xml_reader(source);
    let mut buf = Vec::new();
    let mut roles = HashMap::new();
    let mut current: Option<(String, Option<StyleRole>)> = None;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) | Event::Empty(e) => match local(&e).as_str() {
                "style" => current = attr(&e, "styleId").map(|id| (id, None)),
                "name" => {
                    if let (Some((_, role)), Some(name)) = (&mut current, attr(&e, "val")) {
                        *role = role_of_style_name(&name).or(*role);
                    }
                }
                "outlineLvl" => {
                    if let (Some((_, role @ None)), Some(level)) = (&mut current, attr(&e, "val")) {
                        *role = heading_from_outline(&level);
                    }
                }
                _ => {}
            },
            Event::End(e) if e.local_name().as_ref() == "style" => {
                if let Some((id, Some(role))) = current.take() {
                    roles.insert(id, role);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(roles)
}

fn role_of_style_name(name: &str) -> Option<StyleRole> {
    let name = name.to_ascii_lowercase();
    if name == "title" {
        return Some(StyleRole::Heading(1));
    }
    if let Some(level) = name.strip_prefix("heading ") {
        return level
            .trim()
            .parse::<u8>()
            .ok()
            .map(|l| StyleRole::Heading(l.clamp(1, 6)));
    }
    if name.starts_with("list bullet") {
        return Some(StyleRole::Bullet);
    }
    if name.starts_with("list number") {
        return Some(StyleRole::Numbered);
    }
    None
}

/// `w:outlineLvl` 0..=8 are heading levels 1..=9 (9 means body text).
fn heading_from_outline(level: &str) -> Option<StyleRole> {
    let level: u8 = level.parse().ok()?;
    (level < 9).then(|| StyleRole::Heading((level + 1).min(6)))
}

/// Which list levels are ordered, from `word/numbering.xml`.
#[derive(Debug, Default)]
struct Numbering {
    /// `w:numId` → `w:abstractNumId`.
    nums: HashMap<String, String>,
    /// (`w:abstractNumId`, level) → ordered.
    ordered: HashMap<(String, u8), bool>,
}

impl Numbering {
    fn is_ordered(&self, num_id: &str, level: u8) -> bool {
        self.nums
            .get(num_id)
            .and_then(|abs| self.ordered.get(&(abs.clone(), level)))
            .copied()
            .unwrap_or(false)
    }
}

fn read_numbering(source: impl io::BufRead) -> Result<Numbering, ReadError> {
    let mut reader = xml_reader(source);
    let mut buf = Vec::new();
    let mut numbering = Numbering::default();
    let mut abstract_id: Option<String> = None;
    let mut level: Option<u8> = None;
    let mut num_id: Option<String> = None;
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) | Event::Empty(e) => match local(&e).as_str() {
                "abstractNum" => abstract_id = attr(&e, "abstractNumId"),
                "lvl" => level = attr(&e, "ilvl").and_then(|l| l.parse().ok()),
                "numFmt" => {
                    if let (Some(abs), Some(l), Some(fmt)) = (&abstract_id, level, attr(&e, "val"))
                    {
                        let ordered = !matches!(fmt.as_str(), "bullet" | "none");
                        numbering.ordered.insert((abs.clone(), l), ordered);
                    }
                }
                "num" => num_id = attr(&e, "numId"),
                "abstractNumId" => {
                    if let (Some(num), Some(abs)) = (&num_id, attr(&e, "val")) {
                        numbering.nums.insert(num.clone(), abs);
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(numbering)
}

/// `dc:title` of `docProps/core.xml`.
fn read_title(source: impl io::BufRead) -> Result<Option<String>, ReadError> {
    let mut reader = xml_reader(source);
    let mut buf = Vec::new();
    let mut in_title = false;
    let mut title = String::new();
    loop {
        match reader.read_event_into(&mut buf)? {
            Event::Start(e) if e.local_name().as_ref() == "title" => in_title = true,
            Event::End(e) if e.local_name().as_ref() == "title" => break,
            Event::Text(t) if in_title && title.len() < 1000 => title.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_title => title.push_str(&resolve(&r)),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok((!title.is_empty()).then_some(title))
}

/// A paragraph being read.
#[derive(Default)]
struct Paragraph {
    style: Option<String>,
    num_id: Option<String>,
    level: u8,
    outline: Option<StyleRole>,
    text: String,
}

/// A table being read: finished rows, the row and the cell being filled.
#[derive(Default)]
struct Table {
    rows: Vec<Vec<String>>,
    row: Vec<String>,
    cell: String,
    /// `w:gridSpan` of the current cell: that many columns.
    span: usize,
}

/// Streams `word/document.xml` into Markdown blocks.
struct DocumentWriter<'a, 'b> {
    styles: &'a HashMap<String, StyleRole>,
    numbering: &'a Numbering,
    budget: &'a mut Budget<'b>,
    out: String,
    /// The list (`w:numId` or list style) the last block belonged to: items of one list are
    /// single-spaced, a new list starts after a blank line.
    last_list: Option<String>,
    first_heading: Option<String>,
    paragraphs: Vec<Paragraph>,
    tables: Vec<Table>,
    /// Depth inside an element whose content is skipped (`mc:Fallback` repeats `mc:Choice`).
    skipping: usize,
    /// `w:p` / `w:tbl` elements opened past [`MAX_NESTING`], whose ends must not pop.
    flattened_paragraphs: usize,
    flattened_tables: usize,
    in_text: bool,
    in_paragraph_properties: bool,
}

impl<'a, 'b> DocumentWriter<'a, 'b> {
    fn new(
        styles: &'a HashMap<String, StyleRole>,
        numbering: &'a Numbering,
        budget: &'a mut Budget<'b>,
    ) -> Self {
        DocumentWriter {
            styles,
            numbering,
            budget,
            out: String::new(),
            last_list: None,
            first_heading: None,
            paragraphs: Vec::new(),
            tables: Vec::new(),
            skipping: 0,
            flattened_paragraphs: 0,
            flattened_tables: 0,
            in_text: false,
            in_paragraph_properties: false,
        }
    }

    fn read(&mut self, source: impl io::BufRead) -> Result<(), ReadError> {
        let mut reader = xml_reader(source);
        let mut buf = Vec::new();
        let mut events: u32 = 0;
        loop {
            events = events.wrapping_add(1);
            if events.is_multiple_of(4096) {
                self.budget.check_time()?;
            }
            let event = reader.read_event_into(&mut buf)?;
            if self.skipping > 0 {
                match event {
                    Event::Start(_) => self.skipping += 1,
                    Event::End(_) => self.skipping -= 1,
                    Event::Eof => break,
                    _ => {}
                }
                buf.clear();
                continue;
            }
            match event {
                Event::Start(e) => self.start(&e, false)?,
                Event::Empty(e) => self.start(&e, true)?,
                Event::End(e) => self.end(e.local_name().as_ref())?,
                Event::Text(t) if self.in_text => {
                    let text = t.xml10_content();
                    self.push_text(&text);
                }
                Event::GeneralRef(r) if self.in_text => self.push_text(&resolve(&r)),
                Event::Eof => break,
                _ => {}
            }
            buf.clear();
        }
        Ok(())
    }

    fn start(&mut self, e: &BytesStart, empty: bool) -> Result<(), ReadError> {
        let name = local(e);
        match name.as_str() {
            "Fallback" if !empty => self.skipping = 1,
            "p" if !empty => {
                if self.paragraphs.len() < MAX_NESTING {
                    self.paragraphs.push(Paragraph::default());
                } else {
                    self.flattened_paragraphs += 1;
                }
            }
            "pPr" if !empty => self.in_paragraph_properties = true,
            "pStyle" => {
                if let Some(p) = self.paragraphs.last_mut() {
                    p.style = attr(e, "val");
                }
            }
            "ilvl" => {
                if let Some(p) = self.paragraphs.last_mut() {
                    p.level = attr(e, "val")
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0)
                        .min(8);
                }
            }
            "numId" => {
                if let Some(p) = self.paragraphs.last_mut() {
                    // numId 0 switches numbering off.
                    p.num_id = attr(e, "val").filter(|id| id != "0");
                }
            }
            "outlineLvl" => {
                if let Some(p) = self.paragraphs.last_mut() {
                    p.outline = attr(e, "val").and_then(|l| heading_from_outline(&l));
                }
            }
            "t" if !empty => self.in_text = true,
            "tab" if !self.in_paragraph_properties => self.push_text("\t"),
            "br" | "cr" => self.push_text("\n"),
            "noBreakHyphen" => self.push_text("-"),
            "tbl" if !empty => {
                if self.tables.len() < MAX_NESTING {
                    self.tables.push(Table::default());
                } else {
                    self.flattened_tables += 1;
                }
            }
            "tr" if !empty => {
                if let Some(t) = self.tables.last_mut() {
                    t.row.clear();
                }
            }
            "tc" if !empty => {
                if let Some(t) = self.tables.last_mut() {
                    t.cell.clear();
                    t.span = 1;
                }
            }
            "gridSpan" => {
                if let Some(t) = self.tables.last_mut() {
                    t.span = attr(e, "val")
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(1)
                        .clamp(1, 64);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end(&mut self, name: &str) -> Result<(), ReadError> {
        match name {
            "t" => self.in_text = false,
            "pPr" => self.in_paragraph_properties = false,
            "p" if self.flattened_paragraphs > 0 => self.flattened_paragraphs -= 1,
            "tbl" if self.flattened_tables > 0 => self.flattened_tables -= 1,
            "p" => {
                if let Some(p) = self.paragraphs.pop() {
                    self.finish_paragraph(p)?;
                }
            }
            "tc" => {
                if let Some(t) = self.tables.last_mut() {
                    let cell = std::mem::take(&mut t.cell);
                    t.row.push(cell);
                    for _ in 1..t.span {
                        t.row.push(String::new());
                    }
                }
            }
            "tr" => {
                if let Some(t) = self.tables.last_mut() {
                    let row = std::mem::take(&mut t.row);
                    t.rows.push(row);
                }
            }
            "tbl" => {
                if let Some(t) = self.tables.pop() {
                    self.finish_table(t)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn push_text(&mut self, text: &str) {
        if let Some(p) = self.paragraphs.last_mut() {
            p.text.push_str(text);
        }
    }

    fn finish_paragraph(&mut self, p: Paragraph) -> Result<(), ReadError> {
        let text = p.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Ok(());
        }
        // Inside a table (or a text box inside a paragraph), the text joins its container.
        if let Some(outer) = self.paragraphs.last_mut() {
            outer.text.push(' ');
            outer.text.push_str(&text);
            return Ok(());
        }
        if let Some(t) = self.tables.last_mut() {
            if !t.cell.is_empty() {
                t.cell.push(' ');
            }
            t.cell.push_str(&text);
            return Ok(());
        }
        let role = p
            .style
            .as_ref()
            .and_then(|s| self.styles.get(s).copied())
            .or(p.outline);
        let indent = "  ".repeat(usize::from(p.level));
        let list = p.num_id.clone().or_else(|| p.style.clone());
        let (block, list) = match (role, &p.num_id) {
            (Some(StyleRole::Heading(level)), _) => {
                if self.first_heading.is_none() && level == 1 {
                    self.first_heading = Some(text.clone());
                }
                (format!("{} {text}", "#".repeat(usize::from(level))), None)
            }
            (_, Some(num)) if self.numbering.is_ordered(num, p.level) => {
                (format!("{indent}1. {text}"), list)
            }
            (_, Some(_)) | (Some(StyleRole::Bullet), None) => (format!("{indent}- {text}"), list),
            (Some(StyleRole::Numbered), None) => (format!("{indent}1. {text}"), list),
            (None, None) => (text, None),
        };
        self.push_block(&block, list)
    }

    fn finish_table(&mut self, t: Table) -> Result<(), ReadError> {
        let rows: Vec<Vec<String>> = t
            .rows
            .into_iter()
            .filter(|r| r.iter().any(|c| !c.trim().is_empty()))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        // A table inside a table cell (or nested too deep) becomes text of the outer cell.
        if let Some(outer) = self.tables.last_mut() {
            let text: Vec<String> = rows.iter().map(|r| r.join(" | ")).collect();
            if !outer.cell.is_empty() {
                outer.cell.push(' ');
            }
            outer.cell.push_str(&text.join("; "));
            return Ok(());
        }
        self.push_block(&markdown_table(&rows), None)
    }

    fn push_block(&mut self, block: &str, list: Option<String>) -> Result<(), ReadError> {
        let same_list = list.is_some() && list == self.last_list;
        let separator = match (self.out.is_empty(), same_list) {
            (true, _) => "",
            (false, true) => "\n",
            (false, false) => "\n\n",
        };
        self.budget.add_text(separator.len() + block.len())?;
        self.out.push_str(separator);
        self.out.push_str(block);
        self.last_list = list;
        Ok(())
    }

    fn finish(self) -> (String, Option<String>) {
        (self.out, self.first_heading)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_expansion_allowance_fail_whatever_the_headers_say() {
        let expanded = Expanded {
            max: 10,
            left: Cell::new(10),
            exceeded: Cell::new(false),
        };
        let mut reader = Counted {
            inner: &[b'a'; 100][..],
            expanded: &expanded,
        };

        let result = reader.read_to_end(&mut Vec::new());

        assert!(result.is_err());
        assert!(expanded.exceeded.get());
        let err = expanded.explain(ReadError::Archive("cut".to_owned()), "word/document.xml");
        assert_eq!(err.to_string(), "the DOCX expands to more than 0 MB");
    }

    #[test]
    fn localised_style_names_still_make_headings_and_lists() {
        assert_eq!(role_of_style_name("Heading 2"), Some(StyleRole::Heading(2)));
        assert_eq!(role_of_style_name("List Bullet 2"), Some(StyleRole::Bullet));
        assert_eq!(heading_from_outline("0"), Some(StyleRole::Heading(1)));
        assert_eq!(heading_from_outline("9"), None);
    }
}
