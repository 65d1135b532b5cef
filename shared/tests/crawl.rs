//! The crawler against real HTTP servers on loopback, reached only through the SSRF guard
//! (allowlisted for 127.0.0.1 alone): site crawls, include/exclude, robots.txt, sitemaps,
//! caps, refused redirects and conditional re-sync.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use chatpad::knowledge::crawl::{
    Crawl, CrawlError, CrawlEvent, CrawlLimits, CrawlMode, CrawlReport, CrawlSettings, PageError,
    PageStatus, PreviousPage, StopReason, crawl,
};
use chatpad::net::{
    BlockKind, FetchError, GuardConfig, GuardedClient, StaticResolver, Url, parse_allow_list,
};
use chatpad::testing::http::{Reply, Server, not_found, redirect, respond};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Pages served by the loopback server (`chatpad::testing::http`).

/// An HTML page with a title and the given links.
fn page(title: &str, links: &[&str]) -> Reply {
    let anchors: String = links
        .iter()
        .map(|href| format!(r#"<a href="{href}">{href}</a> "#))
        .collect();
    respond(
        200,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{anchors}</body></html>"
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Crawling helpers.

/// The guard, allowing only 127.0.0.1 (not other loopback addresses, not `::1`).
fn client() -> GuardedClient {
    GuardedClient::new(GuardConfig {
        allow: parse_allow_list("127.0.0.1/32").unwrap(),
        ..GuardConfig::default()
    })
    .unwrap()
}

/// No politeness pause: the servers are ours.
fn limits() -> CrawlLimits {
    CrawlLimits {
        min_delay: Duration::ZERO,
        ..CrawlLimits::default()
    }
}

fn site(max_depth: u32) -> CrawlSettings {
    CrawlSettings {
        mode: CrawlMode::Site,
        max_depth,
        ..CrawlSettings::default()
    }
}

async fn run(server: &Server, start: &str, settings: &CrawlSettings) -> CrawlReport {
    crawl(
        &client(),
        &server.url(start),
        settings,
        &HashMap::new(),
        &limits(),
    )
    .await
    .unwrap()
}

async fn run_err(server: &Server, start: &str, settings: &CrawlSettings) -> CrawlError {
    crawl(
        &client(),
        &server.url(start),
        settings,
        &HashMap::new(),
        &limits(),
    )
    .await
    .unwrap_err()
}

/// `(path, depth)` of each page returned.
fn pages(report: &CrawlReport) -> Vec<(String, u32)> {
    report
        .pages
        .iter()
        .map(|p| (p.url.path().to_owned(), p.depth))
        .collect()
}

fn owned(list: &[(&str, u32)]) -> Vec<(String, u32)> {
    list.iter().map(|(p, d)| (p.to_string(), *d)).collect()
}

fn sha256_hex(body: &[u8]) -> String {
    format!("{:x}", Sha256::digest(body))
}

// ---------------------------------------------------------------------------------------------
// Site crawls.

#[tokio::test]
async fn site_crawl_goes_breadth_first_to_max_depth_on_the_same_site() {
    let server = Server::start(|seen, addr| match seen.path.as_str() {
        "/" => page(
            "Home",
            &[
                "/a",
                "b",
                "/a#section",
                "/report.pdf",
                "mailto:help@example.com",
                &format!("http://127.0.0.2:{}/elsewhere", addr.port()),
                "https://example.com/",
            ],
        ),
        "/a" => page("A", &["/a/deep", "/"]),
        "/b" => page("B", &["/a"]),
        "/a/deep" => page("Deep", &["/a/deeper"]),
        "/a/deeper" => page("Deeper", &[]),
        _ => not_found(),
    })
    .await;
    let report = run(&server, "/", &site(2)).await;
    assert_eq!(
        pages(&report),
        owned(&[("/", 0), ("/a", 1), ("/b", 1), ("/a/deep", 2)])
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        server.paths(),
        ["/robots.txt", "/", "/a", "/b", "/a/deep"],
        "each page once; no file, other host or fourth level"
    );
    let home = &report.pages[0];
    assert_eq!(home.status, PageStatus::New);
    assert_eq!(
        home.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(home.content_hash, sha256_hex(&home.body));
    assert!(String::from_utf8_lossy(&home.body).contains("<h1>Home</h1>"));
    assert_eq!(
        home.links,
        [server.url("/a").to_string(), server.url("/b").to_string()],
        "links kept for the next sync: same site, no files, no fragments"
    );
    assert!(
        server.requests()[1]
            .header("accept")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(report.summary.stopped, None);
}

#[tokio::test]
async fn page_mode_fetches_only_the_given_page() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/only" => page("Only", &["/other"]),
        _ => not_found(),
    })
    .await;
    let report = run(&server, "/only", &CrawlSettings::default()).await;
    assert_eq!(pages(&report), owned(&[("/only", 0)]));
    assert_eq!(server.paths(), ["/robots.txt", "/only"]);
}

#[tokio::test]
async fn include_and_exclude_patterns_choose_the_pages() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" => page("Home", &["/docs/", "/blog/post", "/docs/private/keys"]),
        "/docs/" => page("Docs", &["/docs/guide/install", "/pricing"]),
        "/docs/guide/install" => page("Install", &[]),
        "/docs/private/keys" | "/blog/post" | "/pricing" => page("Should not be fetched", &[]),
        _ => not_found(),
    })
    .await;
    let settings = CrawlSettings {
        include: vec!["/docs/*".into()],
        exclude: vec!["/docs/private/*".into()],
        ..site(3)
    };
    let report = run(&server, "/", &settings).await;
    assert_eq!(
        pages(&report),
        owned(&[("/docs/", 1), ("/docs/guide/install", 2)]),
        "the start page is read for its links but not returned"
    );
    assert_eq!(
        server.paths(),
        ["/robots.txt", "/", "/docs/", "/docs/guide/install"]
    );
}

