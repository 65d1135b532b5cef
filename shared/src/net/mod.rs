//! Fetching URLs a customer gave us (knowledge crawling, webhook delivery) without letting
//! them reach inside our network: the one SSRF guard every such request goes through.
//!
//! For every hop — the first URL and each redirect — [`GuardedClient`]:
//! 1. accepts only `http`/`https` URLs without user info;
//! 2. resolves the host itself through a [`Resolver`] (IP literals, however the URL spelled
//!    them, are taken as they are);
//! 3. refuses the hop if ANY address is non-public ([`classify`]) and not in the allowlist;
//! 4. connects to exactly the checked addresses: the per-hop HTTP client is told the answer
//!    (`resolve_to_addrs`) and its own DNS resolver refuses every lookup, so a second,
//!    rebinding answer can never be used.
//!
//! Redirects are followed by hand so each `Location` goes through the same checks (reqwest's
//! resolver hook is not called for IP-literal URLs, so it cannot guard redirects). One deadline
//! covers every hop and reading the body; the body is capped after decompression.

mod addr;
mod client;
mod resolve;

use std::net::IpAddr;
use std::time::Duration;

use anyhow::Context;
use ipnet::IpNet;

pub use addr::{BlockKind, BlockReason, Embedding, classify};
pub use client::{FetchError, FetchMethod, FetchRequest, Fetched, GuardedClient, RedirectHop};
pub use reqwest::Url;
pub use resolve::{Resolver, Resolving, StaticResolver, SystemResolver};

/// Environment variable holding extra allowed networks, comma-separated (`127.0.0.1/32,::1`).
pub const ALLOW_CIDRS_VAR: &str = "SSRF_ALLOW_CIDRS";

/// Limits and the allowlist of a [`GuardedClient`].
#[derive(Debug, Clone)]
pub struct GuardConfig {
    /// Longest wait for one TCP connection (and TLS handshake) to be established.
    pub connect_timeout: Duration,
    /// Deadline of a whole fetch: resolution, every redirect hop and reading the body.
    pub total_timeout: Duration,
    /// Largest body accepted, counted after decompression.
    pub max_body_bytes: usize,
    /// Redirects followed before giving up with [`FetchError::TooManyRedirects`].
    pub max_redirects: usize,
    /// `User-Agent` sent unless the request sets its own.
    pub user_agent: String,
    /// Networks allowed although non-public. Only for local development and tests (loopback
    /// servers); empty in production. Matches the address exactly as resolved: allowing
    /// `127.0.0.1/32` does not allow `::ffff:127.0.0.1`.
    pub allow: Vec<IpNet>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            max_body_bytes: 10 * 1024 * 1024,
            max_redirects: 5,
            user_agent: concat!("ChatPad/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow: Vec::new(),
        }
    }
}

impl GuardConfig {
    /// The defaults, with the allowlist read from `SSRF_ALLOW_CIDRS` if set.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`GuardConfig::from_env`], reading variables through `lookup` (tests pass their own).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let allow = match lookup(ALLOW_CIDRS_VAR) {
            Some(list) => parse_allow_list(&list)
                .with_context(|| format!("environment variable {ALLOW_CIDRS_VAR}"))?,
            None => Vec::new(),
        };
        Ok(GuardConfig {
            allow,
            ..Self::default()
        })
    }

    /// `Ok` when a fetch may connect to `ip`: it is public or explicitly allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), BlockReason> {
        match classify(ip) {
            Some(_) if self.allow.iter().any(|net| net.contains(&ip)) => Ok(()),
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// Parses a comma-separated list of networks; a bare address means just that address.
pub fn parse_allow_list(list: &str) -> anyhow::Result<Vec<IpNet>> {
    list.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .with_context(|| format!("{entry:?} is not a CIDR network or IP address"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_parses_networks_and_bare_addresses() {
        let allow = parse_allow_list(" 127.0.0.1/32, ::1 ,,10.0.0.0/8").unwrap();
        assert_eq!(
            allow,
            vec![
                "127.0.0.1/32".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ]
        );
        let err = parse_allow_list("127.0.0.1/33").unwrap_err();
        assert!(format!("{err:#}").contains("127.0.0.1/33"), "{err:#}");
    }

    #[test]
    fn from_lookup_reads_the_allow_list_and_defaults_to_empty() {
        let config = GuardConfig::from_lookup(|_| None).unwrap();
        assert!(config.allow.is_empty());
        assert_eq!(config.max_redirects, 5);
        let config =
            GuardConfig::from_lookup(|name| (name == ALLOW_CIDRS_VAR).then(|| "127.0.0.1".into()))
                .unwrap();
        assert_eq!(config.allow, vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]);
        assert!(
            GuardConfig::from_lookup(|_| Some("not-a-net".into()))
                .unwrap_err()
                .to_string()
                .contains(ALLOW_CIDRS_VAR)
        );
    }

    #[test]
    fn allowlist_matches_the_exact_address_family() {
        let config = GuardConfig {
            allow: parse_allow_list("127.0.0.1/32").unwrap(),
            ..GuardConfig::default()
        };
        assert!(config.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(config.check("127.0.0.2".parse().unwrap()).is_err());
        // The mapped form reaches the same socket but is not what was allowed.
        assert!(config.check("::ffff:127.0.0.1".parse().unwrap()).is_err());
        assert!(config.check("8.8.8.8".parse().unwrap()).is_ok());
        assert_eq!(
            GuardConfig::default()
                .check("169.254.169.254".parse().unwrap())
                .unwrap_err()
                .kind,
            BlockKind::LinkLocal
        );
    }
}
