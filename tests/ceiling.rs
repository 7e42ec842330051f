//! One node's ceiling, end to end: the wschat binary started under a real OS limit (an
//! open-file limit of 200, soft and hard, set in the child before it runs) lowers
//! `--max-clients` with one warning line, holds that many connections, and answers 503 past
//! it, instead of failing its accepts (where a client would wait for nothing).

// Unix only: it sets the child's rlimit (pre_exec, setrlimit).
#![cfg(unix)]

mod common;

use std::io::{self, BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::*;

/// The child's open-file limit, soft and hard (so wschat cannot raise it).
const OPEN_FILES: u64 = 200;

/// The wschat binary; killed when the test ends, pass or fail.
struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn under_a_low_open_file_limit_max_clients_is_lowered_and_the_next_client_gets_503() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wschat"));
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--max-clients",
        "5000",
    ])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the struct given.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: OPEN_FILES as libc::rlim_t,
                rlim_max: OPEN_FILES as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut server = Binary(cmd.spawn().expect("start wschat"));
    let (tx, log) = mpsc::channel();
    let stderr = BufReader::new(server.0.stderr.take().unwrap());
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut warnings = Vec::new();
    let addr = loop {
        let line = log.recv_timeout(WAIT).expect("wschat logs its address");
        if line.contains("WARN") {
            warnings.push(line.clone());
        }
        if let Some(addr) = line.split("listening on ").nth(1) {
            break addr.trim().parse().unwrap();
        }
    };
    assert_eq!(warnings.len(), 1, "one warning: {warnings:?}");
    assert!(
        warnings[0].contains("the open-file limit"),
        "{}",
        warnings[0]
    );
    let lowered: usize = warnings[0]
        .split("lowered to ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the new --max-clients in the warning");
    assert!((100..OPEN_FILES as usize).contains(&lowered), "{lowered}");

    // Every one of them is served, and the next one is told at once.
    let clients: Vec<Ws> = (0..lowered).map(|_| connect(addr, "/echo")).collect();
    match try_connect(addr, "/echo") {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!(
            "client {} should get 503: {:?}",
            lowered + 1,
            other.map(|_| ())
        ),
    }
    let mut first = clients.into_iter().next().unwrap();
    send_text(&mut first, "still served");
    assert_eq!(recv(&mut first), tungstenite::Message::text("still served"));
    assert!(
        server.0.try_wait().unwrap().is_none(),
        "wschat is still running"
    );
}
