//! `hotel-backup`: verified, compressed, atomic backups of the database, with restore,
//! retention, health monitoring and a scheduler. See `hotel-backup --help`.

mod bar;
mod cli;
mod pitr;
mod render;
mod run;

use cli_support::{shutdown_signal, wait_for_signal};

fn main() -> std::process::ExitCode {
    let cli = cli::parse();
    // Info for the long-running commands (their runs are the log), warnings otherwise.
    cli.log.init(if cli.command.runs_until_stopped() {
        "info"
    } else {
        "warn"
    });
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
                    Err(run::interrupted(&cli, signal.number()).await)
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
