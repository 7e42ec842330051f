//! Rooms: who is in which room under which name, and each room's recent chat lines.
//!
//! Plain data owned by the broadcaster thread (so no locks): it touches no socket and no file.
//! A room exists while it has members or remembered lines; an empty room with no history is
//! dropped at once, so empty rooms cost nothing. Room names, like nicknames, ignore case
//! (`Pi-Club` is `pi-club`); a room keeps the spelling of whoever opened it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::history::{Entry, Loaded};
use crate::event::Slot;

/// The room `/` joins without `?room=`: the classic page's one room.
pub const DEFAULT_ROOM: &str = "lobby";

/// One room.
#[derive(Default)]
pub(crate) struct Room {
    /// Everyone in the room, in order of arrival.
    pub members: Vec<Slot>,
    /// Lower-cased name → member: names are unique in a room regardless of case.
    names: HashMap<String, Slot>,
    /// The last chat lines, oldest first.
    pub history: VecDeque<Entry>,
    /// When the room was last entered or spoken in (a counter), to pick which idle room to
    /// forget when the room cap is reached.
    last_used: u64,
}

/// Every room.
pub(crate) struct Rooms {
    /// Keyed by each room's own spelling, which `open` hands out and callers use after.
    map: HashMap<Arc<str>, Room>,
    /// Lower-cased name → the room's own spelling, to find a room whatever the case.
    folded: HashMap<String, Arc<str>>,
    max_rooms: usize,
    history_len: usize,
    clock: u64,
}

impl Rooms {
    /// Rooms with the history loaded from a file (rooms beyond `max_rooms` are not kept).
    pub fn new(max_rooms: usize, history_len: usize, loaded: Loaded) -> Self {
        let mut loaded: Vec<_> = loaded.into_iter().collect();
        // Keep the rooms with the most recent lines when the file holds more than the cap.
        loaded.sort_by_key(|(_, h)| std::cmp::Reverse(h.back().map_or(0, |e| e.time_ms)));
        let mut rooms = Rooms {
            map: HashMap::new(),
            folded: HashMap::new(),
            max_rooms,
            history_len,
            clock: 0,
        };
        for (name, history) in loaded.into_iter().take(max_rooms) {
            if rooms.folded.contains_key(&name.to_lowercase()) {
                continue; // the same room in another case: its newer lines were kept
            }
            let keep = history.len().saturating_sub(history_len);
            let key = rooms.insert(&name);
            if let Some(room) = rooms.map.get_mut(&key) {
                room.history = history.into_iter().skip(keep).collect();
            }
        }
        rooms
    }

    /// The room whose own spelling is `name` (as `open` returned it), if it exists.
    pub fn get(&self, name: &str) -> Option<&Room> {
        self.map.get(name)
    }

    fn insert(&mut self, name: &str) -> Arc<str> {
        let key: Arc<str> = name.into();
        self.folded.insert(name.to_lowercase(), key.clone());
        let room = Room {
            last_used: self.clock,
            ..Room::default()
        };
        self.map.insert(key.clone(), room);
        key
    }

    fn forget(&mut self, key: &str) {
        self.map.remove(key);
        self.folded.remove(&key.to_lowercase());
    }

    /// The room called `name` (in any case), created if needed; returns its own spelling,
    /// the key for every other call. At the room cap, an idle room (no members) is forgotten
    /// to make space; `None` when every room has members. The default room always opens.
    pub fn open(&mut self, name: &str) -> Option<Arc<str>> {
        self.clock += 1;
        if let Some(key) = self.folded.get(&name.to_lowercase()).cloned() {
            if let Some(room) = self.map.get_mut(&key) {
                room.last_used = self.clock;
            }
            return Some(key);
        }
        if self.map.len() >= self.max_rooms && name != DEFAULT_ROOM {
            let idle = self
                .map
                .iter()
                .filter(|(_, r)| r.members.is_empty())
                .min_by_key(|(_, r)| r.last_used)
                .map(|(k, _)| k.clone())?;
            self.forget(&idle);
        }
        Some(self.insert(name))
    }

    /// True when someone in `room` is called `name` (ignoring case), other than `except`.
    pub fn is_taken(&self, room: &str, name: &str, except: Option<Slot>) -> bool {
        self.map
            .get(room)
            .and_then(|r| r.names.get(&name.to_lowercase()))
            .is_some_and(|&slot| Some(slot) != except)
    }

    /// The member called `name` (ignoring case).
    pub fn find(&self, room: &str, name: &str) -> Option<Slot> {
        self.map.get(room)?.names.get(&name.to_lowercase()).copied()
    }

    /// Puts `slot` into `room` (which `open` returned) as `name`.
    pub fn add(&mut self, room: &str, slot: Slot, name: &str) {
        if let Some(r) = self.map.get_mut(room) {
            r.members.push(slot);
            r.names.insert(name.to_lowercase(), slot);
        }
    }

