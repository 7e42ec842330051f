//! Rooms across nodes (`--redis`): two or three in-process servers on one real
//! `redis-server` (Debian's package; each test starts its own on a free port), and the
//! binary's start-up checks.

mod common;
mod redis_server;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use redis_server::{free_port, Redis};
use serde_json::Value;
use wschat::{Config, RunningServer};

fn node(redis: &Redis) -> RunningServer {
    start(Config {
        redis: Some(redis.url()),
        ..test_config()
    })
}

/// Joins `room` on `addr` as `name`.
fn join_room(addr: SocketAddr, name: &str, room: &str) -> Ws {
    let mut ws = connect(addr, &format!("/?name={name}&room={room}"));
    let welcome = recv_json(&mut ws);
    assert_eq!(welcome["name"], name, "{welcome}");
    ws
}

/// Every JSON event `ws` gets until `quiet` passes with nothing new.
fn drain(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    ws.get_mut().set_read_timeout(Some(quiet)).unwrap();
    let mut got = Vec::new();
    while let Ok(m) = ws.read() {
        if let tungstenite::Message::Text(t) = m {
            got.push(serde_json::from_str(&t).unwrap());
        }
    }
    ws.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    got
}

fn events(got: &[Value]) -> Vec<String> {
    got.iter()
        .map(|v| format!("{} {}", v["event"].as_str().unwrap(), v["info"]))
        .collect()
}

