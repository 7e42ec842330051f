//! The load generator: N clients on a chat URL, K of them sending R messages/s of B bytes for
//! D seconds, every client reading everything.
//!
//! Shape: a few worker threads (default 1), each owning a share of the connections on its own
//! epoll; the calling thread only steps the phases and samples `/proc`. A worker never blocks
//! on a socket: it reads into one large buffer, walks the frames in place, and finds message
//! markers (see [`crate::marker`]) with a SIMD scan, so one core reads millions of frames a
//! second.
//!
//! Phases, driven by the calling thread:
//! 1. **Connect**: each worker opens its connections, at most `connect_batch` handshakes in
//!    flight, retrying failures; everything received is read and dropped. Then the run waits
//!    until no frame has arrived for `settle` (the join lines are in).
//! 2. **Send**: open loop. Each sender has its own schedule (`1/R` apart, senders staggered)
//!    and sends what is due whatever the server does; each text carries its id and the time it
//!    was actually sent.
//! 3. **Drain**: sending has stopped; reading goes on until every expected delivery is in or
//!    `drain` has passed. Then the loss is counted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::frame::{self, MaskKeys, Parsed};
use crate::histogram::Histogram;
use crate::marker;
use crate::procstat;
use crate::sys::{self, Epoll, Fd, BROKEN, READABLE, WRITABLE};

/// Bytes each worker reads per `read(2)`: large, so that a busy connection is emptied in one
/// call.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Ready events taken per `epoll_wait`.
const EPOLL_EVENTS: usize = 1024;
/// While not sending, workers wake this often to notice a change of phase.
const IDLE_TICK: Duration = Duration::from_millis(5);
/// How often the calling thread checks the workers.
const CONTROL_TICK: Duration = Duration::from_millis(2);
/// Pause before retrying a failed connect, times the attempt number.
const RETRY_BACKOFF_US: u64 = 100_000;
/// Largest HTTP response head accepted from a server.
const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;

/// What to run. See `wschat-bench --help` for the meaning of each field.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    /// Further servers (the nodes of a cluster): client `i` connects to the `i % (1 + len)`th
    /// of `addr` and these, so clients and senders spread evenly over them.
    pub more_addrs: Vec<SocketAddr>,
    /// `Host` header value.
    pub host: String,
    /// Request target; `{i}` is replaced with the client's index.
    pub path: String,
    pub clients: usize,
    pub senders: usize,
    /// Messages per second per sender.
    pub rate: f64,
    /// Message text size in bytes.
    pub size: usize,
    pub duration: Duration,
    pub threads: usize,
    /// The server sends each message back to its sender too.
    pub echo_to_sender: bool,
    pub server_pid: Option<u32>,
    pub connect_batch: usize,
    pub connect_retries: u32,
    pub connect_timeout: Duration,
    /// The whole connect phase ends after this: connections not up by then count as failed.
    pub connect_max: Duration,
    pub settle: Duration,
    pub settle_max: Duration,
    pub drain: Duration,
}

