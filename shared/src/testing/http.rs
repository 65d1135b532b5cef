//! A tiny HTTP/1.1 server on loopback for tests of outbound fetching (the SSRF guard, the
//! crawler, URL knowledge sources).
//!
//! Each connection carries one request: the server reads it (head and a `Content-Length`
//! body), records it as a [`Seen`], asks the handler for a [`Reply`] and closes the connection
//! after answering (`Connection: close`). The handler also gets the server's own address, to
//! build absolute redirects back to itself (or to another loopback address on the same port).
//!
//! ```no_run
//! # async fn example() {
//! use chatpad::testing::http::{Server, not_found, ok, redirect};
//!
//! let server = Server::start(|seen, _addr| match seen.path.as_str() {
//!     "/old" => redirect(301, "/new"),
//!     "/new" => ok("moved here"),
//!     _ => not_found(),
//! })
//! .await;
//! let url = server.url("/old");
//! // ... fetch `url` ...
//! assert_eq!(server.paths(), ["/old", "/new"]);
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// Header names and values in the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body, read up to its `Content-Length`.
    pub body: Vec<u8>,
}

impl Seen {
    /// The first value of a header, its name compared without regard to case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the handler answers.
pub enum Reply {
    /// A response; `Connection: close` and `Content-Length` are added.
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// Keep the connection open and never answer (for timeouts).
    Hang,
    /// A streamed response (no `Content-Length`; the body ends when the connection closes):
    /// each part is written as it comes, a [`Part::Wait`] holds the rest back until notified.
    Stream {
        status: u16,
        headers: Vec<(&'static str, String)>,
        parts: Vec<Part>,
    },
}

/// A piece of a [`Reply::Stream`].
pub enum Part {
    /// Bytes written (and flushed) at once.
    Bytes(Vec<u8>),
    /// Waits until the test calls `notify_one` / `notify_waiters` on it.
    Wait(Arc<tokio::sync::Notify>),
}

/// A response with a status, a `Content-Type` and a body.
pub fn respond(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
    Reply::Respond {
        status,
        headers: vec![("Content-Type", content_type.to_owned())],
        body: body.into(),
    }
}

/// `200 OK` with a `text/plain` body.
pub fn ok(body: &str) -> Reply {
    respond(200, "text/plain", body)
}

/// `404` with a `text/plain` body.
pub fn not_found() -> Reply {
    respond(404, "text/plain", "not found")
}

/// A redirect (`301`, `302`, `303`, `307`, `308`) to `location`, as given (relative or not).
pub fn redirect(status: u16, location: impl Into<String>) -> Reply {
    Reply::Respond {
        status,
        headers: vec![("Location", location.into())],
        body: Vec::new(),
    }
}

/// A running server on `127.0.0.1`; it serves until the test's runtime ends.
pub struct Server {
    /// Where it listens (`127.0.0.1` and a free port).
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// Starts a server on 127.0.0.1; `handler` gets each request and the server's address.
    pub async fn start<H>(handler: H) -> Server
    where
        H: Fn(&Seen, SocketAddr) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let _ = serve_one(stream, addr, &*handler, &log).await;
                });
            }
        });
        Server { addr, seen }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The paths requested so far, in order.
    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|s| s.path).collect()
    }
}

/// Reads one request from `stream`, records it in `log` and writes the handler's reply.
async fn serve_one<H>(
    mut stream: TcpStream,
    addr: SocketAddr,
    handler: &H,
    log: &Mutex<Vec<Seen>>,
) -> std::io::Result<()>
where
    H: Fn(&Seen, SocketAddr) -> Reply,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut seen = Seen {
        method,
        path,
        headers,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while seen.body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        seen.body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(seen.clone());

    match handler(&seen, addr) {
        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
        Reply::Stream {
            status,
            headers,
            parts,
        } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str("\r\n");
            stream.write_all(out.as_bytes()).await?;
            for part in parts {
                match part {
                    Part::Bytes(bytes) => {
                        stream.write_all(&bytes).await?;
                        stream.flush().await?;
                    }
                    Part::Wait(notify) => notify.notified().await,
                }
            }
            let _ = stream.shutdown().await;
        }
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut out = format!("HTTP/1.1 {status} X\r\nConnection: close\r\n");
            for (name, value) in headers {
                out.push_str(&format!("{name}: {value}\r\n"));
            }
            out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            stream.write_all(out.as_bytes()).await?;
            // A client that gave up early (body cap) resets the connection: not an error here.
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
    }
    Ok(())
}
