//! The `wschat` command: parses flags (each also read from a `WSCHAT_*` environment
//! variable), sets up logging and signals, and runs the server. Everything else is the
//! library.

#![forbid(unsafe_code)]

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::LevelFilter;
use wschat::config::{self, Config, MetricsAccess};

/// A small, fast, blocking WebSocket chat server with its own chat page.
///
/// Open http://localhost:3000/ in two browser tabs and chat. WebSocket endpoints: / (the chat;
/// ?name=, ?room=), /echo and /scream. Every flag can also be set from the environment variable
/// shown with it; a flag given on the command line wins.
#[derive(Parser, Debug)]
#[command(version, about, long_about, max_term_width = 100)]
struct Cli {
    /// Port to listen on
    #[arg(long, short, env = "WSCHAT_PORT", default_value_t = config::DEFAULT_PORT, help_heading = "Network")]
    port: u16,

    /// Address to bind: 0.0.0.0 for every IPv4 interface, :: for IPv6, 127.0.0.1 for this
    /// machine only
    #[arg(long, env = "WSCHAT_BIND", default_value_t = config::DEFAULT_BIND, help_heading = "Network")]
    bind: IpAddr,

    /// Allow WebSockets and socket.io's long-polling only from this page origin, e.g.
    /// https://chat.example.org (repeatable, comma-separated in the variable); without it any
    /// origin may connect
    #[arg(
        long = "allow-origin",
        env = "WSCHAT_ALLOW_ORIGIN",
        value_name = "URL",
        value_delimiter = ',',
        help_heading = "Network"
    )]
    allow_origins: Vec<String>,

    /// Serve the page from this directory instead of the copy built into the binary
    #[arg(long, env = "WSCHAT_WWW", value_name = "DIR", help_heading = "Chat")]
    www: Option<PathBuf>,

    /// Send the built-in page's strict Content-Security-Policy with --www pages too (no inline
    /// scripts, nothing from other hosts); without it they get none, as from any static server
    #[arg(long, env = "WSCHAT_WWW_STRICT_CSP", help_heading = "Chat")]
    www_strict_csp: bool,

    /// Do not relay socket.io events other than `message` (emit('typing', …)) to the sender's
    /// room; the sender gets a `custom-events-off` notice instead
    #[arg(long, env = "WSCHAT_NO_CUSTOM_EVENTS", help_heading = "Chat")]
    no_custom_events: bool,

    /// Chat lines each room replays to newcomers; 0 turns history off
    #[arg(long, env = "WSCHAT_HISTORY", value_name = "N", default_value_t = config::DEFAULT_HISTORY_LINES, help_heading = "Chat")]
    history: usize,

    /// Keep history in this JSON-lines file and reload it at start-up, so a restart loses
    /// nothing
    #[arg(
        long,
        env = "WSCHAT_HISTORY_FILE",
        value_name = "PATH",
        help_heading = "Chat"
    )]
    history_file: Option<PathBuf>,

    /// Seconds an appended history line may wait to be synced to disk (fdatasync); 0 syncs
    /// after every write. A power cut can lose the lines of this last interval
    #[arg(long, env = "WSCHAT_HISTORY_SYNC_INTERVAL", value_name = "SECS", default_value_t = SecsOrZero(Duration::from_millis(config::DEFAULT_HISTORY_SYNC_INTERVAL_MS)), help_heading = "Chat")]
    history_sync_interval: SecsOrZero,

    /// Rooms at once; past it an idle room is forgotten to make space
    #[arg(long, env = "WSCHAT_MAX_ROOMS", value_name = "N", default_value_t = config::DEFAULT_MAX_ROOMS, help_heading = "Chat")]
    max_rooms: usize,

    /// Connections at once (chat, echo and page downloads); the next gets HTTP 503
    #[arg(long, env = "WSCHAT_MAX_CLIENTS", value_name = "N", default_value_t = config::DEFAULT_MAX_CLIENTS, help_heading = "Limits")]
    max_clients: usize,

    /// Largest chat message in bytes; larger closes the connection with 1009
    #[arg(long, env = "WSCHAT_MAX_MESSAGE_BYTES", value_name = "N", default_value_t = config::DEFAULT_MAX_MESSAGE_BYTES, help_heading = "Limits")]
    max_message_bytes: usize,

    /// Largest /echo and /scream message in bytes (the Autobahn TestSuite sends 16 MiB)
    #[arg(long, env = "WSCHAT_ECHO_MAX_MESSAGE_BYTES", value_name = "N", default_value_t = config::DEFAULT_ECHO_MAX_MESSAGE_BYTES, help_heading = "Limits")]
    echo_max_message_bytes: usize,

    /// Chat messages per second per client (token bucket); 0 turns the limit off
    #[arg(long, env = "WSCHAT_RATE_LIMIT", value_name = "N", default_value_t = config::DEFAULT_RATE_LIMIT_PER_SEC, help_heading = "Limits")]
    rate_limit: u32,

    /// Chat messages a client may send at once before the rate limit applies
    #[arg(long, env = "WSCHAT_RATE_BURST", value_name = "N", default_value_t = config::DEFAULT_RATE_BURST, help_heading = "Limits")]
    rate_burst: u32,

    /// Unsent bytes a chat client may have queued before it is dropped as stuck
    #[arg(long, env = "WSCHAT_MAX_BACKLOG_BYTES", value_name = "N", default_value_t = config::DEFAULT_MAX_BACKLOG_BYTES, help_heading = "Limits")]
    max_backlog_bytes: usize,

    /// Unsent bytes an /echo client may have queued before it is dropped
    #[arg(long, env = "WSCHAT_ECHO_MAX_BACKLOG_BYTES", value_name = "N", default_value_t = config::DEFAULT_ECHO_MAX_BACKLOG_BYTES, help_heading = "Limits")]
    echo_max_backlog_bytes: usize,

    /// Largest HTTP request head in bytes (HTTP 431 above it)
    #[arg(long, env = "WSCHAT_MAX_REQUEST_BYTES", value_name = "N", default_value_t = config::DEFAULT_MAX_REQUEST_BYTES, help_heading = "Limits")]
    max_request_bytes: usize,

    /// Seconds between server pings; a client silent for twice this is disconnected
    #[arg(long, env = "WSCHAT_PING_INTERVAL", value_name = "SECS", default_value_t = Secs::whole(config::DEFAULT_PING_INTERVAL_SECS), help_heading = "Timeouts")]
    ping_interval: Secs,

    /// Seconds a new connection has to send its request (HTTP 408 after it)
    #[arg(long, env = "WSCHAT_HANDSHAKE_TIMEOUT", value_name = "SECS", default_value_t = Secs::whole(config::DEFAULT_HANDSHAKE_TIMEOUT_SECS), help_heading = "Timeouts")]
    handshake_timeout: Secs,

    /// Seconds a client's unsent bytes may stay queued before it is dropped as stuck
    #[arg(long, env = "WSCHAT_BACKLOG_TIMEOUT", value_name = "SECS", default_value_t = Secs::whole(config::DEFAULT_BACKLOG_TIMEOUT_SECS), help_heading = "Timeouts")]
    backlog_timeout: Secs,

    /// Seconds over the rate limit before a client is disconnected with close 1008
    #[arg(long, env = "WSCHAT_FLOOD_TIMEOUT", value_name = "SECS", default_value_t = Secs::whole(config::DEFAULT_FLOOD_TIMEOUT_SECS), help_heading = "Timeouts")]
    flood_timeout: Secs,

    /// On SIGINT or SIGTERM, seconds clients get to answer the Close 1001 before sockets are
    /// cut
    #[arg(long, env = "WSCHAT_SHUTDOWN_GRACE", value_name = "SECS", default_value_t = Secs::whole(config::DEFAULT_SHUTDOWN_GRACE_SECS), help_heading = "Timeouts")]
    shutdown_grace: Secs,

    /// Join a cluster through this Redis, e.g. redis://127.0.0.1:6379/ (a password goes in
    /// it: redis://:PASSWORD@HOST:PORT/): rooms span every node that names the same Redis.
    /// Without it Redis is never touched
    #[arg(
        long,
        env = "WSCHAT_REDIS",
        value_name = "URL",
        help_heading = "Cluster"
    )]
    redis: Option<String>,

    /// Start even when Redis cannot be reached at start-up (chat stays on this node until it
    /// answers); without it the server exits
    #[arg(
        long,
        env = "WSCHAT_REDIS_OPTIONAL",
        requires = "redis",
        help_heading = "Cluster"
    )]
    redis_optional: bool,
    /// GET /metrics (Prometheus text format): on, loopback (127.0.0.1 and ::1 only) or off;
    /// /healthz is always served
    #[arg(long, env = "WSCHAT_METRICS", value_name = "on|loopback|off", default_value_t = MetricsAccess::On, help_heading = "Network")]
    metrics: MetricsAccess,

    /// error, warn, info, debug (every frame in and out) or trace [default: info, or RUST_LOG]
    #[arg(
        long,
        env = "WSCHAT_LOG_LEVEL",
        value_name = "LEVEL",
        help_heading = "Logging"
    )]
    log_level: Option<LevelFilter>,

    /// Also print a QR code of the first address other machines can open, for phones in a
    /// classroom
    #[arg(long, env = "WSCHAT_QR", help_heading = "Logging")]
    qr: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = cli
        .log_level
        .or_else(|| std::env::var("RUST_LOG").ok()?.parse().ok())
        .unwrap_or(LevelFilter::Info);
    init_logging(level);

    let (bind, port, qr) = (cli.bind, cli.port, cli.qr);
    let config = cli.into_config();
    if let Some(dir) = &config.www_dir {
        if !dir.is_dir() {
            eprintln!("wschat: --www {}: not a directory", dir.display());
            return ExitCode::from(2);
        }
        if !config.www_strict_csp {
            log::info!(
                "serving {} with no Content-Security-Policy, as a static server would, so its \
                 inline and CDN scripts run (--www-strict-csp sends the built-in page's)",
                dir.display()
            );
        }
    }
    let server = match wschat::Server::bind(config) {
        Ok(server) => server,
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => {
            eprintln!("wschat: {e}");
            return ExitCode::from(2);
        }
        Err(e) if e.kind() == ErrorKind::NotConnected => {
            eprintln!("wschat: {e}"); // Redis is unreachable: one line, not "cannot start on"
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("wschat: cannot start on {bind}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log_urls(server.local_addr(), qr);
    stop_on_signals(server.stop_handle());
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat: {e}");
            ExitCode::FAILURE
        }
    }
}

