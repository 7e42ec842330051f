//! The history file: the JSON lines that carry each room's history across a restart.
//!
//! `load` runs at start-up; `HistoryFile` belongs to the history writer's thread
//! (`crate::history_writer`), never to the broadcaster, since every call may wait on the disk.
//! Touches only its file (and its temporary twin and directory for a rewrite): appends
//! batches of lines, syncs them, and now and then rewrites the file with just what is still
//! kept. Never a socket.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use log::{info, warn};
use serde::{Deserialize, Serialize};

use crate::chat::history::{Entry, Kind, Loaded};
use crate::platform;

/// Lines the file may hold beyond what is kept in memory before it is rewritten.
const COMPACT_SLACK_LINES: usize = 10_000;

/// One line of the history file.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    room: Cow<'a, str>,
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    text: Cow<'a, str>,
    time: u64,
}

/// Writes `entry` of `room` as one JSON line.
fn write_line(out: &mut impl Write, room: &str, entry: &Entry) -> io::Result<()> {
    let record = Record {
        room: room.into(),
        event: entry.kind.event().into(),
        name: entry.name.as_ref().into(),
        text: entry.text().into(),
        time: entry.time_ms,
    };
    serde_json::to_writer(&mut *out, &record)?;
    out.write_all(b"\n")
}

/// Reads the file at `path`, keeping the last `per_room` lines of each room. A missing file is
/// an empty history; a line that cannot be read (a torn last line after a crash) is skipped
/// with a warning.
pub(crate) fn load(path: &Path, per_room: usize) -> io::Result<Loaded> {
    let mut rooms: Loaded = HashMap::new();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(rooms),
        Err(e) => return Err(e),
    };
    let mut lines = 0;
    for (number, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record<'_> = match serde_json::from_slice(&line) {
            Ok(record) => record,
            Err(e) => {
                warn!("{}: skipping line {}: {e}", path.display(), number + 1);
                continue;
            }
        };
        let kind = match record.event.as_ref() {
            "message" => Kind::Message,
            "action" => Kind::Action,
            other => {
                warn!(
                    "{}: skipping line {}: unknown event {other:?}",
                    path.display(),
                    number + 1
                );
                continue;
            }
        };
        let entry = Entry::new(kind, record.name.as_ref().into(), &record.text, record.time);
        let room = rooms.entry(record.room.into_owned()).or_default();
        room.push_back(entry);
        if room.len() > per_room {
            room.pop_front();
        }
        lines += 1;
    }
    info!("{}: {lines} history lines read", path.display());
    Ok(rooms)
}

/// Appends `entry` of `room` to `out` as one JSON line (the writer batches lines into one
/// `write`).
pub(crate) fn encode_line(out: &mut Vec<u8>, room: &str, entry: &Entry) {
    write_line(out, room, entry).expect("writing to a Vec cannot fail");
}

/// The history file, open for appending. Owned by the history writer's thread: every call
/// here may wait on the disk.
pub(crate) struct HistoryFile {
    path: PathBuf,
    out: Option<File>,
    /// Lines in the file now.
    lines: usize,
    /// Lines appended since the last sync or rewrite.
    unsynced_lines: usize,
}

