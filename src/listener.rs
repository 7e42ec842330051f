//! Listener: the accepting thread, and the server's life from `bind` to a clean stop.
//!
//! Owns the `TcpListener`, the table of open connections (to count them against
//! `max_clients` and to cut them at shutdown), and the broadcaster's and history writer's
//! thread handles. It hands
//! each accepted stream to a new client-reader thread and never reads or writes a client
//! socket itself, except to answer 503 when the server is full or a thread cannot start.
//! `--max-clients` is fitted under what the OS allows first (`ceiling`).

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{error, info, warn};

use crate::broadcaster::Broadcaster;
use crate::chat::rooms::Rooms;
use crate::chat::Chat;
use crate::cluster::Bridge;
use crate::config::Config;
use crate::event::{ConnId, Event, EVENT_QUEUE_CAPACITY};
use crate::handle::{RunningServer, StopHandle};
use crate::history_file::{self, HistoryFile};
use crate::history_writer;
use crate::metrics;
use crate::{ceiling, http, platform, reader};

/// Stack for each reader thread. Only touched pages cost memory, but the whole reservation
/// costs address space (tight on 32-bit Raspberry Pi OS); ARCHITECTURE.md ("Memory per
/// connection") has what a reader touches.
const CLIENT_STACK_BYTES: usize = 128 * 1024;
/// Tests: a stack larger than any address space, so that the OS refuses the thread.
#[cfg(test)]
const UNMAPPABLE_STACK_BYTES: usize = usize::MAX / 4 * 3;
/// Stack for the broadcaster thread: it encodes JSON and keeps no large locals.
const BROADCASTER_STACK_BYTES: usize = 256 * 1024;
/// Connections the kernel may hold finished but not yet accepted: std's 128 drops the SYNs
/// of a restarted server's clients all reconnecting at once (capped at somaxconn).
const LISTEN_BACKLOG: u32 = 4096;
/// After an accept error (out of file descriptors), pause before the next try rather than
/// spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// After the broadcaster has finished, how long to wait for reader threads to end.
const READER_EXIT_WAIT: Duration = Duration::from_secs(3);

/// Open connections: one entry from accept until its reader thread ends.
#[derive(Default)]
struct Registry {
    open: Mutex<HashMap<ConnId, Arc<TcpStream>>>,
    emptied: Condvar,
}

impl Registry {
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn insert(&self, id: ConnId, stream: Arc<TcpStream>) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, stream);
    }

    fn remove(&self, id: ConnId) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&id);
        if open.is_empty() {
            self.emptied.notify_all();
        }
    }

    /// Shuts every open socket both ways, which ends any read in progress.
    fn cut_all(&self) {
        for stream in self.open.lock().unwrap_or_else(|e| e.into_inner()).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Waits until no connection is open, or `timeout` passes; returns how many remain.
    fn wait_empty(&self, timeout: Duration) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (open, _) = self
            .emptied
            .wait_timeout_while(open, timeout, |open| !open.is_empty())
            .unwrap_or_else(|e| e.into_inner());
        open.len()
    }
}

/// Stops the server if the broadcaster thread panics: without it no client can be served.
struct StopOnPanic(StopHandle);

impl Drop for StopOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            error!("the broadcaster panicked: stopping the server");
            self.0.stop();
        }
    }
}

/// Removes a connection from the registry when its reader thread ends, however it ends.
struct Deregister {
    registry: Arc<Registry>,
    id: ConnId,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// A bound, not yet running chat server.
///
/// ```no_run
/// let server = wschat::Server::bind(wschat::Config::default())?;
/// println!("open http://{}/", server.local_addr());
/// server.run()?; // blocks until stopped
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Arc<Config>,
    stop: StopHandle,
    registry: Arc<Registry>,
    /// The long-polling sessions, by sid, for the readers.
    sessions: Arc<reader::Sessions>,
    rooms: Rooms,
    history_file: Option<HistoryFile>,
    cluster: Option<Bridge>,
    /// The broadcaster's heartbeat and figures, read by readers for `/healthz` and `/metrics`.
    metrics: Arc<metrics::Shared>,
    /// Tests: how many of the next reader threads get a stack no OS can map, so that std's
    /// `Builder::spawn` really fails for them.
    #[cfg(test)]
    failing_spawns: Arc<std::sync::atomic::AtomicUsize>,
}

