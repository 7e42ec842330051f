//! The chat: who is in which room under which name, and who hears what.
//!
//! Owns the members (a name and a room for each chat client, by [`Slot`]), the rooms with
//! their history, and the rules: names, rooms, commands, notices, the welcome, leaves. It
//! decides which event goes to which slots and hands that to a [`Deliver`]; it never sees a
//! socket, a frame or a wire format, so it is tested with a recorder (see the tests below).
//! The broadcaster thread owns it; nothing here locks.

pub(crate) mod commands;
pub(crate) mod history;
pub(crate) mod names;
pub(crate) mod others;
pub(crate) mod rooms;

use std::sync::Arc;

use log::info;

use crate::event::Slot;
use crate::wire::ChatEvent;
use commands::Line;
use history::{Entry, Kind};
use names::MAX_NAME_CHARS;
use others::Others;
use rooms::{Rooms, DEFAULT_ROOM};

/// Where the chat puts events: the outbox, which encodes each once per wire format.
pub(crate) trait Deliver {
    /// `event` for every slot in `to` but `except`, such as a room. Counts toward the
    /// broadcaster's round budget.
    fn broadcast(&mut self, to: &[Slot], except: Option<Slot>, event: &ChatEvent<'_>, time_ms: u64);
    /// `event` for one client alone.
    fn send(&mut self, to: Slot, event: &ChatEvent<'_>, time_ms: u64);
    /// `event` (a `/msg`) for a member of `room` on another cluster node: only the cluster's
    /// tap carries it there.
    fn to_other_node(&mut self, _room: &str, _event: &ChatEvent<'_>, _time_ms: u64) {}
}

/// A chat client's place in the chat. The one record of its name: its room indexes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub name: Arc<str>,
    pub room: Arc<str>,
}

/// A line that was said and remembered, for the history file.
pub(crate) struct Said<'a> {
    pub room: &'a str,
    pub entry: &'a Entry,
}

/// Every chat client's name and room, and every room. See the module comment.
pub(crate) struct Chat {
    members: Vec<Option<Member>>,
    rooms: Rooms,
    /// Lines kept per room; 0 turns history off.
    history_lines: usize,
    /// For the rooms-full notice.
    max_rooms: usize,
    /// Next number for an automatic `userN` name.
    next_user_number: u64,
    /// Off while shutting down: everyone is leaving, and nobody needs to hear it.
    announce_leaves: bool,
    /// The members of other cluster nodes (`--redis`; empty without).
    others: Others,
}

impl Chat {
    /// A chat over `rooms` (which may hold history loaded from a file).
    pub fn new(rooms: Rooms, history_lines: usize, max_rooms: usize) -> Chat {
        Chat {
            members: Vec::new(),
            rooms,
            history_lines,
            max_rooms,
            next_user_number: 1,
            announce_leaves: true,
            others: Others::default(),
        }
    }

    /// How many rooms exist (for the metrics).
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// The chat client in `slot`, if it is in a room.
    pub fn member(&self, slot: Slot) -> Option<&Member> {
        self.members.get(slot)?.as_ref()
    }

    /// From now on leaves are not announced (the server is shutting down).
    pub fn stop_announcing(&mut self) {
        self.announce_leaves = false;
    }

    /// Puts `slot` into the room it asked for (or the default room) under the name it asked
    /// for (or a free one): the room hears `enter`; the newcomer gets its welcome, the
    /// room's history and any notice about its name or room. Returns its place, or `None`
    /// if it already had one.
    pub fn enter(
        &mut self,
        slot: Slot,
        requested_name: Option<&str>,
        requested_room: Option<&str>,
        now_ms: u64,
        out: &mut impl Deliver,
    ) -> Option<&Member> {
        if self.member(slot).is_some() {
            return None;
        }
        let (room, mut notices) = self.pick_room(requested_room);
        let (name, name_notice) = self.pick_name(&room, requested_name);
        notices.extend(name_notice);
        let name: Arc<str> = name.into();
        self.rooms.add(&room, slot, &name);
        if self.members.len() <= slot {
            self.members.resize(slot + 1, None);
        }
        self.members[slot] = Some(Member {
            name: name.clone(),
            room: room.clone(),
        });

        let members = self.room_members(&room);
        let enter = ChatEvent::Enter {
            name: &name,
            room: &room,
        };
        out.broadcast(members, Some(slot), &enter, now_ms);
        self.welcome(slot, &name, &room, now_ms, out);
        for (code, text) in notices {
            notice(out, slot, code, &text, None, now_ms);
        }
        self.member(slot)
    }

