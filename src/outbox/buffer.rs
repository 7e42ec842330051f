//! Outgoing buffers: one client's unsent bytes, and when their memory goes back to the OS.
//!
//! A busy client keeps its buffer's capacity between rounds, so the hot path neither
//! allocates nor faults in fresh pages; a buffer that a backlog grew past
//! [`KEEP_CAPACITY_BYTES`] is freed once sent, and the periodic fitting pass cuts each buffer
//! down to what it recently held. ARCHITECTURE.md ("Memory per connection") has the figures.

use std::io::{self, ErrorKind};

/// Capacity a buffer keeps after it has been sent: four full rounds' worth (the broadcaster's
/// `MAX_ROUND_BYTES` is 64 KiB), because a full round plus one frame outgrows one round and a
/// `Vec` grows by doubling.
pub(crate) const KEEP_CAPACITY_BYTES: usize = 256 * 1024;
/// Once this much memory was freed, or backlogs that held this much at once have all emptied,
/// the allocator's free memory goes back to the OS: a burst must not leave RSS high.
pub(crate) const TRIM_AFTER_BYTES: usize = 4 * 1024 * 1024;

/// One client's outgoing bytes: `bytes[written..]` is still unsent.
#[derive(Default)]
pub(crate) struct OutBuffer {
    bytes: Vec<u8>,
    written: usize,
    /// The most bytes held since the last `fit` (0: nothing was queued).
    peak: usize,
}

impl OutBuffer {
    /// Appends frames.
    pub fn push(&mut self, frames: &[u8]) {
        self.bytes.extend_from_slice(frames);
        self.peak = self.peak.max(self.bytes.len());
    }

    /// Bytes queued and not yet written.
    pub fn unsent(&self) -> usize {
        self.bytes.len() - self.written
    }

    /// The unsent bytes themselves.
    #[cfg(test)]
    pub fn unsent_bytes(&self) -> &[u8] {
        &self.bytes[self.written..]
    }

    /// Bytes allocated.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// True when something was queued since the last `fit`.
    pub fn was_used(&self) -> bool {
        self.peak > 0
    }

