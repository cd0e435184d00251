//! Plain LRU: every new entry is kept, the least recently used ones make room.

use tokio::time::Instant;

use super::table::Table;
use super::{Policy, Removed};
use crate::CacheKey;
use crate::entry::Entry;

pub(crate) struct Lru {
    table: Table<1>,
    capacity: usize,
}

impl Lru {
    pub(crate) fn new(capacity: usize) -> Self {
        Lru {
            table: Table::new(),
            capacity,
        }
    }
}

impl Policy for Lru {
    fn len(&self) -> usize {
        self.table.len()
    }

    #[inline]
    fn access(&mut self, key: &str, hash: u64) -> Option<&Entry> {
        let i = self.table.find(key, hash)?;
        self.table.make_newest(i, 0);
        Some(self.table.entry(i))
    }

    fn peek(&self, key: &str, hash: u64) -> Option<&Entry> {
        self.table.get(key, hash)
    }

    fn replace(&mut self, key: &str, entry: Entry) -> Result<Entry, Entry> {
        self.table.replace(key, entry)
    }

    fn insert(&mut self, key: CacheKey, entry: Entry, _now: Instant, removed: &mut Removed) {
        self.table.push(key, entry, 0);
        while self.table.len() > self.capacity {
            let Some(oldest) = self.table.oldest(0) else {
                break;
            };
            removed.push(self.table.remove(oldest));
        }
    }

    fn remove(&mut self, key: &str, hash: u64) -> Option<(CacheKey, Entry)> {
        self.table.remove_key(key, hash)
    }

    fn pop_victim(&mut self, keep: &str) -> Option<(CacheKey, Entry)> {
        let oldest = self.table.oldest(0)?;
        let victim = if self.table.key(oldest).as_str() == keep {
            self.table.newer(oldest)?
        } else {
            oldest
        };
        Some(self.table.remove(victim))
    }

    fn retain(&mut self, keep: &mut dyn FnMut(&CacheKey, &Entry) -> bool, removed: &mut Removed) {
        self.table.retain(keep, removed);
    }
}
