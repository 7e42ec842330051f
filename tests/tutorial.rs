//! Keeps what TUTORIAL.md and TUTORIAL.zh.md quote true: the 404 capture, the list of
//! `Event`s, and the socket.io exercise's frames (section 11), each checked against the
//! running server or the source, in both languages. When one fails, update the tutorials'
//! quote (both) or fix the server.

mod common;

use common::{connect, http_raw, recv, send_text, start_default, upgrade_request};
use tungstenite::Message;

const TUTORIALS: [(&str, &str); 2] = [
    ("TUTORIAL.md", include_str!("../TUTORIAL.md")),
    ("TUTORIAL.zh.md", include_str!("../TUTORIAL.zh.md")),
];

/// The lines of the console block that follows the line containing `marker`, up to its
/// closing fence.
fn block_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not found"));
    (text[start..].lines().skip(1))
        .take_while(|l| !l.starts_with("```"))
        .collect()
}

#[test]
fn the_404_capture_is_what_wschat_answers() {
    let server = start_default();
    let request = upgrade_request("/nope", "");
    let got = http_raw(server.local_addr(), &request).replace("\r\n", "\n");
    for (file, text) in TUTORIALS {
        let quoted = block_after(text, "http://127.0.0.1:3000/nope").join("\n");
        assert_eq!(got.trim_end(), quoted.trim_end(), "{file}'s 404 capture");
    }
}

#[test]
fn the_event_list_is_src_event_rs() {
    let source = include_str!("../src/event.rs");
    let body = &source[source.find("pub(crate) enum Event {").unwrap()..];
    let body = &body[..body.find("\n}").unwrap()];
    let variants: Vec<&str> = (body.lines().skip(1))
        .filter(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(str::trim)
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| l.split(|c: char| !c.is_alphanumeric()).next().unwrap())
        .collect();
    assert!(variants.len() >= 9, "{variants:?}");
    for (file, text) in TUTORIALS {
        let line = (text.lines())
            .find(|l| l.starts_with("| `Event` | `src/event.rs`"))
            .unwrap_or_else(|| panic!("{file}: no Event row"));
        let list = &line[line.find("`Event`").unwrap() + 7..]; // past the first column
        let list = &list[list.find("`Event`").unwrap() + 7..]; // past "(`Event`"
        let listed: Vec<&str> = (list.split('`'))
            .skip(1)
            .step_by(2)
            .filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase()))
            .collect();
        assert_eq!(listed, variants, "{file}'s Event list");
    }
}

/// `sid`s and times differ from run to run.
fn normalize(frame: &str) -> String {
    let mut out = String::new();
    let mut rest = frame;
    while let Some(i) = rest.find("\"sid\":\"").or_else(|| rest.find("\"time\":")) {
        let (key, value_at) = if rest[i..].starts_with("\"sid\"") {
            ("\"sid\":\"S\"", i + 7)
        } else {
            ("\"time\":T", i + 7)
        };
        out.push_str(&rest[..i]);
        out.push_str(key);
        let tail = &rest[value_at..];
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        rest = &tail[end..];
        if key.ends_with('"') {
            rest = rest.strip_prefix('"').unwrap_or(rest);
        }
    }
    out.push_str(rest);
    out
}

/// The code spans of section 11's exercise table that start with `prefix`.
fn quoted_frame(text: &str, prefix: &str) -> String {
    let table = &text[text
        .find("EIO=4&transport=websocket\n")
        .expect("the exercise")..];
    let span = (table.split('`'))
        .skip(1)
        .step_by(2)
        .find(|s| s.starts_with(prefix))
        .unwrap_or_else(|| panic!("no quoted frame starting {prefix}"));
    normalize(span)
}

/// The next text frame, normalized.
fn next_text(ws: &mut common::Ws) -> String {
    match recv(ws) {
        Message::Text(t) => normalize(&t),
        other => panic!("expected text, got {other:?}"),
    }
}

#[test]
fn the_socketio_exercise_frames_are_what_wschat_sends() {
    let server = start_default(); // fresh: the first name given is user1
    let mut ws = connect(server.local_addr(), "/socket.io/?EIO=4&transport=websocket");
    let mut got = vec![next_text(&mut ws)];
    send_text(&mut ws, "40");
    got.push(next_text(&mut ws));
    got.push(next_text(&mut ws));
    send_text(&mut ws, r#"42["message","hi"]"#);
    got.push(next_text(&mut ws));
    for (file, text) in TUTORIALS {
        let quoted = [
            quoted_frame(text, "0{"),
            quoted_frame(text, "40{"),
            quoted_frame(text, "42[\"enter\""),
            quoted_frame(text, "42[\"message\",\"user1"),
        ];
        assert_eq!(got, quoted, "{file}'s socket.io exercise");
    }
}

/// `cargo run -- --flag` in the tutorials names a flag wschat has.
#[test]
fn the_flags_the_tutorials_name_exist() {
    let cli = include_str!("../src/main.rs");
    let mut seen = 0;
    for (file, text) in TUTORIALS {
        assert!(
            !text.contains("`wschat --help`"),
            "{file}: say cargo run -- --help"
        );
        for (i, _) in text.match_indices("cargo run -- --") {
            let flag: String = text[i + 15..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if flag == "help" {
                continue;
            }
            let field = format!("    {}: ", flag.replace('-', "_"));
            assert!(
                cli.contains(&field),
                "{file}: --{flag} is no flag of src/main.rs"
            );
            seen += 1;
        }
    }
    assert!(seen >= 2, "the tutorials name flags: {seen}");
}
