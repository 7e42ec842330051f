//! Limits and liveness: the server refuses what is over a limit, says so clearly, frees the
//! thread, and keeps serving everyone else.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::protocol::frame::coding::CloseCode;
use wschat::Config;

#[test]
fn over_max_clients_gets_503_at_once_and_the_slot_frees() {
    let server = start(Config {
        max_clients: 2,
        ..test_config()
    });
    let addr = server.local_addr();
    let (a, _) = join(addr, "a");
    let (_b, _) = join(addr, "b");
    let started = Instant::now();
    match try_connect(addr, "/?name=c") {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 503);
            let body = String::from_utf8(resp.body().clone().unwrap()).unwrap();
            assert!(body.contains("server full"), "{body}");
        }
        other => panic!("expected 503, got {:?}", other.map(|_| ())),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered at once"
    );
    // The page is refused too while full: it is a connection like any other.
    assert_eq!(http_get(addr, "/").0, 503);
    drop(a);
    eventually("a's slot frees", || try_connect(addr, "/?name=c").is_ok());
}

#[test]
fn the_rate_limit_drops_excess_with_a_notice_then_1008_for_flooding() {
    let server = start(Config {
        rate_limit_per_sec: 5,
        rate_burst: 3,
        flood_timeout: Duration::from_millis(600),
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut watcher, _) = join(addr, "watcher");
    let (mut flooder, _) = join(addr, "flooder");
    recv_json(&mut watcher);
    for i in 0..10 {
        send_text(&mut flooder, &format!("spam {i}"));
    }
    // The burst goes through, then the sender alone hears it was limited.
    let mut messages = 0;
    let notice = loop {
        let v = recv_json(&mut flooder);
        match v["type"].as_u64() {
            Some(1) => messages += 1,
            Some(3) => break v,
            _ => panic!("unexpected {v}"),
        }
    };
    assert_eq!(messages, 3, "the burst");
    assert_eq!(notice["code"], "rate-limited");
    // Keep flooding past the flood timeout: close 1008, and the room sees the leave.
    flooder
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let started = Instant::now();
    let close = loop {
        assert!(started.elapsed() < WAIT, "never closed");
        let _ = flooder.send(tungstenite::Message::text("more spam"));
        match flooder.read() {
            Ok(tungstenite::Message::Close(frame)) => break frame.expect("a close code"),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                continue
            }
            Err(e) => panic!("expected a Close, got {e}"),
        }
    };
    assert_eq!(close.code, CloseCode::Policy);
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut watcher_saw = Vec::new();
    loop {
        let v = recv_json(&mut watcher);
        if v["event"] == "leave" {
            break;
        }
        watcher_saw.push(v["text"].as_str().unwrap_or_default().to_string());
    }
    assert!(
        watcher_saw.len() <= 6,
        "the room got only what the limit let through: {watcher_saw:?}"
    );
}

#[test]
fn a_client_that_sends_nothing_gets_408_and_frees_its_thread() {
    let server = start(Config {
        handshake_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let addr = server.local_addr();
    let mut silent = TcpStream::connect(addr).unwrap();
    silent.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut resp = String::new();
    silent.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 408 "), "{resp}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    // Dribbling one byte at a time does not extend the deadline.
    let mut dribbler = TcpStream::connect(addr).unwrap();
    dribbler.set_read_timeout(Some(WAIT)).unwrap();
    let started = Instant::now();
    let mut resp = Vec::new();
    for b in b"GET / HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        if dribbler.write_all(&[*b]).is_err() || started.elapsed() > Duration::from_secs(3) {
            break;
        }
        thread::sleep(Duration::from_millis(20));
        dribbler.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 512];
        if let Ok(n) = dribbler.read(&mut buf) {
            resp.extend_from_slice(&buf[..n]);
            if n == 0 || !resp.is_empty() {
                break;
            }
        }
        dribbler.set_nonblocking(false).unwrap();
    }
    assert!(
        String::from_utf8_lossy(&resp).starts_with("HTTP/1.1 408 "),
        "{resp:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_oversize_request_head_gets_431() {
    let server = start(Config {
        max_request_bytes: 1024,
        ..test_config()
    });
    let big = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(2000));
    let resp = http_raw(server.local_addr(), &big);
    assert!(resp.starts_with("HTTP/1.1 431 "), "{resp}");
}