impl Options {
    /// The server client `index` connects to.
    pub fn addr_of(&self, index: usize) -> SocketAddr {
        match index % (1 + self.more_addrs.len()) {
            0 => self.addr,
            n => self.more_addrs[n - 1],
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub connected: u64,
    /// Connections still open when sending started (the recipients of every message).
    pub open_at_start: u64,
    /// Connections still open when the drain ended.
    pub open_at_end: u64,
    pub connect_failures: u64,
    pub first_connect_error: Option<String>,
    pub connect_s: f64,
    pub settle_s: f64,
    pub send_s: f64,
    pub drain_s: f64,
    pub sent: u64,
    pub recipients_per_message: u64,
    pub expected: u64,
    pub delivered: u64,
    pub delivered_in_window: u64,
    pub out_of_order: u64,
    pub foreign_markers: u64,
    pub frames: u64,
    pub bytes: u64,
    pub closed_by_server: u64,
    pub protocol_errors: u64,
    pub latency: Histogram,
    /// With several URLs: the deliveries whose sender is on another server than the
    /// recipient (through the cluster).
    pub cross_latency: Histogram,
    pub send_lag_max_us: u64,
    pub send_backlog_max_bytes: u64,
    /// CPU of the whole generator process during send + drain, percent of one core.
    pub gen_cpu_pct: f64,
    /// The busiest worker thread's CPU during send + drain, percent of one core.
    pub gen_worker_cpu_pct_max: f64,
    pub server_idle: Option<procstat::Sample>,
    pub server_start: Option<procstat::Sample>,
    pub server_end: Option<procstat::Sample>,
}

impl Report {
    pub fn lost(&self) -> i64 {
        self.expected as i64 - self.delivered as i64
    }
}

const PHASE_CONNECT: u8 = 0;
const PHASE_SEND: u8 = 1;
const PHASE_STOP: u8 = 2;

/// What a worker publishes while it runs; padded so that workers do not share a cache line.
#[repr(align(128))]
#[derive(Default)]
struct Status {
    connect_done: AtomicBool,
    open: AtomicU64,
    last_frame_us: AtomicU64,
    delivered: AtomicU64,
    send_done: AtomicBool,
    sent: AtomicU64,
}

struct Shared {
    base: Instant,
    phase: AtomicU8,
    send_start_us: AtomicU64,
    send_end_us: AtomicU64,
    status: Vec<Status>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }
}

/// Runs the whole load and returns what it measured.
pub fn run(opts: &Options) -> io::Result<Report> {
    let threads = opts.threads.clamp(1, opts.clients.max(1));
    let shared = Arc::new(Shared {
        base: Instant::now(),
        phase: AtomicU8::new(PHASE_CONNECT),
        send_start_us: AtomicU64::new(u64::MAX),
        send_end_us: AtomicU64::new(u64::MAX),
        status: (0..threads).map(|_| Status::default()).collect(),
    });
    let server = opts.server_pid.map(|p| p.to_string());
    let sample_server = || server.as_deref().and_then(procstat::sample);

    let mut handles = Vec::new();
    for w in 0..threads {
        let worker = Worker::new(w, threads, opts, shared.clone())?;
        let h = thread::Builder::new()
            .name(format!("worker-{w}"))
            .spawn(move || worker.run())?;
        handles.push(h);
    }
    let all = |f: &dyn Fn(&Status) -> bool| shared.status.iter().all(f);
    let sum = |f: &dyn Fn(&Status) -> u64| shared.status.iter().map(f).sum::<u64>();

    // 1. Connect, then settle.
    let t0 = Instant::now();
    while !all(&|s| s.connect_done.load(Relaxed)) {
        thread::sleep(CONTROL_TICK);
    }
    let connect_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    loop {
        let last = shared
            .status
            .iter()
            .map(|s| s.last_frame_us.load(Relaxed))
            .max()
            .unwrap_or(0);
        let quiet = Duration::from_micros(shared.now_us().saturating_sub(last));
        if quiet >= opts.settle || t1.elapsed() >= opts.settle_max {
            break;
        }
        thread::sleep(CONTROL_TICK);
    }
    let settle_s = t1.elapsed().as_secs_f64();
    let server_idle = sample_server();
    let open = sum(&|s| s.open.load(Relaxed));

    // 2. Send.
    let gen0 = procstat::sample("self");
    let server_start = sample_server();
    let start = shared.now_us() + 1000;
    let end = start + opts.duration.as_micros() as u64;
    shared.send_start_us.store(start, Relaxed);
    shared.send_end_us.store(end, Relaxed);
    shared.phase.store(PHASE_SEND, Relaxed);
    let t2 = Instant::now();
    while !all(&|s| s.send_done.load(Relaxed)) {
        thread::sleep(CONTROL_TICK);
    }
    let send_s = t2.elapsed().as_secs_f64();

    // 3. Drain.
    let sent = sum(&|s| s.sent.load(Relaxed));
    let recipients = if opts.echo_to_sender {
        open
    } else {
        open.saturating_sub(1)
    };
    let expected = sent * recipients;
    let t3 = Instant::now();
    while sum(&|s| s.delivered.load(Relaxed)) < expected && t3.elapsed() < opts.drain {
        thread::sleep(CONTROL_TICK);
    }
    let drain_s = t3.elapsed().as_secs_f64();
    let server_end = sample_server();
    let gen1 = procstat::sample("self");
    let open_at_end = sum(&|s| s.open.load(Relaxed));
    shared.phase.store(PHASE_STOP, Relaxed);

    let mut report = Report {
        connect_s,
        settle_s,
        send_s,
        drain_s,
        recipients_per_message: recipients,
        open_at_start: open,
        open_at_end,
        expected,
        server_idle,
        server_start,
        server_end,
        ..Report::default()
    };
    let window_s = send_s + drain_s;
    if let (Some(a), Some(b)) = (gen0, gen1) {
        report.gen_cpu_pct = (b.cpu_us - a.cpu_us) as f64 / (window_s * 1e4);
    }
    for h in handles {
        let r = h
            .join()
            .map_err(|_| io::Error::other("a worker thread panicked"))??;
        report.add(&r, window_s);
    }
    Ok(report)
}

impl Report {
    fn add(&mut self, w: &WorkerReport, window_s: f64) {
        self.connected += w.connected;
        self.connect_failures += w.connect_failures;
        if self.first_connect_error.is_none() {
            self.first_connect_error.clone_from(&w.first_connect_error);
        }
        self.sent += w.sent;
        self.delivered += w.counts.delivered;
        self.delivered_in_window += w.counts.delivered_in_window;
        self.out_of_order += w.counts.out_of_order;
        self.foreign_markers += w.counts.foreign_markers;
        self.frames += w.counts.frames;
        self.bytes += w.counts.bytes;
        self.closed_by_server += w.counts.closed_by_server;
        self.protocol_errors += w.counts.protocol_errors;
        self.latency.merge(&w.latency);
        self.cross_latency.merge(&w.cross_latency);
        self.send_lag_max_us = self.send_lag_max_us.max(w.send_lag_max_us);
        self.send_backlog_max_bytes = self.send_backlog_max_bytes.max(w.send_backlog_max_bytes);
        let pct = w.cpu_us_after_connect as f64 / (window_s * 1e4);
        self.gen_worker_cpu_pct_max = self.gen_worker_cpu_pct_max.max(pct);
    }
}

/// One worker's counts, merged into the [`Report`].
struct WorkerReport {
    connected: u64,
    connect_failures: u64,
    first_connect_error: Option<String>,
    sent: u64,
    counts: Counts,
    latency: Histogram,
    cross_latency: Histogram,
    send_lag_max_us: u64,
    send_backlog_max_bytes: u64,
    cpu_us_after_connect: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet, or waiting to retry.
    Waiting,
    /// TCP connect in progress.
    Connecting,
    /// Request sent, response head not complete yet.
    Upgrading,
    Open,
    /// Failed for good, or closed.
    Done,
}

struct Conn {
    /// Index among all clients (for `{i}` in the path).
    index: usize,
    fd: Option<Fd>,
    state: State,
    attempts: u32,
    attempt_started_us: u64,
    /// Bytes of a frame (or response head) not complete yet.
    carry: Vec<u8>,
    /// Bytes not sent yet: `out[out_pos..]`.
    out: Vec<u8>,
    out_pos: usize,
    /// EPOLLOUT is armed.
    want_write: bool,
    /// The fragments so far of a fragmented message.
    message: Vec<u8>,
}

struct Sender {
    conn: usize,
    id: u32,
    seq: u32,
    next_due_us: f64,
}

/// Counters a worker updates per frame.
#[derive(Default)]
struct Counts {
    delivered: u64,
    delivered_in_window: u64,
    out_of_order: u64,
    foreign_markers: u64,
    frames: u64,
    bytes: u64,
    closed_by_server: u64,
    protocol_errors: u64,
}

struct Worker {
    id: usize,
    opts: Options,
    shared: Arc<Shared>,
    epoll: Epoll,
    buf: Vec<u8>,
    conns: Vec<Conn>,
    senders: Vec<Sender>,
    /// Next sequence number expected, per (local connection, sender id).
    next_seq: Vec<u32>,
    counts: Counts,
    latency: Histogram,
    cross_latency: Histogram,
    keys: MaskKeys,
    text: Vec<u8>,
    /// Connections waiting for their (next) connect attempt, by due time.
    waiting: BinaryHeap<Reverse<(u64, usize)>>,
    in_flight: Vec<usize>,
    connected: u64,
    /// Connections that were open and have been closed since.
    closed: u64,
    connect_failures: u64,
    first_connect_error: Option<String>,
    sent: u64,
    send_lag_max_us: u64,
    send_backlog_max_bytes: u64,
}

/// The connections worker `w` of `threads` owns: every `threads`-th client.
fn owned(w: usize, threads: usize, clients: usize) -> impl Iterator<Item = usize> {
    (w..clients).step_by(threads)
}

/// The client index of sender `j` of `senders`: spread over the clients.
fn sender_client(j: usize, senders: usize, clients: usize) -> usize {
    j * clients / senders
}

impl Worker {
    fn new(id: usize, threads: usize, opts: &Options, shared: Arc<Shared>) -> io::Result<Worker> {
        let conns: Vec<Conn> = owned(id, threads, opts.clients)
            .map(|index| Conn {
                index,
                fd: None,
                state: State::Waiting,
                attempts: 0,
                attempt_started_us: 0,
                carry: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                want_write: false,
                message: Vec::new(),
            })
            .collect();
        let senders = (0..opts.senders)
            .filter_map(|j| {
                let client = sender_client(j, opts.senders, opts.clients);
                (client % threads == id).then(|| Sender {
                    conn: client / threads,
                    id: j as u32,
                    seq: 0,
                    next_due_us: 0.0,
                })
            })
            .collect();
        let waiting = (0..conns.len()).map(|c| Reverse((0, c))).collect();
        Ok(Worker {
            id,
            epoll: Epoll::new(EPOLL_EVENTS)?,
            buf: vec![0; READ_BUFFER_BYTES],
            next_seq: vec![0; conns.len() * opts.senders],
            conns,
            senders,
            counts: Counts::default(),
            latency: Histogram::new(),
            cross_latency: Histogram::new(),
            keys: MaskKeys::new(0x9e37_79b9 ^ id as u32),
            text: Vec::new(),
            waiting,
            in_flight: Vec::new(),
            connected: 0,
            closed: 0,
            connect_failures: 0,
            first_connect_error: None,
            sent: 0,
            send_lag_max_us: 0,
            send_backlog_max_bytes: 0,
            opts: opts.clone(),
            shared,
        })
    }