#[tokio::test]
async fn max_pages_caps_the_crawl() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" => {
            let links: Vec<String> = (0..20).map(|i| format!("/p{i}")).collect();
            let links: Vec<&str> = links.iter().map(String::as_str).collect();
            page("Home", &links)
        }
        "/robots.txt" => not_found(),
        other => page(other, &[]),
    })
    .await;
    let settings = CrawlSettings {
        max_pages: 5,
        ..site(1)
    };
    let report = run(&server, "/", &settings).await;
    assert_eq!(report.pages.len(), 5);
    assert_eq!(report.summary.pages, 5);
    assert_eq!(report.summary.stopped, Some(StopReason::MaxPages));
    assert_eq!(server.paths().len(), 1 + 5, "robots.txt and five pages");
}

#[tokio::test]
async fn duplicates_are_returned_once() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" => page("Home", &["/index.html", "/old", "/alias", "/guide"]),
        // Same bytes as "/".
        "/index.html" => page("Home", &["/index.html", "/old", "/alias", "/guide"]),
        "/old" => redirect(301, "/guide"),
        "/guide" => page("Guide", &[]),
        "/alias" => respond(
            200,
            "text/html",
            r#"<html><head><link rel="canonical" href="/guide"></head><body>Guide, printable</body></html>"#,
        ),
        _ => not_found(),
    })
    .await;
    let report = run(&server, "/", &site(1)).await;
    assert_eq!(pages(&report), owned(&[("/", 0), ("/guide", 1)]));
    assert_eq!(report.summary.duplicates, 2, "{:?}", report.summary);
    assert_eq!(
        server.paths(),
        [
            "/robots.txt",
            "/",
            "/index.html",
            "/old",
            "/guide",
            "/alias"
        ],
        "the redirect's target is not fetched again"
    );
}

#[tokio::test]
async fn failed_pages_are_reported_and_the_crawl_goes_on() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" => page("Home", &["/gone", "/data", "/notes", "/ok"]),
        "/data" => respond(200, "application/json", "{}"),
        "/notes" => respond(200, "text/plain", "plain notes"),
        "/ok" => page("OK", &[]),
        _ => not_found(),
    })
    .await;
    let report = run(&server, "/", &site(1)).await;
    assert_eq!(
        pages(&report),
        owned(&[("/", 0), ("/notes", 1), ("/ok", 1)])
    );
    let failures: Vec<_> = report
        .failures
        .iter()
        .map(|f| {
            (
                Url::parse(&f.url).unwrap().path().to_owned(),
                f.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [
            ("/gone".to_owned(), "HTTP 404 Not Found"),
            (
                "/data".to_owned(),
                "not a web page (Content-Type application/json)"
            ),
        ]
    );
    assert_eq!(report.summary.failed, 2);
}

// ---------------------------------------------------------------------------------------------
// robots.txt

#[tokio::test]
async fn robots_txt_disallow_is_honoured() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/robots.txt" => respond(
            200,
            "text/plain",
            "User-agent: *\nDisallow: /\n\nUser-agent: ChatPad\nDisallow: /private\nAllow: /private/press\n",
        ),
        "/" => page("Home", &["/private/x", "/private/press", "/public"]),
        "/private/x" => page("Secret", &[]),
        other => page(other, &[]),
    })
    .await;
    let report = run(&server, "/", &site(1)).await;
    assert_eq!(
        pages(&report),
        owned(&[("/", 0), ("/private/press", 1), ("/public", 1)])
    );
    assert_eq!(report.summary.disallowed_by_robots, 1);
    assert!(!server.paths().contains(&"/private/x".to_owned()));
}