impl Cli {
    fn into_config(self) -> Config {
        Config {
            bind: self.bind,
            port: self.port,
            www_dir: self.www,
            www_strict_csp: self.www_strict_csp,
            relay_custom_events: !self.no_custom_events,
            max_clients: self.max_clients,
            max_message_bytes: self.max_message_bytes,
            echo_max_message_bytes: self.echo_max_message_bytes,
            rate_limit_per_sec: self.rate_limit,
            rate_burst: self.rate_burst,
            flood_timeout: self.flood_timeout.0,
            handshake_timeout: self.handshake_timeout.0,
            max_request_bytes: self.max_request_bytes,
            ping_interval: self.ping_interval.0,
            max_backlog_bytes: self.max_backlog_bytes,
            echo_max_backlog_bytes: self.echo_max_backlog_bytes,
            backlog_timeout: self.backlog_timeout.0,
            allow_origins: self.allow_origins,
            shutdown_grace: self.shutdown_grace.0,
            history: self.history,
            history_file: self.history_file,
            history_sync_interval: self.history_sync_interval.0,
            max_rooms: self.max_rooms,
            redis: self.redis,
            redis_optional: self.redis_optional,
            metrics: self.metrics,
            ..Config::default()
        }
    }
}

/// Where to point a browser: here, and from other machines (every interface's address when
/// bound to all of them), with `--qr` a QR code of the first on stdout.
fn log_urls(addr: SocketAddr, qr: bool) {
    let port = addr.port();
    let mut first = None;
    if addr.ip().is_unspecified() {
        log::info!("open http://localhost:{port}/ on this machine");
        match wschat::share::urls(addr) {
            Ok(urls) if urls.is_empty() => {
                log::warn!("no network interface has an address other machines can reach")
            }
            Ok(urls) => {
                for u in &urls {
                    log::info!("open {} from another machine ({})", u.url, u.interface);
                }
                first = urls.into_iter().next().map(|u| u.url);
            }
            Err(e) => log::warn!("cannot list the network interfaces: {e}"),
        }
    } else {
        log::info!("open http://{addr}/");
        first = (!addr.ip().is_loopback()).then(|| format!("http://{addr}/"));
    }
    log::info!(
        "WebSocket endpoints: ws://…:{port}/ (chat), /echo, /scream, /socket.io/ (socket.io clients)"
    );
    if qr {
        match first {
            Some(url) => println!("{url}\n{}", wschat::share::qr_code(&url)),
            None => log::warn!("--qr: no address another machine can open (bound to {addr})"),
        }
    }
}

