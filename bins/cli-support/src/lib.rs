//! What every hotel binary (`hotel-server`, `hotel-backup`, `hotel-stats`, the dataset
//! generator) sets up the same way, so that they log and stop alike:
//!
//! - [`LogArgs`]: the `--log-format auto|pretty|json` option (`LOG_FORMAT`), flattened into
//!   each binary's clap command line, and [`LogArgs::init`], which installs the tracing
//!   subscriber: RUST_LOG levels over the binary's default, lines on stderr (stdout stays for
//!   the binary's output), pretty on a terminal and JSON when piped under `auto`.
//! - [`shutdown_signal`]: completes at the first SIGINT or SIGTERM (a second one ends the
//!   process at once), and [`wait_for_signal`] for binaries that stop on the first signal.
//! - [`exit_on_usage_error`]: a command line clap refuses is also a JSON error on stdout when
//!   `--json` was asked for, as every other failure of the binaries is.
//! - `progress` (feature `progress`): progress bars on stderr that are hidden off a terminal
//!   and never show a position past their length.
//!
//! Binaries only: libraries emit tracing events and take shutdown futures, and never depend on
//! this crate.
//!
//! # Examples
//!
//! ```
//! use clap::Parser;
//! use cli_support::{LogArgs, LogFormat};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     log: LogArgs,
//! }
//!
//! let cli = Cli::parse_from(["hotel-example", "--log-format", "json"]);
//! assert_eq!(cli.log.log_format, LogFormat::Json);
//! cli.log.init("warn");
//! tracing::warn!("one JSON object on stderr");
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod logs;
#[cfg(feature = "progress")]
#[cfg_attr(docsrs, doc(cfg(feature = "progress")))]
pub mod progress;
mod signal;
#[cfg(feature = "table")]
#[cfg_attr(docsrs, doc(cfg(feature = "table")))]
pub mod table;

mod usage;

pub use logs::{LogArgs, LogFormat};
pub use signal::{Signal, shutdown_signal, wait_for_signal};
pub use usage::exit_on_usage_error;
