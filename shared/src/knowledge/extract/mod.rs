//! Extraction: the bytes of an uploaded file or a fetched web page → Markdown [`Part`]s.
//!
//! - [`sniff`] decides what a file really is from its bytes (magic numbers, HTML sniffing,
//!   text decoding) and refuses a file whose content contradicts its declared kind; the upload
//!   confirmation calls it before a source is queued.
//! - [`extract`] reads one document in process: PDF one part per page, CSV one part per row,
//!   DOCX / HTML / text one part each. Every reader enforces the [`Limits`] it can check (pages,
//!   rows, expanded sizes, text size, time between pages and rows).
//! - [`sandbox`] runs [`extract`] in a child process with an address-space and CPU limit and a
//!   wall-clock timeout, so a hostile file (PDF or zip bomb, parser bug, endless loop) costs a
//!   clear [`ExtractError`] and never the worker.
//! - [`html::links`] lists the links of a web page for the crawler.
//! - [`samples`] makes synthetic documents for tests and the benchmark.

mod csv;
mod docx;
pub mod html;
mod pdf;
pub mod samples;
pub mod sandbox;
mod sniff;
mod text;

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Extracted, Part};

pub use sniff::sniff;

/// The file types a knowledge source can be extracted from (`knowledge_sources.type` of the
/// uploaded kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(description = "A file type knowledge can be extracted from")]
pub enum FileKind {
    Pdf,
    Docx,
    Csv,
    Txt,
    Markdown,
    Html,
}

impl FileKind {
    /// Every kind, in the order they are listed to customers.
    pub const ALL: [FileKind; 6] = [
        FileKind::Pdf,
        FileKind::Docx,
        FileKind::Csv,
        FileKind::Txt,
        FileKind::Markdown,
        FileKind::Html,
    ];

    /// The `knowledge_sources.type` value of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Pdf => "pdf",
            FileKind::Docx => "docx",
            FileKind::Csv => "csv",
            FileKind::Txt => "txt",
            FileKind::Markdown => "markdown",
            FileKind::Html => "html",
        }
    }

    /// The kind's name in a sentence ("a PDF", "an HTML page").
    pub fn described(self) -> &'static str {
        match self {
            FileKind::Pdf => "a PDF",
            FileKind::Docx => "a Word document (DOCX)",
            FileKind::Csv => "a CSV file",
            FileKind::Txt => "a text file",
            FileKind::Markdown => "a Markdown file",
            FileKind::Html => "an HTML page",
        }
    }

    /// Whether the kind is plain text (decoded and checked the same way).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FileKind::Csv | FileKind::Txt | FileKind::Markdown | FileKind::Html
        )
    }

    /// The kind a file name's extension declares (`report.PDF` → PDF), if it is one we read.
    pub fn from_file_name(name: &str) -> Option<FileKind> {
        let (_, ext) = name.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "pdf" => Some(FileKind::Pdf),
            "docx" => Some(FileKind::Docx),
            "csv" => Some(FileKind::Csv),
            "txt" | "text" => Some(FileKind::Txt),
            "md" | "markdown" => Some(FileKind::Markdown),
            "html" | "htm" => Some(FileKind::Html),
            _ => None,
        }
    }

    /// The `Content-Type` files of this kind are uploaded with.
    pub fn content_type(self) -> &'static str {
        match self {
            FileKind::Pdf => "application/pdf",
            FileKind::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            FileKind::Csv => "text/csv",
            FileKind::Txt => "text/plain",
            FileKind::Markdown => "text/markdown",
            FileKind::Html => "text/html",
        }
    }

    /// The kind a `Content-Type` declares (parameters ignored), if it is one we read.
    pub fn from_content_type(content_type: &str) -> Option<FileKind> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/pdf" => Some(FileKind::Pdf),
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Some(FileKind::Docx)
            }
            "text/csv" => Some(FileKind::Csv),
            "text/plain" => Some(FileKind::Txt),
            "text/markdown" | "text/x-markdown" => Some(FileKind::Markdown),
            "text/html" | "application/xhtml+xml" => Some(FileKind::Html),
            _ => None,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FileKind {
    type Err = ExtractError;

    /// Parses a `knowledge_sources.type` value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FileKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ExtractError::Unsupported {
                found: s.to_owned(),
            })
    }
}

/// Why a document could not be extracted. `Display` is a sentence a customer can read; it is
/// what the source's `error` column shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum ExtractError {
    /// The kind is not one we read.
    #[error("{found} files are not supported: upload a PDF, DOCX, CSV, TXT, Markdown or HTML file")]
    Unsupported { found: String },
    /// The bytes are something else than the declared kind.
    #[error("the file was uploaded as {} but it is {found}", declared.described())]
    Mismatch { declared: FileKind, found: String },
    /// Binary data declared as text.
    #[error("the file is not text: it contains binary data")]
    NotText,
    /// A password-protected PDF (or DOCX) we cannot open.
    #[error("the {what} is encrypted: remove its password and upload it again")]
    Encrypted { what: String },
    /// The document is damaged or not what its format requires.
    #[error("the {what} could not be read: {detail}")]
    Malformed { what: String, detail: String },
    /// Nothing to index: no text at all (a scanned PDF needs OCR, which we do not do).
    #[error("no text was found in the {what}{hint}")]
    NoText { what: String, hint: String },
    /// One of the [`Limits`] was reached.
    #[error("{0}")]
    TooLarge(String),
    /// The reader ran past its time limit.
    #[error("the document took longer than {secs} s to read")]
    Timeout { secs: u64 },
    /// The reader needed more memory than it is allowed.
    #[error("the document needs more than {mb} MB of memory to read")]
    OutOfMemory { mb: u64 },
    /// The reader stopped unexpectedly (a crash in a parser, a nesting too deep to follow).
    #[error("the document could not be read: {0}")]
    Crashed(String),
    /// Our side failed (the reader process could not be started). Worth retrying, unlike the
    /// others, which depend on the file only.
    #[error("extraction failed on our side: {0}")]
    Internal(String),
}

