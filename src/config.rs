//! Config: every address, limit and timing the server uses, with its default.
//!
//! Owns no run-time state. Built once (by `main.rs` from flags, or by embedding code), then
//! shared read-only (`Arc<Config>`) by the listener, the client readers and the broadcaster.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Port the chat listens on when none is given.
pub const DEFAULT_PORT: u16 = 3000;
/// Address the chat binds when none is given: every IPv4 interface, so other machines on
/// the LAN can open the page.
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Connections held at once (chat, echo, page downloads); the next one gets HTTP 503.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;
/// Largest chat message a client may send: a chat line, not a file.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024;
/// Largest message `/echo` accepts: the Autobahn TestSuite sends up to 16 MiB.
pub const DEFAULT_ECHO_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// Chat messages a client may send per second, on average (0 turns the limit off).
pub const DEFAULT_RATE_LIMIT_PER_SEC: u32 = 5;
/// Chat messages a client may send in a burst before the rate limit applies.
pub const DEFAULT_RATE_BURST: u32 = 10;
/// A client that keeps exceeding the rate limit this long is disconnected (close 1008).
pub const DEFAULT_FLOOD_TIMEOUT_SECS: u64 = 10;
/// Time a new connection has to send its complete HTTP request head.
pub const DEFAULT_HANDSHAKE_TIMEOUT_SECS: u64 = 10;
/// Largest HTTP request head accepted (request line and headers); browsers send under 2 KiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 8 * 1024;
/// The server pings every client this often; a client silent for twice this is dropped.
pub const DEFAULT_PING_INTERVAL_SECS: u64 = 30;
/// Unsent bytes a chat client may have queued before it is dropped as stuck.
pub const DEFAULT_MAX_BACKLOG_BYTES: usize = 1024 * 1024;
/// Unsent bytes an `/echo` client may have queued: room for a few of its largest messages.
pub const DEFAULT_ECHO_MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;
/// A client whose backlog stays non-empty this long is dropped as stuck.
pub const DEFAULT_BACKLOG_TIMEOUT_SECS: u64 = 10;
/// On shutdown, time given to clients to answer the Close 1001 before sockets are cut.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 2;
/// Chat lines each room remembers for newcomers.
pub const DEFAULT_HISTORY_LINES: usize = 50;
/// Appended history lines are made durable (fdatasync) at most this long after they are
/// written; 0 syncs after every batch.
pub const DEFAULT_HISTORY_SYNC_INTERVAL_MS: u64 = 1000;
/// Rooms that may exist at once (a room with members, or with remembered lines).
pub const DEFAULT_MAX_ROOMS: usize = 1000;
/// A broadcaster round unfinished for this long makes `/healthz` answer 503: a round takes
/// milliseconds even with thousands of clients, so seconds mean it is stuck.
pub const DEFAULT_STUCK_ROUND_AFTER_SECS: u64 = 5;

/// Who may read `GET /metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAccess {
    /// Anyone who can reach the port: the figures are counts, no names, rooms or addresses.
    #[default]
    On,
    /// Only peers on 127.0.0.1 or ::1 (a Prometheus on the same machine); others get 403.
    Loopback,
    /// No `/metrics` (404), and the broadcaster publishes no snapshot.
    Off,
}

impl std::str::FromStr for MetricsAccess {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "on" => Ok(MetricsAccess::On),
            "loopback" => Ok(MetricsAccess::Loopback),
            "off" => Ok(MetricsAccess::Off),
            _ => Err(format!("{s:?}: use on, loopback or off")),
        }
    }
}

impl std::fmt::Display for MetricsAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MetricsAccess::On => "on",
            MetricsAccess::Loopback => "loopback",
            MetricsAccess::Off => "off",
        })
    }
}

