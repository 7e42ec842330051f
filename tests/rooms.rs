//! Rooms, the welcome, history (in memory and in a file across a restart), and the chat
//! commands, with real clients.

mod common;

use std::net::SocketAddr;

use common::*;
use serde_json::{json, Value};
use wschat::Config;

/// Joins `room` as `name`; returns the client and its welcome.
fn join_room(addr: SocketAddr, name: &str, room: &str) -> (Ws, Value) {
    let mut ws = connect(addr, &format!("/?name={name}&room={room}"));
    let welcome = recv_json(&mut ws);
    assert_eq!(welcome["event"], "welcome", "{welcome}");
    (ws, welcome)
}

/// `ws` sends a marker line and reads until it comes back; returns what came before it.
/// Proves what a client did NOT get, without waiting for a timeout.
fn drain_until_own_marker(ws: &mut Ws, marker: &str) -> Vec<Value> {
    send_text(ws, marker);
    let mut seen = Vec::new();
    loop {
        let v = recv_json(ws);
        if v["text"] == marker {
            return seen;
        }
        seen.push(v);
    }
}

#[test]
fn rooms_are_isolated() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut a, w) = join_room(addr, "a", "lobby");
    assert_eq!(w["room"], "lobby");
    let (mut b, w) = join_room(addr, "b", "pi-club");
    assert_eq!(w["room"], "pi-club");
    assert_eq!(w["users"], json!(["b"]), "a is in another room");
    let (mut c, _) = join_room(addr, "c", "pi-club");
    assert_eq!(recv_json(&mut b)["info"], "c comes in !!!");

    send_text(&mut b, "pi only");
    assert_eq!(recv_json(&mut b)["text"], "pi only");
    assert_eq!(recv_json(&mut c)["text"], "pi only");
    // The lobby saw neither the joins nor the message, nor will it see c leave.
    drop(c);
    assert_eq!(recv_json(&mut b)["info"], "c leaves.");
    assert_eq!(
        drain_until_own_marker(&mut a, "lobby marker"),
        Vec::<Value>::new()
    );
    // The same name may be used in two rooms.
    let (_a2, w) = join_room(addr, "a", "pi-club");
    assert_eq!(w["name"], "a");
}

#[test]
fn plain_slash_joins_the_default_room() {
    let server = start_default();
    let addr = server.local_addr();
    let (_a, w) = join_room(addr, "a", wschat::DEFAULT_ROOM);
    let mut classic = connect(addr, "/");
    let w2 = recv_json(&mut classic);
    assert_eq!(w2["room"], wschat::DEFAULT_ROOM);
    assert_eq!(w2["users"], json!(["a", w2["name"]]));
    assert_eq!(w["room"], w2["room"]);
}

#[test]
fn the_welcome_has_the_final_name_the_room_and_who_is_there() {
    let server = start_default();
    let addr = server.local_addr();
    let (_a, _) = join_room(addr, "ann", "r1");
    let (_b, _) = join_room(addr, "bob", "r1");
    let (mut dup, w) = join_room(addr, "Ann", "r1");
    assert_eq!(w["type"], 0);
    assert_eq!(w["info"], "Ann2 comes in !!!");
    assert_eq!(w["name"], "Ann2");
    assert_eq!(w["room"], "r1");
    assert_eq!(w["users"], json!(["ann", "bob", "Ann2"]));
    assert_eq!(recv_json(&mut dup)["code"], "name-taken");
}

#[test]
fn classic_clients_see_only_types_0_1_2_in_normal_chat() {
    let server = start_default();
    let addr = server.local_addr();
    let mut classic = connect(addr, "/");
    let mut seen = vec![recv_json(&mut classic)];
    let (mut other, _) = join_room(addr, "other", wschat::DEFAULT_ROOM);
    seen.push(recv_json(&mut classic));
    send_text(&mut other, "hi classic");
    seen.push(recv_json(&mut classic));
    send_text(&mut classic, "hi other");
    seen.push(recv_json(&mut classic));
    drop(other);
    seen.push(recv_json(&mut classic));
    let types: Vec<_> = seen.iter().map(|v| v["type"].as_u64().unwrap()).collect();
    assert_eq!(types, [0, 0, 1, 1, 2], "{seen:?}");
    let infos: Vec<_> = seen.iter().map(|v| v["info"].as_str().unwrap()).collect();
    assert_eq!(
        infos,
        [
            "user1 comes in !!!",
            "other comes in !!!",
            "other: hi classic",
            "user1: hi other",
            "other leaves."
        ]
    );
}

