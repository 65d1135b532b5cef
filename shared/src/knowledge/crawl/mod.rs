//! The web crawler of URL sources: one page, a site crawl, or a sitemap, fetched only through
//! the SSRF guard ([`GuardedClient`]).
//!
//! - **Scope**: a site crawl stays on the start page's site (scheme, host and port; where the
//!   start URL redirects to, if elsewhere), breadth-first up to `maxDepth` links away; sitemap
//!   entries elsewhere are dropped. `include` / `exclude` globs apply to the URL path
//!   ([`CrawlSettings`]).
//! - **robots.txt** of the site is fetched once, through the guard, and read for the token
//!   [`USER_AGENT_TOKEN`] (RFC 9309: 4xx = everything allowed; 5xx or unreachable = nothing
//!   allowed). `Crawl-delay` is honoured up to [`CrawlLimits::max_crawl_delay`]; requests are
//!   always at least [`CrawlLimits::min_delay`] apart. Requests go one at a time.
//! - **Pages** are HTML or plain text by `Content-Type` (links to files such as `.pdf` or
//!   `.png` are not fetched at all); the body is capped by the guard's `max_body_bytes`.
//!   One page, one report: URLs are normalised (no fragment), a redirect to a page already
//!   fetched, a body identical to one already returned, or a page whose
//!   `<link rel="canonical">` was already returned, is skipped as a duplicate.
//! - **Re-sync**: for each URL the caller passes what the last sync stored
//!   ([`PreviousPage`]). The request is conditional (`If-None-Match`, `If-Modified-Since`);
//!   a 304, or a body with the same SHA-256, is reported [`PageStatus::Unchanged`] without a
//!   body, so it is not embedded again. A 304 has no links to follow, so in a site crawl the
//!   request is conditional only when the previous sync stored the page's links (or the page
//!   is as deep as the crawl goes).
//! - **Ends**: at `maxPages` returned pages, at twice that many page requests (plus 10), or at
//!   [`CrawlLimits::deadline`], whichever comes first ([`CrawlSummary::stopped`]).
//! - **Failures** of single pages (404, timeout, refused redirect, not a page) are reported
//!   per URL and the crawl goes on; only a failure of the start URL (or of every sitemap)
//!   fails the whole source ([`CrawlError`]).
//!
//! Two ways to run it: [`crawl`] returns everything at the end; [`Crawl`] hands out one
//! [`CrawlEvent`] at a time, so the ingest worker can extract and embed each page while the
//! next one is fetched, and keep only one body in memory.

mod links;
mod robots;
mod settings;
mod sitemap;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use http::StatusCode;
use http::header::{
    ACCEPT, CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue, IF_MODIFIED_SINCE,
    IF_NONE_MATCH, LAST_MODIFIED,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::net::{FetchError, FetchRequest, GuardedClient, Url};
use links::{PageKind, looks_like_a_file, normalize, page_kind};
use robots::Robots;
pub use robots::USER_AGENT_TOKEN;
use settings::Scope;
pub use settings::{
    CrawlLimits, CrawlMode, CrawlSettings, DEFAULT_MAX_DEPTH, DEFAULT_MAX_PAGES, MAX_DEPTH_LIMIT,
    MAX_PAGES_LIMIT, SettingsError,
};
use sitemap::Sitemap;

/// `Accept` of page requests: pages first, anything else reluctantly.
const ACCEPT_PAGES: &str = "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1";
/// `Accept` of sitemap requests.
const ACCEPT_SITEMAPS: &str = "application/xml,text/xml;q=0.9,*/*;q=0.1";

/// What the previous sync stored about one URL, keyed by the URL it was reported under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviousPage {
    /// The `ETag` it was served with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// The `Last-Modified` it was served with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// [`CrawledPage::content_hash`] of its body.
    pub content_hash: String,
    /// [`CrawledPage::links`], when stored: lets a site crawl follow a page answered 304.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub links: Option<Vec<String>>,
}