#[tokio::test]
async fn robots_txt_disallowing_the_start_page_fails_the_source() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/robots.txt" => respond(200, "text/plain", "User-agent: *\nDisallow: /\n"),
        _ => page("Home", &[]),
    })
    .await;
    let err = run_err(&server, "/", &site(1)).await;
    assert!(
        matches!(err, CrawlError::Start(PageError::Robots { .. })),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the page could not be crawled: robots.txt of 127.0.0.1 does not allow crawling this page"
    );
    assert_eq!(server.paths(), ["/robots.txt"]);
}

#[tokio::test]
async fn robots_txt_server_error_means_nothing_is_crawled() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/robots.txt" => respond(503, "text/plain", "down"),
        _ => page("Home", &[]),
    })
    .await;
    let err = run_err(&server, "/", &site(1)).await;
    assert!(
        err.to_string().contains("robots.txt answered HTTP 503"),
        "{err}"
    );
    assert_eq!(server.paths(), ["/robots.txt"]);
}

// ---------------------------------------------------------------------------------------------
// Sitemaps

fn gzip(data: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

fn urlset(base: &str, paths: &[&str]) -> String {
    let urls: String = paths
        .iter()
        .map(|p| format!("<url><loc>{base}{p}</loc><lastmod>2026-01-01</lastmod></url>"))
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>"#
    )
}

#[tokio::test]
async fn a_sitemap_index_and_its_sitemaps_list_the_pages() {
    let server = Server::start(|seen, addr| {
        let base = format!("http://{addr}");
        match seen.path.as_str() {
            "/robots.txt" => respond(
                200,
                "text/plain",
                format!("User-agent: *\nDisallow: /hidden\nSitemap: {base}/sitemap_index.xml\n"),
            ),
            "/sitemap_index.xml" => respond(
                200,
                "application/xml",
                format!(
                    r#"<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
                    <sitemap><loc>{base}/sitemap-docs.xml</loc></sitemap>
                    <sitemap><loc>{base}/sitemap-blog.xml.gz</loc></sitemap>
                    <sitemap><loc>{base}/sitemap-missing.xml</loc></sitemap>
                    </sitemapindex>"#
                ),
            ),
            "/sitemap-docs.xml" => respond(
                200,
                "text/xml",
                urlset(&base, &["/docs/a", "/docs/b", "/hidden/c"]).replace(
                    "</urlset>",
                    "<url><loc>https://example.com/x</loc></url></urlset>",
                ),
            ),
            "/sitemap-blog.xml.gz" => respond(
                200,
                "application/gzip",
                gzip(&urlset(&base, &["/blog/1", "/docs/a"])),
            ),
            "/docs/a" => page("A", &["/not-followed"]),
            "/docs/b" | "/blog/1" => page(&seen.path, &[]),
            _ => not_found(),
        }
    })
    .await;
    let settings = CrawlSettings {
        mode: CrawlMode::Sitemap,
        ..CrawlSettings::default()
    };
    // The site's root: the sitemap is found through robots.txt.
    let report = run(&server, "/", &settings).await;
    assert_eq!(
        pages(&report),
        owned(&[("/docs/a", 0), ("/docs/b", 0), ("/blog/1", 0)])
    );
    let failures: Vec<_> = report
        .failures
        .iter()
        .map(|f| {
            (
                Url::parse(&f.url).unwrap().path().to_owned(),
                f.reason.clone(),
            )
        })
        .collect();
    assert_eq!(
        failures,
        [(
            "/sitemap-missing.xml".to_owned(),
            "HTTP 404 Not Found".to_owned()
        )]
    );
    assert_eq!(report.summary.disallowed_by_robots, 1);
    assert!(!server.paths().contains(&"/not-followed".to_owned()));

    // The sitemap's own URL, with include: only its matching pages.
    let settings = CrawlSettings {
        include: vec!["/docs/*".into()],
        ..settings
    };
    let report = run(&server, "/sitemap-docs.xml", &settings).await;
    assert_eq!(pages(&report), owned(&[("/docs/a", 0), ("/docs/b", 0)]));
}

