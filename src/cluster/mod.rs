//! The cluster (`--redis URL`): rooms shared by every wschat node that names the same Redis.
//!
//! Owns the bridge between the broadcaster and Redis: the start-up checks, the node's id, the
//! bounded channel of outgoing lines ([`Outlet`]), the [`Tap`] that picks the lines a room's
//! other nodes must hear, and the delivery of their lines here ([`deliver`]). The broadcaster
//! never talks to Redis: it only `try_send`s into the outlet (a full channel drops the line
//! and counts it), and the other nodes' lines reach it as `Event::Remote` on the event
//! channel. `link` runs the threads that talk to Redis; `wire` is what they say; `history`
//! keeps the rooms' shared history in Redis lists.
//! May use `chat` (a room's members and history), `event`, `wire`, `config` and `metrics`
//! (the bridge's counters); never a client socket.

mod history;
mod link;
mod presence;
mod wire;

use std::hash::BuildHasher;
use std::io::{self, ErrorKind};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError};
use log::{info, warn};
use redis::{Client, Connection};

use crate::chat::history::Loaded;
use crate::chat::{Chat, Deliver};
use crate::config::Config;
use crate::event::{Event, RemoteLine, Slot};
use crate::metrics::Shared;
use crate::wire::ChatEvent;
use link::{Dropped, Outgoing, StartError};
pub(crate) use presence::presence_event;
use presence::Registry;

/// Lines waiting for the publisher at most. Full means Redis is slow or gone: the broadcaster
/// drops the line (counted) instead of waiting, so local chat goes on.
pub(crate) const OUTGOING_QUEUE_CAPACITY: usize = 16 * 1024;
/// Stack for each bridge thread: a Redis connection and JSON, no large locals.
const BRIDGE_STACK_BYTES: usize = 256 * 1024;

/// Checked connections to Redis, before the server runs.
pub(crate) struct Bridge {
    client: Client,
    /// `None` when Redis was unreachable and `redis_optional` let the server start: the
    /// threads keep trying.
    connections: Option<(Connection, Connection)>,
    node: Arc<str>,
    /// The rooms' shared history, loaded before the server runs (empty when Redis was
    /// unreachable): the rooms start with it.
    history: Loaded,
    history_lines: usize,
    /// Heartbeats come every half of it; a node silent for two is taken for dead.
    ping_interval: Duration,
}

