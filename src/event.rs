//! The channel's contract: what the reader threads (and the stop handle) tell the broadcaster.
//!
//! Every reader holds a `Sender<Event>` of one bounded crossbeam channel; the broadcaster owns
//! the one `Receiver`. Nothing flows back, so there is no cycle to deadlock. This module holds
//! only the types: the readers make events, the broadcaster handles them, and neither needs
//! the other's module. With `--redis`, the cluster bridge's subscriber holds a sender too.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

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
    /// Close every client with 1001, give them the grace period, then stop.
    Shutdown,
    /// A line said on another node of the cluster, from the Redis bridge (`--redis`): for
    /// this node's members of `room`.
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

/// A connection that finished its handshake. The stream is shared with its reader, which only
/// reads it from now on; the broadcaster only writes it.
pub(crate) struct Join {
    pub id: ConnId,
    pub stream: Arc<TcpStream>,
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
    /// `/echo` or `/scream`: gets only the frames its reader sends.
    Echo,
}
