//! Power cuts, as near as a test can come: the wschat binary is killed with SIGKILL at random
//! points while a client sends numbered lines, and restarted, many times. After every restart
//! the history replayed to a newcomer must hold no torn or duplicated entry, be in order, keep
//! everything replayed before, and hold every line echoed longer ago than the sync interval
//! (plus a generous margin for a loaded machine).
//!
//! SIGKILL leaves the page cache alone, so this proves what the process does (what it wrote
//! is whole and in order, a torn tail is skipped, a rewrite is atomic), not what the disk
//! does: a real power cut can also lose what was written but not yet synced, at most the last
//! `--history-sync-interval` of lines, and a disk that lies about its cache can lose more.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

/// Kills per run: each runs the server for 0.3 to 1.7 s.
const KILLS: usize = 20;
/// The server's sync interval.
const SYNC_INTERVAL_MS: u64 = 200;
/// What a line must be older than (at the kill) to be required: the sync interval plus room
/// for a loaded machine (the writer writes a line within milliseconds when it is not).
const REQUIRED_AGE_MS: u64 = SYNC_INTERVAL_MS + 800;
/// Lines a client sends before reading their echoes: some are in flight at every kill.
const BURST_LINES: usize = 8;
/// Between bursts.
const PAUSE: Duration = Duration::from_millis(10);
const ROOM: &str = "cut";

/// A small xorshift generator: the test prints its seed (and takes WSCHAT_POWER_CUT_SEED), so
/// a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between_ms(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low))
    }
}

fn start(history_file: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--log-level", "info"])
        .args(["--rate-limit", "0", "--history", "1000000"])
        // The whole history is replayed to one client at once.
        .args(["--max-backlog-bytes", "200000000"])
        .arg("--history-sync-interval")
        .arg(format!("{}", SYNC_INTERVAL_MS as f64 / 1000.0))
        .arg("--history-file")
        .arg(history_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wschat");
    let (tx, rx) = mpsc::channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if let Some(addr) = line.split("listening on ").nth(1) {
                let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("wschat logs its address");
    (child, addr)
}

/// Joins the room and reads the replayed history (up to the client's own marker line).
fn replayed(addr: SocketAddr, marker: &str) -> (Ws, Vec<u64>) {
    let mut ws = connect(addr, &format!("/?name=w&room={ROOM}"));
    let welcome = recv_json(&mut ws);
    assert_eq!(welcome["event"], "welcome", "{welcome}");
    send_text(&mut ws, marker);
    let mut numbers = Vec::new();
    loop {
        let v = recv_json(&mut ws);
        let text = v["text"].as_str().unwrap_or_default();
        if text == marker {
            return (ws, numbers);
        }
        if v["history"] != true {
            continue;
        }
        // A torn or mangled entry would not be "line N" (the marker lines are history too).
        if let Some(n) = text.strip_prefix("line ") {
            numbers.push(n.parse().unwrap_or_else(|_| panic!("torn entry {text:?}")));
        } else {
            assert!(text.starts_with("marker "), "unexpected entry {text:?}");
        }
    }
}

/// Sends numbered lines in bursts, reading their echoes, until `run_for` has passed; returns
/// with a burst still in flight. Records when each line's echo arrived.
fn send_lines(ws: &mut Ws, next: &mut u64, echoed: &mut Vec<(u64, Instant)>, run_for: Duration) {
    let started = Instant::now();
    loop {
        let first = *next;
        for _ in 0..BURST_LINES {
            send_text(ws, &format!("line {next}"));
            *next += 1;
        }
        if started.elapsed() >= run_for {
            return; // this burst is in flight when the server is killed
        }
        // About 800 lines/s: enough to kill mid-batch, few enough to replay in debug builds.
        thread::sleep(PAUSE);
        let mut seen = first;
        while seen < *next {
            let v = recv_json(ws);
            if v["text"] == format!("line {seen}") {
                echoed.push((seen, Instant::now()));
                seen += 1;
            }
        }
    }
}

/// What must hold after each restart.
fn check(replay: &[u64], before: &[u64], sent: u64, required: &[u64], kill: usize) {
    assert!(
        replay.windows(2).all(|w| w[0] < w[1]),
        "kill {kill}: replay out of order or duplicated"
    );
    assert!(
        replay.last().is_none_or(|&n| n < sent),
        "kill {kill}: a line never sent"
    );
    assert!(
        replay.starts_with(before),
        "kill {kill}: lost lines replayed before the kill"
    );
    let missing: Vec<_> = required
        .iter()
        .filter(|n| replay.binary_search(n).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "kill {kill}: {} lines older than {REQUIRED_AGE_MS} ms missing, first {:?}",
        missing.len(),
        missing.first()
    );
}

#[test]
fn sigkill_at_random_points_loses_no_synced_line_and_replays_nothing_torn() {
    let seed = std::env::var("WSCHAT_POWER_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("power_cut: seed {seed} (WSCHAT_POWER_CUT_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let path = std::env::temp_dir().join(format!("wschat-power-cut-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);

    let (mut next, mut before, mut required) = (0u64, Vec::new(), Vec::new());
    let (mut required_checked, mut replayed_checked) = (0, 0);
    for round in 0..=KILLS {
        let (mut child, addr) = start(&path);
        let (mut ws, replay) = replayed(addr, &format!("marker {round}"));
        if round > 0 {
            check(&replay, &before, next, &required, round);
            required_checked += required.len();
            replayed_checked += replay.len();
        }
        before = replay;
        let mut echoed = Vec::new();
        if round < KILLS {
            send_lines(&mut ws, &mut next, &mut echoed, rng.between_ms(300, 1700));
        }
        child.kill().unwrap(); // SIGKILL
        let killed_at = Instant::now();
        child.wait().unwrap();
        let old_enough = Duration::from_millis(REQUIRED_AGE_MS);
        // Required from now on: every later restart checks every line required so far.
        required.extend(
            echoed
                .iter()
                .filter(|(_, at)| killed_at - *at >= old_enough)
                .map(|&(n, _)| n),
        );
    }
    eprintln!(
        "power_cut: {KILLS} kills while writing, {next} lines sent, {} of them required (echoed \
         over {REQUIRED_AGE_MS} ms before a kill); {required_checked} required lines and \
         {replayed_checked} replayed entries checked over the restarts; {} in the last replay",
        required.len(),
        before.len()
    );
    let _ = std::fs::remove_file(&path);
}
