//! Loading a backup into a database with `pg_restore`, and checking what was loaded.

use std::{collections::BTreeMap, path::Path, process::Stdio};

use sea_orm::sqlx;

use super::{PgTools, PgUrl, contents, spawn};
use crate::{
    BackupManifest, Error, Result, VerifyFailure,
    data_file::{self, stream_failure},
    failure::compare_counts,
    progress::{Phase, ProgressFn, run_blocking},
    store::Store,
    stream,
};

/// Streams the backup of `manifest` from `store` into `pg_restore` connected to `db`.
///
/// The data is hashed while it streams; on a mismatch pg_restore is killed before it sees the
/// end of its input, so a `--single-transaction` restore never commits a changed object.
/// Returns the verification failure, if any (including pg_restore's own errors).
pub(crate) async fn restore_into(
    db: &PgUrl,
    store: &Store,
    manifest: &BackupManifest,
    tools: &PgTools,
    extra_args: &[&str],
    progress: &ProgressFn<'_>,
) -> Result<Option<VerifyFailure>> {
    let mut cmd = db.command(&tools.pg_restore);
    cmd.arg("--exit-on-error")
        .args(extra_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let data = match data_file::open(store, manifest).await? {
        Ok(data) => data,
        Err(failure) => return Ok(Some(failure)),
    };
    let manifest = manifest.clone();
    run_blocking(Phase::Decompress, progress, move |tx| {
        let (mut child, stderr) = spawn(cmd, "pg_restore")?;
        let Some(mut stdin) = child.stdin.take() else {
            return Err(Error::Internal("pg_restore has no stdin".to_owned()));
        };
        let done = stream::decompress(
            data.reader,
            &data.path,
            Some(data.size),
            &mut stdin,
            Path::new("pg_restore"),
            &tx,
        );
        let failure = match &done {
            Ok(done) => stream_failure(&manifest, done),
            Err(_) => None,
        };
        if done.is_err() || failure.is_some() {
            let _ = child.kill();
        }
        drop(stdin);
        let status = child
            .wait()
            .map_err(|e| Error::Internal(format!("pg_restore: {e}")))?;
        let stderr = stderr.finish();
        done?;
        if failure.is_some() {
            return Ok(failure);
        }
        if !status.success() {
            return Ok(Some(VerifyFailure::RestoreFailed {
                detail: format!("pg_restore {status}: {stderr}"),
            }));
        }
        Ok(None)
    })
    .await?
}

/// Compares a restored database's row counts and migration version with the manifest.
pub(crate) async fn check_database(
    db: &PgUrl,
    manifest: &BackupManifest,
    migration_table: &str,
) -> Result<(BTreeMap<String, u64>, Option<VerifyFailure>)> {
    let context = || format!("checking the restored database {}", db.public());
    let mut conn = db.connect().await?;
    let (tables, version) = contents(&mut conn, migration_table)
        .await
        .map_err(|e| Error::db(context(), e))?;
    let _ = sqlx::Connection::close(conn).await;
    let failure = compare_counts(&manifest.tables, &tables).or_else(|| {
        (version != manifest.migration_version).then(|| VerifyFailure::MigrationVersion {
            expected: manifest.migration_version.clone(),
            actual: version,
        })
    });
    Ok((tables, failure))
}
