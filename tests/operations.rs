//! Operating the server: `GET /metrics` moves exactly with what happens, parses with
//! Prometheus' own parser, obeys `--metrics`; `GET /healthz` is 200 while the broadcaster
//! makes rounds and 503 while it is stuck.

// Unix only: a stuck client shrinks its receive buffer through its fd, and wschat runs only
// on Unix (platform::check_supported).
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::Message;
use wschat::config::MetricsAccess;
use wschat::Config;

/// The value of one series (`name{labels}`) in `/metrics`, or `None` when absent.
fn metric(addr: SocketAddr, series: &str) -> Option<u64> {
    let (status, head, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    let prefix = format!("{series} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{series}: {v:?}")))
}

/// Waits until `series` reads exactly `expected` (the broadcaster publishes every 250 ms).
fn wait_for(addr: SocketAddr, series: &str, expected: u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = metric(addr, series);
        if got == Some(expected) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series}: {got:?}, expected {expected}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits two publication intervals and checks `series` did not move past `expected`.
fn stays(addr: SocketAddr, series: &str, expected: u64) {
    thread::sleep(Duration::from_millis(600));
    assert_eq!(metric(addr, series), Some(expected), "{series} moved on");
}

/// The value of `series` once the joins' deliveries have been published: unchanged over
/// two publication intervals.
fn settled(addr: SocketAddr, series: &str) -> u64 {
    let mut last = metric(addr, series);
    loop {
        thread::sleep(Duration::from_millis(600));
        let now = metric(addr, series);
        if now == last {
            return now.expect(series);
        }
        last = now;
    }
}

const CHAT: &str = "wschat_connections{kind=\"chat\"}";
const ECHO: &str = "wschat_connections{kind=\"echo\"}";
const SOCKETIO: &str = "wschat_connections{kind=\"socketio_websocket\"}";
const MESSAGES: &str = "wschat_messages_total";

fn dropped(reason: &str) -> String {
    format!("wschat_dropped_clients_total{{reason=\"{reason}\"}}")
}

#[test]
fn three_clients_raise_the_connections_by_three_and_leaving_brings_them_back() {
    let server = start_default();
    let addr = server.local_addr();
    let before = metric(addr, CHAT).expect("the chat row");
    let clients: Vec<Ws> = (0..3).map(|i| join(addr, &format!("c{i}")).0).collect();
    wait_for(addr, CHAT, before + 3);
    stays(addr, CHAT, before + 3);
    // Each kind has its own row.
    let echo = connect(addr, "/echo");
    let sio = connect(addr, "/socket.io/?EIO=4&transport=websocket");
    wait_for(addr, ECHO, 1);
    wait_for(addr, SOCKETIO, 1);
    assert_eq!(metric(addr, CHAT), Some(before + 3));
    assert_eq!(metric(addr, "wschat_rooms"), Some(1), "all in the lobby");
    drop((echo, sio));
    for mut ws in clients {
        ws.close(None).unwrap();
        let _ = recv_close(&mut ws);
    }
    wait_for(addr, CHAT, before);
    wait_for(addr, ECHO, 0);
    wait_for(addr, SOCKETIO, 0);
}

#[test]
fn five_lines_raise_the_messages_by_five() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut ada, _) = join(addr, "ada");
    let (mut bob, _) = join(addr, "bob");
    recv_json(&mut ada); // bob's join line
    let before = metric(addr, MESSAGES).unwrap();
    let deliveries = settled(addr, "wschat_deliveries_total");
    for i in 0..5 {
        send_text(&mut ada, &format!("line {i}"));
    }
    for _ in 0..5 {
        assert_eq!(recv_json(&mut bob)["event"], "message");
    }
    wait_for(addr, MESSAGES, before + 5);
    stays(addr, MESSAGES, before + 5);
    // Each line went to both members of the room.
    wait_for(addr, "wschat_deliveries_total", deliveries + 10);
    assert!(metric(addr, "wschat_sent_bytes_total").unwrap() > 0);
}