/// Under systemd (`JOURNAL_STREAM` is set when stderr is the journal) each line starts with
/// its syslog priority instead of a timestamp: journald stamps lines itself, and the priority
/// makes `journalctl` show warnings and errors in colour and filter them (`-p warning`).
/// Elsewhere, simple_logger's lines with UTC timestamps.
fn init_logging(level: LevelFilter) {
    if std::env::var_os("JOURNAL_STREAM").is_none() {
        simple_logger::SimpleLogger::new()
            .with_level(level)
            .with_utc_timestamps()
            .init()
            .expect("logger set once");
        return;
    }
    log::set_boxed_logger(Box::new(JournalLogger { level })).expect("logger set once");
    log::set_max_level(level);
}

/// The log for journald: `<4>WARN  [wschat::broadcaster] …`, one write per line.
struct JournalLogger {
    level: LevelFilter,
}

impl log::Log for JournalLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // sd-daemon(3)'s prefixes: <3> err, <4> warning, <6> info, <7> debug.
        let priority = match record.level() {
            log::Level::Error => 3,
            log::Level::Warn => 4,
            log::Level::Info => 6,
            log::Level::Debug | log::Level::Trace => 7,
        };
        let line = format!(
            "<{priority}>{:<5} [{}] {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
    }

    fn flush(&self) {}
}

