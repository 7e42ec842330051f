//! What the nodes of a cluster say to each other through Redis: one Pub/Sub channel per room,
//! `wschat:room:<room>`, carrying one JSON object per line, tagged with the node that said it.
//!
//! Owns the channel names and the JSON form, both ways. Touches nothing else: the bridge's
//! threads call it, and what it decodes becomes an [`Event::Remote`](crate::event::Event).

use serde::{Deserialize, Serialize};

use crate::event::RemoteLine;

/// Every room's channel starts with this; the subscriber listens to `ROOM_CHANNEL_PREFIX*`.
pub(crate) const ROOM_CHANNEL_PREFIX: &str = "wschat:room:";

/// The channel of `room`.
pub(crate) fn room_channel(room: &str) -> String {
    format!("{ROOM_CHANNEL_PREFIX}{room}")
}

/// One line on a room's channel: `{"node":"…","kind":"message","name":"ada","text":"hi",
/// "time":…}`. Strings are borrowed when encoding, owned when decoding.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Wire<S> {
    /// The node that said it: every node hears its own lines back and skips them.
    node: S,
    #[serde(flatten)]
    line: Line<S>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line<S> {
    Message { name: S, text: S, time: u64 },
    Action { name: S, text: S, time: u64 },
    Enter { name: S },
    Leave { name: S },
    Rename { old: S, name: S },
    Private { from: S, to: S, text: S },
    Present { name: S },
}

/// The payload to publish for `line`, said on node `node`.
pub(crate) fn encode(node: &str, line: &RemoteLine) -> Vec<u8> {
    let line = match line {
        RemoteLine::Message {
            name,
            text,
            time_ms,
        } => Line::Message {
            name: name.as_str(),
            text: text.as_str(),
            time: *time_ms,
        },
        RemoteLine::Action {
            name,
            text,
            time_ms,
        } => Line::Action {
            name: name.as_str(),
            text: text.as_str(),
            time: *time_ms,
        },
        RemoteLine::Enter { name } => Line::Enter {
            name: name.as_str(),
        },
        RemoteLine::Leave { name } => Line::Leave {
            name: name.as_str(),
        },
        RemoteLine::Rename { old, name } => Line::Rename {
            old: old.as_str(),
            name: name.as_str(),
        },
        RemoteLine::Private { from, to, text } => Line::Private {
            from: from.as_str(),
            to: to.as_str(),
            text: text.as_str(),
        },
        RemoteLine::Present { name } => Line::Present {
            name: name.as_str(),
        },
    };
    serde_json::to_vec(&Wire { node, line }).expect("strings and numbers always encode")
}

/// What a message on `channel` says: `Ok(None)` for this node's own line, `Err` with a reason
/// for anything that is not a wschat line (another program publishing there).
pub(crate) fn decode(
    own_node: &str,
    channel: &str,
    payload: &[u8],
) -> Result<Option<(String, RemoteLine)>, String> {
    let room = channel
        .strip_prefix(ROOM_CHANNEL_PREFIX)
        .ok_or_else(|| format!("not a room channel: {channel:?}"))?;
    let wire: Wire<String> =
        serde_json::from_slice(payload).map_err(|e| format!("not a wschat line: {e}"))?;
    if wire.node == own_node {
        return Ok(None);
    }
    let line = match wire.line {
        Line::Message { name, text, time } => RemoteLine::Message {
            name,
            text,
            time_ms: time,
        },
        Line::Action { name, text, time } => RemoteLine::Action {
            name,
            text,
            time_ms: time,
        },
        Line::Enter { name } => RemoteLine::Enter { name },
        Line::Leave { name } => RemoteLine::Leave { name },
        Line::Rename { old, name } => RemoteLine::Rename { old, name },
        Line::Private { from, to, text } => RemoteLine::Private { from, to, text },
        Line::Present { name } => RemoteLine::Present { name },
    };
    Ok(Some((room.to_string(), line)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<RemoteLine> {
        let s = |x: &str| x.to_string();
        vec![
            RemoteLine::Message {
                name: s("ada"),
                text: s("hi \"there\" ✓"),
                time_ms: 17,
            },
            RemoteLine::Action {
                name: s("ada"),
                text: s("waves"),
                time_ms: 18,
            },
            RemoteLine::Enter { name: s("bob") },
            RemoteLine::Leave { name: s("bob") },
            RemoteLine::Rename {
                old: s("bob"),
                name: s("rob"),
            },
            RemoteLine::Private {
                from: s("ada"),
                to: s("rob"),
                text: s("psst"),
            },
            RemoteLine::Present { name: s("rob") },
        ]
    }

    #[test]
    fn every_line_comes_back_as_it_was_said_on_another_node() {
        for line in lines() {
            let payload = encode("node-a", &line);
            let (room, back) = decode("node-b", &room_channel("a b"), &payload)
                .unwrap()
                .expect("another node's line");
            assert_eq!(room, "a b");
            assert_eq!(encode("node-a", &back), payload);
        }
    }

    #[test]
    fn a_nodes_own_lines_are_skipped() {
        let payload = encode("node-a", &lines()[0]);
        assert!(decode("node-a", &room_channel("r"), &payload)
            .unwrap()
            .is_none());
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let channel = room_channel("r");
        for garbage in [
            &b"hello"[..],
            b"{}",
            br#"{"node":"x","kind":"shout","name":"a"}"#,
            br#"{"node":"x","kind":"message","name":"a"}"#,
            b"\xff\xfe",
        ] {
            let err = decode("me", &channel, garbage).unwrap_err();
            assert!(err.starts_with("not a wschat line"), "{err}");
        }
        let payload = encode("node-a", &lines()[0]);
        assert!(decode("me", "elsewhere", &payload).is_err());
    }
}
