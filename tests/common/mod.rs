//! Helpers shared by the integration tests: a server on 127.0.0.1 with a free port, and real
//! tungstenite clients with timeouts so a broken feature fails a test instead of hanging it.
#![allow(dead_code)] // each test file uses its own subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};
use wschat::{Config, RunningServer, Server};

/// How long a test waits for something that should happen at once.
pub const WAIT: Duration = Duration::from_secs(5);

pub type Ws = WebSocket<TcpStream>;

/// A config for tests: loopback, any free port, no rate limit (tests send fast), and a short
/// shutdown grace (test clients that are not reading never answer the server's Close).
pub fn test_config() -> Config {
    Config {
        bind: [127, 0, 0, 1].into(),
        port: 0,
        rate_limit_per_sec: 0,
        shutdown_grace: Duration::from_millis(300),
        ..Config::default()
    }
}

pub fn start(config: Config) -> RunningServer {
    Server::bind(config).expect("bind").spawn().expect("spawn")
}

pub fn start_default() -> RunningServer {
    start(test_config())
}

/// Opens a WebSocket to `path` (with its query), or returns the handshake error.
pub fn try_connect(addr: SocketAddr, path: &str) -> Result<Ws, tungstenite::Error> {
    let stream = TcpStream::connect(addr).expect("tcp connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let url = format!("ws://{addr}{path}");
    match tungstenite::client(url, stream) {
        Ok((ws, _resp)) => Ok(ws),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("handshake interrupted"),
    }
}

pub fn connect(addr: SocketAddr, path: &str) -> Ws {
    try_connect(addr, path).expect("websocket handshake")
}

/// Connects to the chat as `name` and reads its own join line; returns the client and the
/// name the server gave it.
pub fn join(addr: SocketAddr, name: &str) -> (Ws, String) {
    let mut ws = connect(addr, &format!("/?name={name}"));
    let enter = recv_json(&mut ws);
    assert_eq!(enter["type"], 0, "first frame is the join line: {enter}");
    let given = enter["name"].as_str().unwrap().to_string();
    (ws, given)
}

/// The next data message (Pings are answered by tungstenite and skipped).
pub fn recv(ws: &mut Ws) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Ping(_)) | Ok(Message::Pong(_)) => continue,
            Ok(m) => return m,
            Err(e) => panic!("expected a message, got {e}"),
        }
    }
}

/// The next text message, parsed as JSON.
pub fn recv_json(ws: &mut Ws) -> Value {
    match recv(ws) {
        Message::Text(t) => serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Reads JSON events until one has `event == kind`; returns it.
pub fn recv_event(ws: &mut Ws, kind: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no {kind} event in time");
        let v = recv_json(ws);
        if v["event"] == kind {
            return v;
        }
    }
}

/// Reads until the server's Close frame; returns it (the connection is then over).
pub fn recv_close(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return frame,
            Ok(_) => continue,
            Err(e) => panic!("expected a Close frame, got {e}"),
        }
    }
}

pub fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).expect("send");
}

/// Sends raw bytes as an HTTP request and returns the whole response (the server closes).
pub fn http_raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain GET; returns the status code, the response head, and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let resp = http_raw(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// Polls `cond` until it holds or `WAIT` passes.
pub fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
