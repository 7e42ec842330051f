//! The broadcaster: the one thread that acts on events, and so the only writer to a client
//! socket after its handshake.
//!
//! Owns the [`Chat`] (who hears what), the [`Outbox`] (every client's write side) and the
//! history writer's queue (the file itself is the writer thread's: a disk must not stall the
//! broadcaster), and runs the loop that ties them together: wait for an event, take every
//! event already queued (a *round*, within the limits below), then write to every client
//! with something to send, one non-blocking `send` each. It never reads a socket and never
//! blocks on one, so no client can stall the others. It talks to the readers only through
//! the event channel. It counts what `/metrics` shows in plain fields and publishes them a
//! few times a second, and marks each round's start and end for `/healthz` (`metrics`).
//! With `--redis`, it hands room lines to the cluster bridge's outlet, which never blocks.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use log::{info, warn};

use crate::chat::{Chat, Deliver, Member};
use crate::cluster::{self, Outlet, Tap};
use crate::config::{Config, MetricsAccess};
use crate::event::{ConnId, Endpoint, Event, Join, Slot};
use crate::history_writer::HistoryQueue;
use crate::metrics::{self, Shared, Snapshot};
use crate::outbox::{Dead, Outbox, KEEP_CAPACITY_BYTES};
use crate::wire::{close_code, ChatEvent};

/// While any client has a backlog, the loop wakes at least this often to retry it.
const BACKLOG_RETRY: Duration = Duration::from_millis(5);
/// Events handled before writing: many frames per `send` under load, and the first of them
/// not held back long.
const MAX_EVENTS_PER_ROUND: usize = 1024;
/// Broadcast bytes encoded in one round before writing: bounds what a round adds to each
/// buffer, so the backlog limit measures what a client failed to take, not a burst.
const MAX_ROUND_BYTES: usize = 64 * 1024;
/// Bytes queued in one round over all clients together (a broadcast to N counts N times):
/// with thousands of clients, MAX_ROUND_BYTES alone would let a round queue 64 KiB for each.
const MAX_ROUND_QUEUED_BYTES: usize = 32 * 1024 * 1024;
/// While writing, the events that arrived meanwhile are taken after every this many sends.
const SENDS_PER_INTAKE: usize = 16;
/// How often outgoing buffers are fitted to what they held since the last look.
const BUFFER_FIT_INTERVAL: Duration = Duration::from_millis(250);
/// How often the figures for `/metrics` are published while there is something new.
const PUBLISH_INTERVAL: Duration = Duration::from_millis(metrics::PUBLISH_INTERVAL_MS);
/// The test hook `stall_on_message` stalls the broadcaster for this many `stuck_round_after`.
const STALL_ROUNDS: u32 = 4;

// A full round plus one frame must fit in what a buffer keeps between rounds.
const _: () = assert!(KEEP_CAPACITY_BYTES >= 4 * MAX_ROUND_BYTES);

/// The broadcaster's state. See the module comment.
pub(crate) struct Broadcaster {
    config: Arc<Config>,
    chat: Chat,
    outbox: Outbox,
    /// Where remembered lines go on their way to the history file; never blocks.
    history: Option<HistoryQueue>,
    /// The time of this round, Unix ms: every event handled in it carries it (one clock read
    /// per round, and a line's history entry has the time of its live event).
    now_ms: u64,
    /// Events handled this round.
    round_events: usize,
    next_ping: Instant,
    /// When buffers are next fitted (`None`: none can be holding memory).
    next_buffer_fit: Option<Instant>,
    /// Members of clients dropped during a flush, whose leave is announced in the next
    /// rounds within the round's limits (see `drop_dead`).
    unannounced_leaves: VecDeque<Member>,
    /// Set by `Event::Shutdown`: when the loop stops waiting for clients to leave.
    shutdown_deadline: Option<Instant>,
    /// With `--redis`: where room lines go for the other nodes (never blocks).
    cluster: Option<Outlet>,
    /// The heartbeat and the published figures, shared with the readers.
    metrics: Arc<Shared>,
    /// This thread's own figures (messages, drops reported by readers, round durations); the
    /// outbox keeps its own, and both are copied out when published.
    counts: Snapshot,
    /// When the current round started, if it handles events (for the histogram).
    round_started: Option<Instant>,
    /// False with `--metrics off`: nothing is published.
    publishing: bool,
    /// Something changed since the last publication.
    unpublished: bool,
    next_publish: Instant,
}

