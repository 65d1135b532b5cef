//! What a customer chooses for a URL source ([`CrawlSettings`], part of the management API
//! body), its validation, and the limits we set ourselves ([`CrawlLimits`]).

use std::collections::BTreeMap;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::ApiError;

/// Pages a crawl returns unless the settings say otherwise.
pub const DEFAULT_MAX_PAGES: u32 = 50;
/// The most pages one crawl may return, whatever the settings ask.
pub const MAX_PAGES_LIMIT: u32 = 500;
/// Link depth followed from the start page unless the settings say otherwise.
pub const DEFAULT_MAX_DEPTH: u32 = 2;
/// The deepest a site crawl may go.
pub const MAX_DEPTH_LIMIT: u32 = 10;
/// Patterns allowed in each of `include` and `exclude`.
pub const MAX_PATTERNS: usize = 20;
/// Longest pattern, in characters.
pub const MAX_PATTERN_LEN: usize = 200;

/// Which pages of a web source are fetched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CrawlMode {
    /// Only the given URL.
    #[default]
    Page,
    /// The given URL and the pages it links to on the same site (scheme, host and port),
    /// breadth-first up to `maxDepth` links away.
    Site,
    /// The pages listed in a sitemap: the given URL if it is one (`….xml`, `….xml.gz`, or
    /// a path containing `sitemap`), else the sitemaps named in the site's robots.txt, else
    /// `/sitemap.xml`. Sitemap index files are followed.
    Sitemap,
}

/// How a web source is crawled. Unknown fields are refused; missing ones take the defaults.
///
/// `include` / `exclude` are glob patterns matched against the URL's path (percent-encoded,
/// without the query): `*` matches any characters **including `/`** (so `/docs/*` covers the
/// whole `/docs/` tree), `?` one character, `[abc]` / `[!abc]` a class, `{a,b}` alternatives.
/// A pattern starts with `/` or `*`. With `include` set, only matching pages are returned
/// (the start page is still read for its links); pages matching `exclude` are never fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CrawlSettings {
    /// One page, a site crawl, or a sitemap.
    pub mode: CrawlMode,
    /// Most pages returned (1 to 500; default 50). Ignored in `page` mode.
    #[schema(minimum = 1, maximum = 500)]
    pub max_pages: u32,
    /// Most links followed away from the start page in `site` mode (0 to 10; default 2).
    #[schema(minimum = 0, maximum = 10)]
    pub max_depth: u32,
    /// Only pages whose path matches one of these globs (all pages when empty).
    #[schema(max_items = 20)]
    pub include: Vec<String>,
    /// Pages whose path matches one of these globs are skipped.
    #[schema(max_items = 20)]
    pub exclude: Vec<String>,
}

