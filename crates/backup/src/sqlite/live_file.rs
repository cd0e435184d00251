//! Raw access to live SQLite files without breaking SQLite's locks, and who else uses them.
//!
//! SQLite coordinates processes with POSIX advisory locks, and POSIX drops *every* lock a
//! process holds on a file when the process closes *any* descriptor of that file. A library
//! that opened a live database with `std::fs::File` and closed it would silently release the
//! locks of the application's own SQLite connections in the same process (SQLite's "How To
//! Corrupt" §2.2). So descriptors of live database files are opened once per file and kept for
//! the life of the process; only those of files that have since been deleted are closed.

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    io,
    os::{
        fd::{AsRawFd, RawFd},
        unix::fs::MetadataExt,
    },
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

/// Who uses the database at `path`, if anyone, in any journal mode and any process (this one
/// included):
///
/// 1. **A lock on the database file**: what taking SQLite's EXCLUSIVE lock (a write lock on
///    its lock bytes) would fail on. Every connection in WAL mode holds a read lock there for
///    as long as it is open; in rollback-journal mode, only a connection inside a transaction
///    does (SHARED to read, RESERVED/PENDING to write).
/// 2. **A lock on the `-shm` file**, which every WAL connection also holds while open.
/// 3. **An open descriptor of the file**, in any process whose descriptors this one may read
///    (`/proc/<pid>/fd`). This is the only sign of a rollback-journal connection between
///    transactions: it holds no lock at all, so no lock can prove that none is open — the
///    service of a library user who opened the file with a plain `sea_orm::Database::connect`
///    sits there between requests. (Processes of other users are visible to root only;
///    against those, the lock checks remain.)
///
/// The probes take nothing: locks are tested with `F_OFD_GETLK` (open file description locks
/// conflict with SQLite's POSIX locks, this process's included), descriptors are only looked
/// at.
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
    let meta = db.metadata()?;
    Ok(open_in_process((meta.dev(), meta.ino()))
        .map(|(pid, name)| format!("the database file is open in process {pid} ({name})")))
}

/// The first process (and its name) with a descriptor of the file `(device, inode)`, other
/// than this module's own shared descriptors.
fn open_in_process(file: (u64, u64)) -> Option<(u32, String)> {
    let me = std::process::id();
    let own: HashSet<RawFd> = {
        let open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        open.values().map(|f| f.as_raw_fd()).collect()
    };
    // Not Linux, or /proc not mounted: the lock checks are all there is.
    let processes = std::fs::read_dir("/proc").ok()?;
    for process in processes.filter_map(|e| e.ok()) {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Gone meanwhile, or another user's (unreadable unless root).
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.filter_map(|e| e.ok()) {
            // The descriptor's number, and the file it is open on (stat follows the link,
            // even to a deleted file).
            let number = fd
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok());
            let Ok(meta) = std::fs::metadata(fd.path()) else {
                continue;
            };
            if (meta.dev(), meta.ino()) != file {
                continue;
            }
            if pid == me && number.is_some_and(|n| own.contains(&n)) {
                continue;
            }
            let name = std::fs::read_to_string(process.path().join("comm"))
                .map(|n| n.trim().to_owned())
                .unwrap_or_else(|_| "unknown".to_owned());
            return Some((pid, name));
        }
    }
    None
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
