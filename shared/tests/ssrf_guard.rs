//! The SSRF guard against real HTTP servers on loopback: what it lets through (only the
//! allowlisted test server), what it refuses at the first hop or at a redirect, that it
//! connects to the address it checked, and that limits end fetches with the right error.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatpad::net::{
    BlockKind, FetchError, FetchRequest, GuardConfig, GuardedClient, Resolver, Resolving,
    StaticResolver, parse_allow_list,
};
use chatpad::testing::http::{Reply, Server, ok, redirect};
use http::header::{AUTHORIZATION, HeaderValue};

// ---------------------------------------------------------------------------------------------
// Clients.

fn loopback_config() -> GuardConfig {
    GuardConfig {
        allow: parse_allow_list("127.0.0.1/32").unwrap(),
        ..GuardConfig::default()
    }
}

fn client(config: GuardConfig) -> GuardedClient {
    GuardedClient::new(config).unwrap()
}

fn client_with(config: GuardConfig, resolver: impl Resolver) -> GuardedClient {
    GuardedClient::with_resolver(config, Arc::new(resolver)).unwrap()
}

#[track_caller]
fn assert_blocked(result: Result<chatpad::net::Fetched, FetchError>, addr: &str, kind: BlockKind) {
    match result {
        Err(FetchError::BlockedAddress {
            addr: got, reason, ..
        }) => {
            assert_eq!(got, addr.parse::<IpAddr>().unwrap());
            assert_eq!(reason.kind, kind);
        }
        other => panic!("expected BlockedAddress {addr}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// What gets through.

#[tokio::test]
async fn allowed_loopback_server_is_fetched() {
    let server = Server::start(|_, _| ok("hello")).await;
    let fetched = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/hello")))
        .await
        .unwrap();
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, b"hello");
    assert_eq!(fetched.final_url.as_str(), server.url("/hello").as_str());
    assert!(fetched.redirects.is_empty());
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/hello");
    assert!(
        seen[0]
            .header("user-agent")
            .unwrap()
            .starts_with("ChatPad/")
    );
}

#[tokio::test]
async fn same_url_is_blocked_without_the_allowlist() {
    let server = Server::start(|_, _| ok("hello")).await;
    let result = client(GuardConfig::default())
        .fetch(FetchRequest::get(server.url("/hello")))
        .await;
    assert_blocked(result, "127.0.0.1", BlockKind::Loopback);
    assert!(server.requests().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn ipv4_spellings_are_normalised_and_checked() {
    let server = Server::start(|_, _| ok("hello")).await;
    let port = server.port();
    for url in [
        format!("http://0x7f.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
    ] {
        let result = client(GuardConfig::default())
            .fetch(FetchRequest::get(url.clone()))
            .await;
        assert_blocked(result, "127.0.0.1", BlockKind::Loopback);
        // The normalised address is what the socket uses: allowlisted, it reaches the server.
        let fetched = client(loopback_config())
            .fetch(FetchRequest::get(url))
            .await
            .unwrap();
        assert_eq!(fetched.body, b"hello");
    }
}

#[tokio::test]
async fn localhost_through_the_system_resolver_is_blocked() {
    let result = client(GuardConfig::default())
        .fetch(FetchRequest::get("http://localhost:9/"))
        .await;
    assert!(
        matches!(result, Err(FetchError::BlockedAddress { ref host, .. }) if host == "localhost"),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Redirects: every hop is checked again.

#[tokio::test]
async fn redirect_to_cloud_metadata_is_blocked_at_that_hop() {
    let server =
        Server::start(|_, _| redirect(302, "http://169.254.169.254/latest/meta-data/")).await;
    let result = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/go")))
        .await;
    assert_blocked(result, "169.254.169.254", BlockKind::LinkLocal);
    assert_eq!(server.requests().len(), 1, "the first hop was allowed");
}

#[tokio::test]
async fn redirect_to_ipv6_loopback_is_blocked() {
    let server =
        Server::start(|_, addr| redirect(301, format!("http://[::1]:{}/", addr.port()))).await;
    let result = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/go")))
        .await;
    assert_blocked(result, "::1", BlockKind::Loopback);
}

#[tokio::test]
async fn redirect_to_loopback_outside_the_allowlist_is_blocked() {
    let server =
        Server::start(|_, addr| redirect(307, format!("http://127.0.0.2:{}/", addr.port()))).await;
    let result = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/go")))
        .await;
    assert_blocked(result, "127.0.0.2", BlockKind::Loopback);
}

#[tokio::test]
async fn redirect_to_another_scheme_is_refused() {
    let server = Server::start(|_, _| redirect(302, "file:///etc/passwd")).await;
    let result = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/go")))
        .await;
    assert!(
        matches!(result, Err(FetchError::SchemeNotAllowed { ref scheme }) if scheme == "file"),
        "{result:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_and_recorded() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/a" => redirect(301, "/b"),
        "/b" => redirect(302, "c"),
        _ => ok("done"),
    })
    .await;
    let fetched = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/a")))
        .await
        .unwrap();
    assert_eq!(fetched.body, b"done");
    assert_eq!(fetched.final_url.as_str(), server.url("/c").as_str());
    let chain: Vec<_> = fetched
        .redirects
        .iter()
        .map(|hop| (hop.url.path().to_owned(), hop.status.as_u16()))
        .collect();
    assert_eq!(chain, [("/a".to_owned(), 301), ("/b".to_owned(), 302)]);
}

#[tokio::test]
async fn redirect_loop_ends_with_too_many_redirects() {
    let server = Server::start(|_, _| redirect(302, "/loop")).await;
    let result = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/loop")))
        .await;
    assert!(
        matches!(result, Err(FetchError::TooManyRedirects { limit: 5 })),
        "{result:?}"
    );
    assert_eq!(
        server.requests().len(),
        6,
        "the first request and five redirects"
    );
}

#[tokio::test]
async fn without_follow_redirects_the_3xx_is_the_answer() {
    let server = Server::start(|_, _| redirect(302, "http://169.254.169.254/")).await;
    let fetched = client(loopback_config())
        .fetch(FetchRequest::post(server.url("/hook"), b"{}".to_vec()))
        .await
        .unwrap();
    assert_eq!(fetched.status, 302);
    assert_eq!(
        fetched.headers.get("location").unwrap(),
        "http://169.254.169.254/"
    );
    assert!(fetched.redirects.is_empty());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn see_other_switches_to_get_and_307_keeps_the_post() {
    let server = Server::start(|seen, _| match seen.path.as_str() {
        "/303" => redirect(303, "/landed"),
        "/307" => redirect(307, "/landed"),
        _ => ok("landed"),
    })
    .await;
    let client = client(loopback_config());
    for path in ["/303", "/307"] {
        client
            .fetch(FetchRequest::post(server.url(path), b"payload".to_vec()).follow_redirects(true))
            .await
            .unwrap();
    }
    let seen = server.requests();
    let summary: Vec<_> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str(), s.body.as_slice()))
        .collect();
    assert_eq!(
        summary,
        [
            ("POST", "/303", &b"payload"[..]),
            ("GET", "/landed", &b""[..]),
            ("POST", "/307", &b"payload"[..]),
            ("POST", "/landed", &b"payload"[..]),
        ]
    );
}

#[tokio::test]
async fn credentials_are_dropped_when_a_redirect_leaves_the_origin() {
    let server = Server::start(|seen, addr| match seen.path.as_str() {
        "/same" => redirect(302, "/next"),
        "/cross" => redirect(302, format!("http://other.test:{}/next", addr.port())),
        _ => ok("next"),
    })
    .await;
    let resolver = StaticResolver::new().with("other.test", ["127.0.0.1".parse().unwrap()]);
    let client = client_with(loopback_config(), resolver);
    for path in ["/same", "/cross"] {
        client
            .fetch(
                FetchRequest::get(server.url(path))
                    .header(AUTHORIZATION, HeaderValue::from_static("Bearer secret")),
            )
            .await
            .unwrap();
    }
    let auth: Vec<_> = server
        .requests()
        .iter()
        .map(|s| (s.path.clone(), s.header("authorization").map(str::to_owned)))
        .collect();
    let bearer = Some("Bearer secret".to_owned());
    assert_eq!(
        auth,
        [
            ("/same".to_owned(), bearer.clone()),
            ("/next".to_owned(), bearer.clone()),
            ("/cross".to_owned(), bearer),
            ("/next".to_owned(), None),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Names: every address is checked, and the checked address is the one connected to.

#[tokio::test]
async fn a_name_with_any_private_address_is_blocked() {
    let resolver = StaticResolver::new().with(
        "mixed.test",
        [
            "93.184.215.14".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
        ],
    );
    let result = client_with(GuardConfig::default(), resolver)
        .fetch(FetchRequest::get("http://mixed.test/"))
        .await;
    assert_blocked(result, "10.0.0.1", BlockKind::Private);
}

#[tokio::test]
async fn unknown_names_fail_resolution() {
    let result = client_with(GuardConfig::default(), StaticResolver::new())
        .fetch(FetchRequest::get("https://nowhere.test/"))
        .await;
    assert!(
        matches!(result, Err(FetchError::DnsFailed { ref host, .. }) if host == "nowhere.test"),
        "{result:?}"
    );
}

/// Answers the allowed loopback address once, then the metadata address: a rebinding DNS
/// server. If anything resolved the name a second time, the fetch would go elsewhere.
struct RebindingResolver {
    first: IpAddr,
    calls: Arc<AtomicUsize>,
}

impl Resolver for RebindingResolver {
    fn resolve<'a>(&'a self, _host: &'a str, _port: u16) -> Resolving<'a> {
        let answer = match self.calls.fetch_add(1, Ordering::SeqCst) {
            0 => self.first,
            _ => "169.254.169.254".parse().unwrap(),
        };
        Box::pin(std::future::ready(Ok(vec![answer])))
    }
}

#[tokio::test]
async fn the_connection_goes_to_the_checked_address() {
    let server = Server::start(|_, _| ok("pinned")).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let resolver = RebindingResolver {
        first: server.addr.ip(),
        calls: calls.clone(),
    };
    let fetched = client_with(loopback_config(), resolver)
        .fetch(FetchRequest::get(format!(
            "http://rebind.test:{}/page",
            server.port()
        )))
        .await
        .unwrap();
    assert_eq!(fetched.body, b"pinned");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "resolved exactly once");
    let seen = server.requests();
    assert_eq!(
        seen[0].header("host"),
        Some(format!("rebind.test:{}", server.port()).as_str()),
        "the request for the name reached the checked address"
    );
}

#[tokio::test]
async fn ipv4_mapped_loopback_is_blocked_even_when_loopback_is_allowed() {
    let server = Server::start(|_, _| ok("hello")).await;
    let result = client(loopback_config())
        .fetch(FetchRequest::get(format!(
            "http://[::ffff:127.0.0.1]:{}/",
            server.port()
        )))
        .await;
    match result {
        Err(FetchError::BlockedAddress { addr, reason, .. }) => {
            assert_eq!(addr, "::ffff:127.0.0.1".parse::<IpAddr>().unwrap());
            assert_eq!(reason.kind, BlockKind::Loopback);
            assert!(reason.embedded.is_some());
        }
        other => panic!("expected BlockedAddress, got {other:?}"),
    }
    assert!(server.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// URL shape.

#[tokio::test]
async fn other_schemes_user_info_and_garbage_are_refused() {
    let client = client(loopback_config());
    for (url, scheme) in [
        ("ftp://127.0.0.1/file", "ftp"),
        ("file:///etc/passwd", "file"),
        ("gopher://127.0.0.1:70/", "gopher"),
    ] {
        let result = client.fetch(FetchRequest::get(url)).await;
        assert!(
            matches!(result, Err(FetchError::SchemeNotAllowed { scheme: ref s }) if s == scheme),
            "{url}: {result:?}"
        );
    }
    let result = client
        .fetch(FetchRequest::get("http://user:pw@127.0.0.1/"))
        .await;
    assert!(
        matches!(result, Err(FetchError::UserInfoNotAllowed)),
        "{result:?}"
    );
    let result = client.fetch(FetchRequest::get("not a url")).await;
    assert!(
        matches!(result, Err(FetchError::InvalidUrl { .. })),
        "{result:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits.

fn gzip_of_zeros(megabytes: usize) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..megabytes {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.finish().unwrap()
}

fn gzipped(body: Vec<u8>) -> Reply {
    Reply::Respond {
        status: 200,
        headers: vec![("Content-Encoding", "gzip".into())],
        body,
    }
}

#[tokio::test]
async fn gzip_bodies_are_decompressed() {
    let server = Server::start(|_, _| gzipped(gzip_of_zeros(2))).await;
    let fetched = client(loopback_config())
        .fetch(FetchRequest::get(server.url("/small")))
        .await
        .unwrap();
    assert_eq!(fetched.body.len(), 2 * 1024 * 1024);
    assert!(fetched.body.iter().all(|b| *b == 0));
    assert!(
        server.requests()[0]
            .header("accept-encoding")
            .unwrap()
            .contains("gzip")
    );
}

#[tokio::test]
async fn gzip_bomb_ends_as_body_too_large() {
    let bomb = gzip_of_zeros(50);
    assert!(
        bomb.len() < 1024 * 1024,
        "the compressed body itself is small"
    );
    let server = Server::start(move |_, _| gzipped(bomb.clone())).await;
    let config = GuardConfig {
        max_body_bytes: 1024 * 1024,
        ..loopback_config()
    };
    let result = client(config)
        .fetch(FetchRequest::get(server.url("/bomb")))
        .await;
    assert!(
        matches!(result, Err(FetchError::BodyTooLarge { limit: 1_048_576 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn plain_body_over_the_cap_is_too_large() {
    let server = Server::start(|_, _| ok(&"x".repeat(2048))).await;
    let config = GuardConfig {
        max_body_bytes: 1024,
        ..loopback_config()
    };
    let result = client(config)
        .fetch(FetchRequest::get(server.url("/big")))
        .await;
    assert!(
        matches!(result, Err(FetchError::BodyTooLarge { limit: 1024 })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = Server::start(|_, _| Reply::Hang).await;
    let config = GuardConfig {
        connect_timeout: Duration::from_millis(500),
        total_timeout: Duration::from_millis(300),
        ..loopback_config()
    };
    let result = client(config)
        .fetch(FetchRequest::get(server.url("/slow")))
        .await;
    assert!(
        matches!(result, Err(FetchError::Timeout { .. })),
        "{result:?}"
    );
}