impl ExtractError {
    /// Whether trying the same file again may succeed (only our own failures).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ExtractError::Internal(_))
    }

    fn malformed(kind: FileKind, detail: impl fmt::Display) -> Self {
        ExtractError::Malformed {
            what: kind.noun().to_owned(),
            detail: detail.to_string(),
        }
    }
}

impl FileKind {
    /// The kind's short name after "the" ("the PDF", "the CSV file").
    fn noun(self) -> &'static str {
        match self {
            FileKind::Pdf => "PDF",
            FileKind::Docx => "DOCX",
            FileKind::Csv => "CSV file",
            FileKind::Txt => "text file",
            FileKind::Markdown => "Markdown file",
            FileKind::Html => "HTML page",
        }
    }
}

/// How far a reader may go with one document. The defaults fit a worker with about 1 GB of
/// memory: the sandboxed reader gets 384 MB of address space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time for one document (the sandbox kills the reader after it; in process the
    /// readers check it between pages and rows).
    pub timeout: Duration,
    /// Address space of the sandboxed reader (`RLIMIT_AS`), in bytes.
    pub memory_bytes: u64,
    /// Pages of a PDF.
    pub max_pages: u32,
    /// Extracted Markdown of one document, in bytes.
    pub max_text_bytes: usize,
    /// Uncompressed bytes read from a DOCX archive, all entries together.
    pub max_expanded_bytes: u64,
    /// Entries in a DOCX archive.
    pub max_archive_entries: usize,
    /// Data rows of a CSV file.
    pub max_csv_rows: u64,
    /// Bytes of one CSV row.
    pub max_csv_row_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(60),
            memory_bytes: 384 << 20,
            max_pages: 2_000,
            max_text_bytes: 20 << 20,
            max_expanded_bytes: 200 << 20,
            max_archive_entries: 10_000,
            max_csv_rows: 200_000,
            max_csv_row_bytes: 1 << 20,
        }
    }
}

/// Counts time and text against the [`Limits`] while a reader runs.
pub(crate) struct Budget<'a> {
    limits: &'a Limits,
    deadline: Instant,
    text_bytes: usize,
}

impl<'a> Budget<'a> {
    fn new(limits: &'a Limits) -> Self {
        Budget {
            limits,
            deadline: Instant::now() + limits.timeout,
            text_bytes: 0,
        }
    }

    /// Fails once the time limit has passed.
    fn check_time(&self) -> Result<(), ExtractError> {
        if Instant::now() > self.deadline {
            return Err(ExtractError::Timeout {
                secs: self.limits.timeout.as_secs(),
            });
        }
        Ok(())
    }

    /// Counts `bytes` more of extracted text; fails past the text limit.
    fn add_text(&mut self, bytes: usize) -> Result<(), ExtractError> {
        self.text_bytes += bytes;
        if self.text_bytes > self.limits.max_text_bytes {
            return Err(ExtractError::TooLarge(format!(
                "the document has more than {} MB of text",
                self.limits.max_text_bytes >> 20
            )));
        }
        Ok(())
    }
}

/// Extracts the Markdown parts of a document in this process. `kind` is what [`sniff`]
/// returned; the bytes are sniffed again, so a caller cannot skip the check.
///
/// Memory is bounded only by the readers' own limits: for files from customers use
/// [`sandbox::Sandbox`], which also survives parser crashes and bombs.
pub fn extract(bytes: &[u8], kind: FileKind, limits: &Limits) -> Result<Extracted, ExtractError> {
    let kind = sniff(bytes, kind)?;
    let mut budget = Budget::new(limits);
    let extracted = match kind {
        FileKind::Pdf => pdf::extract(bytes, &mut budget)?,
        FileKind::Docx => docx::extract(bytes, &mut budget)?,
        FileKind::Csv => csv::extract(&text::decode(bytes)?, &mut budget)?,
        FileKind::Html => html::extract(&text::decode(bytes)?, &mut budget)?,
        FileKind::Txt | FileKind::Markdown => text::extract(bytes, kind, &mut budget)?,
    };
    if extracted.parts.iter().all(|p| p.markdown.trim().is_empty()) {
        let hint = if kind == FileKind::Pdf {
            " (a scanned PDF holds only images of its pages; it needs text recognition, which \
             we do not do)"
        } else {
            ""
        };
        return Err(ExtractError::NoText {
            what: kind.noun().to_owned(),
            hint: hint.to_owned(),
        });
    }
    Ok(extracted)
}

/// A part with no location of its own (a whole DOCX, text or HTML document).
fn whole(markdown: String) -> Part {
    Part {
        markdown,
        location: Default::default(),
    }
}

/// A Markdown table whose first row is the header.
fn markdown_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let cell = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|")
    };
    let line = |row: &[String]| {
        let cells: Vec<String> = (0..columns)
            .map(|i| row.get(i).map(|c| cell(c)).unwrap_or_default())
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    let mut lines = vec![line(&rows[0]), format!("|{}", " --- |".repeat(columns))];
    lines.extend(rows[1..].iter().map(|r| line(r)));
    lines.join("\n")
}
