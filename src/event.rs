//! The channel's contract: what the reader threads (and the stop handle) tell the broadcaster.
//!
//! Every reader holds a `Sender<Event>` of one bounded crossbeam channel; the broadcaster owns
//! the one `Receiver`. Nothing flows back, so there is no cycle to deadlock. This module holds
//! only the types: the readers make events, the broadcaster handles them, and neither needs
//! the other's module. With `--redis`, the cluster bridge's subscriber holds a sender too.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use crossbeam_channel::Sender;
use tungstenite::Utf8Bytes;

pub(crate) use crate::metrics::DropReason;

/// Identifies one accepted connection for its whole life; never reused.
pub(crate) type ConnId = u64;

/// Where the broadcaster keeps a joined connection: a small index into its tables (the
/// outbox's and the chat's), reused after the connection is gone. Readers never see one.
pub(crate) type Slot = usize;

/// Events the channel holds at most. Full means the broadcaster is behind: readers then wait,
/// stop reading their sockets, and TCP slows the senders instead of memory growing.
pub(crate) const EVENT_QUEUE_CAPACITY: usize = 16 * 1024;

/// One thing that happened, for the broadcaster to act on.
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
    /// A chat line from a chat client, past the rate limit (not copied: tungstenite's bytes).
    Text { id: ConnId, text: Utf8Bytes },
    /// A socket.io client's own event (`emit('typing', true)`), past the rate limit: for the
    /// others in its room. `args` is the arguments' JSON without the array's brackets.
    Relay {
        id: ConnId,
        event: String,
        args: String,
    },
    /// Complete frames for this client alone (echo replies, Pong, socket.io replies).
    Send { id: ConnId, bytes: Vec<u8> },
    /// A Close frame for this client: the last bytes it gets, then its write side is shut.
    Close { id: ConnId, bytes: Vec<u8> },
    /// A notice for one client, e.g. that its message was dropped by the rate limit.
    Notice {
        id: ConnId,
        code: &'static str,
        text: String,
    },
    /// The reader has finished: the connection is over. Always a reader's last event.
    /// `dropped` says why, when the reader ended it for the client's fault (for the metrics).
    Leave {
        id: ConnId,
        reason: String,
        dropped: Option<DropReason>,
    },
    /// A polling session's long-poll GET: the broadcaster answers it when packets are queued,
    /// and is the only writer of that response.
    Poll(Poll),
    /// A WebSocket opened with a polling session's sid sent `2probe`: the broadcaster answers
    /// `3probe` on `stream` and releases the session's pending GET with a noop.
    Probe { id: ConnId, stream: Arc<TcpStream> },
    /// That WebSocket sent `5`: the session's write side moves to it.
    Upgrade { id: ConnId },
    /// Close every client with 1001, give them the grace period, then stop.
    Shutdown,
    /// A line said on another node of the cluster, from the Redis bridge (`--redis`): for
    /// this node's members of `room`, and (a message or an action) for the room's history.
    Remote { room: String, line: RemoteLine },
    /// The bridge lost its subscription to Redis (`up: false`) or has it again: every chat
    /// client hears one notice each way.
    ClusterLink { up: bool },
    /// Who is on the other nodes, as Redis holds it (room → names), read by the bridge on
    /// each connect: it replaces what this node knew of them.
    Presence { rooms: Vec<(String, Vec<String>)> },
    /// Another node claimed `name` in `room` first: this node's member of that name gets
    /// another.
    NameClash { room: String, name: String },
}

/// What another node's room heard, as the bridge decoded it from Redis.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RemoteLine {
    Message {
        name: String,
        text: String,
        time_ms: u64,
    },
    Action {
        name: String,
        text: String,
        time_ms: u64,
    },
    Enter {
        name: String,
    },
    Leave {
        name: String,
    },
    Rename {
        old: String,
        name: String,
    },
    /// A `/msg` for `to`, a member of the room on the node that hears it.
    Private {
        from: String,
        to: String,
        text: String,
    },
    /// `name` is in the room (re-registered after Redis came back): no one is told.
    Present {
        name: String,
    },
}

/// A long-poll GET handed over: the broadcaster writes its response on `stream` (the HTTP
/// head with `headers`, then the payload) and tells the reader through `done` when it is
/// out (`true`) or abandoned (`false`, or `done` dropped). The reader reads nothing more
/// from `stream` until then.
pub(crate) struct Poll {
    pub id: ConnId,
    pub stream: Arc<TcpStream>,
    /// Header lines for the response (CORS, `Connection`), each ending in `\r\n`.
    pub headers: String,
    pub done: Sender<bool>,
}

/// What the readers of a polling session and its write side in the broadcaster share.
#[derive(Debug, Default)]
pub(crate) struct PollShared {
    /// Set by the broadcaster when the session is over: its sid is unknown from then on.
    pub ended: AtomicBool,
    /// When a request for the session last arrived (Unix ms), set by its readers: a session
    /// silent for pingInterval + pingTimeout ends.
    pub last_seen_ms: AtomicU64,
    /// A GET is with the broadcaster: set by the reader that hands it over, cleared by the
    /// broadcaster before the response's first byte, so the client's next GET never finds it
    /// set (a second GET while it is set is an overlap).
    pub getting: AtomicBool,
}

/// A connection that finished its handshake. The stream is shared with its reader, which only
/// reads it from now on; the broadcaster only writes it. A polling session has no stream of
/// its own: each pending GET brings one (`Event::Poll`).
pub(crate) struct Join {
    pub id: ConnId,
    pub stream: Option<Arc<TcpStream>>,
    pub peer: SocketAddr,
    pub endpoint: Endpoint,
}

/// What a connection is, as far as the broadcaster cares.
pub(crate) enum Endpoint {
    /// A raw chat client, with the name and room it asked for (unchecked): enters at once.
    Chat {
        requested_name: Option<String>,
        requested_room: Option<String>,
    },
    /// A socket.io client: `greeting` is its first frames (the Engine.IO open packet, and for
    /// EIO=3 the CONNECT of `/`). It enters the chat on `Event::Enter`. `server_pings` is
    /// true for EIO=4, where the server sends the heartbeat; EIO=3 clients ping by themselves.
    SocketIo {
        server_pings: bool,
        greeting: Vec<u8>,
    },
    /// A socket.io client over HTTP long-polling: like `SocketIo`, but its frames are queued
    /// as packets for its next GET (its open packet was the handshake's response).
    Polling {
        /// EIO=3 (client pings, `<len>:<packet>` payloads) rather than EIO=4.
        eio3: bool,
        shared: Arc<PollShared>,
    },
    /// `/echo` or `/scream`: gets only the frames its reader sends.
    Echo,
}
