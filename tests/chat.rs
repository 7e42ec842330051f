//! The chat protocol, end to end with real sockets: the classic join/message/leave lines,
//! names, ordering, and what the chat refuses.

mod common;

use std::net::Shutdown;
use std::thread;

use common::*;
use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::Message;

#[test]
fn join_message_leave_are_the_classic_lines() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut alice, _) = join(addr, "alice");

    let mut bob = connect(addr, "/?name=bob");
    let bob_enter = recv_json(&mut bob);
    let seen_by_alice = recv_json(&mut alice);
    for v in [&bob_enter, &seen_by_alice] {
        assert_eq!(v["type"], 0);
        assert_eq!(v["info"], "bob comes in !!!");
        assert_eq!(v["name"], "bob");
        assert!(
            v["time"].as_u64().unwrap() > 1_600_000_000_000,
            "time is Unix ms: {v}"
        );
    }
    // The newcomer's own join line is its welcome; the others get `enter`.
    assert_eq!(bob_enter["event"], "welcome");
    assert_eq!(seen_by_alice["event"], "enter");

    send_text(&mut alice, "hello, bob");
    for ws in [&mut alice, &mut bob] {
        let v = recv_json(ws);
        assert_eq!(v["type"], 1);
        assert_eq!(v["info"], "alice: hello, bob");
        assert_eq!(v["name"], "alice");
        assert_eq!(v["text"], "hello, bob");
    }

    bob.close(None).unwrap();
    let v = recv_json(&mut alice);
    assert_eq!(v["type"], 2);
    assert_eq!(v["info"], "bob leaves.");
    assert_eq!(v["event"], "leave");
    assert_eq!(v["name"], "bob");
}

#[test]
fn markup_is_escaped_in_info_and_raw_in_text() {
    let server = start_default();
    let (mut ws, _) = join(server.local_addr(), "eve");
    let attack = r#"<img src=x onerror="alert('x')"> & co"#;
    send_text(&mut ws, attack);
    let v = recv_json(&mut ws);
    assert_eq!(
        v["info"],
        "eve: &lt;img src=x onerror=&quot;alert(&#39;x&#39;)&quot;&gt; &amp; co"
    );
    assert_eq!(v["text"], attack);
}

#[test]
fn whitespace_and_unicode_are_kept_exactly() {
    let server = start_default();
    let (mut ws, _) = join(server.local_addr(), "zoë");
    let text = "  two  spaces\tand a tab, 你好 👋  ";
    send_text(&mut ws, text);
    let v = recv_json(&mut ws);
    assert_eq!(v["text"], text);
    assert_eq!(v["info"], format!("zoë: {text}"));
}