/// Everything a [`Server`](crate::Server) needs to know. Start from [`Config::default`] and
/// change what you need:
///
/// ```
/// let config = wschat::Config {
///     port: 0, // any free port
///     max_clients: 50,
///     ..wschat::Config::default()
/// };
/// assert_eq!(config.max_message_bytes, 4096);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind, IPv4 or IPv6.
    pub bind: IpAddr,
    /// Port to bind; 0 picks a free one (see [`Server::local_addr`](crate::Server::local_addr)).
    pub port: u16,
    /// Serve the page from this directory instead of the copy built into the binary.
    pub www_dir: Option<PathBuf>,
    /// Send the built-in page's strict Content-Security-Policy (no inline scripts, nothing
    /// from other hosts) with the HTML files of `www_dir` too. Off, they get none, as from any
    /// static server, so an ordinary page's inline script and CDN scripts run.
    pub www_strict_csp: bool,
    /// Connections held at once; the next one gets HTTP 503.
    pub max_clients: usize,
    /// Largest chat message, in bytes; larger closes the connection with 1009.
    pub max_message_bytes: usize,
    /// Largest `/echo` (and `/scream`) message, in bytes.
    pub echo_max_message_bytes: usize,
    /// Chat messages per second per client (token bucket rate); 0 turns rate limiting off.
    pub rate_limit_per_sec: u32,
    /// Token bucket size: messages a client may send at once.
    pub rate_burst: u32,
    /// A client over the rate limit for this long is disconnected with close 1008.
    pub flood_timeout: Duration,
    /// Time a new connection has to send its request head.
    pub handshake_timeout: Duration,
    /// Largest request head, in bytes; larger gets HTTP 431.
    pub max_request_bytes: usize,
    /// Interval between server pings; a client silent for twice this is dropped.
    pub ping_interval: Duration,
    /// Unsent bytes a chat client may have queued before it is dropped.
    pub max_backlog_bytes: usize,
    /// Unsent bytes an `/echo` client may have queued before it is dropped.
    pub echo_max_backlog_bytes: usize,
    /// A client whose backlog stays non-empty this long is dropped.
    pub backlog_timeout: Duration,
    /// Origins allowed to open a WebSocket (`https://example.org`); empty allows any.
    pub allow_origins: Vec<String>,
    /// On shutdown, how long clients get to answer the Close before sockets are cut.
    pub shutdown_grace: Duration,
    /// Chat lines each room remembers and replays to newcomers; 0 turns history off.
    pub history: usize,
    /// Append chat lines to this JSON-lines file and reload them at start-up.
    pub history_file: Option<PathBuf>,
    /// Longest time an appended history line may wait for `fdatasync`; zero syncs after
    /// every batch. A power cut can lose the lines of this last interval.
    pub history_sync_interval: Duration,
    /// Rooms that may exist at once; past it, an idle room is forgotten to make space.
    pub max_rooms: usize,
    /// Join a cluster through this Redis (`redis://[:PASSWORD@]HOST:PORT/[DB]`): rooms span
    /// every node that names the same Redis. `None` (the default) never touches Redis.
    pub redis: Option<String>,
    /// Start even when Redis cannot be reached at start-up (the bridge keeps retrying);
    /// otherwise [`Server::bind`](crate::Server::bind) fails.
    pub redis_optional: bool,
    /// Who may read `GET /metrics` (the Prometheus text format); `/healthz` is always served.
    pub metrics: MetricsAccess,
    /// `/healthz` answers 503 when a broadcaster round has been running this long.
    pub stuck_round_after: Duration,
    /// Relay socket.io events other than `message` (`emit('typing', true)`) to the others in
    /// the sender's room, with who sent them. Off, the sender gets a notice instead.
    pub relay_custom_events: bool,
    /// Fault injection for tests: a chat line equal to this makes its reader thread panic, to
    /// check that a panic ends only that connection (with its leave announced).
    #[doc(hidden)]
    pub panic_on_message: Option<String>,
    /// Fault injection for tests: a chat line equal to this makes the broadcaster sleep for
    /// four times `stuck_round_after` in the middle of its round, so `/healthz` sees it stuck.
    #[doc(hidden)]
    pub stall_on_message: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND,
            port: DEFAULT_PORT,
            www_dir: None,
            www_strict_csp: false,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            echo_max_message_bytes: DEFAULT_ECHO_MAX_MESSAGE_BYTES,
            rate_limit_per_sec: DEFAULT_RATE_LIMIT_PER_SEC,
            rate_burst: DEFAULT_RATE_BURST,
            flood_timeout: Duration::from_secs(DEFAULT_FLOOD_TIMEOUT_SECS),
            handshake_timeout: Duration::from_secs(DEFAULT_HANDSHAKE_TIMEOUT_SECS),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            ping_interval: Duration::from_secs(DEFAULT_PING_INTERVAL_SECS),
            max_backlog_bytes: DEFAULT_MAX_BACKLOG_BYTES,
            echo_max_backlog_bytes: DEFAULT_ECHO_MAX_BACKLOG_BYTES,
            backlog_timeout: Duration::from_secs(DEFAULT_BACKLOG_TIMEOUT_SECS),
            allow_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            history: DEFAULT_HISTORY_LINES,
            history_file: None,
            history_sync_interval: Duration::from_millis(DEFAULT_HISTORY_SYNC_INTERVAL_MS),
            max_rooms: DEFAULT_MAX_ROOMS,
            redis: None,
            redis_optional: false,
            metrics: MetricsAccess::On,
            stuck_round_after: Duration::from_secs(DEFAULT_STUCK_ROUND_AFTER_SECS),
            relay_custom_events: true,
            panic_on_message: None,
            stall_on_message: None,
        }
    }
}

