//! The progress bar: drawn on stderr when it is a terminal, nothing otherwise.

use std::io::IsTerminal;

use backup::{Phase, Progress};
use indicatif::{ProgressBar, ProgressStyle};

/// Draws the library's progress reports.
pub(crate) struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub(crate) fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(0)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>11} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
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
        if let Some(total) = p.total {
            self.bar.set_length(total.max(p.done));
        }
        self.bar.set_position(p.done);
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
