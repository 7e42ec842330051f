//! The reader: the thread each accepted connection gets, from its first byte to its leave.
//!
//! Owns its connection's read side. It opens the connection (`handshake`: the page, a
//! refusal, or the WebSocket handshake), then reads frames in a blocking loop and turns each
//! into an [`Event`] for the broadcaster: chat lines past the rate limit (`rate_limit`), and
//! for socket.io clients their packets (`socketio`). Its last event is always `Leave`.
//!
//! After the handshake it never writes to its socket: its `WebSocket` sits on a [`ReadSide`],
//! whose `Write` goes into a buffer, so the Pong and Close replies tungstenite makes reach
//! the broadcaster as bytes, like every other reply encoded here. The broadcaster is the only
//! writer from then on.

mod handshake;
mod polling;
mod rate_limit;
mod socketio;
mod upgrade;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{debug, log_enabled, Level};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use crate::config::Config;
use crate::event::{ConnId, DropReason, Endpoint, Event, Join};
use crate::metrics::Shared;
use crate::platform;
use crate::socketio::Eio;
use crate::wire::{self, close_code, Opcode};
use handshake::{ws_config, Route};
pub(crate) use polling::Sessions;
use rate_limit::{flooding, rate_limited, RateLimiter, Verdict};
use socketio::{socketio_greeting, socketio_text};

/// Bytes tungstenite reads per `read(2)`. It is allocated (and zero-filled on every read) per
/// connection, so it is kept small: chat frames are short, and larger ones still arrive whole
/// over several reads.
pub const READ_BUFFER_BYTES: usize = 1024;
/// After a Close, how long the reader keeps draining the socket so the peer gets our Close
/// (and our FIN) instead of a reset caused by unread bytes.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// How the read loop ended.
pub(super) enum End {
    /// The client sent Close; these bytes are tungstenite's reply.
    Replied(Vec<u8>),
    /// The server closes the connection with this code and reason.
    Close(u16, String),
    /// The connection is gone (EOF, reset, I/O error).
    Gone(String),
}

/// The stream under a post-handshake `WebSocket`: reads come from the socket, writes are
/// captured (tungstenite's Pong and Close replies) for the broadcaster to send.
struct ReadSide {
    stream: Arc<TcpStream>,
    replies: Vec<u8>,
}

impl Read for ReadSide {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_retrying(&self.stream, buf)
    }
}

/// A read that retries when interrupted: a read with a timeout returns EINTR when the process
/// is stopped and continued (Ctrl-Z then `fg`, a debugger attaching), which is no reason to end
/// a connection.
pub(super) fn read_retrying(mut stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match stream.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

impl Write for ReadSide {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.replies.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends `Leave` when dropped, so the broadcaster hears of the end of every joined connection,
/// whatever ended it (a panic included).
struct LeaveGuard<'a> {
    id: ConnId,
    events: &'a Sender<Event>,
    joined: bool,
    reason: String,
    dropped: Option<DropReason>,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        if !self.joined {
            return;
        }
        let reason = if std::thread::panicking() {
            // The client hears 1011 rather than a dropped connection.
            let mut bytes = Vec::new();
            wire::encode_close(&mut bytes, close_code::INTERNAL_ERROR, "internal error");
            let _ = self.events.send(Event::Close { id: self.id, bytes });
            "internal error (reader panicked)".to_string()
        } else {
            std::mem::take(&mut self.reason)
        };
        let _ = self.events.send(Event::Leave {
            id: self.id,
            reason,
            dropped: self.dropped,
        });
    }
}

