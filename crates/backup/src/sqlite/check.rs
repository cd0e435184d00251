//! Checks of a restored SQLite copy: integrity, foreign keys, row counts, migration version.

use std::{collections::BTreeMap, path::Path};

use sea_orm::sqlx;

use super::{foreign_keys, index_scan, migration_version, open_copy, row_counts};
use crate::{BackupManifest, VerifyDepth, VerifyFailure, failure::compare_counts};

/// What the checks of a restored copy found.
#[derive(Debug)]
pub(crate) struct CheckOutcome {
    /// Row counts of the copy (empty if it could not be read).
    pub(crate) tables: BTreeMap<String, u64>,
    /// The first problem found, if any.
    pub(crate) failure: Option<VerifyFailure>,
}

/// Checks the copy at `path`, and against `manifest` when given (its row counts and migration
/// version; a database rebuilt to another point than a backup's has no manifest to match).
/// Anything SQLite reports, including "file is not a database", is a verification failure,
/// not an error.
///
/// The integrity check runs on a few connections (see [`index_scan`]), the foreign key check
/// ([`foreign_keys`]) on another and the counts on a third: the integrity check dominates on
/// large databases. The full check's scans read every foreign key's values and every parent's
/// rowids anyway; the keys they can prove are left out of the foreign key check (see
/// [`integrity_and_keys`]).
pub(crate) async fn check_copy(
    path: &Path,
    manifest: Option<&BackupManifest>,
    depth: VerifyDepth,
    migration_table: &str,
) -> CheckOutcome {
    let checks = integrity_and_keys(path, depth);
    let rest = async {
        let mut conn = open_copy(path).await?;
        let tables = row_counts(&mut conn).await?;
        let version = migration_version(&mut conn, migration_table).await?;
        let _ = sqlx::Connection::close(conn).await;
        Ok::<_, sqlx::Error>((tables, version))
    };
    let (checks, rest) = tokio::join!(checks, rest);
    let broken = |e: sqlx::Error| VerifyFailure::Integrity {
        messages: vec![e.to_string()],
    };
    let ((integrity, fk), (tables, version)) = match checks.and_then(|c| Ok((c, rest?))) {
        Ok(found) => found,
        Err(e) => {
            return CheckOutcome {
                tables: BTreeMap::new(),
                failure: Some(broken(e)),
            };
        }
    };
    let failure = if integrity != ["ok"] {
        Some(VerifyFailure::Integrity {
            messages: integrity,
        })
    } else if fk.count > 0 {
        Some(VerifyFailure::ForeignKeys {
            violations: fk.count,
            sample: fk.sample,
        })
    } else if let Some(counts) = manifest.and_then(|m| compare_counts(&m.tables, &tables)) {
        Some(counts)
    } else {
        manifest
            .filter(|m| version != m.migration_version)
            .map(|m| VerifyFailure::MigrationVersion {
                expected: m.migration_version.clone(),
                actual: version,
            })
    };
    CheckOutcome { tables, failure }
}

/// The integrity check ([`index_scan`]) and the foreign key check ([`foreign_keys`]) on a
/// blocking thread, with threads of their own reading the copy side by side: its messages
/// (`["ok"]` when sound) and the violations.
async fn integrity_and_keys(
    path: &Path,
    depth: VerifyDepth,
) -> Result<(Vec<String>, foreign_keys::Violations), sqlx::Error> {
    let workers = std::thread::available_parallelism()
        .map_or(2, std::num::NonZeroUsize::get)
        .clamp(2, 4);
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || checks(&path, depth, workers))
        .await
        .map_err(|e| sqlx::Error::Protocol(format!("the integrity check stopped: {e}")))?
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))
}

