//! The other endpoints: /echo, /scream, unknown paths, and the page over plain HTTP.

mod common;

use common::*;
use tungstenite::Message;

#[test]
fn echo_returns_text_and_binary_unchanged() {
    let server = start_default();
    let mut ws = connect(server.local_addr(), "/echo");
    send_text(&mut ws, "hello ✓");
    assert_eq!(recv(&mut ws), Message::text("hello ✓"));
    let bytes: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(bytes.clone())).unwrap();
    assert_eq!(recv(&mut ws), Message::binary(bytes));
    // Larger than a chat message may be, and bigger than one read buffer.
    let big = "z".repeat(200_000);
    send_text(&mut ws, &big);
    assert_eq!(recv(&mut ws).into_text().unwrap().as_str(), big);
}

#[test]
fn echo_clients_do_not_see_the_chat() {
    let server = start_default();
    let addr = server.local_addr();
    let mut echo = connect(addr, "/echo");
    let (mut chat, _) = join(addr, "talker");
    send_text(&mut chat, "for the room only");
    recv_json(&mut chat);
    send_text(&mut echo, "mine");
    assert_eq!(recv(&mut echo), Message::text("mine"));
}

#[test]
fn scream_shouts_back() {
    let server = start_default();
    let mut ws = connect(server.local_addr(), "/scream");
    send_text(&mut ws, "hi");
    assert_eq!(recv(&mut ws), Message::text("HI!!!"));
    send_text(&mut ws, "websockets are fun");
    assert_eq!(recv(&mut ws), Message::text("WEBSOCKETS ARE FUN!!!"));
}

#[test]
fn unknown_websocket_paths_get_404() {
    let server = start_default();
    match try_connect(server.local_addr(), "/nope") {
        Err(tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 404);
            let body = String::from_utf8(resp.body().clone().unwrap()).unwrap();
            assert!(
                body.contains("/echo"),
                "the reason lists the endpoints: {body}"
            );
        }
        other => panic!("expected HTTP 404, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn bad_handshakes_get_a_status_with_a_reason() {
    let server = start_default();
    let addr = server.local_addr();
    // Upgrade asked for, but no key.
    let resp = http_raw(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
    assert!(resp.contains("Sec-WebSocket-Key"), "{resp}");
    // An old protocol version: 426 names the one we speak.
    let resp = http_raw(
        addr,
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 426 "), "{resp}");
    assert!(resp.contains("Sec-WebSocket-Version: 13"), "{resp}");
    // Not HTTP at all.
    let resp = http_raw(addr, "\u{16}\u{3}\u{1}hello\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
}

#[test]
fn the_page_is_served_with_content_types() {
    let server = start_default();
    let addr = server.local_addr();
    let (status, head, body) = http_get(addr, "/");
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(body.contains("<!doctype html>"), "{body}");
    assert!(head.contains("Content-Security-Policy"), "{head}");

    let (status, head, body) = http_get(addr, "/chat.js");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/javascript"), "{head}");
    assert!(body.contains("WebSocket"));

    let (status, head, _) = http_get(addr, "/chat.css");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: text/css"), "{head}");

    // The page learns it was served by wschat (so its WebSocket is on the same origin).
    let (_, _, body) = http_get(addr, "/config.js");
    assert!(body.contains("servedByWschat: true"), "{body}");
    assert!(body.contains("maxMessageBytes: 4096"), "{body}");
    // The query string is not part of the file name.
    assert_eq!(http_get(addr, "/?name=alice").0, 200);
}

#[test]
fn paths_outside_the_page_are_refused() {
    let server = start_default();
    let addr = server.local_addr();
    for path in [
        "/../Cargo.toml",
        "/..%2fCargo.toml",
        "/%2e%2e/Cargo.toml",
        "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/..\\Cargo.toml",
        "/missing.html",
        "/.hidden",
    ] {
        let (status, _, body) = http_get(addr, path);
        assert_eq!(status, 404, "{path}: {body}");
    }
}

#[test]
fn other_methods_and_head_requests() {
    let server = start_default();
    let addr = server.local_addr();
    let resp = http_raw(
        addr,
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(resp.starts_with("HTTP/1.1 405 "), "{resp}");
    assert!(resp.contains("Allow: GET, HEAD"), "{resp}");
    let resp = http_raw(addr, "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.ends_with("\r\n\r\n"), "no body for HEAD: {resp}");
}

#[test]
fn www_flag_serves_a_directory_from_disk_without_listings_or_escapes() {
    let dir = std::env::temp_dir().join(format!("wschat-www-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("index.html"), "<p>from disk</p>").unwrap();
    std::fs::write(dir.join("sub/notes.txt"), "notes").unwrap();
    let server = start(wschat::Config {
        www_dir: Some(dir.clone()),
        ..test_config()
    });
    let addr = server.local_addr();
    assert_eq!(http_get(addr, "/").2, "<p>from disk</p>");
    let (status, head, body) = http_get(addr, "/sub/notes.txt");
    assert_eq!((status, body.as_str()), (200, "notes"));
    assert!(head.contains("text/plain"));
    // A directory without index.html is not listed.
    assert_eq!(http_get(addr, "/sub/").0, 404);
    assert_eq!(http_get(addr, "/sub").0, 404);
    assert_eq!(http_get(addr, "/../").0, 404);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn pages_from_www_get_no_policy_and_the_built_in_page_keeps_its_own() {
    let dir = std::env::temp_dir().join(format!("wschat-www-csp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<script>go()</script>").unwrap();
    let policy = |addr, path| {
        let (status, head, _) = http_get(addr, path);
        assert_eq!(status, 200, "{path}: {head}");
        head.lines()
            .find_map(|l| l.strip_prefix("Content-Security-Policy: "))
            .map(str::to_string)
    };
    // --www: the user's own page, served as any static server would (its inline script runs).
    let www = start(wschat::Config {
        www_dir: Some(dir.clone()),
        ..test_config()
    });
    assert_eq!(policy(www.local_addr(), "/"), None);
    // --www-strict-csp: the built-in page's policy on them too.
    let strict = start(wschat::Config {
        www_dir: Some(dir.clone()),
        www_strict_csp: true,
        ..test_config()
    });
    let strict_policy = policy(strict.local_addr(), "/").expect("a policy");
    assert!(
        strict_policy.starts_with("default-src 'self';"),
        "{strict_policy}"
    );
    assert!(!strict_policy.contains("unsafe-inline"), "{strict_policy}");
    // The built-in page: strict; its socket.io page: its inline script and its CDN only.
    let built_in = start_default();
    assert_eq!(policy(built_in.local_addr(), "/"), Some(strict_policy));
    let sio = policy(built_in.local_addr(), "/socketio.html").expect("a policy");
    assert!(
        sio.contains("script-src 'self' 'unsafe-inline' https://cdnjs.cloudflare.com;"),
        "{sio}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
