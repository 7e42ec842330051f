//! The tutorial's examples (examples/echo.rs, scream.rs, broadcast.rs), run the way a learner
//! runs them: each test builds the example with cargo, starts it on a free port, reads the
//! address from its first line of output, talks to it with real tungstenite clients, and kills
//! it at the end (the `Example` guard), pass or fail.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::{connect, recv, recv_close, send_text, Ws, WAIT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message};

/// The tutorial's steps, in order.
const EXAMPLES: [&str; 3] = ["echo", "scream", "broadcast"];
/// How long a freshly started example may take to print its address.
const STARTUP: Duration = Duration::from_secs(30);

/// Builds the three examples once per test run (in this test binary's profile) and returns the
/// directory holding them.
fn examples_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This binary is target/<profile dir>/deps/examples-<hash>; examples are built into
        // target/<profile dir>/examples/.
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(other) => other,
            None => panic!("unexpected test binary location {}", exe.display()),
        };
        // CI runs this test for Windows under Wine, where cargo (a Linux program) cannot
        // run: it builds the examples beforehand and says so.
        if std::env::var_os("WSCHAT_EXAMPLES_BUILT").is_some() {
            return profile_dir.join("examples");
        }
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["build", "--profile", profile]);
        for name in EXAMPLES {
            cargo.args(["--example", name]);
        }
        // Under `cargo test --target T` the layout is target/T/<profile dir>/: build for T too.
        // (Cargo keeps its .rustc_info.json in the target directory itself, not in target/T.)
        let above = profile_dir.parent().unwrap();
        let in_triple_dir = !above.join(".rustc_info.json").exists()
            && above
                .parent()
                .is_some_and(|t| t.join(".rustc_info.json").exists());
        if in_triple_dir {
            cargo.arg("--target").arg(above.file_name().unwrap());
        }
        let out = cargo.output().expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build --examples failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir.join("examples")
    })
}

/// How the test tells an example its port: the learner can do either.
enum PortBy {
    Argument,
    Env,
}

/// A running example. Dropping it kills the process.
struct Example {
    child: Child,
    lines: Receiver<String>,
    addr: SocketAddr,
}

