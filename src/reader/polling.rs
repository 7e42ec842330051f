//! Engine.IO long-polling on the reader's side: the HTTP requests of polling sessions, on the
//! thread of the connection that carries them.
//!
//! Owns the table of polling sessions by sid (shared by every reader; the broadcaster never
//! touches it) and, per session, its socket.io state and rate limiter. A connection carries
//! many requests (keep-alive). The handshake GET joins the session and is answered here; a
//! POST's packets become the same events as a WebSocket's frames and get `ok` from here; a
//! long-poll GET is handed to the broadcaster (`Event::Poll`), which alone writes its
//! response, and this reader reads nothing more from that connection until it is out. The
//! WebSocket that upgrades a session is `reader::upgrade`'s.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Sender;
use log::{debug, info};

use super::rate_limit::RateLimiter;
use super::socketio::{new_sid, socketio_text};
use super::End;
use crate::config::Config;
use crate::engineio::{self, BAD_REQUEST_BODY, UNKNOWN_SID_BODY};
use crate::event::{ConnId, Endpoint, Event, Join, Poll, PollShared};
use crate::http::{self, HeadError, RequestHead};
use crate::socketio::{Eio, Session, Step};
use crate::wire::{self, close_code};

/// A POST body may carry this many messages of the largest size: clients batch what they
/// queued while a POST was in flight (EIO=4 clients keep a batch under maxPayload).
const POST_BODY_MESSAGES: usize = 16;

/// Polling sessions take their ids from here, apart from the connections' (which count up
/// from 1): a session outlives the connections that carry its requests.
static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1 << 48);

/// A session in the table: what tells whether it ended, and its state.
type Listed = (Arc<PollShared>, Arc<Mutex<Entry>>);

/// Every polling session by sid, shared by the readers.
#[derive(Default)]
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Listed>>,
}

impl Sessions {
    /// The live session with this sid.
    fn get(&self, sid: &str) -> Option<Arc<Mutex<Entry>>> {
        let mut map = lock(&self.map);
        match map.get(sid) {
            Some((shared, _)) if shared.ended.load(Ordering::Acquire) => {
                map.remove(sid);
                None
            }
            found => found.map(|(_, entry)| entry.clone()),
        }
    }

    /// How many sessions have not ended.
    fn live(&self) -> usize {
        let map = lock(&self.map);
        (map.values())
            .filter(|(shared, _)| !shared.ended.load(Ordering::Acquire))
            .count()
    }

    /// Adds a session, and forgets those that ended.
    fn insert(&self, sid: String, entry: Entry) {
        let mut map = lock(&self.map);
        map.retain(|_, (shared, _)| !shared.ended.load(Ordering::Acquire));
        let shared = entry.shared.clone();
        map.insert(sid, (shared, Arc::new(Mutex::new(entry))));
    }
}

/// One polling session as its readers follow it.
pub(super) struct Entry {
    id: ConnId,
    session: Session,
    limiter: RateLimiter,
    shared: Arc<PollShared>,
    /// A POST's body is being read and handled.
    posting: bool,
    /// The session went on over a WebSocket: polling requests are refused.
    upgraded: bool,
}

impl Entry {
    /// The session's connection id.
    pub(super) fn id(&self) -> ConnId {
        self.id
    }

    /// The session goes on over a WebSocket: polling requests are refused from now on. Its
    /// socket.io state, or `None` when it ended or already upgraded.
    /// The session's socket.io state and rate limiter for the WebSocket that takes it over
    /// (the limiter goes on: an upgrade must not refill the client's bucket).
    pub(super) fn upgrade(&mut self, config: &Config) -> Option<(Session, RateLimiter)> {
        if self.upgraded || self.shared.ended.load(Ordering::Acquire) {
            return None;
        }
        self.upgraded = true;
        self.touch();
        let limiter = std::mem::replace(&mut self.limiter, RateLimiter::new(config));
        Some((self.session.clone(), limiter))
    }

