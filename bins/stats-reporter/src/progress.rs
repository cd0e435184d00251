//! Progress bars on stderr, shown only when stderr is a terminal (never in pipes, CI or tests).

pub(crate) use cli_support::progress::advance;
use indicatif::ProgressBar;

/// A bar of `len` steps labelled `message`, or a hidden one off a terminal.
pub(crate) fn bar(len: u64, message: &str) -> ProgressBar {
    let bar = cli_support::progress::stderr_bar("{msg:>28} [{bar:40}] {pos}/{len} eta {eta}", len);
    bar.set_message(message.to_owned());
    bar
}
