//! Opening a connection: the request head, then the page, `/metrics` or `/healthz`, a
//! refusal, or the WebSocket handshake and the route it takes.
//!
//! Runs on the connection's own reader thread, before anything is joined: this is the only
//! code that writes to a client socket outside the broadcaster (a page, an error status, the
//! 101 response), and it is done before the broadcaster ever sees the socket.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Instant;

use log::{debug, info};
use tungstenite::error::ProtocolError;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::HandshakeError;

use super::polling::{self, SessionRef, Sessions};
use super::read_retrying;
use super::socketio::new_sid;
use crate::config::{Config, MetricsAccess};
use crate::event::ConnId;
use crate::http::{self, HeadError, RequestHead};
use crate::metrics::{exposition, Shared};
use crate::socketio::{self, Session};
use crate::www;

/// Where a WebSocket connection goes, read from the handshake's path and query.
#[derive(Debug)]
pub(super) enum Route {
    Chat {
        requested_name: Option<String>,
        requested_room: Option<String>,
    },
    /// The chat, for a socket.io client (`/socket.io/`): its session holds the name and room
    /// asked for.
    SocketIo(Session),
    /// A socket.io long-polling request (not a WebSocket): the polling reader serves it and
    /// the requests after it on the same connection.
    Polling(Box<RequestHead>),
    /// A WebSocket with a polling session's sid: it probes, then carries the session.
    Upgrade(SessionRef),
    Echo,
    Scream,
}

/// The WebSocket settings of a connection whose messages are at most `max_message_bytes`.
pub(super) fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(super::READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// The stream tungstenite's handshake runs on: first the request head already read, then the
/// socket; writes (the 101 response or an error status) go to the socket.
struct Replay<'a> {
    head: &'a [u8],
    stream: &'a TcpStream,
}

impl Read for Replay<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.head.is_empty() {
            return read_retrying(self.stream, buf);
        }
        let n = self.head.len().min(buf.len());
        buf[..n].copy_from_slice(&self.head[..n]);
        self.head = &self.head[n..];
        Ok(n)
    }
}

impl Write for Replay<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// Reads the request head; serves the page, refuses the request, or completes the WebSocket
/// handshake and returns where the connection goes.
#[inline(never)]
pub(super) fn open(
    id: ConnId,
    stream: &TcpStream,
    peer: SocketAddr,
    config: &Config,
    metrics: &Shared,
    sessions: &Sessions,
) -> Option<Route> {
    let deadline = Instant::now() + config.handshake_timeout;
    let _ = stream.set_write_timeout(Some(config.handshake_timeout));
    let head = match http::read_head(stream, deadline, config.max_request_bytes) {
        Ok(head) => head,
        Err(e) => {
            let (status, msg) = match e {
                HeadError::Timeout => (408, "no complete request head in time".to_string()),
                HeadError::TooLarge => (431, "request head too large".to_string()),
                HeadError::Malformed(why) => (400, format!("not an HTTP/1.1 request: {why}")),
                HeadError::Closed => return None,
            };
            debug!("#{id} {peer}: {status} {msg}");
            let _ = http::write_error(stream, status, &msg);
            return None;
        }
    };
    answer(id, stream, peer, head, config, metrics, sessions)
}