impl Broadcaster {
    pub(crate) fn new(
        config: Arc<Config>,
        chat: Chat,
        history: Option<HistoryQueue>,
        metrics: Arc<Shared>,
    ) -> Self {
        Broadcaster {
            publishing: config.metrics != MetricsAccess::Off,
            next_ping: Instant::now() + config.ping_interval,
            outbox: Outbox::new(&config),
            config,
            chat,
            history,
            now_ms: unix_ms(),
            round_events: 0,
            next_buffer_fit: None,
            unannounced_leaves: VecDeque::new(),
            shutdown_deadline: None,
            cluster: None,
            metrics,
            counts: Snapshot::default(),
            round_started: None,
            unpublished: false,
            next_publish: Instant::now(),
        }
    }

    /// Hands every room line to the cluster bridge too (`--redis`).
    pub(crate) fn with_cluster(mut self, outlet: Option<Outlet>) -> Self {
        self.cluster = outlet;
        self
    }

    /// Runs until a shutdown has finished or every event sender is gone.
    pub(crate) fn run(mut self, events: Receiver<Event>) {
        loop {
            let now = Instant::now();
            self.end_round(now);
            if self
                .shutdown_deadline
                .is_some_and(|deadline| now >= deadline)
            {
                break;
            }
            // A round starts with an event, or at once while dropped clients' leaves wait.
            if self.unannounced_leaves.is_empty() {
                let received = events.recv_deadline(self.wake_at(now));
                let woke = Instant::now();
                self.metrics.round_started(woke);
                match received {
                    Ok(event) => {
                        self.start_round(woke);
                        self.handle(event);
                        self.take_queued(&events);
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    // Every reader has ended (each holds a sender): a shutdown is complete.
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                self.metrics.round_started(now);
                self.start_round(now);
                self.take_queued(&events);
            }
            let now = Instant::now();
            if now >= self.next_ping {
                self.outbox.ping_all();
                self.end_silent_polls();
                self.next_ping = now + self.config.ping_interval;
            }
            self.flush(now, &events);
            self.fit_buffers(now);
        }
        for slot in self.outbox.slots() {
            self.remove(slot, "server stopped");
        }
        // Dropping `self` drops the history queue: the writer syncs what it has and ends.
        self.metrics.stopped();
    }

    /// Ends the round that ran since the last wake-up (if any): its duration goes into the
    /// histogram, the heartbeat says idle, and the figures are published when due.
    fn end_round(&mut self, now: Instant) {
        if let Some(started) = self.round_started.take() {
            self.counts
                .rounds
                .observe(now.saturating_duration_since(started));
        }
        self.metrics.round_ended();
        if self.unpublished && now >= self.next_publish {
            self.counts.outbox = self.outbox.counts;
            self.counts.rooms = self.chat.room_count() as u64;
            if self.metrics.try_publish(&self.counts) {
                self.unpublished = false;
                self.next_publish = now + PUBLISH_INTERVAL;
            } else {
                self.next_publish = now + BACKLOG_RETRY; // a reader is copying them
            }
        }
    }

    /// When to stop waiting for an event: the next ping, backlog retry, buffer fitting,
    /// publication of the figures or the end of a shutdown.
    fn wake_at(&self, now: Instant) -> Instant {
        let mut wake = if self.outbox.has_pending() {
            now + BACKLOG_RETRY
        } else {
            self.next_ping
        };
        let publish = self.unpublished.then_some(self.next_publish);
        for at in [self.next_buffer_fit, self.shutdown_deadline, publish]
            .into_iter()
            .flatten()
        {
            wake = wake.min(at);
        }
        wake
    }

    /// Ends the polling sessions no request came for in pingInterval + pingTimeout (the
    /// reader's idle timeout for a WebSocket); the room hears their leave.
    fn end_silent_polls(&mut self) {
        let limit_ms = self.config.idle_timeout().as_millis() as u64;
        for slot in self.outbox.silent_polls(unix_ms().saturating_sub(limit_ms)) {
            self.remove(slot, "polling session timed out");
        }
    }

    fn start_round(&mut self, now: Instant) {
        self.round_started = Some(now);
        self.unpublished = self.publishing;
        self.outbox.usage = Default::default();
        self.round_events = 0;
        self.now_ms = unix_ms();
    }

    /// Announces dropped clients' leaves, then handles events already queued, within the
    /// round's limits; never waits.
    fn take_queued(&mut self, events: &Receiver<Event>) {
        while self.round_events < MAX_EVENTS_PER_ROUND
            && self.outbox.usage.broadcast_bytes < MAX_ROUND_BYTES
            && self.outbox.usage.queued_bytes < MAX_ROUND_QUEUED_BYTES
        {
            if let Some(member) = self.unannounced_leaves.pop_front() {
                self.round_events += 1;
                let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
                self.chat.announce_leave(&member, self.now_ms, out);
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
        if let Event::Join(join) = event {
            return self.join(join);
        }
        if let Event::Shutdown = event {
            return self.shutdown();
        }
        if let Event::Remote { room, line } = event {
            return cluster::deliver(&mut self.chat, &mut self.outbox, &room, &line, self.now_ms);
        }
        if let Event::Presence { .. } | Event::NameClash { .. } = event {
            let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
            return cluster::presence_event(&mut self.chat, out, event, self.now_ms);
        }
        if let Event::ClusterLink { up } = event {
            let slots = self.outbox.slots();
            return cluster::link_notice(&self.chat, &mut self.outbox, &slots, up, self.now_ms);
        }
        let Some(slot) = event_id(&event).and_then(|id| self.outbox.slot(id)) else {
            return; // from a client already dropped
        };
        match event {
            Event::Enter {
                requested_name,
                requested_room,
                ..
            } => self.enter(slot, requested_name.as_deref(), requested_room.as_deref()),
            Event::Part { id } => {
                let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
                self.chat.leave(slot, self.now_ms, out);
                info!("#{id} left the chat (Socket.IO DISCONNECT)");
            }
            Event::Text { text, .. } => self.text(slot, &text),
            Event::Relay { event, args, .. } => {
                (self.chat).relay(slot, &event, &args, self.now_ms, &mut self.outbox)
            }
            Event::Send { bytes, .. } => self.outbox.queue(slot, &bytes),
            Event::Close { bytes, .. } => self.close(slot, &bytes),
            Event::Notice { code, text, .. } => {
                let notice = ChatEvent::Notice {
                    code,
                    text: &text,
                    users: None,
                };
                self.outbox.send(slot, &notice, self.now_ms);
            }
            Event::Leave {
                reason, dropped, ..
            } => {
                if let Some(why) = dropped {
                    self.counts.drops[why as usize] += 1;
                }
                self.outbox.write_now(slot);
                self.remove(slot, &reason);
            }
            Event::Poll(poll) => self.outbox.poll(slot, poll),
            Event::Probe { id, stream } => {
                if self.outbox.probe(slot, stream) {
                    info!("#{id} probing the upgrade to a WebSocket");
                }
            }
            Event::Upgrade { id } => {
                if self.outbox.upgrade(slot) {
                    info!("#{id} upgraded from polling to a WebSocket");
                } else {
                    self.remove(slot, "upgrade without a probe");
                }
            }
            Event::Join(_)
            | Event::Shutdown
            | Event::Remote { .. }
            | Event::ClusterLink { .. }
            | Event::Presence { .. }
            | Event::NameClash { .. } => unreachable!("handled above"),
        }
    }

    /// A chat line: to the room (and the cluster), and remembered for the history file.
    fn text(&mut self, slot: Slot, text: &str) {
        self.counts.messages += 1;
        if self.config.stall_on_message.as_deref() == Some(text) {
            warn!("test hook: stall_on_message, the broadcaster sleeps");
            thread::sleep(self.config.stuck_round_after * STALL_ROUNDS);
        }
        let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
        let said = self.chat.text(slot, text, self.now_ms, out);
        if let (Some(said), Some(history)) = (said, self.history.as_mut()) {
            history.push(said.room, said.entry);
        }
    }

    fn join(&mut self, join: Join) {
        let slot = self.outbox.add(&join);
        if self.shutdown_deadline.is_some() {
            self.close_with(slot, close_code::GOING_AWAY, "server shutting down");
            return;
        }
        let Join {
            id, peer, endpoint, ..
        } = join;
        match endpoint {
            Endpoint::Chat {
                requested_name,
                requested_room,
            } => self.enter(slot, requested_name.as_deref(), requested_room.as_deref()),
            Endpoint::SocketIo {
                server_pings,
                greeting,
            } => {
                let eio = if server_pings { 4 } else { 3 };
                info!("#{id} {peer} connected with socket.io (EIO={eio})");
                self.outbox.queue(slot, &greeting);
            }
            Endpoint::Polling { eio3, .. } => {
                let eio = if eio3 { 3 } else { 4 };
                info!("#{id} {peer} connected with socket.io over long-polling (EIO={eio})");
            }
            Endpoint::Echo => info!("#{id} {peer} connected to an echo endpoint"),
        }
    }

    /// A chat client enters the chat, unless it is already closing.
    fn enter(&mut self, slot: Slot, name: Option<&str>, room: Option<&str>) {
        if self.outbox.is_closing(slot) {
            return;
        }
        let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
        if let Some(m) = self.chat.enter(slot, name, room, self.now_ms, out) {
            let (name, room) = (m.name.clone(), m.room.clone());
            info!("{} joined {room:?} as {name:?}", self.outbox.label(slot));
        }
    }

    /// A reader's Close frame (a reply to the client's, or the server's own for an error).
    /// When the server had already sent its own Close, this is the client's answer: the close
    /// handshake is complete and the server closes the connection (RFC 6455 section 7.1.1).
    fn close(&mut self, slot: Slot, close_frame: &[u8]) {
        if self.outbox.close(slot, close_frame) {
            // The room hears of it now, not when the TCP connection ends.
            let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
            self.chat.leave(slot, self.now_ms, out);
        } else {
            self.remove(slot, "close handshake complete");
        }
    }

    /// Queues the server's own Close frame; the client leaves its room at once.
    fn close_with(&mut self, slot: Slot, code: u16, reason: &str) {
        if self.outbox.close_with(slot, code, reason) {
            let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
            self.chat.leave(slot, self.now_ms, out);
        }
    }

    /// Takes a client out of its room (announced) and out of the outbox.
    fn remove(&mut self, slot: Slot, reason: &str) {
        let out = &mut Tap::new(&mut self.outbox, self.cluster.as_ref());
        self.chat.leave(slot, self.now_ms, out);
        self.outbox.remove(slot, reason);
    }

    /// Writes every client's unsent bytes, without blocking, and drops those found dead.
    ///
    /// A pass over a large room takes milliseconds (one `send` each), so every few sends of
    /// the first pass it takes the events that arrived meanwhile: a message that comes in
    /// mid-pass goes out in this pass to every client not yet written.
    fn flush(&mut self, now: Instant, events: &Receiver<Event>) {
        let mut first_pass = true;
        loop {
            let batch = self.outbox.take_pending();
            if batch.is_empty() {
                break;
            }
            let mut dead = Vec::new();
            for (i, &slot) in batch.iter().enumerate() {
                if first_pass && i % SENDS_PER_INTAKE == SENDS_PER_INTAKE - 1 {
                    self.take_queued(events);
                }
                dead.extend(self.outbox.write(slot, now));
            }
            self.drop_dead(dead);
            first_pass = false;
        }
        self.outbox.end_flush();
    }

    /// Drops the clients found dead in one pass. They leave their rooms at once; their
    /// leaves are announced in the next rounds, within a round's limits: announced at once,
    /// each would go to every other client, the other dead ones included (ARCHITECTURE.md,
    /// "The broadcaster's loop").
    fn drop_dead(&mut self, dead: Vec<Dead>) {
        for Dead {
            slot,
            why,
            peer_gone,
        } in dead
        {
            // A peer that went away is routine (`remove` logs it at info); a drop is a warning.
            if !peer_gone {
                warn!("{} dropped: {why}", self.outbox.label(slot));
            }
            if let Some(member) = self.chat.quit(slot) {
                self.unannounced_leaves.push_back(member);
            }
            self.outbox.remove(slot, &why);
        }
    }

    /// Every BUFFER_FIT_INTERVAL while clients are busy, fits their buffers to recent need.
    fn fit_buffers(&mut self, now: Instant) {
        match self.next_buffer_fit {
            None if self.round_events > 0 => self.next_buffer_fit = Some(now + BUFFER_FIT_INTERVAL),
            Some(at) if now >= at => {
                self.round_events = 0; // a later round schedules the next fitting
                let any_busy = self.outbox.fit_buffers();
                self.next_buffer_fit = any_busy.then(|| now + BUFFER_FIT_INTERVAL);
            }
            _ => {}
        }
    }

    /// Starts a graceful shutdown: every client gets Close 1001, and nobody hears leaves.
    fn shutdown(&mut self) {
        info!("shutting down: closing {} connections", self.outbox.len());
        self.shutdown_deadline = Some(Instant::now() + self.config.shutdown_grace);
        // Here nobody needs to hear it, but the other nodes' members do.
        cluster::farewell(self.cluster.as_ref(), &self.chat, self.outbox.slots());
        self.chat.stop_announcing();
        for slot in self.outbox.slots() {
            self.close_with(slot, close_code::GOING_AWAY, "server shutting down");
        }
    }
}

/// The chat delivers through the outbox.
impl Deliver for Outbox {
    fn broadcast(
        &mut self,
        to: &[Slot],
        except: Option<Slot>,
        event: &ChatEvent<'_>,
        time_ms: u64,
    ) {
        Outbox::broadcast(self, to, except, event, time_ms);
    }
    fn send(&mut self, to: Slot, event: &ChatEvent<'_>, time_ms: u64) {
        Outbox::send(self, to, event, time_ms);
    }
}

/// The connection an event is about (`None` for `Shutdown`).
fn event_id(event: &Event) -> Option<ConnId> {
    match event {
        Event::Join(join) => Some(join.id),
        Event::Enter { id, .. }
        | Event::Part { id }
        | Event::Text { id, .. }
        | Event::Relay { id, .. }
        | Event::Send { id, .. }
        | Event::Close { id, .. }
        | Event::Notice { id, .. }
        | Event::Leave { id, .. }
        | Event::Probe { id, .. }
        | Event::Upgrade { id } => Some(*id),
        Event::Poll(poll) => Some(poll.id),
        Event::Shutdown
        | Event::Remote { .. }
        | Event::ClusterLink { .. }
        | Event::Presence { .. }
        | Event::NameClash { .. } => None,
    }
}

/// Milliseconds since the Unix epoch, for the `time` field.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
