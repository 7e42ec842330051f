//! Metrics: what the broadcaster counts, and how it reaches `GET /metrics` and `/healthz`.
//!
//! Owns the figures' types and the one place they cross threads ([`Shared`]). The broadcaster
//! and its outbox count in plain integers of their own (no atomics, no lock per event) and
//! publish a [`Snapshot`] a few times a second with `try_lock`, so a scrape can never make it
//! wait. Its only per-round cost here is the health heartbeat: one relaxed atomic store when
//! a round starts and one when it ends, which a reader thread compares with the clock
//! (`health`) even while the broadcaster is stuck. `exposition` writes the Prometheus text.
//! Touches no socket; uses std only.

pub(crate) mod exposition;
pub(crate) mod health;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};
use std::time::{Duration, Instant};

/// How often the broadcaster publishes its figures while it is busy: fresh enough for any
/// scrape interval, rare enough to cost nothing.
pub(crate) const PUBLISH_INTERVAL_MS: u64 = 250;

/// What a joined connection is, for `wschat_connections{kind=…}`. (socket.io's HTTP long
/// polling has its own row in the exposition; its sessions are not connections the outbox
/// holds.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A raw chat WebSocket (`/`).
    Chat,
    /// A socket.io client over WebSocket (`/socket.io/`).
    SocketIoWebSocket,
    /// A socket.io client on HTTP long-polling (until it upgrades to a WebSocket).
    SocketIoPolling,
    /// `/echo` or `/scream`.
    Echo,
}

impl Kind {
    pub(crate) const COUNT: usize = 4;
}

/// Why the server dropped a client, for `wschat_dropped_clients_total{reason=…}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Its backlog grew over the limit or lasted too long (the broadcaster's outbox).
    Backlog,
    /// It kept sending over the rate limit (close 1008, by its reader).
    RateLimit,
    /// It answered nothing for twice the ping interval (close 1001, by its reader).
    Heartbeat,
    /// It broke the protocol: a bad frame, bad UTF-8, a message too big, binary where text
    /// is expected, a malformed socket.io packet (close 1002, 1003, 1007 or 1009).
    ProtocolError,
}

impl DropReason {
    pub(crate) const COUNT: usize = 4;
    pub(crate) const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::Backlog,
        DropReason::RateLimit,
        DropReason::Heartbeat,
        DropReason::ProtocolError,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            DropReason::Backlog => "backlog",
            DropReason::RateLimit => "rate_limit",
            DropReason::Heartbeat => "heartbeat",
            DropReason::ProtocolError => "protocol_error",
        }
    }
}

/// Upper bounds of the round-duration histogram's buckets, in microseconds: a round at
/// scenario 1's load takes tens of microseconds, a full one to 5,000 clients milliseconds,
/// and `stuck_round_after` is seconds.
pub(crate) const ROUND_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 1_000_000, 5_000_000,
];

/// The broadcaster's round durations: a count per bucket (not cumulative) and the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoundHistogram {
    /// Rounds per bucket of `ROUND_BUCKETS_US`; the last entry counts the longer ones.
    pub counts: [u64; ROUND_BUCKETS_US.len() + 1],
    pub sum_us: u64,
}

impl RoundHistogram {
    pub(crate) fn observe(&mut self, round: Duration) {
        let us = u64::try_from(round.as_micros()).unwrap_or(u64::MAX);
        let bucket = ROUND_BUCKETS_US.partition_point(|&bound| bound < us);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }
}

/// What the outbox counts, in its own plain fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OutboxCounts {
    /// Joined connections, by `Kind as usize`.
    pub connections: [u64; Kind::COUNT],
    /// Chat events queued for a client (a broadcast to N counts N).
    pub deliveries: u64,
    /// Bytes the sockets took.
    pub sent_bytes: u64,
    /// Unsent bytes held for clients whose sockets were full, after the last flush.
    pub backlog_bytes: u64,
    /// Clients dropped for their backlog.
    pub backlog_drops: u64,
}