    /// The room a newcomer gets, and notices when it is not the one it asked for.
    fn pick_room(&mut self, requested: Option<&str>) -> (Arc<str>, Vec<(&'static str, String)>) {
        let mut notices = Vec::new();
        let room = match requested.map(names::clean_name) {
            None => None,
            Some(None) => {
                let text = format!(
                    "That room name is not allowed (1 to {MAX_NAME_CHARS} characters, no control characters): you are in {DEFAULT_ROOM}."
                );
                notices.push(("room-invalid", text));
                None
            }
            Some(Some(wanted)) => {
                let room = self.rooms.open(wanted);
                if room.is_none() {
                    let text = format!(
                        "No room for another room ({} in use): you are in {DEFAULT_ROOM}.",
                        self.max_rooms
                    );
                    notices.push(("rooms-full", text));
                }
                room
            }
        };
        let room = room
            .or_else(|| self.rooms.open(DEFAULT_ROOM))
            .expect("the default room always opens");
        (room, notices)
    }

    /// The name a newcomer gets, and the notice to send when it is not the one it asked for.
    fn pick_name(
        &mut self,
        room: &str,
        requested: Option<&str>,
    ) -> (String, Option<(&'static str, String)>) {
        let (rooms, others) = (&self.rooms, &self.others);
        let taken = |n: &str| rooms.is_taken(room, n, None) || others.contains(room, n);
        if let Some(wanted) = requested.and_then(names::clean_name) {
            let name = names::unique_name(wanted, taken);
            let notice = (name != wanted).then(|| {
                let text = format!("The name {wanted} is taken: you are {name}.");
                ("name-taken", text)
            });
            return (name, notice);
        }
        let name = loop {
            let candidate = format!("user{}", self.next_user_number);
            self.next_user_number += 1;
            if !taken(&candidate) {
                break candidate;
            }
        };
        let notice = requested.map(|_| {
            let text = format!(
                "That name is not allowed (1 to {MAX_NAME_CHARS} characters, no control characters): you are {name}."
            );
            ("name-invalid", text)
        });
        (name, notice)
    }

    /// The newcomer's welcome (its own join line, with who is there), then the history.
    fn welcome(&self, slot: Slot, name: &str, room: &str, now_ms: u64, out: &mut impl Deliver) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let mut users = self.names_of(&r.members);
        users.extend(self.others.names(room));
        let welcome = ChatEvent::Welcome {
            name,
            room,
            users: &users,
        };
        out.send(slot, &welcome, now_ms);
        for entry in &r.history {
            out.send(slot, &line_event(entry, room, true), entry.time_ms);
        }
    }

    /// One chat line from `slot`: said to its room, or a command carried out. Returns the
    /// line to append to the history file, if one was remembered.
    pub fn text(
        &mut self,
        slot: Slot,
        line: &str,
        now_ms: u64,
        out: &mut impl Deliver,
    ) -> Option<Said<'_>> {
        let Member { name, room } = self.member(slot)?.clone();
        match commands::parse(line) {
            Line::Say("") => notice(
                out,
                slot,
                "empty-message",
                "Empty messages are not sent.",
                None,
                now_ms,
            ),
            Line::Say(text) => return self.say(Kind::Message, &room, &name, text, now_ms, out),
            Line::Me(text) => return self.say(Kind::Action, &room, &name, text, now_ms, out),
            Line::Nick(new) => self.rename(slot, &room, &name, new, now_ms, out),
            Line::Who => {
                let mut users = self.names_of(self.room_members(&room));
                users.extend(self.others.names(&room));
                let text = format!("In {room}: {}", users.join(", "));
                notice(out, slot, "who", &text, Some(&users), now_ms);
            }
            Line::Msg(arg) => self.private(slot, &room, &name, arg, now_ms, out),
            Line::Help => notice(out, slot, "help", commands::HELP, None, now_ms),
            Line::Usage(usage) => {
                notice(out, slot, "usage", &format!("Usage: {usage}"), None, now_ms)
            }
            Line::Unknown(word) => {
                let text = format!(
                    "Unknown command /{word}: /help lists the commands (// sends a literal /)."
                );
                notice(out, slot, "unknown-command", &text, None, now_ms);
            }
        }
        None
    }