#[tokio::test]
async fn a_missing_sitemap_fails_the_source() {
    let server = Server::start(|_, _| not_found()).await;
    let settings = CrawlSettings {
        mode: CrawlMode::Sitemap,
        ..CrawlSettings::default()
    };
    let err = run_err(&server, "/", &settings).await;
    assert_eq!(
        err.to_string(),
        "the sitemap could not be read: HTTP 404 Not Found"
    );
    assert_eq!(server.paths(), ["/robots.txt", "/sitemap.xml"]);
}

// ---------------------------------------------------------------------------------------------
// The guard: refusals and redirects.

#[tokio::test]
async fn a_redirect_to_a_private_address_mid_crawl_is_refused() {
    let server = Server::start(|seen, addr| match seen.path.as_str() {
        "/" => page("Home", &["/metadata", "/loopback", "/ok"]),
        "/metadata" => redirect(302, "http://169.254.169.254/latest/meta-data/"),
        // Loopback, but not the allowlisted address.
        "/loopback" => redirect(307, format!("http://127.0.0.2:{}/", addr.port())),
        "/ok" => page("OK", &[]),
        _ => not_found(),
    })
    .await;
    let report = run(&server, "/", &site(1)).await;
    assert_eq!(pages(&report), owned(&[("/", 0), ("/ok", 1)]));
    let reasons: Vec<_> = report.failures.iter().map(|f| f.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "169.254.169.254 resolves to 169.254.169.254, a link-local address, which is not allowed",
            "127.0.0.2 resolves to 127.0.0.2, a loopback address, which is not allowed",
        ]
    );
}

#[tokio::test]
async fn a_start_url_on_a_private_address_fails_the_source() {
    let server = Server::start(|_, _| page("Home", &[])).await;
    let guard = GuardedClient::new(GuardConfig::default()).unwrap();
    let err = crawl(
        &guard,
        &server.url("/"),
        &site(1),
        &HashMap::new(),
        &limits(),
    )
    .await
    .unwrap_err();
    match err.fetch_error() {
        Some(FetchError::BlockedAddress { reason, .. }) => {
            assert_eq!(reason.kind, BlockKind::Loopback)
        }
        other => panic!("expected a blocked address, got {other:?} from {err:?}"),
    }
    assert!(server.paths().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn an_endless_redirect_chain_ends_with_a_clear_error() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/robots.txt" => not_found(),
        path => redirect(302, format!("{path}x")),
    })
    .await;
    let err = run_err(&server, "/loop", &site(1)).await;
    assert!(
        matches!(
            err.fetch_error(),
            Some(FetchError::TooManyRedirects { limit: 5 })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the page could not be crawled: more than 5 redirects"
    );
}

