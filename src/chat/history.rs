//! History: the chat lines a room remembers for newcomers.
//!
//! Plain data: each room keeps its last lines (`Rooms::record`); the history file
//! (`crate::history_file`) stores the same entries on disk.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What kind of chat line an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Action,
}

impl Kind {
    pub(crate) fn event(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Action => "action",
        }
    }
}

/// One remembered chat line.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub kind: Kind,
    pub name: Arc<str>,
    /// A compact copy of what was said: the frame it arrived in may share a whole read
    /// buffer, which a remembered line must not keep alive.
    text: Box<str>,
    pub time_ms: u64,
}

impl Entry {
    /// Remembers `text` (copied).
    pub fn new(kind: Kind, name: Arc<str>, text: &str, time_ms: u64) -> Self {
        Entry {
            kind,
            name,
            text: text.into(),
            time_ms,
        }
    }

    /// The text that was said.
    pub fn text(&self) -> &str {
        &self.text
    }
}

/// Loaded history: room name → its entries, oldest first.
pub(crate) type Loaded = HashMap<String, VecDeque<Entry>>;
