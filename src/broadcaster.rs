//! Broadcaster: the one thread that writes to client sockets once their handshake is done.
//!
//! Owns the set of connected clients: each one's write side (a shared `TcpStream`), its wire
//! format (classic JSON or Socket.IO), its name and room, and its unsent bytes. Client readers
//! report what happened over one channel of [`Event`]s; the broadcaster decides who gets what,
//! encodes each event once per wire format its recipients use, and writes the same bytes to
//! every recipient of that format with non-blocking `send(2)`. It never reads a socket and never
//! blocks on one: a client that stops reading only grows its own backlog until it is dropped.
//!
//! Being the only writer is what keeps frames whole: Pong replies and the Close handshake
//! (and for socket.io clients the Engine.IO open packet, CONNECT answers and v3 pongs) also
//! reach the broadcaster as bytes from the readers, so no two threads ever write to one socket
//! and bytes of two frames can never interleave.

use std::collections::{HashMap, VecDeque};
use std::io::{self, ErrorKind};
use std::mem;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{debug, info, log_enabled, warn, Level};
use tungstenite::Utf8Bytes;

use crate::commands::{self, Line};
use crate::config::Config;
use crate::history::{Entry, HistoryFile, Kind};
use crate::protocol::{self, close_code, ChatEvent, Encoder, Opcode, Wire};
use crate::rooms::{Rooms, Slot, DEFAULT_ROOM};
use crate::socketio::{self, Eio};

/// Identifies one accepted connection for its whole life; never reused.
pub(crate) type ConnId = u64;

/// While any client has a backlog, the broadcaster wakes at least this often to retry it.
const BACKLOG_RETRY_MS: u64 = 5;
/// Events handled before writing: enough to put many frames into one `send` under load
/// (corking), few enough that the first of them is not held back long.
const MAX_EVENTS_PER_ROUND: usize = 1024;
/// During a pass over the clients, queued events are taken after every this many sends (a
/// `try_recv` that finds nothing costs a few atomic loads).
const SENDS_PER_INTAKE: usize = 16;
/// Encoded bytes of broadcasts queued in one round before writing. Bounds what a round adds
/// to each client's buffer before the sockets get a chance to take it, so the backlog limit
/// measures what a client failed to take, not the size of a burst. Frames for one client (a
/// welcome with its people list and history, control replies) do not count: each adds to one
/// buffer only, and counting them made a join storm of 5,000 clients run one or two joins
/// per round (each welcome lists everyone), so one `send` per delivery.
const MAX_ROUND_BYTES: usize = 64 * 1024;
/// Bytes queued in one round over all clients' buffers together (a broadcast to N clients
/// counts N times). With thousands of clients MAX_ROUND_BYTES alone lets one round queue
/// 64 KiB for each: 320 MiB at 5,000. Measured with 5,000 clients (bench scenario 5 and a
/// join storm): 16 MiB cut throughput by a fifth (too few frames per `send`), 32 MiB kept
/// it and peaked 50 MiB lower than 64 MiB.
const MAX_ROUND_QUEUED_BYTES: usize = 32 * 1024 * 1024;
/// Once backlogs have held this much at once and then all emptied (or idle clients' buffers
/// this large were freed), freed memory is returned to the OS: a burst (a thousand clients
/// joining at once) must not leave RSS high.
const TRIM_AFTER_BACKLOG_BYTES: usize = 4 * 1024 * 1024;
/// Kernel send buffer of a chat socket (Linux doubles it for bookkeeping). Chat traffic is
/// small; a fixed buffer keeps a stuck client from holding megabytes of kernel memory and
/// makes its backlog, and the limits on it, start early.
const CHAT_SEND_BUFFER_BYTES: usize = 64 * 1024;
/// A busy client's outgoing buffer keeps its capacity between rounds up to this size, so the
/// hot path neither allocates nor faults in fresh pages; a backlog that grew it further gives
/// the memory back once sent, and every IDLE_BUFFER_RELEASE a buffer larger than twice what
/// it recently held is cut down (`Client::fit_buffer`). A full round adds MAX_ROUND_BYTES
/// plus its last frame (a chat frame can reach tens of KiB once escaped), and a Vec grows
/// by doubling, hence four rounds' worth. With the limit equal to MAX_ROUND_BYTES, every
/// full round freed its buffers and the next grew them again, through mmap and fresh zeroed
/// pages: at 3 million deliveries/s, 2.2 million page faults in 10 s and a quarter of the
/// broadcaster's time, and a p99 of seconds instead of milliseconds.
const KEEP_OUT_CAPACITY_BYTES: usize = 4 * MAX_ROUND_BYTES;
/// How often outgoing buffers are fitted to what they held since the last look: an idle
/// connection's is freed (it holds none), a busy one's cut down to its recent need.
const IDLE_BUFFER_RELEASE: Duration = Duration::from_millis(250);

/// What the client readers (and the server's stop handle) tell the broadcaster.
pub(crate) enum Event {
    /// A handshake finished. Always a reader's first event.
    Join(Join),
    /// A socket.io client connected to the default namespace: it enters the chat with the
    /// name and room it asked for (unchecked). Raw chat clients enter with their `Join`.
    Enter {
        id: ConnId,
        requested_name: Option<String>,
        requested_room: Option<String>,
    },
    /// A socket.io client left the default namespace: it leaves the chat, the connection stays.
    Part { id: ConnId },
    /// A chat message from a chat client.
    Text { id: ConnId, text: Utf8Bytes },
    /// Complete frames for this client alone (echo replies, Pong), written as they are.
    Send { id: ConnId, bytes: Vec<u8> },
    /// A Close frame for this client: the last bytes it gets, then its write side is closed.
    Close { id: ConnId, bytes: Vec<u8> },
    /// A notice for one client, e.g. that its message was dropped by the rate limit.
    Notice {
        id: ConnId,
        code: &'static str,
        text: String,
    },
    /// The reader has finished: the connection is over. Always a reader's last event.
    Leave { id: ConnId, reason: String },
    /// Close every client with 1001, give them the grace period, then return.
    Shutdown,
}