impl Bridge {
    /// Joins the cluster `config.redis` names, if any: checks the URL and the password, and
    /// subscribes, so lines from other nodes are heard from the first client on. A wrong URL
    /// or password fails with `InvalidInput`; an unreachable Redis with `NotConnected`,
    /// unless `redis_optional`.
    pub(crate) fn open(config: &Config) -> io::Result<Option<Bridge>> {
        let Some(url) = &config.redis else {
            return Ok(None);
        };
        let node: Arc<str> = node_id().into();
        let (client, connections, history) = match link::open(url) {
            Ok((client, mut publish, subscribe)) => {
                let history = load_history(&mut publish, config.history);
                (client, Some((publish, subscribe)), history)
            }
            Err(StartError::Config(msg)) => {
                return Err(io::Error::new(ErrorKind::InvalidInput, msg))
            }
            Err(StartError::Unreachable(msg)) if config.redis_optional => {
                warn!("{msg}: starting anyway (redis-optional); chat stays on this node until it answers");
                let client = Client::open(url.as_str())
                    .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e.to_string()))?;
                (client, None, Loaded::new())
            }
            Err(StartError::Unreachable(msg)) => {
                return Err(io::Error::new(
                    ErrorKind::NotConnected,
                    format!("{msg} (--redis-optional starts anyway)"),
                ))
            }
        };
        info!(
            "cluster: node {node} joined through Redis at {}",
            link::redact(url)
        );
        Ok(Some(Bridge {
            client,
            connections,
            node,
            history,
            history_lines: config.history,
            ping_interval: config.ping_interval,
        }))
    }

    /// The shared history loaded at start-up, for the rooms (once: then it is empty).
    pub(crate) fn take_history(&mut self) -> Loaded {
        std::mem::take(&mut self.history)
    }

    /// Starts the bridge's threads: the broadcaster gets the [`Outlet`], the subscriber
    /// sends on `events` until `stopping` is set; both count in `metrics.cluster`.
    pub(crate) fn start(
        self,
        events: Sender<Event>,
        stopping: Arc<AtomicBool>,
        metrics: Arc<Shared>,
    ) -> io::Result<(Outlet, Threads)> {
        let (tx, rx) = crossbeam_channel::bounded(OUTGOING_QUEUE_CAPACITY);
        metrics.cluster.joined();
        let dropped = Arc::new(Dropped::new(metrics.clone()));
        let (publish_conn, subscribe_conn) = self
            .connections
            .map_or((None, None), |(p, s)| (Some(p), Some(s)));
        let (client, d) = (self.client.clone(), dropped.clone());
        let history_lines = self.history_lines;
        let (loaded_tx, loaded) = crossbeam_channel::bounded(1);
        let registry = Registry::new(
            self.node.clone(),
            self.ping_interval,
            events.clone(),
            loaded_tx,
        );
        let publish = thread::Builder::new()
            .name("cluster-publish".into())
            .stack_size(BRIDGE_STACK_BYTES)
            .spawn(move || {
                link::publish_loop(client, publish_conn, registry, rx, d, history_lines)
            })?;
        let (client, node) = (self.client, self.node);
        let connected = subscribe_conn.is_some();
        let (ready, subscribed) = crossbeam_channel::bounded(1);
        let subscribe = thread::Builder::new()
            .name("cluster-subscribe".into())
            .stack_size(BRIDGE_STACK_BYTES)
            .spawn(move || {
                link::subscribe_loop(
                    client,
                    subscribe_conn,
                    node,
                    events,
                    stopping,
                    ready,
                    metrics,
                )
            })?;
        // Subscribed before the first client: from then on, no other node's line is missed.
        let wait = Duration::from_millis(link::SUBSCRIBED_WAIT_MS);
        if connected && subscribed.recv_timeout(wait).is_err() {
            warn!("cluster: not subscribed yet; lines from other nodes may be missed until then");
        }
        // And the other nodes' members known (the event is queued before the first Join).
        if connected && loaded.recv_timeout(wait).is_err() {
            warn!("cluster: the other nodes' members are not loaded yet");
        }
        let outlet = Outlet {
            tx,
            dropped: dropped.clone(),
        };
        Ok((
            outlet,
            Threads {
                publish,
                subscribe,
                dropped,
            },
        ))
    }
}

/// The bridge's running threads.
pub(crate) struct Threads {
    publish: JoinHandle<()>,
    subscribe: JoinHandle<()>,
    dropped: Arc<Dropped>,
}

impl Threads {
    /// Waits for both threads: call once the broadcaster has finished (the publisher ends
    /// with its outlet) and the server is stopping (the subscriber ends then).
    pub(crate) fn join(self) {
        let _ = self.publish.join();
        let _ = self.subscribe.join();
        let dropped = self.dropped.total();
        if dropped > 0 {
            warn!("cluster: {dropped} lines were never sent to the other nodes");
        }
    }
}

/// The broadcaster's end of the outgoing channel: never blocks.
pub(crate) struct Outlet {
    tx: Sender<Outgoing>,
    dropped: Arc<Dropped>,
}

impl Outlet {
    fn publish(&self, room: &str, line: RemoteLine) {
        let room = room.to_string();
        match self.tx.try_send(Outgoing { room, line }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped.add(1, "the Redis publisher is behind"),
            Err(TrySendError::Disconnected(_)) => self.dropped.add(1, "the publisher has ended"),
        }
    }
}

/// Delivers like `out`, and hands every room line (message, action, enter, leave, rename) to
/// the outlet for the room's members on other nodes. Private messages, notices, welcomes and
/// history replays stay here.
pub(crate) struct Tap<'a, D> {
    out: &'a mut D,
    outlet: Option<&'a Outlet>,
}

