//! `hotel-backup`: verified, compressed, atomic backups of the database, with restore,
//! retention, health monitoring and a scheduler. See `hotel-backup --help`.

mod bar;
mod cli;
mod pitr;
mod render;
mod run;

use std::io::IsTerminal;

use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.command.runs_until_stopped());
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::from(run::EXIT_FAILURE);
        }
    };
    let outcome = runtime.block_on(async {
        if cli.command.runs_until_stopped() {
            // The scheduler and the replicator stop by themselves at a signal, after the run
            // (or upload) in progress.
            run::run(&cli, shutdown_signal()).await
        } else {
            // Any other command stops at once: its future is dropped (which removes its
            // scratch files), then what it left elsewhere is cleaned up.
            tokio::select! {
                outcome = run::run(&cli, std::future::pending()) => outcome,
                signal = wait_for_signal() => {
                    tokio::spawn(async {
                        wait_for_signal().await;
                        std::process::exit(130);
                    });
                    Err(run::interrupted(&cli, signal).await)
                }
            }
        }
    });
    // Blocking work of a cancelled command (a decompression) is not waited for.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => {
            let code = run::exit_code_of(&err);
            let chain = format!("{err:#}");
            eprintln!("error: {chain}");
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "ok": false, "error": chain, "exit_code": code })
                );
            }
            std::process::ExitCode::from(code)
        }
    }
}

/// Logs go to stderr: readable on a terminal, JSON lines otherwise (for a log collector).
/// RUST_LOG overrides the level (default: info for the long-running commands, warn otherwise).
fn init_tracing(long_running: bool) {
    let default = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// Completes at the first SIGINT or SIGTERM; a second one ends the process at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tracing::info!("stop requested; send the signal again to stop at once");
    tokio::spawn(async {
        wait_for_signal().await;
        std::process::exit(130);
    });
}

/// Completes at SIGINT or SIGTERM, with the signal's number.
async fn wait_for_signal() -> i32 {
    let mut term = signal(SignalKind::terminate()).ok();
    let terminate = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => 2,
        () = terminate => 15,
    }
}