/// A connection that finished its handshake.
pub(crate) struct Join {
    pub id: ConnId,
    pub stream: Arc<TcpStream>,
    pub peer: SocketAddr,
    pub endpoint: Endpoint,
}

/// What a connection is, as far as the broadcaster cares.
pub(crate) enum Endpoint {
    /// A chat client, with the name and room it asked for (unchecked): enters the chat at once.
    Chat {
        requested_name: Option<String>,
        requested_room: Option<String>,
    },
    /// A socket.io client: `greeting` is its first frames (the Engine.IO open packet, and for
    /// EIO=3 the CONNECT of `/`). It enters the chat on `Event::Enter`.
    SocketIo { eio: Eio, greeting: Vec<u8> },
    /// `/echo` or `/scream`: gets only the frames its reader sends.
    Echo,
}

/// A chat client's place in the chat.
struct Member {
    name: Arc<str>,
    room: Arc<str>,
}

/// What the heartbeat tick sends a client, so that a live client sends something back and its
/// reader's idle timeout (twice the ping interval) only ends dead connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heartbeat {
    /// A WebSocket Ping: browsers and WebSocket libraries answer Pong by themselves.
    Ping,
    /// The Engine.IO v4 ping packet `2`: socket.io-client v3 and v4 answer `3`.
    EngineIoPing,
    /// Nothing: an EIO=3 client (socket.io-client v2) pings by itself, its reader answers.
    None,
}

/// One connected client, as the broadcaster sees it.
struct Client {
    id: ConnId,
    stream: Arc<TcpStream>,
    fd: RawFd,
    peer: SocketAddr,
    /// The format it reads chat events in.
    wire: Wire,
    heartbeat: Heartbeat,
    /// Set for chat clients while they are in a room.
    member: Option<Member>,
    /// Bytes to send; `out[written..]` is still unsent.
    out: Vec<u8>,
    written: usize,
    /// When the client's unsent bytes stopped fitting into its socket.
    backlog_since: Option<Instant>,
    max_backlog_bytes: usize,
    /// A Close frame is queued: nothing may follow it.
    closing: bool,
    /// The write side is shut (after the Close frame went out).
    write_closed: bool,
    /// Listed in `Broadcaster::pending`.
    queued: bool,
    /// The most bytes `out` held since the last idle-buffer pass (0: nothing was queued).
    peak_out: usize,
}

impl Client {
    /// Shrinks an empty outgoing buffer to the most it held since the last call (frees it
    /// when nothing came), unless that would save less than half. Returns the bytes freed.
    fn fit_buffer(&mut self) -> usize {
        let capacity = self.out.capacity();
        if self.out.is_empty() && capacity > 2 * self.peak_out {
            self.out.shrink_to(self.peak_out);
        }
        self.peak_out = self.out.len();
        capacity - self.out.capacity()
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.written
    }

    /// Writes as much of the unsent bytes as the socket takes without blocking.
    /// `Ok(true)` when nothing is left.
    fn write_pending(&mut self) -> io::Result<bool> {
        while self.written < self.out.len() {
            let rest = &self.out[self.written..];
            match send_nonblocking(self.fd, rest) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    if n < rest.len() {
                        break; // the socket buffer is full; trying again now would only fail
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
            if self.out.capacity() > KEEP_OUT_CAPACITY_BYTES {
                self.out = Vec::new();
            }
            Ok(true)
        } else {
            if self.written > self.out.len() / 2 {
                self.out.drain(..self.written);
                self.written = 0;
            }
            Ok(false)
        }
    }
}

/// Fixes a socket's kernel send buffer (which otherwise grows to megabytes for a peer that
/// stops reading), so unsent bytes pile up in the backlog, where the limits apply.
fn set_send_buffer(stream: &TcpStream, bytes: usize) {
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid socket fd and a pointer to a c_int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        debug!("SO_SNDBUF: {}", io::Error::last_os_error());
    }
}