impl<'a, D: Deliver> Tap<'a, D> {
    pub(crate) fn new(out: &'a mut D, outlet: Option<&'a Outlet>) -> Self {
        Tap { out, outlet }
    }
}

impl<D: Deliver> Deliver for Tap<'_, D> {
    fn broadcast(
        &mut self,
        to: &[Slot],
        except: Option<Slot>,
        event: &ChatEvent<'_>,
        time_ms: u64,
    ) {
        self.out.broadcast(to, except, event, time_ms);
        if let Some(outlet) = self.outlet {
            if let Some((room, line)) = remote_line(event, time_ms) {
                outlet.publish(room, line);
            }
        }
    }
    fn send(&mut self, to: Slot, event: &ChatEvent<'_>, time_ms: u64) {
        self.out.send(to, event, time_ms);
    }
    fn to_other_node(&mut self, room: &str, event: &ChatEvent<'_>, _time_ms: u64) {
        if let (Some(outlet), ChatEvent::Private { from, to, text }) = (self.outlet, event) {
            let s = |x: &str| x.to_string();
            let (from, to, text) = (s(from), s(to), s(text));
            outlet.publish(room, RemoteLine::Private { from, to, text });
        }
    }
}

/// The line other nodes must hear for a room event, with its room.
fn remote_line<'e>(event: &ChatEvent<'e>, time_ms: u64) -> Option<(&'e str, RemoteLine)> {
    let s = |x: &str| x.to_string();
    Some(match *event {
        ChatEvent::Message {
            name,
            text,
            room,
            history: false,
        } => (
            room,
            RemoteLine::Message {
                name: s(name),
                text: s(text),
                time_ms,
            },
        ),
        ChatEvent::Action {
            name,
            text,
            room,
            history: false,
        } => (
            room,
            RemoteLine::Action {
                name: s(name),
                text: s(text),
                time_ms,
            },
        ),
        ChatEvent::Enter { name, room } => (room, RemoteLine::Enter { name: s(name) }),
        ChatEvent::Leave { name, room } => (room, RemoteLine::Leave { name: s(name) }),
        ChatEvent::Rename { old, name, room } => (
            room,
            RemoteLine::Rename {
                old: s(old),
                name: s(name),
            },
        ),
        _ => return None,
    })
}

/// Another node's line, for this node's members of `room`. A message keeps the time it was
/// said at; the rest get `now_ms`. A message or an action is also remembered in the room (opened
/// for it if need be), so newcomers here get it without asking Redis.
pub(crate) fn deliver(
    chat: &mut Chat,
    out: &mut impl Deliver,
    room: &str,
    line: &RemoteLine,
    now_ms: u64,
) {
    if !presence::note(chat, out, room, line, now_ms) {
        return;
    }
    if let Some(entry) = history::entry(line) {
        chat.remember(room, entry);
    }
    let to = chat.room_members(room);
    if to.is_empty() {
        return;
    }
    let (event, time_ms) = match line {
        RemoteLine::Message {
            name,
            text,
            time_ms,
        } => (
            ChatEvent::Message {
                name,
                text,
                room,
                history: false,
            },
            *time_ms,
        ),
        RemoteLine::Action {
            name,
            text,
            time_ms,
        } => (
            ChatEvent::Action {
                name,
                text,
                room,
                history: false,
            },
            *time_ms,
        ),
        RemoteLine::Enter { name } => (ChatEvent::Enter { name, room }, now_ms),
        RemoteLine::Leave { name } => (ChatEvent::Leave { name, room }, now_ms),
        RemoteLine::Rename { old, name } => (ChatEvent::Rename { old, name, room }, now_ms),
        RemoteLine::Private { .. } | RemoteLine::Present { .. } => return,
    };
    out.broadcast(to, None, &event, time_ms);
}

