//! A client that stops reading must not hold up anyone else: its unsent bytes pile up in its
//! own bounded backlog until it is dropped (by size or by time), and the room sees it leave.

// Unix only: it shrinks a socket's receive buffer through its fd, and wschat runs only on
// Unix (platform::check_supported).
#![cfg(unix)]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use wschat::Config;

struct Outcome {
    /// When each reader saw the stuck client's leave, after the flood started.
    leave_seen_after: Vec<Duration>,
    /// Worst delivery latency any reader saw.
    worst_latency: Duration,
    /// Messages each reader received.
    received: Vec<usize>,
    /// What the stuck client's socket held when the server cut it (and that it then ended).
    stuck_bytes: usize,
}

/// Joins a stuck client and two readers, floods `total` messages of `size` bytes from a
/// third client, and reports what the readers saw.
fn flood_with_a_stuck_client(addr: SocketAddr, total: usize, size: usize) -> Outcome {
    let (mut stuck, _) = raw_upgrade(addr, "/?name=stuck");
    shrink_receive_buffer(&stuck);
    let readers: Vec<Ws> = (0..2)
        .map(|i| join(addr, &format!("reader{i}")).0)
        .collect();
    // The sender is a raw client whose incoming copy of the chat is drained on another thread
    // (it must not become a second stuck client).
    let (mut sender, _) = raw_upgrade(addr, "/?name=sender");
    let mut drain = sender.try_clone().unwrap();
    let drainer = thread::spawn(move || {
        let mut sink = [0u8; 64 * 1024];
        while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
    });
    let start = Instant::now();

    let handles: Vec<_> = readers
        .into_iter()
        .map(|mut ws| {
            thread::spawn(move || {
                let (mut received, mut worst, mut leave) = (0, Duration::ZERO, None);
                while received < total || leave.is_none() {
                    let v = recv_json(&mut ws);
                    match v["event"].as_str() {
                        Some("message") if v["name"] == "sender" => {
                            // The text starts with the send time, in µs since `start`.
                            let text = v["text"].as_str().unwrap();
                            let sent: u64 = text.split(' ').next().unwrap().parse().unwrap();
                            let latency = start.elapsed() - Duration::from_micros(sent);
                            worst = worst.max(latency);
                            received += 1;
                        }
                        Some("leave") if v["name"] == "stuck" => leave = Some(start.elapsed()),
                        _ => {}
                    }
                }
                (received, worst, leave)
            })
        })
        .collect();
    // Full chat speed, paced so that readers that do read can keep up even in a debug build
    // on a busy machine (about 5,000 messages a second): the point is that the stuck client
    // does not slow them down.
    let padding = "x".repeat(size);
    for i in 0..total {
        let text = format!("{} {padding}", start.elapsed().as_micros());
        sender
            .write_all(&client_frame(0x81, text.as_bytes(), true))
            .unwrap();
        if i % 50 == 49 {
            thread::sleep(Duration::from_millis(10));
        }
    }
    // Every reader got every message, and saw the stuck client leave.
    let mut outcome = Outcome {
        leave_seen_after: Vec::new(),
        worst_latency: Duration::ZERO,
        received: Vec::new(),
        stuck_bytes: 0,
    };
    for h in handles {
        let (received, worst, leave) = h.join().unwrap();
        outcome.received.push(received);
        outcome.worst_latency = outcome.worst_latency.max(worst);
        outcome
            .leave_seen_after
            .push(leave.expect("the stuck client's leave"));
    }
    sender.shutdown(std::net::Shutdown::Both).unwrap();
    drainer.join().unwrap();
    // The stuck socket was shut down by the server: after what it holds, it ends.
    stuck.set_read_timeout(Some(WAIT)).unwrap();
    let mut rest = Vec::new();
    stuck
        .read_to_end(&mut rest)
        .expect("ends with EOF, not a timeout");
    outcome.stuck_bytes = rest.len();
    outcome
}

#[test]
fn a_stuck_client_is_dropped_at_its_backlog_limit_and_others_keep_up() {
    // The default limit: readers on a busy machine get 1 MiB of slack before they would be
    // taken for stuck themselves.
    const LIMIT_BYTES: usize = 1024 * 1024;
    let server = start(Config {
        max_backlog_bytes: LIMIT_BYTES,
        backlog_timeout: Duration::from_secs(60),
        max_message_bytes: 4096,
        ..test_config()
    });
    let (_, _, rss_before) = process_usage();
    let outcome = flood_with_a_stuck_client(server.local_addr(), 3000, 1000);
    let (_, _, rss_after) = process_usage();
    eprintln!(
        "stuck client dropped after {:?}; worst reader latency {:?}; RSS {rss_before} -> {rss_after} KiB",
        outcome.leave_seen_after, outcome.worst_latency
    );

    assert_eq!(
        outcome.received,
        [3000, 3000],
        "nothing lost for the readers"
    );
    // 3 MB went out; the stuck client's socket took about 150 KB and its backlog at most the
    // limit, so it was dropped in the first half of the flood.
    assert!(
        outcome.stuck_bytes < LIMIT_BYTES,
        "{} bytes",
        outcome.stuck_bytes
    );
    for seen in &outcome.leave_seen_after {
        assert!(*seen < Duration::from_secs(5), "dropped at {seen:?}");
        assert!(
            *seen > Duration::from_millis(100),
            "not before its limit: {seen:?}"
        );
    }
    // A generous bound (a shared CI machine): the benchmark reports the real figure.
    assert!(
        outcome.worst_latency < Duration::from_secs(1),
        "readers were held up: {:?}",
        outcome.worst_latency
    );
    // Memory stayed bounded: no copy of the whole flood was kept for the stuck client.
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}

#[test]
fn a_client_whose_backlog_lasts_too_long_is_dropped() {
    let server = start(Config {
        max_backlog_bytes: 64 * 1024 * 1024,
        backlog_timeout: Duration::from_millis(300),
        ..test_config()
    });
    let addr = server.local_addr();
    // Enough traffic to fill the stuck client's socket, then a trickle that keeps its
    // backlog non-empty without ever nearing the byte limit.
    let outcome = flood_with_a_stuck_client(addr, 600, 1000);
    assert_eq!(outcome.received, [600, 600]);
    for seen in &outcome.leave_seen_after {
        assert!(*seen >= Duration::from_millis(300), "dropped at {seen:?}");
    }
}
