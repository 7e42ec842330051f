//! The bridge's two threads and their Redis connections: `cluster-publish` sends this node's
//! lines (and appends them to the rooms' shared history), `cluster-subscribe` hears the other
//! nodes'.
//!
//! Owns the connections, the start-up checks (a wrong URL or password is one clear line) and
//! reconnecting with a capped backoff. Touches Redis and the event channel, nothing else: the
//! broadcaster reaches it only through the bounded outgoing channel ([`super::Outlet`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{info, warn};
use redis::{Client, Connection, RedisError};

use super::presence::Registry;
use super::{history, wire};
use crate::event::{Event, RemoteLine};
use crate::metrics::{ClusterCounts, Shared};

/// How long connecting to Redis may take, at start-up and on each reconnect.
const CONNECT_TIMEOUT_MS: u64 = 2_000;
/// A command that takes longer than this counts Redis as stalled: the publisher drops the
/// connection and reconnects, dropping (and counting) lines meanwhile.
const COMMAND_TIMEOUT_MS: u64 = 1_000;
/// How long start-up waits for the first subscription (the first clients would miss other
/// nodes' lines until then).
pub(crate) const SUBSCRIBED_WAIT_MS: u64 = 2_000;
/// The subscriber wakes at least this often to see whether the server is stopping.
const SUBSCRIBE_POLL_MS: u64 = 200;
/// The first pause before reconnecting; it doubles on each failure, up to the cap.
const RECONNECT_FIRST_MS: u64 = 100;
/// The longest pause between reconnect attempts.
const RECONNECT_CAP_MS: u64 = 5_000;
/// Lines sent to Redis in one pipelined round trip at most.
const MAX_PUBLISH_BATCH: usize = 256;

/// One line for the other nodes: the room, and what it heard.
pub(crate) struct Outgoing {
    pub room: String,
    pub line: RemoteLine,
}

/// How a start-up check failed.
pub(crate) enum StartError {
    /// The URL, the password or the database is wrong: starting anyway would never work.
    Config(String),
    /// Redis did not answer: it may come up later.
    Unreachable(String),
}

/// Shows a Redis URL without its password, for logs and errors.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Parses the URL and opens two checked connections (they answered PING), one to publish and
/// one to subscribe, or says why not.
pub(crate) fn open(url: &str) -> Result<(Client, Connection, Connection), StartError> {
    let shown = redact(url);
    let client = Client::open(url)
        .map_err(|e| StartError::Config(format!("--redis {shown}: not a Redis URL: {e}")))?;
    let publish = connect(&client).map_err(|e| classify(&shown, &e))?;
    let subscribe = connect(&client).map_err(|e| classify(&shown, &e))?;
    Ok((client, publish, subscribe))
}

/// A connection with timeouts that answered PING.
fn connect(client: &Client) -> Result<Connection, RedisError> {
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))?;
    let timeout = Some(Duration::from_millis(COMMAND_TIMEOUT_MS));
    conn.set_read_timeout(timeout)?;
    conn.set_write_timeout(timeout)?;
    redis::cmd("PING").query::<()>(&mut conn)?;
    Ok(conn)
}

fn classify(shown: &str, e: &RedisError) -> StartError {
    let code = e.code().unwrap_or("");
    if code == "NOAUTH" {
        StartError::Config(format!(
            "Redis at {shown} wants a password: give it in the URL, redis://:PASSWORD@HOST:PORT/"
        ))
    } else if code == "WRONGPASS" || e.kind() == redis::ErrorKind::AuthenticationFailed {
        StartError::Config(format!("Redis at {shown} refused the password: {e}"))
    } else if e.is_io_error() || e.is_timeout() || e.is_connection_refusal() {
        StartError::Unreachable(format!("cannot reach Redis at {shown}: {e}"))
    } else {
        StartError::Config(format!("Redis at {shown}: {e}"))
    }
}

/// The pause before the next reconnect attempt: doubles, capped.
struct Backoff {
    next_ms: u64,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            next_ms: RECONNECT_FIRST_MS,
        }
    }
    fn reset(&mut self) {
        self.next_ms = RECONNECT_FIRST_MS;
    }
    /// The pause to wait now, and doubles the next one.
    fn next(&mut self) -> Duration {
        let now = self.next_ms;
        self.next_ms = (now * 2).min(RECONNECT_CAP_MS);
        Duration::from_millis(now)
    }
}

/// Lines not sent to the other nodes, counted wherever they were dropped (in the bridge's
/// metrics, `wschat_cluster_dropped_lines_total`); logged when the count reaches a power of
/// two, so a long outage logs a few lines, not one per line.
#[derive(Default)]
pub(crate) struct Dropped(Arc<Shared>);

