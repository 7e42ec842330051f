//! A long-polling session's write side, in the broadcaster: the packets queued for its next
//! GET, the GET waiting for them, the response being written, and the upgrade to a WebSocket.
//!
//! The outbox hands it the same frames every socket.io client gets; it keeps their payloads as
//! Engine.IO packets, framed for the session's version (`engineio`). When a GET is pending and
//! packets are queued, the outbox takes one response carrying all of them and writes it like
//! any other socket's bytes, without blocking. The only bytes written here directly are the
//! probe's `3probe` and, at the switch, a still-pending GET's noop: small writes to fresh or
//! idle sockets, non-blocking too.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Client, Outbox, CHAT_SEND_BUFFER_BYTES};
use crate::engineio::{self, NOOP};
use crate::event::{Poll, PollShared, Slot};
use crate::http;
use crate::metrics::{Kind, OutboxCounts};
use crate::platform;
use crate::socketio::Eio;
use crate::wire::{self, Opcode};

/// The Engine.IO close packet, what a Close frame becomes for a polling client.
const CLOSE_PACKET: &str = "1";

/// One polling session's write side. See the module comment.
pub(super) struct PollSide {
    eio: Eio,
    /// Packets for the next GET, framed as one payload.
    payload: Vec<u8>,
    /// The GET waiting for packets.
    get: Option<Poll>,
    /// The GET whose response is in the client's buffer, being written.
    in_flight: Option<Poll>,
    /// The WebSocket that answered a probe, until the client's `5` switches to it.
    pub probe: Option<Arc<TcpStream>>,
    /// The client sent `5` while a response was still being written: switch after it.
    pub switch_after_response: bool,
    /// Listed in the outbox's pending list (for a response not yet in the buffer).
    pub listed: bool,
    pub shared: Arc<PollShared>,
}

impl PollSide {
    pub fn new(eio: Eio, shared: Arc<PollShared>) -> Self {
        PollSide {
            eio,
            payload: Vec::new(),
            get: None,
            in_flight: None,
            probe: None,
            switch_after_response: false,
            listed: false,
            shared,
        }
    }

    /// Queues the payload of each text frame as a packet (a Close frame becomes the close
    /// packet; a polling client gets no other kind). Returns the bytes queued.
    pub fn take_frames(&mut self, frames: &[u8]) -> usize {
        let before = self.payload.len();
        for (opcode, payload) in wire::split_frames(frames) {
            if opcode == 0x1 {
                let packet = std::str::from_utf8(payload).unwrap_or_default();
                engineio::push_packet(self.eio, &mut self.payload, packet);
            } else if opcode == 0x8 {
                engineio::push_packet(self.eio, &mut self.payload, CLOSE_PACKET);
            }
        }
        self.payload.len() - before
    }

    /// Bytes queued for the next GET.
    pub fn queued_bytes(&self) -> usize {
        self.payload.len()
    }

    /// Queues a noop: it releases a pending GET (a client about to upgrade pauses polling).
    pub fn noop(&mut self) {
        engineio::push_packet(self.eio, &mut self.payload, NOOP);
    }

    /// A GET arrived. A GET already pending is answered with a noop and left to its reader
    /// (the reader refuses overlapping GETs before they get here).
    pub fn poll(&mut self, poll: Poll) {
        if let Some(old) = self.get.replace(poll) {
            let _ = old.done.send(false);
        }
    }

    /// True when a response can be made: a GET waits, packets are queued, and no response is
    /// being written.
    pub fn wants_write(&self) -> bool {
        self.get.is_some() && !self.payload.is_empty() && self.in_flight.is_none()
    }

    /// The response to the pending GET carrying every queued packet: its stream and bytes.
    pub fn response(&mut self) -> Option<(Arc<TcpStream>, Vec<u8>)> {
        if !self.wants_write() {
            return None;
        }
        let poll = self.get.take()?;
        self.shared.getting.store(false, Ordering::Release);
        let body = std::mem::take(&mut self.payload);
        let head = http::response_head(
            200,
            "text/plain; charset=UTF-8",
            body.len(),
            &poll.headers,
            true,
        );
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(&body);
        let stream = poll.stream.clone();
        self.in_flight = Some(poll);
        Some((stream, bytes))
    }

    /// The response in flight has been written: its reader may go on with the connection.
    pub fn response_written(&mut self) {
        if let Some(poll) = self.in_flight.take() {
            let _ = poll.done.send(true);
        }
    }

    /// True while a response is being written.
    pub fn writing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// For the switch to the WebSocket: the packets still queued, as WebSocket text frames
    /// (the order they were queued in), and the pending GET answered with a noop.
    pub fn into_frames(mut self) -> Vec<u8> {
        if let Some(poll) = self.get.take() {
            self.shared.getting.store(false, Ordering::Release);
            // Best effort: the client paused polling and ignores this GET's answer.
            let body = NOOP.as_bytes();
            let head =
                http::response_head(200, "text/plain; charset=UTF-8", 1, &poll.headers, true);
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body);
            let sent = platform::send_nonblocking(&poll.stream, &bytes);
            let _ = poll.done.send(sent.is_ok_and(|n| n == bytes.len()));
        }
        let mut frames = Vec::new();
        let payload = String::from_utf8(std::mem::take(&mut self.payload)).unwrap_or_default();
        if let Ok(packets) = engineio::decode_payload(self.eio, &payload) {
            for packet in packets {
                wire::encode_frame(&mut frames, Opcode::Text, packet.as_bytes());
            }
        }
        frames
    }

    /// The session is over: its sid is unknown from now on, and its GETs are let go.
    pub fn end(&mut self) {
        self.shared.ended.store(true, Ordering::Release);
        self.shared.getting.store(false, Ordering::Release);
        for poll in [self.get.take(), self.in_flight.take()]
            .into_iter()
            .flatten()
        {
            let _ = poll.stream.shutdown(Shutdown::Both);
            let _ = poll.done.send(false);
        }
        if let Some(probe) = self.probe.take() {
            let _ = probe.shutdown(Shutdown::Both);
        }
    }
}