    fn status(&self) -> &Status {
        &self.shared.status[self.id]
    }

    fn run(mut self) -> io::Result<WorkerReport> {
        let mut sending = false;
        let mut cpu_at_send = 0;
        let mut events: Vec<(u64, u32)> = Vec::with_capacity(EPOLL_EVENTS);
        loop {
            let now = self.shared.now_us();
            let phase = self.shared.phase.load(Relaxed);
            if phase == PHASE_STOP {
                break;
            }
            if !self.status().connect_done.load(Relaxed) {
                self.pump_connects(now);
            }
            let mut timeout = IDLE_TICK;
            if phase == PHASE_SEND && !self.status().send_done.load(Relaxed) {
                if !sending {
                    sending = true;
                    cpu_at_send = thread_cpu_us();
                    self.schedule_senders();
                }
                match self.send_due(now) {
                    Some(next) => {
                        timeout = Duration::from_micros((next - now as f64).max(0.0) as u64)
                    }
                    None => self.status().send_done.store(true, Relaxed),
                }
            }
            events.clear();
            events.extend(self.epoll.wait(timeout)?);
            for &(token, ev) in &events {
                self.on_event(token as usize, ev);
            }
        }
        let cpu = if sending {
            thread_cpu_us().saturating_sub(cpu_at_send)
        } else {
            0
        };
        self.say_goodbye();
        Ok(self.into_report(cpu))
    }