    /// A message or action for the room: sent to everyone in it, and remembered.
    fn say(
        &mut self,
        kind: Kind,
        room: &Arc<str>,
        name: &Arc<str>,
        text: &str,
        now_ms: u64,
        out: &mut impl Deliver,
    ) -> Option<Said<'_>> {
        let entry = Entry::new(kind, name.clone(), text, now_ms);
        out.broadcast(
            self.room_members(room),
            None,
            &line_event(&entry, room, false),
            now_ms,
        );
        if self.history_lines == 0 {
            return None;
        }
        let (room, entry) = self.rooms.record(room, entry)?;
        Some(Said { room, entry })
    }

    /// `/nick NEW`.
    fn rename(
        &mut self,
        slot: Slot,
        room: &Arc<str>,
        old: &Arc<str>,
        wanted: &str,
        now_ms: u64,
        out: &mut impl Deliver,
    ) {
        let Some(new) = names::clean_name(wanted) else {
            let text = format!(
                "That name is not allowed (1 to {MAX_NAME_CHARS} characters, no control characters)."
            );
            return notice(out, slot, "name-invalid", &text, None, now_ms);
        };
        if new == &**old {
            return notice(
                out,
                slot,
                "usage",
                &format!("You are already {new}."),
                None,
                now_ms,
            );
        }
        if self.rooms.is_taken(room, new, Some(slot)) || self.others.contains(room, new) {
            let text = format!("The name {new} is taken.");
            return notice(out, slot, "name-taken", &text, None, now_ms);
        }
        self.apply_rename(slot, room, old, new.into(), now_ms, out);
    }

    /// Renames `slot` from `old` to `new` (free) and tells its room.
    fn apply_rename(
        &mut self,
        slot: Slot,
        room: &Arc<str>,
        old: &Arc<str>,
        new: Arc<str>,
        now_ms: u64,
        out: &mut impl Deliver,
    ) {
        self.rooms.rename(room, slot, old, &new);
        if let Some(member) = self.members[slot].as_mut() {
            member.name = new.clone();
        }
        info!("{old:?} is now {new:?} in {room:?}");
        let event = ChatEvent::Rename {
            old,
            name: &new,
            room,
        };
        out.broadcast(self.room_members(room), None, &event, now_ms);
    }

    /// `/msg NAME TEXT`: to the sender and the recipient only.
    fn private(
        &self,
        slot: Slot,
        room: &str,
        from: &str,
        arg: &str,
        now_ms: u64,
        out: &mut impl Deliver,
    ) {
        let mut names = self.names_of(self.room_members(room));
        names.extend(self.others.names(room));
        let Some((to, text)) = commands::split_recipient(arg, names.iter().copied()) else {
            let who = arg.trim_end();
            let names_someone = names.iter().any(|n| n.to_lowercase() == who.to_lowercase());
            if names_someone {
                return notice(out, slot, "usage", "Usage: /msg NAME TEXT", None, now_ms);
            }
            let who = arg.split_whitespace().next().unwrap_or(arg);
            let text = format!("No one called {who} is in {room}: /who lists who is here.");
            return notice(out, slot, "no-such-user", &text, None, now_ms);
        };
        let event = ChatEvent::Private { from, to, text };
        let Some(to_slot) = self.rooms.find(room, to) else {
            // On another node: it gets it there, the sender sees its copy here.
            out.to_other_node(room, &event, now_ms);
            return out.send(slot, &event, now_ms);
        };
        if to_slot == slot {
            out.send(slot, &event, now_ms);
        } else {
            out.broadcast(&[slot, to_slot], None, &event, now_ms);
        }
    }

