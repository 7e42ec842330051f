//! Shared history (`--redis`): each room's last `--history` lines, kept in a Redis list per
//! room, `wschat:history:<room>`, so a newcomer on any node gets them.
//!
//! Owns the list's name, what the publisher adds to it (`RPUSH` then `LTRIM`, pipelined with
//! the line's `PUBLISH`), loading every room's list at start-up, and turning another node's
//! line into a room's history entry. The broadcaster never waits on it: the publisher thread
//! writes the lists, the listener's thread loads them before the server runs, and other nodes'
//! lines reach each room's memory with their `Event::Remote`, so a welcome never waits on
//! Redis. May use `wire` (the same JSON as the room channel) and `chat::history` (entries).

use std::collections::VecDeque;
use std::sync::Arc;

use log::{info, warn};
use redis::{Connection, Pipeline, RedisError};

use super::wire;
use crate::chat::history::{Entry, Kind, Loaded};
use crate::event::RemoteLine;

/// Every room's list starts with this.
pub(crate) const HISTORY_KEY_PREFIX: &str = "wschat:history:";
/// Keys asked for per `SCAN` step, and lists read per pipelined round trip, at start-up.
const LOAD_BATCH_KEYS: usize = 500;

/// The list of `room`.
pub(crate) fn key(room: &str) -> String {
    format!("{HISTORY_KEY_PREFIX}{room}")
}

/// The history entry of a line, if it is one a room remembers (a message or an action).
pub(crate) fn entry(line: &RemoteLine) -> Option<Entry> {
    let (kind, name, text, time_ms) = match line {
        RemoteLine::Message {
            name,
            text,
            time_ms,
        } => (Kind::Message, name, text, *time_ms),
        RemoteLine::Action {
            name,
            text,
            time_ms,
        } => (Kind::Action, name, text, *time_ms),
        _ => return None,
    };
    Some(Entry::new(kind, Arc::from(name.as_str()), text, time_ms))
}

/// Adds to `pipe` what keeps `line` (already encoded as `payload`) in its room's list of the
/// last `history_lines`; nothing for a line that is not history, or with history off.
pub(crate) fn append(
    pipe: &mut Pipeline,
    room: &str,
    line: &RemoteLine,
    payload: &[u8],
    history_lines: usize,
) {
    if history_lines == 0 || entry(line).is_none() {
        return;
    }
    let key = key(room);
    pipe.cmd("RPUSH").arg(&key).arg(payload).ignore();
    // Keeps the newest `history_lines`: the list never grows past them.
    let first = -(history_lines.min(i64::MAX as usize) as i64);
    pipe.cmd("LTRIM").arg(&key).arg(first).arg(-1).ignore();
}

/// Every room's list, oldest line first, at most `history_lines` each. A line that is not a
/// wschat line (another program wrote there) is logged and skipped.
pub(crate) fn load(conn: &mut Connection, history_lines: usize) -> Result<Loaded, RedisError> {
    let mut loaded = Loaded::new();
    if history_lines == 0 {
        return Ok(loaded);
    }
    let (mut cursor, mut skipped) = (0u64, 0usize);
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{HISTORY_KEY_PREFIX}*"))
            .arg("COUNT")
            .arg(LOAD_BATCH_KEYS)
            .query(conn)?;
        let mut pipe = redis::pipe();
        pipe.ignore_errors(); // another program's key of another type: skip it, not everything
        for key in &keys {
            pipe.cmd("LRANGE")
                .arg(key)
                .arg(-(history_lines as i64))
                .arg(-1);
        }
        let lists: Vec<redis::RedisResult<Vec<Vec<u8>>>> = pipe.query(conn)?;
        for (key, list) in keys.iter().zip(lists) {
            let room = &key[HISTORY_KEY_PREFIX.len()..];
            let Ok(list) = list else {
                warn!("cluster: skipped {key:?}, which is not a wschat history list");
                continue;
            };
            let lines = decode_list(room, &list, &mut skipped);
            if !lines.is_empty() {
                loaded.insert(room.to_string(), lines);
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    if skipped > 0 {
        warn!("cluster: skipped {skipped} entries of the shared history that are not wschat lines");
    }
    let lines: usize = loaded.values().map(VecDeque::len).sum();
    info!(
        "cluster: loaded {lines} history lines of {} rooms from Redis",
        loaded.len()
    );
    Ok(loaded)
}

/// The entries of one room's list; what does not decode is counted in `skipped`.
fn decode_list(room: &str, list: &[Vec<u8>], skipped: &mut usize) -> VecDeque<Entry> {
    let channel = wire::room_channel(room);
    list.iter()
        // No node id is empty: every line counts, this node's own included.
        .filter_map(|payload| match wire::decode("", &channel, payload) {
            Ok(Some((_, line))) => entry(&line).or_else(|| {
                *skipped += 1;
                None
            }),
            _ => {
                *skipped += 1;
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_actions_are_history_and_the_rest_is_not() {
        let s = |x: &str| x.to_string();
        let said = RemoteLine::Action {
            name: s("ada"),
            text: s("waves"),
            time_ms: 9,
        };
        let e = entry(&said).expect("an action is history");
        assert_eq!(
            (e.kind, &*e.name, e.text(), e.time_ms),
            (Kind::Action, "ada", "waves", 9)
        );
        assert!(entry(&RemoteLine::Enter { name: s("ada") }).is_none());
        assert!(entry(&RemoteLine::Rename {
            old: s("a"),
            name: s("b")
        })
        .is_none());
    }

    #[test]
    fn a_list_keeps_its_lines_in_order_and_skips_garbage() {
        let s = |x: &str| x.to_string();
        let line = |text: &str| RemoteLine::Message {
            name: s("ada"),
            text: s(text),
            time_ms: 1,
        };
        let list = vec![
            wire::encode("node-a", &line("one")),
            b"not json".to_vec(),
            wire::encode("node-b", &RemoteLine::Leave { name: s("bob") }),
            wire::encode("node-b", &line("two")),
        ];
        let mut skipped = 0;
        let got = decode_list("r", &list, &mut skipped);
        let texts: Vec<&str> = got.iter().map(Entry::text).collect();
        assert_eq!(texts, ["one", "two"]);
        assert_eq!(skipped, 2);
    }
}