/// Answers a request head: a polling request's route, the page, an operations endpoint or a
/// refusal, or the WebSocket handshake. Also for a request that follows polling requests on a
/// kept-alive connection (a browser reuses those for the page's other files).
#[inline(never)]
pub(super) fn answer(
    id: ConnId,
    stream: &TcpStream,
    peer: SocketAddr,
    head: RequestHead,
    config: &Config,
    metrics: &Shared,
    sessions: &Sessions,
) -> Option<Route> {
    if !head.wants_websocket && polling::is_polling(&head) {
        // Two requests per message: the broadcaster logs the session's start and end instead.
        debug!("#{id} {peer} {} {}", head.method, head.target);
        return Some(Route::Polling(Box::new(head)));
    }
    if !head.wants_websocket {
        if let Some(status) = operations(stream, peer, &head, config, metrics) {
            info!("#{id} {peer} {} {} -> {status}", head.method, head.target);
            return None;
        }
    }
    if !head.wants_websocket && socketio::is_socketio_path(head.path()) {
        // A polling request (a client created without transports: ['websocket']), or a page
        // asking for the client library: say what to do instead.
        let query = head.target.split_once('?').map_or("", |(_, q)| q);
        let (status, reason) = socketio::http_refusal(head.path(), query);
        let body = format!("{status} {}: {reason}\n", http::reason_phrase(status));
        // Readable by a page on another origin, so the reason shows in its developer tools.
        let _ = http::write_response(
            stream,
            status,
            "text/plain; charset=utf-8",
            "Access-Control-Allow-Origin: *\r\n",
            body.as_bytes(),
            head.method != "HEAD",
        );
        info!(
            "#{id} {peer} {} {} -> {status}: {reason}",
            head.method, head.target
        );
        return None;
    }
    if !head.wants_websocket {
        let status = www::serve(stream, &head, config);
        info!("#{id} {peer} {} {} -> {status}", head.method, head.target);
        return None;
    }
    handshake(id, peer, stream, &head.bytes, config, sessions)
}

/// Answers `GET /healthz` and `GET /metrics`; `None` for any other path (and for
/// `/metrics` with `--metrics off`, which then gets the page's 404).
///
/// Both are answered here, on the reader's thread, from what the broadcaster published: a
/// stuck broadcaster cannot hold them up, and `/healthz` can say that it is stuck.
fn operations(
    stream: &TcpStream,
    peer: SocketAddr,
    head: &RequestHead,
    config: &Config,
    metrics: &Shared,
) -> Option<u16> {
    let path = head.path();
    if path != "/healthz" && (path != "/metrics" || config.metrics == MetricsAccess::Off) {
        return None;
    }
    if head.method != "GET" && head.method != "HEAD" {
        let _ = http::write_error(stream, 405, "only GET and HEAD are served here");
        return Some(405);
    }
    let (status, content_type, body) = if path == "/healthz" {
        let health = metrics.health(config.stuck_round_after);
        let body = format!("{}\n", health.reason);
        (health.status, "text/plain; charset=utf-8", body)
    } else if !metrics_allowed(config.metrics, peer.ip()) {
        let why = "403 Forbidden: metrics are served to this machine only (--metrics loopback)";
        (403, "text/plain; charset=utf-8", format!("{why}\n"))
    } else {
        let text = exposition::render(&metrics.snapshot());
        (200, exposition::CONTENT_TYPE, text)
    };
    let send_body = head.method != "HEAD";
    let no_cache = "Cache-Control: no-store\r\n";
    let _ = http::write_response(
        stream,
        status,
        content_type,
        no_cache,
        body.as_bytes(),
        send_body,
    );
    Some(status)
}

/// Whether a peer may read `/metrics`. Loopback includes IPv4-mapped 127.0.0.1, the address a
/// local IPv4 client has on a server bound to `::`.
fn metrics_allowed(access: MetricsAccess, peer: IpAddr) -> bool {
    match access {
        MetricsAccess::On => true,
        MetricsAccess::Loopback => peer.to_canonical().is_loopback(),
        MetricsAccess::Off => false,
    }
}

/// Runs tungstenite's handshake; on success returns where the connection goes. Failures get
/// an HTTP status with a reason (from the callback, or written here) and return `None`.
#[allow(clippy::result_large_err)] // the callback's error type is tungstenite's
fn handshake(
    id: ConnId,
    peer: SocketAddr,
    stream: &TcpStream,
    head: &[u8],
    config: &Config,
    sessions: &Sessions,
) -> Option<Route> {
    let mut route = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        route = Some(route_request(req, config, sessions)?);
        Ok(resp)
    };
    let handshake_config = WebSocketConfig::default().read_buffer_size(256);
    let replay = Replay { head, stream };
    let failure =
        match tungstenite::accept_hdr_with_config(replay, callback, Some(handshake_config)) {
            Ok(_) => None,
            Err(HandshakeError::Failure(e)) => Some(e),
            Err(HandshakeError::Interrupted(_)) => {
                Some(tungstenite::Error::Io(ErrorKind::TimedOut.into()))
            }
        };
    let Some(error) = failure else {
        return route;
    };
    match error {
        tungstenite::Error::Http(resp) => {
            info!("#{id} {peer} refused: HTTP {}", resp.status());
        }
        tungstenite::Error::Protocol(p) => {
            let status = match p {
                ProtocolError::MissingSecWebSocketVersionHeader => 426,
                _ => 400,
            };
            info!("#{id} {peer} bad handshake: {p}");
            let _ = write_handshake_error(stream, status, &p.to_string());
        }
        e => debug!("#{id} {peer} handshake failed: {e}"),
    }
    None
}