#[tokio::test]
async fn a_redirect_off_the_site_fails_that_page_but_moves_the_start_page() {
    let server = Server::start(
        |seen, addr| match (seen.header("host"), seen.path.as_str()) {
            (Some(host), "/") if host.starts_with("www.test") => page("Home", &["/moved", "/a"]),
            (Some(host), "/a") if host.starts_with("www.test") => page("A", &[]),
            (Some(host), "/moved") if host.starts_with("www.test") => {
                redirect(301, format!("http://other.test:{}/", addr.port()))
            }
            // The bare name sends everything to www.
            (Some(host), path) if host.starts_with("site.test") => {
                redirect(301, format!("http://www.test:{}{path}", addr.port()))
            }
            _ => not_found(),
        },
    )
    .await;
    let loopback = ["127.0.0.1".parse().unwrap()];
    let resolver = StaticResolver::new()
        .with("site.test", loopback)
        .with("www.test", loopback)
        .with("other.test", loopback);
    let guard = GuardedClient::with_resolver(
        GuardConfig {
            allow: parse_allow_list("127.0.0.1/32").unwrap(),
            ..GuardConfig::default()
        },
        Arc::new(resolver),
    )
    .unwrap();
    let port = server.addr.port();
    let start = Url::parse(&format!("http://site.test:{port}/")).unwrap();
    let report = crawl(&guard, &start, &site(1), &HashMap::new(), &limits())
        .await
        .unwrap();
    let urls: Vec<_> = report.pages.iter().map(|p| p.url.to_string()).collect();
    assert_eq!(
        urls,
        [
            format!("http://www.test:{port}/"),
            format!("http://www.test:{port}/a")
        ]
    );
    assert_eq!(report.failures.len(), 1);
    assert_eq!(
        report.failures[0].url,
        format!("http://www.test:{port}/moved")
    );
    assert_eq!(
        report.failures[0].reason,
        "redirected off the site, to other.test"
    );
    let hosts_and_paths: Vec<_> = server
        .requests()
        .iter()
        .map(|s| format!("{} {}", s.header("host").unwrap_or_default(), s.path))
        .collect();
    assert_eq!(
        hosts_and_paths,
        [
            format!("site.test:{port} /robots.txt"),
            format!("www.test:{port} /robots.txt"),
            format!("site.test:{port} /"),
            format!("www.test:{port} /"),
            format!("www.test:{port} /robots.txt"),
            format!("www.test:{port} /moved"),
            format!("other.test:{port} /"),
            format!("www.test:{port} /a"),
        ],
        "robots.txt is read again for the site the start page moved to"
    );
}

#[tokio::test]
async fn a_crawl_past_its_deadline_stops_with_what_it_has() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" => page("Home", &["/slow", "/after"]),
        "/slow" => Reply::Hang,
        "/after" => page("After", &[]),
        _ => not_found(),
    })
    .await;
    let limits = CrawlLimits {
        deadline: Duration::from_secs(2),
        ..limits()
    };
    let report = crawl(
        &client(),
        &server.url("/"),
        &site(1),
        &HashMap::new(),
        &limits,
    )
    .await
    .unwrap();
    assert_eq!(pages(&report), owned(&[("/", 0)]));
    assert_eq!(report.summary.stopped, Some(StopReason::Deadline));
    assert!(!server.paths().contains(&"/after".to_owned()));
}

// ---------------------------------------------------------------------------------------------
// Re-sync

#[tokio::test]
async fn resync_sends_conditional_requests_and_reports_what_changed() {
    let same_body = "<html><body>Same as before</body></html>";
    let server = Server::start(move |seen, _| match seen.path.as_str() {
        "/" if seen.header("if-none-match") == Some("\"v1\"") => Reply::Respond {
            status: 304,
            headers: vec![("ETag", "\"v1\"".into())],
            body: Vec::new(),
        },
        "/" => page("Home", &["/same", "/changed", "/new"]),
        "/same" => respond(200, "text/html", same_body),
        "/changed" => Reply::Respond {
            status: 200,
            headers: vec![
                ("Content-Type", "text/html".into()),
                ("ETag", "\"c2\"".into()),
                ("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT".into()),
            ],
            body: b"<html><body>New text</body></html>".to_vec(),
        },
        "/new" => page("New", &[]),
        _ => not_found(),
    })
    .await;
    let url = |p: &str| server.url(p).to_string();
    let previous = HashMap::from([
        (
            url("/"),
            PreviousPage {
                etag: Some("\"v1\"".into()),
                last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
                content_hash: "hash-of-home".into(),
                links: Some(vec![url("/same"), url("/changed"), url("/new")]),
            },
        ),
        (
            url("/same"),
            PreviousPage {
                content_hash: sha256_hex(same_body.as_bytes()),
                ..PreviousPage::default()
            },
        ),
        (
            url("/changed"),
            PreviousPage {
                etag: Some("\"c1\"".into()),
                content_hash: sha256_hex(b"<html><body>Old text</body></html>"),
                ..PreviousPage::default()
            },
        ),
    ]);
    let report = crawl(&client(), &server.url("/"), &site(1), &previous, &limits())
        .await
        .unwrap();
    let statuses: Vec<_> = report
        .pages
        .iter()
        .map(|p| (p.url.path(), p.status, p.body.is_empty()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("/", PageStatus::Unchanged, true),
            ("/same", PageStatus::Unchanged, true),
            ("/changed", PageStatus::Changed, false),
            ("/new", PageStatus::New, false),
        ]
    );
    let home = &report.pages[0];
    assert_eq!(home.content_hash, "hash-of-home");
    assert_eq!(home.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        home.last_modified.as_deref(),
        Some("Tue, 01 Dec 2026 10:00:00 GMT")
    );
    assert_eq!(home.links.len(), 3, "the stored links are kept");
    let changed = &report.pages[2];
    assert_eq!(changed.etag.as_deref(), Some("\"c2\""));
    assert_eq!(
        changed.last_modified.as_deref(),
        Some("Wed, 02 Dec 2026 10:00:00 GMT")
    );

    let requests = server.requests();
    let sent = |path: &str, header: &str| {
        requests
            .iter()
            .find(|s| s.path == path)
            .and_then(|s| s.header(header).map(str::to_owned))
    };
    assert_eq!(sent("/", "if-none-match").as_deref(), Some("\"v1\""));
    assert_eq!(
        sent("/", "if-modified-since").as_deref(),
        Some("Tue, 01 Dec 2026 10:00:00 GMT")
    );
    assert_eq!(sent("/changed", "if-none-match").as_deref(), Some("\"c1\""));
    assert_eq!(sent("/new", "if-none-match"), None);
}