    /// Takes `slot` out of `room`; a room left with no members and no history is dropped.
    pub fn remove(&mut self, room: &str, slot: Slot, name: &str) {
        let Some(r) = self.map.get_mut(room) else {
            return;
        };
        r.members.retain(|&s| s != slot);
        r.names.remove(&name.to_lowercase());
        if r.members.is_empty() && r.history.is_empty() {
            self.forget(room);
        }
    }

    /// Records a rename of `slot` in `room`.
    pub fn rename(&mut self, room: &str, slot: Slot, old: &str, new: &str) {
        if let Some(r) = self.map.get_mut(room) {
            r.names.remove(&old.to_lowercase());
            r.names.insert(new.to_lowercase(), slot);
        }
    }

    /// Remembers a chat line in `room`, forgetting the oldest beyond the history length.
    /// Returns the room's own spelling and the entry as kept.
    pub fn record(&mut self, room: &str, entry: Entry) -> Option<(&str, &Entry)> {
        if self.history_len == 0 {
            return None;
        }
        self.clock += 1;
        let r = self.map.get_mut(room)?;
        r.last_used = self.clock;
        if r.history.len() == self.history_len {
            r.history.pop_front();
        }
        r.history.push_back(entry);
        let (key, r) = self.map.get_key_value(room)?;
        Some((key, r.history.back()?))
    }

    /// Every remembered line with its room, for rewriting the history file.
    pub fn all_history(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.map
            .iter()
            .flat_map(|(name, r)| r.history.iter().map(move |e| (name.as_ref(), e)))
    }

    /// How many lines are remembered in all.
    #[cfg(test)]
    pub fn history_lines(&self) -> usize {
        self.map.values().map(|r| r.history.len()).sum()
    }

    /// How many rooms exist.
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::history::Kind;

    fn line(text: &str) -> Entry {
        Entry::new(Kind::Message, "n".into(), text, 1)
    }

    #[test]
    fn empty_rooms_without_history_disappear() {
        let mut rooms = Rooms::new(10, 0, Loaded::new());
        let key = rooms.open("pi").unwrap();
        rooms.add(&key, 1, "Al");
        assert!(rooms.is_taken("pi", "al", None));
        assert!(!rooms.is_taken("pi", "al", Some(1)));
        assert_eq!(rooms.find("pi", "AL"), Some(1));
        rooms.remove(&key, 1, "Al");
        assert_eq!(rooms.len(), 0);
    }

    #[test]
    fn history_is_capped_and_outlives_members() {
        let mut rooms = Rooms::new(10, 2, Loaded::new());
        let key = rooms.open("pi").unwrap();
        rooms.add(&key, 1, "a");
        for t in ["1", "2", "3"] {
            rooms.record(&key, line(t));
        }
        rooms.remove(&key, 1, "a");
        let kept: Vec<_> = rooms
            .get("pi")
            .unwrap()
            .history
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(kept, ["2", "3"]);
        assert_eq!(rooms.history_lines(), 2);
    }

    #[test]
    fn the_cap_forgets_idle_rooms_first_and_never_blocks_the_default() {
        let mut rooms = Rooms::new(2, 5, Loaded::new());
        let busy = rooms.open("busy").unwrap();
        rooms.add(&busy, 1, "a");
        let idle = rooms.open("idle").unwrap();
        rooms.record(&idle, line("x"));
        // At the cap: "idle" (no members) makes way for "new".
        assert!(rooms.open("new").is_some());
        assert!(rooms.get("idle").is_none());
        let new = rooms.open("new").unwrap();
        rooms.add(&new, 2, "b");
        // Every room has members now: no new room, but the default room still opens.
        assert!(rooms.open("another").is_none());
        assert!(rooms.open(DEFAULT_ROOM).is_some());
    }

    #[test]
    fn room_names_ignore_case_and_keep_the_first_spelling() {
        let mut rooms = Rooms::new(10, 0, Loaded::new());
        let key = rooms.open("Pi-Club").unwrap();
        rooms.add(&key, 1, "a");
        assert_eq!(&*rooms.open("pi-club").unwrap(), "Pi-Club");
        assert_eq!(&*rooms.open("PI-CLUB").unwrap(), "Pi-Club");
        assert_eq!(rooms.len(), 1);
        rooms.remove(&key, 1, "a");
        assert_eq!(rooms.len(), 0);
        assert_eq!(&*rooms.open("pi-CLUB").unwrap(), "pi-CLUB");
    }

    #[test]
    fn renames_move_the_name() {
        let mut rooms = Rooms::new(10, 0, Loaded::new());
        let key = rooms.open("r").unwrap();
        rooms.add(&key, 3, "old");
        rooms.rename(&key, 3, "old", "New");
        assert_eq!(rooms.find("r", "new"), Some(3));
        assert_eq!(rooms.find("r", "old"), None);
    }
}
