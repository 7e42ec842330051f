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
    if let Ok(level) = std::env::var("WSCHAT_TEST_LOG") {
        let _ = simple_logger::SimpleLogger::new()
            .with_level(level.parse().unwrap_or(log::LevelFilter::Info))
            .init();
    }
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

/// Reads until the server's Close frame and sends the reply, as a browser does; returns it.
pub fn recv_close(ws: &mut Ws) -> Option<CloseFrame> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => {
                let _ = ws.flush(); // tungstenite queued the reply Close; send it now
                return frame;
            }
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

/// A WebSocket upgrade request for `path`; `extra_headers` are whole lines ending in CRLF.
pub fn upgrade_request(path: &str, extra_headers: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         {extra_headers}\r\n"
    )
}

/// Opens a WebSocket by hand (a raw socket, for sending frames tungstenite would refuse to
/// send). Returns the socket just after the server's 101 response, and that response.
pub fn raw_upgrade(addr: SocketAddr, path: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(upgrade_request(path, "").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            stream.read(&mut byte).unwrap(),
            1,
            "response head ended early"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (stream, head)
}

/// A client frame: `first` is the whole first byte (FIN, RSV bits, opcode).
pub fn client_frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

/// Reads one server frame from a raw socket: (first byte, payload).
pub fn read_raw_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            stream.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            stream.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (head[0], payload)
}

/// Reads raw frames until a Close; returns its code (None for an empty Close).
pub fn read_raw_close(stream: &mut TcpStream) -> Option<u16> {
    loop {
        let (first, payload) = read_raw_frame(stream);
        if first & 0x0f == 0x8 {
            return (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// Counts of this process's threads and open file descriptors, and its RSS in KiB.
pub fn process_usage() -> (usize, usize, u64) {
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (threads, fds, rss)
}

/// Sends a request and returns the response head only (for 101 responses, where the
/// connection stays open).
pub fn http_head(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Shrinks a socket's receive buffer so the kernel holds little for a client that never
/// reads: its backlog then builds up in the server quickly.
#[cfg(unix)]
pub fn shrink_receive_buffer(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let size: libc::c_int = 4096;
    // SAFETY: a valid socket fd and a pointer to a c_int of the given length.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}
