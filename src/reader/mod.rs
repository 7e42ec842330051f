//! Client reader: the thread each accepted connection gets.
//!
//! Owns its connection's read side. It reads the request head, then either serves the page
//! (a plain HTTP GET) or runs the tungstenite handshake, and after that reads frames in a
//! blocking loop and turns them into [`Event`]s for the broadcaster.
//!
//! It writes to the socket only before and during the handshake (a page, an error status, the
//! 101 response). After the handshake its `WebSocket` sits on a [`ReadSide`], whose `Write`
//! goes into a buffer instead of the socket: the Pong and Close replies tungstenite produces
//! are handed to the broadcaster as bytes, and every other reply is encoded here and handed
//! over the same way (for a socket.io client: the Engine.IO open packet, the answer to its
//! CONNECT, v3 pongs, acknowledgements). The broadcaster is the only writer from then on.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use log::{debug, info, log_enabled, Level};
use tungstenite::error::ProtocolError;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::{HandshakeError, Message, WebSocket};

use crate::broadcaster::{ConnId, Endpoint, Event, Join};
use crate::config::Config;
use crate::http::{self, HeadError};
use crate::protocol::{self, close_code, Opcode};
use crate::socketio::{self, Eio, Session, Step};
use crate::www;

/// Bytes tungstenite reads per `read(2)`. It is allocated (and zero-filled on every read) per
/// connection, so it is kept small: chat frames are short, and larger ones still arrive whole
/// over several reads.
pub const READ_BUFFER_BYTES: usize = 1024;
/// After a Close, how long the reader keeps draining the socket so the peer gets our Close
/// (and our FIN) instead of a reset caused by unread bytes.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// A client dropped by the rate limit hears about it at most this often.
const RATE_NOTICE_INTERVAL: Duration = Duration::from_secs(1);
/// A flood ends when no message has been dropped for this long.
const FLOOD_QUIET: Duration = Duration::from_secs(1);

/// Where a WebSocket connection goes, read from the handshake's path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Chat {
        requested_name: Option<String>,
        requested_room: Option<String>,
    },
    /// The chat, for a socket.io client (`/socket.io/`): its session holds the name and room
    /// asked for.
    SocketIo(Session),
    Echo,
    Scream,
}

