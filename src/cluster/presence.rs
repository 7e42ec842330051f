//! Cluster presence (`--redis`): who is in which room on every node, names unique across the
//! cluster, `/msg` to another node, node heartbeats and the leaves of a dead node's members.
//!
//! Owns the presence keys in Redis and what the publisher does with them, and the
//! broadcaster's side of presence events (kept small: it updates the chat's `Others`). Keys:
//! - `wschat:names:<room>` (room lower-cased), a hash: name (lower-cased) → `node\nName`;
//!   a name is claimed with a script that sets it only if it is free or already this node's,
//!   so two nodes never both hold it;
//! - `wschat:members:<node>`, a hash: `room\nname` (lower-cased) → `Room\nName`, what a
//!   dead node's survivors must announce and free;
//! - `wschat:node:<node>`, the heartbeat: set every half ping interval, expiring after two;
//! - `wschat:nodes`, the set of node ids, which every node sweeps for expired heartbeats.
//!
//! May use `chat` (its `Others` and members), `event`, `wire` and Redis (publisher thread
//! only); the broadcaster's functions here never touch Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{info, warn};
use redis::{Connection, Pipeline, RedisResult};

use super::wire;
use crate::chat::{Chat, Deliver};
use crate::event::{Event, RemoteLine};
use crate::wire::ChatEvent;

/// Keeps the chat's `Others` current with another node's `line` in `room`, and delivers a
/// `/msg` to its recipient here. True when the room's members here must hear the line.
pub(crate) fn note(
    chat: &mut Chat,
    out: &mut impl Deliver,
    room: &str,
    line: &RemoteLine,
    now_ms: u64,
) -> bool {
    let others = chat.others_mut();
    match line {
        RemoteLine::Enter { name } => others.add(room, name),
        RemoteLine::Leave { name } => others.remove(room, name),
        RemoteLine::Rename { old, name } => {
            others.remove(room, old);
            others.add(room, name);
        }
        RemoteLine::Present { name } => {
            others.add(room, name);
            return false;
        }
        RemoteLine::Private { from, to, text } => {
            if let Some(slot) = chat.find(room, to) {
                let event = ChatEvent::Private { from, to, text };
                out.send(slot, &event, now_ms);
            }
            return false;
        }
        RemoteLine::Message { .. } | RemoteLine::Action { .. } => {}
    }
    true
}

/// The broadcaster's side of the bridge's presence events: a snapshot of the other nodes'
/// members replaces what this node knew; a name claimed first elsewhere is changed here.
pub(crate) fn presence_event(chat: &mut Chat, out: &mut impl Deliver, event: Event, now_ms: u64) {
    match event {
        Event::Presence { rooms } => chat.others_mut().replace(rooms),
        Event::NameClash { room, name } => chat.clash(&room, &name, now_ms, out),
        _ => {}
    }
}