    /// Best effort, without waiting: a Close frame (1000) to every open connection, so that
    /// servers see a normal close rather than a dropped connection. The sockets are closed
    /// when the worker is dropped.
    fn say_goodbye(&mut self) {
        for c in 0..self.conns.len() {
            if self.conns[c].state == State::Open {
                let conn = &mut self.conns[c];
                frame::encode_masked(
                    &mut conn.out,
                    frame::OP_CLOSE,
                    &1000u16.to_be_bytes(),
                    self.keys.next_key(),
                );
                if let Some(fd) = conn.fd.as_ref() {
                    let _ = sys::send(fd.0, &conn.out[conn.out_pos..]);
                }
            }
        }
    }

    fn into_report(self, cpu_us_after_connect: u64) -> WorkerReport {
        WorkerReport {
            connected: self.connected,
            connect_failures: self.connect_failures,
            first_connect_error: self.first_connect_error,
            sent: self.sent,
            counts: self.counts,
            latency: self.latency,
            cross_latency: self.cross_latency,
            send_lag_max_us: self.send_lag_max_us,
            send_backlog_max_bytes: self.send_backlog_max_bytes,
            cpu_us_after_connect,
        }
    }

    // ---- connecting ------------------------------------------------------------------

    fn pump_connects(&mut self, now: u64) {
        if now > self.opts.connect_max.as_micros() as u64 {
            self.give_up_connecting();
        }
        let timeout_us = self.opts.connect_timeout.as_micros() as u64;
        let mut i = 0;
        while i < self.in_flight.len() {
            let c = self.in_flight[i];
            if now.saturating_sub(self.conns[c].attempt_started_us) > timeout_us {
                self.fail_attempt(c, now, "timed out".to_string());
            } else {
                i += 1;
            }
        }
        while self.in_flight.len() < self.opts.connect_batch {
            match self.waiting.peek() {
                Some(&Reverse((due, c))) if due <= now => {
                    self.waiting.pop();
                    self.start_connect(c, now);
                }
                _ => break,
            }
        }
        if self.waiting.is_empty() && self.in_flight.is_empty() {
            self.status().connect_done.store(true, Relaxed);
        }
    }

