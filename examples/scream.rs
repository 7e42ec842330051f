//! Step 2 of the wschat tutorial (TUTORIAL.md): the "scream" server.
//!
//! What it teaches: the echo server with two additions. Each text message is transformed
//! ("hi" becomes "HI!!!"), and every event of a connection is printed, as the `console.log`
//! calls of the Node tutorial do: a new connection, a text, a close (with the code and reason
//! the client sent) and an error. The `// Node:` comments name the nodejs-websocket call each
//! part replaces. It also shows a server closing a connection itself: a binary message gets
//! Close 1003 ("unsupported data"), because screaming needs text.
//!
//! Run: `cargo run --example scream` (port 3002; or `-- 4002`, or `PORT=4002`), then open
//! `www/scream.html`. It binds 127.0.0.1: see `echo.rs` for why, and for `BIND=0.0.0.0`.

use std::net::{TcpListener, TcpStream};
use std::{env, io, thread};

use tungstenite::protocol::frame::{coding::CloseCode, CloseFrame};
use tungstenite::{accept, Error, Message};

fn main() -> io::Result<()> {
    let port = env::args().nth(1).or(env::var("PORT").ok());
    let bind = env::var("BIND").unwrap_or("127.0.0.1".into());
    // Node: ws.createServer(function (conn) { ... }).listen(port)
    let listener = TcpListener::bind(format!("{bind}:{}", port.as_deref().unwrap_or("3002")))?;
    println!("listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue }; // e.g. out of file descriptors: keep going
        thread::spawn(move || scream(stream));
    }
    Ok(())
}

/// The classic transformation: "hi" → "HI!!!".
fn shout(text: &str) -> String {
    text.to_uppercase() + "!!!"
}

/// One connection, on its own thread: the body of Node's `createServer` callback.
fn scream(stream: TcpStream) {
    let Ok(peer) = stream.peer_addr() else { return }; // the client is already gone
    let mut ws = match accept(stream) {
        Ok(ws) => ws,
        Err(e) => return println!("{peer} handshake failed: {e}"), // not a WebSocket request
    };
    println!("{peer} new connection");
    loop {
        match ws.read() {
            // Node: conn.on("text", function (str) { ... })
            Ok(Message::Text(text)) => {
                let loud = shout(&text);
                println!("{peer} received {:?}, sending {loud:?}", text.as_str());
                // Node: conn.sendText(str.toUpperCase() + "!!!")
                let _ = ws.send(Message::text(loud)); // a failure shows up in the next read()
            }
            Ok(Message::Binary(bytes)) => {
                println!("{peer} got {} binary bytes: close 1003", bytes.len());
                let _ = ws.close(Some(CloseFrame {
                    code: CloseCode::Unsupported,
                    reason: "scream takes text, not binary".into(),
                })); // and keep reading until the client's Close comes back
            }
            // Node: conn.on("close", function (code, reason) { ... }). tungstenite has queued
            // our reply (same code); the next read() sends it and returns ConnectionClosed.
            Ok(Message::Close(Some(f))) => {
                println!("{peer} close {} {:?}", f.code, f.reason.as_str())
            }
            Ok(Message::Close(None)) => println!("{peer} close (no code)"),
            Ok(_) => {} // Ping or Pong: tungstenite answers Pings by itself
            Err(Error::ConnectionClosed) => return, // the close handshake is complete
            // Node: conn.on("error", function (err) { ... }): the peer vanished without a
            // Close, sent a broken frame or invalid UTF-8, ...
            Err(e) => return println!("{peer} error: {e}"),
        }
    }
}