fn write_handshake_error(stream: &TcpStream, status: u16, message: &str) -> io::Result<()> {
    if status == 426 {
        let body = format!("426 Upgrade Required: {message}\n");
        return http::write_response(
            stream,
            426,
            "text/plain; charset=utf-8",
            "Sec-WebSocket-Version: 13\r\n",
            body.as_bytes(),
            true,
        );
    }
    http::write_error(stream, status, message)
}

/// Decides where a WebSocket request goes, or refuses it with a status and a reason.
#[allow(clippy::result_large_err)] // tungstenite's ErrorResponse, returned once per connection
fn route_request(
    req: &Request,
    config: &Config,
    sessions: &Sessions,
) -> Result<Route, ErrorResponse> {
    let query = req.uri().query().unwrap_or("");
    let path = req.uri().path();
    let sid = http::query_param(query, "sid");
    let route = match path {
        "/socket.io/" | "/socket.io" if sid.is_some() => {
            socketio::check_query(query)
                .map_err(|reason| refuse(StatusCode::BAD_REQUEST, reason))?;
            let sid = sid.unwrap_or_default();
            polling::upgrading(sessions, &sid)
                .map(Route::Upgrade)
                .map_err(|reason| refuse(StatusCode::BAD_REQUEST, reason))?
        }
        "/" => Route::Chat {
            requested_name: http::query_param(query, "name")
                .or_else(|| http::query_param(query, "username")),
            requested_room: http::query_param(query, "room"),
        },
        "/socket.io/" | "/socket.io" => match socketio::check_query(query) {
            Ok(eio) => Route::SocketIo(Session::new(
                eio,
                new_sid(),
                http::query_param(query, "username").or_else(|| http::query_param(query, "name")),
                http::query_param(query, "room"),
            )),
            Err(reason) => return Err(refuse(StatusCode::BAD_REQUEST, reason)),
        },
        "/echo" => Route::Echo,
        "/scream" => Route::Scream,
        other => {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!(
                    "no WebSocket endpoint at {other}: use /, /echo, /scream or {} (socket.io)",
                    socketio::PATH
                ),
            ))
        }
    };
    let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
    if !config.allows_origin(origin) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            format!("origin {} is not allowed", origin.unwrap_or("(none)")),
        ));
    }
    Ok(route)
}

/// An HTTP error response for the handshake callback, with a plain-text reason.
fn refuse(status: StatusCode, message: String) -> ErrorResponse {
    let body = format!("{status}: {message}\n");
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain; charset=utf-8")
        .header("Content-Length", body.len())
        .header("Connection", "close")
        .body(Some(body))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_loopback_only_refuse_other_peers() {
        let allowed = |ip: &str| metrics_allowed(MetricsAccess::Loopback, ip.parse().unwrap());
        assert!(allowed("127.0.0.1") && allowed("::1") && allowed("::ffff:127.0.0.1"));
        assert!(!allowed("192.168.1.23") && !allowed("fe80::1") && !allowed("::ffff:10.0.0.2"));
        let anyone = "192.168.1.23".parse().unwrap();
        assert!(metrics_allowed(MetricsAccess::On, anyone));
        assert!(!metrics_allowed(
            MetricsAccess::Off,
            "127.0.0.1".parse().unwrap()
        ));
    }
}
