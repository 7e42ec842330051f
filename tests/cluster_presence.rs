//! Cluster presence (`--redis`): the welcome's users, `/who` and `/msg` across nodes, names
//! unique across the cluster (claimed in Redis), a SIGKILLed node's members leaving within
//! 3 × `--ping-interval`, and presence rebuilt after Redis restarted empty. On a real
//! `redis-server` (Debian's package) on a free port, with in-process nodes and, for the
//! SIGKILL, the binary as a child process.

mod common;
mod redis_server;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use redis_server::{free_port, Redis};
use serde_json::Value;
use wschat::{Config, RunningServer};

impl Redis {
    /// Who holds which name in `room` (lower-cased room and names → `node\nName`).
    fn names(&self, room: &str) -> HashMap<String, String> {
        redis::cmd("HGETALL")
            .arg(format!("wschat:names:{room}"))
            .query(&mut self.conn())
            .unwrap()
    }
}

/// A wschat binary killed on drop.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node_with(redis: &Redis, ping_interval: Duration) -> RunningServer {
    start(Config {
        redis: Some(redis.url()),
        ping_interval,
        ..test_config()
    })
}

fn node(redis: &Redis) -> RunningServer {
    node_with(redis, Config::default().ping_interval)
}

/// Joins `room` on `addr` asking for `name`: the welcome.
fn join(addr: SocketAddr, name: &str, room: &str) -> (Ws, Value) {
    let mut ws = connect(addr, &format!("/?name={name}&room={room}"));
    let welcome = recv_json(&mut ws);
    assert_eq!(welcome["event"], "welcome", "{welcome}");
    (ws, welcome)
}

/// Waits for `name`'s enter, skipping the probes'.
fn recv_enter_of(ws: &mut Ws, name: &str) {
    while recv_event(ws, "enter")["name"] != name {}
}

