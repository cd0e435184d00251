//! The plan of a restore, worked out without changing anything.

use crate::{
    BackupManifest, BackupRepository, Error, Result, Source,
    sqlite::{self, live_file},
};

use super::{RestoreOptions, RestorePlan, restore_temp_path};

impl BackupRepository {
    /// Works out the plan without changing anything.
    pub(super) async fn plan(
        &self,
        manifest: &BackupManifest,
        target: &Source,
        options: &RestoreOptions,
    ) -> Result<RestorePlan> {
        let id = &manifest.id;
        let mut steps = vec![format!(
            "check backup {id}: the size and SHA-256 of {}",
            self.store.describe(&manifest.file)
        )];
        let (target_exists, in_use) = match target {
            Source::Sqlite { path } => {
                let exists = path.exists();
                let in_use = live_file::holder(path).map_err(|e| Error::io("inspect", path, e))?;
                steps.push(format!(
                    "decompress it to {} and check the copy (integrity_check, foreign_key_check, \
                     row counts against the manifest)",
                    restore_temp_path(path, id).display()
                ));
                if exists && !options.skip_safety_backup {
                    steps.push(format!(
                        "take a safety backup of {} (reason pre-restore) into {}",
                        path.display(),
                        self.location
                    ));
                }
                let stale: Vec<String> = sqlite::side_files(path)
                    .iter()
                    .filter(|p| p.exists())
                    .map(|p| p.display().to_string())
                    .collect();
                if !stale.is_empty() {
                    steps.push(format!(
                        "remove the replaced database's {}",
                        stale.join(", ")
                    ));
                }
                steps.push(format!(
                    "rename the checked copy over {} and fsync the directory",
                    path.display()
                ));
                (exists, in_use)
            }
            #[cfg(not(feature = "postgres"))]
            Source::Postgres { .. } => return Err(Error::postgres_not_compiled()),
            #[cfg(feature = "postgres")]
            Source::Postgres { url } => {
                use super::{RestoreMode, lower};
                use crate::postgres::{PgUrl, admin::Admin, derived_name};
                let pg = PgUrl::parse(url)?;
                let mut admin = Admin::connect(&pg, &self.config.pg_tools).await?;
                let exists = admin.exists(pg.database()).await?;
                let sessions = if exists {
                    admin.sessions(pg.database()).await?
                } else {
                    Vec::new()
                };
                admin.close().await;
                let db = pg.database();
                let restoring = derived_name(
                    db,
                    &format!("restoring_{}_{}", lower(id), std::process::id()),
                );
                if !exists {
                    steps.push(format!(
                        "create database {restoring} and pg_restore into it; compare its row \
                         counts with the manifest"
                    ));
                    steps.push(format!("rename {restoring} to {db}"));
                } else {
                    if !options.skip_safety_backup {
                        steps.push(format!("take a safety backup of {db} (reason pre-restore)"));
                    }
                    match options.mode {
                        RestoreMode::Replace => {
                            steps.push(format!(
                                "create database {restoring} and pg_restore into it; compare its \
                                 row counts with the manifest"
                            ));
                            if options.force {
                                steps.push(format!(
                                    "refuse connections to {db} and end its sessions"
                                ));
                            }
                            steps.push(format!(
                                "in one transaction, rename {db} to {db}_replaced_<time> (kept) \
                                 and {restoring} to {db}"
                            ));
                        }
                        RestoreMode::Clean => {
                            steps.push(format!(
                                "pg_restore --clean --if-exists --single-transaction into {db}"
                            ));
                            steps.push("compare its row counts with the manifest".to_owned());
                        }
                    }
                }
                let in_use = (!sessions.is_empty()).then(|| sessions.join(", "));
                (exists, in_use)
            }
        };
        if let Some(holder) = &in_use {
            steps.push(if options.force {
                format!("go ahead although the target is in use ({holder}): --force")
            } else {
                format!("REFUSE: the target is in use ({holder}); stop it or pass --force")
            });
        }
        Ok(RestorePlan {
            backup: id.clone(),
            target: target.display_name(),
            target_exists,
            in_use,
            steps,
        })
    }
}
