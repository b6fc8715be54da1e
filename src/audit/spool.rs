//! The disk spool: where audit events wait while Postgres is away or slow.
//!
//! Segments are files named by a growing sequence number (`00000000000000000042.jsonl`), one
//! JSON event per line, appended a batch at a time and fsynced before the append returns (a new
//! segment's directory entry too). Replay reads the oldest segment first and deletes it only
//! after every event in it is in Postgres, so a crash mid-replay replays it again and the
//! insert's `ON CONFLICT DO NOTHING` keeps each event once. The total size is bounded: past it
//! a batch is refused whole and counted by the writer.
//!
//! Two processes share the directory during a graceful upgrade. The segment a process appends
//! to is held under an exclusive file lock, and a replay takes the same lock first, so no one
//! replays (and deletes) a segment still being written; a new segment's number is taken from
//! the directory itself with `create_new`, so two writers never share one. Each process takes
//! stock of the directory again before it replays, so the new process replays what the old
//! one left.
//!
//! Blocking file I/O: the spool is used only by the audit writer, which runs on its own
//! background service runtime, never on a request's.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::event::AuditEvent;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 1024 * 1024;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// The segment this process appends to, locked: (sequence, file, bytes).
    current: Option<(u64, File, u64)>,
    /// Every segment in the directory as last seen: sequence → (bytes, events).
    segments: BTreeMap<u64, (u64, u64)>,
}

/// What an append did.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    Spooled,
    /// Past the spool's bound: nothing written.
    Full,
}

fn sequence_of(name: &std::ffi::OsStr) -> Option<u64> {
    name.to_str()?.strip_suffix(".jsonl")?.parse().ok()
}