/// Returns the allocator's free memory to the OS (glibc keeps it otherwise).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `send(2)` that never blocks (MSG_DONTWAIT) and never raises SIGPIPE (MSG_NOSIGNAL), on a
/// socket the reader keeps in blocking mode.
fn send_nonblocking(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes, and `fd` belongs to a TcpStream that the
    // caller keeps alive (the client's Arc) for the duration of the call.
    let n = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Milliseconds since the Unix epoch, for the `time` field.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The broadcaster's state. See the module comment.
pub(crate) struct Broadcaster {
    config: Arc<Config>,
    clients: Vec<Option<Client>>,
    free: Vec<Slot>,
    by_id: HashMap<ConnId, Slot>,
    rooms: Rooms,
    /// Where chat lines are appended, with `--history-file`.
    history_file: Option<HistoryFile>,
    /// Clients with unsent bytes.
    pending: Vec<Slot>,
    encoder: Encoder,
    /// One encoded event, shared by all its classic recipients.
    frame: Vec<u8>,
    /// The same event for its socket.io recipients.
    socketio_frame: Vec<u8>,
    ping_frame: Vec<u8>,
    /// The Engine.IO v4 ping packet, as a text frame.
    engineio_ping_frame: Vec<u8>,
    next_ping: Instant,
    /// Next number for an automatic `userN` name.
    next_user_number: u64,
    /// Set by `Event::Shutdown`: when the broadcaster stops waiting for clients to leave.
    shutdown_deadline: Option<Instant>,
    /// Bytes encoded this round (a broadcast counts once).
    round_bytes: usize,
    /// Bytes queued this round (a broadcast counts once per recipient).
    round_queued_bytes: usize,
    /// Events handled this round.
    round_events: usize,
    /// When the buffers of idle clients are next freed (`None`: none can be holding one).
    next_buffer_release: Option<Instant>,
    /// The time of this round, Unix ms: every event handled in it carries it (one clock read
    /// per round, and a line's history entry has the same time as its live event).
    now_ms: u64,
    /// The most bytes waiting in backlogs at once since the backlogs were last all empty.
    backlog_high_water: usize,
    /// Leaves of clients the broadcaster dropped, announced in the next rounds within the
    /// round's limits (see `remove_dead`).
    unannounced_leaves: VecDeque<Member>,
    /// Buffer capacity of clients removed since memory was last returned to the OS.
    freed_by_removals: usize,
}

impl Broadcaster {
    pub(crate) fn new(
        config: Arc<Config>,
        rooms: Rooms,
        history_file: Option<HistoryFile>,
    ) -> Self {
        let mut ping_frame = Vec::new();
        protocol::encode_frame(&mut ping_frame, Opcode::Ping, b"");
        let mut engineio_ping_frame = Vec::new();
        protocol::encode_frame(
            &mut engineio_ping_frame,
            Opcode::Text,
            socketio::PING.as_bytes(),
        );
        Broadcaster {
            next_ping: Instant::now() + config.ping_interval,
            config,
            clients: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            rooms,
            history_file,
            pending: Vec::new(),
            encoder: Encoder::new(),
            frame: Vec::new(),
            socketio_frame: Vec::new(),
            ping_frame,
            engineio_ping_frame,
            next_user_number: 1,
            shutdown_deadline: None,
            round_bytes: 0,
            round_queued_bytes: 0,
            round_events: 0,
            next_buffer_release: None,
            now_ms: unix_ms(),
            backlog_high_water: 0,
            unannounced_leaves: VecDeque::new(),
            freed_by_removals: 0,
        }
    }

    /// Runs until a shutdown has finished or every event sender is gone.
    pub(crate) fn run(mut self, events: Receiver<Event>) {
        loop {
            let now = Instant::now();
            let mut wake = if self.pending.is_empty() {
                self.next_ping
            } else {
                now + Duration::from_millis(BACKLOG_RETRY_MS)
            };
            if let Some(release) = self.next_buffer_release {
                wake = wake.min(release);
            }
            // Shutting down ends at the deadline, or sooner when every reader thread has ended
            // (each holds a sender, so the channel then reports itself disconnected).
            if let Some(deadline) = self.shutdown_deadline {
                if now >= deadline {
                    break;
                }
                wake = wake.min(deadline);
            }
            // A round starts with an event, or at once while dropped clients' leaves wait.
            let first = if self.unannounced_leaves.is_empty() {
                match events.recv_deadline(wake) {
                    Ok(event) => Some(Some(event)),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                Some(None)
            };
            if let Some(first) = first {
                self.round_bytes = 0;
                self.round_queued_bytes = 0;
                self.round_events = 0;
                self.now_ms = unix_ms();
                if let Some(event) = first {
                    self.handle(event);
                }
                // Take whatever else is queued before writing, so that one send per client
                // carries all the frames of this round.
                self.take_queued(&events);
            }
            let now = Instant::now();
            if now >= self.next_ping {
                self.ping_all();
                self.next_ping = now + self.config.ping_interval;
            }
            self.flush(now, &events);
            self.flush_history();
            self.release_idle_buffers(now);
        }
        self.cut_all();
        self.flush_history();
    }

    /// Announces dropped clients' leaves, then handles events already queued, within the
    /// round's limits (MAX_EVENTS_PER_ROUND, MAX_ROUND_BYTES, MAX_ROUND_QUEUED_BYTES); never
    /// waits.
    fn take_queued(&mut self, events: &Receiver<Event>) {
        while self.round_events < MAX_EVENTS_PER_ROUND
            && self.round_bytes < MAX_ROUND_BYTES
            && self.round_queued_bytes < MAX_ROUND_QUEUED_BYTES
        {
            if let Some(member) = self.unannounced_leaves.pop_front() {
                self.round_events += 1;
                self.announce_leave(&member);
                continue;
            }
            match events.try_recv() {
                Ok(event) => self.handle(event),
                Err(_) => return,
            }
        }
    }

    fn handle(&mut self, event: Event) {
        self.round_events += 1;
        match event {
            Event::Join(join) => self.join(join),
            Event::Enter {
                id,
                requested_name,
                requested_room,
            } => {
                if let Some(&slot) = self.by_id.get(&id) {
                    self.enter(slot, requested_name, requested_room);
                }
            }
            Event::Part { id } => {
                if let Some(&slot) = self.by_id.get(&id) {
                    self.leave_room(slot);
                    info!("#{id} left the chat (Socket.IO DISCONNECT)");
                }
            }
            Event::Text { id, text } => self.text(id, text),
            Event::Send { id, bytes } => {
                self.round_queued_bytes += bytes.len();
                if log_enabled!(Level::Debug) {
                    debug!("-> #{id}: {}", describe_frames(&bytes));
                }
                if let Some(&slot) = self.by_id.get(&id) {
                    queue(&mut self.clients, &mut self.pending, slot, &bytes);
                }
            }
            Event::Close { id, bytes } => {
                if log_enabled!(Level::Debug) {
                    debug!("-> #{id}: {}", describe_frames(&bytes));
                }
                self.close(id, &bytes)
            }
            Event::Notice { id, code, text } => {
                if let Some(&slot) = self.by_id.get(&id) {
                    self.notice(slot, code, &text, None);
                }
            }
            Event::Leave { id, reason } => self.leave(id, &reason),
            Event::Shutdown => self.shutdown(),
        }
    }

    fn join(&mut self, join: Join) {
        let Join {
            id,
            stream,
            peer,
            endpoint,
        } = join;
        let (wire, heartbeat) = match endpoint {
            Endpoint::Chat { .. } | Endpoint::Echo => (Wire::Classic, Heartbeat::Ping),
            Endpoint::SocketIo { eio: Eio::V4, .. } => (Wire::SocketIo, Heartbeat::EngineIoPing),
            Endpoint::SocketIo { eio: Eio::V3, .. } => (Wire::SocketIo, Heartbeat::None),
        };
        let max_backlog_bytes = if let Endpoint::Echo = endpoint {
            self.config.echo_max_backlog_bytes
        } else {
            set_send_buffer(&stream, CHAT_SEND_BUFFER_BYTES);
            self.config.max_backlog_bytes
        };
        let client = Client {
            id,
            fd: stream.as_raw_fd(),
            stream,
            peer,
            wire,
            heartbeat,
            member: None,
            out: Vec::new(),
            written: 0,
            backlog_since: None,
            max_backlog_bytes,
            closing: false,
            write_closed: false,
            queued: false,
            peak_out: 0,
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
        self.by_id.insert(id, slot);

        if self.shutdown_deadline.is_some() {
            self.close_slot(slot, close_code::GOING_AWAY, "server shutting down");
            return;
        }
        match endpoint {
            Endpoint::Chat {
                requested_name,
                requested_room,
            } => self.enter(slot, requested_name, requested_room),
            Endpoint::SocketIo { eio, greeting } => {
                info!("#{id} {peer} connected with socket.io ({eio:?})");
                if log_enabled!(Level::Debug) {
                    debug!("-> #{id}: {}", describe_frames(&greeting));
                }
                queue(&mut self.clients, &mut self.pending, slot, &greeting);
            }
            Endpoint::Echo => info!("#{id} {peer} connected to an echo endpoint"),
        }
    }

    /// Puts a chat client into the room it asked for (or the default room) under the name it
    /// asked for (or a free one): the room hears `enter`, the newcomer gets its welcome, the
    /// room's history and any notice about its name or room.
    fn enter(
        &mut self,
        slot: Slot,
        requested_name: Option<String>,
        requested_room: Option<String>,
    ) {
        let Some(c) = self.clients[slot].as_ref() else {
            return;
        };
        if c.member.is_some() || c.closing {
            return;
        }
        let (id, peer) = (c.id, c.peer);
        let mut notices = Vec::new();
        let room = match requested_room.as_deref().map(protocol::clean_name) {
            None => None,
            Some(None) => {
                let text = format!(
                    "That room name is not allowed (1 to {} characters, no control characters): you are in {DEFAULT_ROOM}.",
                    protocol::MAX_NAME_CHARS
                );
                notices.push(("room-invalid", text));
                None
            }
            Some(Some(wanted)) => {
                let room = self.rooms.open(wanted);
                if room.is_none() {
                    let text = format!(
                        "No room for another room ({} in use): you are in {DEFAULT_ROOM}.",
                        self.config.max_rooms
                    );
                    notices.push(("rooms-full", text));
                }
                room
            }
        };
        let room = room
            .or_else(|| self.rooms.open(DEFAULT_ROOM))
            .expect("the default room always opens");
        let (name, name_notice) = self.pick_name(&room, requested_name.as_deref());
        notices.extend(name_notice);
        let name: Arc<str> = name.into();
        self.rooms.add(&room, slot, &name);
        if let Some(c) = self.clients[slot].as_mut() {
            c.member = Some(Member {
                name: name.clone(),
                room: room.clone(),
            });
        }
        info!("#{id} {peer} joined {room:?} as {name:?}");

        // Everyone else hears of the newcomer; the newcomer gets its welcome, then the
        // room's history, then any notice about its name or room.
        self.broadcast_except(
            &room,
            Some(slot),
            &ChatEvent::Enter {
                name: &name,
                room: &room,
            },
        );
        self.welcome(slot, &name, &room);
        for (code, text) in notices {
            self.notice(slot, code, &text, None);
        }
    }

    /// The newcomer's welcome (its own join line, with who is there), then the history.
    fn welcome(&mut self, slot: Slot, name: &str, room: &str) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let users = member_names(&self.clients, &r.members);
        let wire = self.clients[slot]
            .as_ref()
            .map_or(Wire::Classic, |c| c.wire);
        self.frame.clear();
        let now = self.now_ms;
        let welcome = ChatEvent::Welcome {
            name,
            room,
            users: &users,
        };
        self.encoder.frame_as(wire, &mut self.frame, &welcome, now);
        for entry in &r.history {
            let event = history_event(entry, room, true);
            self.encoder
                .frame_as(wire, &mut self.frame, &event, entry.time_ms);
        }
        self.round_queued_bytes += self.frame.len();
        if log_enabled!(Level::Debug) {
            debug!(
                "-> {}: {}",
                client_label(&self.clients, slot),
                describe_frames(&self.frame)
            );
        }
        queue(&mut self.clients, &mut self.pending, slot, &self.frame);
    }

    /// The name a newcomer gets, and the notice to send when it is not the one it asked for.
    fn pick_name(
        &mut self,
        room: &str,
        requested: Option<&str>,
    ) -> (String, Option<(&'static str, String)>) {
        let rooms = &self.rooms;
        let taken = |n: &str| rooms.is_taken(room, n, None);
        if let Some(wanted) = requested.and_then(protocol::clean_name) {
            let name = protocol::unique_name(wanted, taken);
            let notice = (name != wanted).then(|| {
                let text = format!("The name {wanted} is taken: you are {name}.");
                ("name-taken", text)
            });
            return (name, notice);
        }
        let name = loop {
            let candidate = format!("user{}", self.next_user_number);
            self.next_user_number += 1;
            if !taken(&candidate) {
                break candidate;
            }
        };
        let notice = requested.map(|_| {
            let text = format!(
                "That name is not allowed (1 to {} characters, no control characters): you are {name}.",
                protocol::MAX_NAME_CHARS
            );
            ("name-invalid", text)
        });
        (name, notice)
    }

    fn text(&mut self, id: ConnId, line: Utf8Bytes) {
        let Some(&slot) = self.by_id.get(&id) else {
            return;
        };
        let Some(member) = self.clients[slot].as_ref().and_then(|c| c.member.as_ref()) else {
            return; // not in a room (closing, or not a chat client)
        };
        let (name, room) = (member.name.clone(), member.room.clone());
        match commands::parse(&line) {
            Line::Say("") => {
                self.notice(slot, "empty-message", "Empty messages are not sent.", None)
            }
            Line::Say(text) => self.say(Kind::Message, &room, &name, text),
            Line::Me(text) => self.say(Kind::Action, &room, &name, text),
            Line::Nick(new) => self.rename(slot, &room, &name, new),
            Line::Who => {
                let members = self.rooms.get(&room).map_or(&[][..], |r| &r.members[..]);
                // Owned copies: the names live in the client table the notice is queued into.
                let owned: Vec<String> = member_names(&self.clients, members)
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                let users: Vec<&str> = owned.iter().map(String::as_str).collect();
                let text = format!("In {room}: {}", users.join(", "));
                self.notice(slot, "who", &text, Some(&users));
            }
            Line::Msg(arg) => self.private(slot, &room, &name, arg),
            Line::Help => self.notice(slot, "help", commands::HELP, None),
            Line::Usage(usage) => self.notice(slot, "usage", &format!("Usage: {usage}"), None),
            Line::Unknown(word) => {
                let text = format!(
                    "Unknown command /{word}: /help lists the commands (// sends a literal /)."
                );
                self.notice(slot, "unknown-command", &text, None);
            }
        }
    }

    /// A message or action for the room: sent to everyone in it, remembered, and appended to
    /// the history file.
    fn say(&mut self, kind: Kind, room: &Arc<str>, name: &Arc<str>, text: &str) {
        let live = match kind {
            Kind::Message => ChatEvent::Message {
                name,
                text,
                room,
                history: false,
            },
            Kind::Action => ChatEvent::Action {
                name,
                text,
                room,
                history: false,
            },
        };
        self.broadcast_except(room, None, &live);
        if self.config.history > 0 {
            let entry = Entry::new(kind, name.clone(), text, self.now_ms);
            if let Some(file) = self.history_file.as_mut() {
                file.append(room, &entry);
            }
            self.rooms.record(room, entry);
        }
    }

    /// `/nick NEW`.
    fn rename(&mut self, slot: Slot, room: &Arc<str>, old: &Arc<str>, wanted: &str) {
        let Some(new) = protocol::clean_name(wanted) else {
            let text = format!(
                "That name is not allowed (1 to {} characters, no control characters).",
                protocol::MAX_NAME_CHARS
            );
            self.notice(slot, "name-invalid", &text, None);
            return;
        };
        if new == &**old {
            self.notice(slot, "usage", &format!("You are already {new}."), None);
            return;
        }
        if self.rooms.is_taken(room, new, Some(slot)) {
            self.notice(
                slot,
                "name-taken",
                &format!("The name {new} is taken."),
                None,
            );
            return;
        }
        let new: Arc<str> = new.into();
        self.rooms.rename(room, slot, old, &new);
        if let Some(member) = self.clients[slot].as_mut().and_then(|c| c.member.as_mut()) {
            member.name = new.clone();
        }
        info!("{old:?} is now {new:?} in {room:?}");
        let event = ChatEvent::Rename {
            old,
            name: &new,
            room,
        };
        self.broadcast_except(room, None, &event);
    }

    /// `/msg NAME TEXT`: to the sender and the recipient only.
    fn private(&mut self, slot: Slot, room: &str, from: &str, arg: &str) {
        let members = self.rooms.get(room).map_or(&[][..], |r| &r.members[..]);
        let names = member_names(&self.clients, members);
        let Some((to, text)) = commands::split_recipient(arg, names.iter().copied()) else {
            let who = arg.trim_end();
            let names_someone = names.iter().any(|n| n.to_lowercase() == who.to_lowercase());
            if names_someone {
                self.notice(slot, "usage", "Usage: /msg NAME TEXT", None);
            } else {
                let who = arg.split_whitespace().next().unwrap_or(arg);
                let text = format!("No one called {who} is in {room}: /who lists who is here.");
                self.notice(slot, "no-such-user", &text, None);
            }
            return;
        };
        let Some(to_slot) = self.rooms.find(room, to) else {
            return;
        };
        // Owned: the name lives in the client table the event is queued into.
        let to = to.to_string();
        let event = ChatEvent::Private {
            from,
            to: &to,
            text,
        };
        let recipients: &[Slot] = if to_slot == slot {
            &[slot]
        } else {
            &[slot, to_slot]
        };
        self.send_to(recipients, &event);
    }

    /// Queues `event` for everyone in `room` but `except`: encoded once per wire format (only
    /// for formats some recipient reads), the same bytes for every recipient of a format.
    fn broadcast_except(&mut self, room: &str, except: Option<Slot>, event: &ChatEvent<'_>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let members = &r.members[..];
        let recipients = members.iter().copied().filter(|&s| Some(s) != except);
        let sent = send_event(
            &mut self.clients,
            &mut self.pending,
            &mut self.encoder,
            [&mut self.frame, &mut self.socketio_frame],
            recipients,
            event,
            self.now_ms,
        );
        self.round_bytes += sent.encoded_bytes;
        self.round_queued_bytes += sent.queued_bytes;
        if log_enabled!(Level::Debug) {
            let n = members.len() - usize::from(except.is_some());
            self.log_sent(&format!("{room} ({n} clients)"));
        }
    }

    /// Queues `event` for the clients in `slots` (each in its own format).
    fn send_to(&mut self, slots: &[Slot], event: &ChatEvent<'_>) {
        let sent = send_event(
            &mut self.clients,
            &mut self.pending,
            &mut self.encoder,
            [&mut self.frame, &mut self.socketio_frame],
            slots.iter().copied(),
            event,
            self.now_ms,
        );
        if slots.len() > 1 {
            self.round_bytes += sent.encoded_bytes; // see MAX_ROUND_BYTES
        }
        self.round_queued_bytes += sent.queued_bytes;
        if log_enabled!(Level::Debug) {
            let labels: Vec<String> = slots
                .iter()
                .map(|&s| client_label(&self.clients, s))
                .collect();
            self.log_sent(&labels.join(" and "));
        }
    }

    /// The debug line for what `send_event` just encoded.
    fn log_sent(&self, to: &str) {
        for frame in [&self.frame, &self.socketio_frame] {
            if !frame.is_empty() {
                debug!("-> {to}: {}", describe_frames(frame));
            }
        }
    }

    fn notice(&mut self, slot: Slot, code: &str, text: &str, users: Option<&[&str]>) {
        let event = ChatEvent::Notice { code, text, users };
        self.send_to(&[slot], &event);
    }

    fn flush_history(&mut self) {
        let Some(file) = self.history_file.as_mut() else {
            return;
        };
        file.flush();
        if file.wants_compaction(self.rooms.history_lines()) {
            if let Err(e) = file.rewrite(self.rooms.all_history()) {
                warn!("cannot rewrite the history file: {e}");
            }
        }
    }

    fn ping_all(&mut self) {
        for slot in 0..self.clients.len() {
            let frame = match self.clients[slot].as_ref().map(|c| c.heartbeat) {
                Some(Heartbeat::Ping) => &self.ping_frame,
                Some(Heartbeat::EngineIoPing) => &self.engineio_ping_frame,
                Some(Heartbeat::None) | None => continue,
            };
            queue(&mut self.clients, &mut self.pending, slot, frame);
        }
    }

    /// A reader's Close frame (a reply to the client's, or the server's own for an error).
    /// When the server had already sent its own Close, this is the client's answer: the close
    /// handshake is complete and the server closes the connection (RFC 6455 section 7.1.1).
    fn close(&mut self, id: ConnId, bytes: &[u8]) {
        let Some(&slot) = self.by_id.get(&id) else {
            return;
        };
        if self.clients[slot].as_ref().is_some_and(|c| c.closing) {
            self.leave(id, "close handshake complete");
            return;
        }
        queue(&mut self.clients, &mut self.pending, slot, bytes);
        self.start_closing(slot);
    }

    /// Queues a Close frame from the server itself.
    fn close_slot(&mut self, slot: Slot, code: u16, reason: &str) {
        let mut bytes = Vec::new();
        protocol::encode_close(&mut bytes, code, reason);
        queue(&mut self.clients, &mut self.pending, slot, &bytes);
        self.start_closing(slot);
    }

    /// After a Close frame nothing more may be written; the client leaves the room now, so the
    /// room hears of it without waiting for the TCP connection to end.
    fn start_closing(&mut self, slot: Slot) {
        if let Some(c) = self.clients[slot].as_mut() {
            c.closing = true;
        }
        self.leave_room(slot);
    }

    /// Removes a chat client from its room and announces it (once).
    fn leave_room(&mut self, slot: Slot) {
        if let Some(member) = self.quit_room(slot) {
            self.announce_leave(&member);
        }
    }

    /// Takes a chat client out of its room without announcing it; `None` if it was in none.
    fn quit_room(&mut self, slot: Slot) -> Option<Member> {
        let member = self.clients[slot].as_mut()?.member.take()?;
        self.rooms.remove(&member.room, slot, &member.name);
        Some(member)
    }

    /// Tells `member`'s room that it left; not while shutting down (everyone is leaving).
    fn announce_leave(&mut self, Member { name, room }: &Member) {
        if self.shutdown_deadline.is_none() {
            self.broadcast_except(room, None, &ChatEvent::Leave { name, room });
        }
    }

    /// The reader is done: send what can still be sent, then forget the client.
    fn leave(&mut self, id: ConnId, reason: &str) {
        let Some(&slot) = self.by_id.get(&id) else {
            return; // already dropped by the broadcaster
        };
        if let Some(c) = self.clients[slot].as_mut() {
            if c.unsent() > 0 {
                let _ = c.write_pending();
            }
        }
        self.remove(slot, reason);
    }

    /// Takes a client out of the table and the room, announces its leave, and closes its
    /// socket both ways (which also wakes its reader if it is still reading).
    fn remove(&mut self, slot: Slot, reason: &str) {
        self.leave_room(slot);
        let Some(c) = self.clients[slot].take() else {
            return;
        };
        self.by_id.remove(&c.id);
        self.free.push(slot);
        self.freed_by_removals += c.out.capacity();
        let _ = c.stream.shutdown(Shutdown::Both);
        info!("#{} {} disconnected: {reason}", c.id, c.peer);
    }

    /// Drops the clients whose writes failed in one pass. They leave their rooms at once, and
    /// their leaves are announced in the next rounds, within a round's limits. Announcing each
    /// at once would queue it for every other client, outside any limit, including the other
    /// dead ones not yet found: when 5,000 clients vanished together that was N²/2 lines, a
    /// gigabyte of buffers for sockets that were already gone. (Meanwhile a newcomer's people
    /// list can lack someone whose leave it then sees; the page ignores such a leave.)
    fn remove_dead(&mut self, dead: Vec<Dead>) {
        for Dead {
            slot,
            why,
            peer_gone,
        } in dead
        {
            let Some(c) = self.clients[slot].as_mut() else {
                continue;
            };
            // A peer that went away is routine (`remove` logs it); a drop deserves a warning:
            // when thousands leave at once, thousands of warnings would bury the ones that count.
            if !peer_gone {
                warn!("#{} dropped: {why}", c.id);
            }
            if let Some(member) = self.quit_room(slot) {
                self.unannounced_leaves.push_back(member);
            }
            self.remove(slot, &why);
        }
    }

    /// Writes every client's unsent bytes, without blocking. Drops clients whose socket
    /// failed, whose backlog passed its limit, or whose backlog has lasted too long.
    ///
    /// A pass over a large room takes milliseconds (one `send` each). Every few sends of the
    /// first pass it takes the events that arrived meanwhile: a message that comes in mid-pass
    /// goes out in this pass to every client not yet written, instead of waiting for the whole
    /// pass to end. That halves the worst delay in a big room, and packs more frames into each
    /// `send` under load.
    fn flush(&mut self, now: Instant, events: &Receiver<Event>) {
        let mut backlogged = Vec::new();
        let mut first_pass = true;
        while !self.pending.is_empty() {
            let batch = mem::take(&mut self.pending);
            let mut dead: Vec<Dead> = Vec::new();
            for (i, slot) in batch.into_iter().enumerate() {
                if first_pass && i % SENDS_PER_INTAKE == SENDS_PER_INTAKE - 1 {
                    self.take_queued(events);
                }
                let Some(c) = self.clients[slot].as_mut() else {
                    continue;
                };
                if !c.queued {
                    continue; // a stale entry: this slot was already flushed this round
                }
                c.queued = false;
                match c.write_pending() {
                    Ok(true) => {
                        c.backlog_since = None;
                        if c.closing && !c.write_closed {
                            c.write_closed = true;
                            let _ = c.stream.shutdown(Shutdown::Write);
                        }
                    }
                    Ok(false) if c.unsent() > c.max_backlog_bytes => {
                        let why = format!("backlog over {} bytes", c.max_backlog_bytes);
                        dead.push(Dead::dropped(slot, why));
                    }
                    Ok(false) => {
                        let since = *c.backlog_since.get_or_insert(now);
                        if now.duration_since(since) >= self.config.backlog_timeout {
                            let why = format!(
                                "not reading: {} bytes unsent for {:?}",
                                c.unsent(),
                                now.duration_since(since)
                            );
                            dead.push(Dead::dropped(slot, why));
                        } else {
                            c.queued = true;
                            backlogged.push(slot);
                        }
                    }
                    Err(e) => dead.push(Dead {
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
            self.remove_dead(dead);
            first_pass = false;
        }
        let backlog: usize = backlogged
            .iter()
            .filter_map(|&slot| self.clients[slot].as_ref())
            .map(Client::unsent)
            .sum();
        self.backlog_high_water = self.backlog_high_water.max(backlog);
        if backlogged.is_empty() && self.backlog_high_water >= TRIM_AFTER_BACKLOG_BYTES {
            // A burst is over: give its buffers back to the OS instead of keeping them
            // scattered over the allocator's arenas for good.
            release_free_memory();
            self.backlog_high_water = 0;
        }
        self.pending = backlogged;
    }

    /// Frees the outgoing buffers of clients that got nothing for a while; busy ones keep
    /// what their rounds since the last pass needed (at most `KEEP_OUT_CAPACITY_BYTES`), so
    /// one big round long ago does not pin a large buffer on every client.
    fn release_idle_buffers(&mut self, now: Instant) {
        match self.next_buffer_release {
            None if self.round_events > 0 => {
                self.next_buffer_release = Some(now + IDLE_BUFFER_RELEASE);
            }
            Some(at) if now >= at => {
                self.round_events = 0; // a later round schedules the next release
                let (mut any_busy, mut freed) = (false, 0);
                for c in self.clients.iter_mut().flatten() {
                    any_busy |= c.peak_out > 0;
                    freed += c.fit_buffer();
                }
                freed += mem::take(&mut self.freed_by_removals);
                if freed >= TRIM_AFTER_BACKLOG_BYTES {
                    release_free_memory();
                }
                self.next_buffer_release = any_busy.then(|| now + IDLE_BUFFER_RELEASE);
            }
            _ => {}
        }
    }

    /// Starts a graceful shutdown: every client gets Close 1001.
    fn shutdown(&mut self) {
        info!("shutting down: closing {} connections", self.by_id.len());
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_grace);
        for slot in 0..self.clients.len() {
            if self.clients[slot].as_ref().is_some_and(|c| !c.closing) {
                self.close_slot(slot, close_code::GOING_AWAY, "server shutting down");
            }
        }
    }

    /// Closes every socket still open (end of shutdown).
    fn cut_all(&mut self) {
        for slot in 0..self.clients.len() {
            if self.clients[slot].is_some() {
                self.remove(slot, "server stopped");
            }
        }
    }
}

/// Appends `bytes` to a client's unsent bytes (unless it is closing) and lists it for the
/// next flush.
fn queue(clients: &mut [Option<Client>], pending: &mut Vec<Slot>, slot: Slot, bytes: &[u8]) {
    if let Some(c) = clients.get_mut(slot).and_then(Option::as_mut) {
        queue_for(c, pending, slot, bytes);
    }
}

fn queue_for(c: &mut Client, pending: &mut Vec<Slot>, slot: Slot, bytes: &[u8]) {
    if c.closing {
        return;
    }
    c.out.extend_from_slice(bytes);
    c.peak_out = c.peak_out.max(c.out.len());
    if !c.queued {
        c.queued = true;
        pending.push(slot);
    }
}

/// A client found dead during a pass over the sockets.
struct Dead {
    slot: Slot,
    why: String,
    /// The peer had already closed or reset the connection (not a drop by the server).
    peer_gone: bool,
}

impl Dead {
    /// A client the server drops for what it did (or failed to do).
    fn dropped(slot: Slot, why: String) -> Self {
        Dead {
            slot,
            why,
            peer_gone: false,
        }
    }
}

/// What `send_event` did.
struct Sent {
    /// Bytes encoded (each format once), for the round's budget.
    encoded_bytes: usize,
    /// Bytes appended to the recipients' buffers, all of them together.
    queued_bytes: usize,
}

/// Queues `event` for each of `recipients` in its wire format. `frames` are the scratch
/// buffers of the formats (classic, Socket.IO): each is encoded the first time a recipient
/// needs it, and its bytes are appended to every recipient of that format. A format nobody
/// reads is never encoded; when afterwards a buffer is empty, it was not used.
fn send_event(
    clients: &mut [Option<Client>],
    pending: &mut Vec<Slot>,
    encoder: &mut Encoder,
    frames: [&mut Vec<u8>; 2],
    recipients: impl Iterator<Item = Slot>,
    event: &ChatEvent<'_>,
    time: u64,
) -> Sent {
    let [classic, socketio] = frames;
    classic.clear();
    socketio.clear();
    let mut queued_bytes = 0;
    for slot in recipients {
        let Some(c) = clients.get_mut(slot).and_then(Option::as_mut) else {
            continue;
        };
        let frame = match c.wire {
            Wire::Classic => &mut *classic,
            Wire::SocketIo => &mut *socketio,
        };
        if frame.is_empty() {
            encoder.frame_as(c.wire, frame, event, time);
        }
        queue_for(c, pending, slot, frame);
        queued_bytes += frame.len();
    }
    Sent {
        encoded_bytes: classic.len() + socketio.len(),
        queued_bytes,
    }
}

/// The names of `members`, in order.
fn member_names<'c>(clients: &'c [Option<Client>], members: &[Slot]) -> Vec<&'c str> {
    members
        .iter()
        .filter_map(|&s| clients[s].as_ref()?.member.as_ref())
        .map(|m| &*m.name)
        .collect()
}

/// The event of a chat line: live, or replayed from history.
fn history_event<'e>(entry: &'e Entry, room: &'e str, history: bool) -> ChatEvent<'e> {
    let (name, text) = (&*entry.name, entry.text());
    match entry.kind {
        Kind::Message => ChatEvent::Message {
            name,
            text,
            room,
            history,
        },
        Kind::Action => ChatEvent::Action {
            name,
            text,
            room,
            history,
        },
    }
}

/// `#id` of the client in `slot`, for logs.
fn client_label(clients: &[Option<Client>], slot: Slot) -> String {
    clients[slot]
        .as_ref()
        .map_or_else(|| "(gone)".into(), |c| format!("#{}", c.id))
}

/// What the server frames in `bytes` are, for the debug log: what a browser's DevTools shows
/// under Network → WS → Messages.
fn describe_frames(mut bytes: &[u8]) -> String {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let (len, header) = match bytes[1] & 0x7f {
            126 if bytes.len() >= 4 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let len = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
                (usize::try_from(len).unwrap_or(usize::MAX), 10)
            }
            126 | 127 => break,
            n => (usize::from(n), 2),
        };
        let payload = &bytes[header..(header + len).min(bytes.len())];
        out.push(match bytes[0] & 0x0f {
            0x1 => format!("text {}", String::from_utf8_lossy(payload)),
            0x2 => format!("binary ({len} bytes)"),
            0x8 if payload.len() >= 2 => format!(
                "close {} {}",
                u16::from_be_bytes([payload[0], payload[1]]),
                String::from_utf8_lossy(&payload[2..])
            ),
            0x8 => "close".into(),
            0x9 => format!("ping ({len} bytes)"),
            0xA => format!("pong ({len} bytes)"),
            op => format!("opcode {op} ({len} bytes)"),
        });
        bytes = &bytes[(header + len).min(bytes.len())..];
    }
    out.join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread::{self, JoinHandle};

    /// A chat client whose socket's other end is read to the end by a thread (which returns
    /// how many bytes it got).
    fn client() -> (Client, JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut other_end, _) = listener.accept().unwrap();
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            other_end.read_to_end(&mut all).unwrap();
            all.len()
        });
        let client = Client {
            id: 1,
            fd: stream.as_raw_fd(),
            peer: stream.peer_addr().unwrap(),
            stream: Arc::new(stream),
            wire: Wire::Classic,
            heartbeat: Heartbeat::Ping,
            member: None,
            out: Vec::new(),
            written: 0,
            backlog_since: None,
            max_backlog_bytes: 1 << 20,
            closing: false,
            write_closed: false,
            queued: false,
            peak_out: 0,
        };
        (client, reader)
    }

    /// Queues `bytes` of 250-byte frames and writes them all (the other end keeps reading).
    fn round(c: &mut Client, bytes: usize) {
        let mut pending = Vec::new();
        while c.out.len() < bytes {
            queue_for(c, &mut pending, 0, &[b'x'; 250]);
        }
        while !c.write_pending().expect("the socket takes it") {
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn finish(c: Client, reader: JoinHandle<usize>) -> usize {
        c.stream.shutdown(Shutdown::Both).unwrap();
        drop(c);
        reader.join().unwrap()
    }

    #[test]
    fn a_full_round_keeps_its_buffer_for_the_next() {
        let (mut c, reader) = client();
        round(&mut c, MAX_ROUND_BYTES + 1);
        let capacity = c.out.capacity();
        assert!(
            capacity > MAX_ROUND_BYTES,
            "given back after sending: {capacity}"
        );
        round(&mut c, MAX_ROUND_BYTES + 1);
        assert_eq!(c.out.capacity(), capacity, "the second round reallocated");
        assert_eq!(c.fit_buffer(), 0, "the rounds still need it");
        assert_eq!(c.out.capacity(), capacity);
        let total = 2 * (MAX_ROUND_BYTES + 1).div_ceil(250) * 250;
        assert_eq!(finish(c, reader), total);
    }

    #[test]
    fn a_buffer_shrinks_to_what_recent_rounds_needed_and_goes_when_nothing_came() {
        let (mut c, reader) = client();
        round(&mut c, MAX_ROUND_BYTES + 1);
        assert_eq!(c.fit_buffer(), 0);
        round(&mut c, 1_000); // small rounds from now on
        let before = c.out.capacity();
        let freed = c.fit_buffer();
        assert!(
            freed >= MAX_ROUND_BYTES / 2 && c.out.capacity() >= 1_000,
            "{before} bytes became {} (freed {freed})",
            c.out.capacity()
        );
        let small = c.out.capacity();
        assert!(small < 4 * 1_000, "{small}");
        assert_eq!(c.fit_buffer(), small, "nothing came since: all of it freed");
        assert_eq!(c.out.capacity(), 0);
        finish(c, reader);
    }

    #[test]
    fn a_backlog_larger_than_the_limit_is_given_back_once_sent() {
        let (mut c, reader) = client();
        round(&mut c, KEEP_OUT_CAPACITY_BYTES + 1);
        assert_eq!(c.out.capacity(), 0);
        finish(c, reader);
    }
}