/// A page's state compared to the previous sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PageStatus {
    /// Not known from the previous sync.
    New,
    /// Known, with a different body.
    Changed,
    /// Known, and the same (304 Not Modified, or the same SHA-256): nothing to re-embed.
    Unchanged,
}

/// One page to (re-)ingest, or to keep as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrawledPage {
    /// Where the page was found (after redirects), normalised: the key of [`PreviousPage`].
    pub url: Url,
    /// New, changed or unchanged since the previous sync.
    pub status: PageStatus,
    /// Its `ETag` (for the next sync's `If-None-Match`).
    pub etag: Option<String>,
    /// Its `Last-Modified` (for the next sync's `If-Modified-Since`).
    pub last_modified: Option<String>,
    /// SHA-256 of the body, lower-case hex (the previous one when answered 304).
    pub content_hash: String,
    /// Its `Content-Type` (`None` when a 304 did not repeat it).
    pub content_type: Option<String>,
    /// The body (HTML or text, undecoded); empty when unchanged.
    pub body: Vec<u8>,
    /// Links from the start page to here: 0 for the start page and sitemap entries.
    pub depth: u32,
    /// The page's links on the same site (files excluded), to store for the next sync.
    pub links: Vec<String>,
}

/// A page that could not be crawled; the crawl went on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFailure {
    /// The URL as it was requested.
    pub url: String,
    /// Why, for the customer ("HTTP 404 Not Found", "… resolves to … which is not allowed").
    pub reason: String,
}

/// What [`Crawl::next`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrawlEvent {
    /// A page to ingest (or keep).
    Page(CrawledPage),
    /// A page that failed.
    Failed(PageFailure),
}

/// Why a crawl ended before its queue was empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    /// `maxPages` pages were returned.
    MaxPages,
    /// Too many requests failed or found duplicates (twice `maxPages` plus 10).
    MaxRequests,
    /// [`CrawlLimits::deadline`] passed.
    Deadline,
}

/// Counts of what a crawl did, for logs and the source's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CrawlSummary {
    /// HTTP requests made (robots.txt and sitemaps included).
    pub requests: usize,
    /// Pages returned.
    pub pages: usize,
    /// Pages that failed.
    pub failed: usize,
    /// URLs robots.txt did not allow.
    pub disallowed_by_robots: usize,
    /// Pages skipped as duplicates of another (redirect target, same body, canonical).
    pub duplicates: usize,
    /// Set when the crawl stopped with pages still queued.
    pub stopped: Option<StopReason>,
}

/// Everything one crawl found.
#[derive(Debug, Clone, Default)]
pub struct CrawlReport {
    /// Pages in the order they were fetched (breadth-first).
    pub pages: Vec<CrawledPage>,
    /// Pages that failed.
    pub failures: Vec<PageFailure>,
    /// Counts, and why the crawl stopped early if it did.
    pub summary: CrawlSummary,
}

/// Why one page could not be crawled.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// The guard refused the URL or a redirect, or the fetch failed (network, timeout, size).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The server answered with an error status.
    #[error("HTTP {0}")]
    Status(StatusCode),
    /// The response is not HTML or text.
    #[error("not a web page (Content-Type {content_type})")]
    NotAPage { content_type: String },
    /// A redirect left the site.
    #[error("redirected off the site, to {host}")]
    OffSite { host: String },
    /// robots.txt does not allow it.
    #[error("{reason}")]
    Robots { reason: String },
    /// A 304 to a request that was not conditional.
    #[error("HTTP 304 Not Modified to an unconditional request")]
    UnexpectedNotModified,
    /// The crawl's deadline passed first.
    #[error("the crawl's time limit was reached")]
    Deadline,
}

