//! The outbox: every joined client's write side, and the only code that writes to one.
//!
//! Owns, per client, the shared socket, its wire format, its heartbeat, its unsent bytes and
//! whether it is closing; and for all of them the list of clients with bytes to send. A chat
//! event is encoded at most once per wire format and the same bytes are appended to every
//! recipient of that format. Writes never block (`platform::send_nonblocking`): what a socket
//! does not take waits in that client's backlog, and a backlog that grows too large or lasts
//! too long drops the client. The broadcaster thread owns it and drives its flushes.

mod buffer;
mod polling;

use std::collections::HashMap;
use std::io::ErrorKind;
use std::mem;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, log_enabled, Level};

use crate::config::Config;
use crate::event::{ConnId, Endpoint, Join, Slot};
use crate::metrics::{Kind, OutboxCounts};
use crate::platform;
use crate::socketio::Eio;
use crate::wire::{self, ChatEvent, Encoder, Opcode, Wire};
pub(crate) use buffer::KEEP_CAPACITY_BYTES;
use buffer::{MemoryReturn, OutBuffer};
use polling::{list_poll, response_written, take_response, PollSide};

/// Kernel send buffer of a chat socket (Linux doubles it for bookkeeping). Chat traffic is
/// small; a fixed buffer keeps a stuck client from holding megabytes of kernel memory and
/// makes its backlog, and the limits on it, start early.
const CHAT_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// What the heartbeat sends a client, so that a live one answers and its reader's idle
/// timeout only ends dead connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    /// A WebSocket Ping: browsers and WebSocket libraries answer Pong by themselves.
    Ping,
    /// The Engine.IO v4 ping packet `2`: socket.io-client v3 and v4 answer `3`.
    EngineIoPing,
    /// Nothing: an EIO=3 client (socket.io-client v2) pings by itself, its reader answers.
    None,
}

/// One joined client's write side.
struct Client {
    id: ConnId,
    kind: Kind,
    /// The socket to write; for a polling session, the pending GET's while its response is
    /// being written, else none.
    stream: Option<Arc<TcpStream>>,
    /// A long-polling session's packets and GETs (none once upgraded to a WebSocket).
    poll: Option<Box<PollSide>>,
    peer: SocketAddr,
    wire: Wire,
    heartbeat: Heartbeat,
    out: OutBuffer,
    /// When its unsent bytes stopped fitting into its socket.
    backlog_since: Option<Instant>,
    max_backlog_bytes: usize,
    /// A Close frame is queued: nothing may follow it.
    closing: bool,
    /// The write side is shut (after the Close frame went out).
    write_closed: bool,
}

/// What this round has queued so far, for the broadcaster's round budget.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct RoundUsage {
    /// Bytes encoded for events to several clients (each format once).
    pub broadcast_bytes: usize,
    /// Bytes appended to buffers, over all clients (a broadcast to N counts N times).
    pub queued_bytes: usize,
}

/// A client whose write failed or whose backlog broke a limit, found during a flush.
pub(crate) struct Dead {
    pub slot: Slot,
    pub why: String,
    /// The peer had already closed or reset the connection (not a drop by the server).
    pub peer_gone: bool,
}

/// Every joined client's write side. See the module comment.
pub(crate) struct Outbox {
    clients: Vec<Option<Client>>,
    by_id: HashMap<ConnId, Slot>,
    /// Slots free for a newcomer.
    free: Vec<Slot>,
    /// Slots emptied since the last flush began: reused only after it, so that `pending`
    /// never names a newer client by an older one's entry.
    released: Vec<Slot>,
    /// Clients with unsent bytes. A client is listed once, when its buffer stops being
    /// empty, and stays listed (here or in `backlogged`) until it is empty again.
    pending: Vec<Slot>,
    /// Clients whose socket did not take everything in this flush.
    backlogged: Vec<Slot>,
    encoder: Encoder,
    /// The event being delivered, encoded once per format: classic and Socket.IO.
    classic_frame: Vec<u8>,
    socketio_frame: Vec<u8>,
    ping_frame: Vec<u8>,
    engineio_ping_frame: Vec<u8>,
    pub usage: RoundUsage,
    /// What `/metrics` shows of the outbox: plain counters, published by the broadcaster.
    pub counts: OutboxCounts,
    memory: MemoryReturn,
    max_backlog_bytes: usize,
    echo_max_backlog_bytes: usize,
    backlog_timeout: Duration,
    /// Events encoded by `broadcast`, one per format used.
    #[cfg(test)]
    encodes: usize,
}

