//! Backs up, verifies and restores a SQLite database through the `backup` library.
//!
//! ```text
//! cargo run --example backup_restore
//! ```
//!
//! Everything happens in a temporary directory: a small database is created, backed up while
//! a writer keeps inserting, verified, damaged by a mistaken DELETE, and restored.

// Examples stop at the first failure with its message: unwrap and expect are how they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use backup::{BackupRepository, Reason, RestoreOptions, Source, VerifyOptions};
use sea_orm::{ConnectionTrait, Statement};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}/shop.sqlite", dir.path().display());

    // An application's database, busy with writes.
    let db = db_connect::connect(&url).await?;
    db.execute_unprepared(
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT NOT NULL, quantity INTEGER NOT NULL)",
    )
    .await?;
    for i in 0..1_000 {
        db.execute_unprepared(&format!(
            "INSERT INTO orders (item, quantity) VALUES ('item {i}', {})",
            i % 7 + 1
        ))
        .await?;
    }
    let writer = {
        let db = db.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                let _ = db
                    .execute_unprepared(&format!(
                        "INSERT INTO orders (item, quantity) VALUES ('late {i}', 1)"
                    ))
                    .await;
            }
        })
    };

    // 1. Back up, while the writer keeps writing.
    let repo = BackupRepository::open(dir.path().join("backups"))?;
    let source = Source::from_url(&url)?;
    let manifest = repo
        .create(&source, Reason::Manual, &|p| {
            if let Some(total) = p.total {
                eprint!("\r{:?}: {} / {} bytes", p.phase, p.done, total);
            }
        })
        .await?;
    eprintln!();
    writer.await?;
    println!(
        "backup {}: {} orders in the snapshot, {} -> {} bytes, sha256 {}",
        manifest.id,
        manifest.tables["orders"],
        manifest.raw_bytes,
        manifest.compressed_bytes,
        &manifest.sha256[..16]
    );

    // 2. Verify: checksum, decompression, integrity check, row counts.
    let report = repo
        .verify(&manifest.id, &VerifyOptions::default(), &|_| {})
        .await?
        .into_result()?;
    println!(
        "verified in {:?}: row counts match ({} tables)",
        report.duration,
        report.tables.len()
    );

    // 3. A mistake.
    db.execute_unprepared("DELETE FROM orders WHERE quantity > 3")
        .await?;
    println!("after the mistake: {} orders", count(&db).await?);

    // 4. Restore. The application stops first: a database in use is refused.
    db.close().await?;
    let plan = repo
        .restore(
            &manifest.id,
            &source,
            &RestoreOptions {
                dry_run: true,
                ..RestoreOptions::default()
            },
            &|_| {},
        )
        .await?;
    println!("the plan:");
    for step in &plan.plan.steps {
        println!("  - {step}");
    }
    let restored = repo
        .restore(&manifest.id, &source, &RestoreOptions::default(), &|_| {})
        .await?;
    println!(
        "restored; the replaced database is kept as backup {}",
        restored
            .safety_backup
            .as_ref()
            .map_or("(none)".to_owned(), ToString::to_string)
    );

    let db = db_connect::connect(&url).await?;
    let orders = count(&db).await?;
    assert_eq!(orders, manifest.tables["orders"]);
    println!("after the restore: {orders} orders, as in the backup");
    db.close().await?;
    Ok(())
}

async fn count(db: &sea_orm::DatabaseConnection) -> anyhow::Result<u64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) FROM orders",
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no row"))?;
    Ok(u64::try_from(row.try_get_by_index::<i64>(0)?)?)
}