/// Claims a name for this node (free, or already this node's), records it among the node's
/// members, frees the old name of a rename, and publishes the line: 1, or 0 when another
/// node holds the name (then nothing changes). Atomic, as every Redis script is.
/// KEYS: the room's names, the node's members. ARGV: name, node, owner value, member field,
/// member value, channel (empty: publish nothing), payload, old name and its member field
/// (empty: not a rename).
const CLAIM_LUA: &str = r"
local mine = ARGV[2] .. '\n'
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, #mine) ~= mine then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
if ARGV[8] ~= '' and ARGV[8] ~= ARGV[1] then
  local old = redis.call('HGET', KEYS[1], ARGV[8])
  if old and string.sub(old, 1, #mine) == mine then redis.call('HDEL', KEYS[1], ARGV[8]) end
  redis.call('HDEL', KEYS[2], ARGV[9])
end
if ARGV[6] ~= '' then redis.call('PUBLISH', ARGV[6], ARGV[7]) end
return 1
";

/// Frees a name if `node` holds it, forgets the member, and publishes the leave.
/// KEYS: the room's names, the node's members. ARGV: name, node, member field, channel
/// (empty: publish nothing), payload.
const RELEASE_LUA: &str = r"
local mine = ARGV[2] .. '\n'
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.sub(cur, 1, #mine) == mine then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('HDEL', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
";

const NAMES_KEY_PREFIX: &str = "wschat:names:";
const NODES_KEY: &str = "wschat:nodes";
/// Hashes read per SCAN step when loading who is on the other nodes.
const SCAN_COUNT: usize = 100;

fn names_key(room: &str) -> String {
    format!("{NAMES_KEY_PREFIX}{}", room.to_lowercase())
}
fn members_key(node: &str) -> String {
    format!("wschat:members:{node}")
}
fn heartbeat_key(node: &str) -> String {
    format!("wschat:node:{node}")
}
fn member_field(room: &str, name: &str) -> String {
    format!("{}\n{}", room.to_lowercase(), name.to_lowercase())
}

/// The publisher's side of presence: this node's members as Redis must hold them, the
/// heartbeat and the sweep for dead nodes. Lives on `cluster-publish`.
pub(crate) struct Registry {
    node: Arc<str>,
    /// (room, name) lower-cased → (room, name) as spelled: kept through outages, so they
    /// can be registered again when Redis is back (even empty).
    own: HashMap<(String, String), (String, String)>,
    heartbeat_ttl_ms: u64,
    beat_every: Duration,
    next_beat: Instant,
    /// Whether this connection has registered the members yet.
    registered: bool,
    events: Sender<Event>,
    /// Told once the other nodes' members were first loaded (start-up waits for it).
    loaded: Option<Sender<()>>,
}

/// A claim whose answer the pipeline returns: its room and name.
pub(crate) type Claim = (String, String);

impl Registry {
    /// This node's id, which every line it publishes carries.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// A heartbeat every half `ping_interval`, expiring after two: a node that stops is
    /// found by the next sweep after that, within 2.5 ping intervals.
    pub(crate) fn new(
        node: Arc<str>,
        ping_interval: Duration,
        events: Sender<Event>,
        loaded: Sender<()>,
    ) -> Self {
        let interval_ms = (ping_interval.as_millis() as u64).max(2);
        Registry {
            node,
            own: HashMap::new(),
            heartbeat_ttl_ms: interval_ms * 2,
            beat_every: Duration::from_millis(interval_ms / 2),
            next_beat: Instant::now(),
            registered: false,
            events,
            loaded: Some(loaded),
        }
    }

    /// When the next heartbeat is due.
    pub(crate) fn next_beat(&self) -> Instant {
        self.next_beat
    }

    /// The connection was lost: register again on the next.
    pub(crate) fn disconnected(&mut self) {
        self.registered = false;
    }

    /// Adds what `line` needs to `pipe` (and keeps `own` current even when the pipe is not
    /// sent, during an outage). Claims go to `claims`, in the order of their answers.
    pub(crate) fn add(
        &mut self,
        pipe: &mut Pipeline,
        room: &str,
        line: &RemoteLine,
        claims: &mut Vec<Claim>,
    ) {
        let channel = wire::room_channel(room);
        match line {
            RemoteLine::Enter { name } => {
                self.claim(pipe, room, name, None, &channel, line);
                claims.push((room.to_string(), name.clone()));
            }
            RemoteLine::Rename { old, name } => {
                let key = (room.to_lowercase(), old.to_lowercase());
                if self.own.remove(&key).is_some() {
                    self.claim(pipe, room, name, Some(old), &channel, line);
                } else {
                    // Its old name was never this node's (it lost a clash): the others
                    // hear it enter.
                    let enter = RemoteLine::Enter { name: name.clone() };
                    self.claim(pipe, room, name, None, &channel, &enter);
                }
                claims.push((room.to_string(), name.clone()));
            }
            RemoteLine::Leave { name } => {
                let key = (room.to_lowercase(), name.to_lowercase());
                if self.own.remove(&key).is_some() {
                    let payload = wire::encode(&self.node, line);
                    release(pipe, &self.node, room, name, &channel, &payload);
                } // else: never claimed here, so the others never heard it enter
            }
            _ => {
                pipe.cmd("PUBLISH")
                    .arg(channel)
                    .arg(wire::encode(&self.node, line))
                    .ignore();
            }
        }
    }

    fn claim(
        &mut self,
        pipe: &mut Pipeline,
        room: &str,
        name: &str,
        old: Option<&str>,
        channel: &str,
        line: &RemoteLine,
    ) {
        let key = (room.to_lowercase(), name.to_lowercase());
        self.own.insert(key, (room.to_string(), name.to_string()));
        let node = &*self.node;
        pipe.cmd("EVAL")
            .arg(CLAIM_LUA)
            .arg(2)
            .arg(names_key(room))
            .arg(members_key(node))
            .arg(name.to_lowercase())
            .arg(node)
            .arg(format!("{node}\n{name}"))
            .arg(member_field(room, name))
            .arg(format!("{room}\n{name}"))
            .arg(channel)
            .arg(wire::encode(node, line))
            .arg(old.map_or(String::new(), str::to_lowercase))
            .arg(old.map_or(String::new(), |old| member_field(room, old)));
    }

    /// The answers to `claims`: a name another node holds is dropped from `own`, and the
    /// broadcaster is told to pick another. False when the broadcaster has finished.
    pub(crate) fn claimed(&mut self, claims: Vec<Claim>, answers: &[i64]) -> bool {
        for ((room, name), &answer) in claims.into_iter().zip(answers) {
            if answer == 0 {
                info!("cluster: {name:?} in {room:?} is taken on another node");
                self.own.remove(&(room.to_lowercase(), name.to_lowercase()));
                if self.events.send(Event::NameClash { room, name }).is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// Heartbeats and sweeps when due, and registers this node's members on a new
    /// connection (Redis may have restarted empty) or when a sweep took this node for dead.
    pub(crate) fn tick(&mut self, conn: &mut Connection) -> RedisResult<()> {
        if self.registered && Instant::now() < self.next_beat {
            return Ok(());
        }
        self.next_beat = Instant::now() + self.beat_every;
        let (added,): (i64,) = redis::pipe()
            .cmd("SET")
            .arg(heartbeat_key(&self.node))
            .arg(1)
            .arg("PX")
            .arg(self.heartbeat_ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(NODES_KEY)
            .arg(&*self.node)
            .query(conn)?;
        if !self.registered || added == 1 {
            if self.registered {
                warn!("cluster: this node was taken for dead (Redis stalled?): registering again");
            }
            self.register(conn)?;
            self.registered = true;
        }
        self.sweep(conn)
    }

    /// Claims every member again, silently (`present`: nobody hears an enter), then hands
    /// the broadcaster who is on the other nodes.
    fn register(&mut self, conn: &mut Connection) -> RedisResult<()> {
        let mut pipe = redis::pipe();
        let mut claims = Vec::new();
        let members: Vec<(String, String)> = self.own.values().cloned().collect();
        for (room, name) in members {
            let present = RemoteLine::Present { name: name.clone() };
            let channel = wire::room_channel(&room);
            self.claim(&mut pipe, &room, &name, None, &channel, &present);
            claims.push((room, name));
        }
        if !claims.is_empty() {
            let answers: Vec<i64> = pipe.query(conn)?;
            self.claimed(claims, &answers);
        }
        let rooms = self.load_others(conn)?;
        let _ = self.events.send(Event::Presence { rooms });
        if let Some(loaded) = self.loaded.take() {
            let _ = loaded.send(());
        }
        Ok(())
    }

    /// Every room's names held by other nodes, from the names hashes.
    fn load_others(&self, conn: &mut Connection) -> RedisResult<Vec<(String, Vec<String>)>> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{NAMES_KEY_PREFIX}*"))
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query(conn)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mine = format!("{}\n", self.node);
        let mut rooms = Vec::new();
        for key in keys {
            let owners: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query(conn)?;
            let names: Vec<String> = owners
                .into_values()
                .filter(|owner| !owner.starts_with(&mine))
                .filter_map(|owner| owner.split_once('\n').map(|(_, n)| n.to_string()))
                .collect();
            let room = key[NAMES_KEY_PREFIX.len()..].to_string();
            rooms.push((room, names));
        }
        Ok(rooms)
    }

    /// Every node whose heartbeat expired: the one sweeper that takes it off the set frees
    /// its members' names and announces their leaves, as if the dead node had.
    fn sweep(&self, conn: &mut Connection) -> RedisResult<()> {
        let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(NODES_KEY).query(conn)?;
        for node in nodes.iter().filter(|n| **n != *self.node) {
            let alive: bool = redis::cmd("EXISTS").arg(heartbeat_key(node)).query(conn)?;
            if alive {
                continue;
            }
            let mine: i64 = redis::cmd("SREM").arg(NODES_KEY).arg(node).query(conn)?;
            if mine == 0 {
                continue; // another node is sweeping it
            }
            let members: HashMap<String, String> =
                redis::cmd("HGETALL").arg(members_key(node)).query(conn)?;
            warn!(
                "cluster: node {node} stopped beating: its {} members leave",
                members.len()
            );
            let mut pipe = redis::pipe();
            for (room, name) in members.values().filter_map(|v| v.split_once('\n')) {
                let leave = RemoteLine::Leave { name: name.into() };
                let payload = wire::encode(node, &leave);
                release(
                    &mut pipe,
                    node,
                    room,
                    name,
                    &wire::room_channel(room),
                    &payload,
                );
            }
            pipe.cmd("DEL").arg(members_key(node)).ignore();
            pipe.query::<()>(conn)?;
        }
        Ok(())
    }

    /// The node is stopping (its leaves were published already): frees what is left.
    pub(crate) fn leave_cluster(&mut self, conn: &mut Connection) {
        let mut pipe = redis::pipe();
        for (room, name) in self.own.values() {
            release(&mut pipe, &self.node, room, name, "", b"");
        }
        let node = &*self.node;
        pipe.cmd("DEL").arg(members_key(node)).ignore();
        pipe.cmd("DEL").arg(heartbeat_key(node)).ignore();
        pipe.cmd("SREM").arg(NODES_KEY).arg(node).ignore();
        if let Err(e) = pipe.query::<()>(conn) {
            warn!("cluster: could not leave the cluster cleanly ({e}): its heartbeat will expire");
        }
    }
}

fn release(pipe: &mut Pipeline, node: &str, room: &str, name: &str, channel: &str, payload: &[u8]) {
    pipe.cmd("EVAL")
        .arg(RELEASE_LUA)
        .arg(2)
        .arg(names_key(room))
        .arg(members_key(node))
        .arg(name.to_lowercase())
        .arg(node)
        .arg(member_field(room, name))
        .arg(channel)
        .arg(payload)
        .ignore();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::history::Loaded;
    use crate::chat::rooms::Rooms;
    use crate::event::Slot;

    /// Who got something, one entry per delivery.
    #[derive(Default)]
    struct Got(Vec<Slot>);

    impl Deliver for Got {
        fn broadcast(&mut self, to: &[Slot], _: Option<Slot>, _: &ChatEvent<'_>, _: u64) {
            self.0.extend(to);
        }
        fn send(&mut self, to: Slot, _: &ChatEvent<'_>, _: u64) {
            self.0.push(to);
        }
    }

    #[test]
    fn present_is_silent_and_a_private_line_reaches_its_recipient_only() {
        let mut chat = Chat::new(Rooms::new(10, 0, Loaded::new()), 0, 10);
        let mut got = Got::default();
        chat.enter(1, Some("ada"), Some("r"), 0, &mut got);
        chat.enter(2, Some("amy"), Some("r"), 0, &mut got);
        got.0.clear();
        let s = |x: &str| x.to_string();
        let present = RemoteLine::Present { name: s("Bob") };
        assert!(
            !note(&mut chat, &mut got, "r", &present, 0),
            "nobody hears it"
        );
        assert!(chat.others_mut().contains("R", "bob"));
        let leave = RemoteLine::Leave { name: s("bob") };
        assert!(note(&mut chat, &mut got, "r", &leave, 0));
        assert!(!chat.others_mut().contains("r", "bob"));
        let private = |to: &str| RemoteLine::Private {
            from: s("bob"),
            to: s(to),
            text: s("psst"),
        };
        assert!(!note(&mut chat, &mut got, "r", &private("AMY"), 0));
        assert!(!note(&mut chat, &mut got, "r", &private("nobody"), 0));
        assert_eq!(got.0, [2], "amy alone, once");
    }
}
