//! Clean shutdown: SIGINT/SIGTERM to the binary (and the library's stop handle) send every
//! client Close 1001, give them the grace period, and end with exit status 0.

// Unix only: it sends signals (SIGTERM, SIGINT, SIGSTOP), and wschat runs only on Unix
// (platform::check_supported).
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use tungstenite::protocol::frame::coding::CloseCode;

/// The wschat binary, started on a free port; killed if a test fails before it exits.
struct Binary {
    child: Child,
    addr: SocketAddr,
}

impl Binary {
    fn start(args: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wschat"))
            .args(["--bind", "127.0.0.1", "--port", "0", "--log-level", "info"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wschat");
        // The log says where it listens; keep draining it so the pipe never fills.
        let (tx, rx) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on ").nth(1) {
                    let _ = tx.send(addr.trim().parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx.recv_timeout(WAIT).expect("wschat logs its address");
        Binary { child, addr }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    /// Waits for the process to exit; returns its exit code and how long that took.
    fn wait_exit(&mut self, within: Duration) -> (Option<i32>, Duration) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), started.elapsed());
            }
            assert!(
                started.elapsed() < within,
                "wschat did not exit within {within:?}"
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut server = Binary::start(&[]);
    let (mut a, _) = join(server.addr, "a");
    let mut echo = connect(server.addr, "/echo");
    server.signal(libc::SIGTERM);
    for ws in [&mut a, &mut echo] {
        let close = recv_close(ws).expect("a close frame");
        assert_eq!(close.code, CloseCode::Away);
        assert_eq!(close.reason.as_str(), "server shutting down");
    }
    // Both clients answered the Close (tungstenite does), so no need to wait out the grace.
    let (code, took) = server.wait_exit(WAIT);
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    // The port is closed.
    assert!(std::net::TcpStream::connect(server.addr).is_err());
}

#[test]
fn sigint_waits_the_grace_period_for_clients_that_do_not_answer() {
    let mut server = Binary::start(&["--shutdown-grace", "0.5"]);
    // A raw client that never answers the Close.
    let (mut mute, _) = raw_upgrade(server.addr, "/?name=mute");
    let started = Instant::now();
    server.signal(libc::SIGINT);
    assert_eq!(read_raw_close(&mut mute), Some(1001));
    let (code, _) = server.wait_exit(WAIT);
    let took = started.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took >= Duration::from_millis(450),
        "waited the grace: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "but not much longer: {took:?}"
    );
}

#[test]
fn a_busy_port_or_a_bad_flag_exits_non_zero_with_one_line() {
    let server = Binary::start(&[]);
    let port = server.addr.port().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--bind", "127.0.0.1", "--port", &port])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = Command::new(env!("CARGO_BIN_EXE_wschat"))
        .args(["--ping-interval=0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ping-interval"), "{err}");
}

#[test]
fn the_library_stop_handle_closes_clients_with_1001_too() {
    let server = start(wschat::Config {
        shutdown_grace: Duration::from_secs(2),
        ..test_config()
    });
    let (mut a, _) = join(server.local_addr(), "a");
    let stopper = thread::spawn(move || server.stop().unwrap());
    let close = recv_close(&mut a).expect("close frame");
    assert_eq!(close.code, CloseCode::Away);
    let took = stopper.join().unwrap();
    assert!(
        took < Duration::from_secs(1),
        "a answered, so no full grace: {took:?}"
    );
}

#[test]
fn sigstop_and_sigcont_do_not_drop_anyone() {
    // A stopped and continued process (Ctrl-Z then fg, a debugger) sees EINTR from reads that
    // have a timeout; that is not a connection error.
    let server = Binary::start(&[]);
    let (mut a, _) = join(server.addr, "a");
    let mut echo = connect(server.addr, "/echo");
    server.signal(libc::SIGSTOP);
    thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGCONT);
    send_text(&mut a, "still here");
    assert_eq!(recv_event(&mut a, "message")["text"], "still here");
    send_text(&mut echo, "me too");
    assert_eq!(recv(&mut echo), tungstenite::Message::text("me too"));
}
