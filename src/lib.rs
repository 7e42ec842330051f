//! # wschat
//!
//! A small, fast, blocking WebSocket chat server, built on `tungstenite`'s sync API and plain
//! threads: no async runtime. It speaks the classic tutorial chat protocol (JSON lines with
//! `type` and `info`), serves its own chat page, and offers `/echo` and `/scream` for teaching.
//!
//! ## The shape
//!
//! - The **listener** (the thread that calls [`Server::run`]) accepts connections and starts
//!   one **reader** thread per connection.
//! - Each reader serves the page or runs the WebSocket handshake, then reads frames and sends
//!   events over one bounded channel to the **broadcaster**.
//! - The **broadcaster**, one thread, asks the chat who hears what and writes it through the
//!   outbox: it is the only thread that writes to a socket after the handshake, and it never
//!   blocks on one.
//! - With a history file, the **history writer**, one thread, does every write and sync of it,
//!   fed through a bounded channel the broadcaster never waits on: a slow disk cannot stall
//!   the chat.
//!
//! ARCHITECTURE.md has the map of the modules.
//!
//! ## Embedding
//!
//! ```
//! use std::net::Ipv4Addr;
//! use wschat::{Config, Server};
//!
//! let config = Config { bind: Ipv4Addr::LOCALHOST.into(), port: 0, ..Config::default() };
//! let server = Server::bind(config)?.spawn()?;
//! let url = format!("ws://{}/?name=ada", server.local_addr());
//!
//! let (mut ws, _) = tungstenite::connect(url).expect("connects");
//! let enter = ws.read().expect("the join line").into_text().unwrap();
//! assert!(enter.starts_with(r#"{"type":0,"info":"ada comes in !!!""#));
//!
//! ws.close(None).expect("closes");
//! server.stop()?; // Close 1001 to every client still there; every thread has ended
//! # Ok::<(), std::io::Error>(())
//! ```

#![deny(missing_docs)]
// Every `unsafe` block lives in `platform`, which allows it for itself.
#![deny(unsafe_code)]

// The core path, in the order a connection meets it.
mod broadcaster;
mod chat;
mod event;
mod handle;
mod listener;
mod outbox;
mod reader;

// What they build on.
mod ceiling;
mod cluster;
pub mod config;
mod engineio;
mod history_file;
mod history_writer;
mod http;
mod metrics;
#[cfg(test)]
mod mutate;
mod platform;
mod socketio;
mod wire;
mod www;

// The address to give people, for the start-up log and the page (`www`).
pub mod share;

pub use chat::rooms::DEFAULT_ROOM;
pub use config::Config;
pub use handle::{RunningServer, StopHandle};
pub use listener::Server;