/// Every figure `/metrics` shows, as of the broadcaster's last publication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub outbox: OutboxCounts,
    /// Rooms that exist (with members or remembered lines).
    pub rooms: u64,
    /// Chat lines received (after the rate limit).
    pub messages: u64,
    /// Clients dropped, by `DropReason as usize` (the backlog's entry comes from the outbox).
    pub drops: [u64; DropReason::COUNT],
    pub rounds: RoundHistogram,
    /// With `--redis`: the bridge's figures, read from [`ClusterCounts`] when a reader takes
    /// the snapshot (the broadcaster never sets them).
    pub cluster: Option<ClusterFigures>,
    /// With `--history-file`: the history writer's figures, read from [`HistoryCounts`] when
    /// a reader takes the snapshot.
    pub history: Option<HistoryFigures>,
}

/// The history writer's figures as of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HistoryFigures {
    /// Lines queued for the writer and not yet taken: its lag, in lines.
    pub waiting_lines: u64,
    /// Lines left out of the file because the queue was full.
    pub left_out_lines: u64,
}

/// The history queue's counters: the broadcaster adds what it queues, the writer takes away
/// what it takes (relaxed atomics, one per line: neither waits).
#[derive(Debug, Default)]
pub(crate) struct HistoryCounts {
    on: AtomicBool,
    waiting: AtomicU64,
    left_out: AtomicU64,
}

impl HistoryCounts {
    pub(crate) fn started(&self) {
        self.on.store(true, Ordering::Relaxed);
    }
    /// A line is about to be queued (counted before, so the writer never takes it first).
    pub(crate) fn queuing(&self) {
        self.waiting.fetch_add(1, Ordering::Relaxed);
    }
    /// The line `queuing` announced was not queued after all.
    pub(crate) fn not_queued(&self, left_out: bool) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        if left_out {
            self.left_out.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// The writer took a line.
    pub(crate) fn taken(&self) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
    }
    pub(crate) fn figures(&self) -> Option<HistoryFigures> {
        self.on.load(Ordering::Relaxed).then(|| HistoryFigures {
            waiting_lines: self.waiting.load(Ordering::Relaxed),
            left_out_lines: self.left_out.load(Ordering::Relaxed),
        })
    }
}

/// The cluster bridge's figures as of one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ClusterFigures {
    /// Both bridge connections work: this node's lines go out and the others' come in.
    pub link_up: bool,
    /// Lines Redis took for the other nodes.
    pub published: u64,
    /// Other nodes' lines handed to the broadcaster.
    pub received: u64,
    /// Lines never sent to the other nodes (the queue full, Redis gone or failing).
    pub dropped: u64,
}

/// What the cluster bridge's threads count (`cluster-publish`, `cluster-subscribe`, and the
/// outlet's drops): atomics they write and a scrape reads, so neither waits for the other.
#[derive(Debug, Default)]
pub(crate) struct ClusterCounts {
    /// Set once the bridge starts: only then does `/metrics` show these figures.
    joined: AtomicBool,
    publishing: AtomicBool,
    subscribed: AtomicBool,
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
}

impl ClusterCounts {
    pub(crate) fn joined(&self) {
        self.joined.store(true, Ordering::Relaxed);
    }
    /// The publisher's connection works (or not).
    pub(crate) fn set_publishing(&self, up: bool) {
        self.publishing.store(up, Ordering::Relaxed);
    }
    /// The subscription works (or not).
    pub(crate) fn set_subscribed(&self, up: bool) {
        self.subscribed.store(up, Ordering::Relaxed);
    }
    pub(crate) fn add_published(&self, n: u64) {
        self.published.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }
    /// Counts `n` dropped lines; returns the total before them.
    pub(crate) fn add_dropped(&self, n: u64) -> u64 {
        self.dropped.fetch_add(n, Ordering::Relaxed)
    }
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// The figures, or `None` without `--redis`.
    pub(crate) fn figures(&self) -> Option<ClusterFigures> {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.joined.load(Ordering::Relaxed).then(|| ClusterFigures {
            link_up: self.publishing.load(Ordering::Relaxed)
                && self.subscribed.load(Ordering::Relaxed),
            published: load(&self.published),
            received: load(&self.received),
            dropped: load(&self.dropped),
        })
    }
}

/// Heartbeat value while the broadcaster waits for an event.
const IDLE: u64 = 0;
/// Heartbeat value once the broadcaster has finished.
const STOPPED: u64 = u64::MAX;

