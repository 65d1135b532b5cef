//! URLs in and out of pages: normalising them so one page has one key, telling pages from
//! other files, and reading the links of an HTML page.

use reqwest::Url;
use scraper::{Html, Selector};

/// The form a URL is compared, deduplicated and reported in: no fragment and no empty query
/// (`url` has already lower-cased the scheme and host, dropped a default port and resolved
/// `.`/`..` segments). Only `http` and `https` URLs have one.
pub fn normalize(url: &Url) -> Option<Url> {
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    let mut url = url.clone();
    url.set_fragment(None);
    if url.query() == Some("") {
        url.set_query(None);
    }
    Some(url)
}

/// Extensions of files that are not web pages; links to them are not fetched.
const NOT_PAGES: &[&str] = &[
    "7z", "aac", "atom", "avi", "avif", "bin", "bmp", "bz2", "css", "csv", "dmg", "doc", "docx",
    "eot", "epub", "exe", "flac", "gif", "gz", "ico", "iso", "jar", "jpeg", "jpg", "js", "json",
    "m4a", "m4v", "map", "mjs", "mkv", "mov", "mp3", "mp4", "mpeg", "msi", "odp", "ods", "odt",
    "ogg", "otf", "pdf", "png", "ppt", "pptx", "rar", "rss", "svg", "tar", "tgz", "tif", "tiff",
    "ttf", "wasm", "wav", "webm", "webp", "woff", "woff2", "xls", "xlsx", "xml", "xz", "zip",
];

/// `true` when the path's last segment ends in an extension of a non-page file.
pub fn looks_like_a_file(url: &Url) -> bool {
    let last = url.path().rsplit('/').next().unwrap_or_default();
    match last.rsplit_once('.') {
        Some((_, ext)) => NOT_PAGES.contains(&ext.to_ascii_lowercase().as_str()),
        None => false,
    }
}

/// What a response's content type makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// HTML: returned, and its links read.
    Html,
    /// Plain text or Markdown: returned, no links.
    Text,
}

/// The kind of page a response holds, from its `Content-Type` (or, without one, from the
/// first bytes); `None` for anything else (images, PDFs, JSON…).
pub fn page_kind(content_type: Option<&str>, body: &[u8]) -> Option<PageKind> {
    let Some(content_type) = content_type else {
        return sniff_html(body).then_some(PageKind::Html);
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "text/html" | "application/xhtml+xml" => Some(PageKind::Html),
        "text/plain" | "text/markdown" | "text/x-markdown" => Some(PageKind::Text),
        _ => None,
    }
}

fn sniff_html(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    let head: Vec<u8> = body[start..]
        .iter()
        .take(15)
        .map(u8::to_ascii_lowercase)
        .collect();
    head.starts_with(b"<!doctype html") || head.starts_with(b"<html")
}

/// The links of an HTML page and what it says about itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageLinks {
    /// `<a href>` / `<area href>` targets, resolved against `<base href>` (or the page's
    /// URL), normalised, http(s) only, in document order without repeats.
    pub links: Vec<Url>,
    /// `<link rel="canonical">`, resolved and normalised.
    pub canonical: Option<Url>,
}

