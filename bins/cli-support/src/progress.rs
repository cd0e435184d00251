//! Progress bars on stderr: drawn on a terminal, hidden otherwise, and never showing a
//! position past their length.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `length` steps drawn with `template` (indicatif's template syntax) on stderr when
/// it is a terminal, and a hidden one otherwise (pipes, CI, tests): logs and JSON output stay
/// clean.
pub fn stderr_bar(template: &str, length: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar
}

/// Moves `bar` to `done` of `total` steps, for a library's progress report: a new phase brings
/// a new total, and `total` may be unknown (`None`, the length then follows the position) or
/// an estimate that the work outgrows (the length grows with it).
///
/// indicatif may draw after each of `set_length` and `set_position`. Setting the new phase's
/// length first draws the previous phase's position against it ("20000/7300" when a phase of
/// 7 300 steps follows one of 20 000); setting the position first draws the reverse when a
/// longer phase follows. Here the two are set in the order that keeps every drawn state at a
/// position no greater than its length. Reports are expected one at a time (a library reports
/// from one task); concurrent calls can interleave.
pub fn advance(bar: &ProgressBar, done: u64, total: Option<u64>) {
    let length = total.map_or(done, |total| total.max(done));
    if bar.position() <= length {
        // Growing (or keeping) the length first: the current position still fits.
        bar.set_length(length);
        bar.set_position(done);
    } else {
        // Shrinking below the current position: move the position down first.
        bar.set_position(done);
        bar.set_length(length);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use indicatif::{ProgressDrawTarget, TermLike};

    use super::*;

    /// A terminal that records every line drawn.
    #[derive(Debug, Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl Recorder {
        /// Every drawn `position/length` pair.
        fn pairs(&self) -> Vec<(u64, u64)> {
            let lines = self.0.lock().map(|l| l.clone()).unwrap_or_default();
            lines
                .iter()
                .filter_map(|line| {
                    let (pos, len) = line.trim().split_once('/')?;
                    Some((pos.parse().ok()?, len.parse().ok()?))
                })
                .collect()
        }
    }

    impl TermLike for Recorder {
        fn width(&self) -> u16 {
            80
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(s.to_owned());
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A bar that draws `{pos}/{len}` into a recorder at every change (no rate limit).
    fn recorded_bar() -> (ProgressBar, Recorder) {
        let recorder = Recorder::default();
        let bar = ProgressBar::with_draw_target(
            Some(0),
            ProgressDrawTarget::term_like(Box::new(recorder.clone())),
        );
        bar.set_style(ProgressStyle::with_template("{pos}/{len}").unwrap());
        (bar, recorder)
    }

    /// The dataset generator's phases: 20 000 bookings, then 7 300 inventory nights, then
    /// an unknown-length phase, then a total that the work outgrows.
    fn phases(update: impl Fn(u64, Option<u64>)) {
        for done in (0..=20_000).step_by(5_000) {
            update(done, Some(20_000));
        }
        update(7_300, Some(7_300));
        update(0, Some(1));
        update(30_000, Some(40_000));
        update(500, None);
        update(9_000, Some(8_000));
    }

    #[test]
    fn no_drawn_state_shows_a_position_past_the_length() {
        let (bar, recorder) = recorded_bar();
        phases(|done, total| advance(&bar, done, total));
        let pairs = recorder.pairs();
        assert!(pairs.len() > 10, "too few draws to judge: {pairs:?}");
        for (pos, len) in &pairs {
            assert!(pos <= len, "drew {pos}/{len}; all: {pairs:?}");
        }
        assert_eq!((bar.position(), bar.length()), (9_000, Some(9_000)));
    }

    /// The check above can fail: the naive order (length, then position) draws the previous
    /// phase's position against the new length.
    #[test]
    fn the_naive_order_draws_past_the_length() {
        let (bar, recorder) = recorded_bar();
        phases(|done, total| {
            bar.set_length(total.unwrap_or(done));
            bar.set_position(done);
        });
        assert!(
            recorder.pairs().contains(&(20_000, 7_300)),
            "{:?}",
            recorder.pairs()
        );
    }
}