impl Default for CrawlSettings {
    fn default() -> Self {
        CrawlSettings {
            mode: CrawlMode::Page,
            max_pages: DEFAULT_MAX_PAGES,
            max_depth: DEFAULT_MAX_DEPTH,
            include: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

/// The settings' problems, per field (`maxPages`, `include[2]`, …), all at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid crawl settings: {}", summary(.fields))]
pub struct SettingsError {
    /// Field name → what is wrong with it.
    pub fields: BTreeMap<String, String>,
}

fn summary(fields: &BTreeMap<String, String>) -> String {
    fields
        .iter()
        .map(|(field, message)| format!("{field}: {message}"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl SettingsError {
    /// A 422 naming each field under `prefix` (the settings' place in the request body, e.g.
    /// `crawl`; empty for none).
    pub fn to_api_error(&self, prefix: &str) -> ApiError {
        let fields: BTreeMap<String, &String> = self
            .fields
            .iter()
            .map(|(field, message)| match prefix {
                "" => (field.clone(), message),
                _ => (format!("{prefix}.{field}"), message),
            })
            .collect();
        ApiError::Validation {
            message: fields
                .iter()
                .map(|(field, message)| format!("{field}: {message}"))
                .collect::<Vec<_>>()
                .join("; "),
            details: json!({ "fields": fields }),
        }
    }
}

impl From<SettingsError> for ApiError {
    fn from(err: SettingsError) -> Self {
        err.to_api_error("")
    }
}

impl CrawlSettings {
    /// Checks every field; `Ok` means [`crawl`](super::crawl) will accept these settings.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.compile().map(|_| ())
    }

    /// Validates and compiles the patterns.
    pub(super) fn compile(&self) -> Result<Scope, SettingsError> {
        let mut fields = BTreeMap::new();
        if !(1..=MAX_PAGES_LIMIT).contains(&self.max_pages) {
            fields.insert(
                "maxPages".to_owned(),
                format!("must be between 1 and {MAX_PAGES_LIMIT}"),
            );
        }
        if self.max_depth > MAX_DEPTH_LIMIT {
            fields.insert(
                "maxDepth".to_owned(),
                format!("must be between 0 and {MAX_DEPTH_LIMIT}"),
            );
        }
        let include = compile_patterns("include", &self.include, &mut fields);
        let exclude = compile_patterns("exclude", &self.exclude, &mut fields);
        match (include, exclude) {
            (Some(include), Some(exclude)) if fields.is_empty() => Ok(Scope {
                include: (!self.include.is_empty()).then_some(include),
                exclude,
            }),
            _ => Err(SettingsError { fields }),
        }
    }
}

fn compile_patterns(
    name: &str,
    patterns: &[String],
    errors: &mut BTreeMap<String, String>,
) -> Option<GlobSet> {
    if patterns.len() > MAX_PATTERNS {
        errors.insert(name.to_owned(), format!("at most {MAX_PATTERNS} patterns"));
        return None;
    }
    let mut set = GlobSetBuilder::new();
    let mut ok = true;
    for (i, pattern) in patterns.iter().enumerate() {
        let field = format!("{name}[{i}]");
        if pattern.is_empty() || pattern.chars().count() > MAX_PATTERN_LEN {
            errors.insert(
                field,
                format!("must be 1 to {MAX_PATTERN_LEN} characters long"),
            );
            ok = false;
            continue;
        }
        if !pattern.starts_with(['/', '*']) {
            errors.insert(
                field,
                format!("{pattern:?} must start with / or * (it is matched against the URL path)"),
            );
            ok = false;
            continue;
        }
        match Glob::new(pattern) {
            Ok(glob) => {
                set.add(glob);
            }
            Err(err) => {
                errors.insert(
                    field,
                    format!("{pattern:?} is not a valid glob: {}", err.kind()),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    match set.build() {
        Ok(set) => Some(set),
        Err(err) => {
            errors.insert(name.to_owned(), format!("patterns do not compile: {err}"));
            None
        }
    }
}

/// The compiled `include` / `exclude` patterns.
#[derive(Debug, Clone)]
pub(super) struct Scope {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

impl Scope {
    /// Whether a page at `path` may be fetched at all.
    pub(super) fn fetchable(&self, path: &str) -> bool {
        !self.exclude.is_match(path)
    }

    /// Whether a page at `path` is returned (fetchable and included).
    pub(super) fn wanted(&self, path: &str) -> bool {
        self.fetchable(path) && self.include.as_ref().is_none_or(|set| set.is_match(path))
    }
}

/// Limits we set ourselves, not the customer: how long a crawl may take and how politely it
/// fetches. The defaults suit the ingest worker (300 s Lambda timeout).
#[derive(Debug, Clone)]
pub struct CrawlLimits {
    /// The whole crawl ends by then (pages already returned are kept).
    pub deadline: Duration,
    /// Smallest pause between two requests to the site.
    pub min_delay: Duration,
    /// A robots.txt `Crawl-delay` is honoured up to this pause.
    pub max_crawl_delay: Duration,
    /// Sitemap files read in `sitemap` mode (the first and those an index lists).
    pub max_sitemaps: usize,
    /// Links taken from one page.
    pub max_links_per_page: usize,
}

impl Default for CrawlLimits {
    fn default() -> Self {
        CrawlLimits {
            deadline: Duration::from_secs(180),
            min_delay: Duration::from_millis(200),
            max_crawl_delay: Duration::from_secs(5),
            max_sitemaps: 20,
            max_links_per_page: 1_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_an_empty_body() {
        let settings: CrawlSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(settings, CrawlSettings::default());
        assert_eq!(settings.max_pages, 50);
        assert_eq!(settings.max_depth, 2);
        assert!(settings.validate().is_ok());
        let settings: CrawlSettings =
            serde_json::from_str(r#"{"mode":"sitemap","maxPages":10,"include":["/docs/*"]}"#)
                .unwrap();
        assert_eq!(settings.mode, CrawlMode::Sitemap);
        assert!(serde_json::from_str::<CrawlSettings>(r#"{"maxPage":10}"#).is_err());
    }

    #[test]
    fn every_bad_field_is_named() {
        let settings = CrawlSettings {
            mode: CrawlMode::Site,
            max_pages: 501,
            max_depth: 11,
            include: vec!["docs/*".into(), "/ok/*".into()],
            exclude: vec!["/a/[".into(), String::new()],
        };
        let err = settings.validate().unwrap_err();
        let fields: Vec<_> = err.fields.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "exclude[0]",
                "exclude[1]",
                "include[0]",
                "maxDepth",
                "maxPages"
            ]
        );
        assert!(err.fields["include[0]"].contains("must start with /"));
        assert!(
            err.to_string()
                .contains("maxPages: must be between 1 and 500")
        );
        let api = err.to_api_error("crawl");
        assert_eq!(api.status(), 422);
        assert!(api.body().details["fields"]["crawl.maxDepth"].is_string());
        let zero = CrawlSettings {
            max_pages: 0,
            ..CrawlSettings::default()
        };
        assert!(zero.validate().unwrap_err().fields.contains_key("maxPages"));
        let many = CrawlSettings {
            exclude: vec!["/x".into(); 21],
            ..CrawlSettings::default()
        };
        assert!(many.validate().unwrap_err().fields.contains_key("exclude"));
    }

    #[test]
    fn patterns_match_the_path_and_star_crosses_slashes() {
        let scope = CrawlSettings {
            include: vec!["/docs/*".into(), "*.html".into()],
            exclude: vec!["/docs/internal/*".into()],
            ..CrawlSettings::default()
        }
        .compile()
        .unwrap();
        assert!(scope.wanted("/docs/a"));
        assert!(scope.wanted("/docs/a/b/c"));
        assert!(scope.wanted("/blog/post.html"));
        assert!(!scope.wanted("/blog/post"));
        assert!(!scope.wanted("/docs"));
        assert!(scope.fetchable("/blog/post"));
        assert!(!scope.fetchable("/docs/internal/x"));
        assert!(!scope.wanted("/docs/internal/x"));
        let all = CrawlSettings::default().compile().unwrap();
        assert!(all.wanted("/anything"));
    }
}
