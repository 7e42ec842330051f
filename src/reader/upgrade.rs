//! The WebSocket that upgrades a long-polling session: opened with the session's sid, it
//! probes (`2probe`, answered `3probe` by the broadcaster, which releases the pending GET
//! with a noop), then `5` moves the session onto it, and from then on this thread reads it as
//! any socket.io WebSocket's reader does. Owns that connection's read side; never writes to it.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;

use crossbeam_channel::Sender;
use tungstenite::Message;

use super::handshake::Route;
use super::polling::{lock, SessionRef};
use super::{drop_reason, finish, read_loop, websocket, LeaveGuard};
use crate::config::Config;
use crate::event::Event;
use crate::platform;

/// A WebSocket opened with a polling session's sid: `2probe` is answered (by the
/// broadcaster) with `3probe`, then `5` moves the session here, and this thread reads it as
/// any socket.io WebSocket's reader does. Anything else first ends this connection alone.
#[inline(never)]
pub(super) fn serve(
    stream: Arc<TcpStream>,
    entry: SessionRef,
    config: &Config,
    events: &Sender<Event>,
) {
    let _ = stream.set_read_timeout(Some(config.idle_timeout()));
    let mut ws = websocket(&stream, config.max_message_bytes);
    let id = lock(&entry.0).id();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == "2probe" => {
                let probe = Event::Probe {
                    id,
                    stream: stream.clone(),
                };
                if events.send(probe).is_err() {
                    return;
                }
            }
            Ok(Message::Text(t)) if t.as_str() == "5" => break,
            Ok(Message::Pong(_)) => {}
            _ => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
    let Some((session, limiter)) = lock(&entry.0).upgrade(config) else {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    };
    if events.send(Event::Upgrade { id }).is_err() {
        return;
    }
    let mut guard = LeaveGuard {
        id,
        events,
        joined: true,
        reason: String::new(),
        dropped: None,
    };
    platform::release_unused_stack();
    let mut route = Route::SocketIo(session);
    let end = read_loop(id, &mut ws, &mut route, limiter, config, events);
    guard.dropped = drop_reason(&end);
    guard.reason = finish(id, end, &stream, events);
}
