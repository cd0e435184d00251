//! The README's quick start, run as a newcomer runs it (issue 14): start `hotel-server --demo`,
//! paste the lines it prints into a shell, run the README's `curl` requests. Every request must
//! succeed, the sample booking included, on fresh demo data and on demo data generated long ago
//! (its sample dates used to be fixed, and hit a sold-out night).

use std::process::Command;

use chrono::{Duration, Utc};
use dataset::{DatasetOptions, Scale};
use migration::MigratorTrait;

use crate::server_process::{BIN, ServerProcess};

const README: &str = include_str!("../../../../README.md");

/// The `curl` commands of the README's quick start, continuation lines joined.
fn readme_requests() -> Vec<String> {
    let quick_start = README
        .split("\n## ")
        .find(|section| section.starts_with("Quick start"))
        .expect("the README has a Quick start section");
    let mut requests = Vec::new();
    let mut lines = quick_start.lines();
    while let Some(line) = lines.next() {
        if !line.trim_start().starts_with("curl ") {
            continue;
        }
        let mut command = line.to_owned();
        while command.trim_end().ends_with('\\') {
            let next = lines.next().expect("a continued line");
            command = format!("{}\n{next}", command.trim_end());
        }
        requests.push(command);
    }
    requests
}

/// Runs the README's requests in a shell that first ran the lines `--demo` printed; each
/// request must get a 2xx answer.
fn run_readme_requests(server: &ServerProcess) {
    let requests = readme_requests();
    assert!(
        requests.len() >= 2 && requests.iter().any(|r| r.contains("/api/bookings")),
        "the README's quick start shows a read and the sample booking: {requests:#?}"
    );
    let pasted: Vec<&str> = server
        .stdout
        .iter()
        .map(String::as_str)
        .filter(|line| line.contains('=') && !line.starts_with("try:"))
        .collect();
    let base = format!("http://{}", server.address);
    for request in &requests {
        let request = request
            .replacen("curl ", "curl --fail --silent --show-error ", 1)
            .replace("http://127.0.0.1:3000", &base);
        let script = format!("set -eu\n{}\n{request}\n", pasted.join("\n"));
        let output = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "README request failed:\n{request}\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn demo(database: &std::path::Path, backups: &std::path::Path) -> ServerProcess {
    let mut command = Command::new(BIN);
    command
        .arg("--demo")
        .env("DATABASE_URL", format!("sqlite://{}", database.display()))
        .env("BACKUP_DIR", backups);
    let mut server = ServerProcess::start(command);
    server.wait_for_stdout("SAMPLE_BOOKING=");
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_requests_work_on_fresh_demo_data() {
    let dir = tempfile::tempdir().unwrap();
    let server = demo(
        &dir.path().join("hotel.sqlite"),
        &dir.path().join("backups"),
    );
    run_readme_requests(&server);
    // Twice: a newcomer tries again.
    run_readme_requests(&server);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_requests_work_on_demo_data_generated_long_ago() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("hotel.sqlite");
    let url = format!("sqlite://{}", database.display());
    // Demo data from 400 days ago: its bookable nights ended months ago.
    let db = db_connect::connect(&url).await.unwrap();
    migration::Migrator::up(&db, None).await.unwrap();
    let long_ago = Utc::now().date_naive() - Duration::days(400);
    dataset::generate(
        &db,
        &DatasetOptions::new(Scale::Tiny).reference_date(long_ago),
        &|_| {},
    )
    .await
    .unwrap();
    db.close().await.unwrap();
    let server = demo(&database, &dir.path().join("backups"));
    run_readme_requests(&server);
    assert!(server.stop().success());
}