/// Plans the integrity check, then runs it on `workers` threads and the foreign key check on
/// one more.
///
/// With the full check, the foreign keys of the child tables the scans prove
/// ([`index_scan::Plan::proven_children`]) are not read again: the scans of the child's
/// indexes gave the keys' values, those of the parent's rows its rowids. That is sound because
/// the result of the foreign key check only counts when the integrity check passes, and then
/// every index holds exactly its table's entries. A child they do not prove (a value with no
/// parent, or not an integer) gets the whole foreign key check again the ordinary way, so that
/// a report of violations is the one it always was.
fn checks(
    path: &Path,
    depth: VerifyDepth,
    workers: usize,
) -> rusqlite::Result<(Vec<String>, foreign_keys::Violations)> {
    let full = depth == VerifyDepth::Full;
    let conn = index_scan::open(path)?;
    let keys = foreign_keys::plan(&conn)?;
    let plan = index_scan::plan(&conn, depth, workers, full.then_some(&keys))?;
    let proven = plan.proven_children();
    let (checked, violations) = std::thread::scope(|scope| {
        let fk = scope.spawn(|| {
            let timer = index_scan::PieceTimer::start();
            let conn = index_scan::open(path)?;
            // Index contents are trusted only by the full check, which proves them.
            let found = foreign_keys::check_planned(&conn, &keys, full, &proven);
            timer.done("foreign keys");
            found
        });
        let checked = index_scan::run_plan(path, &plan, workers);
        match fk.join() {
            Ok(violations) => (checked, violations),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    let (checked, mut violations) = (checked?, violations?);
    tracing::debug!(
        raw_scans = checked.raw_scans,
        sql_scans = checked.sql_scans,
        "row and entry scans read raw and through SQLite"
    );
    if checked.messages == ["ok"] && !checked.unproven.is_empty() {
        violations = foreign_keys::check(&conn, full)?;
    }
    Ok((checked.messages, violations))
}

#[cfg(test)]
mod tests {
    use sea_orm::sqlx::{
        Connection, Executor,
        sqlite::{SqliteConnectOptions, SqliteConnection},
    };

    use super::*;
    use crate::sqlite::test_support::{Damage, sqlite_pragma};

    /// A database of two tables with indexes, a foreign key and a few hundred rows, changed
    /// by `damage` (raw SQL on a connection that may write the schema).
    async fn database(dir: &Path, name: &str, damage: &'static str) -> std::path::PathBuf {
        let path = dir.join(name);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        conn.execute(
            "CREATE TABLE guests (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT);
             CREATE INDEX guests_city ON guests (city);
             CREATE TABLE stays (id INTEGER PRIMARY KEY, guest_id INTEGER NOT NULL
                 REFERENCES guests (id), nights INTEGER, note TEXT);
             CREATE INDEX stays_guest ON stays (guest_id);
             CREATE INDEX stays_nights ON stays (nights);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
             INSERT INTO guests (name, city) SELECT 'guest ' || i, 'city ' || (i % 7) FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 900)
             INSERT INTO stays (guest_id, nights, note)
                 SELECT 1 + i % 300, i % 5, hex(randomblob(200)) FROM n;",
        )
        .await
        .unwrap();
        if !damage.is_empty() {
            conn.execute(damage).await.unwrap();
        }
        conn.close().await.unwrap();
        path
    }

    fn messages(outcome: &CheckOutcome) -> Vec<String> {
        match &outcome.failure {
            Some(VerifyFailure::Integrity { messages }) => messages.clone(),
            other => panic!("expected an integrity failure, got {other:?}"),
        }
    }

    /// The check cut into statements run side by side finds what the single
    /// `integrity_check` finds: an index that no longer matches its table (found only by the
    /// per-table part) and pages no b-tree uses (found only by the whole-file part).
    #[tokio::test]
    async fn the_parallel_check_finds_what_integrity_check_finds() {
        let dir = tempfile::tempdir().unwrap();
        let good = database(dir.path(), "good.sqlite", "").await;
        let outcome = check_copy(&good, None, VerifyDepth::Full, "seaql_migrations").await;
        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
        assert_eq!(outcome.tables["stays"], 900);

        // The index on `nights` is declared to be on `note` instead: its entries no longer
        // match the rows.
        let stale_index = database(
            dir.path(),
            "stale-index.sqlite",
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX stays_nights ON stays (note)'
                 WHERE name = 'stays_nights';",
        )
        .await;
        let outcome = check_copy(&stale_index, None, VerifyDepth::Full, "x").await;
        let found = messages(&outcome);
        assert!(
            found.iter().any(|m| m.contains("stays_nights")),
            "{found:?}"
        );
        // The quick check does not look at index content: the cut is what finds it.
        let quick = check_copy(&stale_index, None, VerifyDepth::Quick, "x").await;
        assert!(quick.failure.is_none(), "{:?}", quick.failure);

        // An index removed from the schema but not from the file: its pages are used by no
        // b-tree, which only the whole-file part can tell.
        let orphans = database(
            dir.path(),
            "orphan-pages.sqlite",
            "PRAGMA writable_schema = ON;
             DELETE FROM sqlite_schema WHERE name = 'stays_nights';",
        )
        .await;
        let outcome = check_copy(&orphans, None, VerifyDepth::Full, "x").await;
        let found = messages(&outcome);
        assert!(found.iter().any(|m| m.contains("never used")), "{found:?}");

        // A foreign key that points nowhere is still found beside it.
        let dangling = database(
            dir.path(),
            "dangling.sqlite",
            "PRAGMA foreign_keys = OFF; DELETE FROM guests WHERE id = 5;",
        )
        .await;
        let outcome = check_copy(&dangling, None, VerifyDepth::Full, "x").await;
        assert!(
            matches!(
                outcome.failure,
                Some(VerifyFailure::ForeignKeys { violations: 3, .. })
            ),
            "{:?}",
            outcome.failure
        );
    }

    /// The full check proves the foreign key of `stays` from its scans (its index on
    /// `guest_id`, the rows of `guests`) and leaves it out of the foreign key check; the quick
    /// check, which proves no index, does not. A key value with no parent, or one that is not
    /// an integer, is still reported with SQLite's own count.
    #[tokio::test]
    async fn foreign_keys_proven_by_the_scans_are_reported_as_sqlite_reports_them() {
        let dir = tempfile::tempdir().unwrap();
        let good = database(dir.path(), "good.sqlite", "").await;
        let conn = index_scan::open(&good).unwrap();
        let keys = foreign_keys::plan(&conn).unwrap();
        let full = index_scan::plan(&conn, VerifyDepth::Full, 2, Some(&keys)).unwrap();
        assert_eq!(
            full.proven_children(),
            std::collections::BTreeSet::from(["stays".to_owned()])
        );
        let quick = index_scan::plan(&conn, VerifyDepth::Quick, 2, Some(&keys)).unwrap();
        assert!(quick.proven_children().is_empty());
        let cases = [
            (
                "missing-parents",
                "PRAGMA foreign_keys = OFF; DELETE FROM guests WHERE id IN (5, 6);",
            ),
            (
                "text-key",
                "PRAGMA foreign_keys = OFF; UPDATE stays SET guest_id = 'nobody' WHERE id = 10;",
            ),
            (
                "real-key",
                "PRAGMA foreign_keys = OFF; UPDATE stays SET guest_id = 2.5 WHERE id IN (10, 11);",
            ),
            // A real that is a parent's rowid is no violation.
            (
                "real-parent",
                "UPDATE stays SET guest_id = 3.0 WHERE id = 12;",
            ),
        ];
        for (name, damage) in cases {
            let path = database(dir.path(), &format!("{name}.sqlite"), damage).await;
            let expected = sqlite_pragma(&path, "foreign_key_check").len() as u64;
            let outcome = check_copy(&path, None, VerifyDepth::Full, "x").await;
            match outcome.failure {
                Some(VerifyFailure::ForeignKeys { violations, .. }) => {
                    assert_eq!(violations, expected, "{name}");
                }
                None => assert_eq!(expected, 0, "{name}"),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    /// SQLite's own verdict on the whole file: `integrity_check` (or `quick_check`) says ok
    /// and `foreign_key_check` finds nothing.
    fn sqlite_finds_it_sound(path: &Path, pragma: &str) -> bool {
        sqlite_pragma(path, pragma) == ["ok"] && sqlite_pragma(path, "foreign_key_check").is_empty()
    }

    /// Seeded random damage to a copy of the hotel database (the real schema: WITHOUT ROWID
    /// rollups, partial and multi-column indexes, foreign keys; the tiny dataset): the checks
    /// pass exactly when SQLite's `integrity_check` and `foreign_key_check` find nothing, and
    /// `--quick` never passes a copy `quick_check` fails nor fails one the full check passes.
    /// The hotel schema, migrated, with the tiny dataset, in `dir`.
    async fn hotel_database(dir: &Path) -> std::path::PathBuf {
        use migration::MigratorTrait;

        let path = dir.join("hotel.sqlite");
        // A plain connection (rollback journal), not a test database in WAL mode: the file
        // alone must hold every row once it is closed.
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = sea_orm::Database::connect(&url).await.unwrap();
        migration::Migrator::up(&db, None).await.unwrap();
        let options = dataset::DatasetOptions::new(dataset::Scale::Tiny)
            .seed(1)
            .reference_date(chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap());
        dataset::generate(&db, &options, &|_| {}).await.unwrap();
        db.close().await.unwrap();
        path
    }

    /// Every row and entry scan of the hotel database is read by the raw reader
    /// ([`super::super::btree_reader`]), none by SQLite, and the check passes.
    #[tokio::test]
    async fn the_hotel_database_is_scanned_by_the_raw_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = hotel_database(dir.path()).await;
        let conn = index_scan::open(&path).unwrap();
        let plan = index_scan::plan(&conn, VerifyDepth::Full, 2, None).unwrap();
        let checked = index_scan::run_plan(&path, &plan, 2).unwrap();
        assert_eq!(checked.messages, ["ok"]);
        assert!(checked.raw_scans > 10, "{}", checked.raw_scans);
        assert_eq!(checked.sql_scans, 0);
    }

    #[tokio::test]
    async fn random_damage_to_the_hotel_database_is_judged_as_sqlite_judges_it() {
        let dir = tempfile::tempdir().unwrap();
        let pristine = hotel_database(dir.path()).await;
        let original = std::fs::read(&pristine).unwrap();
        // Another seed: HOTEL_DAMAGE_SEED (31 seeds of 80 cases each agreed when written).
        let mut damage = Damage::new(0x2545_F491_4F6C_DD1D);
        let (mut sound, mut damaged) = (0, 0);
        for case in 0..80 {
            let mut bytes = original.clone();
            let at = damage.offset(case, bytes.len());
            damage.flip(&mut bytes[at]);
            let path = dir.path().join(format!("case-{case}.sqlite"));
            std::fs::write(&path, &bytes).unwrap();
            let full = sqlite_finds_it_sound(&path, "integrity_check");
            // No migration table named: a flip in the schema can rename its columns, which
            // the checks rightly refuse while SQLite's two pragmas do not look at it.
            let ours = check_copy(&path, None, VerifyDepth::Full, "x").await;
            assert_eq!(
                ours.failure.is_none(),
                full,
                "case {case} (byte {at}): ours {:?}",
                ours.failure
            );
            let quick = sqlite_finds_it_sound(&path, "quick_check");
            let ours_quick = check_copy(&path, None, VerifyDepth::Quick, "x").await;
            assert!(
                quick || ours_quick.failure.is_some(),
                "case {case} (byte {at}, quick): passed what quick_check fails"
            );
            assert!(
                !full || ours_quick.failure.is_none(),
                "case {case} (byte {at}, quick): {:?}",
                ours_quick.failure
            );
            if full {
                sound += 1;
            } else {
                damaged += 1;
            }
            std::fs::remove_file(&path).unwrap();
        }
        assert!(
            sound > 10 && damaged > 10,
            "sound {sound}, damaged {damaged}"
        );
    }
}
