//! socket.io clients' own events (`emit('typing', true)`), spoken frame by frame: relayed to
//! the others in the sender's room with who sent it (docs/PROTOCOL.md, "Custom events"),
//! never to raw clients or other rooms; reserved names, the rate limit, the size cap, and
//! `--no-custom-events`. The real socket.io-client packages are driven by
//! tests/socketio/run.mjs.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::{connect, join, recv, recv_close, send_text, start, test_config, Ws, WAIT};
use serde_json::{json, Value};
use tungstenite::Message;
use wschat::Config;

const V4: &str = "/socket.io/?EIO=4&transport=websocket";

/// The next text frame that is not an Engine.IO ping (pings are answered).
fn next_packet(ws: &mut Ws) -> String {
    loop {
        match recv(ws) {
            Message::Text(t) if t.as_str() == "2" => send_text(ws, "3"),
            Message::Text(t) => return t.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The next Socket.IO EVENT whose name is `name`: its arguments after the name.
fn next_event(ws: &mut Ws, name: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {name} event in time");
        let text = next_packet(ws);
        let Some(args) = text.strip_prefix("42") else {
            continue;
        };
        let mut args: Vec<Value> = serde_json::from_str(args).unwrap();
        if args[0] == name {
            args.remove(0);
            return args;
        }
    }
}

/// A v4 client in `room` under `name`, past its own enter line.
fn sio(addr: SocketAddr, name: &str, room: &str) -> Ws {
    let mut ws = connect(addr, &format!("{V4}&username={name}&room={room}"));
    assert!(next_packet(&mut ws).starts_with('0'));
    send_text(&mut ws, "40");
    assert!(next_packet(&mut ws).starts_with("40{"));
    next_event(&mut ws, "enter");
    ws
}

/// What `ws` has got by the time its own message `marker` comes back: everything relayed to
/// it before that was handled first, so it is here.
fn until_marker(ws: &mut Ws, marker: &str) -> Vec<String> {
    send_text(ws, &format!("42{}", json!(["message", marker])));
    let mut got = Vec::new();
    loop {
        let text = next_packet(ws);
        if text.contains(marker) {
            return got;
        }
        got.push(text);
    }
}

#[test]
fn a_custom_event_reaches_the_others_in_the_room_with_its_sender() {
    let server = start(test_config());
    let addr = server.local_addr();
    let mut ann = sio(addr, "ann", "r");
    let mut bob = sio(addr, "bob", "r");
    let mut cy = sio(addr, "cy", "elsewhere");
    let (mut raw, _) = join(addr, "raw&room=r");
    next_event(&mut ann, "enter"); // bob
    next_event(&mut ann, "enter"); // raw
    send_text(&mut ann, r#"427["typing",true,{"at":[1,"é"]}]"#);
    assert_eq!(
        next_packet(&mut ann),
        "437[]",
        "the ack: the event was relayed"
    );
    let got = next_event(&mut bob, "typing");
    let time = got[2]["time"].as_u64().expect("a time");
    assert_eq!(
        got,
        json!([true, {"at": [1, "é"]}, {"from": "ann", "room": "r", "time": time}])
            .as_array()
            .unwrap()
            .clone()
    );
    // Not back to the sender, nor to another room, nor to raw clients.
    assert!(
        !until_marker(&mut ann, "m1")
            .iter()
            .any(|t| t.contains("typing")),
        "the sender"
    );
    assert!(
        !until_marker(&mut cy, "m2")
            .iter()
            .any(|t| t.contains("typing")),
        "another room"
    );
    send_text(&mut raw, "raw marker");
    loop {
        let Message::Text(t) = recv(&mut raw) else {
            continue;
        };
        assert!(!t.contains("typing"), "a raw client got {t}");
        if t.contains("raw marker") {
            break;
        }
    }
}

#[test]
fn reserved_names_are_refused_with_a_notice() {
    let server = start(test_config());
    let addr = server.local_addr();
    let mut ann = sio(addr, "ann", "r");
    let mut bob = sio(addr, "bob", "r");
    for name in ["enter", "disconnect", "notice"] {
        send_text(&mut ann, &format!("42{}", json!([name, "spoof"])));
        assert_eq!(next_event(&mut ann, "notice")[0]["code"], "event-reserved");
    }
    let got = until_marker(&mut bob, "m");
    assert!(!got.iter().any(|t| t.contains("spoof")), "{got:?}");
}

#[test]
fn the_rate_limit_and_the_size_cap_apply() {
    let config = Config {
        rate_limit_per_sec: 1,
        rate_burst: 2,
        max_message_bytes: 200,
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let mut ann = sio(addr, "ann", "r");
    let mut bob = sio(addr, "bob", "r");
    for i in 0..3 {
        send_text(&mut ann, &format!("42{}", json!(["typing", i])));
    }
    assert_eq!(next_event(&mut ann, "notice")[0]["code"], "rate-limited");
    assert_eq!(next_event(&mut bob, "typing")[0], 0);
    assert_eq!(next_event(&mut bob, "typing")[0], 1);
    // Over the size cap: 1009, and only that client goes.
    send_text(
        &mut bob,
        &format!("42{}", json!(["typing", "x".repeat(300)])),
    );
    let close = recv_close(&mut bob).expect("a Close");
    assert_eq!(u16::from(close.code), 1009);
    assert_eq!(next_event(&mut ann, "leave")[0], "bob leaves.");
}

#[test]
fn with_relaying_off_the_sender_gets_a_notice_and_nobody_the_event() {
    let config = Config {
        relay_custom_events: false,
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let mut ann = sio(addr, "ann", "r");
    let mut bob = sio(addr, "bob", "r");
    send_text(&mut ann, r#"421["typing",true]"#);
    let notice = next_event(&mut ann, "notice");
    assert_eq!(notice[0]["code"], "custom-events-off");
    assert!(
        notice[0]["text"]
            .as_str()
            .unwrap()
            .contains("--no-custom-events"),
        "{notice:?}"
    );
    let got = until_marker(&mut bob, "m");
    assert!(!got.iter().any(|t| t.contains("typing")), "{got:?}");
    // Messages still go through.
    send_text(&mut ann, r#"42["message","hi"]"#);
    assert_eq!(next_event(&mut bob, "message")[0], "ann: hi");
}
