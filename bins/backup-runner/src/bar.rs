//! The progress bar: drawn on stderr when it is a terminal, nothing otherwise.

use backup::{Phase, Progress};
use indicatif::ProgressBar;

/// Draws the library's progress reports.
pub(crate) struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub(crate) fn new() -> Self {
        let bar = cli_support::progress::stderr_bar(
            "{msg:>11} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            0,
        );
        Self { bar }
    }

    /// The callback to hand to the library.
    pub(crate) fn report(&self, p: Progress) {
        let phase = match p.phase {
            Phase::Snapshot => "snapshot",
            Phase::Dump => "pg_dump",
            Phase::Decompress => "decompress",
            Phase::Check => "checking",
            _ => "working",
        };
        self.bar.set_message(phase);
        cli_support::progress::advance(&self.bar, p.done, p.total);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
