//! [`GuardedClient`]: checks, pins and fetches one hop at a time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use reqwest::Url;
use reqwest::dns::{Name, Resolve, Resolving as ReqwestResolving};

use super::{BlockReason, GuardConfig, Resolver, SystemResolver};
use crate::ApiError;

/// The methods the product needs: crawling (`GET`, `HEAD`) and webhooks (`POST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchMethod {
    /// `GET`.
    Get,
    /// `POST`, with the request's body.
    Post,
    /// `HEAD`: the response has no body.
    Head,
}

impl From<FetchMethod> for Method {
    fn from(method: FetchMethod) -> Self {
        match method {
            FetchMethod::Get => Method::GET,
            FetchMethod::Post => Method::POST,
            FetchMethod::Head => Method::HEAD,
        }
    }
}

/// One fetch of a customer-given URL.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    /// The method of the first hop (redirects may turn it into `GET`).
    pub method: FetchMethod,
    /// The URL as the customer gave it; parsed and checked by [`GuardedClient::fetch`].
    pub url: String,
    /// Extra request headers. `Authorization`, `Cookie` and `Proxy-Authorization` are dropped
    /// when a redirect leaves the origin.
    pub headers: HeaderMap,
    /// The request body (`POST`).
    pub body: Option<Vec<u8>>,
    /// Follow 3xx responses (crawling). Webhook delivery sets `false`: a 3xx is the answer.
    pub follow_redirects: bool,
}

impl FetchRequest {
    /// A `GET` that follows redirects.
    pub fn get(url: impl Into<String>) -> Self {
        FetchRequest {
            method: FetchMethod::Get,
            url: url.into(),
            headers: HeaderMap::new(),
            body: None,
            follow_redirects: true,
        }
    }

    /// A `HEAD` that follows redirects.
    pub fn head(url: impl Into<String>) -> Self {
        FetchRequest {
            method: FetchMethod::Head,
            ..Self::get(url)
        }
    }

    /// A `POST` of `body` that does not follow redirects (webhook delivery).
    pub fn post(url: impl Into<String>, body: impl Into<Vec<u8>>) -> Self {
        FetchRequest {
            method: FetchMethod::Post,
            body: Some(body.into()),
            follow_redirects: false,
            ..Self::get(url)
        }
    }

    /// Adds a header (replacing one of the same name).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.insert(name, value);
        self
    }

    /// Sets whether 3xx responses are followed.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }
}

/// A redirect that was followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectHop {
    /// The URL that answered with a redirect.
    pub url: Url,
    /// Its status (a 301/308 tells a crawler the move is permanent).
    pub status: StatusCode,
}

/// A completed fetch. Any status counts as completed; 4xx/5xx are for the caller to judge.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL that gave this response (after redirects).
    pub final_url: Url,
    /// Its status; a 3xx only when redirects were not followed or it had no `Location`.
    pub status: StatusCode,
    /// Its headers. For a compressed body, `Content-Encoding` and `Content-Length` are gone.
    pub headers: HeaderMap,
    /// The body, decompressed, at most [`GuardConfig::max_body_bytes`].
    pub body: Vec<u8>,
    /// Each redirect followed, in order; empty without redirects.
    pub redirects: Vec<RedirectHop>,
}

/// Why a fetch did not complete: a refusal by policy (see [`FetchError::is_refused`]) or a
/// failure of the remote side or the network.
/// Messages never include the URL (it may carry a customer's token) but name the host.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL (or a redirect's `Location`) does not parse or has no host.
    #[error("invalid URL: {reason}")]
    InvalidUrl { reason: String },
    /// Only `http` and `https` are fetched.
    #[error("URL scheme {scheme:?} is not allowed; use http or https")]
    SchemeNotAllowed { scheme: String },
    /// `user:password@` in a URL is refused: credentials belong in headers.
    #[error("URLs with a user name or password are not allowed")]
    UserInfoNotAllowed,
    /// The host is, or resolves to, an address inside a non-public range.
    #[error("{host} resolves to {addr}, a {reason} address, which is not allowed")]
    BlockedAddress {
        host: String,
        addr: IpAddr,
        reason: BlockReason,
    },
    /// The host name did not resolve (or resolved to nothing).
    #[error("could not resolve {host}: {reason}")]
    DnsFailed { host: String, reason: String },
    /// More redirects than [`GuardConfig::max_redirects`].
    #[error("more than {limit} redirects")]
    TooManyRedirects { limit: usize },
    /// The body (after decompression) is larger than [`GuardConfig::max_body_bytes`].
    #[error("response body exceeds {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// No connection within [`GuardConfig::connect_timeout`].
    #[error("connecting to {host} timed out after {limit:?}")]
    ConnectTimeout { host: String, limit: Duration },
    /// The whole fetch took longer than [`GuardConfig::total_timeout`].
    #[error("the request timed out after {limit:?}")]
    Timeout { limit: Duration },
    /// The connection (TCP or TLS) failed.
    #[error("could not connect to {host}: {detail}")]
    Connect {
        host: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// The exchange failed after connecting (malformed response, bad compression, reset).
    #[error("HTTP exchange with {host} failed: {detail}")]
    Http {
        host: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// The HTTP client could not be built (a bug or a bad configuration, not the URL).
    #[error("could not set up the HTTP client: {0}")]
    Setup(#[source] reqwest::Error),
}

impl FetchError {
    /// `true` when the guard refused the URL itself; retrying cannot help.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            FetchError::InvalidUrl { .. }
                | FetchError::SchemeNotAllowed { .. }
                | FetchError::UserInfoNotAllowed
                | FetchError::BlockedAddress { .. }
                | FetchError::TooManyRedirects { .. }
        )
    }
}