/// Reads the links of `html`, served at `page_url`. At most `max_links` are kept.
/// Synchronous on purpose: the parsed document is not `Send` and must not live across an
/// `.await`.
pub fn extract(page_url: &Url, html: &[u8], max_links: usize) -> PageLinks {
    let document = Html::parse_document(&String::from_utf8_lossy(html));
    let select = |css: &str| Selector::parse(css).expect("a valid built-in selector");
    let base = document
        .select(&select("base[href]"))
        .next()
        .and_then(|base| base.value().attr("href"))
        .and_then(|href| page_url.join(href.trim()).ok())
        .filter(|base| matches!(base.scheme(), "http" | "https"))
        .unwrap_or_else(|| page_url.clone());
    let resolve = |href: &str| base.join(href.trim()).ok().and_then(|url| normalize(&url));

    let mut links = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for element in document.select(&select("a[href], area[href]")) {
        if links.len() >= max_links {
            break;
        }
        let href = element.value().attr("href").unwrap_or_default();
        // `mailto:`, `javascript:`, `tel:` and the like fall out in `normalize`.
        if let Some(url) = resolve(href)
            && seen.insert(url.as_str().to_owned())
        {
            links.push(url);
        }
    }
    let canonical = document
        .select(&select("link[rel][href]"))
        .find(|link| {
            link.value().attr("rel").is_some_and(|rel| {
                rel.split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("canonical"))
            })
        })
        .and_then(|link| link.value().attr("href"))
        .and_then(resolve);
    PageLinks { links, canonical }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn normalising_drops_fragments_and_empty_queries_and_other_schemes() {
        let n = |s: &str| normalize(&url(s)).map(|u| u.to_string());
        assert_eq!(
            n("HTTP://Example.COM:80/a/./b/../c?#top").as_deref(),
            Some("http://example.com/a/c")
        );
        assert_eq!(
            n("https://example.com").as_deref(),
            Some("https://example.com/")
        );
        assert_eq!(
            n("https://example.com/?q=1#x").as_deref(),
            Some("https://example.com/?q=1")
        );
        assert_eq!(n("mailto:a@example.com"), None);
        assert_eq!(n("ftp://example.com/"), None);
    }

    #[test]
    fn files_are_told_from_pages_by_extension() {
        assert!(looks_like_a_file(&url("https://x.test/a/report.PDF")));
        assert!(looks_like_a_file(&url("https://x.test/logo.png?v=2")));
        assert!(!looks_like_a_file(&url("https://x.test/docs/intro.html")));
        assert!(!looks_like_a_file(&url("https://x.test/docs/v1.2/")));
        assert!(!looks_like_a_file(&url("https://x.test/docs")));
    }

    #[test]
    fn content_types_decide_what_is_a_page() {
        assert_eq!(
            page_kind(Some("text/html; charset=utf-8"), b""),
            Some(PageKind::Html)
        );
        assert_eq!(
            page_kind(Some("Application/XHTML+xml"), b""),
            Some(PageKind::Html)
        );
        assert_eq!(page_kind(Some("text/plain"), b""), Some(PageKind::Text));
        assert_eq!(page_kind(Some("application/pdf"), b"<html>"), None);
        assert_eq!(
            page_kind(None, b"\n <!DOCTYPE html><p>"),
            Some(PageKind::Html)
        );
        assert_eq!(page_kind(None, b"%PDF-1.7"), None);
    }

    #[test]
    fn links_resolve_against_base_and_skip_what_is_not_a_page_url() {
        let html = br##"<html><head>
            <base href="/docs/">
            <link rel="alternate stylesheet" href="/style.css">
            <link rel="Canonical" href="/docs/intro#top">
            </head><body>
            <a href="intro">Intro</a>
            <a href="intro#part-2">Intro again</a>
            <a href="../about?x=1#y">About</a>
            <a href=" https://other.test/page ">Other</a>
            <a href="mailto:help@x.test">Mail</a>
            <a href="javascript:void(0)">JS</a>
            <a href="#top">Top</a>
            <a>No href</a>
            <map><area href="/map-target"></map>
            </body></html>"##;
        let found = extract(&url("https://x.test/docs/start"), html, 100);
        let links: Vec<_> = found.links.iter().map(Url::as_str).collect();
        assert_eq!(
            links,
            [
                "https://x.test/docs/intro",
                "https://x.test/about?x=1",
                "https://other.test/page",
                "https://x.test/docs/",
                "https://x.test/map-target",
            ]
        );
        assert_eq!(
            found.canonical.unwrap().as_str(),
            "https://x.test/docs/intro"
        );
        assert_eq!(extract(&url("https://x.test/"), html, 2).links.len(), 2);
    }
}
