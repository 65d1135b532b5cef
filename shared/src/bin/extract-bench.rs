//! chatpad-extract-bench: extraction throughput per format, and the peak memory of reading a
//! ~50 MB PDF through the sandbox. Run the release build (`make bench` does).
//!
//! Throughput is MB of extracted Markdown per second, in process, of extraction alone and of
//! extraction followed by chunking with the default settings (the target's measure). Best of
//! three runs each: the machine's other work only ever slows a run down. The sandbox run
//! re-executes this binary as the child, as the ingest worker does, and reads the child's peak
//! RSS from `wait4`.

use std::time::Instant;

use chatpad::knowledge::chunk::{ChunkSettings, chunk};
use chatpad::knowledge::extract::{FileKind, Limits, extract, samples, sandbox};

const MB: f64 = 1024.0 * 1024.0;

fn main() {
    sandbox::run_child_if_requested();
    // Generous limits: this measures speed, not refusals.
    let limits = Limits {
        max_text_bytes: 256 << 20,
        max_csv_rows: u64::MAX,
        max_pages: 100_000,
        ..Limits::default()
    };
    let inputs = [
        ("html", FileKind::Html, html(20 << 20)),
        ("markdown", FileKind::Markdown, markdown(20 << 20)),
        ("csv", FileKind::Csv, csv(20 << 20)),
        ("pdf", FileKind::Pdf, samples::pdf_text_heavy(5 << 20)),
    ];
    let settings = ChunkSettings::default();
    for (name, kind, bytes) in &inputs {
        let (mut extracting, mut with_chunking) = (f64::MAX, f64::MAX);
        let (mut text, mut parts, mut chunks) = (0, 0, 0);
        for _ in 0..3 {
            let started = Instant::now();
            let extracted = extract(bytes, *kind, &limits).expect("a generated document extracts");
            extracting = extracting.min(started.elapsed().as_secs_f64());
            chunks = chunk(&extracted, &settings).len();
            with_chunking = with_chunking.min(started.elapsed().as_secs_f64());
            text = extracted
                .parts
                .iter()
                .map(|p| p.markdown.len())
                .sum::<usize>();
            parts = extracted.parts.len();
        }
        let text_mb = text as f64 / MB;
        println!(
            "extract {name:<8} {:>6.1} MB in -> {text_mb:>6.1} MB text, {parts} parts, {chunks} chunks: {:.1} MB/s of text extracted, {:.1} MB/s extracted and chunked (target >= 20)",
            bytes.len() as f64 / MB,
            text_mb / extracting,
            text_mb / with_chunking,
        );
    }

    let pdf = samples::pdf_with_images(1_000, 50 << 20);
    let sandbox = sandbox::Sandbox::this_binary(Limits::default()).expect("this binary");
    let (result, report) = sandbox.extract_with_report(&pdf, FileKind::Pdf);
    match result {
        Ok(extracted) => {
            let text: usize = extracted.parts.iter().map(|p| p.markdown.len()).sum();
            println!(
                "sandbox  pdf      {:>6.1} MB in ({} pages) -> {:.1} MB text in {:.2} s (cpu {:.2} s): peak RSS {:.0} MB (target <= 512, address-space limit {} MB)",
                pdf.len() as f64 / MB,
                extracted.parts.len(),
                text as f64 / MB,
                report.wall.as_secs_f64(),
                report.cpu.as_secs_f64(),
                report.peak_rss_bytes as f64 / MB,
                sandbox.limits.memory_bytes >> 20,
            );
        }
        Err(e) => {
            println!(
                "sandbox  pdf      {:>6.1} MB in: FAILED ({e}); peak RSS {:.0} MB",
                pdf.len() as f64 / MB,
                report.peak_rss_bytes as f64 / MB
            );
            std::process::exit(1);
        }
    }
}

/// Pages of a support site: navigation, header and footer around an article with headings,
/// paragraphs, a list and a table.
fn html(target: usize) -> Vec<u8> {
    let mut out = String::from(
        "<!DOCTYPE html><html><head><title>Help</title><style>p{}</style></head><body>",
    );
    out.push_str("<header><a href='/'>Logo</a></header><nav><ul><li><a href='/a'>A</a></li><li><a href='/b'>B</a></li></ul></nav><main>");
    let mut n = 0;
    while out.len() < target {
        let page = samples::lorem_page(n);
        out.push_str(&format!("<section><h2>Topic {n}</h2>"));
        for para in page.lines() {
            out.push_str(&format!("<p>{para} <a href='/x/{n}'>more</a></p>"));
        }
        out.push_str("<ul><li>first step</li><li>second <b>step</b></li></ul>");
        out.push_str("<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Basic</td><td>9</td></tr></table></section>");
        n += 1;
    }
    out.push_str("</main><footer>(c) Example</footer><script>var x = 1;</script></body></html>");
    out.into_bytes()
}

fn markdown(target: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut n = 0;
    while out.len() < target {
        out.push_str(&format!(
            "## Topic {n}\r\n\r\n{}\r\n- a point\r\n- another\r\n\r\n",
            samples::lorem_page(n)
        ));
        n += 1;
    }
    out.into_bytes()
}

fn csv(target: usize) -> Vec<u8> {
    let mut out = String::from("sku,name,description,price\n");
    let mut n = 0;
    while out.len() < target {
        out.push_str(&format!(
            "SKU-{n},Widget {n},\"A sturdy widget, model {n}, with a \"\"quoted\"\" feature\",{}.99\n",
            n % 500
        ));
        n += 1;
    }
    out.into_bytes()
}