#[test]
fn bad_room_names_go_to_the_default_room_with_a_notice() {
    let server = start_default();
    let (mut ws, w) = join_room(server.local_addr(), "x", "%01bad");
    assert_eq!(w["room"], wschat::DEFAULT_ROOM);
    assert_eq!(recv_json(&mut ws)["code"], "room-invalid");
}

#[test]
fn the_room_cap_keeps_busy_rooms_and_forgets_idle_ones() {
    let server = start(Config {
        max_rooms: 2,
        ..test_config()
    });
    let addr = server.local_addr();
    let (_a, _) = join_room(addr, "a", "one");
    let (_b, _) = join_room(addr, "b", "two");
    // Both rooms have members: a third room is refused, the client lands in the lobby.
    let (mut c, w) = join_room(addr, "c", "three");
    assert_eq!(w["room"], wschat::DEFAULT_ROOM);
    assert_eq!(recv_json(&mut c)["code"], "rooms-full");
}

#[test]
fn history_is_replayed_in_order_capped_and_marked() {
    let server = start(Config {
        history: 3,
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut a, _) = join_room(addr, "a", "h");
    for i in 1..=5 {
        send_text(&mut a, &format!("m{i}"));
    }
    send_text(&mut a, "/me waves");
    let mut times = Vec::new();
    for _ in 0..6 {
        times.push(recv_json(&mut a)["time"].as_u64().unwrap());
    }
    let (mut b, w) = join_room(addr, "b", "h");
    assert_eq!(w["users"], json!(["a", "b"]));
    let replay: Vec<Value> = (0..3).map(|_| recv_json(&mut b)).collect();
    let texts: Vec<_> = replay.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["m4", "m5", "waves"]);
    for (v, t) in replay.iter().zip(&times[3..]) {
        assert_eq!(v["history"], true, "{v}");
        assert_eq!(v["time"].as_u64().unwrap(), *t, "original time kept");
        assert_eq!(v["room"], "h");
    }
    assert_eq!(replay[0]["info"], "a: m4");
    assert_eq!(replay[2]["event"], "action");
    assert_eq!(replay[2]["info"], "* a waves");
    // Live messages are not marked as history.
    send_text(&mut a, "live");
    let live = recv_json(&mut b);
    assert_eq!(live["text"], "live");
    assert!(live.get("history").is_none());
    // Another room has its own history (none).
    let (mut c, _) = join_room(addr, "c", "elsewhere");
    assert!(drain_until_own_marker(&mut c, "mark").is_empty());
}