/// Serves one accepted connection, start to end. Runs on the connection's own thread.
pub(crate) fn run(
    id: ConnId,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    config: &Config,
    events: &Sender<Event>,
    metrics: &Shared,
    sessions: &Sessions,
) {
    // Two phases in two frames: the deep one (HTTP, handshake) returns before the long one
    // (the read loop) starts, so its stack pages can be given back (platform::release_unused_stack).
    let mut route = handshake::open(id, &stream, peer, config, metrics, sessions);
    // A kept-alive polling connection may go on with another kind of request.
    while let Some(Route::Polling(head)) = route {
        let Some(other) = polling::serve(id, &stream, peer, *head, config, events, sessions) else {
            return;
        };
        route = handshake::answer(id, &stream, peer, other, config, metrics, sessions);
    }
    match route {
        Some(Route::Upgrade(session)) => upgrade::serve(stream, session, config, events),
        Some(route) => serve(id, stream, peer, route, config, events),
        None => {}
    }
}

/// The WebSocket's life after the handshake: join, read until the end, leave.
#[inline(never)]
fn serve(
    id: ConnId,
    stream: Arc<TcpStream>,
    peer: SocketAddr,
    mut route: Route,
    config: &Config,
    events: &Sender<Event>,
) {
    // A socket.io client's maxPayload: the limit is on the whole frame, `42["message","…"]`.
    let max_message_bytes = match route {
        Route::Echo | Route::Scream => config.echo_max_message_bytes,
        _ => config.max_message_bytes,
    };
    // A client silent for this long (no frame, no Pong to our Pings) is gone.
    let _ = stream.set_read_timeout(Some(config.idle_timeout()));

    let mut guard = LeaveGuard {
        id,
        events,
        joined: false,
        reason: String::new(),
        dropped: None,
    };
    if !announce(id, &stream, peer, &mut route, config, events) {
        return; // the server is stopping
    }
    guard.joined = true;
    let mut ws = websocket(&stream, max_message_bytes);
    platform::release_unused_stack();
    let end = read_loop(
        id,
        &mut ws,
        &mut route,
        RateLimiter::new(config),
        config,
        events,
    );
    guard.dropped = drop_reason(&end);
    guard.reason = finish(id, end, &stream, events);
}

/// Tells the broadcaster of the new client (and, for EIO=3, of its entering); `false` when the
/// server is stopping. Not inlined, like `websocket`: `serve`'s frame stays resident for the
/// connection's life, so what is used only once lives in frames that return.
#[inline(never)]
fn announce(
    id: ConnId,
    stream: &Arc<TcpStream>,
    peer: SocketAddr,
    route: &mut Route,
    config: &Config,
    events: &Sender<Event>,
) -> bool {
    let (endpoint, enter) = endpoint(id, route, config);
    let join = Join {
        id,
        stream: Some(stream.clone()),
        peer,
        endpoint,
    };
    events.send(Event::Join(join)).is_ok() && enter.is_none_or(|e| events.send(e).is_ok())
}

/// The read side of a connection's WebSocket, on the heap (see `announce`).
#[inline(never)]
fn websocket(stream: &Arc<TcpStream>, max_message_bytes: usize) -> Box<WebSocket<ReadSide>> {
    let side = ReadSide {
        stream: stream.clone(),
        replies: Vec::new(),
    };
    let config = ws_config(max_message_bytes);
    Box::new(WebSocket::from_raw_socket(side, Role::Server, Some(config)))
}

/// Why the server ended a connection, when it was the client's fault (for the metrics).
fn drop_reason(end: &End) -> Option<DropReason> {
    let End::Close(code, _) = end else {
        return None;
    };
    match *code {
        close_code::POLICY_VIOLATION => Some(DropReason::RateLimit),
        // The reader closes with 1001 only when the client has been silent too long.
        close_code::GOING_AWAY => Some(DropReason::Heartbeat),
        close_code::PROTOCOL_ERROR
        | close_code::UNSUPPORTED_DATA
        | close_code::INVALID_PAYLOAD
        | close_code::MESSAGE_TOO_BIG => Some(DropReason::ProtocolError),
        _ => None,
    }
}

