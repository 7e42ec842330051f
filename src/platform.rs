//! Platform: every `unsafe` block and every OS-specific call in wschat, in one place.
//!
//! The rest of the crate denies `unsafe_code` and calls only the portable functions here.
//! Each one says what it does where the OS has no such thing: Linux gets all of them; other
//! Unix systems (macOS, the BSDs) get the write path and the limits, but keep their stacks and
//! their allocator's free memory; elsewhere the server refuses to start (`check_supported`).
//! The limits include what bounds one node's connections (`process_limits`, for `ceiling`).

#![allow(unsafe_code)]

use std::io;
use std::net::{TcpListener, TcpStream};

/// Stack the read loop touches after the handshake (release build, measured with
/// `bench/thread_stacks.py`): the stack release only pays where a page is no larger.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const READ_LOOP_STACK_BYTES: usize = 8 * 1024;

/// `Ok` where the broadcaster's write path works: a `send` that never blocks on a socket that
/// its reader keeps in blocking mode. The error is the one line to show a user.
pub(crate) fn check_supported() -> Result<(), String> {
    if cfg!(unix) {
        Ok(())
    } else {
        Err(
            "wschat needs a Unix system (Linux, macOS or a BSD) to run: its broadcaster \
             writes with send(MSG_DONTWAIT), which Windows lacks; use WSL"
                .into(),
        )
    }
}

/// Prepares a client socket for the broadcaster: a fixed kernel send buffer of `send_buffer`
/// bytes (else it grows to megabytes for a peer that stops reading, out of reach of the
/// backlog limits), and, where `send` has no MSG_NOSIGNAL, no SIGPIPE on this socket.
pub(crate) fn prepare_write_side(stream: &TcpStream, send_buffer_bytes: Option<usize>) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let fd = stream.as_raw_fd();
        if let Some(bytes) = send_buffer_bytes {
            let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
            set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size, "SO_SNDBUF");
        }
        #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_NOSIGPIPE, 1, "SO_NOSIGPIPE");
    }
    #[cfg(not(unix))]
    let _ = (stream, send_buffer_bytes);
}

#[cfg(unix)]
fn set_int_option(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
    what: &str,
) {
    // SAFETY: a valid socket fd and a pointer to a c_int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        log::debug!("{what}: {}", io::Error::last_os_error());
    }
}

/// `send(2)` that never blocks (MSG_DONTWAIT) and never raises SIGPIPE, on a socket the
/// reader keeps in blocking mode (`set_nonblocking` would change the reader's side too).
pub(crate) fn send_nonblocking(stream: &TcpStream, buf: &[u8]) -> io::Result<usize> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SIGPIPE is off for the socket itself (prepare_write_side).
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let flags = libc::MSG_DONTWAIT;
        // SAFETY: `buf` is valid for `buf.len()` bytes, and the fd belongs to `stream`, which
        // the caller borrows for the duration of the call.
        let n = unsafe { libc::send(stream.as_raw_fd(), buf.as_ptr().cast(), buf.len(), flags) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (stream, buf);
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Returns the allocator's free memory to the OS (glibc keeps it in its arenas otherwise);
/// nothing elsewhere.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Raises a listening socket's accept queue to `backlog` (listen(2) again on a listening
/// socket only changes its backlog; the kernel caps it at somaxconn). std listens with 128.
pub(crate) fn set_listen_backlog(listener: &TcpListener, backlog: u32) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
        // SAFETY: listen(2) on a socket this TcpListener owns; it touches no memory of ours.
        if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
            log::warn!("listen backlog {backlog}: {}", io::Error::last_os_error());
        }
    }
    #[cfg(not(unix))]
    let _ = (listener, backlog);
}

/// OPEN_MAX in macOS's <sys/syslimits.h>: the highest soft open-file limit setrlimit takes.
#[cfg(target_vendor = "apple")]
const APPLE_OPEN_MAX: libc::rlim_t = 10_240;

/// Raises the soft open-file limit to the hard one, and returns the limit now in force
/// (`None` where there is no such limit, or it cannot be read).
pub(crate) fn raise_open_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct given; nothing else.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let soft = limit.rlim_cur;
                limit.rlim_cur = limit.rlim_max;
                // macOS refuses a soft limit above OPEN_MAX when the hard one is "unlimited".
                #[cfg(target_vendor = "apple")]
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    limit.rlim_cur = limit.rlim_max.min(APPLE_OPEN_MAX).max(soft);
                }
                let _ = soft;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                }
            }
        }
        #[allow(clippy::useless_conversion)] // rlim_t is u32 on some 32-bit targets
        Some(u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    None
}

