//! socket.io clients over the WebSocket transport, spoken frame by frame (no Node needed): the
//! handshake's refusals, the Engine.IO open packet and heartbeats of both versions, CONNECT
//! and CONNECT_ERROR, and socket.io and raw clients chatting in one room. The real
//! socket.io-client packages are driven by tests/socketio/run.mjs.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tungstenite::Message;
use wschat::Config;

const V4: &str = "/socket.io/?EIO=4&transport=websocket";
const V3: &str = "/socket.io/?EIO=3&transport=websocket";

/// The next text frame.
fn recv_text(ws: &mut Ws) -> String {
    match recv(ws) {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads frames until the Socket.IO event `name` (`42["name",…]`); returns its arguments.
/// Engine.IO pings (`2`) are answered, as a socket.io client does.
fn recv_event(ws: &mut Ws, name: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {name} event in time");
        let text = recv_text(ws);
        if text == "2" {
            send_text(ws, "3");
            continue;
        }
        let Some(args) = text.strip_prefix("42") else {
            continue;
        };
        let mut args: Vec<Value> =
            serde_json::from_str(args).unwrap_or_else(|e| panic!("{e}: {text}"));
        if args[0] == name {
            args.remove(0);
            return args;
        }
    }
}

/// The Engine.IO open packet's JSON.
fn recv_open(ws: &mut Ws) -> Value {
    let open = recv_text(ws);
    let json = open
        .strip_prefix('0')
        .unwrap_or_else(|| panic!("not an open packet: {open}"));
    serde_json::from_str(json).unwrap()
}

/// A socket.io v4 client in the chat: connects, reads the open packet, sends CONNECT, reads
/// the answer and its own `enter` line. Returns the client and the `enter` arguments (the
/// line, and the welcome object).
fn sio_join(addr: SocketAddr, query: &str) -> (Ws, Vec<Value>) {
    let mut ws = connect(addr, &format!("{V4}&{query}"));
    recv_open(&mut ws);
    send_text(&mut ws, "40");
    let answer = recv_text(&mut ws);
    assert!(answer.starts_with(r#"40{"sid":""#), "{answer}");
    let enter = recv_event(&mut ws, "enter");
    (ws, enter)
}

fn emit(ws: &mut Ws, name: &str, arg: &str) {
    send_text(ws, &format!("42{}", json!([name, arg])));
}

/// The status and body of a refused WebSocket handshake.
fn refused(addr: SocketAddr, path: &str) -> (u16, String) {
    match try_connect(addr, path) {
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().map(String::from_utf8).unwrap().unwrap();
            (resp.status().as_u16(), body)
        }
        other => panic!(
            "expected an HTTP error for {path}, got {:?}",
            other.map(|_| ())
        ),
    }
}

#[test]
fn the_handshake_query_is_checked_with_reasons() {
    let server = start_default();
    let addr = server.local_addr();
    for (path, reason) in [
        (
            "/socket.io/?EIO=4&transport=polling",
            "transport=polling is not a WebSocket",
        ),
        ("/socket.io/?transport=websocket", "missing EIO"),
        ("/socket.io/?EIO=5&transport=websocket", "unsupported EIO=5"),
        ("/socket.io/?EIO=4", "missing transport=websocket"),
        (
            "/socket.io/?EIO=4&transport=websocket&sid=x1",
            "Session ID unknown",
        ),
    ] {
        let (status, body) = refused(addr, path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains(reason), "{path}: {body}");
    }
    // Without the trailing slash too (addTrailingSlash: false).
    assert!(try_connect(addr, "/socket.io?EIO=4&transport=websocket").is_ok());

    // A client created with its default options starts with a plain GET: long-polling
    // (tests/polling.rs follows such sessions).
    let (status, _, body) = http_get(addr, "/socket.io/?EIO=4&transport=polling&t=Pz1");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("0{") && body.contains(r#""upgrades":["websocket"]"#),
        "{body}"
    );
    // wschat does not serve the client library, and says so.
    let (status, _, body) = http_get(addr, "/socket.io/socket.io.js");
    assert_eq!(status, 404);
    assert!(
        body.contains("does not serve the socket.io client library"),
        "{body}"
    );
    // Other WebSocket paths still list the endpoints, /socket.io/ among them.
    let (status, body) = refused(addr, "/nope");
    assert_eq!(status, 404);
    assert!(body.contains("/socket.io/"), "{body}");
}

#[test]
fn v4_open_packet_connect_and_connect_error() {
    let config = Config {
        ping_interval: Duration::from_secs(7),
        max_message_bytes: 2048,
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let mut ws = connect(addr, &format!("{V4}&username=ann"));
    let open = recv_open(&mut ws);
    let sid = open["sid"].as_str().expect("a sid").to_string();
    assert!(sid.len() >= 16, "{open}");
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], 7000);
    // interval + timeout = the reader's idle timeout (2 × ping interval)
    assert_eq!(open["pingTimeout"], 7000);
    assert_eq!(open["maxPayload"], 2048);

    // A namespace wschat does not have: CONNECT_ERROR, and the connection stays.
    send_text(&mut ws, "40/admin,");
    assert_eq!(
        recv_text(&mut ws),
        r#"44/admin,{"message":"Invalid namespace"}"#
    );
    // The default namespace: its own sid, then the newcomer's enter line.
    send_text(&mut ws, "40");
    let answer: Value = serde_json::from_str(&recv_text(&mut ws)[2..]).unwrap();
    let socket_sid = answer["sid"].as_str().unwrap();
    assert_ne!(
        socket_sid, sid,
        "the Socket.IO sid is not the Engine.IO sid"
    );
    let enter = recv_event(&mut ws, "enter");
    assert_eq!(enter[0], "ann comes in !!!");
    assert_eq!(enter[1]["event"], "welcome");
    assert_eq!(enter[1]["users"], json!(["ann"]));
}

#[test]
fn eio3_is_connected_by_the_server_and_its_pings_are_answered() {
    let server = start_default();
    let addr = server.local_addr();
    let mut ws = connect(addr, &format!("{V3}&username=old&room=v2"));
    let open = recv_open(&mut ws);
    assert_eq!(open["pingInterval"], 30_000);
    assert_eq!(open["pingTimeout"], 30_000);
    assert!(open.get("maxPayload").is_none(), "not in EIO=3: {open}");
    // Socket.IO v4 protocol: the server connects the default namespace unasked.
    assert_eq!(recv_text(&mut ws), "40");
    let enter = recv_event(&mut ws, "enter");
    assert_eq!(enter[0], "old comes in !!!");
    assert_eq!(enter[1]["room"], "v2");
    // The client pings; the server answers with the same data.
    send_text(&mut ws, "2");
    assert_eq!(recv_text(&mut ws), "3");
    send_text(&mut ws, "2probe");
    assert_eq!(recv_text(&mut ws), "3probe");
    // The version's error format for an unknown namespace.
    send_text(&mut ws, "40/admin?token=1,");
    assert_eq!(recv_text(&mut ws), r#"44/admin,"Invalid namespace""#);
    emit(&mut ws, "message", "still here");
    assert_eq!(recv_event(&mut ws, "message")[0], "old: still here");
}

#[test]
fn socketio_and_raw_clients_chat_in_one_room() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut raw, _) = join(addr, "raw");
    let (mut sio, enter) = sio_join(addr, "username=sio");
    assert_eq!(enter[1]["users"], json!(["raw", "sio"]));
    assert_eq!(
        recv_event_json(&mut raw, "enter")["info"],
        "sio comes in !!!"
    );

    // socket.io → everyone: the classic line (HTML-escaped), then the object.
    emit(&mut sio, "message", "hi <b>");
    let v = recv_event_json(&mut raw, "message");
    assert_eq!(
        (v["name"].as_str(), v["text"].as_str()),
        (Some("sio"), Some("hi <b>"))
    );
    assert_eq!(v["info"], "sio: hi &lt;b&gt;");
    let args = recv_event(&mut sio, "message");
    assert_eq!(args[0], "sio: hi &lt;b&gt;");
    assert_eq!(args[1]["text"], "hi <b>");
    assert_eq!(args[1]["event"], "message");

    // raw → socket.io.
    send_text(&mut raw, "yo");
    assert_eq!(recv_event(&mut sio, "message")[0], "raw: yo");
    recv_event_json(&mut raw, "message");

    // An acknowledgement, when asked for, follows the message.
    send_text(&mut sio, r#"4217["message","acked"]"#);
    assert_eq!(recv_event(&mut sio, "message")[0], "sio: acked");
    assert_eq!(recv_text(&mut sio), "4317[]");
    assert_eq!(recv_event_json(&mut raw, "message")["text"], "acked");

    // Events wschat has no use for are ignored; a non-text message gets a notice.
    send_text(&mut sio, r#"42["typing",true]"#);
    send_text(&mut sio, r#"42["message",{"text":"x"}]"#);
    let notice = recv_event(&mut sio, "notice");
    assert_eq!(notice[0]["code"], "usage");

    // DISCONNECT of the namespace: the room sees the leave, the connection stays, and a new
    // CONNECT enters again.
    send_text(&mut sio, "41");
    assert_eq!(recv_event_json(&mut raw, "leave")["info"], "sio leaves.");
    send_text(&mut sio, "40");
    assert!(recv_text(&mut sio).starts_with("40{"));
    recv_event(&mut sio, "enter");
    assert_eq!(recv_event_json(&mut raw, "enter")["name"], "sio");
    // Engine.IO close: the connection ends, the room sees the leave.
    send_text(&mut sio, "1");
    assert_eq!(recv_close(&mut sio).map(|f| u16::from(f.code)), Some(1000));
    assert_eq!(recv_event_json(&mut raw, "leave")["name"], "sio");
}

/// `common::recv_event` for raw clients, under a name that does not clash.
fn recv_event_json(ws: &mut Ws, kind: &str) -> Value {
    common::recv_event(ws, kind)
}

#[test]
fn history_commands_and_rooms_in_socketio_form() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut raw, _) = join(addr, "raw");
    send_text(&mut raw, "said earlier");
    recv_event_json(&mut raw, "message");

    // The newcomer's history replay comes in its own format.
    let (mut sio, _) = sio_join(addr, "username=sio");
    let replay = recv_event(&mut sio, "message");
    assert_eq!(replay[0], "raw: said earlier");
    assert_eq!(replay[1]["history"], true);

    // Commands typed through socket.io work the same.
    emit(&mut sio, "message", "/me waves");
    let action = recv_event(&mut sio, "message");
    assert_eq!(action[0], "* sio waves");
    assert_eq!(action[1]["event"], "action");
    assert_eq!(recv_event_json(&mut raw, "action")["text"], "waves");
    emit(&mut sio, "message", "/who");
    let who = recv_event(&mut sio, "notice");
    assert_eq!(who[0]["users"], json!(["raw", "sio"]));
    emit(&mut sio, "message", "/msg raw psst");
    assert_eq!(recv_event(&mut sio, "private")[0]["text"], "psst");
    assert_eq!(recv_event_json(&mut raw, "private")["from"], "sio");
    emit(&mut sio, "message", "/nick sioux");
    assert_eq!(recv_event(&mut sio, "rename")[0]["name"], "sioux");
    assert_eq!(recv_event_json(&mut raw, "rename")["old"], "sio");

    // A room from the query: the lobby does not hear it.
    let (mut pi, enter) = sio_join(addr, "username=pat&room=pi-club");
    assert_eq!(enter[1]["room"], "pi-club");
    // A name and room from the CONNECT's auth payload win over the query.
    let mut ann = connect(addr, &format!("{V4}&username=ignored"));
    recv_open(&mut ann);
    send_text(&mut ann, r#"40{"username":"ann","room":"pi-club"}"#);
    recv_text(&mut ann);
    assert_eq!(
        recv_event(&mut ann, "enter")[1]["users"],
        json!(["pat", "ann"])
    );
    assert_eq!(recv_event(&mut pi, "enter")[0], "ann comes in !!!");
    emit(&mut ann, "message", "pi only");
    assert_eq!(recv_event(&mut pi, "message")[0], "ann: pi only");
    // Nothing from pi-club reached the lobby: its clients' next message is the lobby's own.
    send_text(&mut raw, "lobby marker");
    loop {
        let v = recv_json(&mut raw);
        assert_ne!(v["room"], "pi-club", "{v}");
        if v["text"] == "lobby marker" {
            break;
        }
    }
    assert_eq!(recv_event(&mut sio, "message")[0], "raw: lobby marker");
}

#[test]
fn the_rate_limit_applies_to_socketio_messages() {
    let config = Config {
        rate_limit_per_sec: 1,
        rate_burst: 2,
        ..test_config()
    };
    let server = start(config);
    let (mut sio, _) = sio_join(server.local_addr(), "username=fast");
    for i in 0..3 {
        emit(&mut sio, "message", &format!("m{i}"));
    }
    assert_eq!(recv_event(&mut sio, "message")[0], "fast: m0");
    assert_eq!(recv_event(&mut sio, "message")[0], "fast: m1");
    assert_eq!(recv_event(&mut sio, "notice")[0]["code"], "rate-limited");

    // Messages that are not text count too: their usage notices cannot be had without limit.
    let (mut other, _) = sio_join(server.local_addr(), "username=odd");
    for _ in 0..3 {
        send_text(&mut other, r#"42["message",5]"#);
    }
    let codes: Vec<Value> = (0..3)
        .map(|_| recv_event(&mut other, "notice")[0]["code"].clone())
        .collect();
    assert_eq!(
        codes,
        [json!("usage"), json!("usage"), json!("rate-limited")]
    );
}

/// A raw socket client that completes the v5 handshake and reads its own enter line; nothing
/// answers its pings unless the test does.
fn raw_sio_join(addr: SocketAddr, name: &str) -> TcpStream {
    let (mut stream, _) = raw_upgrade(addr, &format!("{V4}&username={name}"));
    let (_, open) = read_raw_frame(&mut stream);
    assert_eq!(open[0], b'0');
    stream.write_all(&client_frame(0x81, b"40", true)).unwrap();
    let (_, answer) = read_raw_frame(&mut stream);
    assert!(answer.starts_with(b"40{"), "{answer:?}");
    let (_, enter) = read_raw_frame(&mut stream);
    assert!(enter.starts_with(b"42[\"enter\""), "{enter:?}");
    stream
}

#[test]
fn v4_server_pings_and_a_client_that_never_pongs_is_dropped() {
    let config = Config {
        ping_interval: Duration::from_secs(1),
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let mut silent = raw_sio_join(addr, "silent");
    let mut live = raw_sio_join(addr, "live");
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    live.set_read_timeout(Some(Duration::from_secs(5))).unwrap();

    // Every ping interval the server sends the Engine.IO ping `2`, never a WebSocket Ping. The
    // live client answers `3` to each: it is still there after the 2 s idle timeout, and it
    // sees the silent one leave.
    let start = Instant::now();
    let mut pongs = 0;
    loop {
        let (first, payload) = read_raw_frame(&mut live);
        assert_ne!(first & 0x0f, 0x9, "no WebSocket Ping for socket.io clients");
        if (first, payload.as_slice()) == (0x81, b"2") {
            live.write_all(&client_frame(0x81, b"3", true)).unwrap();
            pongs += 1;
        }
        if payload.starts_with(br#"42["leave","silent leaves."#) {
            break;
        }
    }
    assert!(pongs >= 1, "the live client was pinged");
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    // The silent client was pinged, then closed with 1001 at its idle timeout.
    let mut got_ping = false;
    let code = loop {
        let (first, payload) = read_raw_frame(&mut silent);
        got_ping |= (first, payload.as_slice()) == (0x81, b"2");
        if first & 0x0f == 0x8 {
            break u16::from_be_bytes([payload[0], payload[1]]);
        }
    };
    assert!(got_ping, "the silent client was pinged");
    assert_eq!(code, 1001);
    // Answering pings kept the live client in: it outlives another idle timeout and chats.
    while start.elapsed() < Duration::from_millis(4500) {
        let (first, payload) = read_raw_frame(&mut live);
        if (first, payload.as_slice()) == (0x81, b"2") {
            live.write_all(&client_frame(0x81, b"3", true)).unwrap();
        }
    }
    live.write_all(&client_frame(0x81, br#"42["message","alive"]"#, true))
        .unwrap();
    loop {
        let (first, payload) = read_raw_frame(&mut live);
        assert_ne!(first & 0x0f, 0x8, "the live client was closed");
        if payload.starts_with(br#"42["message","live: alive""#) {
            break;
        }
    }
}

/// Connects a v4 client into the chat, sends `bytes` and returns the close code it gets.
fn close_code_after(addr: SocketAddr, connect_first: bool, bytes: &[u8]) -> Option<u16> {
    let (mut stream, _) = raw_upgrade(addr, &format!("{V4}&username=bad"));
    read_raw_frame(&mut stream); // the open packet
    if connect_first {
        stream.write_all(&client_frame(0x81, b"40", true)).unwrap();
    }
    stream.write_all(bytes).unwrap();
    read_raw_close(&mut stream)
}

#[test]
fn malformed_packets_close_only_that_client() {
    let config = Config {
        max_message_bytes: 256,
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let (mut watcher, _) = join(addr, "watcher");
    let text = |s: &str| client_frame(0x81, s.as_bytes(), true);
    for (connect_first, bytes, code, what) in [
        (true, text("42{}"), 1002, "an event that is not an array"),
        (true, text(r#"42["message","x""#), 1002, "bad JSON"),
        (true, text("4"), 1002, "an empty Socket.IO packet"),
        (true, text("9"), 1002, "an unknown Engine.IO type"),
        (true, text("2"), 1002, "a v3 ping on EIO=4"),
        (true, text("40"), 1002, "a second CONNECT"),
        (
            false,
            text(r#"42["message","x"]"#),
            1002,
            "an event before CONNECT",
        ),
        (
            true,
            text(r#"451-["message",{"_placeholder":true,"num":0}]"#),
            1003,
            "attachments",
        ),
        (
            true,
            client_frame(0x82, b"\x04bin", true),
            1003,
            "a binary frame",
        ),
        (
            true,
            text(&format!("42[\"message\",\"{}\"]", "x".repeat(300))),
            1009,
            "over maxPayload",
        ),
        (true, text("1"), 1000, "Engine.IO close (not an error)"),
    ] {
        assert_eq!(
            close_code_after(addr, connect_first, &bytes),
            Some(code),
            "{what}"
        );
    }
    // Each connected client's enter and leave reached the room, and the room still works.
    send_text(&mut watcher, "still fine");
    let mut seen = Vec::new();
    loop {
        let v = recv_json(&mut watcher);
        if v["text"] == "still fine" {
            break;
        }
        seen.push(v["event"].as_str().unwrap().to_string());
    }
    let enters = seen.iter().filter(|e| *e == "enter").count();
    let leaves = seen.iter().filter(|e| *e == "leave").count();
    assert_eq!((enters, leaves), (10, 10), "{seen:?}");
}

#[test]
fn a_panicking_socketio_reader_ends_only_its_connection() {
    let config = Config {
        panic_on_message: Some("trigger the fault".into()),
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let (mut raw, _) = join(addr, "raw");
    let (mut sio, _) = sio_join(addr, "username=doomed");
    recv_event_json(&mut raw, "enter");
    emit(&mut sio, "message", "trigger the fault");
    assert_eq!(recv_close(&mut sio).map(|f| u16::from(f.code)), Some(1011));
    assert_eq!(recv_event_json(&mut raw, "leave")["name"], "doomed");
    send_text(&mut raw, "still here");
    assert_eq!(recv_event_json(&mut raw, "message")["text"], "still here");
}