/// Shared between the broadcaster (the only writer of the heartbeat and the snapshot), the
/// cluster bridge and the history writer (their own counters), and the reader threads that answer `/metrics` and
/// `/healthz`.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The clock the heartbeat counts from.
    epoch: Instant,
    /// While a round runs, 1 + the milliseconds from `epoch` to its start; `IDLE` while the
    /// broadcaster waits, `STOPPED` once it has finished.
    heartbeat: AtomicU64,
    snapshot: Mutex<Snapshot>,
    /// The cluster bridge's own counters (its threads write them, not the broadcaster).
    pub(crate) cluster: ClusterCounts,
    /// The history queue's counters (the broadcaster's end and the writer).
    pub(crate) history: HistoryCounts,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            epoch: Instant::now(),
            heartbeat: AtomicU64::new(IDLE),
            snapshot: Mutex::default(),
            cluster: ClusterCounts::default(),
            history: HistoryCounts::default(),
        }
    }
}

impl Shared {
    /// The broadcaster has woken up to work: a round starts.
    pub(crate) fn round_started(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.epoch).as_millis() as u64;
        self.heartbeat.store(ms + 1, Ordering::Relaxed);
    }

    /// The broadcaster is about to wait for an event: idle is not stuck.
    pub(crate) fn round_ended(&self) {
        self.heartbeat.store(IDLE, Ordering::Relaxed);
    }

    /// The broadcaster has finished (the server is stopping).
    pub(crate) fn stopped(&self) {
        self.heartbeat.store(STOPPED, Ordering::Relaxed);
    }

    /// Replaces the published figures unless a reader is copying them right now (then the
    /// broadcaster tries again later rather than wait). True if published.
    pub(crate) fn try_publish(&self, snapshot: &Snapshot) -> bool {
        match self.snapshot.try_lock() {
            Ok(mut published) => {
                published.clone_from(snapshot);
                true
            }
            Err(TryLockError::Poisoned(e)) => {
                e.into_inner().clone_from(snapshot);
                true
            }
            Err(TryLockError::WouldBlock) => false,
        }
    }

    /// A copy of the last published figures, with the cluster bridge's as of now.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snapshot = (self.snapshot.lock())
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        snapshot.cluster = self.cluster.figures();
        snapshot.history = self.history.figures();
        snapshot
    }

    /// The broadcaster's state for `/healthz`, as of now.
    pub(crate) fn health(&self, stuck_after: Duration) -> health::Health {
        let beat = self.heartbeat.load(Ordering::Relaxed);
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        let state = match beat {
            IDLE => health::State::Idle,
            STOPPED => health::State::Stopped,
            started => health::State::InRound {
                for_ms: (now_ms + 1).saturating_sub(started),
            },
        };
        health::judge(state, stuck_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_fall_in_the_first_bucket_that_holds_them() {
        let mut h = RoundHistogram::default();
        h.observe(Duration::from_micros(50)); // on a bound: that bucket (le is inclusive)
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(60)); // past every bound
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[ROUND_BUCKETS_US.len()], 1);
        assert_eq!(h.sum_us, 50 + 51 + 60_000_000);
    }

    #[test]
    fn the_heartbeat_tells_idle_from_stuck() {
        let shared = Shared::default();
        let stuck_after = Duration::from_millis(20);
        assert!(shared.health(stuck_after).is_ok(), "idle at start");
        shared.round_started(Instant::now());
        assert!(shared.health(stuck_after).is_ok(), "a round just started");
        std::thread::sleep(stuck_after * 3);
        let stuck = shared.health(stuck_after);
        assert!(
            !stuck.is_ok() && stuck.reason.contains("stuck"),
            "{stuck:?}"
        );
        shared.round_ended();
        assert!(
            shared.health(stuck_after).is_ok(),
            "idle for long is not stuck"
        );
        shared.stopped();
        assert!(!shared.health(stuck_after).is_ok());
    }

    #[test]
    fn a_snapshot_is_published_whole() {
        let shared = Shared::default();
        let mut s = Snapshot {
            messages: 5,
            ..Snapshot::default()
        };
        s.outbox.connections[Kind::Chat as usize] = 3;
        assert!(shared.try_publish(&s));
        assert_eq!(shared.snapshot(), s);
        let held = shared.snapshot.lock().unwrap();
        assert!(!shared.try_publish(&Snapshot::default()), "never waits");
        drop(held);
    }
}