/// How the read loop ended.
enum End {
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
fn read_retrying(mut stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
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

/// Sends `Leave` when dropped, so the broadcaster hears of the end of every joined connection,
/// whatever ended it (a panic included).
struct LeaveGuard<'a> {
    id: ConnId,
    events: &'a Sender<Event>,
    joined: bool,
    reason: String,
}

impl Drop for LeaveGuard<'_> {
    fn drop(&mut self) {
        if !self.joined {
            return;
        }
        let reason = if std::thread::panicking() {
            // The client hears 1011 rather than a dropped connection.
            let mut bytes = Vec::new();
            protocol::encode_close(&mut bytes, close_code::INTERNAL_ERROR, "internal error");
            let _ = self.events.send(Event::Close { id: self.id, bytes });
            "internal error (reader panicked)".to_string()
        } else {
            std::mem::take(&mut self.reason)
        };
        let _ = self.events.send(Event::Leave {
            id: self.id,
            reason,
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
) {
    // Two phases in two frames: the deep one (HTTP, handshake) returns before the long one
    // (the read loop) starts, so its stack pages can be given back (release_unused_stack).
    if let Some(route) = open(id, &stream, peer, config) {
        serve(id, stream, peer, route, config, events);
    }
}

/// Reads the request head; serves the page, refuses the request, or completes the WebSocket
/// handshake and returns where the connection goes.
#[inline(never)]
fn open(id: ConnId, stream: &TcpStream, peer: SocketAddr, config: &Config) -> Option<Route> {
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
    handshake(id, peer, stream, &head.bytes, config)
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
    let mut socketio_enter = None;
    let endpoint = match &mut route {
        Route::Chat {
            requested_name,
            requested_room,
        } => Endpoint::Chat {
            requested_name: requested_name.clone(),
            requested_room: requested_room.clone(),
        },
        Route::SocketIo(session) => {
            let (greeting, enter) = socketio_greeting(id, session, config);
            socketio_enter = enter;
            Endpoint::SocketIo {
                eio: session.eio(),
                greeting,
            }
        }
        Route::Echo | Route::Scream => Endpoint::Echo,
    };
    // A socket.io client's maxPayload: the limit is on the whole frame, `42["message","…"]`.
    let max_message_bytes = match route {
        Route::Chat { .. } | Route::SocketIo(_) => config.max_message_bytes,
        Route::Echo | Route::Scream => config.echo_max_message_bytes,
    };
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes));
    // A client silent for this long (no frame, no Pong to our Pings) is gone.
    let _ = stream.set_read_timeout(Some(config.idle_timeout()));

    let mut guard = LeaveGuard {
        id,
        events,
        joined: false,
        reason: String::new(),
    };
    let join = Join {
        id,
        stream: stream.clone(),
        peer,
        endpoint,
    };
    if events.send(Event::Join(join)).is_err() {
        return; // the server is stopping
    }
    guard.joined = true;
    if let Some(enter) = socketio_enter {
        if events.send(enter).is_err() {
            return;
        }
    }

    let side = ReadSide {
        stream: stream.clone(),
        replies: Vec::new(),
    };
    let mut ws = WebSocket::from_raw_socket(side, Role::Server, Some(ws_config));
    release_unused_stack();
    let end = read_loop(id, &mut ws, &mut route, config, events);

    let reason = match end {
        End::Replied(bytes) => {
            let _ = events.send(Event::Close { id, bytes });
            linger(&stream);
            "closed by the client".to_string()
        }
        End::Close(code, why) => {
            let mut bytes = Vec::new();
            protocol::encode_close(&mut bytes, code, &why);
            let _ = events.send(Event::Close { id, bytes });
            linger(&stream);
            format!("closed by the server ({code} {why})")
        }
        End::Gone(why) => why,
    };
    guard.reason = reason;
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
) -> Option<Route> {
    let mut route = None;
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        route = Some(route_request(req, config)?);
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
fn route_request(req: &Request, config: &Config) -> Result<Route, ErrorResponse> {
    let query = req.uri().query().unwrap_or("");
    let route = match req.uri().path() {
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
    if !config.allow_origins.is_empty() {
        let origin = req.headers().get("origin").and_then(|v| v.to_str().ok());
        let allowed = origin.is_some_and(|o| {
            let o = o.trim_end_matches('/');
            config
                .allow_origins
                .iter()
                .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
        });
        if !allowed {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                format!("origin {} is not allowed", origin.unwrap_or("(none)")),
            ));
        }
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

/// Reads frames until the connection ends, handing each one to the broadcaster.
fn read_loop(
    id: ConnId,
    ws: &mut WebSocket<ReadSide>,
    route: &mut Route,
    config: &Config,
    events: &Sender<Event>,
) -> End {
    let mut limiter = RateLimiter::new(config);
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

/// One text frame from a socket.io client: an Engine.IO heartbeat, entering or leaving the
/// chat, or a chat message, which passes the same rate limit as a raw client's. Frames for the
/// client go to the broadcaster as `Send` events; `Err` ends the connection. Kept out of line
/// so its JSON parsing does not deepen the read loop's stack frame for raw clients.
#[inline(never)]
fn socketio_text(
    id: ConnId,
    text: &str,
    session: &mut Session,
    limiter: &mut RateLimiter,
    config: &Config,
    events: &Sender<Event>,
) -> Result<(), End> {
    let step = session
        .on_text(text)
        .map_err(|m| End::Close(m.code, format!("socket.io: {}", m.reason)))?;
    let send = |event| {
        events
            .send(event)
            .map_err(|_| End::Gone("server stopped".into()))
    };
    if matches!(step, Step::Say { .. } | Step::NotText) {
        // Both count against the rate limit, as every line a raw client sends does.
        match limiter.check(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Drop { notify: false } => return Ok(()),
            Verdict::Drop { notify: true } => return send(rate_limited(id, config)),
            Verdict::Flooding => return Err(flooding()),
        }
    }
    match step {
        Step::Nothing => Ok(()),
        Step::Reply(packet) => send(reply(id, Opcode::Text, packet.as_bytes())),
        Step::Enter {
            reply: packet,
            name,
            room,
        } => {
            send(reply(id, Opcode::Text, packet.as_bytes()))?;
            send(Event::Enter {
                id,
                requested_name: name,
                requested_room: room,
            })
        }
        Step::Part => send(Event::Part { id }),
        Step::Close => Err(End::Close(
            close_code::NORMAL,
            "socket.io: the client closed the session".into(),
        )),
        Step::NotText => send(Event::Notice {
            id,
            code: "usage",
            text: "emit('message', text) takes a string.".into(),
        }),
        Step::Say { text, ack } => {
            if config.panic_on_message.as_deref() == Some(&*text) {
                panic!("fault injection: panic_on_message")
            }
            send(Event::Text {
                id,
                text: text.into(),
            })?;
            match ack {
                Some(packet) => send(reply(id, Opcode::Text, packet.as_bytes())),
                None => Ok(()),
            }
        }
    }
}

/// The first frames of a socket.io session: the Engine.IO open packet, and for EIO=3 the
/// CONNECT of the default namespace, which that version's server sends unasked (then the
/// client enters the chat at once: the `Enter` event to send after the `Join`). The heartbeat
/// fits the chat's: pings every `ping_interval`, and a pingTimeout that makes the client's
/// limit (interval + timeout) the reader's idle timeout.
fn socketio_greeting(
    id: ConnId,
    session: &mut Session,
    config: &Config,
) -> (Vec<u8>, Option<Event>) {
    let interval = config.ping_interval.as_millis();
    let timeout = config.idle_timeout().as_millis() - interval;
    let eio = session.eio();
    let max_payload = config.max_message_bytes;
    let open = socketio::open_packet(eio, &new_sid(), interval, timeout, max_payload);
    let mut greeting = Vec::new();
    protocol::encode_frame(&mut greeting, Opcode::Text, open.as_bytes());
    let mut enter = None;
    if eio == Eio::V3 {
        if let Step::Enter { reply, name, room } = session.connect(None) {
            protocol::encode_frame(&mut greeting, Opcode::Text, reply.as_bytes());
            enter = Some(Event::Enter {
                id,
                requested_name: name,
                requested_room: room,
            });
        }
    }
    (greeting, enter)
}

/// A fresh session id: 16 hex digits from std's randomly keyed hasher (keys differ per thread
/// and per call) over the time, so ids are unpredictable and distinct.
fn new_sid() -> String {
    let mut hasher = RandomState::new().build_hasher();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    format!("{:016x}", hasher.finish())
}

/// The notice a client gets (at most once a second) when the rate limit drops its message.
fn rate_limited(id: ConnId, config: &Config) -> Event {
    Event::Notice {
        id,
        code: "rate-limited",
        text: format!(
            "Slow down: at most {} messages a second (bursts of {}). \
             Messages over the limit are not sent.",
            config.rate_limit_per_sec, config.rate_burst
        ),
    }
}

fn flooding() -> End {
    End::Close(
        close_code::POLICY_VIOLATION,
        "flooding: too many messages for too long".into(),
    )
}

/// The classic teaching transformation: "hi" → "HI!!!".
fn scream(text: &str) -> String {
    let mut loud = text.to_uppercase();
    loud.push_str("!!!");
    loud
}

fn reply(id: ConnId, opcode: Opcode, payload: &[u8]) -> Event {
    let mut bytes = Vec::with_capacity(payload.len() + 10);
    protocol::encode_frame(&mut bytes, opcode, payload);
    Event::Send { id, bytes }
}

/// Gives the stack pages the handshake touched back to the OS. A reader then waits in `read`
/// for hours with a shallow stack; without this, the deepest point of its handshake (HTTP
/// parsing, tungstenite's header table) would stay resident for the connection's whole life.
/// Every whole page below the ones in use is released; the read loop touches again only
/// what it uses. Measured with `bench/thread_stacks.py` (release build): 16 KiB touched per
/// reader without this, 8 KiB with it.
fn release_unused_stack() {
    const PAGE_BYTES: usize = 4096;
    // The boundary must lie below this frame and below the return address that the madvise
    // call pushes: a local of a function called from here lies below both. (A local of this
    // frame does not: releasing from just under one zeroed that return address whenever it
    // fell on the next page down, and madvise returned to address 0, a SIGSEGV seen in the
    // release doctests, whose frames are larger.)
    let deepest_in_use = callee_stack_address();
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; pthread_attr_getstack
    // reads its stack bounds; the attr is destroyed after use. madvise(MADV_DONTNEED) is
    // applied only to whole pages of this thread's own stack mapping below the page holding
    // `deepest_in_use`, where no live frame exists: if they are touched again, the kernel
    // hands back zeroed pages.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return;
        }
        let mut low: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut low, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        let low = low as usize;
        let high = deepest_in_use & !(PAGE_BYTES - 1);
        if !ok || low == 0 || low % PAGE_BYTES != 0 || high <= low || high >= low + size {
            return;
        }
        libc::madvise(low as *mut libc::c_void, high - low, libc::MADV_DONTNEED);
    }
}

/// The address of a local one call deeper than the caller: below everything in the caller's
/// frame and below the return address the caller's next call pushes (at the same depth as
/// this call's own).
#[inline(never)]
fn callee_stack_address() -> usize {
    let here = 0u8;
    std::hint::black_box(std::ptr::addr_of!(here)) as usize
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

/// The rate limit's answer for one message.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Allow,
    /// Not sent; `notify` when the sender should hear about it.
    Drop {
        notify: bool,
    },
    /// Over the limit for too long: disconnect.
    Flooding,
}

/// A token bucket per client: `rate` messages a second on average, `burst` at once. A client
/// whose messages keep being dropped for `flood_timeout` is flooding.
struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last_refill: Instant,
    flood_since: Option<Instant>,
    last_drop: Option<Instant>,
    last_notice: Option<Instant>,
    flood_timeout: Duration,
}

impl RateLimiter {
    fn new(config: &Config) -> Self {
        RateLimiter {
            rate_per_sec: f64::from(config.rate_limit_per_sec),
            burst: f64::from(config.rate_burst),
            tokens: f64::from(config.rate_burst),
            last_refill: Instant::now(),
            flood_since: None,
            last_drop: None,
            last_notice: None,
            flood_timeout: config.flood_timeout,
        }
    }

