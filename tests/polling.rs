//! socket.io over HTTP long-polling, spoken request by request on raw sockets (no Node
//! needed): the handshake and payloads of both Engine.IO versions (lengths with emoji), the
//! heartbeats, the session errors, a silent session's leave, CORS and the preflight, and the
//! upgrade to a WebSocket with a line in flight. The real socket.io-client packages are driven
//! by tests/socketio/run.mjs.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tungstenite::Message;
use wschat::Config;

/// One kept-alive HTTP connection.
struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response: status, head (lower-cased header names kept as sent), body.
struct Resp {
    status: u16,
    head: String,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

impl Http {
    fn new(addr: SocketAddr) -> Http {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Http {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        self.stream.write_all(head.as_bytes()).unwrap();
        self.stream.write_all(body).unwrap();
    }

    /// Reads one response (Content-Length framed); `None` when the connection ends first.
    fn read(&mut self) -> Option<Resp> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = String::from_utf8(self.buf[..end].to_vec()).unwrap();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if self.buf.len() >= end + 4 + len {
                    let body =
                        String::from_utf8(self.buf[end + 4..end + 4 + len].to_vec()).unwrap();
                    self.buf.drain(..end + 4 + len);
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    return Some(Resp { status, head, body });
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn request(&mut self, method: &str, path: &str, headers: &str, body: &[u8]) -> Resp {
        self.send(method, path, headers, body);
        self.read().expect("a response")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A polling client: its sid, its version's query, and a connection for GETs and one for POSTs.
struct Poller {
    addr: SocketAddr,
    q: String,
    get: Http,
    post: Http,
    v3: bool,
    name: String,
}

impl Poller {
    /// Handshakes; returns the client and the open packet's JSON and the other packets.
    fn open(addr: SocketAddr, eio: u8, name: &str) -> (Poller, Value, Vec<String>) {
        let mut get = Http::new(addr);
        let r = get.request(
            "GET",
            &format!("/socket.io/?EIO={eio}&transport=polling&t=a&username={name}"),
            "",
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let packets = decode(eio == 3, &r.body);
        let open: Value = serde_json::from_str(packets[0].strip_prefix('0').unwrap()).unwrap();
        let sid = open["sid"].as_str().unwrap().to_string();
        let q = format!("/socket.io/?EIO={eio}&transport=polling&sid={sid}");
        let poller = Poller {
            addr,
            q,
            get,
            post: Http::new(addr),
            v3: eio == 3,
            name: name.to_string(),
        };
        (poller, open, packets[1..].to_vec())
    }

    fn sid(&self) -> &str {
        self.q.rsplit('=').next().unwrap()
    }

    fn post(&mut self, packets: &[&str]) -> Resp {
        let body = encode(self.v3, packets);
        let q = self.q.clone();
        self.post.request(
            "POST",
            &q,
            "Content-Type: text/plain;charset=UTF-8\r\n",
            body.as_bytes(),
        )
    }

    fn poll(&mut self) -> Vec<String> {
        let q = self.q.clone();
        let r = self.get.request("GET", &q, "", b"");
        assert_eq!(r.status, 200, "{}", r.body);
        decode(self.v3, &r.body)
    }

    /// Polls until a `42["name",text,{…}]` event about someone else arrives; returns its
    /// object. v4 pings are answered.
    fn event(&mut self, name: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no {name} event");
            for p in self.poll() {
                if p == "2" {
                    self.post(&["3"]);
                }
                if let Some(args) = p.strip_prefix("42") {
                    let mut args: Vec<Value> = serde_json::from_str(args).unwrap();
                    if args[0] == name && args[2]["name"] != self.name {
                        return args.remove(2);
                    }
                }
            }
        }
    }
}

/// Splits a payload: `\x1e` (v4) or `<UTF-16 length>:<packet>` (v3).
fn decode(v3: bool, body: &str) -> Vec<String> {
    if !v3 {
        return body.split('\x1e').map(str::to_string).collect();
    }
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (len, after) = rest.split_once(':').unwrap();
        let units: usize = len.parse().unwrap();
        let (mut taken, mut end) = (0, 0);
        for ch in after.chars() {
            if taken == units {
                break;
            }
            taken += ch.len_utf16();
            end += ch.len_utf8();
        }
        assert_eq!(taken, units, "length {units} in {body:?}");
        out.push(after[..end].to_string());
        rest = &after[end..];
    }
    out
}

fn encode(v3: bool, packets: &[&str]) -> String {
    if !v3 {
        return packets.join("\x1e");
    }
    packets
        .iter()
        .map(|p| format!("{}:{p}", p.encode_utf16().count()))
        .collect()
}

/// Reads a raw client's events until a chat line from someone else; returns its `info`.
fn raw_line(ws: &mut Ws) -> String {
    let me = "bob";
    loop {
        let line = recv_event(ws, "message");
        if line["name"] != me && line["name"] != "watcher" {
            return line["info"].as_str().unwrap().to_string();
        }
    }
}

#[test]
fn v4_polling_chats_with_a_raw_client_on_kept_alive_connections() {
    let server = start(Config {
        max_message_bytes: 2048,
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut ann, open, rest) = Poller::open(addr, 4, "ann");
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["maxPayload"], 2048);
    assert!(
        open["pingInterval"].is_u64() && open["pingTimeout"].is_u64(),
        "{open}"
    );
    assert!(
        rest.is_empty(),
        "EIO=4: the client connects the namespace: {rest:?}"
    );
    assert_eq!(ann.post(&["40"]).body, "ok");
    let first = ann.poll();
    assert!(first[0].starts_with("40{\"sid\":"), "{first:?}");
    assert!(first.iter().any(|p| p.contains("\"welcome\"")), "{first:?}");

    let (mut bob, _) = join(addr, "bob");
    assert_eq!(ann.event("enter")["name"], "bob");
    // Two packets in one POST, both lines reach bob in order.
    assert_eq!(
        ann.post(&[r#"42["message","one 😀"]"#, r#"42["message","two"]"#])
            .body,
        "ok"
    );
    assert_eq!(raw_line(&mut bob), "ann: one 😀");
    assert_eq!(raw_line(&mut bob), "ann: two");
    send_text(&mut bob, "hi ann");
    assert_eq!(ann.event("message")["info"], "bob: hi ann");
    // Every GET and every POST went over one kept-alive connection each.
}

#[test]
fn v3_payloads_count_utf16_units_and_the_client_pings() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut al, open, rest) = Poller::open(addr, 3, "al");
    assert!(open.get("maxPayload").is_none(), "{open}");
    assert_eq!(rest, ["40"], "EIO=3: the CONNECT follows the open packet");
    let (mut bob, _) = join(addr, "bob");
    assert_eq!(al.event("enter")["name"], "bob");
    // A v3 client pings by POST; the pong completes the GET.
    assert_eq!(al.post(&["2"]).body, "ok");
    assert!(al.poll().contains(&"3".to_string()));
    send_text(&mut bob, "😀é");
    // decode() checks every length against the UTF-16 count.
    assert_eq!(al.event("message")["info"], "bob: 😀é");
    // A length written in UTF-16 units, an emoji counting 2.
    let body = r#"19:42["message","x😀"]"#;
    assert_eq!(r#"42["message","x😀"]"#.encode_utf16().count(), 19);
    let q = al.q.clone();
    assert_eq!(al.post.request("POST", &q, "", body.as_bytes()).body, "ok");
    assert_eq!(raw_line(&mut bob), "al: x😀");
}

#[test]
fn bad_requests_end_only_their_session() {
    let server = start(Config {
        handshake_timeout: Duration::from_millis(500),
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut watcher, _) = join(addr, "watcher");

    // An unknown sid.
    let r = Http::new(addr).request(
        "GET",
        "/socket.io/?EIO=4&transport=polling&sid=nope",
        "",
        b"",
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (400, r#"{"code":1,"message":"Session ID unknown"}"#)
    );
    // A wrong method, a POST without a session, a bad EIO.
    let r = Http::new(addr).request("PUT", "/socket.io/?EIO=4&transport=polling&sid=x", "", b"");
    assert_eq!(r.status, 405);
    let r = Http::new(addr).request("POST", "/socket.io/?EIO=4&transport=polling", "", b"40");
    assert_eq!(r.status, 400);
    let r = Http::new(addr).request("GET", "/socket.io/?EIO=9&transport=polling", "", b"");
    assert_eq!(r.status, 400);

    type Breaker = fn(&mut Poller) -> u16;
    let breakers: [(&str, Breaker); 6] = [
        ("a malformed payload", |p| {
            p.post(&["42[\"message\""]).status
        }),
        ("a wrong v4 framing", |p| p.post(&["40", ""]).status),
        ("a huge body", |p| {
            let big = format!("42[\"message\",\"{}\"]", "x".repeat(200_000));
            p.post(&[&big]).status
        }),
        ("a packet over the message limit", |p| {
            let big = format!("42[\"message\",\"{}\"]", "x".repeat(5000));
            p.post(&[&big]).status
        }),
        ("a dribbled body", |p| {
            let q = p.q.clone();
            let head = format!("POST {q} HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n42");
            p.post.stream.write_all(head.as_bytes()).unwrap();
            p.post.read().unwrap().status
        }),
        ("an overlapping GET", |p| {
            let q = p.q.clone();
            p.get.send("GET", &q, "", b"");
            std::thread::sleep(Duration::from_millis(100));
            let second = Http::new(p.addr).request("GET", &q, "", b"").status;
            let first = p.get.read().expect("the pending GET is answered");
            assert_eq!(first.body, "1", "the pending GET gets the close packet");
            second
        }),
    ];
    for (what, break_it) in breakers {
        let (mut p, _, _) = Poller::open(addr, 4, "victim");
        p.post(&["40"]);
        assert_eq!(watcher_enter(&mut watcher), "victim", "{what}");
        p.poll(); // the CONNECT answer and the welcome: the next GET waits
        let status = break_it(&mut p);
        assert!([400, 408, 413].contains(&status), "{what}: {status}");
        if what == "a huge body" || what == "a packet over the message limit" {
            assert_eq!(status, 413, "{what}");
        }
        if what == "a dribbled body" {
            assert_eq!(status, 408, "{what}");
        }
        assert_eq!(
            recv_event(&mut watcher, "leave")["name"],
            "victim",
            "{what}"
        );
        // The session is gone: its sid is unknown.
        let q = p.q.clone();
        let r = Http::new(addr).request("GET", &q, "", b"");
        assert_eq!(r.status, 400, "{what}");
        assert!(r.body.contains("Session ID unknown"), "{what}: {}", r.body);
    }
    // The server goes on.
    let (mut p, _, _) = Poller::open(addr, 4, "fine");
    p.post(&["40", r#"42["message","still here"]"#]);
    assert_eq!(raw_line(&mut watcher), "fine: still here");
}

/// Like `recv_event`, with its deadline checked on every frame (Pings included: with a short
/// ping interval they never stop).
fn event_within(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {kind} event in time");
        if let Message::Text(t) = ws.read().expect("a frame") {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["event"] == kind {
                return v;
            }
        }
    }
}

fn watcher_enter(ws: &mut Ws) -> String {
    recv_event(ws, "enter")["name"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_silent_session_times_out_and_its_leave_is_announced() {
    let server = start(Config {
        ping_interval: Duration::from_millis(300),
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut watcher, _) = join(addr, "watcher");
    let (mut p, open, _) = Poller::open(addr, 4, "quiet");
    assert_eq!(open["pingInterval"], 300);
    p.post(&["40"]);
    assert_eq!(event_within(&mut watcher, "enter")["name"], "quiet");
    let started = Instant::now();
    // No more requests: after pingInterval + pingTimeout (0.6 s) the session ends.
    let leave = event_within(&mut watcher, "leave");
    assert_eq!(leave["name"], "quiet");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let r = Http::new(addr).request("GET", &p.q.clone(), "", b"");
    assert!(r.body.contains("Session ID unknown"), "{}", r.body);

    // A session that keeps polling and answering pings stays.
    let (mut live, _, _) = Poller::open(addr, 4, "live");
    live.post(&["40"]);
    assert_eq!(event_within(&mut watcher, "enter")["name"], "live");
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        for packet in live.poll() {
            if packet == "2" {
                live.post(&["3"]);
            }
        }
    }
    // (The raw watcher, not read meanwhile, missed its Pongs; a newcomer speaks.)
    let (mut late, _) = join(addr, "late");
    send_text(&mut late, "still there?");
    assert_eq!(live.event("message")["info"], "late: still there?");
}

#[test]
fn cors_echoes_the_origin_answers_preflights_and_honours_allow_origin() {
    let server = start(Config {
        allow_origins: vec!["http://page.test".into()],
        ..test_config()
    });
    let addr = server.local_addr();
    let path = "/socket.io/?EIO=4&transport=polling&t=1";
    let r = Http::new(addr).request("GET", path, "Origin: http://page.test\r\n", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://page.test")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    let r = Http::new(addr).request(
        "OPTIONS",
        path,
        "Origin: http://page.test\r\nAccess-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: content-type\r\n",
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://page.test")
    );
    assert!(r
        .header("access-control-allow-methods")
        .unwrap()
        .contains("POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("content-type")
    );
    let r = Http::new(addr).request("GET", path, "Origin: http://evil.test\r\n", b"");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("origin http://evil.test is not allowed"),
        "{}",
        r.body
    );

    // Without --allow-origin, a same-origin request (no Origin) gets no CORS headers.
    let open = start_default();
    let r = Http::new(open.local_addr()).request("GET", path, "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[test]
fn the_upgrade_loses_nothing_and_keeps_the_order() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut bob, _) = join(addr, "bob");
    let (mut ann, _, _) = Poller::open(addr, 4, "ann");
    ann.post(&["40"]);
    recv_event(&mut bob, "enter");
    ann.poll(); // the CONNECT answer and the welcome

    // A GET is pending when the WebSocket probes.
    let q = ann.q.clone();
    ann.get.send("GET", &q, "", b"");
    std::thread::sleep(Duration::from_millis(50));
    let ws_path = format!("/socket.io/?EIO=4&transport=websocket&sid={}", ann.sid());
    let mut ws = connect(addr, &ws_path);
    send_text(&mut bob, "before the probe");
    send_text(&mut ws, "2probe");
    assert_eq!(recv(&mut ws), Message::text("3probe"));
    let mut seen: Vec<String> = Vec::new();
    let released = decode(
        false,
        &ann.get.read().expect("the pending GET is released").body,
    );
    assert!(
        released.contains(&"6".to_string()),
        "released with a noop: {released:?}"
    );
    seen.extend(released);
    // Lines said while the client switches.
    send_text(&mut bob, "during the upgrade");
    std::thread::sleep(Duration::from_millis(50));
    send_text(&mut ws, "5");
    send_text(&mut bob, "after the upgrade");
    let deadline = Instant::now() + WAIT;
    while !seen.iter().any(|p| p.contains("after the upgrade")) {
        assert!(Instant::now() < deadline, "{seen:?}");
        if let Message::Text(t) = recv(&mut ws) {
            seen.push(t.to_string());
        }
    }
    let lines: Vec<&String> = seen
        .iter()
        .filter(|p| p.starts_with("42[\"message\""))
        .collect();
    assert_eq!(lines.len(), 3, "each line exactly once: {seen:?}");
    for (line, text) in lines.iter().zip([
        "before the probe",
        "during the upgrade",
        "after the upgrade",
    ]) {
        assert!(line.contains(text), "in order: {seen:?}");
    }
    // The session goes on over the WebSocket, both ways; polling is refused.
    send_text(&mut ws, r#"42["message","over ws"]"#);
    assert_eq!(raw_line(&mut bob), "ann: over ws");
    let r = Http::new(addr).request("GET", &q, "", b"");
    assert_eq!(r.status, 400);
    // A second upgrade for a sid that is no longer polling.
    let refused = try_connect(addr, &ws_path).expect_err("not polling");
    assert!(
        matches!(refused, tungstenite::Error::Http(ref r) if r.status() == 400),
        "{refused:?}"
    );
    // When the WebSocket closes, the room hears the leave.
    drop(ws);
    assert_eq!(recv_event(&mut bob, "leave")["name"], "ann");
}

#[test]
fn max_clients_counts_sessions_and_one_that_stops_polling_is_dropped_by_its_backlog() {
    let config = Config {
        max_clients: 4,
        max_backlog_bytes: 2000,
        ..test_config()
    };
    let server = start(config);
    let addr = server.local_addr();
    let (mut watcher, _) = join(addr, "watcher");
    let (mut a, _, _) = Poller::open(addr, 4, "a");
    a.post(&["40"]);
    assert_eq!(watcher_enter(&mut watcher), "a");
    a.poll(); // the welcome; from now on, "a" stops polling
    drop((a.get, a.post));
    // Three more sessions make four, each handshake on a connection that then closes (the
    // listener counts connections, the sessions' table counts sessions).
    let handshake = "/socket.io/?EIO=4&transport=polling&t=1";
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            Http::new(addr).request("GET", handshake, "", b"").status,
            200
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    let full = Http::new(addr).request("GET", handshake, "", b"");
    assert_eq!(full.status, 503, "{}", full.body);
    assert!(
        full.body.contains("server full: 4 clients"),
        "{}",
        full.body
    );

    // Lines pile up for "a", which no longer polls: over the backlog limit it is dropped.
    for i in 0..40 {
        send_text(&mut watcher, &format!("line {i} {}", "x".repeat(60)));
    }
    assert_eq!(recv_event(&mut watcher, "leave")["name"], "a");
    let r = Http::new(addr).request("GET", &a.q.clone(), "", b"");
    assert!(r.body.contains("Session ID unknown"), "{}", r.body);
}

#[test]
fn a_kept_alive_polling_connection_may_go_on_with_a_page_request() {
    // Browsers reuse an idle polling connection for the page's other files.
    let server = start(test_config());
    let (mut ann, _, _) = Poller::open(server.local_addr(), 4, "ann");
    assert_eq!(ann.post(&["40"]).body, "ok");
    assert!(ann.poll()[0].starts_with("40{"));
    let page = ann.get.request("GET", "/", "", b"");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<html"), "{}", page.body);
    // The session goes on, on the POST connection and a new GET connection.
    ann.get = Http::new(server.local_addr());
    assert_eq!(ann.post(&[r#"42["message","still here"]"#]).body, "ok");
    let (mut bob, _) = join(server.local_addr(), "bob");
    send_text(&mut bob, "hi");
    assert_eq!(ann.event("message")["info"], "bob: hi");
}

#[test]
fn the_rate_limit_goes_on_across_the_upgrade() {
    let server = start(Config {
        rate_limit_per_sec: 1,
        rate_burst: 3,
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut ann, _, _) = Poller::open(addr, 4, "ann");
    ann.post(&["40"]);
    ann.poll();
    // The whole burst, over polling.
    for i in 0..3 {
        let text = format!(r#"42["message","polled {i}"]"#);
        assert_eq!(ann.post(&[&text]).body, "ok");
    }
    let ws_path = format!("/socket.io/?EIO=4&transport=websocket&sid={}", ann.sid());
    let mut ws = connect(addr, &ws_path);
    send_text(&mut ws, "2probe");
    assert_eq!(recv(&mut ws), Message::text("3probe"));
    send_text(&mut ws, "5");
    // The bucket is still empty: a fresh one would let this through.
    send_text(&mut ws, r#"42["message","over the limit"]"#);
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no rate-limited notice");
        if let Message::Text(t) = recv(&mut ws) {
            assert!(!t.contains("ann: over the limit"), "sent: {t}");
            if t.contains("rate-limited") {
                break;
            }
        }
    }
}