/// The outbox's polling operations, for the broadcaster's `Poll`, `Probe` and `Upgrade`.
impl Outbox {
    /// A polling session's GET: answered in the next flush if packets are queued, else when
    /// some are.
    pub fn poll(&mut self, slot: Slot, poll: Poll) {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let Some(p) = c.poll.as_mut() else {
            let _ = poll.done.send(false); // upgraded meanwhile: this GET has nothing to carry
            return;
        };
        p.poll(poll);
        list_poll(p, c.out.unsent(), slot, &mut self.pending);
    }

    /// A WebSocket probing to upgrade a polling session: `3probe` goes to it at once (a fresh
    /// socket takes a few bytes), and the pending GET is released with a noop. False when the
    /// session is not polling or the probe cannot be written.
    pub fn probe(&mut self, slot: Slot, stream: Arc<TcpStream>) -> bool {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        let Some(p) = c.poll.as_mut() else {
            return false;
        };
        let mut frame = Vec::new();
        wire::encode_frame(&mut frame, Opcode::Text, b"3probe");
        if !platform::send_nonblocking(&stream, &frame).is_ok_and(|n| n == frame.len()) {
            let _ = stream.shutdown(Shutdown::Both);
            return false;
        }
        if let Some(old) = p.probe.replace(stream) {
            let _ = old.shutdown(Shutdown::Both);
        }
        p.noop();
        list_poll(p, c.out.unsent(), slot, &mut self.pending);
        true
    }

    /// The client sent `5` on its probe: the session goes on over the WebSocket, at once or,
    /// when a response is still being written, right after it. False without a probe.
    pub fn upgrade(&mut self, slot: Slot) -> bool {
        let Some(c) = self.clients.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        match c.poll.as_mut() {
            Some(p) if p.probe.is_none() => false,
            Some(p) if p.writing() => {
                p.switch_after_response = true;
                true
            }
            Some(_) => switch_to_websocket(c, slot, &mut self.pending, &mut self.counts),
            None => false,
        }
    }

    /// Polling sessions no request has come for since `since_ms` (Unix ms).
    pub fn silent_polls(&self, since_ms: u64) -> Vec<Slot> {
        (self.clients.iter().enumerate())
            .filter_map(|(slot, c)| Some((slot, c.as_ref()?.poll.as_ref()?)))
            .filter(|(_, p)| p.shared.last_seen_ms.load(Ordering::Acquire) < since_ms)
            .map(|(slot, _)| slot)
            .collect()
    }
}

/// Why a polling session that stopped polling is dropped: more queued for it than its
/// backlog limit. `None` for any other client.
pub(super) fn over_backlog(c: &Client) -> Option<String> {
    let queued = c.poll.as_ref()?.queued_bytes();
    (queued > c.max_backlog_bytes).then(|| {
        format!(
            "not polling: {queued} bytes queued, over {}",
            c.max_backlog_bytes
        )
    })
}

/// Lists a polling session for the flush when a response can be made and none is listed.
pub(super) fn list_poll(p: &mut PollSide, unsent: usize, slot: Slot, pending: &mut Vec<Slot>) {
    if p.wants_write() && !p.listed && unsent == 0 {
        p.listed = true;
        pending.push(slot);
    }
}

/// For a polling session with nothing in its buffer, puts the response to its pending GET
/// there (carrying every queued packet) and points the client at that GET's socket. False
/// when there is nothing to write.
pub(super) fn take_response(c: &mut Client) -> bool {
    let Some(p) = c.poll.as_mut() else {
        return true;
    };
    if c.out.unsent() > 0 {
        return true;
    }
    p.listed = false;
    match p.response() {
        Some((stream, bytes)) => {
            platform::prepare_write_side(&stream, Some(CHAT_SEND_BUFFER_BYTES));
            c.stream = Some(stream);
            c.out.push(&bytes);
            true
        }
        None => false,
    }
}

/// A polling response is out: its reader may go on; a waiting upgrade happens now.
pub(super) fn response_written(
    c: &mut Client,
    slot: Slot,
    pending: &mut Vec<Slot>,
    counts: &mut OutboxCounts,
) {
    c.stream = None;
    let Some(p) = c.poll.as_mut() else { return };
    p.response_written();
    if p.switch_after_response {
        switch_to_websocket(c, slot, pending, counts);
    }
}

/// Moves a polling session's write side to the WebSocket that answered its probe: the
/// packets still queued go first, in order, then everything after. False without a probe.
fn switch_to_websocket(
    c: &mut Client,
    slot: Slot,
    pending: &mut Vec<Slot>,
    counts: &mut OutboxCounts,
) -> bool {
    let Some(mut p) = c.poll.take() else {
        return false;
    };
    let Some(probe) = p.probe.take() else {
        c.poll = Some(p);
        return false;
    };
    platform::prepare_write_side(&probe, Some(CHAT_SEND_BUFFER_BYTES));
    c.stream = Some(probe);
    // It is counted as what it is now: a socket.io client over WebSocket.
    counts.connections[c.kind as usize] -= 1;
    c.kind = Kind::SocketIoWebSocket;
    counts.connections[c.kind as usize] += 1;
    let frames = p.into_frames();
    super::append_to(c, slot, pending, &frames);
    true
}
