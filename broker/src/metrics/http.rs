//! The metrics and health HTTP endpoint (`metrics.listener`): a small
//! HTTP/1.1 server over tokio, one request per connection.
//!
//! - `GET /metrics`: the Prometheus text exposition ([`super::render`]);
//! - `GET /health`: 200 while the process serves this port;
//! - `GET /ready`: 200 once the node registered with the controller, caught
//!   up with the metadata and serves clients (and is not fenced), else 503.
//!
//! Bad input cannot disturb the broker: a request head must arrive whole
//! within [`HEAD_TIMEOUT`] (a slow client is dropped) and within
//! [`MAX_HEAD`] bytes (else 431); anything but `GET`/`HEAD` of HTTP/1.x is
//! refused (400, 405); at most [`MAX_CONNECTIONS`] connections at once,
//! more are closed at once.

use std::sync::Arc;
use std::time::Duration;

use rivulet_controller::ControllerNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, warn};

use super::render::{render, NodeState};
use crate::context::BrokerContext;

/// The longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client may take to read the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP connections served at once.
pub const MAX_CONNECTIONS: usize = 32;

/// What the endpoint reads from the running node.
#[derive(Clone)]
pub struct Endpoint {
    pub broker: Arc<BrokerContext>,
    pub controller: Arc<ControllerNode>,
    /// The Kafka listeners' connection slots (`max.connections`).
    pub client_slots: Arc<Semaphore>,
    /// Set once the metadata has caught up and clients are served.
    pub ready: watch::Receiver<bool>,
}

impl Endpoint {
    fn is_ready(&self) -> bool {
        let b = &self.broker;
        *self.ready.borrow() && b.image().is_live(b.node_id())
    }

    fn open_connections(&self) -> usize {
        self.broker
            .config
            .max_connections
            .saturating_sub(self.client_slots.available_permits())
    }
}

/// Bind `metrics.listener`: `None` when it is off, or when the default
/// port is taken (a warning: another node on this machine has it); a
/// configured address that cannot be bound fails the start.
pub async fn bind(
    config: &super::MetricsConfig,
) -> Result<Option<TcpListener>, crate::server::StartError> {
    let Some(addr) = &config.listener else {
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(socket) => Ok(Some(socket)),
        Err(e) if !config.listener_configured => {
            warn!(%addr, error = %e, "metrics endpoint off: cannot listen on the default metrics.listener (set metrics.listener to another host:port)");
            Ok(None)
        }
        Err(source) => Err(crate::server::StartError::Bind {
            addr: addr.clone(),
            source,
        }),
    }
}

/// Serve `socket` until `stop`.
pub async fn serve(socket: TcpListener, endpoint: Endpoint, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = socket.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = slots.clone().try_acquire_owned() else {
                        debug!(%peer, "metrics endpoint busy: closing connection");
                        continue;
                    };
                    let endpoint = endpoint.clone();
                    let mut conn_stop = stop.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = serve_one(stream, &endpoint) => {}
                            _ = conn_stop.changed() => {}
                        }
                        drop(permit);
                    });
                }
                Err(e) => {
                    warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// A parsed request line.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub head_only: bool,
    pub path: String,
}

/// Why a request head was refused: the status to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    BadRequest,
    MethodNotAllowed,
    TooLarge,
}

/// Parse the request line of a complete head.
pub fn parse_head(head: &[u8]) -> Result<Request, Refused> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(Refused::BadRequest)?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| Refused::BadRequest)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refused::BadRequest);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(Refused::BadRequest);
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Refused::MethodNotAllowed),
    };
    let path = target.split('?').next().unwrap_or(target).to_string();
    Ok(Request { head_only, path })
}

/// Read a request head (up to the blank line) of at most [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> Option<Result<Vec<u8>, Refused>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(Ok(buf));
        }
        if buf.len() > MAX_HEAD {
            return Some(Err(Refused::TooLarge));
        }
    }
}

async fn serve_one(mut stream: TcpStream, endpoint: &Endpoint) {
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        // Closed, failed or too slow: nothing to answer.
        Ok(None) | Err(_) => return,
    };
    let (status, content_type, body, head_only) = match head.and_then(|h| parse_head(&h)) {
        Ok(req) => {
            let (status, content_type, body) = route(&req.path, endpoint).await;
            (status, content_type, body, req.head_only)
        }
        Err(Refused::BadRequest) => ("400 Bad Request", TEXT, "bad request\n".into(), false),
        Err(Refused::MethodNotAllowed) => (
            "405 Method Not Allowed",
            TEXT,
            "only GET and HEAD\n".into(),
            false,
        ),
        Err(Refused::TooLarge) => (
            "431 Request Header Fields Too Large",
            TEXT,
            "request head too large\n".into(),
            false,
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        response.extend_from_slice(body.as_bytes());
    }
    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

async fn route(path: &str, endpoint: &Endpoint) -> (&'static str, &'static str, String) {
    match path {
        "/metrics" => {
            let state = NodeState {
                broker: &endpoint.broker,
                controller: Some(&endpoint.controller),
                open_connections: endpoint.open_connections(),
                ready: endpoint.is_ready(),
            };
            ("200 OK", PROMETHEUS, render(&state).await)
        }
        "/health" => ("200 OK", TEXT, "ok\n".into()),
        "/ready" => {
            if endpoint.is_ready() {
                ("200 OK", TEXT, "ready\n".into())
            } else {
                ("503 Service Unavailable", TEXT, "not ready\n".into())
            }
        }
        _ => ("404 Not Found", TEXT, "not found\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed_strictly() {
        assert_eq!(
            parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok(Request {
                head_only: false,
                path: "/metrics".into()
            })
        );
        assert!(parse_head(b"HEAD /ready HTTP/1.0\r\n\r\n").is_ok_and(|r| r.head_only));
        assert_eq!(
            parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(Refused::MethodNotAllowed)
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /metrics HTTP/2\r\n\r\n",
            b"\xff\xfe /x HTTP/1.1\r\n\r\n",
            b"GET  /metrics HTTP/1.1\r\n\r\n",
            b"no line end",
        ] {
            assert_eq!(parse_head(bad), Err(Refused::BadRequest), "{bad:?}");
        }
    }
}