    /// The connect phase is over its deadline: every connection not up yet has failed.
    fn give_up_connecting(&mut self) {
        let pending: Vec<usize> = self
            .in_flight
            .drain(..)
            .chain(self.waiting.drain().map(|Reverse((_, c))| c))
            .collect();
        for c in pending {
            let conn = &mut self.conns[c];
            if let Some(fd) = conn.fd.take() {
                let _ = self.epoll.delete(fd.0);
            }
            conn.state = State::Done;
            self.connect_failures += 1;
            self.first_connect_error
                .get_or_insert_with(|| "not connected within --connect-max".to_string());
        }
    }

    fn start_connect(&mut self, c: usize, now: u64) {
        let conn = &mut self.conns[c];
        conn.attempts += 1;
        conn.attempt_started_us = now;
        conn.carry.clear();
        self.in_flight.push(c);
        match sys::connect_nonblocking(self.opts.addr_of(self.conns[c].index)) {
            Ok(fd) => {
                if let Err(e) = self.epoll.add(fd.0, WRITABLE, c as u64) {
                    self.fail_attempt(c, now, format!("epoll: {e}"));
                    return;
                }
                let conn = &mut self.conns[c];
                conn.fd = Some(fd);
                conn.state = State::Connecting;
            }
            Err(e) => self.fail_attempt(c, now, format!("connect: {e}")),
        }
    }

    fn fail_attempt(&mut self, c: usize, now: u64, why: String) {
        self.in_flight.retain(|&x| x != c);
        let conn = &mut self.conns[c];
        if let Some(fd) = conn.fd.take() {
            let _ = self.epoll.delete(fd.0);
        }
        conn.carry.clear();
        if conn.attempts <= self.opts.connect_retries {
            conn.state = State::Waiting;
            let due = now + RETRY_BACKOFF_US * u64::from(conn.attempts);
            self.waiting.push(Reverse((due, c)));
        } else {
            conn.state = State::Done;
            self.connect_failures += 1;
            self.first_connect_error.get_or_insert(why);
        }
    }