impl Outbox {
    pub fn new(config: &Config) -> Outbox {
        let mut ping_frame = Vec::new();
        wire::encode_frame(&mut ping_frame, Opcode::Ping, b"");
        let mut engineio_ping_frame = Vec::new();
        let ping = wire::ENGINEIO_PING.as_bytes();
        wire::encode_frame(&mut engineio_ping_frame, Opcode::Text, ping);
        Outbox {
            clients: Vec::new(),
            by_id: HashMap::new(),
            free: Vec::new(),
            released: Vec::new(),
            pending: Vec::new(),
            backlogged: Vec::new(),
            encoder: Encoder::new(),
            classic_frame: Vec::new(),
            socketio_frame: Vec::new(),
            ping_frame,
            engineio_ping_frame,
            usage: RoundUsage::default(),
            counts: OutboxCounts::default(),
            memory: MemoryReturn::default(),
            max_backlog_bytes: config.max_backlog_bytes,
            echo_max_backlog_bytes: config.echo_max_backlog_bytes,
            backlog_timeout: config.backlog_timeout,
            #[cfg(test)]
            encodes: 0,
        }
    }

    /// Takes over the write side of a connection that finished its handshake.
    pub fn add(&mut self, join: &Join) -> Slot {
        let (kind, wire, heartbeat, max_backlog_bytes, send_buffer) = match join.endpoint {
            Endpoint::Chat { .. } => (
                Kind::Chat,
                Wire::Classic,
                Heartbeat::Ping,
                self.max_backlog_bytes,
                Some(CHAT_SEND_BUFFER_BYTES),
            ),
            Endpoint::SocketIo { server_pings, .. } => (
                Kind::SocketIoWebSocket,
                Wire::SocketIo,
                if server_pings {
                    Heartbeat::EngineIoPing
                } else {
                    Heartbeat::None
                },
                self.max_backlog_bytes,
                Some(CHAT_SEND_BUFFER_BYTES),
            ),
            Endpoint::Polling { eio3, .. } => (
                Kind::SocketIoPolling,
                Wire::SocketIo,
                if eio3 {
                    Heartbeat::None
                } else {
                    Heartbeat::EngineIoPing
                },
                self.max_backlog_bytes,
                None,
            ),
            Endpoint::Echo => (
                Kind::Echo,
                Wire::Classic,
                Heartbeat::Ping,
                self.echo_max_backlog_bytes,
                None,
            ),
        };
        if let Some(stream) = &join.stream {
            platform::prepare_write_side(stream, send_buffer);
        }
        let poll = match &join.endpoint {
            Endpoint::Polling { eio3, shared } => {
                let eio = if *eio3 { Eio::V3 } else { Eio::V4 };
                Some(Box::new(PollSide::new(eio, shared.clone())))
            }
            _ => None,
        };
        self.counts.connections[kind as usize] += 1;
        let client = Client {
            id: join.id,
            kind,
            stream: join.stream.clone(),
            poll,
            peer: join.peer,
            wire,
            heartbeat,
            out: OutBuffer::default(),
            backlog_since: None,
            max_backlog_bytes,
            closing: false,
            write_closed: false,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.clients[slot] = Some(client);
                slot
            }
            None => {
                self.clients.push(Some(client));
                self.clients.len() - 1
            }
        };
        self.by_id.insert(join.id, slot);
        slot
    }

    /// The slot of connection `id`, while it is joined.
    pub fn slot(&self, id: ConnId) -> Option<Slot> {
        self.by_id.get(&id).copied()
    }

    /// Every joined client's slot.
    pub fn slots(&self) -> Vec<Slot> {
        self.by_id.values().copied().collect()
    }

    /// True while some client has unsent bytes.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// How many clients are joined.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// `#id peer` of the client in `slot`, for logs.
    pub fn label(&self, slot: Slot) -> String {
        self.client(slot)
            .map_or_else(|| "(gone)".into(), |c| format!("#{} {}", c.id, c.peer))
    }

    /// True once a Close frame is queued for the client.
    pub fn is_closing(&self, slot: Slot) -> bool {
        self.client(slot).is_some_and(|c| c.closing)
    }

    /// Queues complete frames for one client, as they are.
    pub fn queue(&mut self, slot: Slot, frames: &[u8]) {
        self.usage.queued_bytes += frames.len();
        if log_enabled!(Level::Debug) {
            debug!("-> {}: {}", self.label(slot), wire::describe_frames(frames));
        }
        self.append(slot, frames);
    }

    /// Queues a Close frame: the last bytes the client gets; its write side is shut once the
    /// frame is out. False if a Close was already queued.
    pub fn close(&mut self, slot: Slot, close_frame: &[u8]) -> bool {
        if self.is_closing(slot) {
            return false;
        }
        self.queue(slot, close_frame);
        if let Some(c) = self.client_mut(slot) {
            c.closing = true;
        }
        true
    }

    /// Queues the server's own Close frame with `code` and `reason`.
    pub fn close_with(&mut self, slot: Slot, code: u16, reason: &str) -> bool {
        let mut frame = Vec::new();
        wire::encode_close(&mut frame, code, reason);
        self.close(slot, &frame)
    }

    /// `event` for each slot in `to` but `except`, each in its own format: every format is
    /// encoded the first time a recipient needs it, and the same bytes go to all its readers.
    pub fn broadcast(
        &mut self,
        to: &[Slot],
        except: Option<Slot>,
        event: &ChatEvent<'_>,
        time_ms: u64,
    ) {
        self.classic_frame.clear();
        self.socketio_frame.clear();
        for &slot in to {
            if Some(slot) == except {
                continue;
            }
            let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if !event.reaches(c.wire) {
                continue;
            }
            let frame = match c.wire {
                Wire::Classic => &mut self.classic_frame,
                Wire::SocketIo => &mut self.socketio_frame,
            };
            if frame.is_empty() {
                self.encoder.frame_as(c.wire, frame, event, time_ms);
                #[cfg(test)]
                {
                    self.encodes += 1;
                }
            }
            self.usage.queued_bytes += frame.len();
            self.counts.deliveries += 1;
            append_to(c, slot, &mut self.pending, frame);
        }
        self.usage.broadcast_bytes += self.classic_frame.len() + self.socketio_frame.len();
        if log_enabled!(Level::Debug) {
            let n = to.len().saturating_sub(usize::from(except.is_some()));
            for frame in [&self.classic_frame, &self.socketio_frame] {
                if !frame.is_empty() {
                    debug!("-> {n} clients: {}", wire::describe_frames(frame));
                }
            }
        }
    }

    /// `event` for one client, in its format.
    pub fn send(&mut self, slot: Slot, event: &ChatEvent<'_>, time_ms: u64) {
        let Some(wire) = self.client(slot).map(|c| c.wire) else {
            return;
        };
        let mut frame = mem::take(&mut self.classic_frame);
        frame.clear();
        self.encoder.frame_as(wire, &mut frame, event, time_ms);
        self.counts.deliveries += 1;
        self.queue(slot, &frame);
        self.classic_frame = frame;
    }

    /// Queues each client's heartbeat.
    pub fn ping_all(&mut self) {
        for slot in 0..self.clients.len() {
            let frame = match self.client(slot).map(|c| c.heartbeat) {
                Some(Heartbeat::Ping) => &self.ping_frame,
                Some(Heartbeat::EngineIoPing) => &self.engineio_ping_frame,
                Some(Heartbeat::None) | None => continue,
            };
            if let Some(c) = self.clients[slot].as_mut() {
                append_to(c, slot, &mut self.pending, frame);
            }
        }
    }

    /// Starts a flush: the clients to write now. Empty when there are none.
    pub fn take_pending(&mut self) -> Vec<Slot> {
        mem::take(&mut self.pending)
    }

    /// Writes one client's unsent bytes without blocking. A client that is gone, or breaks a
    /// backlog limit, is returned as `Dead`; one whose socket is full waits for the next
    /// flush.
    pub fn write(&mut self, slot: Slot, now: Instant) -> Option<Dead> {
        let backlog_timeout = self.backlog_timeout;
        let c = self.clients.get_mut(slot)?.as_mut()?;
        if let Some(why) = polling::over_backlog(c) {
            self.counts.backlog_drops += 1;
            return Some(Dead {
                slot,
                why,
                peer_gone: false,
            });
        }
        if !take_response(c) {
            return None;
        }
        let unsent = c.out.unsent();
        let written = {
            let stream = c.stream.as_ref()?;
            c.out
                .write_with(|bytes| platform::send_nonblocking(stream, bytes))
        };
        self.counts.sent_bytes += (unsent - c.out.unsent()) as u64;
        match written {
            Ok(true) => {
                c.backlog_since = None;
                if c.poll.is_some() {
                    response_written(c, slot, &mut self.backlogged, &mut self.counts);
                } else if c.closing && !c.write_closed {
                    c.write_closed = true;
                    if let Some(stream) = &c.stream {
                        let _ = stream.shutdown(Shutdown::Write);
                    }
                }
                None
            }
            Ok(false) if c.out.unsent() > c.max_backlog_bytes => {
                self.counts.backlog_drops += 1;
                Some(Dead {
                    slot,
                    why: format!("backlog over {} bytes", c.max_backlog_bytes),
                    peer_gone: false,
                })
            }
            Ok(false) => {
                let since = *c.backlog_since.get_or_insert(now);
                let waited = now.duration_since(since);
                if waited >= backlog_timeout {
                    let why = format!(
                        "not reading: {} bytes unsent for {waited:?}",
                        c.out.unsent()
                    );
                    self.counts.backlog_drops += 1;
                    return Some(Dead {
                        slot,
                        why,
                        peer_gone: false,
                    });
                }
                self.backlogged.push(slot);
                None
            }
            Err(e) => Some(Dead {
                slot,
                why: format!("write failed: {e}"),
                peer_gone: matches!(
                    e.kind(),
                    ErrorKind::BrokenPipe
                        | ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                ),
            }),
        }
    }

    /// Ends a flush: backlogged clients wait for the next one, emptied slots become free,
    /// and after a burst the freed memory goes back to the OS.
    pub fn end_flush(&mut self) {
        let backlog: usize = (self.backlogged.iter())
            .filter_map(|&slot| self.client(slot))
            .map(|c| c.out.unsent())
            .sum();
        self.counts.backlog_bytes = backlog as u64;
        if self.memory.after_flush(backlog) {
            platform::release_free_memory();
        }
        debug_assert!(self.pending.is_empty());
        mem::swap(&mut self.pending, &mut self.backlogged);
        self.free.append(&mut self.released);
    }

    /// Writes what the socket takes at once, before the client is removed.
    pub fn write_now(&mut self, slot: Slot) {
        if let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) {
            if !take_response(c) {
                return;
            }
            let Some(stream) = &c.stream else { return };
            let unsent = c.out.unsent();
            let written = c
                .out
                .write_with(|bytes| platform::send_nonblocking(stream, bytes));
            self.counts.sent_bytes += (unsent - c.out.unsent()) as u64;
            if let Ok(true) = written {
                if let Some(p) = c.poll.as_mut() {
                    p.response_written();
                }
            }
        }
    }

    /// Forgets a client and closes its socket both ways, which also wakes its reader if it
    /// is still reading.
    pub fn remove(&mut self, slot: Slot, reason: &str) {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.by_id.remove(&c.id);
        self.counts.connections[c.kind as usize] -= 1;
        self.released.push(slot);
        self.memory.freed(c.out.capacity());
        if let Some(mut p) = c.poll {
            p.end();
        }
        if let Some(stream) = &c.stream {
            let _ = stream.shutdown(Shutdown::Both);
        }
        info!("#{} {} disconnected: {reason}", c.id, c.peer);
    }

    /// Fits every buffer to what it held since the last call, and returns freed memory to
    /// the OS when that freed enough. True while some client is still getting bytes.
    pub fn fit_buffers(&mut self) -> bool {
        let mut any_busy = false;
        for c in self.clients.iter_mut().flatten() {
            any_busy |= c.out.was_used();
            let freed = c.out.fit();
            self.memory.freed(freed);
        }
        if self.memory.after_fitting() {
            platform::release_free_memory();
        }
        any_busy
    }

    fn client(&self, slot: Slot) -> Option<&Client> {
        self.clients.get(slot)?.as_ref()
    }

    fn client_mut(&mut self, slot: Slot) -> Option<&mut Client> {
        self.clients.get_mut(slot)?.as_mut()
    }

    fn append(&mut self, slot: Slot, frames: &[u8]) {
        if let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) {
            append_to(c, slot, &mut self.pending, frames);
        }
    }
}

