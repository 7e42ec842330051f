//! `wschat-bench`: parses arguments, runs the load (or the sink), prints one JSON line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use wschat_bench::load::{self, Options};
use wschat_bench::{output, sink, sys};

const USAGE: &str = "\
wschat-bench: load generator for WebSocket chat servers (loopback only)

USAGE:
    wschat-bench [OPTIONS] --url ws://127.0.0.1:PORT/PATH
    wschat-bench sink [--port PORT]      trivial broadcast server, to measure the generator

N clients connect to the URL; K of them send R messages/s of B bytes each for D seconds
(open loop); every client reads everything. Each message text is `#<sender>:<seq>:<send_us>:`
padded to B bytes, found again in whatever the server wraps around it. Prints one JSON line.

OPTIONS:
    --url URL              ws://HOST:PORT/PATH; `{i}` in PATH becomes the client's index;
                           repeat it for the nodes of a cluster (same path): client i connects
                           to the (i mod count)th URL
    -n, --clients N        connections [100]
    -k, --senders K        how many of them send [10]
    -r, --rate R           messages per second per sender [50]
    -b, --size B           message text bytes [64]
    -d, --duration SECS    sending time [10]
    -t, --threads T        worker threads [1]
    --no-echo-to-sender    the server does not send a message back to its sender
    --stuck N              also open N clients that finish the handshake and never read
                           (a tiny receive buffer): the others' latency shows what a stuck
                           client costs them [0]
    --server-pid PID       report that process's CPU time and memory
    --connect-batch N      handshakes in flight at once [20]
    --connect-retries N    retries per connection after a failure [3]
    --connect-timeout SECS per attempt [5]
    --connect-max SECS     the whole connect phase; later connections count as failed [60]
    --settle SECS          after connecting, wait until no frame came for this long [0.5]
    --settle-max SECS      ... but no longer than this [30]
    --drain SECS           after sending, wait this long at most for late deliveries [5]
    --tag KEY=VALUE        copied into the JSON line (repeatable)
    -h, --help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.first().map(String::as_str) == Some("sink") {
        run_sink(&args[1..])
    } else {
        run_load(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wschat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Walks `--flag value` pairs.
struct Args<'a> {
    it: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    fn value(&mut self, flag: &str) -> Result<&'a str, String> {
        self.it
            .next()
            .map(String::as_str)
            .ok_or_else(|| format!("{flag} needs a value"))
    }
    fn parse<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, String> {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|_| format!("{flag}: cannot read {v:?} as a number"))
    }
    fn secs(&mut self, flag: &str) -> Result<Duration, String> {
        let s: f64 = self.parse(flag)?;
        Duration::try_from_secs_f64(s).map_err(|_| format!("{flag}: {s} is not a duration"))
    }
}

fn run_sink(args: &[String]) -> Result<(), String> {
    let mut port = 9001u16;
    let mut a = Args { it: args.iter() };
    while let Some(flag) = a.it.next() {
        match flag.as_str() {
            "--port" | "-p" => port = a.parse(flag)?,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    sink::run(SocketAddr::from(([127, 0, 0, 1], port))).map_err(|e| e.to_string())
}

/// Splits `ws://host:port/path` into a loopback address, the Host header and the path.
fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| format!("{url:?}: only ws:// URLs are supported"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .to_socket_addrs()
        .map_err(|e| format!("{host:?}: {e} (give host:port)"))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| format!("{host:?}: no IPv4 address"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{addr}: this generator only targets loopback addresses (127.0.0.0/8)"
        ));
    }
    Ok((addr, host.to_string(), path.to_string()))
}

/// The options before any flag.
fn default_options() -> Options {
    Options {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        more_addrs: Vec::new(),
        host: String::new(),
        path: String::new(),
        clients: 100,
        senders: 10,
        rate: 50.0,
        size: 64,
        duration: Duration::from_secs(10),
        threads: 1,
        echo_to_sender: true,
        server_pid: None,
        connect_batch: 20,
        connect_retries: 3,
        connect_timeout: Duration::from_secs(5),
        connect_max: Duration::from_secs(60),
        settle: Duration::from_millis(500),
        settle_max: Duration::from_secs(30),
        drain: Duration::from_secs(5),
    }
}

