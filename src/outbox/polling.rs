//! A long-polling session's write side, in the broadcaster: the packets queued for its next
//! GET, the GET waiting for them, the response being written, and the upgrade to a WebSocket.
//!
//! The outbox hands it the same frames every socket.io client gets; it keeps their payloads as
//! Engine.IO packets, framed for the session's version (`engineio`). When a GET is pending and
//! packets are queued, the outbox takes one response carrying all of them and writes it like
//! any other socket's bytes, without blocking. Touches no socket itself but the probe's.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::engineio::{self, NOOP};
use crate::event::{Poll, PollShared};
use crate::http;
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
            let sent = crate::platform::send_nonblocking(&poll.stream, &bytes);
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
            let _ = poll.stream.shutdown(std::net::Shutdown::Both);
            let _ = poll.done.send(false);
        }
        if let Some(probe) = self.probe.take() {
            let _ = probe.shutdown(std::net::Shutdown::Both);
        }
    }
}
