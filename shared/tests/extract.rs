//! Extraction: real documents made by the tests (PDF with lopdf, DOCX with zip), read in
//! process, and hostile ones read through the sandbox with `chatpad-extract` as the child.

use std::time::Duration;

use chatpad::knowledge::extract::sandbox::Sandbox;
use chatpad::knowledge::extract::{ExtractError, FileKind, Limits, extract, html, samples, sniff};
use chatpad::knowledge::{Extracted, Location};

fn read(bytes: &[u8], kind: FileKind) -> Extracted {
    extract(bytes, kind, &Limits::default()).unwrap_or_else(|e| panic!("extracting: {e}"))
}

fn sandbox(limits: Limits) -> Sandbox {
    Sandbox {
        program: env!("CARGO_BIN_EXE_chatpad-extract").into(),
        args: vec![],
        limits,
    }
}

/// A sandbox whose "reader" is a shell script: for the ways a child can go wrong.
fn shell_sandbox(script: &str, limits: Limits) -> Sandbox {
    Sandbox {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        limits,
    }
}

fn page(n: u32) -> Location {
    Location {
        page: Some(n),
        ..Default::default()
    }
}

#[test]
fn each_pdf_page_becomes_a_part_with_its_page_number() {
    let pdf = samples::pdf(
        "Returns policy",
        &[
            "Refunds\nMoney back within 30 days.",
            "Shipping\nFree above 50 EUR.",
            "Contact\nsupport@example.com",
        ],
    );

    let extracted = read(&pdf, FileKind::Pdf);

    assert_eq!(extracted.title.as_deref(), Some("Returns policy"));
    let pages: Vec<_> = extracted.parts.iter().map(|p| p.location.clone()).collect();
    assert_eq!(pages, [page(1), page(2), page(3)]);
    assert!(
        extracted.parts[0]
            .markdown
            .contains("Money back within 30 days."),
        "{:?}",
        extracted.parts[0]
    );
    assert!(extracted.parts[1].markdown.contains("Free above 50 EUR."));
    assert!(extracted.parts[2].markdown.contains("support@example.com"));
    assert!(!extracted.parts[0].markdown.contains("Shipping"));
}

#[test]
fn a_pdf_laid_out_like_a_browsers_reads_as_words_lines_and_paragraphs() {
    // Words placed by offsets (no space glyphs), split by kerning, in a subset font whose
    // codes mean nothing without its ToUnicode map; a ligature glyph; a footer in a form.
    let pdf = samples::pdf_like_a_browser(
        &[
            "Refunds are issued within thirty days\nof the purchase date.",
            "Contact support for help.",
        ],
        "See the configuration guide first.",
        "Page 1 of 1",
    );

    let extracted = read(&pdf, FileKind::Pdf);

    assert_eq!(extracted.parts.len(), 1);
    assert_eq!(
        extracted.parts[0].markdown,
        "Refunds are issued within thirty days\nof the purchase date.\n\n\
         Contact support for help.\nSee the configuration guide first.\n\nPage 1 of 1"
    );
}

#[test]
fn a_pdf_page_with_an_image_keeps_its_text() {
    let pdf = samples::pdf_with_images(2, 40_000);

    let extracted = read(&pdf, FileKind::Pdf);

    assert_eq!(extracted.parts.len(), 2);
    assert!(
        extracted.parts[1].markdown.starts_with("Section 1"),
        "{:?}",
        extracted.parts[1]
    );
}

#[test]
fn a_broken_pdf_page_is_skipped_and_the_pages_after_it_are_read() {
    let pdf = samples::pdf_with_broken_page(&["First", "Broken", "Third", "Fourth"], 1);

    let extracted = sandbox(Limits::default())
        .extract(&pdf, FileKind::Pdf)
        .unwrap();

    let pages: Vec<_> = extracted.parts.iter().map(|p| p.location.clone()).collect();
    assert_eq!(pages, [page(1), page(3), page(4)]);
    assert_eq!(extracted.parts[2].markdown, "Fourth");
}

#[test]
fn a_pdf_with_more_pages_than_allowed_is_refused() {
    let pdf = samples::pdf("Long", &["one", "two", "three"]);
    let limits = Limits {
        max_pages: 2,
        ..Limits::default()
    };

    let err = extract(&pdf, FileKind::Pdf, &limits).unwrap_err();

    assert_eq!(
        err.to_string(),
        "the PDF has 3 pages; at most 2 can be read"
    );
}

