//! Raw access to live SQLite files without breaking SQLite's locks.
//!
//! SQLite coordinates processes with POSIX advisory locks, and POSIX drops *every* lock a
//! process holds on a file when the process closes *any* descriptor of that file. A library
//! that opened a live database with `std::fs::File` and closed it would silently release the
//! locks of the application's own SQLite connections in the same process (SQLite's "How To
//! Corrupt" §2.2). So descriptors of live database files are opened once per file and kept for
//! the life of the process; only those of files that have since been deleted are closed.

use std::{
    collections::HashMap,
    fs::File,
    io,
    os::unix::fs::MetadataExt,
    path::Path,
    sync::{Arc, LazyLock, Mutex},
};

use nix::{
    fcntl::{FcntlArg, fcntl},
    libc,
};

/// Open descriptors by (device, inode).
type Registry = Mutex<HashMap<(u64, u64), Arc<File>>>;
static OPEN: LazyLock<Registry> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// A read-only descriptor of the live file at `path`, shared and never closed while the file
/// exists.
pub(crate) fn shared(path: &Path) -> io::Result<Arc<File>> {
    let meta = std::fs::metadata(path)?;
    let key = (meta.dev(), meta.ino());
    let mut open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Files deleted since (a database replaced by a restore) can be closed: no path leads to
    // them any more, and keeping them would keep their disk space.
    open.retain(|_, file| file.metadata().is_ok_and(|m| m.nlink() > 0));
    if let Some(file) = open.get(&key) {
        return Ok(Arc::clone(file));
    }
    let file = Arc::new(File::open(path)?);
    open.insert(key, Arc::clone(&file));
    Ok(file)
}

/// SQLite's lock bytes in the database file: PENDING, RESERVED and the SHARED range.
const DB_LOCK_START: i64 = 0x4000_0000;
const DB_LOCK_LEN: i64 = 512;
/// The lock bytes of the `-shm` file: the WAL write, checkpoint, recovery and read locks,
/// and the "dead man switch" byte every connection in WAL mode holds a read lock on.
const SHM_LOCK_START: i64 = 120;
const SHM_LOCK_LEN: i64 = 9;

/// Who holds a lock on the database at `path`, if anyone: any open connection in WAL mode
/// (which keeps a read lock on its `-shm` file), or any reader or writer in rollback mode.
///
/// Locks of every process are seen, this one's included (the probe uses open file description
/// locks, which conflict with all POSIX locks).
pub(crate) fn holder(path: &Path) -> io::Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let db = shared(path)?;
    if let Some(pid) = conflicting_lock(&db, DB_LOCK_START, DB_LOCK_LEN)? {
        return Ok(Some(describe("a lock on the database file", pid)));
    }
    let [_, shm_path, _] = super::side_files(path);
    if shm_path.exists() {
        let shm = shared(&shm_path)?;
        if let Some(pid) = conflicting_lock(&shm, SHM_LOCK_START, SHM_LOCK_LEN)? {
            return Ok(Some(describe(
                "an open connection (a lock on its -shm file)",
                pid,
            )));
        }
    }
    Ok(None)
}

fn describe(what: &str, pid: i32) -> String {
    if pid > 0 {
        format!("{what} held by process {pid}")
    } else {
        what.to_owned()
    }
}

/// The pid (or -1 when unknown) of a process holding a lock that would conflict with a write
/// lock on `len` bytes from `start`.
fn conflicting_lock(file: &File, start: i64, len: i64) -> io::Result<Option<i32>> {
    let mut probe = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: len,
        l_pid: 0,
    };
    fcntl(file, FcntlArg::F_OFD_GETLK(&mut probe)).map_err(io::Error::from)?;
    Ok((probe.l_type != libc::F_UNLCK as libc::c_short).then_some(probe.l_pid))
}
