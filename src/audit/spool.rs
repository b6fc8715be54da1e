//! The disk spool: where audit events wait while Postgres is away or slow.
//!
//! Segments are files named by a growing sequence number (`00000000000000000042.jsonl`), one
//! JSON event per line, appended a batch at a time and fsynced before the append returns (a new
//! segment's directory entry too). Replay reads the oldest segment first and deletes it only
//! after every event in it is in Postgres, so a crash mid-replay replays it again and the
//! insert's `ON CONFLICT DO NOTHING` keeps each event once. The total size is bounded: past it
//! a batch is dropped and counted (`lrsgate_audit_dropped_total{reason="spool_full"}`).
//!
//! Blocking file I/O: the spool is used only by the audit writer, which runs on its own
//! background service runtime, never on a request's.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use super::event::AuditEvent;

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 1024 * 1024;

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// The segment being appended to.
    current: Option<(u64, File, u64)>,
    /// Closed and open segments, oldest first: (sequence, bytes, events).
    segments: Vec<(u64, u64, u64)>,
}

/// What an append did.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    Spooled,
    /// Past the spool's bound: nothing written.
    Full,
}

impl Spool {
    /// Open (or create) the spool directory and take stock of what an earlier process left.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        std::fs::create_dir_all(dir)?;
        let mut segments = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(seq) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")).and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = std::fs::read(entry.path())?;
            let events = bytes.iter().filter(|b| **b == b'\n').count() as u64;
            segments.push((seq, bytes.len() as u64, events));
        }
        segments.sort_unstable();
        let spool = Spool { dir: dir.to_owned(), max_bytes, current: None, segments };
        spool.publish_depth();
        Ok(spool)
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Events waiting in the spool.
    pub fn events(&self) -> u64 {
        self.segments.iter().map(|(_, _, e)| e).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|(_, b, _)| b).sum()
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
            let seq = self.segments.last().map_or(1, |(s, _, _)| s + 1);
            let file = OpenOptions::new().create_new(true).append(true).open(self.path(seq))?;
            // The new name must survive a crash as well as its content.
            File::open(&self.dir)?.sync_all()?;
            self.segments.push((seq, 0, 0));
            self.current = Some((seq, file, 0));
        }
        let Some((seq, file, size)) = self.current.as_mut() else { return Ok(Appended::Full) };
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        *size += len;
        let seq = *seq;
        if let Some(entry) = self.segments.iter_mut().find(|(s, _, _)| *s == seq) {
            entry.1 += len;
            entry.2 += batch.len() as u64;
        }
        self.publish_depth();
        Ok(Appended::Spooled)
    }

    /// The oldest segment and its events, for replay. The segment being appended to is closed
    /// first, so what is replayed never grows under the replay.
    pub fn oldest(&mut self) -> io::Result<Option<(u64, Vec<AuditEvent>)>> {
        let Some(&(seq, _, _)) = self.segments.first() else { return Ok(None) };
        if self.current.as_ref().is_some_and(|(s, _, _)| *s == seq) {
            self.current = None;
        }
        let bytes = std::fs::read(self.path(seq))?;
        let mut events = Vec::new();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match AuditEvent::from_json(line) {
                Some(e) => events.push(e),
                // A line cut short by a crash mid-write was never acknowledged: skip it.
                None => log::warn!(segment = seq; "audit spool: skipping an unreadable line"),
            }
        }
        Ok(Some((seq, events)))
    }

    /// Delete a replayed segment.
    pub fn remove(&mut self, seq: u64) -> io::Result<()> {
        if self.current.as_ref().is_some_and(|(s, _, _)| *s == seq) {
            self.current = None;
        }
        match std::fs::remove_file(self.path(seq)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        self.segments.retain(|(s, _, _)| *s != seq);
        self.publish_depth();
        Ok(())
    }

    fn publish_depth(&self) {
        crate::metrics::AUDIT_SPOOL_EVENTS.set(i64::try_from(self.events()).unwrap_or(i64::MAX));
        crate::metrics::AUDIT_SPOOL_BYTES.set(i64::try_from(self.bytes()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::EventKind;

    fn batch(n: usize) -> Vec<AuditEvent> {
        (0..n)
            .map(|_| AuditEvent::new(EventKind::RequestRefused, "edge").tenant("acme").reason("token_missing"))
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
        let (seq, first) = spool.oldest().unwrap().unwrap();
        assert_eq!(first.len(), 10_003);
        assert_eq!(first[..3], a[..]);
        spool.remove(seq).unwrap();
        let (seq, second) = spool.oldest().unwrap().unwrap();
        assert_eq!(second, b);
        spool.remove(seq).unwrap();
        assert!(spool.is_empty());
        assert_eq!(spool.oldest().unwrap(), None);
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
        assert_eq!(spool.oldest().unwrap().unwrap().1, a);
    }
}