impl Server {
    /// Checks `config`, loads the history file if there is one, and binds the address. Fails
    /// with `InvalidInput` for a bad config, and with the OS error when the history file
    /// cannot be read or written or the address cannot be bound (`AddrInUse`).
    ///
    /// ```
    /// use wschat::{Config, Server};
    /// let server = Server::bind(Config { bind: [127, 0, 0, 1].into(), port: 0, ..Config::default() })?;
    /// assert_ne!(server.local_addr().port(), 0);
    ///
    /// let taken = server.local_addr().port();
    /// let again = Server::bind(Config { bind: [127, 0, 0, 1].into(), port: taken, ..Config::default() });
    /// assert_eq!(again.err().unwrap().kind(), std::io::ErrorKind::AddrInUse);
    ///
    /// let bad = Server::bind(Config { max_clients: 0, ..Config::default() });
    /// assert_eq!(bad.err().unwrap().kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind(config: Config) -> io::Result<Server> {
        platform::check_supported().map_err(|msg| io::Error::new(ErrorKind::Unsupported, msg))?;
        config
            .validate()
            .map_err(|msg| io::Error::new(ErrorKind::InvalidInput, msg))?;
        let config = ceiling::fit_to_the_os(config, CLIENT_STACK_BYTES);
        let (mut rooms, history_file) = match &config.history_file {
            Some(path) => {
                let in_file =
                    |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
                let loaded = history_file::load(path, config.history).map_err(in_file)?;
                let rooms = Rooms::new(config.max_rooms, config.history, loaded);
                let file = HistoryFile::open(path, rooms.all_history()).map_err(in_file)?;
                (rooms, Some(file))
            }
            None => (
                Rooms::new(config.max_rooms, config.history, Default::default()),
                None,
            ),
        };
        let listener = TcpListener::bind(config.socket_addr())?;
        let mut cluster = Bridge::open(&config)?;
        if let Some(bridge) = cluster.as_mut() {
            // `--redis` refuses a history file: the rooms start with the cluster's history.
            rooms = Rooms::new(config.max_rooms, config.history, bridge.take_history());
        }
        platform::set_listen_backlog(&listener, LISTEN_BACKLOG);
        let local_addr = listener.local_addr()?;
        let stop = StopHandle::new(local_addr);
        Ok(Server {
            listener,
            local_addr,
            config: Arc::new(config),
            stop,
            registry: Arc::default(),
            sessions: Arc::default(),
            rooms,
            history_file,
            cluster,
            metrics: Arc::default(),
            #[cfg(test)]
            failing_spawns: Arc::default(),
        })
    }

    /// The address actually bound (with the real port when the config asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops this server from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs the server on a background thread and returns at once.
    ///
    /// ```
    /// let config = wschat::Config { bind: [127, 0, 0, 1].into(), port: 0, ..Default::default() };
    /// let server = wschat::Server::bind(config)?.spawn()?;
    /// let (mut echo, _) = tungstenite::connect(format!("ws://{}/echo", server.local_addr())).unwrap();
    /// echo.send(tungstenite::Message::text("hello")).unwrap();
    /// assert_eq!(echo.read().unwrap(), tungstenite::Message::text("hello"));
    /// drop(echo);
    /// server.stop()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn(self) -> io::Result<RunningServer> {
        let local_addr = self.local_addr;
        let stop = self.stop.clone();
        let thread = thread::Builder::new()
            .name("wschat-listener".into())
            .spawn(move || self.run())?;
        Ok(RunningServer::new(local_addr, stop, thread))
    }

    /// Accepts connections until stopped, then shuts down gracefully: every client gets
    /// Close 1001, has `shutdown_grace` to answer, and every thread has ended when this
    /// returns.
    pub fn run(mut self) -> io::Result<()> {
        let (events, receiver) = crossbeam_channel::bounded(EVENT_QUEUE_CAPACITY);
        let rooms = std::mem::replace(&mut self.rooms, Rooms::new(1, 0, Default::default()));
        // The history file's own thread: the broadcaster only queues lines for it.
        let (history, history_writer) = match self.history_file.take() {
            Some(file) => {
                let (queue, thread) = history_writer::spawn(
                    file,
                    rooms.all_history(),
                    &self.config,
                    self.metrics.clone(),
                )?;
                (Some(queue), Some(thread))
            }
            None => (None, None),
        };
        let chat = Chat::new(rooms, self.config.history, self.config.max_rooms);
        let (outlet, bridge) = match self.cluster.take() {
            Some(b) => b
                .start(events.clone(), self.stop.flag(), self.metrics.clone())
                .map(|(o, t)| (Some(o), Some(t)))?,
            None => (None, None),
        };
        let broadcaster =
            Broadcaster::new(self.config.clone(), chat, history, self.metrics.clone())
                .with_cluster(outlet);
        let stop = self.stop.clone();
        let broadcaster = thread::Builder::new()
            .name("broadcaster".into())
            .stack_size(BROADCASTER_STACK_BYTES)
            .spawn(move || {
                let _stop_on_panic = StopOnPanic(stop);
                broadcaster.run(receiver)
            })?;
        info!("wschat listening on {}", self.local_addr);

        let next_id = AtomicU64::new(1);
        for incoming in self.listener.incoming() {
            if self.stop.is_stopping() {
                break;
            }
            match incoming {
                Ok(stream) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    self.accept(id, stream, &events);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    warn!("accept failed: {e}");
                    thread::sleep(ACCEPT_ERROR_PAUSE);
                }
            }
        }
        drop(self.listener);

        info!("stopping: no longer accepting");
        let _ = events.send(Event::Shutdown);
        drop(events);
        let broadcaster_ok = broadcaster.join().is_ok();
        // The broadcaster's end of the history queue is gone: the writer syncs and ends.
        if history_writer.is_some_and(|writer| writer.join().is_err()) {
            error!("the history writer panicked");
        }
        if let Some(bridge) = bridge {
            bridge.join();
        }
        // Connections still in their handshake or downloading the page.
        self.registry.cut_all();
        let left = self.registry.wait_empty(READER_EXIT_WAIT);
        if left > 0 {
            warn!("{left} connection threads did not end in time");
        }
        if !broadcaster_ok {
            // Exit non-zero, so a service manager restarts the server.
            return Err(io::Error::other("the broadcaster thread panicked"));
        }
        info!("stopped");
        Ok(())
    }

    fn accept(&self, id: ConnId, stream: TcpStream, events: &Sender<Event>) {
        let peer = match stream.peer_addr() {
            Ok(peer) => peer,
            Err(_) => return, // already gone
        };
        // Chat is latency-bound: never wait to coalesce small frames.
        let _ = stream.set_nodelay(true);
        if self.registry.len() >= self.config.max_clients {
            warn!(
                "#{id} {peer} refused: {} connections open",
                self.config.max_clients
            );
            let max = self.config.max_clients;
            refuse(&stream, &format!("server full: {max} connections open"));
            return;
        }
        let stream = Arc::new(stream);
        self.registry.insert(id, stream.clone());
        let deregister = Deregister {
            registry: self.registry.clone(),
            id,
        };
        let config = self.config.clone();
        let events = events.clone();
        let metrics = self.metrics.clone();
        let sessions = self.sessions.clone();
        let reply_to = stream.clone();
        // Builder::spawn, never thread::spawn: a thread the OS will not start is an error
        // for this connection alone, not a panic.
        let spawned = thread::Builder::new()
            .name(format!("client-{id}"))
            .stack_size(self.reader_stack_bytes())
            .spawn(move || {
                let _deregister = deregister;
                reader::run(id, stream, peer, &config, &events, &metrics, &sessions);
            });
        if let Err(e) = spawned {
            // The closure (and its Deregister) was dropped with the error.
            warn!("#{id} {peer} refused: cannot start a thread: {e}");
            refuse(
                &reply_to,
                "server busy: no thread for this connection, try again",
            );
        }
    }

    /// The stack a new reader gets: in tests, one no OS can map, when a failure was asked for.
    fn reader_stack_bytes(&self) -> usize {
        #[cfg(test)]
        if self
            .failing_spawns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return UNMAPPABLE_STACK_BYTES;
        }
        CLIENT_STACK_BYTES
    }
}