    fn check(&mut self, now: Instant) -> Verdict {
        if self.rate_per_sec == 0.0 {
            return Verdict::Allow;
        }
        let elapsed = now
            .saturating_duration_since(self.last_refill)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        self.last_refill = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        let quiet = self
            .last_drop
            .is_none_or(|t| now.saturating_duration_since(t) >= FLOOD_QUIET);
        if quiet {
            self.flood_since = Some(now);
        }
        self.last_drop = Some(now);
        let since = self.flood_since.unwrap_or(now);
        if now.saturating_duration_since(since) >= self.flood_timeout {
            return Verdict::Flooding;
        }
        let notify = self
            .last_notice
            .is_none_or(|t| now.saturating_duration_since(t) >= RATE_NOTICE_INTERVAL);
        if notify {
            self.last_notice = Some(now);
        }
        Verdict::Drop { notify }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, burst: u32) -> RateLimiter {
        let config = Config {
            rate_limit_per_sec: rate,
            rate_burst: burst,
            flood_timeout: Duration::from_secs(10),
            ..Config::default()
        };
        RateLimiter::new(&config)
    }

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let mut l = limiter(5, 10);
        let t0 = l.last_refill;
        for _ in 0..10 {
            assert_eq!(l.check(t0), Verdict::Allow);
        }
        assert_eq!(l.check(t0), Verdict::Drop { notify: true });
        assert_eq!(l.check(t0), Verdict::Drop { notify: false });
        // 200 ms later one token is back.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(l.check(t1), Verdict::Allow);
        assert_eq!(l.check(t1), Verdict::Drop { notify: false });
        assert_eq!(l.check(t0 + Duration::from_millis(1300)), Verdict::Allow);
    }