impl Dropped {
    pub(crate) fn new(metrics: Arc<Shared>) -> Dropped {
        Dropped(metrics)
    }
    /// The bridge's counters.
    pub(crate) fn counts(&self) -> &ClusterCounts {
        &self.0.cluster
    }
    pub(crate) fn add(&self, n: u64, why: &str) {
        let before = self.counts().add_dropped(n);
        let after = before + n;
        if (before + 1).next_power_of_two() <= after {
            warn!("cluster: {after} lines not sent to the other nodes so far ({why})");
        }
    }
    pub(crate) fn total(&self) -> u64 {
        self.counts().dropped()
    }
}

/// `cluster-publish`: publishes every outgoing line to its room's channel (a message or an
/// action also goes into the room's list, in the same round trip), in the order the
/// broadcaster handed them over (so each sender's lines keep their order everywhere). Ends
/// when the broadcaster drops its sender.
pub(crate) fn publish_loop(
    client: Client,
    mut conn: Option<Connection>,
    mut registry: Registry,
    outgoing: Receiver<Outgoing>,
    dropped: Arc<Dropped>,
    history_lines: usize,
) {
    let mut backoff = Backoff::new();
    let mut retry_at = Instant::now();
    let mut batch = Vec::with_capacity(MAX_PUBLISH_BATCH);
    let counts = dropped.counts();
    counts.set_publishing(conn.is_some());
    let mut refused = Refused::default();
    loop {
        if conn.is_none() && Instant::now() >= retry_at {
            conn = reconnect(&client, "publishing", &mut backoff, &mut retry_at);
            counts.set_publishing(conn.is_some());
        }
        // Heartbeat, sweep, and on a new connection register this node's members again.
        if let Some(Err(e)) = conn.as_mut().map(|c| registry.tick(c)) {
            warn!("cluster: presence failed ({e}): reconnecting");
            (conn, retry_at) = (None, Instant::now() + backoff.next());
            registry.disconnected();
        }
        // Disconnected, it wakes to reconnect on time: lines resume as soon as Redis is back.
        let first = match conn {
            Some(_) => outgoing.recv_deadline(registry.next_beat()),
            None => outgoing.recv_deadline(retry_at),
        };
        match first {
            Ok(first) => batch.push(first),
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => {
                if let Some(c) = conn.as_mut() {
                    registry.leave_cluster(c);
                }
                return;
            }
        }
        while batch.len() < MAX_PUBLISH_BATCH {
            match outgoing.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // Built even when it cannot be sent: the registry keeps track of who is here.
        let (mut pipe, mut claims) = (redis::pipe(), Vec::new());
        // A command Redis refuses (another program's key of the wrong type where a room's list
        // goes) costs only that command, not the connection and the batch.
        pipe.ignore_errors();
        for Outgoing { room, line } in &batch {
            registry.add(&mut pipe, room, line, &mut claims);
            if history_lines > 0 && history::entry(line).is_some() {
                let payload = wire::encode(registry.node(), line);
                history::append(&mut pipe, room, line, &payload, history_lines);
            }
        }
        let Some(c) = conn.as_mut() else {
            dropped.add(batch.len() as u64, "Redis is unreachable");
            batch.clear();
            continue;
        };
        match pipe.query::<Vec<redis::RedisResult<redis::Value>>>(c) {
            Ok(replies) => {
                counts.add_published(batch.len() as u64);
                // The replies left are the claims' (every other command's is ignored). One
                // Redis refused counts as claimed: a wrong rename would be worse.
                let mut answers = Vec::with_capacity(replies.len());
                for reply in replies {
                    match reply.and_then(|v| Ok(redis::from_redis_value::<i64>(v)?)) {
                        Ok(answer) => answers.push(answer),
                        Err(e) => {
                            refused.add(&e);
                            answers.push(1);
                        }
                    }
                }
                if !registry.claimed(claims, &answers) {
                    return; // the broadcaster has finished
                }
            }
            Err(e) => {
                warn!("cluster: publishing failed ({e}): reconnecting");
                dropped.add(batch.len() as u64, "Redis failed or stalled");
                counts.set_publishing(false);
                conn = None;
                retry_at = Instant::now() + backoff.next();
                registry.disconnected();
            }
        }
        batch.clear();
    }
}

/// Batches in which Redis refused a command (history's `RPUSH` on another program's key);
/// logged when the count reaches a power of two.
#[derive(Default)]
struct Refused(u64);

impl Refused {
    fn add(&mut self, e: &RedisError) {
        self.0 += 1;
        if self.0.is_power_of_two() {
            warn!("cluster: Redis refused a command in {} batches so far (the last: {e}); the lines were published", self.0);
        }
    }
}

/// One reconnect attempt; on failure, when the next may be made.
fn reconnect(
    client: &Client,
    what: &str,
    backoff: &mut Backoff,
    retry_at: &mut Instant,
) -> Option<Connection> {
    match connect(client) {
        Ok(conn) => {
            info!("cluster: connected to Redis again ({what})");
            backoff.reset();
            Some(conn)
        }
        Err(e) => {
            let pause = backoff.next();
            warn!("cluster: Redis still unreachable ({what}): {e}; next try in {pause:?}");
            *retry_at = Instant::now() + pause;
            None
        }
    }
}

/// `cluster-subscribe`: hands every other node's line to the broadcaster as an event,
/// skipping (and logging) what is not a wschat line. Says `ready` once first subscribed.
/// Reconnects and subscribes again when Redis goes away. Ends when `stopping` is set or the
/// broadcaster is gone.
pub(crate) fn subscribe_loop(
    client: Client,
    mut conn: Option<Connection>,
    node: Arc<str>,
    events: Sender<Event>,
    stopping: Arc<AtomicBool>,
    ready: Sender<()>,
    metrics: Arc<Shared>,
) {
    let counts = &metrics.cluster;
    let mut backoff = Backoff::new();
    let mut ready = Some(ready);
    // Set once the clients were told the link is down: they hear when it is back.
    let mut told_down = false;
    while !stopping.load(Ordering::SeqCst) {
        let Some(c) = conn.as_mut() else {
            let mut retry_at = Instant::now();
            conn = reconnect(&client, "subscribing", &mut backoff, &mut retry_at);
            if conn.is_none() {
                sleep_unless_stopping(retry_at, &stopping);
            }
            continue;
        };
        match listen(
            c,
            &node,
            &events,
            &stopping,
            &mut ready,
            &mut told_down,
            counts,
        ) {
            Ok(()) => return,
            Err(e) => {
                counts.set_subscribed(false);
                warn!("cluster: the subscription to Redis ended ({e}): reconnecting");
                conn = None;
                if !told_down && events.send(Event::ClusterLink { up: false }).is_err() {
                    return;
                }
                told_down = true;
            }
        }
    }
}

/// Subscribes to every room's channel and passes on what arrives, until stopping (`Ok`) or
/// the connection fails. (The subscription lasts as long as the `PubSub`: dropping it
/// unsubscribes.)
fn listen(
    conn: &mut Connection,
    node: &str,
    events: &Sender<Event>,
    stopping: &AtomicBool,
    ready: &mut Option<Sender<()>>,
    told_down: &mut bool,
    counts: &ClusterCounts,
) -> Result<(), RedisError> {
    conn.set_read_timeout(Some(Duration::from_millis(SUBSCRIBE_POLL_MS)))?;
    let mut pubsub = conn.as_pubsub();
    pubsub.psubscribe(format!("{}*", wire::ROOM_CHANNEL_PREFIX))?;
    counts.set_subscribed(true);
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    if std::mem::take(told_down) && events.send(Event::ClusterLink { up: true }).is_err() {
        return Ok(());
    }
    while !stopping.load(Ordering::SeqCst) {
        let message = match pubsub.get_message() {
            Ok(message) => message,
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e),
        };
        let channel = message.get_channel_name();
        match wire::decode(node, channel, message.get_payload_bytes()) {
            Ok(Some((room, line))) => {
                counts.add_received(1);
                if events.send(Event::Remote { room, line }).is_err() {
                    return Ok(()); // the broadcaster has finished
                }
            }
            Ok(None) => {} // this node's own line, already delivered here
            Err(why) => warn!("cluster: skipped a message on {channel:?}: {why}"),
        }
    }
    Ok(())
}

fn sleep_unless_stopping(until: Instant, stopping: &AtomicBool) {
    while !stopping.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        thread::sleep((until - now).min(Duration::from_millis(SUBSCRIBE_POLL_MS)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://ada:s3cret@host/"), "redis://ada:***@host/");
        assert_eq!(redact("redis://host:1/"), "redis://host:1/");
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new();
        let pauses: Vec<u64> = (0..9).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(pauses[..3], [100, 200, 400]);
        assert!(pauses.iter().all(|&p| p <= RECONNECT_CAP_MS));
        assert_eq!(*pauses.last().unwrap(), RECONNECT_CAP_MS);
        b.reset();
        assert_eq!(b.next().as_millis(), 100);
    }

    #[test]
    fn a_bad_url_is_a_config_error() {
        for url in ["http://127.0.0.1/", "not a url"] {
            match open(url) {
                Err(StartError::Config(msg)) => assert!(msg.contains("not a Redis URL"), "{msg}"),
                _ => panic!("{url} accepted"),
            }
        }
    }
}