/// In an endpoint, a URL that cannot be fetched is a problem with the `url` the customer
/// gave (422 naming the field, with the reason); only a broken client setup is our fault.
impl From<FetchError> for ApiError {
    fn from(err: FetchError) -> Self {
        match err {
            FetchError::Setup(_) => ApiError::Internal(anyhow::Error::new(err)),
            other => ApiError::invalid_field("url", other.to_string()),
        }
    }
}

/// The one way to fetch customer-given URLs. Cheap to clone; build once per cold start.
#[derive(Clone)]
pub struct GuardedClient {
    config: Arc<GuardConfig>,
    resolver: Arc<dyn Resolver>,
    /// Built once: reqwest would otherwise load the platform's root store for every hop.
    tls: rustls::ClientConfig,
    user_agent: HeaderValue,
}

impl std::fmt::Debug for GuardedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardedClient")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Where one hop may connect: the host as reqwest will look it up and the checked addresses
/// (`None` for IP literals, which reqwest connects to without any lookup).
struct Pinned {
    host: String,
    addrs: Option<Vec<SocketAddr>>,
}

impl GuardedClient {
    /// A client resolving through the operating system.
    pub fn new(config: GuardConfig) -> anyhow::Result<Self> {
        Self::with_resolver(config, Arc::new(SystemResolver))
    }

    /// A client resolving through `resolver` (tests inject names → addresses).
    pub fn with_resolver(config: GuardConfig, resolver: Arc<dyn Resolver>) -> anyhow::Result<Self> {
        use anyhow::Context;
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .context("the guard's user agent is not a valid header value")?;
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS versions for the guarded client")?
        .with_root_certificates(roots)
        .with_no_client_auth();
        // reqwest is built without HTTP/2 here; say so in ALPN.
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = GuardedClient {
            config: Arc::new(config),
            resolver,
            tls,
            user_agent,
        };
        // Fail at start-up, not on the first customer URL, if the client cannot be built.
        client
            .hop_client(None)
            .context("building the guarded HTTP client")?;
        Ok(client)
    }

    /// The configuration in force.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// Fetches `request.url`, checking every hop; see the [module docs](super).
    pub async fn fetch(&self, request: FetchRequest) -> Result<Fetched, FetchError> {
        let limit = self.config.total_timeout;
        tokio::time::timeout(limit, self.fetch_hops(request))
            .await
            .unwrap_or(Err(FetchError::Timeout { limit }))
    }

