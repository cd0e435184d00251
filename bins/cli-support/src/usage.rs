//! Command lines clap refuses, answered the way the binaries answer every other error.
//!
//! A binary run with `--json` prints each failure as one JSON object on stdout
//! (`{"ok": false, "error": …, "exit_code": …}`) beside the message on stderr, so a script can
//! rely on stdout. clap refuses a bad command line before the binary has read its `--json`, so
//! [`exit_on_usage_error`] looks for the flag in the raw arguments itself.

use std::ffi::OsStr;

/// Exits for clap's `err`: help and `--version` as clap prints them (exit 0); a refused command
/// line with clap's message on stderr and exit code 2, plus, when `--json` is among the
/// arguments (before a `--`), `{"ok": false, "error": …, "exit_code": 2}` on stdout.
///
/// Use it where clap's own `exit` would be called:
///
/// ```no_run
/// use clap::Parser;
///
/// #[derive(Parser)]
/// struct Cli {
///     #[arg(long)]
///     json: bool,
/// }
///
/// let cli = Cli::try_parse().unwrap_or_else(|e| cli_support::exit_on_usage_error(e));
/// ```
pub fn exit_on_usage_error(err: clap::Error) -> ! {
    if err.use_stderr() && asks_for_json(std::env::args_os().skip(1)) {
        let message = err.to_string();
        let first = message
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ");
        println!(
            "{}",
            serde_json::json!({ "ok": false, "error": first, "exit_code": err.exit_code() })
        );
    }
    err.exit()
}

/// Whether `--json` is one of `args`, before a `--` that ends the options.
fn asks_for_json<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(args: I) -> bool {
    args.into_iter()
        .map_while(|arg| (arg.as_ref() != "--").then_some(arg))
        .any(|arg| arg.as_ref() == "--json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_counts_only_among_the_options() {
        assert!(asks_for_json(["--json", "list"]));
        assert!(asks_for_json(["perf-table", "--scale", "x", "--json"]));
        assert!(!asks_for_json(["list"]));
        assert!(!asks_for_json(["wal-push", "--", "--json"]));
        assert!(!asks_for_json(["--jsonx"]));
    }
}