impl Example {
    /// Starts `examples/NAME` on a free port of 127.0.0.1 and waits for `listening on ADDR`.
    fn start(name: &str, port_by: PortBy) -> Example {
        let mut cmd = Command::new(examples_dir().join(name));
        cmd.env_remove("PORT").env_remove("BIND");
        match port_by {
            PortBy::Argument => cmd.arg("0"),
            PortBy::Env => cmd.env("PORT", "0"),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        // Keep draining stdout, so the example never blocks on a full pipe; lines go to the test.
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut example = Example {
            child,
            lines,
            addr: ([0, 0, 0, 0], 0).into(),
        };
        let first = example
            .lines
            .recv_timeout(STARTUP)
            .unwrap_or_else(|_| panic!("{name} printed no first line"));
        let addr = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{name}'s first line is {first:?}"));
        example.addr = addr.parse().expect("an address");
        assert!(
            example.addr.ip().is_loopback(),
            "binds 127.0.0.1 by default"
        );
        assert_ne!(example.addr.port(), 0, "prints the real port");
        example
    }

    fn connect(&self) -> Ws {
        connect(self.addr, "/")
    }

    /// Waits for a line of output containing `part`; returns it.
    fn expect_line(&self, part: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(part) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line containing {part:?} in time"),
            }
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next text message, as a string.
fn recv_text(ws: &mut Ws) -> String {
    match recv(ws) {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// Closes cleanly and checks the server answers the Close with the same code.
fn close_cleanly(mut ws: Ws) {
    ws.close(None).unwrap();
    assert_eq!(recv_close(&mut ws), None, "the server echoes our Close");
    assert!(matches!(
        ws.read(),
        Err(tungstenite::Error::ConnectionClosed)
    ));
}

#[test]
fn echo_sends_back_text_and_binary() {
    let echo = Example::start("echo", PortBy::Argument);
    let mut ws = echo.connect();
    send_text(&mut ws, "hello ✓");
    assert_eq!(recv(&mut ws), Message::text("hello ✓"));
    let bytes: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(bytes.clone())).unwrap();
    assert_eq!(recv(&mut ws), Message::binary(bytes));
    // Bigger than one read() of the socket: tungstenite reassembles it.
    let big = "z".repeat(200_000);
    send_text(&mut ws, &big);
    assert_eq!(recv_text(&mut ws), big);

    // A second client while the first is still connected: each has its own thread.
    let mut other = echo.connect();
    send_text(&mut other, "me too");
    assert_eq!(recv(&mut other), Message::text("me too"));
    send_text(&mut ws, "still here");
    assert_eq!(recv(&mut ws), Message::text("still here"));

    // A Ping is answered with a Pong carrying the same payload.
    ws.send(Message::Ping(Bytes::from_static(b"are you there?")))
        .unwrap();
    assert_eq!(
        ws.read().unwrap(),
        Message::Pong(Bytes::from_static(b"are you there?"))
    );
    close_cleanly(ws);
    close_cleanly(other);
}

#[test]
fn scream_shouts_and_logs_each_event() {
    let scream = Example::start("scream", PortBy::Env);
    let mut ws = scream.connect();
    scream.expect_line("new connection");
    send_text(&mut ws, "hi");
    assert_eq!(recv(&mut ws), Message::text("HI!!!"));
    scream.expect_line(r#"received "hi", sending "HI!!!""#);
    send_text(&mut ws, "websockets are fun");
    assert_eq!(recv(&mut ws), Message::text("WEBSOCKETS ARE FUN!!!"));

    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    let reply = recv_close(&mut ws).expect("a close code");
    assert_eq!(
        (reply.code, reply.reason.as_str()),
        (CloseCode::Normal, "bye")
    );
    scream.expect_line(r#"close 1000 "bye""#);

    // Binary: the server closes with 1003, and says so.
    let mut ws = scream.connect();
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    let close = recv_close(&mut ws).expect("a close code");
    assert_eq!(close.code, CloseCode::Unsupported);
    assert!(close.reason.contains("text"), "{}", close.reason);
    scream.expect_line("got 3 binary bytes: close 1003");

    // Gone without a Close: the error event.
    let ws = scream.connect();
    scream.expect_line("new connection");
    ws.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(ws);
    scream.expect_line("error:");
}

#[test]
fn broadcast_names_clients_and_sends_the_classic_lines() {
    let room = Example::start("broadcast", PortBy::Argument);
    let mut a = room.connect();
    assert_eq!(
        recv_text(&mut a),
        r#"{"type":0,"info":"user1 comes in !!!"}"#
    );
    let mut b = room.connect();
    let enter2 = r#"{"type":0,"info":"user2 comes in !!!"}"#;
    assert_eq!(recv_text(&mut b), enter2, "the newcomer sees its own line");
    assert_eq!(recv_text(&mut a), enter2);

    send_text(&mut a, "hi");
    for ws in [&mut a, &mut b] {
        assert_eq!(recv_text(ws), r#"{"type":1,"info":"user1: hi"}"#);
    }
    // Markup is escaped for the classic page's innerHTML; JSON escapes the quote.
    send_text(&mut b, r#"<img src=x onerror="alert(1)"> & co"#);
    let escaped = r#"{"type":1,"info":"user2: &lt;img src=x onerror=\"alert(1)\"> &amp; co"}"#;
    for ws in [&mut a, &mut b] {
        assert_eq!(recv_text(ws), escaped);
    }

    // tungstenite's automatic Pong goes out through the broadcaster, whole.
    b.send(Message::Ping(Bytes::from_static(b"ping!"))).unwrap();
    assert_eq!(
        b.read().unwrap(),
        Message::Pong(Bytes::from_static(b"ping!"))
    );

    let mut c = room.connect();
    let enter3 = r#"{"type":0,"info":"user3 comes in !!!"}"#;
    for ws in [&mut a, &mut b, &mut c] {
        assert_eq!(recv_text(ws), enter3);
    }
    // Three clients talking at once all see one order.
    for (ws, word) in [(&mut a, "one"), (&mut b, "two"), (&mut c, "three")] {
        send_text(ws, word);
    }
    let seen: Vec<Vec<String>> = [&mut a, &mut b, &mut c]
        .into_iter()
        .map(|ws| (0..3).map(|_| recv_text(ws)).collect())
        .collect();
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);

    // A clean close: b gets the Close echoed (through the broadcaster), and the others hear
    // at once that it left, without waiting for b to drop its TCP connection.
    b.close(None).unwrap();
    let left = r#"{"type":2,"info":"user2 leaves."}"#;
    for ws in [&mut a, &mut c] {
        assert_eq!(recv_text(ws), left);
    }
    assert_eq!(recv_close(&mut b), None);

    // A client that vanishes without a Close also produces a leave line.
    c.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(c);
    assert_eq!(recv_text(&mut a), r#"{"type":2,"info":"user3 leaves."}"#);

    // Names are never reused.
    let mut d = room.connect();
    assert_eq!(
        recv_text(&mut d),
        r#"{"type":0,"info":"user4 comes in !!!"}"#
    );
    close_cleanly(d);
    close_cleanly(a);
}