#[tokio::test]
async fn without_stored_links_a_site_crawl_fetches_the_start_page_in_full() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" if seen.header("if-none-match").is_some() => Reply::Respond {
            status: 304,
            headers: Vec::new(),
            body: Vec::new(),
        },
        "/" => page("Home", &["/child"]),
        "/child" => page("Child", &[]),
        _ => not_found(),
    })
    .await;
    let home = page("Home", &["/child"]);
    let Reply::Respond { body, .. } = home else {
        unreachable!()
    };
    let previous = HashMap::from([(
        server.url("/").to_string(),
        PreviousPage {
            etag: Some("\"v1\"".into()),
            content_hash: sha256_hex(&body),
            ..PreviousPage::default()
        },
    )]);
    let report = crawl(&client(), &server.url("/"), &site(1), &previous, &limits())
        .await
        .unwrap();
    let statuses: Vec<_> = report
        .pages
        .iter()
        .map(|p| (p.url.path(), p.status))
        .collect();
    assert_eq!(
        statuses,
        [("/", PageStatus::Unchanged), ("/child", PageStatus::New)],
        "unchanged by its hash, and its links were followed"
    );
}

// ---------------------------------------------------------------------------------------------
// The streaming form.

#[tokio::test]
async fn pages_can_be_taken_one_at_a_time() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/" => page("Home", &["/a", "/b"]),
        "/a" | "/b" => page(&seen.path, &[]),
        _ => not_found(),
    })
    .await;
    let client = client();
    let previous = HashMap::new();
    let mut crawl = Crawl::start(&client, &server.url("/"), &site(1), &previous, limits())
        .await
        .unwrap();
    assert_eq!(
        server.paths(),
        ["/robots.txt", "/"],
        "start reads only the start page"
    );
    let Some(CrawlEvent::Page(first)) = crawl.next().await else {
        panic!("the start page comes first");
    };
    assert_eq!(first.url.path(), "/");
    let Some(CrawlEvent::Page(second)) = crawl.next().await else {
        panic!("then /a");
    };
    assert_eq!(second.url.path(), "/a");
    assert_eq!(
        server.paths().len(),
        3,
        "/b is not fetched before it is asked for"
    );
    drop(crawl);
}

#[test]
fn the_crawl_future_can_move_between_threads() {
    fn assert_send<T: Send>(_: &T) {}
    let client = GuardedClient::new(GuardConfig::default()).unwrap();
    let previous = HashMap::new();
    let start = Url::parse("https://example.com/").unwrap();
    let settings = CrawlSettings::default();
    let limits = CrawlLimits::default();
    let future = crawl(&client, &start, &settings, &previous, &limits);
    assert_send(&future);
}

#[tokio::test]
async fn invalid_settings_and_urls_are_refused_before_any_request() {
    let server = Server::start(|_, _| page("Home", &[])).await;
    let settings = CrawlSettings {
        max_pages: 0,
        ..site(1)
    };
    let err = run_err(&server, "/", &settings).await;
    assert!(matches!(err, CrawlError::Settings(_)), "{err:?}");
    let err = crawl(
        &client(),
        &Url::parse("ftp://127.0.0.1/").unwrap(),
        &site(1),
        &HashMap::new(),
        &limits(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CrawlError::InvalidUrl), "{err:?}");
    assert!(server.paths().is_empty());
}