#[test]
fn every_room_line_reaches_every_member_on_every_node_exactly_once() {
    let redis = Redis::start(&[]);
    let (a, b, c) = (node(&redis), node(&redis), node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut bob = join_room(b.local_addr(), "bob", "r");
    let mut cy = join_room(c.local_addr(), "cy", "r");
    let mut dee = join_room(c.local_addr(), "dee", "r");
    let mut other = join_room(b.local_addr(), "eve", "elsewhere");
    // Enters reach the nodes that were there first. (A newcomer may also hear the enter of
    // someone who joined elsewhere just before: without cluster presence, that is a race.)
    for (ws, names) in [
        (&mut ada, &["bob", "cy", "dee"][..]),
        (&mut bob, &["cy", "dee"]),
    ] {
        let mut heard = Vec::new();
        while !names.iter().all(|n| heard.iter().any(|h: &String| h == n)) {
            let name = recv_event(ws, "enter")["name"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(name == "ada" || names.contains(&&*name), "{name} entered");
            heard.push(name);
        }
    }
    let quiet = Duration::from_millis(500);
    for ws in [&mut bob, &mut cy, &mut dee] {
        drain(ws, quiet);
    }

    send_text(&mut ada, "hello from a");
    send_text(&mut ada, "/me waves");
    send_text(&mut bob, "/nick rob");
    send_text(&mut bob, "hello from b");
    drop(cy); // a TCP drop: its leave reaches the other nodes too
    let mut dee_got = Vec::new(); // what dee hears until cy's leave, which dee then answers
    while dee_got.last().is_none_or(|v: &Value| v["event"] != "leave") {
        dee_got.push(recv_json(&mut dee));
    }
    send_text(&mut dee, "bye");

    // By the node that said them: each node's lines keep their order; nodes interleave.
    let from_a = ["message \"ada: hello from a\"", "action \"* ada waves\""];
    let from_b = [
        "rename \"bob is now known as rob\"",
        "message \"rob: hello from b\"",
    ];
    let from_c = ["leave \"cy leaves.\"", "message \"dee: bye\""];
    let everything = [&from_a[..], &from_b, &from_c];
    assert_lines(drain(&mut ada, quiet), "ada on node a", &everything);
    assert_lines(drain(&mut bob, quiet), "bob on node b", &everything);
    dee_got.extend(drain(&mut dee, quiet));
    assert_lines(dee_got, "dee on node c", &everything);
    assert_eq!(
        drain(&mut other, quiet),
        Vec::<Value>::new(),
        "another room"
    );
}

#[test]
fn a_newcomer_on_any_node_gets_the_rooms_last_lines_even_from_a_node_started_later() {
    let redis = Redis::start(&[]);
    let history_node = |redis: &Redis| {
        start(Config {
            redis: Some(redis.url()),
            history: 3,
            ..test_config()
        })
    };
    let (a, b) = (history_node(&redis), history_node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "quiet");
    let mut bob = join_room(b.local_addr(), "bob", "quiet");
    recv_event(&mut ada, "enter");
    // Room h has nobody on node b: b remembers its lines all the same.
    let mut cy = join_room(a.local_addr(), "cy", "h");
    for line in ["one", "two", "/me waves", "three", "four", "/nick cyd"] {
        send_text(&mut cy, line);
    }
    recv_event(&mut cy, "rename"); // node a has handled (and published) cy's lines
                                   // b handles other nodes' lines in order: once bob hears this, b has every line of h.
    send_text(&mut ada, "sync");
    assert_eq!(recv_event(&mut bob, "message")["info"], "ada: sync");
    let last_three = [
        "action \"* cy waves\"",
        "message \"cy: three\"",
        "message \"cy: four\"",
    ];
    let replayed = |got: &[Value]| -> Vec<String> {
        let lines: Vec<&Value> = got.iter().filter(|v| v["history"] == true).collect();
        events(&lines.into_iter().cloned().collect::<Vec<_>>())
    };
    let quiet = Duration::from_millis(300);
    let mut dee = join_room(b.local_addr(), "dee", "h");
    assert_eq!(
        replayed(&drain(&mut dee, quiet)),
        last_three,
        "dee on node b"
    );
    // A node started now loads the rooms' lists from Redis before it serves anyone.
    let c = history_node(&redis);
    let mut eve = join_room(c.local_addr(), "eve", "h");
    assert_eq!(
        replayed(&drain(&mut eve, quiet)),
        last_three,
        "eve on node c"
    );
    let listed: usize = redis::cmd("LLEN")
        .arg("wschat:history:h")
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(listed, 3, "the list keeps --history lines");
}

#[test]
fn another_programs_key_where_a_rooms_list_goes_costs_only_that_rooms_history() {
    let redis = Redis::start(&[]);
    let _: () = redis::cmd("SET")
        .arg("wschat:history:r")
        .arg("not a list")
        .query(&mut redis.conn())
        .unwrap();
    let (a, b) = (node(&redis), node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut bob = join_room(b.local_addr(), "bob", "r");
    recv_event(&mut ada, "enter");
    for text in ["first", "second"] {
        send_text(&mut ada, text);
        assert_eq!(recv_event(&mut bob, "message")["text"], text);
    }
    assert!(
        drain(&mut bob, Duration::from_millis(300)).is_empty(),
        "no cluster-down"
    );
    assert_eq!(
        metric(a.local_addr(), "wschat_cluster_dropped_lines_total"),
        Some(0)
    );
    // A node loading the lists at start-up skips that key and loads the others.
    let mut cy = join_room(a.local_addr(), "cy", "s");
    send_text(&mut cy, "kept");
    recv_event(&mut cy, "message");
    eventually("the line in Redis", || {
        redis::cmd("LLEN")
            .arg("wschat:history:s")
            .query::<usize>(&mut redis.conn())
            .unwrap()
            == 1
    });
    let c = node(&redis);
    let mut dee = join_room(c.local_addr(), "dee", "s");
    let got = drain(&mut dee, Duration::from_millis(300));
    assert!(
        got.iter()
            .any(|v| v["text"] == "kept" && v["history"] == true),
        "{got:?}"
    );
}

/// The value of `series` on `addr`'s `/metrics`.
fn metric(addr: SocketAddr, series: &str) -> Option<u64> {
    let (status, head, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{head}");
    let prefix = format!("{series} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

/// Waits until `series` on `addr` reads exactly `expected` (the bridge counts after Redis
/// answered, a moment after the line was delivered).
fn wait_for_metric(addr: SocketAddr, series: &str, expected: u64) {
    let mut got = None;
    let deadline = Instant::now() + Duration::from_secs(15);
    while got != Some(expected) {
        assert!(
            Instant::now() < deadline,
            "{series}: {got:?}, expected {expected}"
        );
        thread::sleep(Duration::from_millis(20));
        got = metric(addr, series);
    }
}

#[test]
fn the_cluster_metrics_follow_the_link_and_count_lines_published_received_and_dropped() {
    let mut redis = Redis::start(&[]);
    let (a, b) = (node(&redis), node(&redis));
    let (a_addr, b_addr) = (a.local_addr(), b.local_addr());
    let mut ada = join_room(a_addr, "ada", "r");
    let mut bob = join_room(b_addr, "bob", "r");
    recv_event(&mut ada, "enter");
    send_text(&mut ada, "line 0");
    recv_event(&mut bob, "message");
    // Node b may have subscribed a moment after ada's enter went out: count from line 0,
    // which b has handled, with everything a published before it.
    let base = metric(b_addr, "wschat_cluster_received_lines_total").unwrap();
    assert!(
        (1..=2).contains(&base),
        "line 0 (and ada's enter) received: {base}"
    );
    for n in 1..3 {
        send_text(&mut ada, &format!("line {n}"));
        recv_event(&mut bob, "message");
    }
    // Node a said ada's enter and three lines; node b, bob's enter.
    wait_for_metric(a_addr, "wschat_cluster_published_lines_total", 4);
    wait_for_metric(b_addr, "wschat_cluster_received_lines_total", base + 2);
    wait_for_metric(b_addr, "wschat_cluster_published_lines_total", 1);
    wait_for_metric(a_addr, "wschat_cluster_received_lines_total", 1);
    for addr in [a_addr, b_addr] {
        assert_eq!(metric(addr, "wschat_cluster_link_up"), Some(1));
        assert_eq!(metric(addr, "wschat_cluster_dropped_lines_total"), Some(0));
    }
    promtool_accepts(&http_get(a_addr, "/metrics").2);

    redis.child.kill().unwrap(); // SIGKILL
    redis.child.wait().unwrap();
    assert_eq!(recv_event(&mut ada, "notice")["code"], "cluster-down");
    wait_for_metric(a_addr, "wschat_cluster_link_up", 0);
    send_text(&mut ada, "unheard");
    send_text(&mut ada, "unheard too");
    wait_for_metric(a_addr, "wschat_cluster_dropped_lines_total", 2);
    assert_eq!(
        metric(a_addr, "wschat_cluster_published_lines_total"),
        Some(4)
    );
    let single = start_default();
    let (_, _, body) = http_get(single.local_addr(), "/metrics");
    assert!(
        !body.contains("wschat_cluster"),
        "no cluster figures without --redis"
    );
}

/// `promtool check metrics` finds nothing to say about `body` (skipped without promtool;
/// .ci/run installs it).
fn promtool_accepts(body: &str) {
    use std::io::Write;
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        eprintln!(
            "\n!!!!! SKIPPED: promtool is not installed (Debian package `prometheus`) !!!!!\n"
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
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{body}"
    );
}

/// `got` holds each line of `by_node` exactly once and nothing else, each node's in order.
fn assert_lines(got: Vec<Value>, who: &str, by_node: &[&[&str]]) {
    let got = events(&got);
    let mut want: Vec<&str> = by_node.concat();
    let mut sorted: Vec<&str> = got.iter().map(String::as_str).collect();
    want.sort();
    sorted.sort();
    assert_eq!(sorted, want, "{who}: got {got:?}");
    for lines in by_node {
        let at: Vec<usize> = (lines.iter())
            .map(|l| got.iter().position(|g| g == l).unwrap())
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "{who}: out of order: {got:?}"
        );
    }
}

#[test]
fn a_node_that_stops_tells_the_other_nodes_that_its_members_left() {
    let redis = Redis::start(&[]);
    let (a, b) = (node(&redis), node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let _bob = join_room(b.local_addr(), "bob", "r");
    let _bea = join_room(b.local_addr(), "bea", "s");
    assert_eq!(recv_event(&mut ada, "enter")["name"], "bob");
    b.stop().unwrap();
    assert_eq!(recv_event(&mut ada, "leave")["info"], "bob leaves.");
    assert_eq!(
        drain(&mut ada, Duration::from_millis(500)),
        Vec::<Value>::new(),
        "bea was in another room"
    );
}

#[test]
fn redis_killed_then_restarted_empty_each_client_hears_one_notice_each_way_and_lines_resume() {
    let mut redis = Redis::start(&[]);
    let (a, b) = (node(&redis), node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut amy = join_room(a.local_addr(), "amy", "r");
    let mut bob = join_room(b.local_addr(), "bob", "r");
    recv_event(&mut ada, "enter");
    recv_event(&mut ada, "enter");
    recv_event(&mut amy, "enter");

    let port = redis.port;
    redis.child.kill().unwrap(); // SIGKILL
    redis.child.wait().unwrap();
    for ws in [&mut ada, &mut amy, &mut bob] {
        assert_eq!(recv_event(ws, "notice")["code"], "cluster-down");
    }
    send_text(&mut ada, "during the outage");
    assert_eq!(recv_event(&mut amy, "message")["text"], "during the outage");

    let _redis = Redis::start_on(port); // a new, empty database
    let back = |ws: &mut Ws| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            assert!(Instant::now() < deadline, "no cluster-up notice");
            let got = drain(ws, Duration::from_millis(300));
            let codes: Vec<&Value> = got.iter().map(|v| &v["code"]).collect();
            assert!(
                !codes.iter().any(|c| *c == "cluster-down"),
                "a second down: {got:?}"
            );
            if codes.iter().any(|c| *c == "cluster-up") {
                return;
            }
        }
    };
    back(&mut ada);
    back(&mut bob);
    // Lines said during the outage never reach the other node; lines resume (the publisher
    // may reconnect a moment after the subscriber).
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "no cross-node line after the restart"
        );
        send_text(&mut ada, &format!("after {n}"));
        let got = drain(&mut bob, Duration::from_millis(300));
        assert!(
            got.iter().all(|v| v["text"] != "during the outage"),
            "{got:?}"
        );
        if got
            .iter()
            .any(|v| v["text"] == format!("after {n}").as_str())
        {
            break;
        }
    }
}

#[test]
fn each_senders_lines_arrive_in_the_order_they_were_said_on_every_node() {
    let redis = Redis::start(&[]);
    let (a, b) = (node(&redis), node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut bob = join_room(b.local_addr(), "bob", "r");
    recv_event(&mut ada, "enter");
    const LINES: usize = 500;
    let writer = thread::spawn(move || {
        for i in 0..LINES {
            send_text(&mut bob, &format!("b{i}"));
        }
        bob
    });
    for i in 0..LINES {
        send_text(&mut ada, &format!("a{i}"));
    }
    let mut bob = writer.join().unwrap();
    for (who, ws) in [("ada", &mut ada), ("bob", &mut bob)] {
        let (mut next_a, mut next_b) = (0, 0);
        while next_a < LINES || next_b < LINES {
            let v = recv_event(ws, "message");
            let text = v["text"].as_str().unwrap();
            let (next, n) = match text.split_at(1) {
                ("a", n) => (&mut next_a, n),
                ("b", n) => (&mut next_b, n),
                _ => panic!("{who} got {v}"),
            };
            assert_eq!(n.parse::<usize>().unwrap(), *next, "{who}: out of order");
            *next += 1;
        }
    }
}

#[test]
fn a_garbage_message_in_a_room_channel_is_skipped_and_the_chat_goes_on() {
    let redis = Redis::start(&[]);
    let (a, b) = (node(&redis), node(&redis));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut bob = join_room(b.local_addr(), "bob", "r");
    recv_event(&mut ada, "enter");
    let mut other_program = redis.conn();
    for garbage in [&b"not json"[..], br#"{"node":"x","kind":"shout"}"#, b"\xff"] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("wschat:room:r")
            .arg(garbage)
            .query(&mut other_program)
            .unwrap();
    }
    send_text(&mut ada, "still here");
    // (Bob may first hear ada's enter: it raced his own join.)
    let v = recv_event(&mut bob, "message");
    assert_eq!(v["info"], "ada: still here", "the first line bob gets: {v}");
}

#[test]
fn a_stalled_redis_leaves_local_chat_untouched_and_cross_node_lines_resume() {
    let redis = Redis::start(&[]);
    // Ada writes 20,000 lines before she reads her own copies back.
    let a = start(Config {
        redis: Some(redis.url()),
        max_backlog_bytes: 64 << 20,
        ..test_config()
    });
    let b = node(&redis);
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut amy = join_room(a.local_addr(), "amy", "r");
    let mut bob = join_room(b.local_addr(), "bob", "r");
    recv_event(&mut ada, "enter");
    recv_event(&mut ada, "enter");
    recv_event(&mut amy, "enter");

    let pid = redis.child.id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    // More lines than the bridge's outgoing queue holds (16,384): had the broadcaster waited
    // for it, amy would stop hearing ada. Lines for the other node are dropped (counted).
    const LINES: usize = 20_000;
    let started = Instant::now();
    let writer = thread::spawn(move || {
        for i in 0..LINES {
            send_text(&mut ada, &format!("local {i}"));
        }
        ada
    });
    let (mut last, mut longest_gap) = (Instant::now(), Duration::ZERO);
    for i in 0..LINES {
        let v = recv_event(&mut amy, "message");
        assert_eq!(v["text"], format!("local {i}"));
        longest_gap = longest_gap.max(last.elapsed());
        last = Instant::now();
    }
    let mut ada = writer.join().unwrap();
    let local = started.elapsed();
    signal("-CONT");
    eprintln!(
        "{LINES} local lines while Redis was stopped: {local:?}, longest gap {longest_gap:?}"
    );
    // Waiting on the stalled Redis costs a command timeout (1 s) each time, and a broadcaster
    // that waited for the bridge showed gaps of 3.9 s; healthy runs on a busy 2-core machine
    // showed up to 0.8 s.
    assert!(
        longest_gap < Duration::from_secs(2),
        "local chat waited for Redis: a gap of {longest_gap:?}"
    );

    // Cross-node lines resume once the bridge has reconnected.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        assert!(
            Instant::now() < deadline,
            "no cross-node line after SIGCONT"
        );
        n += 1;
        send_text(&mut ada, &format!("after {n}"));
        let got = drain(&mut bob, Duration::from_millis(300));
        if got
            .iter()
            .any(|v| v["text"].as_str() == Some(&format!("after {n}")))
        {
            break;
        }
    }
}

/// The binary's exit status and stderr with these flags, when it exits within a few seconds.
fn wschat(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--bind", "127.0.0.1", "--port", "0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let status = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (
        status.and_then(|s| s.code()),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn start_up_refuses_a_wrong_url_a_wrong_password_and_an_unreachable_redis_with_one_line() {
    let redis = Redis::start(&["--requirepass", "s3cret"]);
    let port = redis.port;
    let nobody = free_port();
    let cases = [
        (format!("http://127.0.0.1:{port}/"), "not a Redis URL"),
        (format!("redis://127.0.0.1:{port}/"), "wants a password"),
        (
            format!("redis://:wrong@127.0.0.1:{port}/"),
            "refused the password",
        ),
        (format!("redis://127.0.0.1:{nobody}/"), "cannot reach Redis"),
    ];
    for (url, says) in cases {
        let (code, stderr) = wschat(&["--redis", &url]);
        assert!(
            code.is_some_and(|c| c != 0),
            "{url}: exit {code:?}, {stderr}"
        );
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("wschat:"))
            .collect();
        assert_eq!(errors.len(), 1, "{url}: {stderr}");
        assert!(errors[0].contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("wrong@"), "the password shows: {stderr}");
    }
    let (code, stderr) = wschat(&[
        "--redis",
        "redis://127.0.0.1:1/",
        "--history-file",
        "h.jsonl",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("history-file does not go with redis"),
        "{stderr}"
    );
}

#[test]
fn redis_optional_starts_without_redis_and_joins_when_it_comes_up() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let config = |optional| Config {
        redis: Some(url.clone()),
        redis_optional: optional,
        ..test_config()
    };
    let refused = wschat::Server::bind(config(false)).err().expect("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::NotConnected);
    let a = start(config(true));
    let b = start(config(true));
    let mut ada = join_room(a.local_addr(), "ada", "r");
    let mut amy = join_room(a.local_addr(), "amy", "r");
    send_text(&mut ada, "alone");
    assert_eq!(recv_event(&mut amy, "message")["text"], "alone");

    let _redis = Redis::start_on(port);
    let mut bob = join_room(b.local_addr(), "bob", "r");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut n = 0;
    loop {
        assert!(Instant::now() < deadline, "the nodes never met");
        n += 1;
        send_text(&mut ada, &format!("hi {n}"));
        let got = drain(&mut bob, Duration::from_millis(300));
        if got
            .iter()
            .any(|v| v["text"].as_str() == Some(&format!("hi {n}")))
        {
            break;
        }
    }
}
