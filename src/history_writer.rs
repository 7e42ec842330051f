//! The history writer: the thread that owns the history file, so that no disk can stall the
//! broadcaster.
//!
//! The broadcaster hands each remembered chat line to a [`HistoryQueue`], which never waits:
//! it `try_send`s into a bounded channel, and when the channel is full the line is left out
//! of the FILE (it stays in the rooms' memory and is replayed as usual), counted, and logged
//! once per episode. The writer thread batches what it receives into one `write`, syncs it
//! (`fdatasync`) within `history_sync_interval` (zero: after every batch), compacts the file
//! now and then, and keeps its own copy of the lines each room retains. On a write error
//! (a full disk, a card pulled out) it logs once, retries with backoff, and when the disk
//! works again rewrites the file from that copy. Touches only the history file; never a
//! socket, never the chat.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use log::{debug, error, info, warn};

use crate::chat::history::Entry;
use crate::config::Config;
use crate::history_file::{encode_line, HistoryFile};
use crate::metrics::Shared;

/// Lines that may wait for the writer: minutes of a busy chat, so only a disk that stalls for
/// a long time makes the file miss lines. The channel allocates its slots up front, so each
/// holds a box (16 bytes a slot with its stamp: 1 MiB, not 4.5 for the lines themselves).
pub(crate) const HISTORY_QUEUE_LINES: usize = 65_536;
/// Lines written in one batch at most, so that a sync falls due between batches even under a
/// steady stream.
const MAX_BATCH_LINES: usize = 4096;
/// The first retry after a write error, doubled after each failed retry...
const FIRST_RETRY_MS: u64 = 250;
/// ...up to this.
const MAX_RETRY_MS: u64 = 30_000;
/// Stack for the writer thread: it encodes JSON and keeps no large locals.
const WRITER_STACK_BYTES: usize = 256 * 1024;

/// One line for the file.
pub(crate) struct Line {
    room: Arc<str>,
    entry: Entry,
}

/// The broadcaster's end of the writer's channel. Never blocks.
pub(crate) struct HistoryQueue {
    lines: Sender<Box<Line>>,
    /// Lines left out of the file in the current episode of a full channel.
    dropped: u64,
    /// Lines left out of the file since start-up.
    dropped_total: u64,
    writer_gone: bool,
    /// Where the queue's length and the lines left out are counted, for `/metrics`.
    metrics: Arc<Shared>,
}

impl HistoryQueue {
    /// Queues a remembered line for the file; when the writer is behind, leaves it out.
    pub fn push(&mut self, room: &str, entry: &Entry) {
        let line = Box::new(Line {
            room: room.into(),
            entry: entry.clone(),
        });
        self.metrics.history.queuing();
        let sent = self.lines.try_send(line);
        if let Err(e) = &sent {
            (self.metrics.history).not_queued(matches!(e, TrySendError::Full(_)));
        }
        match sent {
            Ok(()) if self.dropped > 0 => {
                info!(
                    "history writer caught up: {} lines were left out of the file ({} since \
                     start-up); rooms still remember them",
                    self.dropped, self.dropped_total
                );
                self.dropped = 0;
            }
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    warn!(
                        "history writer is {HISTORY_QUEUE_LINES} lines behind (a slow disk?): \
                         new lines are left out of the history file until it catches up; \
                         chat goes on and rooms remember them"
                    );
                }
                self.dropped += 1;
                self.dropped_total += 1;
            }
            Err(TrySendError::Disconnected(_)) => {
                if !self.writer_gone {
                    error!("the history writer has stopped: history is no longer written");
                    self.writer_gone = true;
                }
            }
        }
    }

    /// Lines left out of the file since start-up.
    #[cfg(test)]
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

/// Starts the writer thread for `file`, which already holds `kept`. Returns the queue to feed
/// it and the thread, which ends once the queue is dropped and every line is synced.
pub(crate) fn spawn<'e>(
    file: HistoryFile,
    kept: impl Iterator<Item = (&'e str, &'e Entry)>,
    config: &Config,
    metrics: Arc<Shared>,
) -> io::Result<(HistoryQueue, JoinHandle<()>)> {
    let mut retained = Retained::new(config.history, config.max_rooms);
    for (room, entry) in kept {
        retained.push(room.into(), entry.clone());
    }
    let writer = Writer {
        file,
        retained,
        sync_interval: config.history_sync_interval,
        batch: Vec::new(),
        batch_lines: 0,
        health: Health::Ok { sync_due: None },
        metrics: metrics.clone(),
    };
    metrics.history.started();
    let (lines, receiver) = crossbeam_channel::bounded(HISTORY_QUEUE_LINES);
    let thread = thread::Builder::new()
        .name("history-writer".into())
        .stack_size(WRITER_STACK_BYTES)
        .spawn(move || writer.run(receiver))?;
    let queue = HistoryQueue {
        lines,
        dropped: 0,
        dropped_total: 0,
        writer_gone: false,
        metrics,
    };
    Ok((queue, thread))
}

