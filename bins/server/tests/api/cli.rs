//! The binary: token commands and the one-command demo.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use db_connect::{test_on_backends, testing::TestDatabase};
use migration::Migrator;
use reqwest::StatusCode;

const BIN: &str = env!("CARGO_BIN_EXE_hotel-server");

async fn token_create_and_revoke(test_db: TestDatabase) {
    let test_db = test_db.migrated::<Migrator>().await;
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("DATABASE_URL", test_db.url())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let created = run(&[
        "token",
        "create",
        "--email",
        "ops@hotel.example",
        "--role",
        "admin",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let token = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("htk_"), "{token}");
    // The dense entity format generates a finder for every unique column.
    let user = entity::prelude::User::find_by_email("ops@hotel.example")
        .one(test_db.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role, entity::UserRole::Admin);
    // Only the hash is stored.
    let tokens = <entity::prelude::ApiToken as sea_orm::EntityTrait>::find()
        .all(test_db.connection())
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].token_hash, server::tokens::hash(&token));
    assert_ne!(tokens[0].token_hash, token);

    let revoked = run(&["token", "revoke", "--token", &token]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let again = run(&["token", "revoke", "--token", &token]);
    assert!(
        !again.status.success(),
        "revoking a revoked token reports failure"
    );
    let help = run(&["--help"]);
    let help = String::from_utf8(help.stdout).unwrap();
    for option in [
        "--database-url",
        "--read-replica-url",
        "--bind",
        "--cache-max-entries",
        "--slow-query-ms",
        "--backup-dir",
        "--demo",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
}

test_on_backends!(token_create_and_revoke);

/// Starts `hotel-server --demo` and returns it with its tokens and address.
fn start_demo(dir: &std::path::Path) -> (std::process::Child, String, String, String) {
    let mut child = Command::new(BIN)
        .arg("--demo")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/hotel.sqlite", dir.display()),
        )
        .env("BACKUP_DIR", dir.join("backups"))
        .env("BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both streams to their end on threads, so the server never writes into a closed pipe.
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
    }
    let (mut admin, mut guest, mut address) = (String::new(), String::new(), String::new());
    while admin.is_empty() || guest.is_empty() || address.is_empty() {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_secs(120)) else {
            break;
        };
        if let Some(token) = line.strip_prefix("ADMIN_TOKEN=") {
            admin = token.to_owned();
        } else if let Some(token) = line.strip_prefix("GUEST_TOKEN=") {
            guest = token.to_owned();
        } else if line.contains("listening on")
            && let Some(at) = line.find("http://127.0.0.1:")
        {
            address = line[at..].split(['"', ' ']).next().unwrap().to_owned();
        }
    }
    assert!(
        !admin.is_empty() && !guest.is_empty() && !address.is_empty(),
        "the demo printed its tokens and address"
    );
    (child, admin, guest, address)
}

fn stop(mut child: std::process::Child) {
    // SIGTERM: the server shuts down gracefully and exits 0.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "hotel-server exited with {status}");
}

#[tokio::test]
async fn demo_starts_on_a_fresh_machine_and_reuses_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (child, admin, guest, address) = start_demo(dir.path());
    let mine = client
        .get(format!("{address}/api/me/bookings"))
        .bearer_auth(&guest)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), StatusCode::OK);
    let stats = client
        .get(format!("{address}/api/admin/reports/statistics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stats.status(), StatusCode::OK);
    let stats: serde_json::Value = stats.json().await.unwrap();
    let bookings = stats["totalBookings"].as_i64().unwrap();
    assert!(bookings > 1_000, "the small dataset is there: {stats}");
    let types: serde_json::Value = client
        .get(format!("{address}/api/room-types"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(types.as_array().unwrap().len(), 20);
    stop(child);

    let (child, admin, _, address) = start_demo(dir.path());
    let stats: serde_json::Value = client
        .get(format!("{address}/api/admin/reports/statistics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats["totalBookings"].as_i64().unwrap(),
        bookings,
        "the second run reused the data"
    );
    stop(child);
}

/// `--help` documents the exit codes, and the database option reads DATABASE_URL as in the
/// other two binaries.
#[test]
fn help_documents_the_exit_codes_and_database_url() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "Exit codes:",
        "  0  stopped by SIGINT",
        "  1  failed",
        "  2  usage error",
        "[env: DATABASE_URL",
    ] {
        assert!(
            help.contains(expected),
            "--help lacks {expected:?}:\n{help}"
        );
    }
    let out = Command::new(BIN).arg("--no-such-option").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
