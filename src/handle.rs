//! The handles a caller keeps: [`StopHandle`], which stops a server from any thread, and
//! [`RunningServer`], a server on a thread of its own. They touch nothing of the server but
//! its stop flag, one wake-up connection to its listener, and its thread's handle.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// A handle for the server listening on `bound`.
    pub(crate) fn new(bound: SocketAddr) -> StopHandle {
        StopHandle {
            stopping: Arc::new(AtomicBool::new(false)),
            wake_addr: wake_addr(bound),
        }
    }

    /// The flag itself, for threads that poll it (the cluster's).
    pub(crate) fn flag(&self) -> Arc<AtomicBool> {
        self.stopping.clone()
    }

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

/// A server running on a background thread (see [`Server::spawn`](crate::Server::spawn)). Dropping it stops the
/// server and waits for it.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: StopHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl RunningServer {
    pub(crate) fn new(
        local_addr: SocketAddr,
        stop: StopHandle,
        thread: JoinHandle<io::Result<()>>,
    ) -> RunningServer {
        RunningServer {
            local_addr,
            stop,
            thread: Some(thread),
        }
    }

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
