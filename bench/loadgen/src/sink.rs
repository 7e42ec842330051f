//! `wschat-bench sink`: a trivial broadcast "chat server" for measuring the generator itself.
//!
//! One thread, one epoll. Every text frame a client sends becomes `c<N>: <text>` (a plain
//! line, no JSON) and goes to every client, the sender included. All the frames that arrive in
//! one `epoll_wait` round are encoded once into one buffer, and each client gets that buffer
//! with a single `send(2)`: the server's cost per delivery is a share of one system call, far
//! below any real server's, so what tops out first when the generator drives it is the
//! generator.
//!
//! It only speaks to `wschat-bench`: the handshake accepts only the generator's fixed
//! `Sec-WebSocket-Key` (and answers with its RFC 6455 sample accept value).

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::Duration;

use crate::frame::{self, Parsed};
use crate::sys::{self, Epoll, Fd, BROKEN, READABLE, WRITABLE};

/// A client that has this many unsent bytes is not reading: it is dropped.
const MAX_BACKLOG_BYTES: usize = 64 << 20;
const READ_CHUNK_BYTES: usize = 64 * 1024;
const LISTENER: u64 = u64::MAX;

struct Peer {
    fd: Fd,
    upgraded: bool,
    inbuf: Vec<u8>,
    /// `c<N>: `, put before each of this client's messages.
    prefix: Vec<u8>,
    backlog: Vec<u8>,
    backlog_pos: usize,
    want_write: bool,
}

struct Sink {
    epoll: Epoll,
    peers: Vec<Option<Peer>>,
    free: Vec<usize>,
    /// Frames for everyone, built during one round.
    round: Vec<u8>,
    scratch: Vec<u8>,
    chunk: Vec<u8>,
}

/// Serves until killed.
pub fn run(addr: SocketAddr) -> io::Result<()> {
    let listener = sys::listen(addr, 4096)?;
    let mut sink = Sink {
        epoll: Epoll::new(1024)?,
        peers: Vec::new(),
        free: Vec::new(),
        round: Vec::new(),
        scratch: Vec::new(),
        chunk: vec![0; READ_CHUNK_BYTES],
    };
    sink.epoll.add(listener.0, READABLE, LISTENER)?;
    eprintln!("wschat-bench sink listening on {addr}");
    let mut events = Vec::new();
    loop {
        events.clear();
        events.extend(sink.epoll.wait(Duration::from_secs(1))?);
        for &(token, ev) in &events {
            if token == LISTENER {
                sink.accept_all(listener.0);
            } else if ev & (READABLE | BROKEN) != 0 {
                sink.on_readable(token as usize);
            }
            if token != LISTENER && ev & WRITABLE != 0 {
                sink.flush(token as usize);
            }
        }
        sink.broadcast_round();
    }
}

impl Sink {
    fn accept_all(&mut self, listener: i32) {
        loop {
            let fd = match sys::accept(listener) {
                Ok(fd) => fd,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    eprintln!("accept: {e}");
                    return;
                }
            };
            let slot = self.free.pop().unwrap_or_else(|| {
                self.peers.push(None);
                self.peers.len() - 1
            });
            if self.epoll.add(fd.0, READABLE, slot as u64).is_err() {
                self.free.push(slot);
                continue;
            }
            self.peers[slot] = Some(Peer {
                fd,
                upgraded: false,
                inbuf: Vec::new(),
                prefix: format!("c{slot}: ").into_bytes(),
                backlog: Vec::new(),
                backlog_pos: 0,
                want_write: false,
            });
        }
    }

    fn drop_peer(&mut self, slot: usize) {
        if let Some(p) = self.peers[slot].take() {
            let _ = self.epoll.delete(p.fd.0);
            self.free.push(slot);
        }
    }

    fn on_readable(&mut self, slot: usize) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        loop {
            match sys::read(p.fd.0, &mut self.chunk) {
                Ok(0) => return self.drop_peer(slot),
                Ok(n) => {
                    p.inbuf.extend_from_slice(&self.chunk[..n]);
                    if n < self.chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_peer(slot),
            }
        }
        if !p.upgraded {
            let Some(end) = memchr::memmem::find(&p.inbuf, b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&p.inbuf[..end]).to_string();
            if !head.contains(frame::SAMPLE_KEY) {
                let _ = sys::send(p.fd.0, b"HTTP/1.1 400 Bad Request\r\n\r\n");
                return self.drop_peer(slot);
            }
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                frame::SAMPLE_ACCEPT
            );
            p.backlog.extend_from_slice(response.as_bytes());
            p.inbuf.drain(..end + 4);
            p.upgraded = true;
        }
        let mut pos = 0;
        let mut close = false;
        while let Parsed::Frame(f) = frame::parse(&p.inbuf[pos..]) {
            let (start, stop) = (pos + f.header_len, pos + f.total_len());
            if let Some(key) = f.mask {
                frame::apply_mask(&mut p.inbuf[start..stop], key);
            }
            match f.opcode {
                frame::OP_TEXT => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(&p.prefix);
                    self.scratch.extend_from_slice(&p.inbuf[start..stop]);
                    frame::encode_unmasked(&mut self.round, frame::OP_TEXT, &self.scratch);
                }
                frame::OP_PING => {
                    let mut pong = Vec::new();
                    frame::encode_unmasked(&mut pong, frame::OP_PONG, &p.inbuf[start..stop]);
                    p.backlog.extend_from_slice(&pong);
                }
                frame::OP_CLOSE => close = true,
                _ => {}
            }
            pos = stop;
        }
        p.inbuf.drain(..pos);
        if close {
            return self.drop_peer(slot);
        }
        self.flush(slot);
    }

    /// Sends this round's frames to every client: one `send` each.
    fn broadcast_round(&mut self) {
        if self.round.is_empty() {
            return;
        }
        for slot in 0..self.peers.len() {
            let Some(p) = self.peers[slot].as_mut() else {
                continue;
            };
            if !p.upgraded {
                continue;
            }
            if p.backlog_pos == p.backlog.len() {
                match sys::send(p.fd.0, &self.round) {
                    Ok(n) if n == self.round.len() => continue,
                    Ok(n) => {
                        p.backlog.clear();
                        p.backlog_pos = 0;
                        p.backlog.extend_from_slice(&self.round[n..]);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        p.backlog.clear();
                        p.backlog_pos = 0;
                        p.backlog.extend_from_slice(&self.round);
                    }
                    Err(_) => {
                        self.drop_peer(slot);
                        continue;
                    }
                }
            } else {
                p.backlog.extend_from_slice(&self.round);
            }
            self.flush(slot);
        }
        self.round.clear();
    }

    fn flush(&mut self, slot: usize) {
        let Some(p) = self.peers[slot].as_mut() else {
            return;
        };
        while p.backlog_pos < p.backlog.len() {
            match sys::send(p.fd.0, &p.backlog[p.backlog_pos..]) {
                Ok(n) => p.backlog_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.drop_peer(slot),
            }
        }
        let unsent = p.backlog.len() - p.backlog_pos;
        if unsent == 0 {
            p.backlog.clear();
            p.backlog_pos = 0;
        } else if unsent > MAX_BACKLOG_BYTES {
            return self.drop_peer(slot);
        }
        let want_write = unsent > 0;
        if want_write != p.want_write {
            p.want_write = want_write;
            let _ = self.epoll.watch(p.fd.0, slot as u64, want_write);
        }
    }
}