    fn on_connected(&mut self, c: usize, now: u64) {
        let Some(fd) = self.conns[c].fd.as_ref().map(|f| f.0) else {
            return;
        };
        if let Some(e) = sys::take_error(fd) {
            self.fail_attempt(c, now, format!("connect: {e}"));
            return;
        }
        let path = self
            .opts
            .path
            .replace("{i}", &self.conns[c].index.to_string());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
            self.opts.host,
            frame::SAMPLE_KEY
        );
        // A few hundred bytes always fit into a fresh socket's send buffer.
        match sys::send(fd, request.as_bytes()) {
            Ok(n) if n == request.len() => {}
            Ok(_) => return self.fail_attempt(c, now, "request cut short".to_string()),
            Err(e) => return self.fail_attempt(c, now, format!("send: {e}")),
        }
        if let Err(e) = self.epoll.modify(fd, READABLE, c as u64) {
            return self.fail_attempt(c, now, format!("epoll: {e}"));
        }
        self.conns[c].state = State::Upgrading;
    }

    /// Checks the response head at the start of `data`; on 101 returns its length.
    fn upgrade_response(data: &[u8]) -> Result<Option<usize>, String> {
        let Some(end) = memchr::memmem::find(data, b"\r\n\r\n") else {
            if data.len() > MAX_RESPONSE_HEAD_BYTES {
                return Err("response head too large".to_string());
            }
            return Ok(None);
        };
        let status_line = data[..end]
            .split(|&b| b == b'\r')
            .next()
            .unwrap_or_default();
        if status_line.starts_with(b"HTTP/1.1 101") {
            Ok(Some(end + 4))
        } else {
            Err(format!(
                "server answered {:?}",
                String::from_utf8_lossy(status_line)
            ))
        }
    }

    // ---- sending ---------------------------------------------------------------------

    fn schedule_senders(&mut self) {
        let start = self.shared.send_start_us.load(Relaxed) as f64;
        let interval = 1e6 / self.opts.rate;
        let k = self.opts.senders as f64;
        for s in &mut self.senders {
            // Staggered, so that the senders do not all fire in the same millisecond.
            s.next_due_us = start + interval * f64::from(s.id) / k;
        }
    }

    /// Sends every message that is due; returns when the next one is due, or `None` once the
    /// sending window has ended.
    fn send_due(&mut self, now: u64) -> Option<f64> {
        let end = self.shared.send_end_us.load(Relaxed) as f64;
        let interval = 1e6 / self.opts.rate;
        let now_f = now as f64;
        let mut next = f64::INFINITY;
        for si in 0..self.senders.len() {
            let s = &mut self.senders[si];
            let c = s.conn;
            let mut queued = false;
            while s.next_due_us <= now_f && s.next_due_us < end {
                let conn = &mut self.conns[c];
                if conn.state == State::Open {
                    self.text.clear();
                    marker::write_text(&mut self.text, s.id, s.seq, now, self.opts.size);
                    frame::encode_masked(
                        &mut conn.out,
                        frame::OP_TEXT,
                        &self.text,
                        self.keys.next_key(),
                    );
                    self.sent += 1;
                    queued = true;
                }
                self.send_lag_max_us = self.send_lag_max_us.max((now_f - s.next_due_us) as u64);
                s.seq += 1;
                s.next_due_us += interval;
            }
            if s.next_due_us < end {
                next = next.min(s.next_due_us);
            }
            if queued {
                self.flush(c);
            }
        }
        self.status().sent.store(self.sent, Relaxed);
        if next.is_finite() {
            Some(next)
        } else if now_f < end {
            Some(end) // nothing (more) to send: hold the connections until the window ends
        } else {
            None
        }
    }

