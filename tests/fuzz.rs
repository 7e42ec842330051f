//! Thousands of random and mutated handshakes, frame streams and long-polling requests (a
//! real session, then a mutated payload) thrown at a running server:
//! no panic, no thread left behind, and afterwards a normal client still chats. (One test in
//! this file: it counts the whole process's threads and panics.)

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;

const HANDSHAKE_CASES: usize = 3000;
const FRAME_CASES: usize = 2000;
const POLLING_CASES: usize = 800;
const WORKERS: usize = 8;

/// xorshift64*: a small, seeded generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Up to `max - 1` random bytes.
    fn bytes_below(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Flips, inserts, deletes, duplicates or truncates bytes of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        if out.is_empty() {
            out.push(rng.next() as u8);
            continue;
        }
        let at = rng.below(out.len());
        match rng.below(6) {
            0 => out[at] ^= 1 << rng.below(8),
            1 => out[at] = rng.next() as u8,
            2 => out.insert(at, rng.next() as u8),
            3 => {
                out.remove(at);
            }
            4 => {
                let end = (at + rng.below(16)).min(out.len());
                let chunk = out[at..end].to_vec();
                out.splice(at..at, chunk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

const PATHS: &[&str] = &[
    "/",
    "/echo",
    "/scream",
    "/?name=%00",
    "/?name=a&room=%ff",
    "/?room=",
    "/x",
    "/%2e%2e/",
    "/?name=",
    "//",
    "/echo?",
    "/?name=%zz",
];

fn handshake_case(rng: &mut Rng) -> Vec<u8> {
    let path = *rng.pick(PATHS);
    let valid = upgrade_request(path, "Origin: http://x\r\n").into_bytes();
    match rng.below(5) {
        0 => rng.bytes_below(600),
        1 => format!(
            "GET {} HTTP/1.1\r\n\r\n",
            String::from_utf8_lossy(&rng.bytes(40))
        )
        .into_bytes(),
        2 => {
            let mut big = valid.clone();
            let at = big.len() - 2;
            let junk = format!("X-Junk: {}\r\n", "j".repeat(rng.below(12_000)));
            big.splice(at..at, junk.into_bytes());
            big
        }
        _ => mutate(rng, &valid),
    }
}

/// A masked client frame with random (possibly invalid) first byte, length and payload.
fn random_frame(rng: &mut Rng) -> Vec<u8> {
    let first = match rng.below(4) {
        0 => rng.next() as u8,
        1 => 0x80 | *rng.pick(&[0x1u8, 0x2, 0x8, 0x9, 0xA]),
        2 => *rng.pick(&[0x01u8, 0x00, 0x80]),
        _ => 0x81,
    };
    let payload = match rng.below(4) {
        0 => b"hello".to_vec(),
        1 => "ünïcode ✓".as_bytes().to_vec(),
        2 => rng.bytes_below(300),
        _ => rng.bytes_below(8),
    };
    let mut frame = client_frame(first, &payload, rng.below(10) != 0);
    if rng.below(5) == 0 {
        frame = mutate(rng, &frame);
    }
    frame
}

fn frame_case(rng: &mut Rng) -> (String, Vec<u8>) {
    let path = *rng.pick(&["/", "/echo", "/scream", "/?name=fuzz"]);
    let mut stream = Vec::new();
    for _ in 0..1 + rng.below(6) {
        stream.extend(random_frame(rng));
    }
    if rng.below(4) == 0 {
        stream.extend(rng.bytes_below(200));
    }
    (path.to_string(), stream)
}

/// A long-polling session opened for real, then a mutated POST (or another method) with a
/// mutated payload, a wrong Content-Length now and then.
fn polling_case(addr: SocketAddr, rng: &mut Rng) {
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return;
    };
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let v3 = rng.below(2) == 0;
    let q = format!(
        "/socket.io/?EIO={}&transport=polling",
        if v3 { 3 } else { 4 }
    );
    let _ = tcp.write_all(format!("GET {q} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    let mut got = Vec::new();
    let mut chunk = [0u8; 2048];
    let sid = loop {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
        let text = String::from_utf8_lossy(&got);
        if let Some(at) = text.find("\"sid\":\"") {
            if let Some(sid) = text[at + 7..].split('"').next().filter(|s| s.len() == 16) {
                break sid.to_string();
            }
        }
    };
    let packets = [
        "40",
        r#"42["message","hé 😀"]"#,
        "2",
        "3",
        "1",
        "6",
        "5",
        "41",
    ];
    let mut payload = String::new();
    for _ in 0..1 + rng.below(4) {
        let p = *rng.pick(&packets);
        if v3 {
            payload.push_str(&format!("{}:{p}", p.encode_utf16().count()));
        } else {
            if !payload.is_empty() {
                payload.push('\x1e');
            }
            payload.push_str(p);
        }
    }
    let body = if rng.below(6) == 0 {
        payload.into_bytes()
    } else {
        mutate(rng, payload.as_bytes())
    };
    let method = *rng.pick(&["POST", "POST", "POST", "GET", "PUT", "OPTIONS"]);
    let len = match rng.below(8) {
        0 => body.len() + 1 + rng.below(50),
        1 => body.len().saturating_sub(1),
        _ => body.len(),
    };
    let head =
        format!("{method} {q}&sid={sid} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    if rng.below(8) == 0 {
        request = mutate(rng, &request);
    }
    let _ = tcp.write_all(&request);
    for _ in 0..4 {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Sends `bytes`, reads whatever comes back for a moment, and hangs up.
fn throw(addr: SocketAddr, preamble: Option<&str>, bytes: &[u8]) {
    let Ok(mut tcp) = TcpStream::connect(addr) else {
        return;
    };
    tcp.set_read_timeout(Some(Duration::from_millis(30)))
        .unwrap();
    if let Some(path) = preamble {
        if tcp.write_all(upgrade_request(path, "").as_bytes()).is_err() {
            return;
        }
    }
    let _ = tcp.write_all(bytes);
    let mut sink = [0u8; 4096];
    for _ in 0..4 {
        match tcp.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn random_and_mutated_input_never_panics_or_leaks_threads() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counter = panics.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counter.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));

    let server = start(wschat::Config {
        handshake_timeout: Duration::from_millis(300),
        ping_interval: Duration::from_secs(1),
        max_clients: 4096,
        ..test_config()
    });
    let addr = server.local_addr();
    // Once a round trip has worked, the broadcaster is running: count the idle threads.
    let mut probe = connect(addr, "/echo");
    send_text(&mut probe, "probe");
    recv(&mut probe);
    let probe_threads = process_usage().0;
    drop(probe);
    let idle_threads = probe_threads - 1;
    eventually("the probe's thread ends", || {
        process_usage().0 <= idle_threads
    });

    thread::scope(|s| {
        for w in 0..WORKERS {
            s.spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1));
                for _ in (w..HANDSHAKE_CASES).step_by(WORKERS) {
                    throw(addr, None, &handshake_case(&mut rng));
                }
                for _ in (w..FRAME_CASES).step_by(WORKERS) {
                    let (path, bytes) = frame_case(&mut rng);
                    throw(addr, Some(&path), &bytes);
                }
                for _ in (w..POLLING_CASES).step_by(WORKERS) {
                    polling_case(addr, &mut rng);
                }
            });
        }
    });

    // Every connection thread ends (silent ones at the handshake or ping timeout).
    let mut threads = 0;
    eventually("connection threads end", || {
        threads = process_usage().0;
        threads <= idle_threads
    });
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a thread panicked");
    // A normal client still chats.
    let (mut a, _) = join(addr, "after-the-storm&room=calm");
    send_text(&mut a, "calm");
    assert_eq!(recv_event(&mut a, "message")["text"], "calm");
    eprintln!(
        "{} handshakes, {} frame streams and {} polling requests: no panic, threads back to \
         {threads}",
        HANDSHAKE_CASES, FRAME_CASES, POLLING_CASES
    );
}