impl HistoryFile {
    /// Rewrites the file with just `kept` (so it starts compact), then opens it for appending.
    pub fn open<'e>(
        path: &Path,
        kept: impl Iterator<Item = (&'e str, &'e Entry)>,
    ) -> io::Result<Self> {
        let mut file = HistoryFile {
            path: path.to_path_buf(),
            out: None,
            lines: 0,
            unsynced_lines: 0,
        };
        file.rewrite(kept)?;
        Ok(file)
    }

    /// A file whose appends go to `out` instead (tests: `/dev/full` as a full disk).
    #[cfg(test)]
    pub fn with_handle(path: &Path, out: File) -> Self {
        HistoryFile {
            path: path.to_path_buf(),
            out: Some(out),
            lines: 0,
            unsynced_lines: 0,
        }
    }

    /// Where the file is, for log lines.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `bytes`, which hold `lines` whole lines, in one `write` where the OS allows.
    /// After an error the file is closed: the part of a batch that was written may end in a
    /// torn line, so only a rewrite may follow (`rewrite`).
    pub fn append(&mut self, bytes: &[u8], lines: usize) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Err(io::Error::other("the file is closed after an error"));
        };
        if let Err(e) = out.write_all(bytes) {
            self.out = None;
            return Err(e);
        }
        self.lines += lines;
        self.unsynced_lines += lines;
        Ok(())
    }

    /// Makes the appended lines durable (`fdatasync`: the data, and the length it changes).
    pub fn sync(&mut self) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Err(io::Error::other("the file is closed after an error"));
        };
        let synced = out.sync_data();
        match synced {
            Ok(()) => self.unsynced_lines = 0,
            Err(_) => self.out = None,
        }
        synced
    }

    /// Lines appended since the last sync or rewrite (a power cut may lose them).
    #[cfg(test)]
    pub fn unsynced_lines(&self) -> usize {
        self.unsynced_lines
    }

    /// True when the file holds many more lines than `kept`, and should be rewritten.
    pub fn wants_compaction(&self, kept: usize) -> bool {
        self.out.is_some() && self.lines > kept + kept.max(COMPACT_SLACK_LINES)
    }

    /// Replaces the file with `kept`, atomically and durably: a temporary file, written and
    /// fsynced, renamed over the old one, then the directory fsynced so the rename itself
    /// survives a power cut. Until the rename the old file stays whole.
    pub fn rewrite<'e>(
        &mut self,
        kept: impl Iterator<Item = (&'e str, &'e Entry)>,
    ) -> io::Result<()> {
        self.out = None;
        let tmp = self.path.with_extension("tmp");
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut lines = 0;
        for (room, entry) in kept {
            write_line(&mut out, room, entry)?;
            lines += 1;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        platform::sync_dir(dir)?;
        self.out = Some(OpenOptions::new().append(true).open(&self.path)?);
        self.lines = lines;
        self.unsynced_lines = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("wschat-history-{}-{name}", std::process::id()))
    }

    fn entry(name: &str, text: &str, time: u64) -> Entry {
        Entry::new(Kind::Message, name.into(), text, time)
    }

    #[test]
    fn round_trip_keeps_the_last_lines_per_room() {
        let path = temp("roundtrip");
        let a: Vec<_> = (0..5).map(|i| entry("al", &format!("a{i}"), i)).collect();
        let b = [entry("bo", "b0", 9)];
        let kept = a
            .iter()
            .map(|e| ("lobby", e))
            .chain(b.iter().map(|e| ("pi", e)));
        let mut file = HistoryFile::open(&path, kept).unwrap();
        let me = Entry::new(Kind::Action, "al".into(), "waves", 10);
        let mut bytes = Vec::new();
        encode_line(&mut bytes, "pi", &me);
        file.append(&bytes, 1).unwrap();
        file.sync().unwrap();

        let loaded = load(&path, 3).unwrap();
        let lobby: Vec<_> = loaded["lobby"]
            .iter()
            .map(|e| e.text().to_string())
            .collect();
        assert_eq!(lobby, ["a2", "a3", "a4"]);
        let pi = &loaded["pi"];
        assert_eq!(pi.len(), 2);
        assert_eq!(
            (pi[1].kind, pi[1].text(), pi[1].time_ms),
            (Kind::Action, "waves", 10)
        );
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let path = temp("torn");
        fs::write(
            &path,
            "{\"room\":\"r\",\"event\":\"message\",\"name\":\"a\",\"text\":\"ok\",\"time\":1}\n\
             {\"room\":\"r\",\"event\":\"mess",
        )
        .unwrap();
        let loaded = load(&path, 10).unwrap();
        assert_eq!(loaded["r"].len(), 1);
        assert_eq!(loaded["r"][0].text(), "ok");
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_missing_file_is_an_empty_history() {
        assert!(load(&temp("missing"), 10).unwrap().is_empty());
    }

    #[test]
    fn compaction_is_due_only_with_much_slack() {
        let path = temp("compact");
        let mut file = HistoryFile::open(&path, std::iter::empty()).unwrap();
        let e = entry("a", "x", 1);
        let mut bytes = Vec::new();
        for _ in 0..COMPACT_SLACK_LINES + 50 {
            encode_line(&mut bytes, "r", &e);
        }
        file.append(&bytes, COMPACT_SLACK_LINES + 50).unwrap();
        assert!(!file.wants_compaction(100));
        assert!(file.wants_compaction(40));
        file.rewrite(std::iter::once(("r", &e))).unwrap();
        assert!(!file.wants_compaction(1));
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
        fs::remove_file(path).unwrap();
    }

    #[test]
    fn a_failed_append_closes_the_file_until_a_rewrite() {
        let path = temp("full");
        let full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let mut file = HistoryFile::with_handle(&path, full);
        let mut bytes = Vec::new();
        encode_line(&mut bytes, "r", &entry("a", "lost", 1));
        assert!(
            file.append(&bytes, 1).is_err(),
            "/dev/full accepted a write"
        );
        // Closed: nothing more is appended after a possibly torn line.
        assert!(file.append(&bytes, 1).is_err());
        assert!(file.sync().is_err());
        let kept = entry("a", "kept", 2);
        file.rewrite(std::iter::once(("r", &kept))).unwrap();
        file.append(&bytes, 1).unwrap();
        let texts: Vec<_> = load(&path, 10).unwrap()["r"]
            .iter()
            .map(|e| e.text().to_string())
            .collect();
        assert_eq!(texts, ["kept", "lost"]);
        fs::remove_file(path).unwrap();
    }
}