    fn flush(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        let Some(fd) = conn.fd.as_ref().map(|f| f.0) else {
            return;
        };
        while conn.out_pos < conn.out.len() {
            match sys::send(fd, &conn.out[conn.out_pos..]) {
                Ok(n) => conn.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(c);
                    return;
                }
            }
        }
        let backlog = (conn.out.len() - conn.out_pos) as u64;
        self.send_backlog_max_bytes = self.send_backlog_max_bytes.max(backlog);
        let want_write = backlog > 0;
        if backlog == 0 {
            conn.out.clear();
            conn.out_pos = 0;
        }
        if want_write != conn.want_write {
            conn.want_write = want_write;
            let _ = self.epoll.watch(fd, c as u64, want_write);
        }
    }

    // ---- reading ---------------------------------------------------------------------

    fn on_event(&mut self, c: usize, ev: u32) {
        let now = self.shared.now_us();
        match self.conns[c].state {
            State::Connecting if ev & (WRITABLE | BROKEN) != 0 => self.on_connected(c, now),
            State::Upgrading | State::Open => {
                if ev & (READABLE | BROKEN) != 0 {
                    self.on_readable(c);
                }
                if ev & WRITABLE != 0 && self.conns[c].state == State::Open {
                    self.flush(c);
                }
            }
            _ => {}
        }
    }

    fn on_readable(&mut self, c: usize) {
        loop {
            let Some(fd) = self.conns[c].fd.as_ref().map(|f| f.0) else {
                return;
            };
            let carry = self.conns[c].carry.len();
            if carry + 64 * 1024 > self.buf.len() {
                self.buf.resize(carry * 2 + 64 * 1024, 0); // a frame larger than the buffer
            }
            self.buf[..carry].copy_from_slice(&self.conns[c].carry);
            let n = match sys::read(fd, &mut self.buf[carry..]) {
                Ok(0) => return self.on_closed(c, "closed by the server"),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.on_closed(c, &format!("read: {e}")),
            };
            let now = self.shared.now_us();
            self.status().last_frame_us.store(now, Relaxed);
            self.counts.bytes += n as u64;
            let full = carry + n == self.buf.len();
            let mut start = 0;
            if self.conns[c].state == State::Upgrading {
                match Self::upgrade_response(&self.buf[..carry + n]) {
                    Ok(Some(head)) => {
                        start = head;
                        self.in_flight.retain(|&x| x != c);
                        self.conns[c].state = State::Open;
                        self.connected += 1;
                        self.publish_open();
                    }
                    Ok(None) => start = carry + n, // keep it all as carry
                    Err(why) => return self.fail_attempt(c, now, why),
                }
                if start == carry + n && self.conns[c].state == State::Upgrading {
                    let head = self.buf[..carry + n].to_vec();
                    self.conns[c].carry = head;
                    return;
                }
            }
            let end_us = self.shared.send_end_us.load(Relaxed);
            let used = self.frames(c, start, carry + n, now, end_us);
            let Some(used) = used else {
                return; // the connection was closed
            };
            let conn = &mut self.conns[c];
            conn.carry.clear();
            conn.carry.extend_from_slice(&self.buf[used..carry + n]);
            self.status()
                .delivered
                .store(self.counts.delivered, Relaxed);
            if !full {
                return;
            }
        }
    }

    /// Walks the frames in `buf[start..end]`; returns where the first incomplete frame
    /// starts, or `None` when the connection had to be closed.
    fn frames(
        &mut self,
        c: usize,
        start: usize,
        end: usize,
        now: u64,
        end_us: u64,
    ) -> Option<usize> {
        let k = self.opts.senders;
        // Which senders are on another server than this client (several URLs).
        let servers = 1 + self.opts.more_addrs.len();
        let (clients, here) = (self.opts.clients, self.conns[c].index % servers);
        let cross = |sender: u32| sender_client(sender as usize, k, clients) % servers != here;
        let mut pos = start;
        let mut pong: Option<Vec<u8>> = None;
        while pos < end {
            let f = match frame::parse(&self.buf[pos..end]) {
                Parsed::Frame(f) => f,
                Parsed::Incomplete => break,
                Parsed::Invalid(why) => {
                    self.counts.protocol_errors += 1;
                    self.on_closed(c, why);
                    return None;
                }
            };
            let payload = &self.buf[pos + f.header_len..pos + f.total_len()];
            self.counts.frames += 1;
            if f.mask.is_some() {
                self.counts.protocol_errors += 1; // a server must not mask; count and go on
            }
            match f.opcode {
                frame::OP_TEXT | frame::OP_BINARY if f.fin => {
                    let seqs = &mut self.next_seq[c * k..(c + 1) * k];
                    deliveries(
                        payload,
                        seqs,
                        &mut self.counts,
                        (&mut self.latency, &mut self.cross_latency, &cross),
                        now,
                        end_us,
                    );
                }
                // A fragmented message (gorilla's writer cuts coalesced messages at its
                // buffer size): scanned whole once complete, so that no marker is split.
                frame::OP_TEXT | frame::OP_BINARY | frame::OP_CONTINUATION => {
                    let message = &mut self.conns[c].message;
                    if f.opcode != frame::OP_CONTINUATION {
                        message.clear();
                    }
                    message.extend_from_slice(payload);
                    if f.fin {
                        let seqs = &mut self.next_seq[c * k..(c + 1) * k];
                        deliveries(
                            message,
                            seqs,
                            &mut self.counts,
                            (&mut self.latency, &mut self.cross_latency, &cross),
                            now,
                            end_us,
                        );
                        message.clear();
                    }
                }
                frame::OP_PING => {
                    let mut out = pong.take().unwrap_or_default();
                    frame::encode_masked(&mut out, frame::OP_PONG, payload, self.keys.next_key());
                    pong = Some(out);
                }
                frame::OP_CLOSE => {
                    self.counts.closed_by_server += 1;
                    self.on_closed(c, "close frame from the server");
                    return None;
                }
                frame::OP_PONG => {}
                _ => self.counts.protocol_errors += 1,
            }
            pos += f.total_len();
        }
        if let Some(bytes) = pong {
            self.conns[c].out.extend_from_slice(&bytes);
            self.flush(c);
        }
        Some(pos)
    }

    fn on_closed(&mut self, c: usize, why: &str) {
        if self.conns[c].state == State::Open {
            self.close(c);
        } else {
            let now = self.shared.now_us();
            self.fail_attempt(c, now, why.to_string());
        }
    }

    fn publish_open(&self) {
        self.status()
            .open
            .store(self.connected - self.closed, Relaxed);
    }

    fn close(&mut self, c: usize) {
        if self.conns[c].state == State::Open {
            self.closed += 1;
            self.publish_open();
        }
        let conn = &mut self.conns[c];
        if let Some(fd) = conn.fd.take() {
            let _ = self.epoll.delete(fd.0);
        }
        conn.state = State::Done;
        conn.carry = Vec::new();
        conn.message = Vec::new();
        conn.out = Vec::new();
        conn.out_pos = 0;
    }
}