    #[test]
    fn sustained_flooding_is_detected_and_a_pause_forgives() {
        let mut l = limiter(5, 10);
        let t0 = l.last_refill;
        let mut t = t0;
        let mut verdict = Verdict::Allow;
        // 100 messages a second for 11 seconds.
        for _ in 0..1100 {
            t += Duration::from_millis(10);
            verdict = l.check(t);
            if verdict == Verdict::Flooding {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Flooding);
        let flood_for = t - t0;
        assert!(flood_for >= Duration::from_secs(10) && flood_for < Duration::from_secs(11));

        let mut l = limiter(5, 10);
        let mut t = l.last_refill;
        // Bursts of 20 with 3-second pauses: dropped, never disconnected.
        for _ in 0..10 {
            for _ in 0..20 {
                assert_ne!(l.check(t), Verdict::Flooding);
            }
            t += Duration::from_secs(3);
        }
    }

    #[test]
    fn zero_rate_turns_the_limit_off() {
        let mut l = limiter(0, 0);
        let t = l.last_refill;
        assert!((0..10_000).all(|_| l.check(t) == Verdict::Allow));
    }

    #[test]
    fn scream_shouts() {
        assert_eq!(scream("hi"), "HI!!!");
        assert_eq!(scream("straße"), "STRASSE!!!");
    }
}