/// SIGINT and SIGTERM start a graceful shutdown; a second one exits at once.
fn stop_on_signals(stop: wschat::StopHandle) {
    let handler = ctrlc::set_handler(move || {
        if stop.is_stopping() {
            eprintln!("wschat: second signal, exiting now");
            std::process::exit(130);
        }
        log::info!("signal received: shutting down (again to exit at once)");
        stop.stop();
    });
    if let Err(e) = handler {
        log::warn!("cannot handle SIGINT/SIGTERM: {e}");
    }
}

/// A flag value in seconds, fractions allowed ("0.5"), more than zero.
#[derive(Debug, Clone, Copy)]
struct Secs(Duration);

impl Secs {
    fn whole(secs: u64) -> Secs {
        Secs(Duration::from_secs(secs))
    }
}

impl std::str::FromStr for Secs {
    type Err = String;
    fn from_str(s: &str) -> Result<Secs, String> {
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        if !(v > 0.0 && v < 1e9) {
            return Err(format!("{s} must be more than 0 seconds"));
        }
        Ok(Secs(Duration::from_secs_f64(v)))
    }
}

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

/// A flag value in seconds where 0 means "at once" (fractions allowed).
#[derive(Debug, Clone, Copy)]
struct SecsOrZero(Duration);

impl std::str::FromStr for SecsOrZero {
    type Err = String;
    fn from_str(s: &str) -> Result<SecsOrZero, String> {
        let v: f64 = s
            .parse()
            .map_err(|_| format!("{s:?} is not a number of seconds"))?;
        if !(0.0..1e9).contains(&v) {
            return Err(format!("{s} must be 0 or more seconds"));
        }
        Ok(SecsOrZero(Duration::from_secs_f64(v)))
    }
}

impl std::fmt::Display for SecsOrZero {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}