#[test]
fn three_clients_see_one_order() {
    let server = start_default();
    let addr = server.local_addr();
    let mut clients: Vec<_> = ["a", "b", "c"].iter().map(|n| join(addr, n).0).collect();
    // Everyone sees the later joins; drain them so each log starts at the messages.
    for (i, ws) in clients.iter_mut().enumerate() {
        for _ in i + 1..3 {
            assert_eq!(recv_json(ws)["type"], 0);
        }
    }
    const PER_CLIENT: usize = 50;
    let logs: Vec<Vec<String>> = thread::scope(|s| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(i, mut ws)| {
                s.spawn(move || {
                    let mut log = Vec::new();
                    let mut sent = 0;
                    while log.len() < 3 * PER_CLIENT {
                        if sent < PER_CLIENT {
                            send_text(&mut ws, &format!("{i}-{sent}"));
                            sent += 1;
                        }
                        // Read whatever is there without waiting long, so sends interleave.
                        if sent == PER_CLIENT || log.len() < sent {
                            let v = recv_json(&mut ws);
                            log.push(v["text"].as_str().unwrap().to_string());
                        }
                    }
                    log
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(logs[0].len(), 3 * PER_CLIENT);
    assert_eq!(logs[0], logs[1]);
    assert_eq!(logs[1], logs[2]);
    // Each sender's own messages are in the order it sent them.
    for i in 0..3 {
        let mine: Vec<_> = logs[0]
            .iter()
            .filter(|t| t.starts_with(&format!("{i}-")))
            .collect();
        let expected: Vec<_> = (0..PER_CLIENT).map(|n| format!("{i}-{n}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>());
    }
}

#[test]
fn a_dropped_tcp_connection_still_announces_the_leave() {
    let server = start_default();
    let addr = server.local_addr();
    let (mut alice, _) = join(addr, "alice");
    let (mallory, _) = join(addr, "mallory");
    assert_eq!(recv_json(&mut alice)["info"], "mallory comes in !!!");
    // No Close frame: the TCP connection just ends.
    mallory.get_ref().shutdown(Shutdown::Both).unwrap();
    drop(mallory);
    let v = recv_json(&mut alice);
    assert_eq!(v["info"], "mallory leaves.");
}

#[test]
fn many_clients_vanishing_at_once_each_leave_is_announced_once() {
    const N: usize = 200;
    let server = start_default();
    let addr = server.local_addr();
    let (mut alice, _) = join(addr, "alice");
    let mut crowd = Vec::new();
    for i in 0..N {
        crowd.push(join(addr, &format!("p{i}")).0);
        assert_eq!(recv_json(&mut alice)["info"], format!("p{i} comes in !!!"));
    }
    // The crowd never read the later join lines, so closing their sockets resets them: the
    // broadcaster finds many of them dead by a failed write (alice's chatter keeps it
    // writing), not only from their readers, and drops them in batches.
    for ws in crowd {
        drop(ws);
    }
    send_text(&mut alice, "first");
    let mut left = std::collections::BTreeSet::new();
    let mut seen_first = false;
    while left.len() < N || !seen_first {
        let v = recv_json(&mut alice);
        match v["event"].as_str() {
            Some("leave") => {
                let name = v["name"].as_str().unwrap().to_string();
                assert!(left.insert(name.clone()), "{name}'s leave came twice");
            }
            Some("message") => {
                assert_eq!(v["text"], "first");
                seen_first = true;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    let expected: std::collections::BTreeSet<String> = (0..N).map(|i| format!("p{i}")).collect();
    assert_eq!(left, expected);
    // Nothing else is owed: the next frame is alice's next line, and the room is hers alone.
    send_text(&mut alice, "/who");
    let who = recv_json(&mut alice);
    assert_eq!(who["code"], "who", "{who}");
    assert_eq!(who["users"], serde_json::json!(["alice"]));
}

#[test]
fn names_from_query_defaults_duplicates_and_invalid() {
    let server = start_default();
    let addr = server.local_addr();

    // No name: user1, user2, … in order of arrival.
    let (_u1, n1) = join(addr, "");
    let mut u2 = connect(addr, "/");
    assert_eq!(n1, "user1");
    assert_eq!(recv_json(&mut u2)["name"], "user2");

    // ?username= works like ?name=, with percent-decoding.
    let mut sam = connect(addr, "/?username=sam%20smith");
    assert_eq!(recv_json(&mut sam)["info"], "sam smith comes in !!!");

    // A taken name (case-insensitively) gets the smallest free suffix, and a notice says so.
    let (_ann, _) = join(addr, "ann");
    let mut ann2 = connect(addr, "/?name=ANN");
    let enter = recv_json(&mut ann2);
    assert_eq!(enter["name"], "ANN2");
    let notice = recv_json(&mut ann2);
    assert_eq!(notice["type"], 3);
    assert_eq!(notice["code"], "name-taken");
    assert!(notice["text"].as_str().unwrap().contains("ANN2"));

    // Invalid names: the server picks one and says why.
    for bad in ["%07bell", &"x".repeat(33), "%20%20"] {
        let mut ws = connect(addr, &format!("/?name={bad}"));
        let enter = recv_json(&mut ws);
        let given = enter["name"].as_str().unwrap().to_string();
        assert!(given.starts_with("user"), "{bad:?} -> {given}");
        let notice = recv_json(&mut ws);
        assert_eq!(notice["code"], "name-invalid", "{notice}");
        assert!(notice["text"].as_str().unwrap().contains(&given));
    }

    // A name at the 32-character limit is kept.
    let long = "é".repeat(32);
    let (_l, given) = join(addr, &long);
    assert_eq!(given, long);
}

#[test]
fn binary_to_the_chat_closes_with_1003() {
    let server = start_default();
    let (mut ws, _) = join(server.local_addr(), "bin");
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    let close = recv_close(&mut ws).expect("a close frame");
    assert_eq!(close.code, CloseCode::Unsupported);
}

#[test]
fn empty_messages_are_refused_with_a_notice() {
    let server = start_default();
    let (mut ws, _) = join(server.local_addr(), "quiet");
    send_text(&mut ws, "");
    let v = recv_json(&mut ws);
    assert_eq!(v["type"], 3);
    assert_eq!(v["code"], "empty-message");
    send_text(&mut ws, "still here");
    assert_eq!(recv_json(&mut ws)["text"], "still here");
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let server = start_default();
    let (mut ws, _) = join(server.local_addr(), "pinger");
    ws.send(Message::Ping(b"are you there?".to_vec().into()))
        .unwrap();
    loop {
        match ws.read().unwrap() {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"are you there?");
                break;
            }
            Message::Ping(_) => continue,
            other => panic!("expected a pong, got {other:?}"),
        }
    }
    // The connection still works afterwards.
    send_text(&mut ws, "after ping");
    assert_eq!(recv_json(&mut ws)["text"], "after ping");
}

#[test]
fn a_client_close_gets_a_close_with_the_same_code() {
    let server = start_default();
    let (mut ws, _) = join(server.local_addr(), "bye");
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: CloseCode::Library(4000),
        reason: "see you".into(),
    }))
    .unwrap();
    let reply = recv_close(&mut ws).expect("close reply");
    assert_eq!(reply.code, CloseCode::Library(4000));
    // The server then closes the TCP connection, and nothing follows the Close.
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        Err(e) => panic!("expected a clean end, got {e}"),
        Ok(m) => panic!("nothing may follow the close, got {m:?}"),
    }
}

#[test]
fn oversize_messages_close_with_1009_and_others_keep_chatting() {
    let server = start(wschat::Config {
        max_message_bytes: 100,
        ..test_config()
    });
    let addr = server.local_addr();
    let (mut alice, _) = join(addr, "alice");
    let (mut big, _) = join(addr, "big");
    recv_json(&mut alice);
    send_text(&mut big, &"x".repeat(101));
    let close = recv_close(&mut big).expect("close frame");
    assert_eq!(close.code, CloseCode::Size);
    assert_eq!(recv_json(&mut alice)["info"], "big leaves.");
    send_text(&mut alice, &"y".repeat(100));
    let v: Value = recv_json(&mut alice);
    assert_eq!(v["text"].as_str().unwrap().len(), 100);
}
