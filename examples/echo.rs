//! Step 1 of the wschat tutorial (TUTORIAL.md): an echo server.
//!
//! What it teaches: the whole life of a WebSocket on the server side, with nothing else in the
//! way. A browser (or any client) opens a TCP connection and sends an HTTP request asking to
//! "Upgrade" to WebSocket; `tungstenite::accept` reads that request and answers
//! `101 Switching Protocols`. From then on the same TCP connection carries frames, not HTTP:
//! `read()` returns one whole message (unmasked, fragments joined, Pings answered for us) and
//! `send()` writes one back. Each client gets its own thread, so a second browser tab does not
//! wait for the first one to leave.
//!
//! Run: `cargo run --example echo` (port 3001), or `cargo run --example echo -- 4001`, or
//! `PORT=4001 cargo run --example echo`. Then open `www/echo.html` in a browser.
//!
//! It listens on 127.0.0.1 (this machine only) because it has none of wschat's limits or
//! timeouts. To try it from a phone on your own network: `BIND=0.0.0.0 cargo run --example echo`.

use std::net::{TcpListener, TcpStream};
use std::{env, io, thread};

use tungstenite::{accept, Message};

fn main() -> io::Result<()> {
    // Port 3001 by default: wschat itself uses 3000, so both can run side by side.
    let port = env::args().nth(1).or(env::var("PORT").ok());
    let bind = env::var("BIND").unwrap_or("127.0.0.1".into());
    let listener = TcpListener::bind(format!("{bind}:{}", port.as_deref().unwrap_or("3001")))?;
    // The first line says where we listen (with the real port when asked for port 0).
    println!("listening on {}", listener.local_addr()?);

    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                thread::spawn(move || echo(stream));
            }
            Err(e) => eprintln!("accept failed: {e}"), // e.g. out of file descriptors
        }
    }
    Ok(())
}

/// Serves one client, on its own thread, until it goes away.
fn echo(stream: TcpStream) {
    // 1. The handshake: read the HTTP Upgrade request, answer "101 Switching Protocols".
    let mut ws = match accept(stream) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("handshake failed: {e}");
            return;
        }
    };
    loop {
        // 2. Read one message. This blocks until a whole message has arrived.
        match ws.read() {
            // 3. Write it back, unchanged: text stays text, binary stays binary.
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(message).is_err() {
                    return;
                }
            }
            // Ping, Pong, Close: tungstenite has already queued the reply (a Pong, or our
            // Close); the next read() sends it. After a Close, that read() ends the loop.
            Ok(_) => {}
            // ConnectionClosed after a clean close, or a broken connection.
            Err(_) => return,
        }
    }
}