#[test]
fn the_origin_allowlist_refuses_other_origins_with_403() {
    let server = start(Config {
        allow_origins: vec!["https://chat.example.org".into()],
        ..test_config()
    });
    let addr = server.local_addr();
    // The head only for a 101 (the connection stays open); the whole response otherwise.
    let handshake = |origin: Option<&str>| {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        let request = upgrade_request("/", &origin);
        let head = http_head(addr, &request);
        if head.starts_with("HTTP/1.1 101 ") {
            head
        } else {
            http_raw(addr, &request)
        }
    };
    assert!(handshake(Some("https://chat.example.org")).starts_with("HTTP/1.1 101 "));
    assert!(handshake(Some("HTTPS://Chat.Example.org/")).starts_with("HTTP/1.1 101 "));
    let evil = handshake(Some("https://evil.example"));
    assert!(evil.starts_with("HTTP/1.1 403 "), "{evil}");
    assert!(
        evil.contains("https://evil.example"),
        "the reason names the origin: {evil}"
    );
    assert!(handshake(None).starts_with("HTTP/1.1 403 "));
}

#[test]
fn without_an_allowlist_any_origin_may_connect() {
    let server = start_default();
    let origin = "Origin: https://anywhere.example\r\n";
    let resp = http_head(server.local_addr(), &upgrade_request("/echo", origin));
    assert!(resp.starts_with("HTTP/1.1 101 "), "{resp}");
}

#[test]
fn the_server_pings_and_drops_a_silent_client_with_its_leave() {
    let server = start(Config {
        ping_interval: Duration::from_millis(200),
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut alive, _) = join(addr, "alive");
    // A raw client that completes the handshake, then never sends a byte (a vanished peer).
    let (mut silent, _) = raw_upgrade(addr, "/?name=silent");
    assert_eq!(recv_json(&mut alive)["info"], "silent comes in !!!");
    // The live client keeps reading (tungstenite answers Pings as it reads) on its own thread.
    let live = thread::spawn(move || {
        let leave = recv_event(&mut alive, "leave");
        send_text(&mut alive, "still here");
        (leave, recv_event(&mut alive, "message"))
    });
    // The silent one receives Pings, then a Close 1001 after two ping periods of silence.
    let started = Instant::now();
    let mut pings = 0;
    let close = loop {
        let (first, payload) = read_raw_frame(&mut silent);
        match first & 0x0f {
            0x9 => pings += 1,
            0x8 => break u16::from_be_bytes([payload[0], payload[1]]),
            _ => {}
        }
    };
    assert!(pings >= 1, "pinged before being dropped");
    assert_eq!(close, 1001);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    let (leave, message) = live.join().unwrap();
    assert_eq!(leave["info"], "silent leaves.");
    assert_eq!(message["text"], "still here");
}

#[test]
fn a_panicking_reader_ends_only_its_connection_and_its_leave_is_announced() {
    let server = start(Config {
        panic_on_message: Some("trigger the fault".into()),
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut a, _) = join(addr, "a");
    let (mut b, _) = join(addr, "b");
    recv_json(&mut a);
    send_text(&mut b, "trigger the fault");
    // b hears why (1011), the room hears b leave, and everyone else carries on.
    assert_eq!(recv_close(&mut b).unwrap().code, CloseCode::Error);
    assert_eq!(recv_event(&mut a, "leave")["info"], "b leaves.");
    send_text(&mut a, "after the panic");
    assert_eq!(recv_event(&mut a, "message")["text"], "after the panic");
    let (_c, name) = join(addr, "c");
    assert_eq!(name, "c");
}

/// When a restarted server's clients all reconnect at once, the handshakes the listener has
/// not accepted yet wait in the kernel's accept queue. std listens with a queue of 128; past
/// it the kernel drops SYNs and each such client waits a second or more to retry. With
/// nobody accepting (the server is bound, not yet run), 300 connections must all complete.
#[test]
fn a_reconnect_storm_waits_in_the_accept_queue_instead_of_being_dropped() {
    const CONNECTIONS: usize = 300;
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096);
    if somaxconn <= CONNECTIONS {
        eprintln!("skipped: net.core.somaxconn is {somaxconn}, which caps any accept queue");
        return;
    }
    let server = wschat::Server::bind(test_config()).expect("binds");
    let addr = server.local_addr();
    let mut held = Vec::new();
    for i in 0..CONNECTIONS {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => held.push(stream),
            Err(e) => panic!("connection {i} not queued: {e} (accept queue too short)"),
        }
    }
    // Once the server runs, every queued connection is served.
    let running = server.spawn().expect("runs");
    let mut first = held.swap_remove(0);
    first
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    first.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    drop(held);
    running.stop().unwrap();
}