/// Why a whole source could not be crawled.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    /// The settings are invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The start URL is not an http(s) URL.
    #[error("the URL must be an http or https URL")]
    InvalidUrl,
    /// The start page could not be crawled.
    #[error("the page could not be crawled: {0}")]
    Start(#[source] PageError),
    /// No sitemap could be read, or it lists no page that may be crawled.
    #[error("{reason}")]
    Sitemap { reason: String },
}

impl CrawlError {
    /// The guard's error, when the start URL failed in the fetch.
    pub fn fetch_error(&self) -> Option<&FetchError> {
        match self {
            CrawlError::Start(PageError::Fetch(err)) => Some(err),
            _ => None,
        }
    }
}

/// Crawls `start` as `settings` say and returns every page at the end. Bodies are held until
/// then: the ingest worker should rather use [`Crawl`] and process pages as they arrive.
pub async fn crawl(
    client: &GuardedClient,
    start: &Url,
    settings: &CrawlSettings,
    previous: &HashMap<String, PreviousPage>,
    limits: &CrawlLimits,
) -> Result<CrawlReport, CrawlError> {
    let mut crawl = Crawl::start(client, start, settings, previous, limits.clone()).await?;
    let mut report = CrawlReport::default();
    while let Some(event) = crawl.next().await {
        match event {
            CrawlEvent::Page(page) => report.pages.push(page),
            CrawlEvent::Failed(failure) => report.failures.push(failure),
        }
    }
    report.summary = crawl.summary().clone();
    Ok(report)
}

/// A crawl in progress: [`Crawl::start`] checks the source (robots.txt, the start page or the
/// sitemap) and fails the whole source if that fails; [`Crawl::next`] then hands out one page
/// or failure at a time, fetching as needed, until `None`.
pub struct Crawl<'a> {
    client: &'a GuardedClient,
    previous: &'a HashMap<String, PreviousPage>,
    limits: CrawlLimits,
    mode: CrawlMode,
    scope: Scope,
    max_pages: usize,
    max_depth: u32,
    max_page_requests: usize,
    /// The site's root URL: pages elsewhere are not crawled.
    site: Url,
    robots: Robots,
    delay: Duration,
    deadline: Instant,
    last_request: Option<Instant>,
    /// Pages to fetch, with their depth.
    queue: VecDeque<(Url, u32)>,
    /// URLs queued or fetched: each is queued once.
    seen: HashSet<String>,
    /// URLs requested or reached by redirect.
    fetched: HashSet<String>,
    /// URLs returned as pages.
    returned: HashSet<String>,
    /// Content hashes of pages returned.
    hashes: HashSet<String>,
    page_requests: usize,
    /// Events produced by `start` (the start page, sitemap failures), handed out first.
    ready: VecDeque<CrawlEvent>,
    summary: CrawlSummary,
}