#[test]
fn an_encrypted_pdf_is_refused_but_an_owner_only_password_is_not() {
    let locked = samples::pdf_encrypted("secret", &["Hidden text"]);
    let err = extract(&locked, FileKind::Pdf, &Limits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the PDF is encrypted: remove its password and upload it again"
    );

    let restricted = samples::pdf_encrypted("", &["Readable text"]);
    let extracted = read(&restricted, FileKind::Pdf);
    assert!(extracted.parts[0].markdown.contains("Readable text"));
}

#[test]
fn a_truncated_pdf_is_refused_as_damaged() {
    let pdf = samples::pdf("Cut", &["Some text on a page that will be cut off"]);
    let truncated = &pdf[..pdf.len() / 2];

    let err = sandbox(Limits::default())
        .extract(truncated, FileKind::Pdf)
        .unwrap_err();

    assert!(
        matches!(
            err,
            ExtractError::Malformed { .. } | ExtractError::NoText { .. }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("PDF"), "{err}");
}

#[test]
fn a_pdf_decompression_bomb_exhausts_the_childs_memory_not_ours() {
    let limits = Limits {
        memory_bytes: 192 << 20,
        ..Limits::default()
    };
    let bomb = samples::pdf_decompression_bomb(512 << 20);
    assert!(
        bomb.len() < 4 << 20,
        "the bomb is small: {} bytes",
        bomb.len()
    );

    let err = sandbox(limits).extract(&bomb, FileKind::Pdf).unwrap_err();

    assert_eq!(
        err.to_string(),
        "the document needs more than 192 MB of memory to read"
    );
}

#[test]
fn a_pdf_that_is_really_a_zip_is_refused() {
    let zip = samples::docx("A", "<w:p><w:r><w:t>x</w:t></w:r></w:p>");

    let err = sniff(&zip, FileKind::Pdf).unwrap_err();

    assert_eq!(
        err.to_string(),
        "the file was uploaded as a PDF but it is a Word document (DOCX)"
    );
    let plain_zip = {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("a.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(b"hello").unwrap();
        w.finish().unwrap().into_inner()
    };
    let err = sandbox(Limits::default())
        .extract(&plain_zip, FileKind::Pdf)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the file was uploaded as a PDF but it is a ZIP archive"
    );
}

#[test]
fn docx_headings_lists_and_tables_become_markdown() {
    let body = r#"
        <w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Getting started</w:t></w:r></w:p>
        <w:p><w:r><w:t xml:space="preserve">Install the app &amp; sign </w:t></w:r><w:r><w:t>in.</w:t></w:r></w:p>
        <w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>Fast</w:t></w:r></w:p>
        <w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>Safe</w:t></w:r></w:p>
        <w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="2"/></w:numPr></w:pPr><w:r><w:t>Open settings</w:t></w:r></w:p>
        <w:p><w:pPr><w:pStyle w:val="Heading2"/></w:pPr><w:r><w:t>Prices</w:t></w:r></w:p>
        <w:tbl>
          <w:tr><w:tc><w:p><w:r><w:t>Plan</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Price</w:t></w:r></w:p></w:tc></w:tr>
          <w:tr><w:tc><w:p><w:r><w:t>Pro | Team</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>29</w:t></w:r></w:p></w:tc></w:tr>
        </w:tbl>
        <w:p><w:r><w:delText>removed</w:delText><w:t>The end.</w:t></w:r></w:p>"#;
    let docx = samples::docx("User guide", body);

    let extracted = read(&docx, FileKind::Docx);

    assert_eq!(extracted.title.as_deref(), Some("User guide"));
    assert_eq!(extracted.parts.len(), 1);
    assert_eq!(
        extracted.parts[0].markdown,
        "# Getting started\n\nInstall the app & sign in.\n\n- Fast\n- Safe\n\n1. Open settings\n\n\
         ## Prices\n\n| Plan | Price |\n| --- | --- |\n| Pro \\| Team | 29 |\n\nThe end."
    );
}

#[test]
fn a_zip_bomb_docx_is_refused_by_its_declared_size() {
    let limits = Limits {
        max_expanded_bytes: 8 << 20,
        ..Limits::default()
    };
    let bomb = samples::docx_zip_bomb(16 << 20, false);

    let err = sandbox(limits).extract(&bomb, FileKind::Docx).unwrap_err();

    assert_eq!(err.to_string(), "the DOCX expands to more than 8 MB");
}

#[test]
fn a_zip_bomb_docx_that_lies_about_its_size_is_stopped_while_reading() {
    let limits = Limits {
        max_expanded_bytes: 8 << 20,
        ..Limits::default()
    };
    let bomb = samples::docx_zip_bomb(16 << 20, true);

    let err = sandbox(limits).extract(&bomb, FileKind::Docx).unwrap_err();

    // The zip reader checks each entry against its declared size (our own count backs it up).
    assert_eq!(
        err.to_string(),
        "the DOCX could not be read: word/document.xml is larger than the archive declares"
    );
}

#[test]
fn csv_rows_become_records_with_their_row_numbers() {
    let csv = "name,price,notes\r\nWidget,9.99,\"Small, blue\"\r\nGadget,19.50,\"Says \"\"hi\"\"\nand waves\"\r\n\
               Gizmo,5,\r\n";

    let extracted = read(csv.as_bytes(), FileKind::Csv);

    let rows: Vec<_> = extracted.parts.iter().map(|p| p.location.row).collect();
    assert_eq!(rows, [Some(1), Some(2), Some(3)]);
    assert_eq!(
        extracted.parts[0].markdown,
        "name: Widget\nprice: 9.99\nnotes: Small, blue"
    );
    assert_eq!(
        extracted.parts[1].markdown,
        "name: Gadget\nprice: 19.50\nnotes: Says \"hi\" and waves"
    );
    assert_eq!(extracted.parts[2].markdown, "name: Gizmo\nprice: 5");
}

#[test]
fn a_csv_without_a_header_gets_numbered_columns() {
    let extracted = read(b"1;apple\n2;pear\n", FileKind::Csv);

    assert_eq!(extracted.parts[0].markdown, "Column 1: 1\nColumn 2: apple");
}

#[test]
fn a_huge_csv_line_is_refused() {
    let mut csv = b"a,b\n1,2\n3,".to_vec();
    csv.extend(std::iter::repeat_n(b'x', 2 << 20));
    csv.push(b'\n');

    let err = sandbox(Limits::default())
        .extract(&csv, FileKind::Csv)
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "row 2 of the CSV file is larger than 1024 KB"
    );
}