    async fn fetch_hops(&self, request: FetchRequest) -> Result<Fetched, FetchError> {
        let FetchRequest {
            mut method,
            url,
            mut headers,
            mut body,
            follow_redirects,
        } = request;
        let mut url = Url::parse(&url).map_err(|err| FetchError::InvalidUrl {
            reason: err.to_string(),
        })?;
        let mut redirects = Vec::new();
        loop {
            let pinned = self.check(&url).await?;
            let client = self.hop_client(Some(&pinned)).map_err(FetchError::Setup)?;
            let mut builder = client
                .request(method.into(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            let response = builder
                .send()
                .await
                .map_err(|err| self.transport_error(err, &pinned.host))?;
            let status = response.status();

            let location = response.headers().get(header::LOCATION);
            let next = match location {
                Some(location) if follow_redirects && is_followed_redirect(status) => {
                    Some(redirect_target(&url, location)?)
                }
                _ => None,
            };
            let Some(next) = next else {
                let headers = response.headers().clone();
                let bytes = self.read_body(response, method, &pinned.host).await?;
                return Ok(Fetched {
                    final_url: url,
                    status,
                    headers,
                    body: bytes,
                    redirects,
                });
            };

            if redirects.len() >= self.config.max_redirects {
                return Err(FetchError::TooManyRedirects {
                    limit: self.config.max_redirects,
                });
            }
            // The redirect's own body is never read; dropping the response closes it.
            drop(response);
            let to_get = (status == StatusCode::SEE_OTHER && method != FetchMethod::Head)
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == FetchMethod::Post);
            if to_get {
                method = FetchMethod::Get;
                body = None;
                for name in [
                    header::CONTENT_TYPE,
                    header::CONTENT_LENGTH,
                    header::CONTENT_ENCODING,
                    header::TRANSFER_ENCODING,
                ] {
                    headers.remove(name);
                }
            }
            if url.origin() != next.origin() {
                for name in [
                    header::AUTHORIZATION,
                    header::COOKIE,
                    header::PROXY_AUTHORIZATION,
                ] {
                    headers.remove(name);
                }
            }
            redirects.push(RedirectHop { url, status });
            url = next;
        }
    }

    /// Checks scheme, user info and every address of one hop's URL.
    async fn check(&self, url: &Url) -> Result<Pinned, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(FetchError::SchemeNotAllowed {
                scheme: url.scheme().to_owned(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::UserInfoNotAllowed);
        }
        let port = url.port_or_known_default().unwrap_or(80);
        let blocked = |host: &str, addr: IpAddr| {
            self.config
                .check(addr)
                .map_err(|reason| FetchError::BlockedAddress {
                    host: host.to_owned(),
                    addr,
                    reason,
                })
        };
        // `url` has already normalised every IPv4 spelling (`0x7f.1`, `2130706433`) into
        // dotted form and IPv6 into brackets: exactly the address the socket will use.
        let host = url.host_str().ok_or_else(|| FetchError::InvalidUrl {
            reason: "the URL has no host".into(),
        })?;
        let literal = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        if let Some(ip) = literal {
            blocked(host, ip)?;
            return Ok(Pinned {
                host: host.to_owned(),
                addrs: None,
            });
        }
        let ips = self
            .resolver
            .resolve(host, port)
            .await
            .map_err(|err| FetchError::DnsFailed {
                host: host.to_owned(),
                reason: err.to_string(),
            })?;
        if ips.is_empty() {
            return Err(FetchError::DnsFailed {
                host: host.to_owned(),
                reason: "no addresses".into(),
            });
        }
        for ip in &ips {
            blocked(host, *ip)?;
        }
        Ok(Pinned {
            host: host.to_owned(),
            addrs: Some(
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
            ),
        })
    }

    /// An HTTP client for one hop that can only reach `pinned`'s checked addresses. Cheap:
    /// the TLS configuration is shared and nothing connects until a request is sent.
    fn hop_client(&self, pinned: Option<&Pinned>) -> Result<reqwest::Client, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would resolve and connect on its own.
            .no_proxy()
            .connect_timeout(self.config.connect_timeout)
            .user_agent(self.user_agent.clone())
            .pool_max_idle_per_host(0)
            .dns_resolver(RefuseLookups)
            .tls_backend_preconfigured(self.tls.clone());
        if let Some(Pinned {
            host,
            addrs: Some(addrs),
        }) = pinned
        {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        builder.build()
    }

    /// Reads the body as it arrives, stopping as soon as the decompressed size passes the cap.
    async fn read_body(
        &self,
        mut response: reqwest::Response,
        method: FetchMethod,
        host: &str,
    ) -> Result<Vec<u8>, FetchError> {
        let limit = self.config.max_body_bytes;
        if method == FetchMethod::Head {
            return Ok(Vec::new());
        }
        // Known only for uncompressed bodies; the loop below covers the rest.
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(FetchError::BodyTooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(err, host))?
        {
            if body.len() + chunk.len() > limit {
                return Err(FetchError::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, err: reqwest::Error, host: &str) -> FetchError {
        let err = err.without_url();
        let host = host.to_owned();
        if err.is_timeout() {
            return FetchError::ConnectTimeout {
                host,
                limit: self.config.connect_timeout,
            };
        }
        let detail = innermost_cause(&err);
        if err.is_connect() {
            FetchError::Connect {
                host,
                detail,
                source: err,
            }
        } else {
            FetchError::Http {
                host,
                detail,
                source: err,
            }
        }
    }
}

/// The statuses that move a request elsewhere (300, 304 and 305 do not).
fn is_followed_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// The `Location` of a redirect, resolved against the URL that sent it.
fn redirect_target(current: &Url, location: &HeaderValue) -> Result<Url, FetchError> {
    let location = location.to_str().map_err(|_| FetchError::InvalidUrl {
        reason: "redirect Location is not valid text".into(),
    })?;
    current
        .join(location)
        .map_err(|err| FetchError::InvalidUrl {
            reason: format!("redirect Location: {err}"),
        })
}

/// The most specific message in an error's chain ("Connection refused (os error 111)") rather
/// than reqwest's generic top line.
fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// reqwest's resolver for hop clients: every name was pinned with `resolve_to_addrs`, so a
/// lookup reaching here means the pin was missed — fail closed instead of asking the system.
struct RefuseLookups;

impl Resolve for RefuseLookups {
    fn resolve(&self, name: Name) -> ReqwestResolving {
        let err = format!("unchecked DNS lookup of {} refused", name.as_str());
        Box::pin(std::future::ready(Err(err.into())))
    }
}
