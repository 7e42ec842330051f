//! # wschat
//!
//! A small, fast, blocking WebSocket chat server, built on `tungstenite`'s sync API and plain
//! threads: no async runtime. It speaks the classic tutorial chat protocol (JSON lines with
//! `type` and `info`), serves its own chat page, and offers `/echo` and `/scream` for teaching.
//!
//! ## The shape
//!
//! - The **listener** (the thread that calls [`Server::run`]) accepts connections and starts
//!   one **client reader** thread per connection.
//! - Each reader serves the page or runs the WebSocket handshake, then reads frames and sends
//!   events over a channel to the **broadcaster**.
//! - The **broadcaster**, one thread, owns every client's write side: it is the only thread
//!   that writes to a socket after the handshake, and it never blocks on one.
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

mod broadcaster;
mod client;
mod commands;
pub mod config;
mod history;
mod http;
mod listener;
pub mod protocol;
mod rooms;
mod socketio;
mod www;

pub use client::READ_BUFFER_BYTES;
pub use config::Config;
pub use listener::{RunningServer, Server, StopHandle, CLIENT_STACK_BYTES};
pub use rooms::DEFAULT_ROOM;