/// Appends frames to a client's buffer (nothing after a Close) and lists it for the flush
/// when its buffer stops being empty.
fn append_to(c: &mut Client, slot: Slot, pending: &mut Vec<Slot>, frames: &[u8]) {
    if c.closing || frames.is_empty() {
        return;
    }
    if let Some(p) = c.poll.as_mut() {
        p.take_frames(frames);
        if p.queued_bytes() > c.max_backlog_bytes && !p.listed {
            // A session that stopped polling: its write finds it over the limit.
            p.listed = true;
            pending.push(slot);
        }
        list_poll(p, c.out.unsent(), slot, pending);
        return;
    }
    if c.out.unsent() == 0 {
        pending.push(slot);
    }
    c.out.push(frames);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    /// A joined client's socket and the peer's end of it.
    fn pair() -> (Arc<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        (Arc::new(ours), peer)
    }

    fn join(outbox: &mut Outbox, id: ConnId, endpoint: Endpoint) -> (Slot, TcpStream) {
        let (stream, peer) = pair();
        let addr = peer.local_addr().unwrap();
        let join = Join {
            id,
            stream: Some(stream),
            peer: addr,
            endpoint,
        };
        (outbox.add(&join), peer)
    }

    fn chat_endpoint() -> Endpoint {
        Endpoint::Chat {
            requested_name: None,
            requested_room: None,
        }
    }

    fn unsent(outbox: &Outbox, slot: Slot) -> Vec<u8> {
        outbox.client(slot).unwrap().out.unsent_bytes().to_vec()
    }

    const HI: ChatEvent<'static> = ChatEvent::Message {
        name: "ada",
        text: "hi",
        room: "lobby",
        history: false,
    };

    #[test]
    fn a_broadcast_is_encoded_once_per_format() {
        let mut outbox = Outbox::new(&Config::default());
        let (a, _pa) = join(&mut outbox, 1, chat_endpoint());
        let (b, _pb) = join(&mut outbox, 2, chat_endpoint());
        let socketio = Endpoint::SocketIo {
            server_pings: true,
            greeting: Vec::new(),
        };
        let (c, _pc) = join(&mut outbox, 3, socketio);
        outbox.broadcast(&[a, b], None, &HI, 7);
        assert_eq!(
            outbox.encodes, 1,
            "no socket.io recipient: one format encoded"
        );
        outbox.broadcast(&[a, b, c], Some(b), &HI, 7);
        assert_eq!(outbox.encodes, 3, "two formats, once each");
        let (classic, sio) = (unsent(&outbox, b), unsent(&outbox, c));
        assert_eq!(unsent(&outbox, a), [&classic[..], &classic[..]].concat());
        assert!(sio[2..].starts_with(b"42[\"message\""), "{:?}", sio);
        let usage = outbox.usage;
        assert_eq!(usage.broadcast_bytes, 2 * classic.len() + sio.len());
        assert_eq!(usage.queued_bytes, 3 * classic.len() + sio.len());
    }

    #[test]
    fn a_custom_event_reaches_socketio_clients_only() {
        let mut outbox = Outbox::new(&Config::default());
        let (raw, _pr) = join(&mut outbox, 1, chat_endpoint());
        let socketio = || Endpoint::SocketIo {
            server_pings: true,
            greeting: Vec::new(),
        };
        let (s1, _p1) = join(&mut outbox, 2, socketio());
        let (s2, _p2) = join(&mut outbox, 3, socketio());
        let before = unsent(&outbox, raw);
        let typing = ChatEvent::Custom {
            event: "typing",
            args: "true",
            from: "a",
            room: "r",
        };
        outbox.broadcast(&[raw, s1, s2], None, &typing, 7);
        assert_eq!(unsent(&outbox, raw), before, "raw clients have no events");
        assert_eq!(outbox.encodes, 1);
        for slot in [s1, s2] {
            assert!(unsent(&outbox, slot)
                .ends_with(br#"42["typing",true,{"from":"a","room":"r","time":7}]"#));
        }
    }

    #[test]
    fn nothing_follows_a_close() {
        let mut outbox = Outbox::new(&Config::default());
        let (slot, mut peer) = join(&mut outbox, 1, chat_endpoint());
        assert!(outbox.close_with(slot, wire::close_code::GOING_AWAY, "bye"));
        assert!(!outbox.close_with(slot, wire::close_code::NORMAL, "again"));
        let closing = unsent(&outbox, slot);
        outbox.queue(slot, b"late");
        outbox.broadcast(&[slot], None, &HI, 7);
        outbox.send(slot, &HI, 7);
        outbox.ping_all();
        assert_eq!(unsent(&outbox, slot), closing);
        for slot in outbox.take_pending() {
            assert!(outbox.write(slot, Instant::now()).is_none());
        }
        outbox.end_flush();
        // The peer reads the Close frame, then the end of the stream: the write side is shut.
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        let mut expected = Vec::new();
        wire::encode_close(&mut expected, wire::close_code::GOING_AWAY, "bye");
        assert_eq!(got, expected);
    }

    /// A polling session's packets wait for a GET; the broadcaster then writes one response
    /// carrying all of them (the only writer of it), tells the reader, and writes nothing
    /// more to that connection until the next GET.
    #[test]
    fn a_poll_is_answered_once_with_everything_queued() {
        use crate::event::{Poll, PollShared};
        use std::sync::atomic::Ordering;
        let mut outbox = Outbox::new(&Config::default());
        let shared = Arc::new(PollShared::default());
        let endpoint = Endpoint::Polling {
            eio3: false,
            shared: shared.clone(),
        };
        let join = Join {
            id: 1,
            stream: None,
            peer: "127.0.0.1:9".parse().unwrap(),
            endpoint,
        };
        let slot = outbox.add(&join);
        outbox.broadcast(&[slot], None, &HI, 7);
        assert!(outbox.take_pending().is_empty(), "no GET: nothing to write");
        let (stream, mut peer) = pair();
        let (done, answered) = crossbeam_channel::bounded(1);
        shared.getting.store(true, Ordering::Release);
        let headers = "X-Test: 1\r\n".to_string();
        outbox.poll(
            slot,
            Poll {
                id: 1,
                stream,
                headers,
                done,
            },
        );
        outbox.broadcast(&[slot], None, &HI, 8);
        outbox.ping_all();
        let pending = outbox.take_pending();
        assert_eq!(pending, [slot], "listed once");
        assert!(outbox.write(slot, Instant::now()).is_none());
        outbox.end_flush();
        assert_eq!(answered.try_recv(), Ok(true), "the reader hears it is out");
        assert!(!shared.getting.load(Ordering::Acquire));
        outbox.broadcast(&[slot], None, &HI, 9);
        for slot in outbox.take_pending() {
            assert!(outbox.write(slot, Instant::now()).is_none());
        }
        peer.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut got = Vec::new();
        let _ = peer.read_to_end(&mut got);
        let text = String::from_utf8(got).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200 OK") && head.contains("X-Test: 1"),
            "{head}"
        );
        let packets: Vec<&str> = body.split('\x1e').collect();
        assert_eq!(
            packets.len(),
            3,
            "two lines and a ping, one response: {body:?}"
        );
        assert!(
            packets[0].starts_with("42[\"message\"") && packets[2] == "2",
            "{body:?}"
        );
        assert!(
            !body.contains("9}"),
            "the line after the response waits for a GET"
        );
    }

    #[test]
    fn a_client_is_pending_once_until_its_buffer_empties() {
        let mut outbox = Outbox::new(&Config::default());
        let (slot, _peer) = join(&mut outbox, 1, chat_endpoint());
        for _ in 0..3 {
            outbox.queue(slot, b"frame");
            outbox.send(slot, &HI, 7);
        }
        assert_eq!(outbox.take_pending(), [slot]);
        assert!(outbox.write(slot, Instant::now()).is_none());
        outbox.end_flush();
        assert!(!outbox.has_pending(), "written out: no longer listed");
        outbox.remove(slot, "test");
        let (again, _peer2) = join(&mut outbox, 2, chat_endpoint());
        assert_ne!(again, slot, "an emptied slot waits for the next flush");
        outbox.end_flush();
        let (third, _peer3) = join(&mut outbox, 3, chat_endpoint());
        assert_eq!(third, slot, "and is reused after it");
    }
}