impl Config {
    /// The socket address to bind.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }

    /// A client that sends nothing (no frame, no Pong) for this long is dropped.
    pub fn idle_timeout(&self) -> Duration {
        self.ping_interval * 2
    }

    /// True when `--allow-origin` is not set, or lists `origin` (for WebSockets and polling
    /// alike).
    pub(crate) fn allows_origin(&self, origin: Option<&str>) -> bool {
        self.allow_origins.is_empty()
            || origin.is_some_and(|o| {
                let o = o.trim_end_matches('/');
                (self.allow_origins.iter()).any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(o))
            })
    }

    /// Checks the values that would make the server misbehave, with a message a person can
    /// act on.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_clients == 0 {
            return Err("max-clients must be at least 1".into());
        }
        if self.max_message_bytes == 0 || self.echo_max_message_bytes == 0 {
            return Err("message size limits must be at least 1 byte".into());
        }
        if self.rate_limit_per_sec > 0 && self.rate_burst == 0 {
            return Err("rate-burst must be at least 1 when the rate limit is on".into());
        }
        for (name, d) in [
            ("handshake-timeout", self.handshake_timeout),
            ("ping-interval", self.ping_interval),
            ("backlog-timeout", self.backlog_timeout),
            ("stuck-round-after", self.stuck_round_after),
        ] {
            if d.is_zero() {
                return Err(format!("{name} must be more than 0 seconds"));
            }
        }
        if self.max_rooms == 0 {
            return Err("max-rooms must be at least 1".into());
        }
        if self.max_request_bytes < 256 {
            return Err("max-request-bytes must be at least 256".into());
        }
        if self.redis.is_some() && self.history_file.is_some() {
            return Err(
                "history-file does not go with redis: the file holds one node's lines, \
                 and a cluster's nodes would each replay a different past; drop history-file"
                    .into(),
            );
        }
        for origin in &self.allow_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.trim_end_matches('/').matches('/').count() != 2
            {
                return Err(format!(
                    "allow-origin {origin:?} is not an origin: give scheme and host, \
                     like https://chat.example.org or http://localhost:3000"
                ));
            }
        }
        Ok(())
    }
}
