//! What a file really is, from its bytes: the declared kind (file extension, content type) is a
//! hint that the content must agree with.

use std::io::Cursor;

use super::{ExtractError, FileKind, text};

/// More entries than any real DOCX has; a bigger central directory is refused before it is read.
const MAX_ARCHIVE_ENTRIES: usize = 10_000;

/// The kind of `bytes`, which must agree with `declared`: a PDF starts with `%PDF-`, a DOCX is
/// a ZIP archive holding `word/document.xml`, text kinds must be text. A text file that is an
/// HTML document (starts with a doctype or `<html>`) is read as HTML, unless it was declared a
/// CSV. Cheap: the upload confirmation calls it on the whole file.
pub fn sniff(bytes: &[u8], declared: FileKind) -> Result<FileKind, ExtractError> {
    if bytes.is_empty() {
        return Err(ExtractError::Malformed {
            what: "file".to_owned(),
            detail: "it is empty".to_owned(),
        });
    }
    let found = identify(bytes);
    let mismatch = |found: String| Err(ExtractError::Mismatch { declared, found });
    match (declared, found) {
        (FileKind::Pdf, Found::Pdf) | (FileKind::Docx, Found::Docx) => Ok(declared),
        (FileKind::Csv, Found::Html) => mismatch("an HTML page".to_owned()),
        (d, Found::Html) if d.is_text() => Ok(FileKind::Html),
        (d, Found::Text) if d.is_text() => Ok(declared),
        (d, Found::Unknown) if d.is_text() => Err(ExtractError::NotText),
        (_, found) => mismatch(found.described()),
    }
}

/// What the bytes are, as far as extraction cares.
enum Found {
    Pdf,
    Docx,
    Html,
    Text,
    /// A known binary format we do not read ("a ZIP archive", "a PNG image").
    Other(String),
    /// Binary data of no known format.
    Unknown,
}

impl Found {
    fn described(self) -> String {
        match self {
            Found::Pdf => FileKind::Pdf.described().to_owned(),
            Found::Docx => FileKind::Docx.described().to_owned(),
            Found::Html => "an HTML page".to_owned(),
            Found::Text => "text".to_owned(),
            Found::Other(what) => what,
            Found::Unknown => "binary data of an unknown type".to_owned(),
        }
    }
}

fn identify(bytes: &[u8]) -> Found {
    // Readers accept the header anywhere in the first kilobyte (ISO 32000-1, annex H).
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return Found::Pdf;
    }
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return identify_zip(bytes);
    }
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Found::Other(
            "a legacy (.doc, .xls) or password-protected Office file; save it as DOCX without \
             a password"
                .to_owned(),
        );
    }
    if let Some(t) = infer::get(bytes).filter(|t| t.matcher_type() != infer::MatcherType::Text) {
        let ext = t.extension().to_ascii_uppercase();
        return Found::Other(match t.matcher_type() {
            infer::MatcherType::Image => format!("an image ({ext})"),
            infer::MatcherType::Archive => format!("an archive ({ext})"),
            infer::MatcherType::Audio | infer::MatcherType::Video => {
                format!("a media file ({ext})")
            }
            infer::MatcherType::App => format!("a program ({ext})"),
            _ => format!("a {ext} file"),
        });
    }
    if !text::looks_like_text(bytes) {
        return Found::Unknown;
    }
    if starts_like_html(bytes) {
        Found::Html
    } else {
        Found::Text
    }
}

/// Whether text starts (after a BOM, whitespace and comments) with `<!doctype html` or `<html`.
fn starts_like_html(bytes: &[u8]) -> bool {
    let mut rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    loop {
        rest = rest.trim_ascii_start();
        if let Some(comment) = rest.strip_prefix(b"<!--") {
            match comment.windows(3).position(|w| w == b"-->") {
                Some(end) => rest = &comment[end + 3..],
                None => return false,
            }
        } else {
            break;
        }
    }
    let start = &rest[..rest.len().min(14)];
    let lower = start.to_ascii_lowercase();
    lower.starts_with(b"<!doctype html") || lower.starts_with(b"<html")
}

/// A ZIP archive: a DOCX when it holds `word/document.xml`. Only the central directory is read.
fn identify_zip(bytes: &[u8]) -> Found {
    let zip = || Found::Other("a ZIP archive".to_owned());
    if declared_entries(bytes).is_none_or(|n| n > MAX_ARCHIVE_ENTRIES) {
        return zip();
    }
    let Ok(archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return Found::Other("a damaged ZIP archive".to_owned());
    };
    let has = |name: &str| archive.file_names().any(|n| n.is_ok_and(|n| n == name));
    if has("word/document.xml") {
        Found::Docx
    } else if has("xl/workbook.xml") {
        Found::Other("an Excel workbook (XLSX); export it as CSV".to_owned())
    } else if has("ppt/presentation.xml") {
        Found::Other("a PowerPoint presentation (PPTX); export it as PDF".to_owned())
    } else {
        zip()
    }
}

/// The entry count in a ZIP's end-of-central-directory record; `None` when there is none or it
/// defers to ZIP64 (more than 65,534 entries, never a document).
pub(super) fn declared_entries(bytes: &[u8]) -> Option<usize> {
    // The record is 22 bytes plus a comment of at most 65,535 bytes, at the very end.
    let tail_start = bytes.len().saturating_sub(22 + 65_535);
    let tail = &bytes[tail_start..];
    let at = tail.windows(4).rposition(|w| w == b"PK\x05\x06")?;
    let record = tail.get(at..at + 22)?;
    let entries = u16::from_le_bytes([record[10], record[11]]);
    (entries != 0xFFFF).then_some(usize::from(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pdf_is_a_pdf_and_nothing_else() {
        let pdf = b"%PDF-1.7\n...";
        assert_eq!(sniff(pdf, FileKind::Pdf), Ok(FileKind::Pdf));
        let err = sniff(pdf, FileKind::Txt).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file was uploaded as a text file but it is a PDF"
        );
    }

    #[test]
    fn text_declared_as_pdf_is_refused() {
        let err = sniff(b"hello", FileKind::Pdf).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the file was uploaded as a PDF but it is text"
        );
    }

    #[test]
    fn an_image_is_named_in_the_refusal() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let err = sniff(png, FileKind::Docx).unwrap_err();
        assert!(
            err.to_string().ends_with("but it is an image (PNG)"),
            "{err}"
        );
    }

    #[test]
    fn an_html_document_uploaded_as_text_is_read_as_html() {
        let page = b"\n<!-- x -->\n<!DOCTYPE html><html><body>hi</body></html>";
        assert_eq!(sniff(page, FileKind::Txt), Ok(FileKind::Html));
        assert_eq!(sniff(page, FileKind::Markdown), Ok(FileKind::Html));
        assert!(sniff(page, FileKind::Csv).is_err());
        assert_eq!(sniff(b"a,b\n1,2\n", FileKind::Csv), Ok(FileKind::Csv));
    }

    #[test]
    fn binary_junk_declared_as_text_is_not_text() {
        let junk: Vec<u8> = (0..2048u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        assert_eq!(sniff(&junk, FileKind::Txt), Err(ExtractError::NotText));
        assert_eq!(sniff(&junk, FileKind::Csv), Err(ExtractError::NotText));
    }
}
