//! The tracing subscriber and the option that chooses its format.

use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// How logs are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Pretty on a terminal, JSON when stderr is piped (a log collector).
    #[default]
    Auto,
    /// Human-readable lines, coloured on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Whether this format writes JSON when stderr is (or is not) a terminal.
    fn json(self, terminal: bool) -> bool {
        match self {
            LogFormat::Auto => !terminal,
            LogFormat::Pretty => false,
            LogFormat::Json => true,
        }
    }
}

/// The logging options every binary accepts, for `#[command(flatten)]`.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct LogArgs {
    /// Log format on stderr: auto (pretty on a terminal, JSON when piped), pretty or json.
    /// RUST_LOG sets the levels, e.g. RUST_LOG=debug or RUST_LOG=info,sqlx=warn.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Auto,
        global = true
    )]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// Installs the global subscriber: RUST_LOG's levels, or `default_filter` (an `EnvFilter`
    /// directive such as `"info,sqlx=warn"`) without it; events on stderr in the chosen format.
    ///
    /// A second call keeps the first subscriber (tests that start several servers in one
    /// process).
    pub fn init(self, default_filter: &str) {
        let filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let terminal = std::io::stderr().is_terminal();
        let registry = tracing_subscriber::registry().with(filter);
        let _ = if self.log_format.json(terminal) {
            registry
                .with(fmt::layer().json().with_writer(std::io::stderr))
                .try_init()
        } else {
            registry
                .with(
                    fmt::layer()
                        .compact()
                        .with_ansi(terminal)
                        .with_writer(std::io::stderr),
                )
                .try_init()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_pretty_on_a_terminal_and_json_when_piped() {
        assert!(!LogFormat::Auto.json(true));
        assert!(LogFormat::Auto.json(false));
        assert!(!LogFormat::Pretty.json(false));
        assert!(LogFormat::Json.json(true));
    }
}