    fn touch(&self) {
        self.shared.last_seen_ms.store(unix_ms(), Ordering::Release);
    }

    /// Ends the session from a reader: unknown from now on; the broadcaster closes it (the
    /// close packet for a pending GET) and announces the leave.
    fn end(&self, events: &Sender<Event>, why: &str) {
        self.shared.ended.store(true, Ordering::Release);
        let mut bytes = Vec::new();
        wire::encode_close(&mut bytes, close_code::NORMAL, why);
        let _ = events.send(Event::Close { id: self.id, bytes });
        let _ = events.send(Event::Leave {
            id: self.id,
            reason: why.to_string(),
            dropped: None,
        });
    }
}

/// A session, for a `Route` (which is printed in debug logs).
#[derive(Clone)]
pub(super) struct SessionRef(pub Arc<Mutex<Entry>>);

impl fmt::Debug for SessionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "polling session #{}", lock(&self.0).id)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The WebSocket handshake's check of an upgrade: the session for a sid, if it is polling.
pub(super) fn upgrading(sessions: &Sessions, sid: &str) -> Result<SessionRef, String> {
    let entry = sessions.get(sid).ok_or(UNKNOWN_SID_BODY)?;
    if lock(&entry).upgraded {
        return Err(format!("{BAD_REQUEST_BODY}: session {sid} is not polling"));
    }
    Ok(SessionRef(entry))
}

/// What one request leaves of the connection.
enum Next {
    /// Read the next request; these bytes already arrived after this one.
    KeepAlive(Vec<u8>),
    Close,
}

/// A reply written by this reader on its own connection (never one with a GET handed over).
struct Reply<'a> {
    stream: &'a Arc<TcpStream>,
    cors: String,
    keep_alive: bool,
}

impl Reply<'_> {
    /// Writes a response; true when the connection goes on.
    fn send(&self, status: u16, content_type: &str, extra: &str, body: &[u8]) -> bool {
        self.write(status, content_type, extra, body, self.keep_alive)
    }

    fn write(&self, status: u16, ctype: &str, extra: &str, body: &[u8], keep: bool) -> bool {
        let headers = format!("{}{extra}", self.cors);
        let head = http::response_head(status, ctype, body.len(), &headers, keep);
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let mut stream: &TcpStream = self.stream;
        stream.write_all(&bytes).is_ok() && keep
    }

    fn ok(&self) -> bool {
        self.send(200, "text/plain; charset=UTF-8", "", b"ok")
    }

    /// An error in plain text (`<status> <reason>: why`); the connection then closes.
    fn text(&self, status: u16, why: &str) {
        let body = format!("{status} {}: {why}\n", http::reason_phrase(status));
        self.write(
            status,
            "text/plain; charset=UTF-8",
            "",
            body.as_bytes(),
            false,
        );
    }

    /// An engine.io error body (`{"code":…,"message":…}`); the connection then closes.
    fn json(&self, status: u16, body: &str) {
        self.write(status, "application/json", "", body.as_bytes(), false);
    }
}

/// Serves polling requests on one connection until it closes or asks for something else.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
pub(super) fn serve(
    id: ConnId,
    stream: &Arc<TcpStream>,
    peer: SocketAddr,
    mut head: RequestHead,
    config: &Config,
    events: &Sender<Event>,
    sessions: &Sessions,
) -> Option<RequestHead> {
    loop {
        let next = request(stream, peer, &head, config, events, sessions);
        let Next::KeepAlive(rest) = next else {
            // Read what the client still sends (a refused body), so it gets the response
            // rather than a reset.
            let _ = stream.shutdown(Shutdown::Write);
            super::linger(stream);
            return None;
        };
        // A kept-alive connection may wait for its next poll as long as a session may.
        let deadline = Instant::now() + config.idle_timeout();
        head = match http::read_head_after(stream, deadline, config.max_request_bytes, rest) {
            Ok(next) => next,
            Err(HeadError::Malformed(why)) => {
                let _ = http::write_error(stream, 400, &format!("not an HTTP/1.1 request: {why}"));
                return None;
            }
            Err(HeadError::TooLarge) => {
                let _ = http::write_error(stream, 431, "request head too large");
                return None;
            }
            Err(HeadError::Timeout | HeadError::Closed) => return None,
        };
        if head.wants_websocket || !is_polling(&head) {
            // Another kind of request (a browser reuses the connection for a page's files):
            // the caller answers it as the first request of a connection.
            return Some(head);
        }
        debug!("#{id} {peer} {} {}", head.method, head.target);
    }
}

