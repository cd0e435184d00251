//! Which reader belongs to which sqlx pool: the SQLite and PostgreSQL readers keep
//! connections of their own beside a `DatabaseConnection`'s pool and find them again from it.
//!
//! A pool is known by the address of its options, which stays put while it lives; the weak
//! reference to its connect options dies with it and, while held, keeps that address from
//! being reused by a later pool.

use std::{
    any::Any,
    sync::{Arc, PoisonError, RwLock, Weak},
};

use sea_orm::sqlx::{self, Connection};

/// The readers of the pools of one kind, for a `static`.
pub(crate) struct Registry<R>(RwLock<Vec<Registered<R>>>);

struct Registered<R> {
    pool: usize,
    alive: Weak<dyn Any + Send + Sync>,
    reader: Option<Arc<R>>,
}

fn pool_id<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> usize {
    std::ptr::from_ref(pool.options()) as usize
}

impl<R> Registry<R> {
    /// No pool known yet.
    pub(crate) const fn new() -> Self {
        Self(RwLock::new(Vec::new()))
    }

    /// `Some(reader)` when the pool is known (`Some(None)`: known to have none).
    pub(crate) fn find<DB: sqlx::Database>(&self, pool: &sqlx::Pool<DB>) -> Option<Option<Arc<R>>> {
        let id = pool_id(pool);
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|r| r.pool == id && r.alive.strong_count() > 0)
            .map(|r| r.reader.clone())
    }

    /// Notes `pool`'s reader, forgetting the readers of pools that are gone (which closes
    /// their connections).
    pub(crate) fn insert<DB: sqlx::Database>(&self, pool: &sqlx::Pool<DB>, reader: Option<Arc<R>>) {
        let id = pool_id(pool);
        let options: Arc<<DB::Connection as Connection>::Options> = pool.connect_options();
        let options: Arc<dyn Any + Send + Sync> = options;
        let mut registered = self.0.write().unwrap_or_else(PoisonError::into_inner);
        registered.retain(|r| r.alive.strong_count() > 0 && r.pool != id);
        registered.push(Registered {
            pool: id,
            alive: Arc::downgrade(&options),
            reader,
        });
    }
}
