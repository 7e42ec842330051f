//! After thousands of connections come and go, the server is back where it started: the same
//! threads, the same file descriptors, about the same memory. (One test in this file: it
//! measures the whole process.)

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use common::*;

const CYCLES: usize = 10_000;
const WORKERS: usize = 4;

#[test]
fn ten_thousand_connect_disconnect_cycles_return_to_baseline() {
    let server = start(wschat::Config {
        max_clients: 4096,
        handshake_timeout: Duration::from_secs(2),
        ..test_config()
    });
    let addr = server.local_addr();
    // A chat client that reads everything, all along, on its own thread.
    let (mut watcher, _) = join(addr, "watcher");
    let watching = thread::spawn(move || {
        let (mut enters, mut leaves) = (0, 0);
        loop {
            let v = recv_json(&mut watcher);
            match v["event"].as_str() {
                Some("enter") => enters += 1,
                Some("leave") => leaves += 1,
                Some("message") if v["text"] == "still here" => return (enters, leaves),
                _ => {}
            }
        }
    });
    // Warm up (thread stacks, allocator arenas, the room) before taking the baseline.
    let idle_threads = process_usage().0;
    for i in 0..200 {
        drop(connect(addr, &format!("/?name=warm{i}")));
    }
    eventually("warm-up connections end", || {
        process_usage().0 <= idle_threads
    });
    thread::sleep(Duration::from_millis(200));
    let (threads_before, fds_before, rss_before) = process_usage();

    thread::scope(|s| {
        for w in 0..WORKERS {
            s.spawn(move || {
                for i in (w..CYCLES).step_by(WORKERS) {
                    match i % 5 {
                        // A chat client that says something and closes properly.
                        0 => {
                            let mut ws = connect(addr, &format!("/?name=c{i}"));
                            send_text(&mut ws, "hi");
                            ws.close(None).unwrap();
                            while ws.read().is_ok() {}
                        }
                        // A chat client that just drops its TCP connection.
                        1 => {
                            let ws = connect(addr, &format!("/?name=d{i}"));
                            ws.get_ref().shutdown(Shutdown::Both).unwrap();
                        }
                        // An echo client.
                        2 => {
                            let mut ws = connect(addr, "/echo");
                            send_text(&mut ws, "echo");
                            recv(&mut ws);
                        }
                        // A page download.
                        3 => assert_eq!(http_get(addr, "/chat.css").0, 200),
                        // Garbage instead of a request.
                        _ => {
                            let mut tcp = TcpStream::connect(addr).unwrap();
                            let _ = tcp.write_all(b"\x00\x01garbage\r\n\r\n");
                        }
                    }
                }
            });
        }
    });

    // Every connection's thread ends and its descriptor is closed.
    let mut after = process_usage();
    eventually("threads and descriptors back to the baseline", || {
        after = process_usage();
        after.0 <= threads_before && after.1 <= fds_before
    });
    let (threads_after, fds_after, rss_after) = after;
    eprintln!(
        "{CYCLES} cycles: threads {threads_before} -> {threads_after}, fds {fds_before} -> \
         {fds_after}, RSS {rss_before} -> {rss_after} KiB"
    );
    // Memory: a generous bound (allocators keep some freed memory); a leak of even a few
    // hundred bytes per connection would pass 4 MiB over 10,000 cycles.
    assert!(
        rss_after < rss_before + 4 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    // The server still works, and the watcher saw every chat client come and go.
    let (mut last, _) = join(addr, "last");
    send_text(&mut last, "still here");
    let (enters, leaves) = watching.join().unwrap();
    let chat_clients = 200 + 2 * CYCLES / 5;
    assert_eq!((enters, leaves), (chat_clients + 1, chat_clients));
}