/// What the OS lets this process hold, for one node's ceiling (`ceiling`): each limit is
/// `None` where the OS has no such limit, it is unlimited, or it cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcessLimits {
    /// `vm.max_map_count`: memory mappings per process (Linux).
    pub map_count: Option<u64>,
    /// Mappings this process holds already (Linux: lines of /proc/self/maps).
    pub maps_in_use: Option<u64>,
    /// `kernel.threads-max`: threads on the whole system (Linux).
    pub threads_max: Option<u64>,
    /// `kernel.pid_max`: every thread takes a pid, system-wide (Linux).
    pub pid_max: Option<u64>,
    /// `RLIMIT_NPROC`: processes and threads of this user (the kernel ignores it for root).
    pub user_processes: Option<u64>,
    /// `RLIMIT_NOFILE`, the soft limit in force (after `raise_open_file_limit`).
    pub open_files: Option<u64>,
    /// On a 32-bit host, the address space a process can map: about 3 GiB, less if
    /// `RLIMIT_AS` says so. `None` on 64-bit hosts, where it is no limit.
    pub address_space_bytes: Option<u64>,
}

/// User address space of a 32-bit Linux process (the 3/1 split Raspberry Pi OS uses).
#[cfg_attr(target_pointer_width = "64", allow(dead_code))]
const ADDRESS_SPACE_32_BIT_BYTES: u64 = 3 << 30;

/// Reads the limits that bound how many reader threads and sockets this process can hold.
pub(crate) fn process_limits() -> ProcessLimits {
    let address_space = cfg!(target_pointer_width = "32").then_some(ADDRESS_SPACE_32_BIT_BYTES);
    #[cfg(unix)]
    {
        let root = {
            // SAFETY: getuid only reads the caller's real user id.
            unsafe { libc::getuid() == 0 }
        };
        ProcessLimits {
            map_count: read_proc_number("/proc/sys/vm/max_map_count"),
            maps_in_use: std::fs::read_to_string("/proc/self/maps")
                .ok()
                .map(|maps| maps.lines().count() as u64),
            threads_max: read_proc_number("/proc/sys/kernel/threads-max"),
            pid_max: read_proc_number("/proc/sys/kernel/pid_max"),
            user_processes: if root {
                None
            } else {
                soft_limit(libc::RLIMIT_NPROC)
            },
            open_files: soft_limit(libc::RLIMIT_NOFILE),
            address_space_bytes: match (address_space, soft_limit(libc::RLIMIT_AS)) {
                (Some(space), Some(limit)) => Some(space.min(limit)),
                (space, _) => space,
            },
        }
    }
    #[cfg(not(unix))]
    ProcessLimits {
        address_space_bytes: address_space,
        ..ProcessLimits::default()
    }
}

/// A number in a /proc file, such as `/proc/sys/vm/max_map_count`.
#[cfg(unix)]
fn read_proc_number(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A resource's soft limit; `None` when unlimited or unreadable.
#[cfg(unix)]
fn soft_limit(resource: RlimitResource) -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct given; nothing else.
    if unsafe { libc::getrlimit(resource, &mut limit) } != 0
        || limit.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    #[allow(clippy::useless_conversion)] // rlim_t is u32 on some 32-bit targets
    u64::try_from(limit.rlim_cur).ok()
}

/// getrlimit's resource argument: a distinct type on glibc, a c_int elsewhere.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
type RlimitResource = libc::__rlimit_resource_t;
#[cfg(all(unix, not(all(target_os = "linux", target_env = "gnu"))))]
type RlimitResource = libc::c_int;

/// Gives back to the OS the stack pages a reader's handshake touched below the frames still
/// in use. A reader then waits in `read` for hours with a shallow stack; without this, the
/// deepest point of its handshake would stay resident for the connection's whole life.
/// Linux only; elsewhere it does nothing.
pub(crate) fn release_unused_stack() {
    #[cfg(target_os = "linux")]
    {
        // The boundary must lie below this frame and below the return address the madvise
        // call pushes: a local of a function called from here lies below both.
        let deepest_in_use = callee_stack_address();
        let Some((low, size)) = current_stack() else {
            return;
        };
        let Some(len) = releasable_bytes(
            low,
            size,
            deepest_in_use,
            page_bytes(),
            READ_LOOP_STACK_BYTES,
        ) else {
            return;
        };
        // SAFETY: `[low, low + len)` is whole pages of this thread's own stack mapping, all
        // below the page holding `deepest_in_use`, where no live frame exists; touched
        // again, they come back as zeroed pages.
        unsafe {
            libc::madvise(low as *mut libc::c_void, len, libc::MADV_DONTNEED);
        }
    }
}

/// The system's page size in bytes (4 KiB on x86-64; 16 KiB on a Raspberry Pi 5's default
/// kernel; 64 KiB on some arm64 servers).
#[cfg(target_os = "linux")]
fn page_bytes() -> usize {
    // SAFETY: sysconf reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(0)
}

