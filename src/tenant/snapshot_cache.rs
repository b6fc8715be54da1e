//! A sealed on-disk copy of the last tenant rows Postgres gave (`[database] snapshot_cache`),
//! so that an instance can start, and a whole fleet can restart, while Postgres is away.
//!
//! The file holds every tenant's rows as read (their secrets still sealed, as in the tables),
//! the whole sealed once more with AES-256-GCM under the master key, bound to its place. It is
//! written atomically (a temporary file, fsync, rename, fsync of the directory), a few seconds
//! after changes were applied, and only from what Postgres itself returned. A missing,
//! unreadable or tampered file with no database is a clear startup error, never an empty
//! snapshot.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::postgres::Rows;
use crate::secrets::{place, MasterKeys};

/// The file's format version.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    /// Unix seconds when the rows were read from Postgres.
    read_at: u64,
    key_id: String,
    /// base64 of nonce || ciphertext || tag over the JSON of the rows.
    sealed: String,
}

/// Write `rows` (read from Postgres at `read_at`) to `path`, atomically.
pub(crate) fn write(path: &Path, master: &MasterKeys, read_at: u64, rows: &[(String, Rows)]) -> Result<(), String> {
    let plain = serde_json::to_vec(rows).map_err(|e| format!("snapshot cache: {e}"))?;
    let (sealed, key_id) = master.seal(place::SNAPSHOT_CACHE, &plain);
    let file = CacheFile { version: VERSION, read_at, key_id, sealed: STANDARD.encode(sealed) };
    let text = serde_json::to_vec(&file).map_err(|e| format!("snapshot cache: {e}"))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "snapshot".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let io = |what: &str, e: std::io::Error| format!("snapshot cache {}: {what}: {e}", path.display());
    let mut f = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    f.write_all(&text).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))?;
    // The rename itself is durable once the directory is.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io("fsync of its directory", e))?;
    Ok(())
}

/// Read the copy at `path`: when it was read from Postgres, and the rows.
pub(crate) fn read(path: &Path, master: &MasterKeys) -> Result<(u64, Vec<(String, Rows)>), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let file: CacheFile =
        serde_json::from_slice(&text).map_err(|e| format!("{} is not a snapshot cache: {e}", path.display()))?;
    if file.version != VERSION {
        return Err(format!("{}: snapshot cache version {} is not {VERSION}", path.display(), file.version));
    }
    let sealed = STANDARD.decode(&file.sealed).map_err(|e| format!("{}: {e}", path.display()))?;
    let plain =
        master.open(place::SNAPSHOT_CACHE, &file.key_id, &sealed).map_err(|e| format!("{}: {e}", path.display()))?;
    let rows = serde_json::from_slice(&plain).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((file.read_at, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_copy_reads_back_and_a_tampered_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snapshot.sealed");
        let master = MasterKeys::parse(&MasterKeys::generate_entry("k1")).unwrap();
        let rows = vec![("acme".to_owned(), Rows::sample())];
        write(&path, &master, 1234, &rows).unwrap();
        let (read_at, back) = read(&path, &master).unwrap();
        assert_eq!(read_at, 1234);
        assert_eq!(back, rows);
        assert!(!String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains("acme.test"), "sealed");

        let other = MasterKeys::parse(&MasterKeys::generate_entry("k1")).unwrap();
        assert!(read(&path, &other).is_err(), "another master key");
        let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut sealed = STANDARD.decode(file["sealed"].as_str().unwrap()).unwrap();
        sealed[20] ^= 1;
        file["sealed"] = STANDARD.encode(sealed).into();
        std::fs::write(&path, file.to_string()).unwrap();
        assert!(read(&path, &master).is_err(), "tampered");
        assert!(read(&dir.path().join("missing"), &master).is_err(), "missing");
    }
}
