//! Sitemaps (sitemaps.org 0.9): a `<urlset>` of pages or a `<sitemapindex>` of further
//! sitemaps, plain or gzipped.

use std::io::Read;

/// Entries read from one sitemap file at most (the protocol's own limit).
pub(super) const MAX_ENTRIES: usize = 50_000;

/// What one sitemap file lists.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Sitemap {
    /// `<urlset>`: page URLs, as written.
    Pages(Vec<String>),
    /// `<sitemapindex>`: sitemap URLs, as written.
    Index(Vec<String>),
}

/// Reads a sitemap; gzip (by its magic bytes) is inflated up to `max_bytes`.
pub(super) fn parse(body: &[u8], max_bytes: usize) -> Result<Sitemap, String> {
    let inflated;
    let body = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .take(max_bytes as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|err| format!("the gzipped sitemap does not inflate: {err}"))?;
        if out.len() > max_bytes {
            return Err(format!(
                "the sitemap inflates to more than {max_bytes} bytes"
            ));
        }
        inflated = out;
        &inflated[..]
    } else {
        body
    };
    let text = std::str::from_utf8(body).map_err(|_| "the sitemap is not UTF-8".to_owned())?;
    let document = roxmltree::Document::parse(text)
        .map_err(|err| format!("the sitemap is not valid XML: {err}"))?;
    let root = document.root_element();
    let (entry, is_index) = match root.tag_name().name() {
        "urlset" => ("url", false),
        "sitemapindex" => ("sitemap", true),
        other => {
            return Err(format!(
                "<{other}> is not a sitemap (expected <urlset> or <sitemapindex>)"
            ));
        }
    };
    let locs: Vec<String> = root
        .children()
        .filter(|node| node.has_tag_name(entry))
        .filter_map(|node| node.children().find(|child| child.has_tag_name("loc")))
        .filter_map(|loc| loc.text())
        .map(str::trim)
        .filter(|loc| !loc.is_empty())
        .take(MAX_ENTRIES)
        .map(str::to_owned)
        .collect();
    Ok(if is_index {
        Sitemap::Index(locs)
    } else {
        Sitemap::Pages(locs)
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn urlsets_and_indexes_are_read() {
        let urlset = r#"<?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc> https://x.test/a </loc><lastmod>2026-01-01</lastmod></url>
              <url><loc>https://x.test/b?x=1&amp;y=2</loc></url>
              <url><lastmod>2026-01-01</lastmod></url>
            </urlset>"#;
        assert_eq!(
            parse(urlset.as_bytes(), 1 << 20).unwrap(),
            Sitemap::Pages(vec![
                "https://x.test/a".into(),
                "https://x.test/b?x=1&y=2".into()
            ])
        );
        let index = r#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <sitemap><loc>https://x.test/s1.xml</loc></sitemap></sitemapindex>"#;
        assert_eq!(
            parse(index.as_bytes(), 1 << 20).unwrap(),
            Sitemap::Index(vec!["https://x.test/s1.xml".into()])
        );
    }

    #[test]
    fn gzip_is_inflated_within_the_cap_and_junk_is_refused() {
        let xml = "<urlset><url><loc>https://x.test/a</loc></url></urlset>";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(xml.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            parse(&gz, 1 << 20).unwrap(),
            Sitemap::Pages(vec!["https://x.test/a".into()])
        );
        assert!(parse(&gz, 10).unwrap_err().contains("more than 10 bytes"));
        assert!(parse(b"<html></html>", 100).unwrap_err().contains("<html>"));
        assert!(parse(b"not xml", 100).is_err());
    }
}