#[test]
fn a_stuck_client_dropped_for_its_backlog_is_counted() {
    let server = start(Config {
        backlog_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let addr = server.local_addr();
    let (stuck, _) = raw_upgrade(addr, "/?name=stuck");
    shrink_receive_buffer(&stuck);
    // The sender's own copies of the chat are drained, so it is not stuck too.
    let (mut sender, _) = raw_upgrade(addr, "/?name=sender");
    let mut drain = sender.try_clone().unwrap();
    let drainer = thread::spawn(move || {
        let mut sink = [0u8; 64 * 1024];
        while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
    });
    let line = "x".repeat(2000);
    for _ in 0..400 {
        sender
            .write_all(&client_frame(0x81, line.as_bytes(), true))
            .unwrap();
    }
    wait_for(addr, &dropped("backlog"), 1);
    wait_for(addr, CHAT, 1);
    for reason in ["rate_limit", "heartbeat", "protocol_error"] {
        assert_eq!(metric(addr, &dropped(reason)), Some(0), "{reason}");
    }
    sender.shutdown(std::net::Shutdown::Both).unwrap();
    drainer.join().unwrap();
}

#[test]
fn each_drop_a_reader_makes_is_counted_under_its_reason() {
    let server = start(Config {
        ping_interval: Duration::from_millis(300),
        rate_limit_per_sec: 1,
        rate_burst: 1,
        flood_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let addr = server.local_addr();
    // Silent: sends nothing, answers no ping (close 1001 after twice the ping interval).
    let (_silent, _) = raw_upgrade(addr, "/?name=silent");
    // Binary on the chat (close 1003).
    let mut binary = connect(addr, "/?name=binary");
    binary.send(Message::binary(vec![1, 2, 3])).unwrap();
    // Floods past the flood timeout (close 1008); its frames keep it from the idle timeout.
    let mut flooder = connect(addr, "/?name=flooder");
    let started = Instant::now();
    while metric(addr, &dropped("rate_limit")) == Some(0) {
        assert!(started.elapsed() < WAIT, "the flooder was never dropped");
        if flooder.send(Message::text("spam")).is_err() {
            thread::sleep(Duration::from_millis(20)); // closed: wait for the figure
        }
        thread::sleep(Duration::from_millis(10));
    }
    wait_for(addr, &dropped("rate_limit"), 1);
    wait_for(addr, &dropped("protocol_error"), 1);
    wait_for(addr, &dropped("heartbeat"), 1);
    assert_eq!(metric(addr, &dropped("backlog")), Some(0));
}

#[test]
fn healthz_is_200_while_rounds_finish_and_503_while_the_broadcaster_is_stuck() {
    let server = start(Config {
        stuck_round_after: Duration::from_secs(1),
        stall_on_message: Some("stall now".into()),
        ..test_config()
    });
    let addr = server.local_addr();
    let (status, head, body) = http_get(addr, "/healthz");
    assert_eq!(status, 200, "{head}\n{body}");
    assert!(body.starts_with("ok"), "{body}");
    let (mut ada, _) = join(addr, "ada");
    send_text(&mut ada, "stall now"); // the broadcaster sleeps for 4 s in this round
    let started = Instant::now();
    let body = loop {
        let (status, _, body) = http_get(addr, "/healthz");
        if status == 503 {
            break body;
        }
        assert_eq!(status, 200);
        assert!(started.elapsed() < WAIT, "never reported stuck");
        thread::sleep(Duration::from_millis(50));
    };
    assert!(body.contains("stuck"), "{body}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "stuck only after stuck_round_after: {:?}",
        started.elapsed()
    );
    // /metrics still answers: readers serve it from the last snapshot.
    assert_eq!(metric(addr, CHAT), Some(1));
    // The round ends, and the broadcaster is healthy again.
    eventually("healthz back to 200", || {
        http_get(addr, "/healthz").0 == 200
    });
    assert_eq!(recv_json(&mut ada)["text"], "stall now");
}

#[test]
fn the_exposition_parses_with_promtool() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut ada, _) = join(addr, "ada");
    send_text(&mut ada, "hello");
    recv_json(&mut ada);
    wait_for(addr, MESSAGES, 1); // the histogram has rounds in it
    let (status, head, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!(
            "\n!!!!! SKIPPED: promtool is not installed (Debian package `prometheus`); \
             .ci/run installs it and fails without it !!!!!\n"
        );
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool: {said}\n{body}");
    assert!(said.trim().is_empty(), "promtool's lint: {said}");
}

#[test]
fn metrics_off_is_404_and_healthz_stays() {
    let server = start(Config {
        metrics: MetricsAccess::Off,
        ..test_config()
    });
    let addr = server.local_addr();
    assert_eq!(http_get(addr, "/metrics").0, 404);
    assert_eq!(http_get(addr, "/healthz").0, 200);
}

#[test]
fn metrics_loopback_serves_loopback_peers() {
    let server = start(Config {
        metrics: MetricsAccess::Loopback,
        ..test_config()
    });
    assert!(metric(server.local_addr(), CHAT).is_some());
    let (status, _, _) = http_get(server.local_addr(), "/metrics?x=1");
    assert_eq!(status, 200);
    let resp = http_raw(
        server.local_addr(),
        "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
}

#[test]
fn the_history_writers_lag_shows_with_a_history_file_only() {
    let path = std::env::temp_dir().join(format!("wschat-lag-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let server = start(Config {
        history_file: Some(path.clone()),
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut ada, _) = join(addr, "ada");
    for n in 0..20 {
        send_text(&mut ada, &format!("line {n}"));
    }
    for _ in 0..20 {
        recv_json(&mut ada);
    }
    // Every line was queued, and the writer took them all: nothing waits, none left out.
    wait_for(addr, "wschat_history_waiting_lines", 0);
    assert_eq!(metric(addr, "wschat_history_left_out_lines_total"), Some(0));
    eventually("the lines in the file", || {
        std::fs::read_to_string(&path).is_ok_and(|f| f.lines().count() == 20)
    });
    assert_eq!(
        metric(start_default().local_addr(), "wschat_history_waiting_lines"),
        None
    );
    server.stop().unwrap();
    let _ = std::fs::remove_file(&path);
}