    /// A socket.io client's own event (`emit('typing', true)`): to everyone else in its room,
    /// with who sent it. Not remembered: an event is not a line of the chat.
    pub fn relay(&self, slot: Slot, event: &str, args: &str, now_ms: u64, out: &mut impl Deliver) {
        let Some(Member { name, room }) = self.member(slot) else {
            return; // not in the chat (it left the namespace)
        };
        let custom = ChatEvent::Custom {
            event,
            args,
            from: name,
            room,
        };
        out.broadcast(self.room_members(room), Some(slot), &custom, now_ms);
    }

    /// Takes `slot` out of its room and tells the room (unless shutting down).
    pub fn leave(&mut self, slot: Slot, now_ms: u64, out: &mut impl Deliver) {
        if let Some(member) = self.quit(slot) {
            self.announce_leave(&member, now_ms, out);
        }
    }

    /// Takes `slot` out of its room without telling anyone; `None` if it was in none.
    pub fn quit(&mut self, slot: Slot) -> Option<Member> {
        let member = self.members.get_mut(slot)?.take()?;
        self.rooms.remove(&member.room, slot, &member.name);
        Some(member)
    }

    /// Tells `member`'s room that it left; not while shutting down.
    pub fn announce_leave(&self, member: &Member, now_ms: u64, out: &mut impl Deliver) {
        if self.announce_leaves {
            let Member { name, room } = member;
            out.broadcast(
                self.room_members(room),
                None,
                &ChatEvent::Leave { name, room },
                now_ms,
            );
        }
    }

    /// The slots in `room` (none if it is not open), e.g. for another node's line.
    pub fn room_members(&self, room: &str) -> &[Slot] {
        self.rooms.get(room).map_or(&[], |r| &r.members)
    }

    /// Remembers a line said in `room` elsewhere (another node's), for newcomers here; the
    /// room opens for it if the room cap allows. Nothing with history off.
    pub fn remember(&mut self, room: &str, entry: Entry) {
        if self.history_lines == 0 {
            return;
        }
        if let Some(key) = self.rooms.open(room) {
            self.rooms.record(&key, entry);
        }
    }

    /// The members of other cluster nodes, for the cluster bridge to keep current.
    pub fn others_mut(&mut self) -> &mut Others {
        &mut self.others
    }

    /// The member of `room` (its own spelling) called `name`, ignoring case.
    pub fn find(&self, room: &str, name: &str) -> Option<Slot> {
        self.rooms.find(room, name)
    }

    /// Another node claimed `name` in `room` first (in Redis): this node's member of that
    /// name gets the next free one, with a notice, and its room hears the rename.
    pub fn clash(&mut self, room: &str, name: &str, now_ms: u64, out: &mut impl Deliver) {
        let Some(slot) = self.rooms.find(room, name) else {
            return; // gone already
        };
        let Some(Member { name: old, room }) = self.member(slot).cloned() else {
            return;
        };
        self.others.add(&room, &old);
        let (rooms, others) = (&self.rooms, &self.others);
        let new = names::unique_name(&old, |n| {
            rooms.is_taken(&room, n, None) || others.contains(&room, n)
        });
        let text = format!("The name {old} is taken on another node: you are {new}.");
        notice(out, slot, "name-taken", &text, None, now_ms);
        self.apply_rename(slot, &room, &old, new.into(), now_ms, out);
    }

    /// The names of `slots`, in order.
    fn names_of(&self, slots: &[Slot]) -> Vec<&str> {
        slots
            .iter()
            .filter_map(|&s| self.member(s))
            .map(|m| &*m.name)
            .collect()
    }
}

/// A notice to one client.
fn notice(
    out: &mut impl Deliver,
    slot: Slot,
    code: &str,
    text: &str,
    users: Option<&[&str]>,
    now_ms: u64,
) {
    out.send(slot, &ChatEvent::Notice { code, text, users }, now_ms);
}

