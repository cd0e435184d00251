//! The shutdown signal: SIGINT or SIGTERM.

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (a service manager, `kill`).
    Terminate,
}

impl Signal {
    /// The signal's number (2 or 15): exit codes of interrupted commands are 128 + it.
    pub fn number(self) -> i32 {
        match self {
            Signal::Interrupt => 2,
            Signal::Terminate => 15,
        }
    }

    /// The signal's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }
}

/// Completes at the next SIGINT or SIGTERM. A signal that cannot be listened for is logged
/// and never completes, so the other one still works.
pub async fn wait_for_signal() -> Signal {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => Signal::Interrupt,
        () = terminate => Signal::Terminate,
    }
}

/// Completes at the first SIGINT or SIGTERM, for a graceful stop (finish what is in flight);
/// a second signal then ends the process at once with exit code 130.
///
/// Call it inside a tokio runtime: the watch for the second signal is a spawned task.
pub async fn shutdown_signal() {
    let signal = wait_for_signal().await;
    tracing::info!(
        signal = signal.name(),
        "stop requested; send the signal again to stop at once"
    );
    tokio::spawn(async {
        wait_for_signal().await;
        std::process::exit(130);
    });
}
