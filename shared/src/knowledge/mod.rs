//! Knowledge: what an agent knows and how it gets there.
//!
//! The pipeline, one module per step: a source (file upload, URL or site crawl, typed text,
//! Q&A pairs) is extracted into Markdown [`Part`]s, each with its [`Location`]; parts are cut
//! into overlapping, structure-aware chunks; chunks are embedded and stored with their location,
//! so an answer can cite the page, row or URL it came from.
//!
//! - [`sources`]: adding, listing, re-syncing and deleting sources (the management API's
//!   domain); [`files`]: upload URLs and the S3 bucket of uploaded files.
//! - [`extract`]: file bytes → Markdown parts, in a sandboxed child process.
//! - [`crawl`]: fetching web sources (one page, a site, a sitemap) through the SSRF guard,
//!   with robots.txt and conditional re-sync.
//! - [`chunk`]: structure-aware, overlapping chunks.
//! - [`ingest`]: the worker's job, from `pending` to `ready` or `error`.
//! - [`search`]: vector and hybrid retrieval for answers.

pub mod chunk;
pub mod crawl;
pub mod extract;
pub mod files;
pub mod ingest;
pub mod search;
pub mod sources;

use serde::{Deserialize, Serialize};

/// Where a piece of text came from; stored with every chunk (`knowledge_chunks.location`) and
/// shown in citations. Only the fields that apply are set (and serialised).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// 1-based page of a PDF.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// 1-based data row of a CSV (the header row is not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<u64>,
    /// The page's URL, for web sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The heading path the text sits under ("Billing > Refunds"), when the document has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

/// One extracted piece of a document in reading order: a PDF page, a CSV row, a web page, or a
/// whole DOCX / text document. The text is Markdown so the chunker can keep headings, lists and
/// tables together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Markdown text of this part.
    pub markdown: String,
    /// Where this part is in the source.
    pub location: Location,
}

/// The text of one document, ready to be chunked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The document's own title (PDF metadata, HTML `<title>`, first heading), if it has one.
    pub title: Option<String>,
    /// The document's parts in reading order.
    pub parts: Vec<Part>,
}