/// True for a request of the polling transport (`transport=polling` under the socket.io path).
pub(super) fn is_polling(head: &RequestHead) -> bool {
    let query = head.target.split_once('?').map_or("", |(_, q)| q);
    matches!(head.path(), "/socket.io/" | "/socket.io")
        && http::query_param(query, "transport").as_deref() == Some("polling")
}

/// One polling request: CORS and the preflight, the query's checks, then the handshake, a
/// long-poll GET or a POST.
fn request(
    stream: &Arc<TcpStream>,
    peer: SocketAddr,
    head: &RequestHead,
    config: &Config,
    events: &Sender<Event>,
    sessions: &Sessions,
) -> Next {
    let origin = head.header("origin");
    let reply = Reply {
        stream,
        cors: cors_headers(origin),
        keep_alive: head.keep_alive(),
    };
    let rest = head.bytes[head.head_len..].to_vec();
    let keep = |ok: bool, rest: Vec<u8>| {
        if ok {
            Next::KeepAlive(rest)
        } else {
            Next::Close
        }
    };
    if !config.allows_origin(origin) {
        let why = format!("origin {} is not allowed", origin.unwrap_or("(none)"));
        info!("{peer} polling refused: {why}");
        reply.text(403, &why);
        return Next::Close;
    }
    if head.method == "OPTIONS" {
        return keep(preflight(&reply, head), rest);
    }
    let query = head.target.split_once('?').map_or("", |(_, q)| q);
    let eio = match engineio::check_polling_query(query) {
        Ok(eio) => eio,
        Err(why) => {
            reply.text(400, &why);
            return Next::Close;
        }
    };
    let sid = http::query_param(query, "sid");
    match (head.method.as_str(), sid) {
        ("GET", None) => keep(
            handshake(&reply, peer, eio, query, config, events, sessions),
            rest,
        ),
        ("GET" | "POST", Some(sid)) => {
            let Some(entry) = sessions.get(&sid) else {
                reply.json(400, UNKNOWN_SID_BODY);
                return Next::Close;
            };
            if head.method == "GET" {
                long_poll(&reply, &entry, events, config, rest)
            } else {
                post(&reply, head, &entry, events, config)
            }
        }
        ("POST", None) => {
            reply.json(400, r#"{"code":2,"message":"Bad handshake method"}"#);
            Next::Close
        }
        (method, _) => {
            let why = format!("405 Method Not Allowed: polling takes GET and POST, not {method}\n");
            let allow = "Allow: GET, POST, OPTIONS\r\n";
            reply.write(
                405,
                "text/plain; charset=UTF-8",
                allow,
                why.as_bytes(),
                false,
            );
            Next::Close
        }
    }
}

/// socket.io-client sends its requests with credentials: a request with an `Origin` gets it
/// echoed, with credentials allowed (a same-origin page sends none and needs none).
fn cors_headers(origin: Option<&str>) -> String {
    origin.map_or_else(String::new, |o| {
        format!(
            "Access-Control-Allow-Origin: {o}\r\nAccess-Control-Allow-Credentials: true\r\n\
             Vary: Origin\r\n"
        )
    })
}

/// Answers an `OPTIONS` preflight: the methods, the headers asked for, cached for a day.
fn preflight(reply: &Reply<'_>, head: &RequestHead) -> bool {
    let allow_headers = head
        .header("access-control-request-headers")
        .unwrap_or("content-type");
    let extra = format!(
        "Access-Control-Allow-Methods: GET, POST, OPTIONS\r\n\
         Access-Control-Allow-Headers: {allow_headers}\r\nAccess-Control-Max-Age: 86400\r\n"
    );
    reply.send(204, "text/plain", &extra, b"")
}

/// A new session: it joins the broadcaster, and the open packet (for EIO=3 with the CONNECT
/// of `/`, and the chat entered at once) is the response. False when the connection ends.
fn handshake(
    reply: &Reply<'_>,
    peer: SocketAddr,
    eio: Eio,
    query: &str,
    config: &Config,
    events: &Sender<Event>,
    sessions: &Sessions,
) -> bool {
    // A session is a client: --max-clients counts it (its requests' connections come and go).
    if sessions.live() >= config.max_clients {
        let why = format!("server full: {} clients", config.max_clients);
        reply.write(503, "text/plain; charset=UTF-8", "", why.as_bytes(), false);
        return false;
    }
    let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    let sid = new_sid();
    let name = http::query_param(query, "username").or_else(|| http::query_param(query, "name"));
    let mut session = Session::new(eio, new_sid(), name, http::query_param(query, "room"));
    let shared = Arc::new(PollShared::default());
    shared.last_seen_ms.store(unix_ms(), Ordering::Release);
    let endpoint = Endpoint::Polling {
        eio3: eio == Eio::V3,
        shared: shared.clone(),
    };
    let join = Join {
        id,
        stream: None,
        peer,
        endpoint,
    };
    if events.send(Event::Join(join)).is_err() {
        return false;
    }
    let interval = config.ping_interval.as_millis();
    let timeout = config.idle_timeout().as_millis() - interval;
    let open = engineio::open_packet(eio, &sid, interval, timeout, config.max_message_bytes);
    let mut packets = vec![open];
    if eio == Eio::V3 {
        if let Step::Enter { reply, name, room } = session.connect(None) {
            packets.push(reply);
            let enter = Event::Enter {
                id,
                requested_name: name,
                requested_room: room,
            };
            if events.send(enter).is_err() {
                return false;
            }
        }
    }
    let entry = Entry {
        id,
        session,
        limiter: RateLimiter::new(config),
        shared,
        posting: false,
        upgraded: false,
    };
    sessions.insert(sid, entry);
    let packets: Vec<&str> = packets.iter().map(String::as_str).collect();
    let body = engineio::encode_payload(eio, &packets);
    reply.send(200, "text/plain; charset=UTF-8", "", &body)
}

/// A long-poll GET: handed to the broadcaster, which answers it when packets are queued;
/// this thread waits for that before it reads the connection again.
fn long_poll(
    reply: &Reply<'_>,
    entry: &Mutex<Entry>,
    events: &Sender<Event>,
    config: &Config,
    rest: Vec<u8>,
) -> Next {
    let (done, answered) = crossbeam_channel::bounded(1);
    {
        let e = lock(entry);
        if e.upgraded {
            reply.json(400, BAD_REQUEST_BODY);
            return Next::Close;
        }
        if e.shared.getting.swap(true, Ordering::AcqRel) {
            // engine.io: a second GET while one is pending closes the session.
            e.end(events, "overlapping GET");
            reply.json(400, BAD_REQUEST_BODY);
            return Next::Close;
        }
        e.touch();
        let poll = Poll {
            id: e.id,
            stream: reply.stream.clone(),
            headers: reply.cors.clone(),
            done,
        };
        if events.send(Event::Poll(poll)).is_err() {
            return Next::Close;
        }
    }
    // The broadcaster answers within a ping interval (v4 pings, v3 clients ping); a session
    // that ends lets go of its GET.
    let wait = config.idle_timeout() + config.handshake_timeout;
    let written = answered.recv_timeout(wait).unwrap_or(false);
    lock(entry).touch();
    if written && reply.keep_alive {
        Next::KeepAlive(rest)
    } else {
        Next::Close
    }
}

/// A POST: its body read (within the handshake timeout and the size limit), its packets
/// turned into events like a WebSocket's frames, and `ok`. Anything wrong ends the session.
fn post(
    reply: &Reply<'_>,
    head: &RequestHead,
    entry: &Mutex<Entry>,
    events: &Sender<Event>,
    config: &Config,
) -> Next {
    {
        let mut e = lock(entry);
        if e.upgraded {
            reply.json(400, BAD_REQUEST_BODY);
            return Next::Close;
        }
        if e.posting {
            e.end(events, "overlapping POST");
            reply.json(400, BAD_REQUEST_BODY);
            return Next::Close;
        }
        e.posting = true;
        e.touch();
    }
    let outcome = read_body(reply.stream, head, config);
    let mut e = lock(entry);
    e.posting = false;
    let (body, rest) = match outcome {
        Ok(read) => read,
        Err((status, why)) => {
            e.end(events, &why);
            reply.text(status, &why);
            return Next::Close;
        }
    };
    match handle_payload(&mut e, &body, events, config) {
        Ok(()) if reply.ok() => Next::KeepAlive(rest),
        Ok(()) => Next::Close,
        Err((200, why)) => {
            e.end(events, &why); // the client's close packet
            reply.ok();
            Next::Close
        }
        Err((status, why)) => {
            e.end(events, &why);
            reply.text(status, &why);
            Next::Close
        }
    }
}

type Refusal = (u16, String);

/// Reads a POST's body: what came with the head, then the socket, until `Content-Length`
/// bytes are in; returns the body and what followed it.
fn read_body(
    stream: &TcpStream,
    head: &RequestHead,
    config: &Config,
) -> Result<(Vec<u8>, Vec<u8>), Refusal> {
    let limit = config.max_message_bytes * POST_BODY_MESSAGES;
    let len: usize = match head.header("content-length").map(str::parse) {
        Some(Ok(len)) => len,
        Some(Err(_)) => return Err((400, "bad Content-Length".into())),
        None => return Err((411, "a POST needs a Content-Length".into())),
    };
    if len > limit {
        return Err((413, format!("a body of {len} bytes: at most {limit}")));
    }
    let mut body = head.bytes[head.head_len..].to_vec();
    let deadline = Instant::now() + config.handshake_timeout;
    let mut buf = [0u8; 4096];
    while body.len() < len {
        let now = Instant::now();
        if now >= deadline || stream.set_read_timeout(Some(deadline - now)).is_err() {
            return Err((408, "the body did not arrive in time".into()));
        }
        match super::read_retrying(stream, &mut buf) {
            Ok(0) => return Err((400, "the connection closed inside the body".into())),
            Ok(n) => body.extend_from_slice(&buf[..n]),
            Err(_) => return Err((408, "the body did not arrive in time".into())),
        }
    }
    let rest = body.split_off(len);
    Ok((body, rest))
}

/// A POST body's packets, each through the session like a WebSocket text frame.
fn handle_payload(
    e: &mut Entry,
    body: &[u8],
    events: &Sender<Event>,
    config: &Config,
) -> Result<(), Refusal> {
    let text = std::str::from_utf8(body).map_err(|_| (400, "the body is not UTF-8".to_string()))?;
    let packets = engineio::decode_payload(e.session.eio(), text).map_err(|b| (400, b.0))?;
    for packet in packets {
        if packet.len() > config.max_message_bytes {
            let max = config.max_message_bytes;
            return Err((
                413,
                format!("a packet of {} bytes: at most {max}", packet.len()),
            ));
        }
        let (id, session, limiter) = (e.id, &mut e.session, &mut e.limiter);
        match socketio_text(id, packet, session, limiter, config, events) {
            Ok(()) => {}
            Err(End::Close(code, why)) if code == close_code::NORMAL => {
                return Err((200, why));
            }
            Err(End::Close(_, why) | End::Gone(why)) => return Err((400, why)),
            Err(End::Replied(_)) => return Err((400, "closed".into())),
        }
    }
    Ok(())
}