/// Counts the deliveries in one message: latency, and order per sender (`seqs` holds the
/// next sequence number expected from each sender on this connection).
fn deliveries(
    message: &[u8],
    seqs: &mut [u32],
    counts: &mut Counts,
    (latency, cross_latency, cross): (&mut Histogram, &mut Histogram, &dyn Fn(u32) -> bool),
    now: u64,
    end_us: u64,
) {
    marker::scan(message, |m| {
        let Some(next) = seqs.get_mut(m.sender as usize) else {
            counts.foreign_markers += 1;
            return;
        };
        latency.record(now.saturating_sub(m.send_us));
        if cross(m.sender) {
            cross_latency.record(now.saturating_sub(m.send_us));
        }
        counts.delivered += 1;
        if now <= end_us {
            counts.delivered_in_window += 1;
        }
        if m.seq >= *next {
            *next = m.seq + 1;
        } else {
            counts.out_of_order += 1;
        }
    });
}

/// CPU time of the calling thread, in microseconds.
fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_has_one_worker_and_senders_spread() {
        for (clients, threads) in [(1, 1), (10, 3), (100, 2), (5000, 4)] {
            let mut seen = vec![0; clients];
            for w in 0..threads {
                for (local, c) in owned(w, threads, clients).enumerate() {
                    seen[c] += 1;
                    assert_eq!(c / threads, local, "local index of client {c}");
                }
            }
            assert!(seen.iter().all(|&n| n == 1));
        }
        let senders: Vec<usize> = (0..4).map(|j| sender_client(j, 4, 100)).collect();
        assert_eq!(senders, [0, 25, 50, 75]);
        assert_eq!(sender_client(9, 10, 10), 9);
    }

    #[test]
    fn upgrade_responses() {
        let ok = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        assert_eq!(Worker::upgrade_response(ok), Ok(Some(ok.len() - 2)));
        assert_eq!(
            Worker::upgrade_response(b"HTTP/1.1 101 Switching"),
            Ok(None)
        );
        let full = Worker::upgrade_response(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert!(full.unwrap_err().contains("503"));
        let huge = vec![b'x'; MAX_RESPONSE_HEAD_BYTES + 1];
        assert!(Worker::upgrade_response(&huge).is_err());
    }
}
