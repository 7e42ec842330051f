//! The socket.io glue: a socket.io client's reader, between its frames and the chat's events.
//!
//! The codec (`crate::socketio`) says what each text frame means; this turns that into the
//! same events a raw client's lines become (and `Relay` for its own events), plus the replies the client alone gets (the open
//! packet, CONNECT answers, v3 pongs, acknowledgements), which go to the broadcaster as
//! frames like everything else.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Instant, SystemTime};

use crossbeam_channel::Sender;

use super::rate_limit::{flooding, rate_limited, RateLimiter, Verdict};
use super::{reply, End};
use crate::config::Config;
use crate::event::{ConnId, Event};
use crate::socketio::{self, Eio, Session, Step};
use crate::wire::{self, close_code, Opcode};

/// One text frame from a socket.io client: an Engine.IO heartbeat, entering or leaving the
/// chat, or a chat message, which passes the same rate limit as a raw client's. Frames for the
/// client go to the broadcaster as `Send` events; `Err` ends the connection. Kept out of line
/// so its JSON parsing does not deepen the read loop's stack frame for raw clients.
#[inline(never)]
pub(super) fn socketio_text(
    id: ConnId,
    text: &str,
    session: &mut Session,
    limiter: &mut RateLimiter,
    config: &Config,
    events: &Sender<Event>,
) -> Result<(), End> {
    let step = session
        .on_text(text)
        .map_err(|m| End::Close(m.code, format!("socket.io: {}", m.reason)))?;
    let send = |event| {
        events
            .send(event)
            .map_err(|_| End::Gone("server stopped".into()))
    };
    if matches!(
        step,
        Step::Say { .. } | Step::NotText | Step::Relay { .. } | Step::Refuse { .. }
    ) {
        // All count against the rate limit, as every line a raw client sends does.
        match limiter.check(Instant::now()) {
            Verdict::Allow => {}
            Verdict::Drop { notify: false } => return Ok(()),
            Verdict::Drop { notify: true } => return send(rate_limited(id, config)),
            Verdict::Flooding => return Err(flooding()),
        }
    }
    match step {
        Step::Nothing => Ok(()),
        Step::Reply(packet) => send(reply(id, Opcode::Text, packet.as_bytes())),
        Step::Enter {
            reply: packet,
            name,
            room,
        } => {
            send(reply(id, Opcode::Text, packet.as_bytes()))?;
            send(Event::Enter {
                id,
                requested_name: name,
                requested_room: room,
            })
        }
        Step::Part => send(Event::Part { id }),
        Step::Close => Err(End::Close(
            close_code::NORMAL,
            "socket.io: the client closed the session".into(),
        )),
        Step::NotText => send(Event::Notice {
            id,
            code: "usage",
            text: "emit('message', text) takes a string.".into(),
        }),
        Step::Refuse { code, text } => send(Event::Notice { id, code, text }),
        Step::Relay { .. } if !config.relay_custom_events => send(Event::Notice {
            id,
            code: "custom-events-off",
            text: "This server relays only emit('message', text): custom events are off \
                   (--no-custom-events)."
                .into(),
        }),
        Step::Relay { event, args, ack } => {
            send(Event::Relay { id, event, args })?;
            match ack {
                Some(packet) => send(reply(id, Opcode::Text, packet.as_bytes())),
                None => Ok(()),
            }
        }
        Step::Say { text, ack } => {
            if config.panic_on_message.as_deref() == Some(&*text) {
                panic!("fault injection: panic_on_message")
            }
            send(Event::Text {
                id,
                text: text.into(),
            })?;
            match ack {
                Some(packet) => send(reply(id, Opcode::Text, packet.as_bytes())),
                None => Ok(()),
            }
        }
    }
}

/// The first frames of a socket.io session: the Engine.IO open packet, and for EIO=3 the
/// CONNECT of the default namespace, which that version's server sends unasked (then the
/// client enters the chat at once: the `Enter` event to send after the `Join`). The heartbeat
/// fits the chat's: pings every `ping_interval`, and a pingTimeout that makes the client's
/// limit (interval + timeout) the reader's idle timeout.
pub(super) fn socketio_greeting(
    id: ConnId,
    session: &mut Session,
    config: &Config,
) -> (Vec<u8>, Option<Event>) {
    let interval = config.ping_interval.as_millis();
    let timeout = config.idle_timeout().as_millis() - interval;
    let eio = session.eio();
    let max_payload = config.max_message_bytes;
    let open = socketio::open_packet(eio, &new_sid(), interval, timeout, max_payload);
    let mut greeting = Vec::new();
    wire::encode_frame(&mut greeting, Opcode::Text, open.as_bytes());
    let mut enter = None;
    if eio == Eio::V3 {
        if let Step::Enter { reply, name, room } = session.connect(None) {
            wire::encode_frame(&mut greeting, Opcode::Text, reply.as_bytes());
            enter = Some(Event::Enter {
                id,
                requested_name: name,
                requested_room: room,
            });
        }
    }
    (greeting, enter)
}

/// A fresh session id: 16 hex digits from std's randomly keyed hasher (keys differ per thread
/// and per call) over the time, so ids are unpredictable and distinct.
pub(super) fn new_sid() -> String {
    let mut hasher = RandomState::new().build_hasher();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH);
    hasher.write_u128(now.map_or(0, |d| d.as_nanos()));
    format!("{:016x}", hasher.finish())
}