impl std::fmt::Debug for Crawl<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crawl")
            .field("site", &self.site.as_str())
            .field("mode", &self.mode)
            .field("queued", &self.queue.len())
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl<'a> Crawl<'a> {
    /// Validates the settings, reads robots.txt and the start page (or the sitemaps).
    #[tracing::instrument(name = "crawl", skip_all, fields(host = start.host_str(), mode = ?settings.mode))]
    pub async fn start(
        client: &'a GuardedClient,
        start: &Url,
        settings: &CrawlSettings,
        previous: &'a HashMap<String, PreviousPage>,
        limits: CrawlLimits,
    ) -> Result<Crawl<'a>, CrawlError> {
        let scope = settings.compile()?;
        let start = normalize(start).ok_or(CrawlError::InvalidUrl)?;
        let (max_pages, max_depth) = match settings.mode {
            CrawlMode::Page => (1, 0),
            CrawlMode::Site => (settings.max_pages as usize, settings.max_depth),
            CrawlMode::Sitemap => (settings.max_pages as usize, 0),
        };
        let mut crawl = Crawl {
            client,
            previous,
            deadline: Instant::now() + limits.deadline,
            delay: limits.min_delay,
            limits,
            mode: settings.mode,
            scope,
            max_pages,
            max_depth,
            max_page_requests: 2 * max_pages + 10,
            site: site_root(&start),
            robots: Robots::AllowAll,
            last_request: None,
            queue: VecDeque::new(),
            seen: HashSet::new(),
            fetched: HashSet::new(),
            returned: HashSet::new(),
            hashes: HashSet::new(),
            page_requests: 0,
            ready: VecDeque::new(),
            summary: CrawlSummary::default(),
        };
        if let Some(refused) = crawl.read_robots().await {
            return Err(CrawlError::Start(PageError::Fetch(refused)));
        }
        match crawl.mode {
            CrawlMode::Page | CrawlMode::Site => crawl.start_page(start).await?,
            CrawlMode::Sitemap => crawl.start_sitemap(start).await?,
        }
        Ok(crawl)
    }

    /// The next page or failure; `None` when the crawl is over (see [`Crawl::summary`]).
    pub async fn next(&mut self) -> Option<CrawlEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            if self.summary.stopped.is_some() || self.queue.is_empty() {
                return None;
            }
            let stop = if self.summary.pages >= self.max_pages {
                Some(StopReason::MaxPages)
            } else if self.page_requests >= self.max_page_requests {
                Some(StopReason::MaxRequests)
            } else if Instant::now() >= self.deadline {
                Some(StopReason::Deadline)
            } else {
                None
            };
            if stop.is_some() {
                self.summary.stopped = stop;
                return None;
            }
            let (url, depth) = self.queue.pop_front()?;
            if self.fetched.contains(url.as_str()) {
                continue;
            }
            match self.visit(&url, depth, false).await {
                Ok(Some(page)) => return Some(CrawlEvent::Page(page)),
                Ok(None) => continue,
                Err(PageError::Deadline) => {
                    self.summary.stopped = Some(StopReason::Deadline);
                    return None;
                }
                Err(err) => {
                    tracing::debug!(path = url.path(), error = %err, "page failed");
                    self.summary.failed += 1;
                    return Some(CrawlEvent::Failed(PageFailure {
                        url: url.to_string(),
                        reason: err.to_string(),
                    }));
                }
            }
        }
    }

    /// What the crawl has done so far.
    pub fn summary(&self) -> &CrawlSummary {
        &self.summary
    }

    async fn start_page(&mut self, start: Url) -> Result<(), CrawlError> {
        self.check_robots(&start).map_err(CrawlError::Start)?;
        self.seen.insert(start.to_string());
        if let Some(page) = self
            .visit(&start, 0, true)
            .await
            .map_err(CrawlError::Start)?
        {
            self.ready.push_back(CrawlEvent::Page(page));
        }
        Ok(())
    }

    /// Reads the sitemaps (following index files) and queues their pages.
    async fn start_sitemap(&mut self, start: Url) -> Result<(), CrawlError> {
        if let Some(reason) = self.robots.refusal() {
            return Err(CrawlError::Sitemap {
                reason: reason.to_owned(),
            });
        }
        let mut sitemaps: VecDeque<Url> = if is_sitemap_url(&start) {
            VecDeque::from([start])
        } else {
            let listed: VecDeque<Url> = self
                .robots
                .sitemaps()
                .iter()
                .filter_map(|s| Url::parse(s).ok())
                .filter_map(|s| normalize(&s))
                .filter(|s| s.origin() == self.site.origin())
                .collect();
            if listed.is_empty() {
                VecDeque::from([self.site.join("/sitemap.xml").expect("a valid path")])
            } else {
                listed
            }
        };
        let mut known: HashSet<String> = sitemaps.iter().map(Url::to_string).collect();
        let (mut read, mut first_error) = (0, None);
        let mut attempts = 0;
        while let Some(sitemap_url) = sitemaps.pop_front() {
            if attempts >= self.limits.max_sitemaps {
                break;
            }
            attempts += 1;
            let sitemap = match self.fetch_sitemap(&sitemap_url, read == 0).await {
                Ok(sitemap) => sitemap,
                Err(reason) => {
                    self.summary.failed += 1;
                    first_error.get_or_insert_with(|| reason.clone());
                    self.ready.push_back(CrawlEvent::Failed(PageFailure {
                        url: sitemap_url.to_string(),
                        reason,
                    }));
                    continue;
                }
            };
            read += 1;
            match sitemap {
                Sitemap::Index(locs) => {
                    for loc in locs {
                        if let Some(url) = self.on_site(&loc)
                            && known.insert(url.to_string())
                        {
                            sitemaps.push_back(url);
                        }
                    }
                }
                Sitemap::Pages(locs) => {
                    for loc in locs {
                        if self.queue.len() >= self.max_page_requests {
                            break;
                        }
                        if let Some(url) = self.on_site(&loc) {
                            self.enqueue(url, 0);
                        }
                    }
                }
            }
        }
        if read == 0 {
            // The failures are part of the error now, not events of a crawl that never ran.
            self.ready.clear();
            self.summary.failed = 0;
            return Err(CrawlError::Sitemap {
                reason: format!(
                    "the sitemap could not be read: {}",
                    first_error.unwrap_or_else(|| "no sitemap found".into())
                ),
            });
        }
        if self.queue.is_empty() {
            return Err(CrawlError::Sitemap {
                reason: format!(
                    "the sitemap lists no page on {} that the settings and robots.txt allow",
                    self.site.host_str().unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Fetches and parses one sitemap. The first one may move the crawl to where it redirects.
    async fn fetch_sitemap(&mut self, url: &Url, first: bool) -> Result<Sitemap, String> {
        let request = FetchRequest::get(url.as_str())
            .header(ACCEPT, HeaderValue::from_static(ACCEPT_SITEMAPS));
        let fetched = self.fetch(request).await.map_err(|err| err.to_string())?;
        if !fetched.status.is_success() {
            return Err(PageError::Status(fetched.status).to_string());
        }
        if first && fetched.final_url.origin() != self.site.origin() {
            self.site = site_root(&fetched.final_url);
            if let Some(refused) = self.read_robots().await {
                return Err(refused.to_string());
            }
        }
        sitemap::parse(&fetched.body, self.client.config().max_body_bytes)
    }

    /// Fetches one page and decides what it is: `Ok(None)` when it is skipped (a duplicate,
    /// outside `include`, or disallowed after a redirect).
    async fn visit(
        &mut self,
        url: &Url,
        depth: u32,
        is_start: bool,
    ) -> Result<Option<CrawledPage>, PageError> {
        self.fetched.insert(url.to_string());
        self.page_requests += 1;
        // Without a body there are no links: in a site crawl, ask conditionally only when the
        // previous sync stored the links or none would be followed anyway.
        let conditional = self.previous.get(url.as_str()).filter(|previous| {
            self.mode != CrawlMode::Site || depth >= self.max_depth || previous.links.is_some()
        });
        let mut request =
            FetchRequest::get(url.as_str()).header(ACCEPT, HeaderValue::from_static(ACCEPT_PAGES));
        if let Some(previous) = conditional {
            for (name, value) in [
                (IF_NONE_MATCH, &previous.etag),
                (IF_MODIFIED_SINCE, &previous.last_modified),
            ] {
                if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                    request = request.header(name, value);
                }
            }
        }
        let fetched = self.fetch(request).await?;
        let final_url = normalize(&fetched.final_url).unwrap_or(fetched.final_url);
        if final_url.origin() != self.site.origin() {
            if !is_start {
                return Err(PageError::OffSite {
                    host: final_url.host_str().unwrap_or_default().to_owned(),
                });
            }
            // `example.com` → `www.example.com`: the site is where the start URL leads.
            self.site = site_root(&final_url);
            if let Some(refused) = self.read_robots().await {
                return Err(refused.into());
            }
        }
        if final_url != *url {
            if let Err(err) = self.check_robots(&final_url) {
                if is_start {
                    return Err(err);
                }
                self.summary.disallowed_by_robots += 1;
                return Ok(None);
            }
            self.seen.insert(final_url.to_string());
            if !self.fetched.insert(final_url.to_string()) {
                self.summary.duplicates += 1;
                return Ok(None);
            }
        }
        let header = |name: HeaderName| header_text(&fetched.headers, name);
        let (etag, last_modified, content_type) =
            (header(ETAG), header(LAST_MODIFIED), header(CONTENT_TYPE));

        if fetched.status == StatusCode::NOT_MODIFIED {
            let previous = conditional.ok_or(PageError::UnexpectedNotModified)?;
            let links = previous.links.clone().unwrap_or_default();
            self.follow(links.iter().filter_map(|l| Url::parse(l).ok()), depth);
            let page = CrawledPage {
                url: final_url,
                status: PageStatus::Unchanged,
                etag: etag.or_else(|| previous.etag.clone()),
                last_modified: last_modified.or_else(|| previous.last_modified.clone()),
                content_hash: previous.content_hash.clone(),
                content_type,
                body: Vec::new(),
                depth,
                links,
            };
            return Ok(self.returned(page, is_start));
        }
        if !fetched.status.is_success() {
            return Err(PageError::Status(fetched.status));
        }
        let kind = page_kind(content_type.as_deref(), &fetched.body).ok_or_else(|| {
            PageError::NotAPage {
                content_type: content_type.clone().unwrap_or_else(|| "missing".into()),
            }
        })?;
        let content_hash = format!("{:x}", Sha256::digest(&fetched.body));
        if self.hashes.contains(&content_hash) {
            self.summary.duplicates += 1;
            return Ok(None);
        }
        let found = match kind {
            PageKind::Html => {
                links::extract(&final_url, &fetched.body, self.limits.max_links_per_page)
            }
            PageKind::Text => links::PageLinks::default(),
        };
        if found
            .canonical
            .as_ref()
            .is_some_and(|c| *c != final_url && self.returned.contains(c.as_str()))
        {
            self.summary.duplicates += 1;
            return Ok(None);
        }
        let links: Vec<Url> = found
            .links
            .into_iter()
            .filter(|link| link.origin() == self.site.origin() && !looks_like_a_file(link))
            .collect();
        self.follow(links.iter().cloned(), depth);

        let known = self
            .previous
            .get(final_url.as_str())
            .or_else(|| self.previous.get(url.as_str()));
        let (status, body) = match known {
            None => (PageStatus::New, fetched.body),
            Some(previous) if previous.content_hash == content_hash => {
                (PageStatus::Unchanged, Vec::new())
            }
            Some(_) => (PageStatus::Changed, fetched.body),
        };
        let page = CrawledPage {
            url: final_url,
            status,
            etag,
            last_modified,
            content_hash,
            content_type,
            body,
            depth,
            links: links.iter().map(Url::to_string).collect(),
        };
        Ok(self.returned(page, is_start))
    }

    /// Records `page` as returned, unless it is outside `include` (only the start page of a
    /// site crawl can be: it is read for its links all the same).
    fn returned(&mut self, page: CrawledPage, is_start: bool) -> Option<CrawledPage> {
        self.hashes.insert(page.content_hash.clone());
        let wanted =
            (is_start && self.mode == CrawlMode::Page) || self.scope.wanted(page.url.path());
        if !wanted {
            return None;
        }
        tracing::debug!(path = page.url.path(), status = ?page.status, depth = page.depth, "page crawled");
        self.returned.insert(page.url.to_string());
        self.summary.pages += 1;
        Some(page)
    }

    /// Queues the links of a page at `depth`, in a site crawl that goes deeper.
    fn follow(&mut self, links: impl Iterator<Item = Url>, depth: u32) {
        if self.mode != CrawlMode::Site || depth >= self.max_depth {
            return;
        }
        for link in links {
            if let Some(link) = normalize(&link)
                && link.origin() == self.site.origin()
                && !looks_like_a_file(&link)
            {
                self.enqueue(link, depth + 1);
            }
        }
    }

    /// Queues `url` once, if the settings and robots.txt allow it.
    fn enqueue(&mut self, url: Url, depth: u32) {
        if !self.scope.wanted(url.path()) || !self.seen.insert(url.to_string()) {
            return;
        }
        if !self.robots.allowed(&url) {
            self.summary.disallowed_by_robots += 1;
            return;
        }
        self.queue.push_back((url, depth));
    }

    /// `loc` from a sitemap, if it is a page URL on this site.
    fn on_site(&self, loc: &str) -> Option<Url> {
        Url::parse(loc)
            .ok()
            .and_then(|url| normalize(&url))
            .filter(|url| url.origin() == self.site.origin())
    }

    fn check_robots(&self, url: &Url) -> Result<(), PageError> {
        if let Some(reason) = self.robots.refusal() {
            return Err(PageError::Robots {
                reason: reason.to_owned(),
            });
        }
        if !self.robots.allowed(url) {
            return Err(PageError::Robots {
                reason: format!(
                    "robots.txt of {} does not allow crawling this page",
                    url.host_str().unwrap_or_default()
                ),
            });
        }
        Ok(())
    }

    /// Fetches the site's robots.txt and sets the pause between requests from it. Returns the
    /// guard's error when it refused the site itself (its address, its scheme…): the start
    /// page would meet the same refusal, and that is the better message.
    async fn read_robots(&mut self) -> Option<FetchError> {
        let mut refused = None;
        self.robots = match self.fetch_robots().await {
            Ok(robots) => robots,
            Err(PageError::Fetch(err)) => {
                let robots = Robots::unreachable(&err);
                refused = err.is_refused().then_some(err);
                robots
            }
            Err(err) => Robots::DisallowAll {
                reason: format!("robots.txt could not be fetched: {err}"),
            },
        };
        let asked = self.robots.crawl_delay().map_or(Duration::ZERO, |delay| {
            delay.min(self.limits.max_crawl_delay)
        });
        self.delay = self.limits.min_delay.max(asked);
        tracing::debug!(robots = ?self.robots, delay = ?self.delay, "robots.txt read");
        refused
    }

    async fn fetch_robots(&mut self) -> Result<Robots, PageError> {
        self.pause().await?;
        self.summary.requests += 1;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, Robots::fetch(self.client, &self.site)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(PageError::Deadline),
        }
    }

    /// One request through the guard, politely spaced and within the crawl's deadline.
    async fn fetch(&mut self, request: FetchRequest) -> Result<crate::net::Fetched, PageError> {
        self.pause().await?;
        self.summary.requests += 1;
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, self.client.fetch(request)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(PageError::Deadline),
        }
    }

    /// Waits until the next request may go out; fails if that is past the deadline.
    async fn pause(&mut self) -> Result<(), PageError> {
        let ready_at = self
            .last_request
            .map_or_else(Instant::now, |last| last + self.delay);
        if ready_at >= self.deadline {
            return Err(PageError::Deadline);
        }
        tokio::time::sleep_until(ready_at).await;
        self.last_request = Some(Instant::now());
        Ok(())
    }
}

/// `scheme://host:port/` of `url`.
fn site_root(url: &Url) -> Url {
    let mut root = url.clone();
    root.set_path("/");
    root.set_query(None);
    root.set_fragment(None);
    root
}

/// Whether the URL a customer gave in `sitemap` mode is the sitemap itself.
fn is_sitemap_url(url: &Url) -> bool {
    let path = url.path().to_ascii_lowercase();
    path.ends_with(".xml") || path.ends_with(".xml.gz") || path.contains("sitemap")
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}