impl Spool {
    /// Open (or create) the spool directory and take stock of what is in it.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut spool = Spool { dir: dir.to_owned(), max_bytes, current: None, segments: BTreeMap::new() };
        spool.rescan()?;
        Ok(spool)
    }

    /// Take stock of the directory again (another process may have added or replayed
    /// segments). Reads only segments that are new or changed size.
    pub fn rescan(&mut self) -> io::Result<()> {
        let mut seen = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(seq) = sequence_of(&entry.file_name()) else { continue };
            let bytes = match entry.metadata() {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let events = match self.segments.get(&seq) {
                Some(&(known, events)) if known == bytes => events,
                _ => match std::fs::read(entry.path()) {
                    Ok(content) => content.iter().filter(|b| **b == b'\n').count() as u64,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            seen.insert(seq, (bytes, events));
        }
        self.segments = seen;
        self.publish_depth();
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Events waiting in the spool.
    pub fn events(&self) -> u64 {
        self.segments.values().map(|(_, e)| e).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.values().map(|(b, _)| b).sum()
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.jsonl"))
    }

    /// Append `batch` durably (written and fsynced), or refuse it whole past the bound.
    pub fn append(&mut self, batch: &[AuditEvent]) -> io::Result<Appended> {
        let mut text = String::with_capacity(batch.len() * 256);
        for event in batch {
            text.push_str(&event.to_json());
            text.push('\n');
        }
        let len = text.len() as u64;
        if self.bytes() + len > self.max_bytes {
            return Ok(Appended::Full);
        }
        if self.current.as_ref().is_none_or(|(_, _, size)| *size >= SEGMENT_BYTES) {
            self.current = None;
            self.current = Some(self.new_segment()?);
        }
        let Some((seq, file, size)) = self.current.as_mut() else { return Ok(Appended::Full) };
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        *size += len;
        let entry = self.segments.entry(*seq).or_insert((0, 0));
        entry.0 += len;
        entry.1 += batch.len() as u64;
        self.publish_depth();
        Ok(Appended::Spooled)
    }

    /// A new segment after every one in the directory, created (never an existing one taken)
    /// and locked for as long as this process appends to it.
    fn new_segment(&mut self) -> io::Result<(u64, File, u64)> {
        self.rescan()?;
        let mut seq = self.segments.keys().next_back().map_or(1, |s| s + 1);
        loop {
            match OpenOptions::new().create_new(true).append(true).open(self.path(seq)) {
                Ok(file) => {
                    file.lock()?;
                    // The new name must survive a crash as well as its content.
                    File::open(&self.dir)?.sync_all()?;
                    self.segments.insert(seq, (0, 0));
                    return Ok((seq, file, 0));
                }
                // Another process took this number a moment ago.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => seq += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The oldest segment no one is writing, locked, with its events, for replay. This
    /// process's own segment is closed first if it is the oldest, so what is replayed never
    /// grows under the replay. `None`: nothing to replay now.
    pub fn oldest(&mut self) -> io::Result<Option<Replay>> {
        self.rescan()?;
        let sequences: Vec<u64> = self.segments.keys().copied().collect();
        for seq in sequences {
            if self.current.as_ref().is_some_and(|(s, _, _)| *s == seq) {
                self.current = None;
            }
            let file = match OpenOptions::new().read(true).open(self.path(seq)) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            match file.try_lock() {
                Ok(()) => {}
                // Another process is still appending to it, or replaying it.
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            let bytes = match std::fs::read(self.path(seq)) {
                Ok(bytes) => bytes,
                // Replayed and deleted by another process between our open and our lock.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut events = Vec::new();
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                match AuditEvent::from_json(line) {
                    Some(e) => events.push(e),
                    // A line cut short by a crash mid-write was never acknowledged: skip it.
                    None => log::warn!(segment = seq; "audit spool: skipping an unreadable line"),
                }
            }
            return Ok(Some(Replay { seq, events, _lock: file }));
        }
        Ok(None)
    }

    /// Delete a replayed segment (its lock is released after).
    pub fn remove(&mut self, replay: Replay) -> io::Result<()> {
        match std::fs::remove_file(self.path(replay.seq)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.segments.remove(&replay.seq);
        self.publish_depth();
        Ok(())
    }

    fn publish_depth(&self) {
        crate::metrics::AUDIT_SPOOL_EVENTS.set(i64::try_from(self.events()).unwrap_or(i64::MAX));
        crate::metrics::AUDIT_SPOOL_BYTES.set(i64::try_from(self.bytes()).unwrap_or(i64::MAX));
    }
}

/// A segment taken for replay: its events, and its lock until it is removed or dropped.
pub struct Replay {
    pub seq: u64,
    pub events: Vec<AuditEvent>,
    _lock: File,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{EventKind, Service};

    fn batch(n: usize) -> Vec<AuditEvent> {
        (0..n)
            .map(|_| AuditEvent::new(EventKind::RequestRefused, Service::Edge).tenant("acme").reason("token_missing"))
            .collect()
    }

    #[test]
    fn spooled_events_come_back_oldest_first_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert!(spool.is_empty());
        let (a, b) = (batch(3), batch(2));
        assert_eq!(spool.append(&a).unwrap(), Appended::Spooled);
        // A big batch rolls over to a second segment.
        let big = batch(10_000);
        spool.append(&big).unwrap();
        assert!(spool.bytes() > SEGMENT_BYTES);
        spool.append(&b).unwrap();
        assert_eq!(spool.events(), 10_005);
        drop(spool);
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(spool.events(), 10_005);
        let first = spool.oldest().unwrap().unwrap();
        assert_eq!(first.events.len(), 10_003);
        assert_eq!(first.events[..3], a[..]);
        spool.remove(first).unwrap();
        let second = spool.oldest().unwrap().unwrap();
        assert_eq!(second.events, b);
        spool.remove(second).unwrap();
        assert!(spool.is_empty());
        assert!(spool.oldest().unwrap().is_none());
    }

    #[test]
    fn a_full_spool_refuses_the_batch_whole() {
        let dir = tempfile::tempdir().unwrap();
        let one = batch(1);
        let line = one[0].to_json().len() as u64 + 1;
        let mut spool = Spool::open(dir.path(), line * 3).unwrap();
        assert_eq!(spool.append(&batch(2)).unwrap(), Appended::Spooled);
        assert_eq!(spool.append(&batch(2)).unwrap(), Appended::Full);
        assert_eq!(spool.events(), 2);
        assert_eq!(spool.append(&one).unwrap(), Appended::Spooled);
    }

    #[test]
    fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        let a = batch(2);
        spool.append(&a).unwrap();
        drop(spool);
        let path = dir.path().join(format!("{:020}.jsonl", 1));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"id":"00000000-0000-0000-00"#).unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(spool.oldest().unwrap().unwrap().events, a);
    }

    /// A graceful upgrade: two processes on one directory. Neither replays the segment the
    /// other is appending to, they never share a segment, and each replays what the other left.
    #[test]
    fn two_writers_share_a_directory_safely() {
        let dir = tempfile::tempdir().unwrap();
        let mut old = Spool::open(dir.path(), 1 << 30).unwrap();
        let mut new = Spool::open(dir.path(), 1 << 30).unwrap();
        let (a, b) = (batch(2), batch(3));
        old.append(&a).unwrap();
        new.append(&b).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "one segment each");
        // Each is appending to its own segment: the other cannot take it.
        let from_new = new.oldest().unwrap().expect("its own segment, closed for replay");
        assert_eq!(from_new.events, b, "the old process's open segment is skipped");
        new.remove(from_new).unwrap();
        // The old process stops (its lock goes); the new one replays what it left.
        drop(old);
        let left = new.oldest().unwrap().unwrap();
        assert_eq!(left.events, a);
        new.remove(left).unwrap();
        assert!(new.oldest().unwrap().is_none());
        new.rescan().unwrap();
        assert!(new.is_empty());
    }
}
