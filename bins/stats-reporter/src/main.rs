//! `hotel-stats`: parses the command line, installs logging, runs the command and maps its
//! outcome to the documented exit code (0 ok, 1 a check failed, 2 could not run).

use std::process::ExitCode;

use clap::Parser;
use stats_reporter::{Cli, EXIT_ERROR};

#[tokio::main]
async fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 after --help or --version.
    let cli = Cli::try_parse().unwrap_or_else(|e| cli_support::exit_on_usage_error(e));
    // Warnings only by default: stdout is the report, stderr stays quiet.
    cli.log.init("warn");
    let json = cli.json;
    match stats_reporter::run(cli).await {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            let chain = format!("{err:#}");
            tracing::debug!(error = chain, "hotel-stats failed");
            eprintln!("error: {chain}");
            // A script that asked for JSON gets the error as JSON too (as from hotel-backup).
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": chain, "exit_code": EXIT_ERROR })
                );
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}