fn run_load(args: &[String]) -> Result<(), String> {
    let mut urls = Vec::new();
    let mut opts = default_options();
    let mut tags = Vec::new();
    let mut stuck = 0usize;
    let mut a = Args { it: args.iter() };
    while let Some(flag) = a.it.next() {
        let f = flag.as_str();
        match f {
            "--url" => urls.push(a.value(f)?.to_string()),
            "-n" | "--clients" => opts.clients = a.parse(f)?,
            "-k" | "--senders" => opts.senders = a.parse(f)?,
            "-r" | "--rate" => opts.rate = a.parse(f)?,
            "-b" | "--size" => opts.size = a.parse(f)?,
            "-d" | "--duration" => opts.duration = a.secs(f)?,
            "-t" | "--threads" => opts.threads = a.parse(f)?,
            "--no-echo-to-sender" => opts.echo_to_sender = false,
            "--stuck" => stuck = a.parse(f)?,
            "--server-pid" => opts.server_pid = Some(a.parse(f)?),
            "--connect-batch" => opts.connect_batch = a.parse(f)?,
            "--connect-retries" => opts.connect_retries = a.parse(f)?,
            "--connect-timeout" => opts.connect_timeout = a.secs(f)?,
            "--connect-max" => opts.connect_max = a.secs(f)?,
            "--settle" => opts.settle = a.secs(f)?,
            "--settle-max" => opts.settle_max = a.secs(f)?,
            "--drain" => opts.drain = a.secs(f)?,
            "--tag" => {
                let kv = a.value(f)?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--tag {kv:?}: give KEY=VALUE"))?;
                tags.push((k.to_string(), v.to_string()));
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    let url = urls.first().ok_or("--url is required (see --help)")?;
    (opts.addr, opts.host, opts.path) = parse_url(url)?;
    for more in &urls[1..] {
        let (addr, _, path) = parse_url(more)?;
        if path != opts.path {
            return Err(format!("--url {more}: every URL needs the same path"));
        }
        opts.more_addrs.push(addr);
    }
    if opts.senders > opts.clients {
        return Err(format!(
            "--senders {} is more than --clients {}",
            opts.senders, opts.clients
        ));
    }
    if opts.senders > 0 && !(opts.rate > 0.0 && opts.rate.is_finite()) {
        return Err("--rate must be more than 0".into());
    }
    if opts.connect_batch == 0 || opts.threads == 0 {
        return Err("--connect-batch and --threads must be at least 1".into());
    }
    // Held open (and never read) until the run is over; the server's log says when it
    // dropped them.
    let _stuck_clients = open_stuck(&opts, stuck).map_err(|e| format!("--stuck: {e}"))?;
    let report = load::run(&opts).map_err(|e| e.to_string())?;
    if stuck > 0 {
        tags.push(("stuck".into(), stuck.to_string()));
    }
    println!("{}", output::json_line(&opts, &report, &tags));
    Ok(())
}

/// Opens `n` connections that send the upgrade request and then never read: the server's
/// replies pile up in a 4 KiB receive buffer and then in the server.
fn open_stuck(opts: &Options, n: usize) -> std::io::Result<Vec<std::net::TcpStream>> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    (0..n)
        .map(|i| {
            let mut stream = std::net::TcpStream::connect(opts.addr)?;
            sys::set_int_opt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 4096);
            let path = if opts.path.contains('?') { "&" } else { "?" };
            let request = format!(
                "GET {}{path}name=stuck{i} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
                opts.path.replace("{i}", "stuck"),
                opts.host
            );
            stream.write_all(request.as_bytes())?;
            Ok(stream)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_spread_over_every_url() {
        let args: Vec<String> = ["--url", "ws://127.0.0.1:1/", "--url", "ws://127.0.0.1:2/x"]
            .map(String::from)
            .to_vec();
        assert!(run_load(&args).unwrap_err().contains("same path"));
        let mut opts = Options {
            more_addrs: vec![SocketAddr::from(([127, 0, 0, 1], 2))],
            ..default_options()
        };
        opts.addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let ports: Vec<u16> = (0..4).map(|i| opts.addr_of(i).port()).collect();
        assert_eq!(ports, [1, 2, 1, 2]);
        opts.more_addrs.clear();
        assert_eq!(opts.addr_of(3).port(), 1);
    }

    #[test]
    fn urls() {
        let (addr, host, path) = parse_url("ws://127.0.0.1:3000/?name=c{i}").unwrap();
        assert_eq!(addr.port(), 3000);
        assert_eq!(
            (host.as_str(), path.as_str()),
            ("127.0.0.1:3000", "/?name=c{i}")
        );
        assert_eq!(parse_url("ws://127.0.0.1:1").unwrap().2, "/");
        assert!(parse_url("wss://127.0.0.1:1/").is_err());
        assert!(parse_url("ws://10.0.0.1:80/").is_err());
    }
}