    /// Writes unsent bytes with `send` (a non-blocking socket write) until it would block.
    /// `Ok(true)` when nothing is left.
    pub fn write_with(
        &mut self,
        mut send: impl FnMut(&[u8]) -> io::Result<usize>,
    ) -> io::Result<bool> {
        while self.written < self.bytes.len() {
            let rest = &self.bytes[self.written..];
            match send(rest) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.written += n;
                    if n < rest.len() {
                        break; // the socket buffer is full; trying again now would only fail
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.written == self.bytes.len() {
            self.bytes.clear();
            self.written = 0;
            if self.bytes.capacity() > KEEP_CAPACITY_BYTES {
                self.bytes = Vec::new();
            }
            Ok(true)
        } else {
            if self.written > self.bytes.len() / 2 {
                self.bytes.drain(..self.written);
                self.written = 0;
            }
            Ok(false)
        }
    }

    /// Shrinks an empty buffer to the most it held since the last call (frees it when
    /// nothing came), unless that would save less than half. Returns the bytes freed.
    pub fn fit(&mut self) -> usize {
        let capacity = self.bytes.capacity();
        if self.bytes.is_empty() && capacity > 2 * self.peak {
            self.bytes.shrink_to(self.peak);
        }
        self.peak = self.bytes.len();
        capacity - self.bytes.capacity()
    }
}

/// Decides when freed buffers go back to the OS (`platform::release_free_memory`): glibc
/// otherwise keeps them scattered over its arenas for good.
#[derive(Default)]
pub(crate) struct MemoryReturn {
    /// The most bytes waiting in backlogs at once since they were last all empty.
    backlog_high_water: usize,
    /// Buffer capacity freed since memory was last returned.
    freed: usize,
}

impl MemoryReturn {
    /// After a flush with `backlog` bytes still waiting: true when a burst is over.
    pub fn after_flush(&mut self, backlog: usize) -> bool {
        self.backlog_high_water = self.backlog_high_water.max(backlog);
        if backlog == 0 && self.backlog_high_water >= TRIM_AFTER_BYTES {
            self.backlog_high_water = 0;
            return true;
        }
        false
    }

    /// A buffer of `bytes` was freed (a client went away, or a buffer was fitted).
    pub fn freed(&mut self, bytes: usize) {
        self.freed += bytes;
    }

    /// After a fitting pass: true when enough was freed to be worth returning.
    pub fn after_fitting(&mut self) -> bool {
        std::mem::take(&mut self.freed) >= TRIM_AFTER_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The broadcaster's round size, which the buffer rules are built around.
    const ROUND_BYTES: usize = 64 * 1024;

    /// Queues `bytes` of 250-byte frames and writes them all to a peer that takes everything;
    /// returns how many bytes it took.
    fn round(b: &mut OutBuffer, bytes: usize) -> usize {
        while b.bytes.len() < bytes {
            b.push(&[b'x'; 250]);
        }
        let mut sent = 0;
        let done = b.write_with(|rest| {
            sent += rest.len();
            Ok(rest.len())
        });
        assert!(done.expect("the peer takes it"));
        sent
    }

    #[test]
    fn a_full_round_keeps_its_buffer_for_the_next() {
        let mut b = OutBuffer::default();
        let mut total = round(&mut b, ROUND_BYTES + 1);
        let capacity = b.capacity();
        assert!(
            capacity > ROUND_BYTES,
            "given back after sending: {capacity}"
        );
        total += round(&mut b, ROUND_BYTES + 1);
        assert_eq!(b.capacity(), capacity, "the second round reallocated");
        assert_eq!(b.fit(), 0, "the rounds still need it");
        assert_eq!(b.capacity(), capacity);
        assert_eq!(total, 2 * (ROUND_BYTES + 1).div_ceil(250) * 250);
    }

    #[test]
    fn a_buffer_shrinks_to_what_recent_rounds_needed_and_goes_when_nothing_came() {
        let mut b = OutBuffer::default();
        round(&mut b, ROUND_BYTES + 1);
        assert_eq!(b.fit(), 0);
        round(&mut b, 1_000); // small rounds from now on
        let before = b.capacity();
        let freed = b.fit();
        assert!(
            freed >= ROUND_BYTES / 2 && b.capacity() >= 1_000,
            "{before} bytes became {} (freed {freed})",
            b.capacity()
        );
        let small = b.capacity();
        assert!(small < 4 * 1_000, "{small}");
        assert_eq!(b.fit(), small, "nothing came since: all of it freed");
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn a_backlog_larger_than_the_limit_is_given_back_once_sent() {
        let mut b = OutBuffer::default();
        round(&mut b, KEEP_CAPACITY_BYTES + 1);
        assert_eq!(b.capacity(), 0);
    }

    #[test]
    fn a_partial_write_keeps_the_rest_in_order() {
        let mut b = OutBuffer::default();
        b.push(b"abcdef");
        let mut got = Vec::new();
        let done = b.write_with(|rest| {
            got.extend_from_slice(&rest[..4]);
            Ok(4)
        });
        assert!(!done.unwrap());
        assert_eq!(b.unsent(), 2);
        let done = b.write_with(|_| Err(ErrorKind::WouldBlock.into()));
        assert!(!done.unwrap(), "would block: still owed");
        b.push(b"gh");
        let done = b.write_with(|rest| {
            got.extend_from_slice(rest);
            Ok(rest.len())
        });
        assert!(done.unwrap());
        assert_eq!(got, b"abcdefgh");
        assert!(
            b.write_with(|_| Ok(0)).unwrap(),
            "nothing owed: no write at all"
        );
    }

    #[test]
    fn memory_goes_back_after_a_burst_or_enough_frees() {
        let mut m = MemoryReturn::default();
        assert!(!m.after_flush(TRIM_AFTER_BYTES));
        assert!(m.after_flush(0), "the burst is over");
        assert!(!m.after_flush(0), "and returned once");
        m.freed(TRIM_AFTER_BYTES - 1);
        assert!(!m.after_fitting());
        m.freed(TRIM_AFTER_BYTES);
        assert!(m.after_fitting());
        assert!(!m.after_fitting());
    }
}