#[test]
fn history_zero_turns_it_off() {
    let server = start(Config {
        history: 0,
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut a, _) = join_room(addr, "a", "h");
    send_text(&mut a, "gone");
    recv_json(&mut a);
    let (mut b, _) = join_room(addr, "b", "h");
    assert!(drain_until_own_marker(&mut b, "mark").is_empty());
}

#[test]
fn history_survives_a_restart_with_a_history_file() {
    let path = std::env::temp_dir().join(format!("wschat-restart-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = Config {
        history: 10,
        history_file: Some(path.clone()),
        ..test_config()
    };
    {
        let server = start(config.clone());
        let (mut a, _) = join_room(server.local_addr(), "a", "keep");
        send_text(&mut a, "before the restart");
        send_text(&mut a, "/me stretches");
        recv_json(&mut a);
        recv_json(&mut a);
        server.stop().unwrap();
    }
    // A crash may leave a torn last line: it is skipped, not fatal.
    let mut torn = std::fs::read_to_string(&path).unwrap();
    torn.push_str("{\"room\":\"keep\",\"ev");
    std::fs::write(&path, torn).unwrap();

    let server = start(config);
    let (mut b, _) = join_room(server.local_addr(), "b", "keep");
    let first = recv_json(&mut b);
    assert_eq!(first["info"], "a: before the restart");
    assert_eq!(first["history"], true);
    assert_eq!(recv_json(&mut b)["info"], "* a stretches");
    assert!(drain_until_own_marker(&mut b, "mark").is_empty());
    drop(server);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn nick_renames_and_refuses_bad_or_taken_names() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut a, _) = join_room(addr, "al", "n");
    let (mut b, _) = join_room(addr, "bo", "n");
    recv_json(&mut a);

    send_text(&mut a, "/nick ally");
    for ws in [&mut a, &mut b] {
        let v = recv_json(ws);
        assert_eq!(v["type"], 4);
        assert_eq!(v["event"], "rename");
        assert_eq!(v["info"], "al is now known as ally");
        assert_eq!(
            (v["old"].as_str(), v["name"].as_str()),
            (Some("al"), Some("ally"))
        );
    }
    send_text(&mut a, "new name");
    assert_eq!(recv_json(&mut b)["info"], "ally: new name");
    recv_json(&mut a);

    send_text(&mut a, "/nick BO");
    assert_eq!(recv_json(&mut a)["code"], "name-taken");
    send_text(&mut a, "/nick \u{7}");
    assert_eq!(recv_json(&mut a)["code"], "name-invalid");
    send_text(&mut a, "/nick");
    assert_eq!(recv_json(&mut a)["code"], "usage");
    // The old name is free again.
    let (_c, w) = join_room(addr, "al", "n");
    assert_eq!(w["name"], "al");
    // b saw none of a's refused renames, only c's arrival.
    assert_eq!(recv_json(&mut b)["info"], "al comes in !!!");
}

#[test]
fn me_who_help_unknown_and_literal_slash() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut a, _) = join_room(addr, "a", "cmd");
    let (mut b, _) = join_room(addr, "b%20c", "cmd");
    recv_json(&mut a);

    send_text(&mut a, "/me waves");
    for ws in [&mut a, &mut b] {
        let v = recv_json(ws);
        assert_eq!(
            (v["type"].as_u64(), v["event"].as_str()),
            (Some(1), Some("action"))
        );
        assert_eq!(v["info"], "* a waves");
        assert_eq!(v["text"], "waves");
    }

    send_text(&mut a, "/who");
    let who = recv_json(&mut a);
    assert_eq!(
        (who["type"].as_u64(), who["code"].as_str()),
        (Some(3), Some("who"))
    );
    assert_eq!(who["users"], json!(["a", "b c"]));
    assert_eq!(who["text"], "In cmd: a, b c");

    send_text(&mut a, "/help");
    let help = recv_json(&mut a);
    assert_eq!(help["code"], "help");
    for command in ["/nick", "/me", "/who", "/msg", "/help", "//"] {
        assert!(help["text"].as_str().unwrap().contains(command), "{help}");
    }

    send_text(&mut a, "/dance now");
    let unknown = recv_json(&mut a);
    assert_eq!(unknown["code"], "unknown-command");
    assert!(unknown["text"].as_str().unwrap().contains("/dance"));

    send_text(&mut a, "//dance is not a command");
    for ws in [&mut a, &mut b] {
        let v = recv_json(ws);
        assert_eq!(v["info"], "a: /dance is not a command");
    }
    // b saw only the action and the literal line: every notice went to a alone.
    assert!(drain_until_own_marker(&mut b, "mark").is_empty());
}

#[test]
fn msg_reaches_exactly_the_sender_and_the_recipient() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut a, _) = join_room(addr, "ann", "dm");
    let (mut b, _) = join_room(addr, "bob%20smith", "dm");
    let (mut c, _) = join_room(addr, "carol", "dm");
    for _ in 0..2 {
        recv_json(&mut a);
    }
    recv_json(&mut b);

    send_text(&mut a, "/msg Bob Smith psst, <secret>");
    for ws in [&mut a, &mut b] {
        let v = recv_json(ws);
        assert_eq!(v["type"], 5);
        assert_eq!(v["event"], "private");
        assert_eq!(
            (v["from"].as_str(), v["to"].as_str()),
            (Some("ann"), Some("bob smith"))
        );
        assert_eq!(v["text"], "psst, <secret>");
        assert_eq!(v["info"], "ann → bob smith (private): psst, &lt;secret&gt;");
    }
    // carol got nothing before her own marker.
    assert!(drain_until_own_marker(&mut c, "mark").is_empty());
    assert_eq!(recv_json(&mut a)["text"], "mark");

    send_text(&mut a, "/msg nobody hello");
    let v = recv_json(&mut a);
    assert_eq!(v["code"], "no-such-user");
    assert!(v["text"].as_str().unwrap().contains("nobody"));
    send_text(&mut a, "/msg carol");
    assert_eq!(recv_json(&mut a)["code"], "usage");
    send_text(&mut a, "/msg");
    assert_eq!(recv_json(&mut a)["code"], "usage");
    // Private messages are not history.
    let (mut d, _) = join_room(addr, "dan", "dm");
    let replay = drain_until_own_marker(&mut d, "mark");
    assert!(replay.iter().all(|v| v["type"] != 5), "{replay:?}");
}
