//! The file-mode audit writer: one JSON event per line, to a file rotated by size (`audit.jsonl`,
//! `audit.jsonl.1` … `audit.jsonl.<keep>`), or to stdout. Each batch is written before the next
//! is taken (so a crash of lrsgate loses at most the batch being written) and the file is
//! fsynced at most once a second and before a rotation (so a crash of the machine loses at most
//! about a second).

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use log::error;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use super::event::AuditEvent;
use crate::metrics;

/// Where file mode writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditFileTarget {
    Stdout,
    File {
        path: PathBuf,
        /// Rotate once the file is this large.
        rotate_bytes: u64,
        /// Rotated files kept.
        keep: u32,
    },
}

pub struct FileAuditWriter {
    pub target: AuditFileTarget,
    /// After a graceful stop begins, how long events are still taken (the grace period).
    pub drain_for: std::time::Duration,
    /// Taken once by `start`.
    pub queue: Mutex<Option<mpsc::Receiver<AuditEvent>>>,
}

#[async_trait]
impl BackgroundService for FileAuditWriter {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(mut rx) = self.queue.lock().ok().and_then(|mut q| q.take()) else { return };
        let _finishing = crate::lifecycle::Finishing::hold();
        let mut out = Output::new(self.target.clone());
        let mut batch = Vec::with_capacity(1000);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                // Cancel-safe: events are taken only when this branch completes.
                n = rx.recv_many(&mut batch, 1000) => if n == 0 { break },
            }
            super::fill(&mut rx, &mut batch, 1000).await;
            out.write(&batch);
            batch.clear();
        }
        let until = tokio::time::Instant::now() + self.drain_for;
        while let Some(n) = super::drain_step(until, &mut rx, &mut batch, 1000).await {
            if n == 0 {
                break;
            }
            out.write(&batch);
            batch.clear();
        }
        out.write(&super::drain(&mut rx));
        if let Some((file, _)) = &out.file {
            let _ = file.sync_data();
        }
    }
}

/// The open file (or stdout) and its size.
struct Output {
    target: AuditFileTarget,
    file: Option<(File, u64)>,
    synced_at: std::time::Instant,
}

/// How often the audit file is fsynced.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Output {
    fn new(target: AuditFileTarget) -> Output {
        Output { target, file: None, synced_at: std::time::Instant::now() }
    }

    fn write(&mut self, batch: &[AuditEvent]) {
        if batch.is_empty() {
            return;
        }
        let mut text = String::with_capacity(batch.len() * 256);
        for event in batch {
            text.push_str(&event.to_json());
            text.push('\n');
        }
        match self.write_text(&text) {
            Ok(()) => metrics::AUDIT_EVENTS.with_label_values(&["written"]).inc_by(batch.len() as u64),
            Err(e) => {
                metrics::AUDIT_DROPPED.with_label_values(&["file_error"]).inc_by(batch.len() as u64);
                error!(events = batch.len(); "audit: cannot write the audit file, events dropped: {e}");
                self.file = None;
            }
        }
    }

    fn write_text(&mut self, text: &str) -> io::Result<()> {
        let (path, rotate_bytes, keep) = match &self.target {
            AuditFileTarget::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(text.as_bytes())?;
                return out.flush();
            }
            AuditFileTarget::File { path, rotate_bytes, keep } => (path.clone(), *rotate_bytes, *keep),
        };
        if self.file.as_ref().is_some_and(|(_, size)| *size >= rotate_bytes) {
            if let Some((file, _)) = self.file.take() {
                file.sync_data()?;
            }
            rotate(&path, keep)?;
        }
        if self.file.is_none() {
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            let size = file.metadata()?.len();
            self.file = Some((file, size));
        }
        let Some((file, size)) = self.file.as_mut() else { return Ok(()) };
        file.write_all(text.as_bytes())?;
        *size += text.len() as u64;
        if self.synced_at.elapsed() >= SYNC_EVERY {
            file.sync_data()?;
            self.synced_at = std::time::Instant::now();
        }
        Ok(())
    }
}

/// `audit.jsonl.<n>` → `.<n+1>` (the oldest beyond `keep` deleted), `audit.jsonl` → `.1`.
fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if keep == 0 {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::event::{EventKind, Service};

    #[test]
    fn the_file_rotates_by_size_and_keeps_what_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut out = Output::new(AuditFileTarget::File { path: path.clone(), rotate_bytes: 1, keep: 2 });
        let mut written = Vec::new();
        for n in 0..4 {
            let e = AuditEvent::new(EventKind::TokenIssued, Service::Token).tenant(&format!("t{n}"));
            out.write(std::slice::from_ref(&e));
            written.push(e);
        }
        let read = |p: &Path| -> Vec<AuditEvent> {
            std::fs::read(p)
                .unwrap()
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .map(|l| AuditEvent::from_json(l).unwrap())
                .collect()
        };
        assert_eq!(read(&path), written[3..]);
        assert_eq!(read(&dir.path().join("audit.jsonl.1")), written[2..3]);
        assert_eq!(read(&dir.path().join("audit.jsonl.2")), written[1..2]);
        assert!(!dir.path().join("audit.jsonl.3").exists(), "only `keep` rotated files");
    }
}
