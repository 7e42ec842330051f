//! Thin, safe wrappers over the few system calls the generator and the sink use: epoll and
//! non-blocking TCP sockets. Every file descriptor here is owned by an [`Fd`] that closes it.

use std::io;
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;
use std::time::Duration;

/// An owned file descriptor, closed on drop.
#[derive(Debug)]
pub struct Fd(pub RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret as usize)
    }
}

pub const READABLE: u32 = libc::EPOLLIN as u32;
pub const WRITABLE: u32 = libc::EPOLLOUT as u32;
/// Error or hang-up: reported whether asked for or not.
pub const BROKEN: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

/// An epoll instance (level-triggered).
pub struct Epoll {
    fd: Fd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain system call.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        Ok(Epoll {
            fd: Fd(fd),
            events: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: interest,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        check(unsafe { libc::epoll_ctl(self.fd.0, op, fd, &mut ev) }).map(drop)
    }

    pub fn add(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    pub fn modify(&self, fd: RawFd, interest: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    /// Watches `fd` for reading, and for writing too while `want_write` (unsent bytes).
    pub fn watch(&self, fd: RawFd, token: u64, want_write: bool) -> io::Result<()> {
        let write = if want_write { WRITABLE } else { 0 };
        self.modify(fd, READABLE | write, token)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits up to `timeout` (rounded up to whole milliseconds) and returns the ready
    /// `(token, events)` pairs.
    pub fn wait(&mut self, timeout: Duration) -> io::Result<impl Iterator<Item = (u64, u32)> + '_> {
        let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int;
        let n = loop {
            // SAFETY: `events` has room for `len` entries.
            let r = unsafe {
                libc::epoll_wait(
                    self.fd.0,
                    self.events.as_mut_ptr(),
                    self.events.len() as libc::c_int,
                    ms,
                )
            };
            match check(r) {
                Ok(n) => break n as usize,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(self.events[..n].iter().map(|e| (e.u64, e.events)))
    }
}

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn v4(addr: SocketAddr) -> io::Result<SocketAddrV4> {
    match addr {
        SocketAddr::V4(a) => Ok(a),
        SocketAddr::V6(_) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only IPv4 addresses are supported",
        )),
    }
}

/// Sets an integer socket option; failures are ignored (options here are tuning only).
pub fn set_int_opt(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: `value` outlives the call and its size is passed.
    unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A new non-blocking IPv4 TCP socket.
fn tcp_socket() -> io::Result<Fd> {
    // SAFETY: plain system call.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    Ok(Fd(fd))
}

/// Starts a non-blocking connect with Nagle off. The socket becomes writable when the
/// connection is up or has failed ([`take_error`] tells which).
pub fn connect_nonblocking(addr: SocketAddr) -> io::Result<Fd> {
    let sa = sockaddr_in(v4(addr)?);
    let fd = tcp_socket()?;
    set_int_opt(fd.0, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    // SAFETY: `sa` is a valid sockaddr_in and its size is passed.
    let r = unsafe {
        libc::connect(
            fd.0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(fd)
}

/// The pending error of a socket (`SO_ERROR`), e.g. a refused connect.
pub fn take_error(fd: RawFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r < 0 {
        Some(io::Error::last_os_error())
    } else if err != 0 {
        Some(io::Error::from_raw_os_error(err))
    } else {
        None
    }
}

/// A non-blocking listening socket with `SO_REUSEADDR`.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<Fd> {
    let sa = sockaddr_in(v4(addr)?);
    let fd = tcp_socket()?;
    set_int_opt(fd.0, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
    // SAFETY: `sa` is a valid sockaddr_in and its size is passed.
    check(unsafe {
        libc::bind(
            fd.0,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    })?;
    // SAFETY: plain system call.
    check(unsafe { libc::listen(fd.0, backlog) })?;
    Ok(fd)
}

/// Accepts one connection as a non-blocking socket with Nagle off; `WouldBlock` when none
/// is waiting.
pub fn accept(listener: RawFd) -> io::Result<Fd> {
    // SAFETY: null address pointers are allowed.
    let fd = Fd(check(unsafe {
        libc::accept4(
            listener,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    })?);
    set_int_opt(fd.0, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1);
    Ok(fd)
}

/// `read(2)`: `Ok(0)` is end of stream; `WouldBlock` when nothing is there.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    check_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// `send(2)` without SIGPIPE: the number of bytes taken, `WouldBlock` when none.
pub fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    check_size(unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    })
}
