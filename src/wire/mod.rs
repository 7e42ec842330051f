//! The wire: every byte wschat writes to a client after the handshake, as pure functions.
//!
//! [`frame`] encodes WebSocket frames (and describes them for the debug log); [`event`] turns
//! chat events into the text of a frame in each client's format, the classic JSON line or its
//! Socket.IO form. Touches no socket, thread or clock. Depends on tungstenite's frame header
//! and serde only: the Socket.IO codec (`crate::socketio`), the chat and the outbox build on
//! it, never the other way round.

pub(crate) mod event;
pub(crate) mod frame;

pub(crate) use event::{ChatEvent, Encoder, Wire};
pub(crate) use frame::{
    close_code, describe_frames, encode_close, encode_frame, split_frames, Opcode,
};

/// The Engine.IO v4 ping packet, which the heartbeat sends socket.io-client v3 and v4; they
/// answer `3`.
pub(crate) const ENGINEIO_PING: &str = "2";
