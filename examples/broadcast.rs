//! Step 3 of the wschat tutorial (TUTORIAL.md): a broadcast chat room, wschat's shape in small.
//!
//! What it teaches: many clients, one writer per socket. main accepts; a reader thread per client
//! does the handshake, then only reads, sending `Event`s down a channel; ONE broadcaster thread
//! owns every write half, names clients user1, user2... and writes each JSON line to all. The
//! real wschat (src/listener.rs, src/reader/, src/broadcaster.rs, src/chat/, src/outbox/) adds
//! heartbeats, limits, and a broadcaster that never blocks (a backlog per client; too big or
//! too old: dropped). Here a client that stops reading stalls the room. Run: `cargo run --example broadcast` (port 3003).

use crossbeam_channel::{Receiver, Sender};
use std::io::{self, Read, Write};
use std::{collections::HashMap, env, net::*, thread};
use tungstenite::protocol::{frame::coding::*, frame::Frame, Role};
use tungstenite::{accept, Message, WebSocket};

enum Event {
    Join(u64, TcpStream), // the handshake is done: here is this client's write half
    Text(u64, String),    // the client said something
    Reply(u64, Vec<u8>),  // frames for this client alone: tungstenite's Pong and Close replies
    Leave(u64),           // the reader has ended
}

fn main() -> io::Result<()> {
    let port = env::args().nth(1).or(env::var("PORT").ok());
    let bind = env::var("BIND").unwrap_or("127.0.0.1".into()); // see echo.rs
    let listener = TcpListener::bind(format!("{bind}:{}", port.as_deref().unwrap_or("3003")))?;
    println!("listening on {}", listener.local_addr()?);
    let (events, inbox) = crossbeam_channel::bounded(1024); // full: readers wait for room
    thread::spawn(move || broadcaster(inbox));
    for (id, stream) in (1..).zip(listener.incoming().flatten()) {
        let events = events.clone();
        thread::spawn(move || reader(id, stream, events));
    }
    Ok(())
}

fn reader(id: u64, stream: TcpStream, events: Sender<Event>) -> Option<()> {
    let stream = accept(stream).ok()?.into_inner(); // the 101: ours to write until Join
    let writer = stream.try_clone().ok()?;
    events.send(Event::Join(id, writer)).ok()?;
    let mut ws =
        WebSocket::from_raw_socket(ReadHalf(stream, id, events.clone()), Role::Server, None);
    while let Ok(message) = ws.read() {
        if let Message::Text(text) = message {
            events.send(Event::Text(id, text.to_string())).ok()?;
        }
    }
    events.send(Event::Leave(id)).ok() // after a Close, read() sends the reply and fails
}

/// Why one writer: a frame may take several write() calls; two threads writing one socket can
/// interleave bytes into garbage. So tungstenite's automatic replies (a Pong, the Close echo),
/// which read() writes, go to the broadcaster.
struct ReadHalf(TcpStream, u64, Sender<Event>);
impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.2.send(Event::Reply(self.1, buf.to_vec()));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Owns the clients. Each reader's events come in order (Join first), so `clients[&id]` exists.
fn broadcaster(inbox: Receiver<Event>) {
    let (mut clients, mut joined) = (HashMap::new(), 0);
    for event in inbox {
        let (kind, info) = match event {
            Event::Join(id, stream) => {
                joined += 1;
                clients.insert(id, (format!("user{joined}"), stream));
                (0, format!("user{joined} comes in !!!"))
            }
            Event::Text(id, text) => (1, format!("{}: {}", clients[&id].0, escape(&text))),
            Event::Reply(id, bytes) => {
                let _ = clients.get_mut(&id).unwrap().1.write_all(&bytes);
                continue;
            }
            Event::Leave(id) => (2, format!("{} leaves.", clients.remove(&id).unwrap().0)),
        };
        let json = format!(r#"{{"type":{kind},"info":{}}}"#, serde_json::json!(info));
        let mut frame = Vec::new(); // encoded once: server frames are unmasked, the same for all
        let _ = Frame::message(json, OpCode::Data(Data::Text), true).format(&mut frame);
        for (_, stream) in clients.values_mut() {
            let _ = stream.write_all(&frame); // blocks while this client's socket buffer is full
        }
    }
}

/// The classic page shows `info` with innerHTML: escaped, "<img onerror=…>" shows, not runs.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;") // in text, only & and < start markup
}
