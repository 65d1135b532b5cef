//! The connection pool's check of idle connections, against real Postgres through a TCP proxy
//! that can go silent on the connections it holds — as a NAT that forgot them, or a server
//! gone away without closing, looks to a Lambda environment thawed after minutes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chatpad::db::Database;
use chatpad::testing::TestDb;
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// How long a connection may idle before the pool checks it, in these tests: long enough that
/// "moments ago" holds on a loaded CI machine.
const IDLE: Duration = Duration::from_secs(3);

/// Forwards connections to Postgres and counts them and the bytes sent to the server.
struct Proxy {
    url: String,
    accepted: Arc<AtomicUsize>,
    sent: Arc<AtomicUsize>,
    /// Connections numbered below this are silent: what they send is dropped.
    silent_below: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(database_url: &str) -> Proxy {
        let config: tokio_postgres::Config = database_url.parse().unwrap();
        let tokio_postgres::config::Host::Tcp(host) = &config.get_hosts()[0] else {
            panic!("the test database is reached over TCP");
        };
        let target = format!("{host}:{}", config.get_ports()[0]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = database_url.replacen(&target, &listener.local_addr().unwrap().to_string(), 1);
        assert_ne!(url, database_url, "{target} not in the URL");
        let proxy = Proxy {
            url,
            accepted: Arc::default(),
            sent: Arc::default(),
            silent_below: Arc::default(),
        };
        let (accepted, sent, silent_below) = (
            Arc::clone(&proxy.accepted),
            Arc::clone(&proxy.sent),
            Arc::clone(&proxy.silent_below),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = accepted.fetch_add(1, Ordering::SeqCst);
                let server = TcpStream::connect(&target).await.unwrap();
                let (from_client, to_client) = client.into_split();
                let (from_server, to_server) = server.into_split();
                tokio::spawn(pump(
                    from_client,
                    to_server,
                    number,
                    Arc::clone(&silent_below),
                    Some(Arc::clone(&sent)),
                ));
                tokio::spawn(pump(
                    from_server,
                    to_client,
                    number,
                    Arc::clone(&silent_below),
                    None,
                ));
            }
        });
        proxy
    }

    /// Every connection open so far stops forwarding; its sockets stay open.
    fn silence_open_connections(&self) {
        self.silent_below
            .store(self.accepted.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    number: usize,
    silent_below: Arc<AtomicUsize>,
    counted: Option<Arc<AtomicUsize>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if number < silent_below.load(Ordering::SeqCst) {
            continue; // read and dropped, like packets into a black hole
        }
        if let Some(counted) = &counted {
            counted.fetch_add(n, Ordering::SeqCst);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn select_one(db: &Database) -> i32 {
    let client = db.client().await.unwrap();
    client.query_one("SELECT 1", &[]).await.unwrap().get(0)
}

/// A test database, the proxy in front of it, and a one-connection pool through the proxy
/// whose connection has been used once.
async fn pooled_through_proxy() -> (TestDb, Proxy, Database) {
    let test = TestDb::new().await;
    let proxy = Proxy::start(&test.app_url).await;
    let db =
        Database::connect_lazy_verifying(&SecretString::from(proxy.url.clone()), 1, IDLE).unwrap();
    assert_eq!(select_one(&db).await, 1);
    assert_eq!(proxy.accepted(), 1);
    (test, proxy, db)
}

#[tokio::test]
async fn only_a_connection_idle_for_a_while_is_checked_before_use() {
    let (_test, proxy, db) = pooled_through_proxy().await;

    // Handed out again at once: no round trip before the caller's own statements.
    let before = proxy.sent();
    drop(db.client().await.unwrap());
    assert_eq!(
        proxy.sent(),
        before,
        "a connection used moments ago was checked"
    );

    // Idle past the threshold: checked (an empty query) before it is handed out.
    tokio::time::sleep(IDLE + Duration::from_millis(300)).await;
    drop(db.client().await.unwrap());
    assert!(proxy.sent() > before, "an idle connection was not checked");
    assert_eq!(proxy.accepted(), 1, "the checked connection was kept");
}

#[tokio::test]
async fn an_idle_connection_gone_silent_is_replaced_not_waited_on() {
    let (_test, proxy, db) = pooled_through_proxy().await;

    proxy.silence_open_connections();
    tokio::time::sleep(IDLE + Duration::from_millis(300)).await;
    // The check gets no answer: the connection is dropped and a new one opened, well before
    // TCP would give up on the silent one.
    let answered = tokio::time::timeout(Duration::from_secs(20), select_one(&db)).await;
    assert_eq!(
        answered,
        Ok(1),
        "the request waited on the silent connection"
    );
    assert_eq!(proxy.accepted(), 2);
}
