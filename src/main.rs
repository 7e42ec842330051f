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
use wschat::config::{self, Config};

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

    /// error, warn, info, debug (every frame in and out) or trace [default: info, or RUST_LOG]
    #[arg(
        long,
        env = "WSCHAT_LOG_LEVEL",
        value_name = "LEVEL",
        help_heading = "Logging"
    )]
    log_level: Option<LevelFilter>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = cli
        .log_level
        .or_else(|| std::env::var("RUST_LOG").ok()?.parse().ok())
        .unwrap_or(LevelFilter::Info);
    simple_logger::SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        .init()
        .expect("logger set once");

    let (bind, port) = (cli.bind, cli.port);
    let config = cli.into_config();
    if let Some(dir) = &config.www_dir {
        if !dir.is_dir() {
            eprintln!("wschat: --www {}: not a directory", dir.display());
            return ExitCode::from(2);
        }
    }
    let server = match wschat::Server::bind(config) {
        Ok(server) => server,
        Err(e) if matches!(e.kind(), ErrorKind::InvalidInput | ErrorKind::Unsupported) => {
            eprintln!("wschat: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("wschat: cannot start on {bind}:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    log_urls(server.local_addr());
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
            max_rooms: self.max_rooms,
            ..Config::default()
        }
    }
}

/// Where to point a browser.
fn log_urls(addr: SocketAddr) {
    let port = addr.port();
    if addr.ip().is_unspecified() {
        log::info!("open http://localhost:{port}/ (or http://<this machine's address>:{port}/)");
    } else {
        log::info!("open http://{addr}/");
    }
    log::info!(
        "WebSocket endpoints: ws://…:{port}/ (chat), /echo, /scream, /socket.io/ (socket.io clients)"
    );
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