/// The writer's own copy of what each room retains: what a rewrite puts in the file. The
/// same limits as the rooms' (lines per room, rooms at once; past it, the room that spoke
/// least recently is forgotten).
struct Retained {
    rooms: HashMap<Arc<str>, RoomLines>,
    per_room: usize,
    max_rooms: usize,
    /// Increases with every line: when each room last spoke.
    counter: u64,
}

struct RoomLines {
    lines: VecDeque<Entry>,
    last: u64,
}

impl Retained {
    fn new(per_room: usize, max_rooms: usize) -> Self {
        Retained {
            rooms: HashMap::new(),
            per_room,
            max_rooms,
            counter: 0,
        }
    }

    fn push(&mut self, room: Arc<str>, entry: Entry) {
        if self.per_room == 0 {
            return;
        }
        self.counter += 1;
        if !self.rooms.contains_key(&room) && self.rooms.len() >= self.max_rooms {
            let oldest = self.rooms.iter().min_by_key(|(_, r)| r.last);
            if let Some(oldest) = oldest.map(|(name, _)| name.clone()) {
                self.rooms.remove(&oldest);
            }
        }
        let r = self.rooms.entry(room).or_insert_with(|| RoomLines {
            lines: VecDeque::new(),
            last: 0,
        });
        r.last = self.counter;
        r.lines.push_back(entry);
        if r.lines.len() > self.per_room {
            r.lines.pop_front();
        }
    }

    fn len(&self) -> usize {
        self.rooms.values().map(|r| r.lines.len()).sum()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.rooms
            .iter()
            .flat_map(|(name, r)| r.lines.iter().map(move |e| (name.as_ref(), e)))
    }
}

enum Health {
    /// Appending; `sync_due` is when the oldest unsynced line must be synced.
    Ok { sync_due: Option<Instant> },
    /// The disk failed: the file is rewritten at `retry_at`, then after `backoff` again.
    Failing {
        retry_at: Instant,
        backoff: Duration,
    },
}

struct Writer {
    file: HistoryFile,
    retained: Retained,
    sync_interval: Duration,
    /// Encoded lines not yet written.
    batch: Vec<u8>,
    batch_lines: usize,
    health: Health,
    /// Counts each line taken off the queue, for `/metrics`.
    metrics: Arc<Shared>,
}