/// Answers 503 at once, from the listener's thread, without reading a request: the server is
/// full (or out of threads) and must not spend a thread on it.
fn refuse(stream: &TcpStream, why: &str) {
    let _ = stream.set_nonblocking(true);
    // Read what already arrived, so closing does not turn into a reset that could destroy
    // the response before the client reads it.
    let mut scratch = [0u8; 2048];
    let _ = (&*stream).read(&mut scratch);
    let _ = http::write_error(stream, 503, why);
    let _ = stream.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// The next text message, skipping pings.
    fn next_text(ws: &mut tungstenite::WebSocket<impl Read + io::Write>) -> String {
        loop {
            match ws.read().expect("a message") {
                tungstenite::Message::Text(text) => return text.to_string(),
                _ => continue,
            }
        }
    }

    /// On Linux the map count alone sets a ceiling: a --max-clients far above it is lowered
    /// when the server binds.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_max_clients_past_what_the_os_allows_is_lowered_at_bind() {
        let config = Config {
            bind: Ipv4Addr::LOCALHOST.into(),
            port: 0,
            max_clients: 100_000_000,
            ..Config::default()
        };
        let server = Server::bind(config).unwrap();
        let limits = platform::process_limits();
        let expected = ceiling::ceiling(&limits, CLIENT_STACK_BYTES).unwrap().0;
        assert!(server.config.max_clients < 100_000_000);
        assert!(
            server.config.max_clients.abs_diff(expected) < 100,
            "{expected}"
        );
    }

    /// A reader thread the OS refuses (std's `Builder::spawn` returns an error) costs only
    /// its own connection: it gets 503, its slot is freed, and everyone else chats on.
    #[test]
    fn a_reader_thread_that_cannot_start_costs_only_its_own_connection() {
        let config = Config {
            bind: Ipv4Addr::LOCALHOST.into(),
            port: 0,
            max_clients: 2,
            ..Config::default()
        };
        let server = Server::bind(config).unwrap();
        let failing = server.failing_spawns.clone();
        let server = server.spawn().unwrap();
        let url = |name: &str| format!("ws://{}/?name={name}", server.local_addr());
        let (mut ada, _) = tungstenite::connect(url("ada")).expect("ada connects");
        assert!(next_text(&mut ada).contains("ada comes in"));

        failing.store(1, Ordering::SeqCst);
        match tungstenite::connect(url("bob")) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or(&[]));
                assert!(body.contains("no thread"), "{body}");
            }
            other => panic!("bob should get 503, got {:?}", other.map(|_| ())),
        }
        assert_eq!(
            failing.load(Ordering::SeqCst),
            0,
            "bob's thread was refused"
        );

        // With max_clients 2, cy gets in only if bob's failed slot was given back.
        let (mut cy, _) = tungstenite::connect(url("cy")).expect("cy connects");
        assert!(next_text(&mut cy).contains("cy comes in"));
        assert!(next_text(&mut ada).contains("cy comes in"));
        ada.send(tungstenite::Message::text("still here")).unwrap();
        assert!(next_text(&mut cy).contains("still here"));
        drop((ada, cy));
        server.stop().unwrap();
    }
}
