//! Hostile and broken frames: each gets the close code RFC 6455 asks for (tungstenite detects
//! them; wschat maps them to codes), and the server keeps serving everyone else.

mod common;

use std::io::Write;

use common::*;

/// Sends `bytes` after a handshake to `path` and returns the close code the server answers.
fn close_code_for(addr: std::net::SocketAddr, path: &str, bytes: &[u8]) -> Option<u16> {
    let (mut stream, _) = raw_upgrade(addr, path);
    stream.write_all(bytes).unwrap();
    read_raw_close(&mut stream)
}

#[test]
fn broken_frames_get_their_close_codes() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut watcher, _) = join(addr, "watcher");

    // Invalid UTF-8 in a text frame → 1007.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x81, b"\xff\xfe", true)),
        Some(1007)
    );
    // An unmasked client frame → 1002.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x81, b"hi", false)),
        Some(1002)
    );
    // Reserved bits set without an extension → 1002.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0xC1, b"hi", true)),
        Some(1002)
    );
    // Reserved opcodes (data 0x3, control 0xB) → 1002.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x83, b"", true)),
        Some(1002)
    );
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x8B, b"", true)),
        Some(1002)
    );
    // A fragmented control frame (Ping without FIN) → 1002.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x09, b"p", true)),
        Some(1002)
    );
    // A control frame over 125 bytes → 1002.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x89, &[0; 126], true)),
        Some(1002)
    );
    // A continuation with nothing to continue → 1002.
    assert_eq!(
        close_code_for(addr, "/echo", &client_frame(0x80, b"x", true)),
        Some(1002)
    );
    // The chat gets the same treatment.
    assert_eq!(
        close_code_for(addr, "/", &client_frame(0x81, b"\xc3\x28", true)),
        Some(1007)
    );
    // A frame over the size limit is refused from its header alone → 1009.
    let mut huge = vec![0x81, 0x80 | 127];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(close_code_for(addr, "/", &huge), Some(1009));

    // The watcher, in the chat all along, still chats.
    send_text(&mut watcher, "still fine");
    let v = loop {
        let v = recv_json(&mut watcher);
        if v["event"] == "message" {
            break v;
        }
    };
    assert_eq!(v["text"], "still fine");
}

#[test]
fn a_fragmented_message_is_reassembled() {
    let server = start_default();
    let (mut stream, _) = raw_upgrade(server.local_addr(), "/echo");
    stream
        .write_all(&client_frame(0x01, b"frag", true))
        .unwrap();
    stream.write_all(&client_frame(0x89, b"mid", true)).unwrap(); // a Ping in between
    stream
        .write_all(&client_frame(0x80, b"mented", true))
        .unwrap();
    assert_eq!(read_raw_frame(&mut stream), (0x8A, b"mid".to_vec()));
    assert_eq!(read_raw_frame(&mut stream), (0x81, b"fragmented".to_vec()));
}