/// The calling thread's stack mapping: its lowest address and its size.
#[cfg(target_os = "linux")]
fn current_stack() -> Option<(usize, usize)> {
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; pthread_attr_getstack
    // reads its stack bounds; the attr is destroyed after use.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut low: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut low, &mut size) == 0;
        libc::pthread_attr_destroy(&mut attr);
        ok.then_some((low as usize, size))
    }
}

/// How many bytes from the bottom of a stack `[low, low + size)` may be released: the whole
/// pages below the page that holds `deepest_in_use`. `None` when there are none, when the
/// inputs make no sense, or when a page is larger than `read_loop_bytes`, the stack the read
/// loop touches (it would fault the page straight back in, for nothing).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn releasable_bytes(
    low: usize,
    size: usize,
    deepest_in_use: usize,
    page: usize,
    read_loop_bytes: usize,
) -> Option<usize> {
    if !page.is_power_of_two() || page > read_loop_bytes || low == 0 || low % page != 0 {
        return None;
    }
    let high = deepest_in_use & !(page - 1);
    (high > low && high < low + size).then(|| high - low)
}

/// The address of a local one call deeper than the caller: below everything in the caller's
/// frame and below the return address the caller's next call pushes.
#[cfg(target_os = "linux")]
#[inline(never)]
fn callee_stack_address() -> usize {
    let here = 0u8;
    std::hint::black_box(std::ptr::addr_of!(here)) as usize
}

// ---- Durable files (the history writer) ------------------------------------------------

/// Makes a rename in `dir` durable: fsync of the directory, where a directory can be opened
/// and synced (Unix). Elsewhere (Windows) it does nothing: NTFS journals the rename itself.
pub(crate) fn sync_dir(dir: &std::path::Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: usize = 1024;
    /// A read loop that touches more than any page here, to test the boundary alone.
    const DEEP_LOOP_BYTES: usize = 64 * KIB;

    /// The boundary is the page holding the deepest live byte, in the system's page size: with
    /// a 4 KiB constant (the arithmetic before sysconf), a 16 KiB page released 100 KiB here
    /// instead of 96, the live frames between 96 and 100 KiB included.
    #[test]
    fn the_release_stops_at_the_page_in_use_for_4_16_and_64_kib_pages() {
        let size = 256 * KIB;
        let low = 0x7f00_0000_0000 - size; // page-aligned for every size here
        let deepest = low + 100 * KIB + 4000;
        for (page, released) in [
            (4 * KIB, 100 * KIB),
            (16 * KIB, 96 * KIB),
            (64 * KIB, 64 * KIB),
        ] {
            assert_eq!(
                releasable_bytes(low, size, deepest, page, DEEP_LOOP_BYTES),
                Some(released),
                "{} KiB pages",
                page / KIB
            );
        }
    }

    /// Whatever the page size and depth, what is released is whole pages, all below the page
    /// in use.
    #[test]
    fn the_release_never_reaches_the_page_in_use() {
        let size = 256 * KIB;
        let low = 0x7f00_0000_0000 - size;
        for page in [4 * KIB, 16 * KIB, 64 * KIB] {
            for offset in (0..size).step_by(1000) {
                let deepest = low + offset;
                let page_in_use = deepest - deepest % page;
                match releasable_bytes(low, size, deepest, page, DEEP_LOOP_BYTES) {
                    Some(len) => {
                        assert_eq!(len % page, 0, "{page}: not whole pages");
                        assert_eq!(low + len, page_in_use, "{page} at {offset}");
                    }
                    None => assert_eq!(page_in_use, low, "{page} at {offset}: nothing released"),
                }
            }
        }
    }

    /// With the read loop's real depth (8 KiB), 4 KiB pages are released as before, and 16 or
    /// 64 KiB pages are left alone: the loop would touch the page again at once.
    #[test]
    fn pages_larger_than_the_read_loop_touches_are_left_alone() {
        let (low, size) = (0x100_0000, 256 * KIB);
        let deepest = low + 200 * KIB + 5;
        let release = |page| releasable_bytes(low, size, deepest, page, READ_LOOP_STACK_BYTES);
        assert_eq!(release(4 * KIB), Some(200 * KIB));
        assert_eq!(release(16 * KIB), None);
        assert_eq!(release(64 * KIB), None);
    }

    #[test]
    fn nonsense_is_left_alone() {
        let size = 128 * KIB;
        let release = |low, deepest, page| releasable_bytes(low, size, deepest, page, 8 * KIB);
        assert_eq!(release(0, 100, 4 * KIB), None);
        assert_eq!(release(4097, 100 * KIB, 4 * KIB), None);
        assert_eq!(release(4 * KIB, 4 * KIB + 5, 4 * KIB), None);
        assert_eq!(release(4 * KIB, 1 << 30, 4 * KIB), None);
        assert_eq!(release(4 * KIB, 100 * KIB, 3000), None);
    }
}
