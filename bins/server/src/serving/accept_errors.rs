//! Accept errors, logged once per interval with a count, not once per connection: when the
//! descriptor limit is reached every pending connection fails the same way, and a line per
//! failure would flood the logs exactly when an operator needs them.

use std::{io, time::Duration};

use tokio::time::Instant;

/// How often an accept error is logged at most.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the accept loop should do after an error.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// The process is out of descriptors: close an idle connection, then retry.
    FreeDescriptor,
    /// The one connection failed (reset before it was accepted): accept the next at once.
    Retry,
    /// Anything else: wait a little before retrying, so a persistent error does not spin.
    Pause,
}

/// Classifies accept errors and rate-limits their log lines.
#[derive(Debug, Default)]
pub(crate) struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    /// Records `error` (logging it unless one was logged within [`LOG_INTERVAL`]) and says how
    /// to recover.
    pub(crate) fn record(&mut self, error: &io::Error, open_connections: usize) -> Recovery {
        let recovery = recovery_for(error);
        let now = Instant::now();
        if self
            .last_logged
            .is_none_or(|at| now.duration_since(at) >= LOG_INTERVAL)
        {
            tracing::warn!(
                error = %error,
                open_connections,
                similar_errors_not_logged = self.unlogged,
                "accept failed{}",
                if recovery == Recovery::FreeDescriptor {
                    ": out of file descriptors, closing idle connections (raise `ulimit -n` or lower MAX_CONNECTIONS)"
                } else {
                    ""
                }
            );
            self.last_logged = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        recovery
    }
}

fn recovery_for(error: &io::Error) -> Recovery {
    use nix::errno::Errno;
    match error.raw_os_error().map(Errno::from_raw) {
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM) => {
            Recovery::FreeDescriptor
        }
        Some(Errno::ECONNABORTED | Errno::ECONNRESET | Errno::EPROTO | Errno::EPERM) => {
            Recovery::Retry
        }
        _ => Recovery::Pause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_line_per_interval_and_the_right_recovery() {
        let mut errors = AcceptErrors::default();
        let emfile = io::Error::from_raw_os_error(nix::errno::Errno::EMFILE as i32);
        assert_eq!(errors.record(&emfile, 10), Recovery::FreeDescriptor);
        assert_eq!(errors.unlogged, 0);
        for _ in 0..1000 {
            errors.record(&emfile, 10);
        }
        assert_eq!(errors.unlogged, 1000, "a thousand errors, one line");
        tokio::time::advance(LOG_INTERVAL).await;
        let reset = io::Error::from_raw_os_error(nix::errno::Errno::ECONNABORTED as i32);
        assert_eq!(errors.record(&reset, 10), Recovery::Retry);
        assert_eq!(errors.unlogged, 0, "logged again after the interval");
        let other = io::Error::other("boom");
        assert_eq!(errors.record(&other, 10), Recovery::Pause);
    }
}
