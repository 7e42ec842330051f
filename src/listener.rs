//! Listener: the accepting thread, and the server's life from `bind` to a clean stop.
//!
//! Owns the `TcpListener`, the table of open connections (to count them against
//! `max_clients` and to cut them at shutdown), and the broadcaster's thread handle. It hands
//! each accepted stream to a new client-reader thread and never reads or writes a client
//! socket itself, except to answer 503 when the server is full.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use log::{error, info, warn};

use crate::broadcaster::Broadcaster;
use crate::chat::rooms::Rooms;
use crate::chat::Chat;
use crate::config::Config;
use crate::event::{ConnId, Event, EVENT_QUEUE_CAPACITY};
use crate::history_file::{self, HistoryFile};
use crate::{http, platform, reader};

/// Stack for each reader thread. Only touched pages cost memory, but the whole reservation
/// costs address space (tight on 32-bit Raspberry Pi OS); ARCHITECTURE.md ("Memory per
/// connection") has what a reader touches.
const CLIENT_STACK_BYTES: usize = 128 * 1024;
/// Stack for the broadcaster thread: it encodes JSON and keeps no large locals.
const BROADCASTER_STACK_BYTES: usize = 256 * 1024;
/// Connections the kernel may hold finished but not yet accepted: std's 128 drops the SYNs
/// of a restarted server's clients all reconnecting at once (capped at somaxconn).
const LISTEN_BACKLOG: u32 = 4096;
/// File descriptors the server needs besides one per connection (listener, logs, history).
const SPARE_FDS: u64 = 32;
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
        let (rooms, history_file) = match &config.history_file {
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
        platform::set_listen_backlog(&listener, LISTEN_BACKLOG);
        let local_addr = listener.local_addr()?;
        let stop = StopHandle {
            stopping: Arc::new(AtomicBool::new(false)),
            wake_addr: wake_addr(local_addr),
        };
        Ok(Server {
            listener,
            local_addr,
            config: Arc::new(config),
            stop,
            registry: Arc::default(),
            sessions: Arc::default(),
            rooms,
            history_file,
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
        Ok(RunningServer {
            local_addr,
            stop,
            thread: Some(thread),
        })
    }

    /// Accepts connections until stopped, then shuts down gracefully: every client gets
    /// Close 1001, has `shutdown_grace` to answer, and every thread has ended when this
    /// returns.
    pub fn run(mut self) -> io::Result<()> {
        let (events, receiver) = crossbeam_channel::bounded(EVENT_QUEUE_CAPACITY);
        check_open_file_limit(self.config.max_clients);
        let rooms = std::mem::replace(&mut self.rooms, Rooms::new(1, 0, Default::default()));
        let chat = Chat::new(rooms, self.config.history, self.config.max_rooms);
        let broadcaster = Broadcaster::new(self.config.clone(), chat, self.history_file.take());
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
            if self.stop.stopping.load(Ordering::SeqCst) {
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
            refuse_full(&stream, self.config.max_clients);
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
        let sessions = self.sessions.clone();
        let spawned = thread::Builder::new()
            .name(format!("client-{id}"))
            .stack_size(CLIENT_STACK_BYTES)
            .spawn(move || {
                let _deregister = deregister;
                reader::run(id, stream, peer, &config, &events, &sessions);
            });
        if let Err(e) = spawned {
            // The closure (and its Deregister) was dropped with the error.
            warn!("#{id} {peer} refused: cannot start a thread: {e}");
        }
    }
}

/// Answers 503 at once, from the listener's thread, without reading a request: the server is
/// full and must not spend a thread on it.
fn refuse_full(stream: &TcpStream, max: usize) {
    let _ = stream.set_nonblocking(true);
    // Read what already arrived, so closing does not turn into a reset that could destroy
    // the response before the client reads it.
    let mut scratch = [0u8; 2048];
    let _ = (&*stream).read(&mut scratch);
    let _ = http::write_error(stream, 503, &format!("server full: {max} connections open"));
    let _ = stream.shutdown(Shutdown::Write);
}

/// Where to connect to wake a blocked `accept`: the bound address, with the unspecified
/// address replaced by loopback.
fn wake_addr(bound: SocketAddr) -> SocketAddr {
    let ip = match bound.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, bound.port())
}

/// Stops a running server from any thread (a signal handler's, a test's). Cloneable.
#[derive(Clone, Debug)]
pub struct StopHandle {
    stopping: Arc<AtomicBool>,
    wake_addr: SocketAddr,
}

impl StopHandle {
    /// Asks the server to stop: it stops accepting, sends every client Close 1001, and
    /// `run` returns once the grace period is over or every client has gone. Returns at once;
    /// calling it again does nothing.
    ///
    /// ```
    /// use std::thread;
    /// let server = wschat::Server::bind(wschat::Config { port: 0, ..Default::default() })?;
    /// let stop = server.stop_handle();
    /// let running = thread::spawn(move || server.run());
    /// stop.stop(); // from any thread; a signal handler does the same
    /// running.join().unwrap()?;
    /// assert!(stop.is_stopping());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // `accept` blocks; a connection of our own wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.wake_addr, Duration::from_secs(1));
    }

    /// True once `stop` has been called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A server running on a background thread (see [`Server::spawn`]). Dropping it stops the
/// server and waits for it.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Stops the server and waits until it has shut down; returns how long that took.
    pub fn stop(mut self) -> io::Result<Duration> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> io::Result<Duration> {
        let started = Instant::now();
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .map_err(|_| io::Error::other("the server thread panicked"))??;
        }
        Ok(started.elapsed())
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Each connection holds a file descriptor: raise the soft limit (often 1024) to the hard
/// one, and warn when even that is too low for `max_clients`.
fn check_open_file_limit(max_clients: usize) {
    let Some(limit) = platform::raise_open_file_limit() else {
        return;
    };
    let needed = (max_clients as u64).saturating_add(SPARE_FDS);
    if limit < needed {
        warn!(
            "the open-file limit is {limit}, below the {needed} that --max-clients {max_clients} \
             needs: connections past it will fail (raise it with `ulimit -n` or LimitNOFILE=)"
        );
    }
}