/// The event of a chat line: live, or replayed from history.
fn line_event<'e>(entry: &'e Entry, room: &'e str, history: bool) -> ChatEvent<'e> {
    let (name, text) = (&*entry.name, entry.text());
    match entry.kind {
        Kind::Message => ChatEvent::Message {
            name,
            text,
            room,
            history,
        },
        Kind::Action => ChatEvent::Action {
            name,
            text,
            room,
            history,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Encoder;
    use serde_json::{json, Value};

    /// Records every delivery as (recipient, the event's classic JSON): the chat's whole
    /// output, with no socket.
    #[derive(Default)]
    struct Recorder {
        got: Vec<(Slot, Value)>,
    }

    impl Recorder {
        fn json(event: &ChatEvent<'_>, time_ms: u64) -> Value {
            serde_json::from_slice(Encoder::new().json(event, time_ms)).unwrap()
        }

        /// Everything delivered since the last call.
        fn take(&mut self) -> Vec<(Slot, Value)> {
            std::mem::take(&mut self.got)
        }

        /// What `slot` got since the last `take`, as `event` names.
        fn events_of(&self, slot: Slot) -> Vec<String> {
            (self.got.iter())
                .filter(|(s, _)| *s == slot)
                .map(|(_, v)| v["event"].as_str().unwrap().to_string())
                .collect()
        }
    }

    impl Deliver for Recorder {
        fn broadcast(&mut self, to: &[Slot], except: Option<Slot>, event: &ChatEvent<'_>, t: u64) {
            let v = Recorder::json(event, t);
            for &slot in to.iter().filter(|&&s| Some(s) != except) {
                self.got.push((slot, v.clone()));
            }
        }
        fn send(&mut self, to: Slot, event: &ChatEvent<'_>, t: u64) {
            self.got.push((to, Recorder::json(event, t)));
        }
    }

    fn chat(history_lines: usize, max_rooms: usize) -> Chat {
        let rooms = Rooms::new(max_rooms, history_lines, Default::default());
        Chat::new(rooms, history_lines, max_rooms)
    }

    const T: u64 = 1_700_000_000_000;

    #[test]
    fn a_newcomer_gets_its_welcome_and_everyone_else_hears_it_enter() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        c.enter(0, Some("ada"), None, T, &mut out).unwrap();
        let got = out.take();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, 0);
        assert_eq!(got[0].1["event"], "welcome");
        assert_eq!(got[0].1["info"], "ada comes in !!!");
        assert_eq!(got[0].1["room"], DEFAULT_ROOM);
        assert_eq!(got[0].1["users"], json!(["ada"]));

        c.enter(1, Some("bob"), None, T, &mut out).unwrap();
        assert_eq!(out.events_of(0), ["enter"]);
        assert_eq!(out.events_of(1), ["welcome"]);
        let welcome = &out.got.iter().find(|(s, _)| *s == 1).unwrap().1;
        assert_eq!(welcome["users"], json!(["ada", "bob"]));
        assert!(
            c.enter(1, Some("bob"), None, T, &mut out).is_none(),
            "enters once"
        );
    }

    #[test]
    fn names_are_unique_in_a_room_whatever_the_case() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        c.enter(0, Some("ada"), None, T, &mut out);
        let m = c.enter(1, Some("ADA"), None, T, &mut out).unwrap();
        assert_eq!(&*m.name, "ADA2");
        let got = out.take();
        let notice = &got.iter().find(|(s, v)| *s == 1 && v["event"] == "notice");
        assert_eq!(notice.unwrap().1["code"], "name-taken");
        // The same name is free in another room.
        let m = c.enter(2, Some("ada"), Some("pi"), T, &mut out).unwrap();
        assert_eq!((&*m.name, &*m.room), ("ada", "pi"));
    }

    #[test]
    fn no_name_gets_a_number_and_a_bad_name_a_notice() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        assert_eq!(&*c.enter(0, None, None, T, &mut out).unwrap().name, "user1");
        out.take();
        let m = c.enter(1, Some("bell\u{7}"), None, T, &mut out).unwrap();
        assert_eq!(&*m.name, "user2");
        let codes: Vec<_> = (out.take().into_iter())
            .filter(|(s, v)| *s == 1 && v["event"] == "notice")
            .map(|(_, v)| v["code"].clone())
            .collect();
        assert_eq!(codes, ["name-invalid"]);
    }

    #[test]
    fn a_room_hears_only_its_own_lines_the_sender_included() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        c.enter(0, Some("a"), Some("one"), T, &mut out);
        c.enter(1, Some("b"), Some("two"), T, &mut out);
        c.enter(2, Some("c"), Some("ONE"), T, &mut out);
        out.take();
        c.text(0, "hi", T + 1, &mut out);
        let got = out.take();
        let to: Vec<Slot> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(to, [0, 2]);
        assert_eq!(got[0].1["info"], "a: hi");
        assert_eq!(got[0].1["room"], "one", "the first spelling of the room");
        assert_eq!(got[0].1["time"], T + 1);
    }

    #[test]
    fn lines_are_remembered_replayed_after_the_welcome_and_handed_to_the_file() {
        let (mut c, mut out) = (chat(2, 10), Recorder::default());
        c.enter(0, Some("a"), None, T, &mut out);
        for (i, line) in ["one", "/me waves", "three"].into_iter().enumerate() {
            let said = c.text(0, line, T + i as u64, &mut out).expect("remembered");
            assert_eq!(said.room, DEFAULT_ROOM);
            assert_eq!(said.entry.time_ms, T + i as u64);
        }
        assert!(
            c.text(0, "/who", T, &mut out).is_none(),
            "commands are not history"
        );
        out.take();
        c.enter(1, Some("b"), None, T + 9, &mut out);
        let got: Vec<_> = out.take().into_iter().filter(|(s, _)| *s == 1).collect();
        let lines: Vec<_> = got.iter().map(|(_, v)| v["info"].clone()).collect();
        assert_eq!(lines, ["b comes in !!!", "* a waves", "a: three"]);
        assert_eq!(got[1].1["history"], true);
        assert_eq!(got[1].1["time"], T + 1, "replayed with its own time");
        assert!(got[0].1.get("history").is_none());
    }

    #[test]
    fn with_history_off_nothing_is_remembered() {
        let (mut c, mut out) = (chat(0, 10), Recorder::default());
        c.enter(0, Some("a"), None, T, &mut out);
        assert!(c.text(0, "hi", T, &mut out).is_none());
        out.take();
        c.enter(1, Some("b"), None, T, &mut out);
        assert_eq!(out.events_of(1), ["welcome"]);
    }

    #[test]
    fn nick_renames_for_the_room_and_refuses_taken_and_bad_names() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        c.enter(0, Some("al"), None, T, &mut out);
        c.enter(1, Some("bo"), None, T, &mut out);
        out.take();
        c.text(0, "/nick ally", T, &mut out);
        let got = out.take();
        assert_eq!(got.len(), 2, "both hear it: {got:?}");
        assert_eq!(got[0].1["info"], "al is now known as ally");
        assert_eq!(&*c.member(0).unwrap().name, "ally");
        for (line, code) in [("/nick BO", "name-taken"), ("/nick \u{7}", "name-invalid")] {
            c.text(0, line, T, &mut out);
            let got = out.take();
            assert_eq!(got.len(), 1, "{line}: only the asker hears: {got:?}");
            assert_eq!((got[0].0, &got[0].1["code"]), (0, &json!(code)));
        }
        // The old name is free again, the new one taken.
        let m = c.enter(2, Some("al"), None, T, &mut out).unwrap();
        assert_eq!(&*m.name, "al");
        let m = c.enter(3, Some("Ally"), None, T, &mut out).unwrap();
        assert_eq!(&*m.name, "Ally2");
    }

    #[test]
    fn msg_reaches_the_sender_and_the_recipient_only() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        for (slot, name) in [(0, "ann"), (1, "bob smith"), (2, "cy")] {
            c.enter(slot, Some(name), None, T, &mut out);
        }
        out.take();
        assert!(c.text(0, "/msg Bob Smith psst", T, &mut out).is_none());
        let got = out.take();
        let to: Vec<Slot> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(to, [0, 1]);
        assert_eq!(got[0].1["info"], "ann → bob smith (private): psst");
        c.text(0, "/msg nobody hi", T, &mut out);
        assert_eq!(out.take()[0].1["code"], "no-such-user");
        c.text(0, "/msg cy", T, &mut out);
        assert_eq!(out.take()[0].1["code"], "usage");
    }

    #[test]
    fn who_help_unknown_and_empty_lines_answer_the_asker_alone() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        c.enter(0, Some("a"), None, T, &mut out);
        c.enter(1, Some("b"), None, T, &mut out);
        out.take();
        let cases = [
            ("/who", "who"),
            ("/help", "help"),
            ("/dance", "unknown-command"),
            ("", "empty-message"),
            ("/nick", "usage"),
        ];
        for (line, code) in cases {
            c.text(1, line, T, &mut out);
            let got = out.take();
            assert_eq!(got.len(), 1, "{line}: {got:?}");
            assert_eq!((got[0].0, &got[0].1["code"]), (1, &json!(code)));
            if code == "who" {
                assert_eq!(got[0].1["users"], json!(["a", "b"]));
            }
        }
        c.text(1, "//not a command", T, &mut out);
        assert_eq!(out.take()[0].1["info"], "b: /not a command");
    }

    #[test]
    fn a_leave_is_announced_once_and_a_quit_not_at_all() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        for slot in 0..3 {
            c.enter(slot, None, None, T, &mut out);
        }
        out.take();
        c.leave(0, T, &mut out);
        c.leave(0, T, &mut out);
        let got = out.take();
        let to: Vec<Slot> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(to, [1, 2]);
        assert_eq!(got[0].1["info"], "user1 leaves.");
        let member = c.quit(1).expect("was in a room");
        assert!(out.take().is_empty(), "quit is silent");
        c.announce_leave(&member, T, &mut out);
        assert_eq!(out.events_of(2), ["leave"]);
        assert!(c.quit(1).is_none());
        out.take();
        c.stop_announcing();
        c.leave(2, T, &mut out);
        assert!(out.take().is_empty(), "no leaves while shutting down");
        assert!(c.member(2).is_none());
    }

    #[test]
    fn a_custom_event_reaches_the_others_in_the_room_with_its_sender() {
        let (mut c, mut out) = (chat(10, 10), Recorder::default());
        c.enter(0, Some("ann"), Some("r"), T, &mut out);
        c.enter(1, Some("bob"), Some("r"), T, &mut out);
        c.enter(2, Some("cy"), Some("elsewhere"), T, &mut out);
        out.take();
        c.relay(0, "typing", "true", T, &mut out);
        let got = out.take();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0, 1, "not the sender, not another room");
        assert_eq!(
            got[0].1,
            json!(["typing", true, {"from": "ann", "room": "r", "time": T}])
        );
        c.leave(0, T, &mut out);
        out.take();
        c.relay(0, "typing", "true", T, &mut out);
        assert!(
            out.take().is_empty(),
            "someone out of the chat relays nothing"
        );
        c.enter(3, Some("dee"), Some("r"), T, &mut out);
        out.take();
        assert!(
            c.text(1, "hi", T, &mut out).is_some(),
            "lines are remembered"
        );
        c.relay(1, "typing", "false", T, &mut out);
        out.take();
        c.enter(4, Some("eve"), Some("r"), T, &mut out);
        let replayed: Vec<_> = out.take().into_iter().filter(|(s, _)| *s == 4).collect();
        assert_eq!(
            replayed.len(),
            2,
            "the welcome and the line, no event: {replayed:?}"
        );
    }

    #[test]
    fn a_full_house_of_rooms_sends_newcomers_to_the_lobby() {
        let (mut c, mut out) = (chat(10, 1), Recorder::default());
        assert_eq!(
            &*c.enter(0, None, Some("x"), T, &mut out).unwrap().room,
            "x"
        );
        out.take();
        let m = c.enter(1, None, Some("y"), T, &mut out).unwrap();
        assert_eq!(&*m.room, DEFAULT_ROOM);
        assert_eq!(out.take().last().unwrap().1["code"], "rooms-full");
        let m = c.enter(2, None, Some("bad\u{7}room"), T, &mut out).unwrap();
        assert_eq!(&*m.room, DEFAULT_ROOM);
        assert_eq!(out.take().last().unwrap().1["code"], "room-invalid");
    }
}