/// What the broadcaster is told of a route, and for EIO=3 the `Enter` that follows the
/// `Join` at once.
fn endpoint(id: ConnId, route: &mut Route, config: &Config) -> (Endpoint, Option<Event>) {
    match route {
        Route::Chat {
            requested_name,
            requested_room,
        } => {
            let endpoint = Endpoint::Chat {
                requested_name: requested_name.clone(),
                requested_room: requested_room.clone(),
            };
            (endpoint, None)
        }
        Route::SocketIo(session) => {
            let (greeting, enter) = socketio_greeting(id, session, config);
            let server_pings = session.eio() == Eio::V4;
            let endpoint = Endpoint::SocketIo {
                server_pings,
                greeting,
            };
            (endpoint, enter)
        }
        Route::Echo | Route::Scream => (Endpoint::Echo, None),
        Route::Polling(_) | Route::Upgrade(_) => unreachable!("served by reader::polling"),
    }
}

/// Sends the last Close (the reply to the client's, or the server's own) and lets the peer
/// read it; returns the reason for the log.
fn finish(id: ConnId, end: End, stream: &TcpStream, events: &Sender<Event>) -> String {
    match end {
        End::Replied(bytes) => {
            let _ = events.send(Event::Close { id, bytes });
            linger(stream);
            "closed by the client".to_string()
        }
        End::Close(code, why) => {
            let mut bytes = Vec::new();
            wire::encode_close(&mut bytes, code, &why);
            let _ = events.send(Event::Close { id, bytes });
            linger(stream);
            format!("closed by the server ({code} {why})")
        }
        End::Gone(why) => why,
    }
}

/// Reads frames until the connection ends, handing each one to the broadcaster.
fn read_loop(
    id: ConnId,
    ws: &mut WebSocket<ReadSide>,
    route: &mut Route,
    mut limiter: RateLimiter,
    config: &Config,
    events: &Sender<Event>,
) -> End {
    loop {
        let message = match ws.read() {
            Ok(message) => message,
            Err(e) => return end_for(e, config),
        };
        if log_enabled!(Level::Debug) {
            debug!("#{id} <- {}", describe(&message));
        }
        let event = match message {
            Message::Text(text) => match route {
                Route::SocketIo(session) => {
                    match socketio_text(id, &text, session, &mut limiter, config, events) {
                        Ok(()) => continue,
                        Err(end) => return end,
                    }
                }
                Route::Chat { .. } if config.panic_on_message.as_deref() == Some(&*text) => {
                    panic!("fault injection: panic_on_message")
                }
                Route::Chat { .. } => match limiter.check(Instant::now()) {
                    Verdict::Allow => Event::Text { id, text },
                    Verdict::Drop { notify: false } => continue,
                    Verdict::Drop { notify: true } => rate_limited(id, config),
                    Verdict::Flooding => return flooding(),
                },
                Route::Echo => reply(id, Opcode::Text, text.as_bytes()),
                Route::Scream => reply(id, Opcode::Text, scream(&text).as_bytes()),
                Route::Polling(_) | Route::Upgrade(_) => unreachable!("never a read loop's"),
            },
            Message::Binary(data) => match route {
                Route::Echo => reply(id, Opcode::Binary, &data),
                Route::SocketIo(_) => {
                    return End::Close(
                        close_code::UNSUPPORTED_DATA,
                        "binary attachments are not supported: emit text".into(),
                    )
                }
                _ => {
                    return End::Close(
                        close_code::UNSUPPORTED_DATA,
                        "binary messages are not accepted here: send text".into(),
                    )
                }
            },
            Message::Ping(_) => {
                // tungstenite queued the Pong; flushing moves it into our buffer.
                let _ = ws.flush();
                Event::Send {
                    id,
                    bytes: std::mem::take(&mut ws.get_mut().replies),
                }
            }
            Message::Close(_) => {
                // The reply Close (same code) is written into our buffer by the flush.
                let _ = ws.flush();
                return End::Replied(std::mem::take(&mut ws.get_mut().replies));
            }
            Message::Pong(_) | Message::Frame(_) => continue,
        };
        if events.send(event).is_err() {
            return End::Gone("server stopped".into());
        }
    }
}

/// The classic teaching transformation: "hi" → "HI!!!".
fn scream(text: &str) -> String {
    let mut loud = text.to_uppercase();
    loud.push_str("!!!");
    loud
}

