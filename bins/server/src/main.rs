//! `hotel-server`: parses the configuration and runs the server or a token command.

use std::{io::Write, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use server::{
    config::{Cli, Command, TokenAction},
    startup::{self, Settings},
    tokens,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli.log.init("info,sqlx=warn");
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "hotel-server failed");
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Token { action }) => token_command(&cli.database_url, action).await,
        None => serve(cli).await,
    }
}

async fn token_command(database_url: &str, action: TokenAction) -> anyhow::Result<()> {
    let db = db_connect::connect(database_url).await.with_context(|| {
        format!(
            "while connecting to {}",
            db_connect::redact_password(database_url)
        )
    })?;
    startup::migrate(&db, database_url, None, false).await?;
    match action {
        TokenAction::Create { email, role, name } => {
            let issued = tokens::issue(&db, &email, role.map(Into::into), name.as_deref())
                .await
                .context("while issuing the token")?;
            eprintln!(
                "token for {} ({:?}), shown once:",
                issued.user.email, issued.user.role
            );
            println!("{}", issued.token);
        }
        TokenAction::Revoke { token, email } => {
            let revoked = match (token, email) {
                (Some(token), _) => u64::from(tokens::revoke_token(&db, &token).await?),
                (None, Some(email)) => tokens::revoke_user(&db, &email).await?,
                (None, None) => anyhow::bail!("give --token or --email"),
            };
            println!("revoked {revoked} token(s)");
            if revoked == 0 {
                anyhow::bail!("no live token matched");
            }
        }
    }
    db.close().await.context("while closing the connection")?;
    Ok(())
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let args = cli.serve;
    let settings = Settings {
        database_url: cli.database_url.clone(),
        read_replica_url: args.read_replica_url.clone(),
        replica_max_wait: std::time::Duration::from_millis(args.replica_max_wait_ms),
        cache_max_entries: args.cache_max_entries,
        redis_url: args.redis_url.clone(),
        redis_prefix: args.redis_prefix.clone(),
        l1_max_ttl: std::time::Duration::from_millis(args.cache_l1_max_ttl_ms),
        slow_query: std::time::Duration::from_millis(args.slow_query_ms),
        backup_dir: Some(args.backup_dir.clone()),
        skip_backup: args.skip_backup,
        durable_commits: args.sqlite_synchronous.durable(),
    };
    let state = startup::build_state(&settings).await?;
    if args.demo {
        let today = chrono::Utc::now().date_naive();
        let tokens = server::demo::prepare(&state.primary, today).await?;
        // Shell assignments, to paste into the terminal that runs the README's requests. A
        // closed stdout (the reader went away) must not stop the server.
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "ADMIN_TOKEN={}", tokens.admin);
        let _ = writeln!(out, "GUEST_TOKEN={}", tokens.guest);
        let _ = writeln!(out, "SAMPLE_BOOKING='{}'", tokens.sample_booking);
        let _ = writeln!(
            out,
            "try: curl -H \"Authorization: Bearer $GUEST_TOKEN\" http://{}/api/me/bookings",
            args.bind
        );
        let _ = out.flush();
        drop(out);
        // The demo data was written after pre-warming: start from an empty cache.
        state.hotel.cache().invalidate_all();
    }
    let replication = match &args.replicate_to {
        Some(repository) => Some(startup::start_replication(&cli.database_url, repository)?),
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("while binding {}", args.bind))?;
    server::serving::descriptors::raise_soft_limit();
    let served = startup::serve(
        listener,
        state,
        args.http_limits(),
        cli_support::shutdown_signal(),
    )
    .await;
    if let Some(replication) = replication {
        replication.stop().await?;
    }
    served
}