/// The names of a welcome or a `/who`, sorted.
fn users(v: &Value) -> Vec<String> {
    let mut names: Vec<String> = v["users"]
        .as_array()
        .unwrap_or_else(|| panic!("no users: {v}"))
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

/// Waits until `room` on a node whose welcome `check` accepts (a fresh client each try).
fn eventually_welcome(addr: SocketAddr, room: &str, check: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (mut ws, welcome) = join(addr, "probe", room);
        // Gone before the caller's next join on this node: its users never list a probe.
        let _ = ws.close(None);
        while ws.read().is_ok() {}
        if check(&welcome) {
            return;
        }
        assert!(Instant::now() < deadline, "never: {welcome}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_welcome_who_and_msg_span_the_nodes_and_names_are_unique_across_them() {
    let redis = Redis::start_on(free_port());
    let (a, b) = (node(&redis), node(&redis));
    let (mut ada, _) = join(a.local_addr(), "ada", "r");
    // bob's welcome waits for ada's enter to reach node b (it may take a moment).
    eventually_welcome(b.local_addr(), "r", |w| users(w).contains(&"ada".into()));
    let (mut bob, welcome) = join(b.local_addr(), "bob", "r");
    assert_eq!(users(&welcome), ["ada", "bob"]);
    recv_enter_of(&mut ada, "bob");

    send_text(&mut ada, "/who");
    let who = recv_event(&mut ada, "notice");
    assert_eq!(who["code"], "who", "{who}");
    assert_eq!(users(&who), ["ada", "bob"]);

    // A second ada, on the other node, gets another name, claimed in Redis.
    let (_ada2, welcome) = join(b.local_addr(), "ADA", "r");
    assert_eq!(welcome["name"], "ADA2", "{welcome}");
    eventually("ADA2 claimed in Redis", || {
        redis.names("r").contains_key("ada2")
    });
    let names = redis.names("r");
    assert!(
        names["ada"].ends_with("\nada") && names["ada2"].ends_with("\nADA2"),
        "{names:?}"
    );
    assert_ne!(
        names["ada"].split('\n').next(),
        names["ada2"].split('\n').next()
    );

    // /msg reaches a member on the other node, and only it; the sender sees its copy.
    send_text(&mut bob, "/msg ada psst");
    let private = recv_event(&mut ada, "private");
    assert_eq!(private["info"], "bob → ada (private): psst", "{private}");
    assert_eq!(recv_event(&mut bob, "private")["info"], private["info"]);
    send_text(&mut bob, "/msg nobody hi");
    assert_eq!(recv_event(&mut bob, "notice")["code"], "no-such-user");
}

#[test]
fn a_name_claimed_in_redis_first_by_another_node_is_changed_here_with_a_notice() {
    let redis = Redis::start_on(free_port());
    let a = node(&redis);
    let (mut watcher, _) = join(a.local_addr(), "watcher", "r");
    // Another node's claim that this node has not heard of yet: only Redis knows it.
    let _: () = redis::cmd("HSET")
        .arg("wschat:names:r")
        .arg("zed")
        .arg("elsewhere\nzed")
        .query(&mut redis.conn())
        .unwrap();
    let (mut zed, welcome) = join(a.local_addr(), "zed", "r");
    assert_eq!(welcome["name"], "zed", "this node knew of no other zed");
    let notice = recv_event(&mut zed, "notice");
    assert_eq!(notice["code"], "name-taken", "{notice}");
    let rename = recv_event(&mut watcher, "rename");
    assert_eq!(rename["info"], "zed is now known as zed2", "{rename}");
    // The rename's claim reaches Redis a moment after the room hears it.
    eventually("zed2 claimed in Redis", || {
        redis
            .names("r")
            .get("zed2")
            .is_some_and(|o| o.ends_with("\nzed2"))
    });
    assert_eq!(
        redis.names("r")["zed"],
        "elsewhere\nzed",
        "the first claim stands"
    );
}

#[test]
fn a_sigkilled_nodes_members_leave_and_their_names_are_freed_within_three_ping_intervals() {
    let redis = Redis::start_on(free_port());
    let ping = Duration::from_secs(2);
    let a = node_with(&redis, ping);
    let port = free_port();
    let mut child = Binary(
        Command::new(env!("CARGO_BIN_EXE_wschat"))
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--redis", &redis.url(), "--ping-interval", "2"])
            .args(["--rate-limit", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let b: SocketAddr = ([127, 0, 0, 1], port).into();
    eventually("the child node to listen", || TcpStream::connect(b).is_ok());
    let (mut ada, _) = join(a.local_addr(), "ada", "r");
    eventually_welcome(b, "r", |w| users(w).contains(&"ada".into()));
    let (_bob, _) = join(b, "bob", "r");
    recv_enter_of(&mut ada, "bob");
    assert!(redis.names("r").contains_key("bob"));

    child.0.kill().unwrap(); // SIGKILL: no farewell
    let killed = Instant::now();
    // (A probe's leave may come first; pings keep coming, so each read waits briefly.)
    ada.get_mut()
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    loop {
        let took = killed.elapsed();
        assert!(took < ping * 3, "no leave of bob within {took:?}");
        let Ok(tungstenite::Message::Text(t)) = ada.read() else {
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v["event"] == "leave" && v["info"] == "bob leaves." {
            break;
        }
    }
    ada.get_mut().set_read_timeout(Some(WAIT)).unwrap();
    assert!(!redis.names("r").contains_key("bob"), "bob's name is freed");
    let (_bob_again, welcome) = join(a.local_addr(), "bob", "r");
    assert_eq!(welcome["name"], "bob");
    assert_eq!(users(&welcome), ["ada", "bob"]);
}

#[test]
fn after_redis_restarts_empty_each_node_registers_its_members_again() {
    let mut redis = Redis::start_on(free_port());
    let (a, b) = (node(&redis), node(&redis));
    let (_ada, _) = join(a.local_addr(), "ada", "r");
    eventually_welcome(b.local_addr(), "r", |w| users(w).contains(&"ada".into()));
    let (_bob, _) = join(b.local_addr(), "bob", "r");

    let port = redis.port;
    redis.child.kill().unwrap(); // SIGKILL
    redis.child.wait().unwrap();
    let redis = Redis::start_on(port); // a new, empty database
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names = redis.names("r");
        if names.contains_key("ada") && names.contains_key("bob") {
            break;
        }
        assert!(Instant::now() < deadline, "not registered again: {names:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A node that starts now knows only what Redis holds: both are there, names taken.
    let c = node(&redis);
    let (_bob2, welcome) = join(c.local_addr(), "bob", "r");
    assert_eq!(welcome["name"], "bob2", "{welcome}");
    assert_eq!(users(&welcome), ["ada", "bob", "bob2"]);
}