/// The notice every chat client gets when the link to the other nodes goes down or comes
/// back.
pub(crate) fn link_notice(
    chat: &Chat,
    out: &mut impl Deliver,
    slots: &[Slot],
    up: bool,
    now_ms: u64,
) {
    let (code, text) = if up {
        (
            "cluster-up",
            "The link to the other chat servers is back: the whole room hears you again.",
        )
    } else {
        (
            "cluster-down",
            "The link to the other chat servers is down: until it is back, only the people on this server hear you.",
        )
    };
    let notice = ChatEvent::Notice {
        code,
        text,
        users: None,
    };
    for &slot in slots.iter().filter(|&&slot| chat.member(slot).is_some()) {
        out.send(slot, &notice, now_ms);
    }
}

/// This node is stopping: the other nodes hear that each of its members left.
pub(crate) fn farewell(
    outlet: Option<&Outlet>,
    chat: &Chat,
    slots: impl IntoIterator<Item = Slot>,
) {
    let Some(outlet) = outlet else { return };
    for member in slots.into_iter().filter_map(|slot| chat.member(slot)) {
        let name = member.name.to_string();
        outlet.publish(&member.room, RemoteLine::Leave { name });
    }
}

/// Every room's shared history, or none (logged) when reading it fails: the chat starts
/// anyway, and newcomers get what is said from now on.
fn load_history(conn: &mut Connection, history_lines: usize) -> Loaded {
    history::load(conn, history_lines).unwrap_or_else(|e| {
        warn!("cluster: could not load the shared history ({e}): rooms start without it");
        Loaded::new()
    })
}

/// A node id unique enough for a cluster: random (std's hasher keys come from the OS), with
/// the process id mixed in.
fn node_id() -> String {
    let random = std::collections::hash_map::RandomState::new();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:016x}", random.hash_one((std::process::id(), nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what reaches the local clients.
    #[derive(Default)]
    struct Count(usize);

    impl Deliver for Count {
        fn broadcast(&mut self, _: &[Slot], _: Option<Slot>, _: &ChatEvent<'_>, _: u64) {
            self.0 += 1;
        }
        fn send(&mut self, _: Slot, _: &ChatEvent<'_>, _: u64) {
            self.0 += 1;
        }
    }

    #[test]
    fn the_tap_passes_room_lines_on_and_keeps_the_rest_here() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let outlet = Outlet {
            tx,
            dropped: Arc::default(),
        };
        let mut local = Count::default();
        let mut tap = Tap::new(&mut local, Some(&outlet));
        let (name, room) = ("ada", "r");
        let live = ChatEvent::Message {
            name,
            text: "hi",
            room,
            history: false,
        };
        let replayed = ChatEvent::Message {
            name,
            text: "old",
            room,
            history: true,
        };
        let private = ChatEvent::Private {
            from: name,
            to: "bob",
            text: "psst",
        };
        tap.broadcast(&[1, 2], None, &live, 5);
        tap.broadcast(&[1, 2], None, &replayed, 5);
        tap.broadcast(&[1, 2], None, &private, 5);
        tap.broadcast(&[1], Some(1), &ChatEvent::Enter { name, room }, 6);
        tap.send(1, &live, 7);
        assert_eq!(local.0, 5, "everything is delivered here");
        let out: Vec<(String, RemoteLine)> = rx.try_iter().map(|o| (o.room, o.line)).collect();
        let ada = || name.to_string();
        assert_eq!(
            out,
            [
                (
                    room.to_string(),
                    RemoteLine::Message {
                        name: ada(),
                        text: "hi".into(),
                        time_ms: 5
                    }
                ),
                (room.to_string(), RemoteLine::Enter { name: ada() }),
            ]
        );
    }

    #[test]
    fn a_full_outlet_drops_and_counts_instead_of_waiting() {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        let outlet = Outlet {
            tx,
            dropped: Arc::default(),
        };
        for _ in 0..3 {
            outlet.publish("r", RemoteLine::Leave { name: "ada".into() });
        }
        assert_eq!(outlet.dropped.total(), 2);
    }
}
