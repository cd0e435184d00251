use std::path::{Path, PathBuf};

use crate::VerifyFailure;

/// What can go wrong while taking, checking, restoring or pruning backups.
///
/// Every variant names the thing an operator has to look at (a path, a backup id, a tool's
/// stderr); none carries a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL names no database this crate can back up.
    #[error("unsupported database URL `{url}`: expected sqlite:<path> or postgres://…")]
    UnsupportedUrl {
        /// The URL, with any password removed.
        url: String,
    },
    /// An in-memory SQLite database lives only in its process and cannot be backed up.
    #[error("`{url}` is an in-memory SQLite database: there is no file to back up")]
    InMemoryDatabase {
        /// The URL.
        url: String,
    },
    /// The SQLite file to back up does not exist (a backup never creates it).
    #[error("the SQLite database {path} does not exist; check the database URL")]
    SourceMissing {
        /// The file that was expected.
        path: PathBuf,
    },
    /// The PostgreSQL database named by the URL does not exist on its server.
    #[error("the database {database} does not exist; check the database URL")]
    DatabaseNotFound {
        /// The database, without password.
        database: String,
    },
    /// The database a repository belongs to no longer exists (the repository's backups are
    /// intact). Unlike [`Error::SourceMissing`] for a database the repository does not know,
    /// this is an operational failure: the database was lost, moved or renamed.
    #[error(
        "the database {database}, whose backups {repository} holds, does not exist any more; \
         if it was lost, restore its latest backup"
    )]
    DatabaseGone {
        /// The database, as the repository names it.
        database: String,
        /// The repository.
        repository: String,
    },
    /// No repository exists at this location, and the operation does not create one (only
    /// taking a backup does).
    #[error(
        "no backup repository at {repository}; check the location (a repository is created by \
         its first backup)"
    )]
    RepositoryNotFound {
        /// The location.
        repository: String,
    },
    /// The source database has no pages or produced no output: a backup would be empty.
    #[error("the database {database} produced an empty backup; refusing to record it")]
    EmptySource {
        /// The database, without password.
        database: String,
    },
    /// Another create, verify, restore or prune holds the repository's lock.
    #[error(
        "another backup operation is running on {repository} (lock file {lock}{}); \
         wait for it to finish or retry later",
        holder.as_deref().map(|h| format!(", held by {h}")).unwrap_or_default()
    )]
    LockHeld {
        /// The repository.
        repository: String,
        /// The lock file.
        lock: PathBuf,
        /// What the lock file says about its holder (operation, pid, start time), if readable.
        holder: Option<String>,
    },
    /// A string that is not a backup id (`YYYYMMDDTHHMMSSZ`, optionally `-N`).
    #[error("`{id}` is not a backup id (expected e.g. 20261125T103000Z or 20261125T103000Z-2)")]
    InvalidId {
        /// What was given.
        id: String,
    },
    /// No valid manifest exists for this id: whatever else is there is not a backup.
    #[error(
        "no backup `{id}` in {repository} (no valid manifest {id}.json); `list` shows the backups"
    )]
    NoManifest {
        /// The id asked for.
        id: String,
        /// The repository.
        repository: String,
    },
    /// A manifest (or another of the repository's documents) exists but cannot be read as
    /// one: not JSON, a missing field, or a seal that does not match its content.
    #[error("the manifest {object} is invalid: {reason}")]
    InvalidManifest {
        /// The object.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A manifest written by a newer version of this tool.
    #[error(
        "the manifest {object} has format version {found}, newer than the {supported} this tool \
         reads; upgrade the tool"
    )]
    UnsupportedFormat {
        /// The object.
        object: String,
        /// Its format version.
        found: u64,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The backup failed verification, so it was not restored (or the gate failed).
    #[error("backup {id} failed verification: {failure}")]
    VerificationFailed {
        /// The backup.
        id: String,
        /// What was found.
        failure: VerifyFailure,
    },
    /// `pg_dump` or `pg_restore` failed; its stderr says why.
    #[error("{tool} failed ({status}): {}", if stderr.is_empty() { "no error output" } else { stderr.as_str() })]
    DumpFailed {
        /// The program.
        tool: String,
        /// How it ended ("exit status: 1", "killed by signal 9", "empty output").
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A program this operation needs could not be started.
    #[error("cannot run {tool}: is the PostgreSQL client installed and on PATH?")]
    ToolMissing {
        /// The program.
        tool: String,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// The disk holding `path` is full (or the quota is exhausted).
    #[error("no space left on the device holding {path}; earlier backups are untouched")]
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done ("create", "read", "rename", ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The database refused a connection or a statement.
    #[error("database error while {context}")]
    Database {
        /// What was being done, with the database named (password removed).
        context: String,
        /// The driver's error.
        #[source]
        source: sea_orm::sqlx::Error,
    },
    /// The restore target is open in another process.
    #[error(
        "the database {target} is in use ({detail}); stop the application using it, or pass \
         --force if you are sure nothing writes to it"
    )]
    DatabaseInUse {
        /// The target, without password.
        target: String,
        /// Who holds it.
        detail: String,
    },
    /// A backup of one kind of database cannot be restored into another.
    #[error("backup {id} is of a {backup} database and cannot be restored into a {target} one")]
    KindMismatch {
        /// The backup.
        id: String,
        /// Its database kind.
        backup: String,
        /// The target's kind.
        target: String,
    },
    /// The object store failed (after the client's retries): unreachable, refused the
    /// credentials, or answered with an error.
    #[error("cannot {action} {object}")]
    Store {
        /// What was being done ("write", "read", "list", ...).
        action: &'static str,
        /// The object (`s3://bucket/key`) or prefix.
        object: String,
        /// The client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An object of the repository is damaged: its checksum, seal or format is wrong.
    #[error("{object} is damaged: {reason}")]
    Corrupt {
        /// The object.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An object is already there with other content: objects are written once.
    #[error("{object} already exists with other content; objects are never overwritten")]
    ObjectExists {
        /// The object.
        object: String,
    },
    /// The repository holds the backups of another database: one repository, one database.
    #[error(
        "the repository {repository} holds the backups of {holds}, not of {given}; use a \
         repository of its own for each database"
    )]
    ForeignDatabase {
        /// The repository.
        repository: String,
        /// The database it belongs to.
        holds: String,
        /// The database given.
        given: String,
    },
    /// A retention policy that would keep nothing, or another invalid setting.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A background task of the operation panicked or was cancelled.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the request itself is wrong, so that it could never succeed as given: a URL
    /// or location that names nothing (or another repository's database), a backup id that
    /// does not exist, an invalid setting. The fix is in the request, not in the system, so
    /// such a refusal is not an operational failure: it is not recorded in the run log, and
    /// the monitor never reports it. (A database the repository belongs to that has vanished
    /// is [`Error::DatabaseGone`], an operational failure.)
    ///
    /// ```
    /// let err = backup::Source::from_url("mysql://h/db").unwrap_err();
    /// assert!(err.is_invalid_request());
    /// ```
    pub fn is_invalid_request(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedUrl { .. }
                | Self::InMemoryDatabase { .. }
                | Self::SourceMissing { .. }
                | Self::DatabaseNotFound { .. }
                | Self::RepositoryNotFound { .. }
                | Self::InvalidId { .. }
                | Self::NoManifest { .. }
                | Self::KindMismatch { .. }
                | Self::ForeignDatabase { .. }
                | Self::InvalidConfig(_)
        )
    }

    /// A PostgreSQL source in a build without the `postgres` feature.
    #[cfg(not(feature = "postgres"))]
    pub(crate) fn postgres_not_compiled() -> Self {
        Self::InvalidConfig(
            "PostgreSQL is not supported by this build: enable the backup crate's `postgres` \
             feature"
                .to_owned(),
        )
    }

    /// An I/O error on `path`, telling a full disk apart from other failures.
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        if is_disk_full(&source) {
            Self::DiskFull {
                path: path.to_path_buf(),
                source,
            }
        } else {
            Self::Io {
                action,
                path: path.to_path_buf(),
                source,
            }
        }
    }

    /// A database error, with what was being done.
    pub(crate) fn db(context: impl Into<String>, source: sea_orm::sqlx::Error) -> Self {
        Self::Database {
            context: context.into(),
            source,
        }
    }
}

/// ENOSPC and EDQUOT, whatever `ErrorKind` the standard library maps them to.
pub(crate) fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    ) || matches!(
        err.raw_os_error(),
        Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT
    )
}

/// Adds the file name to I/O errors: `.map_err(io_err("read", &path))`.
pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::io(action, &path, source)
}