#[test]
fn html_boilerplate_is_removed_and_content_kept_as_markdown() {
    let page = r#"<!DOCTYPE html><html><head><title>Shipping | Example</title>
        <style>body { color: red }</style><script>track()</script></head>
        <body>
          <header><a href="/">Example logo</a></header>
          <nav><ul><li><a href="/a">Home</a></li><li><a href="/b">Pricing</a></li></ul></nav>
          <div class="cookie-banner">We use cookies <button>OK</button></div>
          <main>
            <article>
              <header><h1>Shipping</h1></header>
              <p>We ship <a href="/eu">to the EU</a> and   the UK.<br>Orders leave in 2 days.</p>
              <h2>Costs</h2>
              <table>
                <thead><tr><th>Zone</th><th>Price</th></tr></thead>
                <tbody><tr><td>EU</td><td>5 EUR</td></tr><tr><td>UK</td><td>8 EUR</td></tr></tbody>
              </table>
              <ol><li>Order</li><li>Pay<ul><li>card</li><li>invoice</li></ul></li></ol>
              <pre>tracking --id 42
  indented</pre>
            </article>
            <aside>Related: returns</aside>
          </main>
          <footer>Copyright Example · <a href="/imprint">Imprint</a></footer>
        </body></html>"#;

    let extracted = read(page.as_bytes(), FileKind::Html);

    assert_eq!(extracted.title.as_deref(), Some("Shipping | Example"));
    assert_eq!(
        extracted.parts[0].markdown,
        "# Shipping\n\nWe ship to the EU and the UK.\nOrders leave in 2 days.\n\n## Costs\n\n\
         | Zone | Price |\n| --- | --- |\n| EU | 5 EUR |\n| UK | 8 EUR |\n\n\
         1. Order\n2. Pay\n  - card\n  - invoice\n\n```\ntracking --id 42\n  indented\n```"
    );
}