pub(super) fn reply(id: ConnId, opcode: Opcode, payload: &[u8]) -> Event {
    let mut bytes = Vec::with_capacity(payload.len() + 10);
    wire::encode_frame(&mut bytes, opcode, payload);
    Event::Send { id, bytes }
}

/// How a read error ends the connection.
fn end_for(error: tungstenite::Error, config: &Config) -> End {
    use tungstenite::Error as E;
    match error {
        E::ConnectionClosed | E::AlreadyClosed => End::Gone("closed".into()),
        E::Io(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => End::Close(
            close_code::GOING_AWAY,
            format!("silent for {:?}: ping timeout", config.idle_timeout()),
        ),
        E::Io(e) => End::Gone(format!("connection error: {e}")),
        E::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            End::Gone("connection dropped without a Close".into())
        }
        E::Protocol(p) => End::Close(close_code::PROTOCOL_ERROR, p.to_string()),
        E::Capacity(c) => End::Close(close_code::MESSAGE_TOO_BIG, c.to_string()),
        E::Utf8(_) => End::Close(
            close_code::INVALID_PAYLOAD,
            "text is not valid UTF-8".into(),
        ),
        e => End::Close(close_code::PROTOCOL_ERROR, e.to_string()),
    }
}

/// Keeps reading (and discarding) until the peer closes or `CLOSE_LINGER` passes, so our
/// Close frame and FIN reach it before the socket is closed.
fn linger(stream: &TcpStream) {
    let until = Instant::now() + CLOSE_LINGER;
    let mut scratch = [0u8; 512];
    loop {
        let now = Instant::now();
        if now >= until || stream.set_read_timeout(Some(until - now)).is_err() {
            return;
        }
        match read_retrying(stream, &mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn describe(message: &Message) -> String {
    match message {
        Message::Text(t) => format!("text {:?}", t.as_str()),
        Message::Binary(b) => format!("binary ({} bytes)", b.len()),
        Message::Ping(p) => format!("ping ({} bytes)", p.len()),
        Message::Pong(p) => format!("pong ({} bytes)", p.len()),
        Message::Close(c) => format!("close {c:?}"),
        Message::Frame(_) => "raw frame".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Invariant 1: after the handshake a reader never writes to its socket. A Ping comes in;
    /// tungstenite's Pong goes to the broadcaster as an event, and the peer gets nothing.
    #[test]
    fn a_ping_becomes_an_event_and_the_reader_writes_nothing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        // A masked Ping with payload "hi" (mask 1,2,3,4), then the peer stops sending.
        let mask = [1u8, 2, 3, 4];
        let payload: Vec<u8> = b"hi".iter().zip(mask).map(|(b, m)| b ^ m).collect();
        peer.write_all(&[&[0x89, 0x82][..], &mask, &payload].concat())
            .unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();

        let side = ReadSide {
            stream: Arc::new(ours),
            replies: Vec::new(),
        };
        let mut ws = WebSocket::from_raw_socket(side, Role::Server, None);
        let mut route = Route::Chat {
            requested_name: None,
            requested_room: None,
        };
        let (events, received) = crossbeam_channel::unbounded();
        let config = Config::default();
        let limiter = RateLimiter::new(&config);
        let end = read_loop(7, &mut ws, &mut route, limiter, &config, &events);
        assert!(
            matches!(end, End::Gone(_)),
            "the peer's end of stream ends the loop"
        );
        match received.try_recv() {
            Ok(Event::Send { id: 7, bytes }) => assert_eq!(bytes, [0x8A, 0x02, b'h', b'i']),
            _ => panic!("the Pong must reach the broadcaster as a Send event"),
        }
        peer.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        match peer.read(&mut buf) {
            Err(e) => assert!(matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut
            )),
            Ok(n) => panic!("the reader wrote {n} bytes to its socket"),
        }
    }

    #[test]
    fn scream_shouts() {
        assert_eq!(scream("hi"), "HI!!!");
        assert_eq!(scream("straße"), "STRASSE!!!");
    }
}
