//! The members of other cluster nodes (`--redis`), by room: what this node knows of them, so
//! the welcome, `/who`, `/msg` and the choice of a free name see the whole cluster without
//! asking Redis (the broadcaster never does).
//!
//! Plain data owned by the broadcaster thread, kept up to date by the cluster bridge's events
//! (other nodes' enters, leaves and renames, and a snapshot of Redis on each connect). Rooms
//! and names are keyed lower-cased, as the chat compares them; each name keeps its spelling.

use std::collections::HashMap;

/// Room (lower-cased) → name (lower-cased) → the name as its node spells it.
#[derive(Default)]
pub(crate) struct Others {
    rooms: HashMap<String, HashMap<String, String>>,
}

impl Others {
    /// Someone on another node is `name` in `room`.
    pub fn add(&mut self, room: &str, name: &str) {
        self.rooms
            .entry(room.to_lowercase())
            .or_default()
            .insert(name.to_lowercase(), name.to_string());
    }

    /// `name` is no longer in `room` on another node.
    pub fn remove(&mut self, room: &str, name: &str) {
        let key = room.to_lowercase();
        if let Some(names) = self.rooms.get_mut(&key) {
            names.remove(&name.to_lowercase());
            if names.is_empty() {
                self.rooms.remove(&key);
            }
        }
    }

    /// Everything known of the other nodes, replaced by what Redis holds now.
    pub fn replace(&mut self, rooms: Vec<(String, Vec<String>)>) {
        self.rooms.clear();
        for (room, names) in rooms {
            for name in names {
                self.add(&room, &name);
            }
        }
    }

    /// True when someone on another node is `name` in `room` (ignoring case).
    pub fn contains(&self, room: &str, name: &str) -> bool {
        self.rooms
            .get(&room.to_lowercase())
            .is_some_and(|names| names.contains_key(&name.to_lowercase()))
    }

    /// The names in `room` on other nodes, sorted (their order of arrival is not known here).
    pub fn names(&self, room: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .rooms
            .get(&room.to_lowercase())
            .map(|names| names.values().map(String::as_str).collect())
            .unwrap_or_default();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_and_keep_their_spelling() {
        let mut others = Others::default();
        others.add("Pi", "Bob");
        others.add("pi", "ada");
        assert!(others.contains("PI", "bob"));
        assert_eq!(others.names("pi"), ["Bob", "ada"]);
        others.remove("pi", "BOB");
        assert_eq!(others.names("Pi"), ["ada"]);
        others.replace(vec![("q".into(), vec!["cy".into()])]);
        assert!(others.names("pi").is_empty());
        assert!(others.contains("Q", "CY"));
    }
}
