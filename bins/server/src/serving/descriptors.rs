//! The file-descriptor limit: connections are capped below it, so the server never runs out of
//! descriptors for the database, its logs or the next health check.

/// Descriptors kept back from connections: the database pools (SQLite uses three files per
/// connection), Redis, the listener, the runtime's own, logs and backups.
pub const RESERVED_DESCRIPTORS: u64 = 128;

/// The fewest connections the server allows, whatever the descriptor limit says.
const MIN_CONNECTIONS: u64 = 16;

/// The process's soft limit on open files, when it can be read.
pub fn soft_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| soft)
}

/// Raises the soft limit on open files to the hard limit (as Go and nginx do), so the connection
/// cap is not set by a conservative default such as 1,024. Returns the soft limit in force.
pub fn raise_soft_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => {
                tracing::debug!(from = soft, to = hard, "raised the open-files limit");
                return Some(hard);
            }
            Err(err) => tracing::debug!(error = %err, "could not raise the open-files limit"),
        }
    }
    Some(soft)
}

/// The connections `wanted` fits into a soft limit of `soft_limit` descriptors.
pub fn connections_within(wanted: usize, soft_limit: Option<u64>) -> usize {
    let Some(soft) = soft_limit else {
        return wanted;
    };
    let room = soft
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(MIN_CONNECTIONS);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_below_the_descriptor_limit() {
        assert_eq!(connections_within(4096, Some(1024)), 896);
        assert_eq!(connections_within(100, Some(1024)), 100);
        assert_eq!(connections_within(4096, Some(20)), 16);
        assert_eq!(connections_within(4096, None), 4096);
        assert!(soft_limit().is_some());
    }
}
