//! robots.txt (RFC 9309) for our user-agent token `ChatPad`: fetched once per site through
//! the guard and read the conservative way.

use std::time::Duration;

use reqwest::Url;
use texting_robots::Robot;

use crate::net::{FetchError, FetchRequest, GuardedClient};

/// The product token robots.txt groups are matched against (case-insensitively).
pub const USER_AGENT_TOKEN: &str = "ChatPad";

/// RFC 9309 asks crawlers to read at least 500 KiB; anything past that is ignored.
const MAX_ROBOTS_BYTES: usize = 500 * 1024;

/// What a site's robots.txt allows us.
pub(super) enum Robots {
    /// No usable robots.txt (4xx, or more redirects than the guard follows): all allowed.
    AllowAll,
    /// robots.txt could not be read (5xx, network error, refused by the guard): RFC 9309
    /// says to assume complete disallow.
    DisallowAll { reason: String },
    /// The rules of the group matching our token (or `*`).
    Rules(Box<Robot>),
}

impl std::fmt::Debug for Robots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Robots::AllowAll => f.write_str("AllowAll"),
            Robots::DisallowAll { reason } => f
                .debug_struct("DisallowAll")
                .field("reason", reason)
                .finish(),
            Robots::Rules(robot) => f
                .debug_struct("Rules")
                .field("delay", &robot.delay)
                .field("sitemaps", &robot.sitemaps)
                .finish_non_exhaustive(),
        }
    }
}

impl Robots {
    /// The robots.txt URL of `url`'s site (same scheme, host and port).
    pub(super) fn url_for(url: &Url) -> Url {
        let mut robots = url.clone();
        robots.set_path("/robots.txt");
        robots.set_query(None);
        robots.set_fragment(None);
        robots
    }

    /// Fetches and reads the robots.txt of `url`'s site. `Err` when it could not be fetched
    /// (network, timeout, refused by the guard): then nothing may be crawled
    /// ([`Robots::unreachable`]).
    pub(super) async fn fetch(client: &GuardedClient, url: &Url) -> Result<Robots, FetchError> {
        let robots_url = Self::url_for(url);
        let fetched = match client.fetch(FetchRequest::get(robots_url.as_str())).await {
            Ok(fetched) => fetched,
            // RFC 9309 §2.3.1.2: after five redirects robots.txt MAY be taken as unavailable.
            Err(FetchError::TooManyRedirects { .. }) => return Ok(Robots::AllowAll),
            Err(err) => return Err(err),
        };
        Ok(if fetched.status.is_success() {
            let body = &fetched.body[..fetched.body.len().min(MAX_ROBOTS_BYTES)];
            match Robot::new(USER_AGENT_TOKEN, body) {
                Ok(robot) => Robots::Rules(Box::new(robot)),
                // The parser is forgiving; a file it cannot read at all has no rules.
                Err(err) => {
                    tracing::warn!(host = url.host_str(), error = %err, "unreadable robots.txt; treating it as absent");
                    Robots::AllowAll
                }
            }
        } else if fetched.status.is_client_error() {
            Robots::AllowAll
        } else {
            Robots::DisallowAll {
                reason: format!("robots.txt answered HTTP {}", fetched.status),
            }
        })
    }

    /// The rules when robots.txt could not be fetched: nothing allowed.
    pub(super) fn unreachable(err: &FetchError) -> Robots {
        Robots::DisallowAll {
            reason: format!("robots.txt could not be fetched: {err}"),
        }
    }

    /// Whether `url` (on this site) may be fetched.
    pub(super) fn allowed(&self, url: &Url) -> bool {
        match self {
            Robots::AllowAll => true,
            Robots::DisallowAll { .. } => false,
            // robots.txt itself is always allowed (RFC 9309 §2.2.2).
            Robots::Rules(robot) => url.path() == "/robots.txt" || robot.allowed(url.as_str()),
        }
    }

    /// Why nothing may be fetched, when that is the case.
    pub(super) fn refusal(&self) -> Option<&str> {
        match self {
            Robots::DisallowAll { reason } => Some(reason),
            _ => None,
        }
    }

    /// The `Crawl-delay` asked for, if any.
    pub(super) fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Robots::Rules(robot) => robot
                .delay
                .filter(|secs| secs.is_finite() && *secs > 0.0)
                .map(|secs| Duration::from_secs_f32(secs.min(3600.0))),
            _ => None,
        }
    }

    /// The `Sitemap:` lines.
    pub(super) fn sitemaps(&self) -> &[String] {
        match self {
            Robots::Rules(robot) => &robot.sitemaps,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(txt: &str) -> Robots {
        Robots::Rules(Box::new(
            Robot::new(USER_AGENT_TOKEN, txt.as_bytes()).unwrap(),
        ))
    }

    #[test]
    fn our_group_wins_over_the_star_group() {
        let robots = rules(
            "User-agent: *\nDisallow: /\n\nUser-agent: chatpad\nDisallow: /private\nCrawl-delay: 2\nSitemap: https://x.test/s.xml\n",
        );
        let url = |p: &str| Url::parse(&format!("https://x.test{p}")).unwrap();
        assert!(robots.allowed(&url("/docs")));
        assert!(!robots.allowed(&url("/private/a")));
        assert!(robots.allowed(&url("/robots.txt")));
        assert_eq!(robots.crawl_delay(), Some(Duration::from_secs(2)));
        assert_eq!(robots.sitemaps(), ["https://x.test/s.xml"]);
        let star = rules("User-agent: *\nDisallow: /\n");
        assert!(!star.allowed(&url("/docs")));
    }

    #[test]
    fn robots_url_is_at_the_site_root() {
        let url = Url::parse("https://x.test:8443/a/b?c=d#e").unwrap();
        assert_eq!(
            Robots::url_for(&url).as_str(),
            "https://x.test:8443/robots.txt"
        );
    }
}