#[test]
fn deeply_nested_html_is_read_without_overflowing_the_stack() {
    // Deep enough to overflow a naively recursive walker; html5ever itself is quadratic in the
    // depth (a far deeper page ends at the timeout).
    let depth = 20_000;
    let page = format!(
        "<html><body>{}deep text{}</body></html>",
        "<div>".repeat(depth),
        "</div>".repeat(depth)
    );

    let extracted = sandbox(Limits::default())
        .extract(page.as_bytes(), FileKind::Html)
        .unwrap();

    assert_eq!(extracted.parts[0].markdown, "deep text");
}

#[test]
fn links_are_resolved_for_the_crawler() {
    let page = r##"<html><head><base href="/docs/"></head><body>
        <a href="intro#top">Intro</a> <a href="https://other.example/x">Other</a>
        <a href="mailto:a@b.c">Mail</a> <a href="javascript:void(0)">JS</a> <a href="intro">Again</a>
        </body></html>"##;
    let base = url::Url::parse("https://example.com/help/page").unwrap();

    let links: Vec<String> = html::links(page, &base)
        .into_iter()
        .map(String::from)
        .collect();

    assert_eq!(
        links,
        ["https://example.com/docs/intro", "https://other.example/x"]
    );
}

#[test]
fn text_and_markdown_are_kept_with_line_endings_normalised() {
    let md = read(b"# Title\r\n\r\nSome *text*.\0\r\n", FileKind::Markdown);
    assert_eq!(md.title.as_deref(), Some("Title"));
    assert_eq!(md.parts[0].markdown, "# Title\n\nSome *text*.\n");

    let txt = read(b"plain\rtext", FileKind::Txt);
    assert_eq!(txt.title, None);
    assert_eq!(txt.parts[0].markdown, "plain\ntext");
}

#[test]
fn binary_junk_declared_as_text_is_refused() {
    let junk: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();

    let err = sandbox(Limits::default())
        .extract(&junk, FileKind::Txt)
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "the file is not text: it contains binary data"
    );
}

#[test]
fn a_document_without_text_is_refused_with_a_hint() {
    let err = extract(b"  \n\n ", FileKind::Txt, &Limits::default()).unwrap_err();
    assert_eq!(err.to_string(), "no text was found in the text file");
}

#[test]
fn the_sandbox_reads_a_pdf_like_the_reader_in_process() {
    let pdf = samples::pdf("Manual", &["First page", "Second page"]);

    let (result, report) = sandbox(Limits::default()).extract_with_report(&pdf, FileKind::Pdf);

    assert_eq!(result.unwrap(), read(&pdf, FileKind::Pdf));
    assert!(report.peak_rss_bytes > 0);
}

#[test]
fn a_reader_that_never_finishes_is_killed_at_the_timeout() {
    let limits = Limits {
        timeout: Duration::from_secs(1),
        ..Limits::default()
    };

    let err = shell_sandbox("while :; do :; done", limits)
        .extract(b"text", FileKind::Txt)
        .unwrap_err();

    assert_eq!(err.to_string(), "the document took longer than 1 s to read");
}

#[test]
fn a_crashing_reader_is_reported_as_such() {
    let err = shell_sandbox("kill -SEGV $$", Limits::default())
        .extract(b"text", FileKind::Txt)
        .unwrap_err();

    assert_eq!(
        err.to_string(),
        "the document could not be read: the reader stopped unexpectedly"
    );
}

#[test]
fn a_reader_answering_garbage_is_our_failure_not_the_files() {
    let err = shell_sandbox("cat >/dev/null; echo nonsense", Limits::default())
        .extract(b"text", FileKind::Txt)
        .unwrap_err();

    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn a_reader_printing_without_end_is_stopped_at_the_output_cap() {
    let limits = Limits {
        max_text_bytes: 1 << 20,
        ..Limits::default()
    };

    let err = shell_sandbox("yes", limits)
        .extract(b"text", FileKind::Txt)
        .unwrap_err();

    assert_eq!(err.to_string(), "the document has more than 1 MB of text");
}

#[test]
fn a_missing_reader_program_is_our_failure() {
    let sandbox = Sandbox {
        program: "/nonexistent/reader".into(),
        args: vec![],
        limits: Limits::default(),
    };

    let err = sandbox.extract(b"text", FileKind::Txt).unwrap_err();

    assert!(err.is_retryable(), "{err:?}");
}
