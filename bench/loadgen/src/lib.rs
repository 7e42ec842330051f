//! `wschat-bench`: a load generator for WebSocket chat servers, and a trivial server to
//! measure the generator against.
//!
//! Code map:
//! - [`load`]: the generator (connect, settle, open-loop send, drain), worker threads on epoll.
//! - [`sink`]: the trivial broadcast server (`wschat-bench sink`).
//! - [`frame`]: WebSocket frame parsing and encoding.
//! - [`marker`]: the id and send time each message carries, and the scan that finds them.
//! - [`histogram`]: log-linear latency histogram.
//! - [`procstat`]: a server's CPU time and memory from `/proc`.
//! - [`sys`]: epoll and non-blocking socket calls.
//! - [`output`]: the one JSON line a run prints.
//!
//! Rule: only `sys` and `procstat` call `libc` directly (besides one clock read in `load`).

pub mod frame;
pub mod histogram;
pub mod load;
pub mod marker;
pub mod output;
pub mod procstat;
pub mod sink;
pub mod sys;
