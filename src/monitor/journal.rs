//! The recent events, kept in memory for replay and read by every WebSocket session.
//!
//! A session does not get a queue of its own: it keeps only its place in the journal (the
//! `seq` it sent last) and reads what comes after, as fast as its client takes it. So a
//! client that falls behind costs no memory until it falls out of the journal, which holds at
//! most [`REPLAY_WINDOW`] events and [`REPLAY_BYTES`] of them; a replay (`/ws?since=`) is the
//! same reading, from further back.

use crate::model::SharedEvent;
use std::collections::VecDeque;

/// Most events the journal keeps.
pub const REPLAY_WINDOW: usize = 5_000;
/// Most bytes of events (as sent) the journal keeps; the events themselves take about twice
/// that in memory (their JSON, and their parsed form for in-process subscribers).
pub const REPLAY_BYTES: usize = 16 << 20;

/// A reader's place is older than anything the journal still holds: events after it are gone.
#[derive(Debug)]
pub struct FellBehind;

struct Entry {
    event: SharedEvent,
    /// Bytes of every event appended up to and including this one.
    end: u64,
}

pub struct Journal {
    entries: VecDeque<Entry>,
    /// Bytes of the events held.
    bytes: usize,
    /// Bytes of every event ever appended (the `end` of the newest).
    appended: u64,
    last_seq: u64,
}

impl Journal {
    /// A journal that continues after `last_seq`, holding the newest of `recent` (oldest first)
    /// that fit.
    pub fn new(last_seq: u64, recent: Vec<SharedEvent>) -> Journal {
        let mut journal = Journal {
            entries: VecDeque::new(),
            bytes: 0,
            appended: 0,
            last_seq,
        };
        journal.append(recent);
        journal.last_seq = journal.last_seq.max(last_seq);
        journal
    }

    /// Adds committed events (in `seq` order), dropping the oldest past the limits.
    pub fn append(&mut self, events: impl IntoIterator<Item = SharedEvent>) {
        for event in events {
            let size = event.json.len();
            self.appended += size as u64;
            self.bytes += size;
            self.last_seq = event.event.seq;
            self.entries.push_back(Entry {
                event,
                end: self.appended,
            });
        }
        while self.entries.len() > REPLAY_WINDOW
            || (self.bytes > REPLAY_BYTES && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.event.json.len();
            }
        }
    }

    /// The `seq` of the last event ever published (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The oldest `seq` held (one past `last_seq` when empty).
    pub fn first_seq(&self) -> u64 {
        self.entries
            .front()
            .map(|e| e.event.event.seq)
            .unwrap_or(self.last_seq + 1)
    }

    /// Index of the first entry with a `seq` after `after`.
    fn index_after(&self, after: u64) -> usize {
        self.entries.partition_point(|e| e.event.event.seq <= after)
    }

    /// The events after `after`, oldest first, as many as fit in `budget` bytes; when
    /// `at_least_one`, the first is given even if it alone is larger.
    pub fn read_after(
        &self,
        after: u64,
        budget: usize,
        at_least_one: bool,
    ) -> Result<Vec<SharedEvent>, FellBehind> {
        if after < self.last_seq && after + 1 < self.first_seq() {
            return Err(FellBehind);
        }
        let mut out = Vec::new();
        let mut used = 0;
        for entry in self.entries.range(self.index_after(after)..) {
            let size = entry.event.json.len();
            if used + size > budget && !(out.is_empty() && at_least_one) {
                break;
            }
            used += size;
            out.push(entry.event.clone());
        }
        Ok(out)
    }

    /// Bytes of the events after `after` still to be read (all held ones when it fell behind).
    pub fn bytes_after(&self, after: u64) -> u64 {
        match self.index_after(after) {
            0 => self.bytes as u64,
            i => self.appended - self.entries[i - 1].end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, EventData};

    fn event(seq: u64, size: usize) -> SharedEvent {
        let data = EventData::WorkDeleted { item_id: "i1" };
        let event = Event {
            seq,
            kind: data.kind(),
            at: chrono::Utc::now(),
            data: data.encode().unwrap(),
        };
        SharedEvent::new(event, "x".repeat(size))
    }

    fn seqs(events: &[SharedEvent]) -> Vec<u64> {
        events.iter().map(|e| e.event.seq).collect()
    }

    #[test]
    fn reads_after_a_place_within_a_byte_budget() {
        let journal = Journal::new(0, (1..=5).map(|s| event(s, 100)).collect());
        assert_eq!(seqs(&journal.read_after(0, 250, false).unwrap()), [1, 2]);
        assert_eq!(
            seqs(&journal.read_after(2, 1000, false).unwrap()),
            [3, 4, 5]
        );
        assert!(journal.read_after(5, 1000, false).unwrap().is_empty());
        assert!(journal.read_after(3, 50, false).unwrap().is_empty());
        assert_eq!(seqs(&journal.read_after(3, 50, true).unwrap()), [4]);
        assert_eq!(journal.bytes_after(2), 300);
        assert_eq!(journal.bytes_after(5), 0);
    }

    #[test]
    fn holds_at_most_its_byte_limit_and_says_when_a_reader_fell_behind() {
        let big = REPLAY_BYTES / 4;
        let mut journal = Journal::new(0, Vec::new());
        journal.append((1..=10).map(|s| event(s, big)));
        assert_eq!(journal.first_seq(), 7, "only the newest four fit");
        assert_eq!(journal.last_seq(), 10);
        assert!(matches!(
            journal.read_after(3, usize::MAX, false),
            Err(FellBehind)
        ));
        assert_eq!(
            seqs(&journal.read_after(6, usize::MAX, false).unwrap()),
            [7, 8, 9, 10]
        );
        assert_eq!(journal.bytes_after(3), 4 * big as u64);
    }
}