impl Writer {
    fn run(mut self, lines: Receiver<Box<Line>>) {
        loop {
            let first = match self.wake_at() {
                Some(at) => lines.recv_deadline(at),
                None => lines.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match first {
                Ok(line) => {
                    self.take(*line);
                    while self.batch_lines < MAX_BATCH_LINES {
                        match lines.try_recv() {
                            Ok(line) => self.take(*line),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                // The broadcaster has finished and every line it queued has been taken.
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.write_batch();
            self.maintain(Instant::now());
        }
        self.write_batch();
        if let Health::Ok { sync_due: Some(_) } = self.health {
            self.sync();
        }
        if let Health::Failing { .. } = self.health {
            // One last try, so a disk that came back just now still gets the file.
            self.retry(Instant::now());
        }
    }

    /// When to stop waiting for lines: the next sync or retry (`None`: nothing is due).
    fn wake_at(&self) -> Option<Instant> {
        match self.health {
            Health::Ok { sync_due } => sync_due,
            Health::Failing { retry_at, .. } => Some(retry_at),
        }
    }

    fn take(&mut self, line: Line) {
        self.metrics.history.taken();
        if let Health::Ok { .. } = self.health {
            encode_line(&mut self.batch, &line.room, &line.entry);
            self.batch_lines += 1;
        }
        self.retained.push(line.room, line.entry);
    }

    /// Writes the batch in one `write`; with no sync interval, syncs it at once.
    fn write_batch(&mut self) {
        if self.batch_lines == 0 {
            return;
        }
        let written = self.file.append(&self.batch, self.batch_lines);
        self.batch.clear();
        self.batch_lines = 0;
        let now = Instant::now();
        match written {
            Err(e) => self.fail(&e, now),
            Ok(()) if self.sync_interval.is_zero() => self.sync(),
            Ok(()) => {
                if let Health::Ok {
                    sync_due: due @ None,
                } = &mut self.health
                {
                    *due = Some(now + self.sync_interval);
                }
            }
        }
    }

    /// A sync that fell due, a compaction, or a retry after an error.
    fn maintain(&mut self, now: Instant) {
        match self.health {
            Health::Ok { sync_due } => {
                if sync_due.is_some_and(|due| now >= due) {
                    self.sync();
                }
                let kept = self.retained.len();
                if matches!(self.health, Health::Ok { .. }) && self.file.wants_compaction(kept) {
                    match self.file.rewrite(self.retained.iter()) {
                        Ok(()) => self.health = Health::Ok { sync_due: None },
                        Err(e) => self.fail(&e, now),
                    }
                }
            }
            Health::Failing { retry_at, .. } if now >= retry_at => self.retry(now),
            Health::Failing { .. } => {}
        }
    }

    fn sync(&mut self) {
        match self.file.sync() {
            Ok(()) => self.health = Health::Ok { sync_due: None },
            Err(e) => self.fail(&e, Instant::now()),
        }
    }

    /// The disk failed: logged once per episode; the file is rewritten once it works again.
    fn fail(&mut self, e: &io::Error, now: Instant) {
        error!(
            "{}: {e}; chat goes on, and the file is retried with backoff (up to {} s) and \
             rewritten with every retained line once the disk works again",
            self.file.path().display(),
            MAX_RETRY_MS / 1000
        );
        self.batch.clear();
        self.batch_lines = 0;
        let backoff = Duration::from_millis(FIRST_RETRY_MS);
        self.health = Health::Failing {
            retry_at: now + backoff,
            backoff,
        };
    }

    /// Rewrites the file from the retained lines; on failure waits twice as long next time.
    fn retry(&mut self, now: Instant) {
        let Health::Failing { backoff, .. } = self.health else {
            return;
        };
        match self.file.rewrite(self.retained.iter()) {
            Ok(()) => {
                info!(
                    "{}: the disk works again; the file was rewritten with the {} retained \
                     lines",
                    self.file.path().display(),
                    self.retained.len()
                );
                self.health = Health::Ok { sync_due: None };
            }
            Err(e) => {
                let backoff = (backoff * 2).min(Duration::from_millis(MAX_RETRY_MS));
                debug!(
                    "{}: still failing ({e}); next try in {backoff:?}",
                    self.file.path().display()
                );
                self.health = Health::Failing {
                    retry_at: now + backoff,
                    backoff,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::path::PathBuf;

    use super::*;
    use crate::chat::history::Kind;
    use crate::history_file::load;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("wschat-writer-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn entry(text: &str) -> Entry {
        Entry::new(Kind::Message, "al".into(), text, 1)
    }

    fn config(history: usize, sync_interval: Duration) -> Config {
        Config {
            history,
            history_sync_interval: sync_interval,
            ..Config::default()
        }
    }

    fn texts(path: &std::path::Path, room: &str) -> Vec<String> {
        match load(path, 1000).unwrap().get(room) {
            Some(lines) => lines.iter().map(|e| e.text().to_string()).collect(),
            None => Vec::new(),
        }
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn lines_reach_the_file_in_order_and_the_thread_ends_with_the_queue() {
        let dir = temp_dir("order");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let file = HistoryFile::open(&path, std::iter::empty()).unwrap();
        let cfg = config(100, Duration::ZERO);
        let (mut queue, thread) = spawn(file, std::iter::empty(), &cfg, Arc::default()).unwrap();
        for i in 0..50 {
            queue.push("r", &entry(&format!("{i}")));
        }
        drop(queue);
        thread.join().unwrap();
        let want: Vec<_> = (0..50).map(|i| i.to_string()).collect();
        assert_eq!(texts(&path, "r"), want);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_queue_leaves_lines_out_of_the_file_and_counts_them() {
        // A writer that takes nothing (a disk stalled in one write): a queue of 4 fills up.
        let (lines, receiver) = crossbeam_channel::bounded(4);
        let mut queue = HistoryQueue {
            lines,
            dropped: 0,
            dropped_total: 0,
            writer_gone: false,
            metrics: Arc::default(),
        };
        (queue.metrics.history).started();
        for i in 0..10 {
            queue.push("r", &entry(&format!("{i}")));
        }
        assert_eq!(queue.dropped_total(), 6);
        let figures = queue.metrics.history.figures().unwrap();
        assert_eq!((figures.waiting_lines, figures.left_out_lines), (4, 6));
        let queued: Vec<_> = receiver
            .try_iter()
            .map(|l| l.entry.text().to_string())
            .collect();
        assert_eq!(queued, ["0", "1", "2", "3"], "the oldest lines are kept");
        // Room again: the next line goes in; the count stays for the log.
        queue.push("r", &entry("10"));
        assert_eq!(receiver.try_recv().unwrap().entry.text(), "10");
        assert_eq!(queue.dropped_total(), 6);
        drop(receiver);
        queue.push("r", &entry("11")); // the writer is gone: logged, no panic
    }

    #[test]
    fn a_failing_disk_is_retried_and_the_file_rewritten_when_it_works_again() {
        let dir = temp_dir("failing");
        let path = dir.join("h.jsonl");
        // Appends go to /dev/full (ENOSPC); rewrites fail while the directory is missing.
        let full = OpenOptions::new().append(true).open("/dev/full").unwrap();
        let file = HistoryFile::with_handle(&path, full);
        let cfg = config(3, Duration::from_millis(50));
        let kept = [entry("old")];
        let (mut queue, thread) =
            spawn(file, kept.iter().map(|e| ("r", e)), &cfg, Arc::default()).unwrap();
        for i in 0..5 {
            queue.push("r", &entry(&format!("{i}")));
        }
        thread::sleep(Duration::from_millis(600)); // a few failed retries
        assert!(!path.exists());
        fs::create_dir_all(&dir).unwrap(); // the card is back
        wait_for("the rewrite", || path.exists());
        // The rewrite holds what the room retains (3 lines), then appends go on.
        assert_eq!(texts(&path, "r"), ["2", "3", "4"]);
        queue.push("r", &entry("5"));
        drop(queue);
        thread.join().unwrap();
        assert_eq!(texts(&path, "r"), ["2", "3", "4", "5"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn compaction_rewrites_from_the_writers_copy() {
        let dir = temp_dir("compact");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let file = HistoryFile::open(&path, std::iter::empty()).unwrap();
        let cfg = config(2, Duration::from_secs(1));
        let (mut queue, thread) = spawn(file, std::iter::empty(), &cfg, Arc::default()).unwrap();
        for i in 0..20_000 {
            queue.push(if i % 2 == 0 { "a" } else { "b" }, &entry(&format!("{i}")));
        }
        drop(queue);
        thread.join().unwrap();
        let lines = fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 12_000, "never compacted: {lines} lines");
        assert_eq!(texts(&path, "a").last().unwrap(), "19998");
        assert_eq!(texts(&path, "b").last().unwrap(), "19999");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_retained_copy_keeps_the_rooms_limits() {
        let mut r = Retained::new(2, 2);
        for (room, text) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "4"), ("c", "5")] {
            r.push(room.into(), entry(text));
        }
        let mut got: Vec<_> = r.iter().map(|(room, e)| (room, e.text())).collect();
        got.sort();
        assert_eq!(got, [("b", "4"), ("c", "5")]);
    }

    #[test]
    fn appends_are_synced_within_the_interval_or_after_every_batch() {
        let dir = temp_dir("sync");
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("h.jsonl");
        let mut w = Writer {
            file: HistoryFile::open(&path, std::iter::empty()).unwrap(),
            retained: Retained::new(10, 10),
            sync_interval: Duration::from_secs(1),
            batch: Vec::new(),
            batch_lines: 0,
            health: Health::Ok { sync_due: None },
            metrics: Arc::default(),
        };
        let line = |text: &str| Line {
            room: "r".into(),
            entry: entry(text),
        };
        let before = Instant::now();
        w.take(line("a"));
        w.write_batch();
        let Health::Ok {
            sync_due: Some(due),
        } = w.health
        else {
            panic!("no sync scheduled after a write");
        };
        assert!(due >= before + w.sync_interval && due <= Instant::now() + w.sync_interval);
        // A later batch does not push the sync back.
        w.take(line("b"));
        w.write_batch();
        assert!(matches!(w.health, Health::Ok { sync_due: Some(d) } if d == due));
        w.maintain(due - Duration::from_millis(1));
        assert!(matches!(w.health, Health::Ok { sync_due: Some(_) }));
        assert_eq!(w.file.unsynced_lines(), 2);
        w.maintain(due);
        assert!(matches!(w.health, Health::Ok { sync_due: None }));
        assert_eq!(w.file.unsynced_lines(), 0, "not synced when due");
        w.sync_interval = Duration::ZERO;
        w.take(line("c"));
        w.write_batch();
        assert_eq!(w.file.unsynced_lines(), 0, "not synced after the batch");
        assert_eq!(texts(&path, "r"), ["a", "b", "c"]);
        fs::remove_dir_all(dir).unwrap();
    }
}
