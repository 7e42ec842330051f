//! What the `wschat` binary says at start-up: the URLs of this machine's interfaces when
//! bound to all of them (checked against `ip -o addr`), the `--qr` code (decoded with a real
//! QR reader), and the log's form under systemd (priorities, no timestamps) and elsewhere.
//! Starts the binary; talks to it on 127.0.0.1 only.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the binary may take to print a line: generous, the machine is shared.
const LINE_TIMEOUT_SECS: u64 = 30;

/// A running `wschat` whose stderr lines arrive on a channel.
struct Wschat {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Wschat {
    fn start(args: &[&str], journal: bool) -> Wschat {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat"));
        cmd.args(["--port", "0"]).args(args);
        cmd.env_remove("JOURNAL_STREAM").env_remove("RUST_LOG");
        cmd.env_remove("WSCHAT_LOG_LEVEL");
        if journal {
            // What systemd sets for a service whose stderr is the journal: "device:inode".
            cmd.env("JOURNAL_STREAM", "8:12345");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("wschat starts");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Wschat {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `text`, and returns it.
    fn wait_for(&mut self, text: &str) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(LINE_TIMEOUT_SECS))
                .unwrap_or_else(|_| panic!("no line with {text:?}; saw {:#?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(text) {
                return line;
            }
        }
    }

    /// The port from "wschat listening on ADDR", the last start-up line.
    fn port(&mut self) -> u16 {
        let line = self.wait_for("wschat listening on ");
        let addr = line.rsplit(' ').next().unwrap();
        addr.parse::<SocketAddr>().expect("an address").port()
    }

    /// Stops it (SIGTERM, like systemd) and returns everything it printed to stdout.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let mut out = String::new();
        let _ = self.child.stdout.take().unwrap().read_to_string(&mut out);
        let _ = self.child.wait();
        out
    }
}

/// What `ip -o addr` lists that another machine could reach: every address but loopback
/// (scope host) and link-local (scope link), of the families asked for.
fn ip_addr_lists(with_v6: bool) -> BTreeSet<(String, IpAddr)> {
    let out = Command::new("ip")
        .args(["-o", "addr"])
        .output()
        .expect("`ip` (Debian's iproute2) runs");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut found = BTreeSet::new();
    for line in text.lines() {
        // "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\ ..."
        let words: Vec<&str> = line.split_whitespace().collect();
        let family = words[2];
        let scope = words.iter().skip_while(|w| **w != "scope").nth(1);
        if matches!(scope, Some(&"host") | Some(&"link")) {
            continue;
        }
        if family == "inet" || (family == "inet6" && with_v6) {
            let ip = words[3].split('/').next().unwrap().parse().unwrap();
            found.insert((words[1].trim_end_matches(':').to_string(), ip));
        }
    }
    found
}

/// The (interface, address) pairs in the "open http://…/ from another machine (IFACE)"
/// lines of the start-up log, checking that each URL has the listening port.
fn logged_addresses(wschat: &mut Wschat) -> BTreeSet<(String, IpAddr)> {
    let port = wschat.port();
    let mut found = BTreeSet::new();
    for line in &wschat.seen {
        let Some(rest) = line.split("open http://").nth(1) else {
            continue;
        };
        if let Some(local) = rest.strip_suffix("/ on this machine") {
            assert_eq!(local, format!("localhost:{port}"));
            continue;
        }
        let (url, iface) = rest
            .split_once("/ from another machine (")
            .unwrap_or_else(|| panic!("an unexpected URL line: {line}"));
        let addr: SocketAddr = url.parse().expect("host:port");
        assert_eq!(addr.port(), port, "{line}");
        let new = found.insert((iface.trim_end_matches(')').to_string(), addr.ip()));
        assert!(new, "listed twice: {line}");
    }
    found
}

#[test]
fn bound_to_every_ipv4_interface_it_lists_what_ip_addr_lists() {
    let mut wschat = Wschat::start(&["--bind", "0.0.0.0"], false);
    let logged = logged_addresses(&mut wschat);
    wschat.stop();
    let expected = ip_addr_lists(false);
    assert!(
        !expected.is_empty(),
        "this machine has no non-loopback IPv4 address"
    );
    assert_eq!(logged, expected);
}

#[test]
fn bound_to_every_ipv6_interface_it_lists_both_families() {
    let mut wschat = Wschat::start(&["--bind", "::"], false);
    let logged = logged_addresses(&mut wschat);
    wschat.stop();
    assert_eq!(logged, ip_addr_lists(true));
}

#[test]
fn bound_to_loopback_it_gives_its_own_url_and_no_qr_code() {
    let mut wschat = Wschat::start(&["--bind", "127.0.0.1", "--qr"], false);
    let port = wschat.port();
    let opens: Vec<String> = wschat
        .seen
        .iter()
        .filter(|l| l.contains("open http"))
        .cloned()
        .collect();
    assert_eq!(opens.len(), 1, "{opens:#?}");
    assert!(opens[0].ends_with(&format!("open http://127.0.0.1:{port}/")));
    assert!(wschat
        .seen
        .iter()
        .any(|l| l.contains("WARN") && l.contains("--qr")));
    assert_eq!(
        wschat.stop(),
        "",
        "no QR code for an address only this machine can open"
    );
}

/// Reads a QR code drawn by `share::qr_code` (half blocks, light modules drawn) back into
/// pixels, four per module, and decodes it the way a phone's scanner would.
fn decode_qr(drawn: &str) -> String {
    let rows: Vec<Vec<char>> = drawn.lines().map(|l| l.chars().collect()).collect();
    let (width, height) = (rows[0].len(), rows.len() * 2);
    let dark = |x: usize, y: usize| {
        let upper = y % 2 == 0;
        match rows[y / 2].get(x) {
            Some('█') => false,
            Some('▀') => !upper,
            Some('▄') => upper,
            Some(' ') => true,
            other => panic!("not a QR character: {other:?}"),
        }
    };
    const SCALE: usize = 4;
    let mut image =
        rqrr::PreparedImage::prepare_from_bitmap(width * SCALE, height * SCALE, |x, y| {
            dark(x / SCALE, y / SCALE)
        });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in:\n{drawn}");
    grids[0].decode().expect("the QR code decodes").1
}

#[test]
fn qr_flag_prints_a_code_of_the_first_listed_url() {
    let mut wschat = Wschat::start(&["--bind", "0.0.0.0", "--qr"], false);
    wschat.port();
    let first = wschat
        .seen
        .iter()
        .find_map(|l| l.split("open ").nth(1)?.split_once(" from another machine"))
        .map(|(url, _)| url.to_string())
        .expect("a URL for other machines");
    let out = wschat.stop();
    let (url_line, code) = out.split_once('\n').expect("the URL, then the code");
    assert_eq!(url_line, first);
    assert_eq!(decode_qr(code), first);
}

/// A chat client comes and goes, so that the log has a connect and a disconnect line.
fn chat_visit(port: u16) {
    let url = format!("ws://127.0.0.1:{port}/?name=ada");
    let (mut ws, _) = tungstenite::connect(url).expect("connects");
    ws.read().expect("the join line");
    ws.close(None).expect("closes");
    while ws.read().is_ok() {}
}

#[test]
fn under_systemd_lines_carry_priorities_and_no_timestamps() {
    // --qr on loopback: a warning, to see how one looks.
    let mut wschat = Wschat::start(&["--bind", "127.0.0.1", "--qr"], true);
    let port = wschat.port();
    chat_visit(port);
    let joined = wschat.wait_for(" joined ");
    let left = wschat.wait_for(" disconnected");
    for line in &wschat.seen {
        assert!(line.starts_with('<'), "a line without its priority: {line}");
        assert!(!line.contains("Z INFO"), "a timestamp: {line}");
    }
    assert!(joined.starts_with("<6>INFO "), "{joined}");
    assert!(left.starts_with("<6>INFO "), "{left}");
    let warning = wschat.seen.iter().find(|l| l.contains("--qr")).unwrap();
    assert!(warning.starts_with("<4>WARN "), "{warning}");
    wschat.stop();
}

#[test]
fn in_a_terminal_lines_carry_timestamps() {
    let mut wschat = Wschat::start(&["--bind", "127.0.0.1"], false);
    let port = wschat.port();
    chat_visit(port);
    wschat.wait_for(" disconnected");
    for line in &wschat.seen {
        // "2026-12-02T16:26:02.667Z INFO  [wschat] …"
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert!(stamp.len() == 24 && stamp.ends_with('Z'), "{line}");
        assert!(
            rest.starts_with("INFO") || rest.starts_with("WARN"),
            "{line}"
        );
    }
    wschat.stop();
}
